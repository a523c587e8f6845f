import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { duplicateKeyLine, startDaemon, type RunningDaemon } from '../helpers/daemon.js';

const { logPath, logLinePrefix } = inject('pg');

/* Several databases of one cluster in one daemon: each record goes to the database it names. */
describe.runIf(logPath && logLinePrefix.includes('%d'))('several databases, routed by %d', () => {
  let one: TestDatabase;
  let two: TestDatabase;
  let daemon: RunningDaemon;
  let appLog: string;

  beforeAll(async () => {
    [one, two] = await Promise.all([createTestDatabase('dbone'), createTestDatabase('dbtwo')]);
    await one.pool.query('CREATE TABLE ticket (id bigserial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 10)');
    await two.pool.query('CREATE TABLE ticket (id bigserial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 20)');
    appLog = join(mkdtempSync(join(tmpdir(), 'seqwatch-dbs-')), 'app.log');
    writeFileSync(appLog, '');
    daemon = await startDaemon({
      databases: [{ url: one.url }, { url: two.url }],
      sources: [
        { path: logPath, log_line_prefix: logLinePrefix },
        { path: appLog, format: 'app-text' },
      ],
      remediation: { debounce_ms: 20, cooldown: 0 },
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    await Promise.all([one?.drop(), two?.drop()]);
  });

  it('heals the same-named table in the database the error came from, and only there', async () => {
    await expect(one.pool.query('INSERT INTO ticket DEFAULT VALUES')).rejects.toMatchObject({ code: '23505' });
    const fixed = await daemon.waitForAudit('db one healed', (r) => r.event === 'remediated' && r.database === one.name);
    expect(fixed).toMatchObject({ table: 'public.ticket', after: '10' });
    expect((await two.pool.query('SELECT is_called FROM ticket_id_seq')).rows[0].is_called).toBe(false);

    await expect(two.pool.query('INSERT INTO ticket DEFAULT VALUES')).rejects.toMatchObject({ code: '23505' });
    expect(await daemon.waitForAudit('db two healed', (r) => r.event === 'remediated' && r.database === two.name)).toMatchObject({ after: '20' });
    expect(daemon.audit()[0]!.database).toBe(`${one.name}, ${two.name}`);
  });

  it('checks an application log record, which names no database, in every one', async () => {
    appendFileSync(appLog, `2026/11/27 10:00:00 pq: ${duplicateKeyLine('ticket_pkey').split('ERROR:  ')[1]}`);
    await daemon.waitForAudit('checked in one', (r) => r.event === 'in_sync' && r.database === one.name && r.trigger?.source === appLog);
    await daemon.waitForAudit('checked in two', (r) => r.event === 'in_sync' && r.database === two.name && r.trigger?.source === appLog);
  });

  it('takes database or databases, not both', () => {
    expect(() => parseConfig('database: {url: postgresql://a@h/x}\ndatabases: [{url: postgresql://a@h/y}]\nsources: [{path: /x}]\n', 'c.yaml')).toThrow(
      /database \(one\) or databases \(several\), not both/,
    );
  });
});
