import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, sqlOn, type TestDatabase } from '../helpers/db.js';
import { readAudit, runCli as cli } from '../helpers/daemon.js';
import { EVERY_KIND_OF_SEQUENCE } from '../helpers/everyKind.js';
import { loadGotrsSchema } from '../helpers/gotrs.js';
import { importIntoEveryTable } from '../helpers/importAll.js';

function configFor(db: TestDatabase): { path: string; audit: string } {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-cli-'));
  const audit = join(dir, 'audit.jsonl');
  const path = join(dir, 'seqwatch.yaml');
  writeFileSync(path, stringify({ database: { url: db.url }, sources: [{ path: join(dir, 'pg.log') }], audit: { path: audit }, state_dir: dir }));
  return { path, audit };
}

interface CheckJson {
  exit_code: number;
  sequences: Array<{
    table: string;
    column: string;
    sequence: string;
    kind: string;
    status: string;
    next_value: string;
    max_id: string | null;
    behind_by: string | null;
  }>;
}

describe('seqwatch check and fix over every kind of sequence', () => {
  let db: TestDatabase;
  let config: { path: string; audit: string };
  const values = async () =>
    (
      await db.pool.query<{ seq: string; v: string | null }>(
        `SELECT format('%I.%I', schemaname, sequencename) AS seq, last_value::text AS v FROM pg_sequences ORDER BY 1`,
      )
    ).rows;

  beforeAll(async () => {
    db = await createTestDatabase('cli');
    config = configFor(db);
    await db.pool.query(`
      ${EVERY_KIND_OF_SEQUENCE}
      CREATE TABLE ahead (id serial PRIMARY KEY);

      INSERT INTO plain (id) SELECT generate_series(1, 10);
      INSERT INTO big (id) VALUES (5000000000);
      INSERT INTO small (id) VALUES (7);
      INSERT INTO ident (id) SELECT generate_series(1, 4);
      INSERT INTO loose (id) VALUES (3); SELECT setval('loose_seq', 1000);
      INSERT INTO shared_a (id) VALUES (70); INSERT INTO shared_b (id) VALUES (90);
      INSERT INTO events (id, at) VALUES (12, '2026-05-01');
      INSERT INTO "Billing"."Invoice Lines" ("Line Id") VALUES (8);
      INSERT INTO tenant_a.ticket (id) VALUES (5); INSERT INTO tenant_b.ticket (id) VALUES (9);
      INSERT INTO down (id) VALUES (-30);
      INSERT INTO ahead (id) VALUES (1), (2); SELECT setval('ahead_id_seq', 50);
    `);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('check lists every sequence-fed column with its state, and exits 1 on drift', async () => {
    const result = await cli('check', '-c', config.path, '--json');
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as CheckJson;
    const row = (table: string) => report.sequences.filter((s) => s.table === table);
    expect(row('public.plain')).toMatchObject([{ column: 'id', sequence: 'public.plain_id_seq', kind: 'serial', status: 'behind', behind_by: '10' }]);
    expect(row('public.big')[0]).toMatchObject({ status: 'behind', max_id: '5000000000' });
    expect(row('public.small')[0]).toMatchObject({ kind: 'serial', status: 'behind' });
    expect(row('public.ident')[0]).toMatchObject({ kind: 'identity', status: 'behind' });
    expect(row('public.loose')[0]).toMatchObject({ kind: 'default', sequence: 'public.loose_seq', status: 'ok' });
    expect(report.sequences.filter((s) => s.sequence === 'public.shared_seq').map((s) => s.table)).toEqual(['public.shared_a', 'public.shared_b']);
    expect(row('public.events')[0]).toMatchObject({ status: 'behind', max_id: '12' });
    expect(report.sequences.map((s) => s.table)).not.toContain('public.events_2026');
    expect(row('"Billing"."Invoice Lines"')[0]).toMatchObject({ column: 'Line Id', sequence: '"Billing"."Invoice Lines_Line Id_seq"' });
    expect(row('tenant_a.ticket')[0]).toMatchObject({ sequence: 'tenant_a.ticket_id_seq', max_id: '5' });
    expect(row('tenant_b.ticket')[0]).toMatchObject({ sequence: 'tenant_b.ticket_id_seq', max_id: '9' });
    expect(row('public.down')[0]).toMatchObject({ status: 'behind', max_id: '-30' });
    expect(row('public.ahead')[0]).toMatchObject({ status: 'ok', next_value: '51' });
  });

  it('check reads well in a terminal', async () => {
    const result = await cli('check', '-c', config.path);
    expect(result.stdout).toMatch(/^TABLE\s+COLUMN\s+SEQUENCE\s+KIND\s+NEXT\s+MAX\s+STATUS$/m);
    expect(result.stdout).toMatch(/^public\.plain\s+id\s+public\.plain_id_seq\s+serial\s+1\s+10\s+BEHIND by 10$/m);
    expect(result.stdout).toContain('sequence-fed columns in');
    expect(result.stdout).toContain('seqwatch fix --all');
  });

  it('fix --dry-run changes nothing and audits what it would do', async () => {
    const before = await values();
    const result = await cli('fix', '--all', '--dry-run', '-c', config.path);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('dry run: nothing changed');
    expect(await values()).toEqual(before);
    expect(
      readAudit(config.audit)
        .filter((r) => r.event === 'planned')
        .map((r) => r.table),
    ).toContain('public.plain');
  });

  it('fix --all moves every sequence that is behind forward, and nothing else', async () => {
    const result = await cli('fix', '--all', '-c', config.path);
    expect(result.code).toBe(0);
    const after = Object.fromEntries((await values()).map((r) => [r.seq, r.v]));
    expect(after).toMatchObject({
      'public.plain_id_seq': '10',
      'public.big_id_seq': '5000000000',
      'public.small_id_seq': '7',
      'public.ident_id_seq': '4',
      'public.loose_seq': '1000',
      'public.shared_seq': '90',
      'public.events_id_seq': '12',
      '"Billing"."Invoice Lines_Line Id_seq"': '8',
      'tenant_a.ticket_id_seq': '5',
      'tenant_b.ticket_id_seq': '9',
      'public.down_seq': '-30',
      'public.ahead_id_seq': '50',
    });
    expect((await db.pool.query('INSERT INTO ident DEFAULT VALUES RETURNING id')).rows[0].id).toBe(5);
    expect(result.stdout).toMatch(/moved forward/);
    expect((await cli('check', '-c', config.path)).code).toBe(0);
  });

  it('fix twice changes nothing the second time', async () => {
    const before = await values();
    const auditBefore = readAudit(config.audit).length;
    const result = await cli('fix', '--all', '-c', config.path);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/: 0 moved forward/);
    expect(await values()).toEqual(before);
    const records = readAudit(config.audit).slice(auditBefore);
    expect(records.every((r) => r.event === 'in_sync')).toBe(true);
    expect(records.length).toBe(before.length + 1); // shared_seq: once per table that uses it
  });

  it('fix --table takes schema-qualified and quoted names; an unknown table is an error', async () => {
    await db.pool.query(`INSERT INTO tenant_b.ticket (id) VALUES (20); INSERT INTO "Billing"."Invoice Lines" ("Line Id") VALUES (30)`);
    const result = await cli('fix', '--table', 'tenant_b.ticket', '--table', '"Billing"."Invoice Lines"', '-c', config.path);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/2 sequence-fed columns .*: 2 moved forward/);
    expect(await cli('fix', '--table', 'nope', '-c', config.path)).toMatchObject({ code: 1, stderr: expect.stringContaining('nope') });
    expect((await cli('fix', '-c', config.path)).code).toBe(64);
  });

  it('check exits 2 when a sequence is exhausted, and fix leaves it to a person', async () => {
    await db.pool.query('INSERT INTO small (id) VALUES (32767)');
    const check = await cli('check', '-c', config.path, '--json');
    expect(check.code).toBe(2);
    expect((JSON.parse(check.stdout) as CheckJson).sequences.find((s) => s.table === 'public.small')?.status).toBe('exhausted');
    const fix = await cli('fix', '--table', 'small', '-c', config.path);
    expect(fix.code).toBe(2);
    expect(fix.stdout).toContain('EXHAUSTED');
    expect(readAudit(config.audit).at(-1)).toMatchObject({ event: 'alert', reason: 'sequence_exhausted', table: 'public.small' });
  });

  it('check exits 3 when it cannot reach the database', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-cli-'));
    const path = join(dir, 'c.yaml');
    writeFileSync(path, stringify({ database: { url: 'postgresql://nobody@127.0.0.1:1/none' }, sources: [{ path: '/x' }], audit: { path: join(dir, 'a') } }));
    expect((await cli('check', '-c', path)).code).toBe(3);
  });
});

describe('seqwatch fix on the GOTRS schema after an import', () => {
  it('fixes all 91 sequences, SMALLSERIAL ones included', async () => {
    const db = await createTestDatabase('gfix');
    try {
      await loadGotrsSchema(db.pool);
      const imported = await importIntoEveryTable(db.pool, 40);
      expect(imported).toHaveLength(91);
      const { path } = configFor(db);
      const before = await cli('check', '-c', path, '--json');
      expect((JSON.parse(before.stdout) as CheckJson).sequences.filter((s) => s.status === 'behind')).toHaveLength(91);
      const fix = await cli('fix', '--all', '-c', path);
      expect(fix.code).toBe(0);
      expect(fix.stdout).toContain('91 sequence-fed columns');
      expect(fix.stdout).toMatch(/: 91 moved forward, 0 already in sync, 0 need a person, 0 failed/);
      expect((await cli('check', '-c', path)).code).toBe(0);
    } finally {
      await db.drop();
    }
  });
});

describe('seqwatch check and fix over many batches, two at once', () => {
  // 130 tables: three batches (checkSequences' BATCH, 50), sent two at a time (context's CONNECTIONS).
  const TABLES = 130;
  const name = (i: number) => `t${String(i).padStart(3, '0')}`;
  let db: TestDatabase;
  let config: { path: string; audit: string };
  const role = `seqwatch_${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    db = await createTestDatabase('batches');
    const tables = Array.from({ length: TABLES }, (_, i) => name(i + 1));
    await db.pool.query(`
      ${tables.map((t, i) => `CREATE TABLE ${t} (id serial PRIMARY KEY); INSERT INTO ${t} (id) SELECT generate_series(1, ${i + 2});`).join('\n')}
      -- t120 draws from t010's sequence: in the third batch, the sequence in the first.
      ALTER TABLE t120 ALTER COLUMN id SET DEFAULT nextval('t010_id_seq'); INSERT INTO t120 (id) VALUES (500);
      CREATE ROLE ${role} LOGIN PASSWORD 'pw';
      GRANT USAGE ON SCHEMA public TO ${role};
      GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role};
      GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${role};
      -- One table it may not read, in the second batch.
      REVOKE SELECT ON t077 FROM ${role};`);
    const url = new URL(db.url);
    url.username = role;
    url.password = 'pw';
    config = configFor({ ...db, url: url.toString() });
  });
  afterAll(async () => {
    await db?.drop();
    const { url } = inject('pg');
    await sqlOn(url, `DROP ROLE IF EXISTS ${role}`);
  });

  it('check: every table in order, the one it may not read named, the rest behind', async () => {
    const result = await cli('check', '-c', config.path, '--json');
    expect(result.code).toBe(3);
    const report = JSON.parse(result.stdout) as CheckJson & { sequences: Array<{ error: string | null }> };
    expect(report.sequences.map((s) => s.table)).toEqual(Array.from({ length: TABLES }, (_, i) => `public.${name(i + 1)}`));
    expect(report.sequences.filter((s) => s.status !== 'behind')).toEqual([
      expect.objectContaining({ table: 'public.t077', status: 'error', error: 'permission denied for table t077' }),
    ]);
    expect(report.sequences.find((s) => s.table === 'public.t120')).toMatchObject({ sequence: 'public.t010_id_seq', max_id: '500' });
  });

  it('fix --all: every other sequence moved once, in order, the shared one by the first of its tables', async () => {
    const fix = await cli('fix', '--all', '-c', config.path);
    expect(fix.code).toBe(1);
    expect(fix.stdout).toMatch(/: 128 moved forward, 1 already in sync, 0 need a person, 1 failed/);
    const records = readAudit(config.audit).filter((r) => r.event !== 'detected');
    expect(records.map((r) => r.table)).toEqual(Array.from({ length: TABLES }, (_, i) => `public.${name(i + 1)}`));
    expect(records.find((r) => r.table === 'public.t077')).toMatchObject({ event: 'failed', error: 'permission denied for table t077' });
    // The first batch moved t010's sequence past MAX over both its tables; the third found it in sync.
    expect(records.find((r) => r.table === 'public.t010')).toMatchObject({ event: 'remediated', after: '500' });
    expect(records.find((r) => r.table === 'public.t120')?.event).not.toBe('remediated');
    const { rows } = await db.pool.query<{ seq: string; v: string | null }>(`SELECT sequencename AS seq, last_value::text AS v FROM pg_sequences ORDER BY 1`);
    expect(rows.filter((r) => r.v === null).map((r) => r.seq)).toEqual(['t077_id_seq', 't120_id_seq']);
  });

  it('a role allowed one connection: check runs on that one (the second refused, nothing lost)', async () => {
    await db.pool.query(`ALTER ROLE ${role} CONNECTION LIMIT 1`);
    const result = await cli('check', '-c', config.path, '--json');
    const report = JSON.parse(result.stdout) as CheckJson & { sequences: Array<{ error: string | null }> };
    expect(report.sequences.map((s) => s.table)).toEqual(Array.from({ length: TABLES }, (_, i) => `public.${name(i + 1)}`));
    expect(report.sequences.filter((s) => s.status === 'error')).toEqual([
      expect.objectContaining({ table: 'public.t077', status: 'error', error: 'permission denied for table t077' }),
    ]);
    expect(result.code).toBe(3);
  });
});
