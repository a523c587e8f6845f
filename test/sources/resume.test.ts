import { appendFileSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { duplicateKeyLine, startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';

/*
 * kill -9 and restart: every error written while the daemon was down is handled exactly once,
 * and nothing handled before the kill is handled again.
 */
describe('restart without loss or duplicates', () => {
  let db: TestDatabase;
  let dir: string;
  let appLog: string;
  const config = () => ({
    database: { url: db.url },
    sources: [{ path: appLog, log_line_prefix: '%m [%p] ' }],
    remediation: { debounce_ms: 50, cooldown: 0 },
    state_dir: join(dir, 'state'),
  });
  const daemons: RunningDaemon[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('resume');
    await db.pool.query(`CREATE TABLE ticket (id bigserial PRIMARY KEY); CREATE TABLE article (id bigserial PRIMARY KEY);
                         CREATE TABLE queue (id serial PRIMARY KEY);`);
    dir = mkdtempSync(join(tmpdir(), 'seqwatch-resume-'));
    appLog = join(dir, 'app.log');
    writeFileSync(appLog, '');
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
    await db?.drop();
  });

  const drift = (table: string) =>
    db.pool.query(`INSERT INTO ${table} (id) SELECT (SELECT coalesce(max(id), 0) FROM ${table}) + g FROM generate_series(1, 10) g`);
  const detected = (d: RunningDaemon, table: string) => d.audit().filter((r) => r.event === 'detected' && r.table === table);

  it('after kill -9 handles each error written while it was down once, and none twice', async () => {
    const first = await startDaemon(config());
    daemons.push(first);
    await drift('ticket');
    appendFileSync(appLog, duplicateKeyLine('ticket_pkey'));
    await first.waitForAudit('ticket remediated', (r) => r.event === 'remediated' && r.table === 'public.ticket');
    // Let the checkpoint catch up with the handled record (written at the next idle poll).
    await new Promise((r) => setTimeout(r, 600));
    await first.stop('SIGKILL');

    await drift('article');
    await drift('queue');
    appendFileSync(appLog, duplicateKeyLine('article_pkey') + duplicateKeyLine('queue_pkey') + duplicateKeyLine('article_pkey'));

    const second = await startDaemon(config());
    daemons.push(second);
    await second.waitForAudit('article remediated', (r) => r.event === 'remediated' && r.table === 'public.article' && r.pid === second.child.pid);
    await second.waitForAudit('queue remediated', (r) => r.event === 'remediated' && r.table === 'public.queue' && r.pid === second.child.pid);
    await new Promise((r) => setTimeout(r, 500));
    const mine = (r: { pid: number }) => r.pid === second.child.pid;
    expect(detected(second, 'public.ticket').filter(mine)).toHaveLength(0);
    expect(
      detected(second, 'public.article')
        .filter(mine)
        .reduce((n, r) => n + (r.incidents as number), 0),
    ).toBe(2);
    expect(detected(second, 'public.queue').filter(mine)).toHaveLength(1);
    expect(second.stderr()).toContain('resuming from the checkpoint');
  });

  it('reads a file replaced while it was down from its start, and says so', async () => {
    const previous = daemons.at(-1)!;
    await new Promise((r) => setTimeout(r, 600));
    await previous.stop('SIGTERM');
    renameSync(appLog, `${appLog}.1`);
    await drift('ticket');
    writeFileSync(appLog, duplicateKeyLine('ticket_pkey'));
    const third = await startDaemon(config());
    daemons.push(third);
    await third.waitForAudit(
      'ticket remediated from the new file',
      (r) => r.event === 'remediated' && r.table === 'public.ticket' && r.pid === third.child.pid,
    );
    await waitFor('the warning', () => third.stderr().includes('was replaced since the checkpoint'), 5_000);
  });
});
