import { appendFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { importTickets, insertTicket, loadGotrsSchema, sequenceValue } from '../helpers/gotrs.js';

const { logPath, logLinePrefix } = inject('pg');

/*
 * The whole product on GOTRS's real schema: the daemon (the built CLI, as a child process) follows
 * the real server's stderr log, sees the duplicate key error of an INSERT after an import, and
 * heals the sequence so the retried INSERT succeeds. Needs the server log: an external
 * TEST_DATABASE_URL without TEST_DATABASE_LOG cannot show that, and these tests say so.
 */
describe.runIf(logPath)('end to end on the GOTRS schema', () => {
  let db: TestDatabase;
  let daemon: RunningDaemon;
  let appLog: string;

  beforeAll(async () => {
    db = await createTestDatabase('e2e');
    await loadGotrsSchema(db.pool);
    await importTickets(db.pool, 300);
    // users: imported with explicit ids too; its login_key violation is a real duplicate, not drift.
    await db.pool.query(
      `INSERT INTO users (id, login, pw, first_name, last_name, valid_id, create_time, create_by, change_time, change_by)
       SELECT g, 'agent' || g, 'x', 'A', 'B', 1, now(), 1, now(), 1 FROM generate_series(1, 20) g`,
    );
    // valid: a sequence that is already ahead of MAX(id).
    await db.pool.query(`INSERT INTO valid (id, name, create_time, create_by, change_time, change_by)
                         SELECT g, 'v' || g, now(), 1, now(), 1 FROM generate_series(1, 3) g`);
    await db.pool.query(`SELECT setval('valid_id_seq', 50)`);
    await db.pool.query(`INSERT INTO acl_sync (id, acl_id, sync_state, create_time, change_time)
                         SELECT g, 'a' || g, 's', now(), now() FROM generate_series(1, 40) g`);
    appLog = join(tmpdir(), `${db.name}-app.log`);
    writeFileSync(appLog, '');
    daemon = await startDaemon({
      database: { url: db.url },
      sources: [
        { path: logPath, format: 'postgres-stderr', log_line_prefix: logLinePrefix },
        { path: appLog, format: 'postgres-stderr', log_line_prefix: '%m [%p] ' },
      ],
      remediation: { debounce_ms: 200, dry_run: false },
    });
  });

  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  it('rehearses a fix (read-only) once the catalog is warm, on a column whose MAX is an index read', async () => {
    const line = await waitFor('the catalog warm-up', () =>
      daemon
        .stderr()
        .split('\n')
        .find((l) => l.includes('catalog warmed')),
    );
    const { fix_rehearsed_on: rehearsed, heal_path_warmed: warmed } = JSON.parse(line) as { fix_rehearsed_on: string | null; heal_path_warmed: string | null };
    expect(rehearsed).toMatch(/^public\.\w+_seq$/);
    // The heal path ran once on a made-up record (warmHealPath): checked read-only, nothing audited.
    expect(warmed).toMatch(/^(in_sync|planned)$/);
    expect(daemon.audit().filter((r) => r.trigger?.constraint === 'seqwatch_warm_up' || r.trigger?.source === 'seqwatch warm-up')).toEqual([]);
  });

  it('heals ticket_id_seq within 1 s of the duplicate key error, and the retried INSERT succeeds', async () => {
    const error = await insertTicket(db.pool, 'new-1').then(
      () => undefined,
      (e: Error & { code?: string; constraint?: string }) => e,
    );
    const failedAt = Date.now();
    expect(error?.code).toBe('23505');
    expect(error?.constraint).toBe('ticket_pkey');

    const remediated = await daemon.waitForAudit('remediated ticket', (r) => r.event === 'remediated' && r.table === 'public.ticket');
    expect(Date.parse(remediated.time) - failedAt).toBeLessThan(1000);
    expect(remediated).toMatchObject({
      sequence: 'public.ticket_id_seq',
      column: 'id',
      before: '1',
      after: '300',
      max_id: '300',
      trigger: { source: logPath, constraint: 'ticket_pkey' },
    });
    const detected = daemon.audit().find((r) => r.event === 'detected' && r.table === 'public.ticket');
    expect(detected?.trigger?.constraint).toBe('ticket_pkey');

    expect(await insertTicket(db.pool, 'new-2')).toBe('301');
  });

  it("acts on the server's ERROR line at once, and its DETAIL and STATEMENT lines make no second incident", async () => {
    await db.pool.query(`CREATE TABLE early_heal (id bigserial PRIMARY KEY, title text NOT NULL);
                         INSERT INTO early_heal (id, title) SELECT g, 'imported' FROM generate_series(1, 50) g`);
    const error = await db.pool.query(`INSERT INTO early_heal (title) VALUES ('new')`).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(error?.code).toBe('23505');
    await daemon.waitForAudit('early_heal remediated', (r) => r.event === 'remediated' && r.table === 'public.early_heal');
    // The record (ERROR, DETAIL, STATEMENT) has been emitted whole by now: give it the time to be read.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const detected = daemon.audit().filter((r) => r.event === 'detected' && r.table === 'public.early_heal');
    expect(detected.map((r) => r.incidents)).toEqual([1]);
    expect(detected[0]!.trigger).toMatchObject({ source: logPath, constraint: 'early_heal_pkey' });
    expect(
      daemon
        .audit()
        .filter((r) => r.table === 'public.early_heal')
        .map((r) => r.event),
    ).toEqual(['detected', 'remediated']);
  });

  it('leaves a sequence alone on a unique violation that no sequence feeds (users_login_key), and says why', async () => {
    // users_id_seq is behind (the import left it at 1), but nothing said so: it is not this error's cause.
    const before = await sequenceValue(db.pool, 'users_id_seq');
    expect(before).toEqual({ last_value: '1', is_called: false });
    await expect(
      db.pool.query(`INSERT INTO users (id, login, pw, first_name, last_name, valid_id, create_time, create_by, change_time, change_by)
                     VALUES (999, 'agent7', 'x', 'A', 'B', 1, now(), 1, now(), 1)`),
    ).rejects.toMatchObject({ code: '23505', constraint: 'users_login_key' });
    const skipped = await daemon.waitForAudit('users_login_key skipped', (r) => r.event === 'skipped' && r.trigger?.constraint === 'users_login_key');
    expect(skipped).toMatchObject({ reason: 'not_sequence_fed', table: 'public.users' });
    expect(skipped.msg).toContain('not fed by a sequence');
    expect(await sequenceValue(db.pool, 'users_id_seq')).toEqual(before);
  });

  it('leaves a sequence that is already ahead untouched, and says so', async () => {
    await expect(
      db.pool.query(`INSERT INTO valid (id, name, create_time, create_by, change_time, change_by) VALUES (2, 'dup', now(), 1, now(), 1)`),
    ).rejects.toMatchObject({ code: '23505', constraint: 'valid_pkey' });
    const inSync = await daemon.waitForAudit('valid in_sync', (r) => r.event === 'in_sync' && r.table === 'public.valid');
    expect(inSync).toMatchObject({ sequence: 'public.valid_id_seq', before: '50', max_id: '3' });
    expect(await sequenceValue(db.pool, 'valid_id_seq')).toEqual({ last_value: '50', is_called: true });
    expect(daemon.audit().some((r) => r.event === 'remediated' && r.table === 'public.valid')).toBe(false);
  });

  it('is not harmed by forged log lines, in the server log and in an application log, and keeps healing', async () => {
    const forgedNames = [
      `ticket_pkey"; DROP TABLE ticket; --`,
      `x'); DROP TABLE ticket; --`,
      `ticket_pkey' OR '1'='1`,
      `"quoted"."name"`,
      `тикет_pkey`,
      'a'.repeat(200),
      '',
    ];
    for (const name of forgedNames) {
      // RAISE puts exactly this text in the real server log, as any client could.
      await expect(
        db.pool.query(
          `DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = $m$duplicate key value violates unique constraint "${name}"$m$; END $$`,
        ),
      ).rejects.toMatchObject({ code: '23505' });
    }
    const stamp = new Date().toISOString().replace('T', ' ').replace('Z', ' UTC');
    appendFileSync(
      appLog,
      [
        `${stamp} [999] ERROR:  duplicate key value violates unique constraint "ticket_pkey; DELETE FROM ticket"`,
        `${stamp} [999] ERROR:  duplicate key value violates unique constraint "ticket_pkey"`,
        `${stamp} [999] DETAIL:  Key (id)=(1) already exists.`,
        `${stamp} [999] STATEMENT:  INSERT INTO ticket VALUES (1); DROP TABLE ticket;`,
        '\u0000\u0001\u00ff binary garbage \uFFFD',
        `${stamp} [998] ERROR:  duplicate key value violates unique constraint "no_such_index_pkey"`,
        '',
      ].join('\n'),
    );
    await daemon.waitForAudit('forged unknown name skipped', (r) => r.event === 'skipped' && r.trigger?.constraint === 'no_such_index_pkey');
    await daemon.waitForAudit('server-log forged name skipped', (r) => r.event === 'skipped' && r.trigger?.constraint === forgedNames[0]);
    // The forged "ticket_pkey" line made a check, which found nothing to do.
    await daemon.waitForAudit('forged ticket_pkey checked', (r) => r.event === 'in_sync' && r.trigger?.source === appLog);

    const { rows } = await db.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM ticket');
    expect(rows[0]!.n).toBe('301');
    expect(await sequenceValue(db.pool, 'ticket_id_seq')).toEqual({ last_value: '301', is_called: true });
    expect(daemon.alive()).toBe(true);

    // Still healing afterwards.
    await expect(db.pool.query(`INSERT INTO acl_sync (acl_id, sync_state, create_time, change_time) VALUES ('new', 's', now(), now())`)).rejects.toMatchObject({
      code: '23505',
    });
    await daemon.waitForAudit('acl_sync remediated', (r) => r.event === 'remediated' && r.table === 'public.acl_sync');
    await db.pool.query(`INSERT INTO acl_sync (acl_id, sync_state, create_time, change_time) VALUES ('new', 's', now(), now())`);
  });

  it('never writes row data or passwords to the audit log, and stops with a stopped record', async () => {
    const code = await daemon.stop('SIGTERM');
    expect(code).toBe(0);
    const audit = daemon.audit();
    expect(audit.at(-1)?.event).toBe('stopped');
    const text = JSON.stringify(audit);
    expect(text).not.toContain('already exists');
    expect(text).not.toContain('agent7');
    expect(text).not.toContain('INSERT INTO ticket VALUES'); // the forged STATEMENT line
    for (const record of audit) {
      expect(record.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(['started', 'detected', 'remediated', 'in_sync', 'planned', 'skipped', 'failed', 'alert', 'stopped']).toContain(record.event);
    }
  });
});
