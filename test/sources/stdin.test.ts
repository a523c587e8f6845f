import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { CLI, duplicateKeyLine, readAudit, waitFor } from '../helpers/daemon.js';

describe('standard input as a source', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('stdin');
    await db.pool.query('CREATE TABLE ticket (id bigserial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 12)');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('heals from a pipeline (docker logs -f ... | seqwatch run) and stops cleanly when the pipe ends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-stdin-'));
    const audit = join(dir, 'audit.jsonl');
    const config = join(dir, 'seqwatch.yaml');
    writeFileSync(config, stringify({ database: { url: db.url }, sources: [{ path: '-', format: 'auto' }], audit: { path: audit }, state_dir: dir }));
    const child = spawn(process.execPath, [CLI, 'run', '-c', config], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await waitFor('started', () => readAudit(audit).some((r) => r.event === 'started'), 20_000);
    child.stdin!.write('PostgreSQL init process complete; ready for start up.\n');
    child.stdin!.write(duplicateKeyLine('ticket_pkey').replace(' ERROR', ' postgres@' + db.name + ' ERROR'));
    await waitFor('remediated', () => readAudit(audit).find((r) => r.event === 'remediated'), 10_000);
    child.stdin!.end();
    expect(await exited).toBe(0);
    expect(readAudit(audit).at(-1)).toMatchObject({ event: 'stopped', reason: 'end of standard input' });
    expect(stderr).toContain('format detected');
  });
});
