import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/AuditLog.js';
import { Database } from '../../src/db/Database.js';
import { listSequenceColumns } from '../../src/db/listSequenceColumns.js';
import { IndexResolver } from '../../src/db/resolveIndex.js';
import { Remediator, type RemediationSettings } from '../../src/remediate/Remediator.js';
import { TablePolicy } from '../../src/remediate/TablePolicy.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { readAudit } from '../helpers/daemon.js';

/*
 * The Remediator (daemon and sweep) with the trust rule's companions: the sweep past a table it may
 * not read (a real role, a real REVOKE), a shared sequence, the hourly cap per table, the hold-off
 * on a healthy table, the policy on the sequence's schema, the jump guard, a full-scan key.
 */
let db: TestDatabase;
const role = `seqwatch_${randomBytes(3).toString('hex')}`;
const databases: Database[] = [];

beforeAll(async () => {
  db = await createTestDatabase('rtrust');
  await db.pool.query(`
    CREATE TABLE a (id serial PRIMARY KEY); INSERT INTO a (id) SELECT generate_series(1, 10);
    CREATE TABLE b (id serial PRIMARY KEY); INSERT INTO b (id) SELECT generate_series(1, 20);
    CREATE TABLE c (id serial PRIMARY KEY); INSERT INTO c (id) SELECT generate_series(1, 30);
    CREATE ROLE ${role} LOGIN;
    GRANT USAGE ON SCHEMA public TO ${role};
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role};
    GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${role};
    REVOKE SELECT ON b FROM ${role};`);
});
afterAll(async () => {
  await Promise.all(databases.map((d) => d.close()));
  await db?.drop();
  const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/]*$/, '/postgres') });
  await admin.connect();
  await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
  await admin.end();
});

function remediator(settings: Partial<RemediationSettings> = {}, asRole = false) {
  const url = new URL(db.url);
  if (asRole) url.username = role;
  const database = new Database({ url: url.toString() });
  databases.push(database);
  const auditPath = join(mkdtempSync(join(tmpdir(), 'seqwatch-rtrust-')), 'audit.jsonl');
  const r = new Remediator({
    db: database,
    resolver: new IndexResolver(database),
    audit: new AuditLog(auditPath),
    database: db.name,
    dryRun: false,
    debounceMs: 0,
    ...settings,
  });
  return { r, database, records: () => readAudit(auditPath) };
}
const incident = (constraint: string) => ({ kind: 'unique_violation' as const, constraint, source: 'test' });
const seq = async (name: string) => (await db.pool.query<{ v: string }>(`SELECT last_value::text || ':' || is_called AS v FROM ${name}`)).rows[0]!.v;

describe('the sweep', () => {
  it('heals every table it may read when one is unreadable, and alerts once for that one with the GRANT', async () => {
    const { r, database, records } = remediator({}, true);
    const columns = (await listSequenceColumns(database)).filter((c) => ['a', 'b', 'c'].includes(c.tableName));
    expect(columns.map((c) => c.tableName)).toEqual(['a', 'b', 'c']);
    await r.sweep(columns);
    await r.sweep(columns);
    expect(await seq('a_id_seq')).toBe('10:true');
    expect(await seq('c_id_seq')).toBe('30:true');
    expect(await seq('b_id_seq')).toBe('1:false');
    const alerts = records().filter((x) => x.event === 'alert');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ reason: 'table_unreadable', table: 'public.b' });
    expect(alerts[0]!.msg).toContain(`GRANT SELECT ON public.b TO ${role};`);
  });
});

describe('a shared sequence', () => {
  it('one error moves it past MAX over every table it feeds', async () => {
    await db.pool.query(`CREATE SEQUENCE shared_seq;
      CREATE TABLE shared_a (id bigint PRIMARY KEY DEFAULT nextval('shared_seq')); INSERT INTO shared_a VALUES (30);
      CREATE TABLE shared_b (id bigint PRIMARY KEY DEFAULT nextval('shared_seq')); INSERT INTO shared_b VALUES (70);`);
    const { r, records } = remediator();
    await r.handle(incident('shared_a_pkey'));
    expect(await seq('shared_seq')).toBe('70:true');
    expect(records().find((x) => x.event === 'remediated')!.msg).toMatch(/over public\.shared_a and public\.shared_b/);
    // The other table inserts at once, without an error of its own.
    expect((await db.pool.query('INSERT INTO shared_b DEFAULT VALUES RETURNING id')).rows[0].id).toBe('71');
  });

  it('counts the hourly cap per sequence and table: another table cannot spend it', async () => {
    await db.pool.query(`CREATE SEQUENCE pool_seq;
      CREATE TABLE own (id bigint PRIMARY KEY DEFAULT nextval('pool_seq'));
      CREATE TABLE noisy (id bigint PRIMARY KEY DEFAULT nextval('pool_seq'));`);
    const { r, records } = remediator({ maxFixesPerHour: 2, cooldownMs: 0 });
    for (let i = 1; i <= 3; i++) {
      await db.pool.query(`INSERT INTO noisy VALUES ($1)`, [i * 100]);
      await r.handle(incident('noisy_pkey'));
    }
    expect(
      records()
        .filter((x) => x.reason === 'recurring_drift')
        .map((x) => x.table),
    ).toEqual(['public.noisy']);
    await db.pool.query(`INSERT INTO own VALUES (1000)`);
    await r.handle(incident('own_pkey'));
    expect(await seq('pool_seq')).toBe('1000:true');
  });
});

describe('errors on a healthy table', () => {
  it('after an in-sync check the next waits the cooldown; in-sync checks are not audited one by one', async () => {
    await db.pool.query(`CREATE TABLE calm (id serial PRIMARY KEY); INSERT INTO calm DEFAULT VALUES;`);
    const { r, records } = remediator({ debounceMs: 10, cooldownMs: 1_000 });
    const started = Date.now();
    const handled: Array<Promise<void>> = [];
    let sent = 0;
    while (Date.now() - started < 2_500) {
      handled.push(r.handle(incident('calm_pkey')));
      sent++;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await Promise.all(handled);
    expect(r.counters.checks).toBeLessThanOrEqual(5);
    await r.stop(1_000);
    const audit = records();
    // One detected record per check (it counts the errors), one in_sync, one summary of the quiet ones.
    expect(audit.length).toBeLessThanOrEqual(8);
    expect(audit.filter((x) => x.event === 'in_sync').length).toBeLessThanOrEqual(2);
    const counted = audit.filter((x) => x.event === 'detected').reduce((n, x) => n + Number(x.incidents), 0);
    expect(counted).toBe(sent);
    console.info(`${sent} errors on a healthy table over 2.5 s: ${r.counters.checks} checks, ${audit.length} audit records`);
  });
});

describe('the policy and the jump guard in the daemon', () => {
  it('the policy applies to the sequence schema too', async () => {
    await db.pool.query(`CREATE SCHEMA staging; CREATE SEQUENCE staging.s;
      CREATE TABLE uses_staging (id bigint PRIMARY KEY DEFAULT nextval('staging.s')); INSERT INTO uses_staging VALUES (5);`);
    const { r, records } = remediator({ policy: new TablePolicy([], ['staging.*']) });
    await r.handle(incident('uses_staging_pkey'));
    expect(records().find((x) => x.table === 'public.uses_staging' && x.event !== 'detected')).toMatchObject({
      event: 'skipped',
      reason: 'excluded_by_policy',
    });
    expect(await seq('staging.s')).toBe('1:false');
    await r.sweep(await listSequenceColumns(databases.at(-1)!));
    expect(await seq('staging.s')).toBe('1:false');
  });

  it('a fix further than max_jump is an alert, once, and nothing moves', async () => {
    await db.pool.query(`CREATE TABLE leap (id bigserial PRIMARY KEY); INSERT INTO leap (id) VALUES (1), (2), (500000000);`);
    const { r, records } = remediator({ maxJump: 100_000_000, nearLimitPercent: 90 });
    await r.handle(incident('leap_pkey'));
    await r.handle(incident('leap_pkey'));
    const alerts = records().filter((x) => x.event === 'alert');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ reason: 'jump_guard', table: 'public.leap', held: 'max_jump' });
    expect(alerts[0]!.msg).toContain(`SELECT setval('public.leap_id_seq', 500000000)`);
    expect(await seq('leap_id_seq')).toBe('1:false');
  });
});

describe('a key no index leads with', () => {
  it('is checked with a bounded statement and said once: a full scan', async () => {
    await db.pool.query(`CREATE TABLE pair (tenant int, id serial, PRIMARY KEY (tenant, id)); INSERT INTO pair VALUES (1, 1), (1, 2);`);
    const { r, records } = remediator();
    await r.handle(incident('pair_pkey'));
    expect(records().find((x) => x.event === 'detected')).toMatchObject({ table: 'public.pair', full_scan: true });
    expect(records().find((x) => x.reason === 'full_scan')!.msg).toContain('CREATE INDEX ON public.pair (id)');
    expect(await seq('pair_id_seq')).toBe('2:true');
  });
});
