import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guardedSetval, guardedSetvalBatch } from '../../src/db/guardedSetval.js';
import { listSequenceColumns, listRefusedColumns } from '../../src/db/listSequenceColumns.js';
import { resolveIndex, type SequenceTarget } from '../../src/db/resolveIndex.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/*
 * The catalog side of "do no harm": which columns count as fed by a sequence (the trust rule),
 * where a sequence really stands after ALTER SEQUENCE ... RESTART, expression defaults, a sequence
 * shared by several tables, the jump guard. Real roles on the suite's server (names made unique:
 * roles are cluster-wide and other test files run beside this one).
 */
let db: TestDatabase;
const suffix = randomBytes(3).toString('hex');
const mallory = `mallory_${suffix}`;
const app = `app_${suffix}`;
const friend = `friend_${suffix}`;
let asMallory: pg.Client;

const seq = async (name: string) => (await db.pool.query<{ v: string }>(`SELECT last_value::text || ':' || is_called AS v FROM ${name}`)).rows[0]!.v;

async function only(index: string): Promise<SequenceTarget> {
  const { targets } = await resolveIndex(db.pool, index);
  expect(targets).toHaveLength(1);
  return targets[0]!;
}

beforeAll(async () => {
  db = await createTestDatabase('trust');
  await db.pool.query(`
    CREATE ROLE ${mallory} LOGIN; CREATE ROLE ${app} LOGIN; CREATE ROLE ${friend} LOGIN;
    GRANT CREATE ON DATABASE ${db.name} TO ${mallory}, ${friend};
    CREATE TABLE ticket (id serial PRIMARY KEY);
    ALTER TABLE ticket OWNER TO ${app};
    INSERT INTO ticket (id) SELECT generate_series(1, 100); SELECT setval('ticket_id_seq', 100);
    GRANT USAGE ON SEQUENCE ticket_id_seq TO ${friend};`);
  const url = new URL(db.url);
  url.username = mallory;
  asMallory = new pg.Client({ connectionString: url.toString() });
  await asMallory.connect();
  await asMallory.query(`CREATE SCHEMA m;
    CREATE TABLE m.t (id integer DEFAULT nextval('public.ticket_id_seq') PRIMARY KEY);
    GRANT USAGE ON SCHEMA m TO PUBLIC; GRANT SELECT ON m.t TO PUBLIC;
    INSERT INTO m.t VALUES (2147483646);`);
  url.username = friend;
  const asFriend = new pg.Client({ connectionString: url.toString() });
  await asFriend.connect();
  // A role the sequence's owner let use it (GRANT USAGE): its table is trusted.
  await asFriend.query(`CREATE SCHEMA f; CREATE TABLE f.t (id integer DEFAULT nextval('public.ticket_id_seq') PRIMARY KEY); INSERT INTO f.t VALUES (150);`);
  await asFriend.end();
});

afterAll(async () => {
  await asMallory?.end();
  await db?.drop();
  const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/]*$/, '/postgres') });
  await admin.connect();
  await admin.query(`DROP ROLE IF EXISTS ${mallory}, ${app}, ${friend}`).catch(() => {});
  await admin.end();
});

describe('the trust rule', () => {
  it('a table whose owner may not use the sequence does not feed it: refused, named, never a target', async () => {
    const resolution = await resolveIndex(db.pool, 't_pkey');
    expect(resolution.targets.map((t) => t.table)).toEqual(['f.t']);
    expect(resolution.refused).toEqual([expect.objectContaining({ table: 'm.t', column: 'id', sequence: 'public.ticket_id_seq', why: 'untrusted' })]);
    const listed = await listSequenceColumns(db.pool);
    expect(listed.map((c) => c.table)).not.toContain('m.t');
    expect((await listRefusedColumns(db.pool)).map((c) => [c.table, c.why])).toContainEqual(['m.t', 'untrusted']);
  });

  it('a shared sequence is moved past MAX over every trusted column it feeds, never past an untrusted one', async () => {
    const ticket = await only('ticket_pkey');
    expect(ticket.peers?.map((p) => p.table)).toEqual(['f.t']);
    const state = await guardedSetval(db.pool, ticket, true);
    expect(state).toMatchObject({ verdict: 'remediated', before: '100', after: '150', maxId: '150' });
    expect(await seq('ticket_id_seq')).toBe('150:true');
  });

  it('expression defaults are not sequence-fed (sharded ids: nextval() * 100 + 7)', async () => {
    await db.pool.query(`CREATE SEQUENCE invoice_n_seq;
      CREATE TABLE invoice (n bigint PRIMARY KEY DEFAULT nextval('invoice_n_seq') * 100 + 7);
      INSERT INTO invoice DEFAULT VALUES; INSERT INTO invoice DEFAULT VALUES;`);
    const resolution = await resolveIndex(db.pool, 'invoice_pkey');
    expect(resolution.targets).toEqual([]);
    expect(resolution.refused).toEqual([expect.objectContaining({ table: 'public.invoice', why: 'expression' })]);
    expect((await listSequenceColumns(db.pool)).map((c) => c.table)).not.toContain('public.invoice');
    expect(await seq('invoice_n_seq')).toBe('2:true');
  });

  it('serial, identity and a plain DEFAULT nextval owned by the same role stay trusted', async () => {
    await db.pool.query(`CREATE TABLE s1 (id bigserial PRIMARY KEY);
      CREATE TABLE s2 (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY);
      CREATE SEQUENCE s3_seq; CREATE TABLE s3 (id int PRIMARY KEY DEFAULT nextval('s3_seq'));
      CREATE SCHEMA "Odd ""Schema"""; CREATE SEQUENCE "Odd ""Schema"""."Seq 'q'"; CREATE TABLE "Odd ""Schema"""."T" (id int PRIMARY KEY DEFAULT nextval('"Odd ""Schema"""."Seq ''q''"'));`);
    expect((await only('s1_pkey')).sequence).toBe('public.s1_id_seq');
    expect((await only('s2_pkey')).sequence).toBe('public.s2_id_seq');
    expect((await only('s3_pkey')).sequence).toBe('public.s3_seq');
    expect((await only('T_pkey')).sequence).toBe(`"Odd ""Schema"""."Seq 'q'"`);
    const kinds = Object.fromEntries((await listSequenceColumns(db.pool)).map((c) => [c.table, c.kind]));
    expect(kinds).toMatchObject({ 'public.s1': 'serial', 'public.s2': 'identity', 'public.s3': 'default', '"Odd ""Schema"""."T"': 'default' });
  });
});

describe('where a sequence stands, read from the sequence itself', () => {
  it('after ALTER SEQUENCE ... RESTART WITH 5000 on ids 1..3000: in sync, never moved back to 3000', async () => {
    await db.pool.query(`CREATE TABLE orders (id serial PRIMARY KEY); INSERT INTO orders (id) SELECT generate_series(1, 3000);
      ALTER SEQUENCE orders_id_seq RESTART WITH 5000;`);
    const state = await guardedSetval(db.pool, await only('orders_pkey'), true);
    expect(state).toMatchObject({ verdict: 'in_sync', nextBefore: '5000', maxId: '3000' });
    expect(await seq('orders_id_seq')).toBe('5000:false');
    expect((await db.pool.query('INSERT INTO orders DEFAULT VALUES RETURNING id')).rows[0].id).toBe(5000);
  });

  it('after setval(s, n, false): the next value is n itself', async () => {
    await db.pool.query(`CREATE TABLE parcel (id serial PRIMARY KEY); INSERT INTO parcel (id) SELECT generate_series(1, 40);
      SELECT setval('parcel_id_seq', 41, false);`);
    expect(await guardedSetval(db.pool, await only('parcel_pkey'), true)).toMatchObject({ verdict: 'in_sync', nextBefore: '41' });
    await db.pool.query(`SELECT setval('parcel_id_seq', 40, false)`);
    expect(await guardedSetval(db.pool, await only('parcel_pkey'), true)).toMatchObject({ verdict: 'remediated', nextBefore: '40', after: '40' });
    expect(await seq('parcel_id_seq')).toBe('40:true');
  });

  it('after TRUNCATE ... RESTART IDENTITY: the start value again, and a new import behind it healed', async () => {
    await db.pool.query(`CREATE SEQUENCE late_seq START 1000; CREATE TABLE late (id int PRIMARY KEY DEFAULT nextval('late_seq'));
      ALTER SEQUENCE late_seq OWNED BY late.id;
      INSERT INTO late DEFAULT VALUES; INSERT INTO late DEFAULT VALUES;
      TRUNCATE late RESTART IDENTITY;`);
    expect(await guardedSetval(db.pool, await only('late_pkey'), true)).toMatchObject({ verdict: 'in_sync', nextBefore: '1000', maxId: null });
    await db.pool.query('INSERT INTO late (id) SELECT generate_series(1000, 1009)');
    expect(await guardedSetval(db.pool, await only('late_pkey'), true)).toMatchObject({ verdict: 'remediated', after: '1009' });
  });
});

describe('the jump guard', () => {
  it('a fix further than max_jump, or into the last tenth of the range, is held for a person', async () => {
    await db.pool.query(`CREATE TABLE wide (id bigserial PRIMARY KEY); INSERT INTO wide (id) VALUES (1), (5000000);
      CREATE TABLE narrow (id serial PRIMARY KEY); INSERT INTO narrow (id) VALUES (2000000000);`);
    const guard = { maxJump: 1_000_000, nearLimitPercent: 90 };
    const [wide, narrow] = await guardedSetvalBatch(db.pool, [await only('wide_pkey'), await only('narrow_pkey')], true, guard);
    expect(wide).toMatchObject({ verdict: 'held', nextBefore: '1', maxId: '5000000', held: 'max_jump' });
    expect(narrow).toMatchObject({ verdict: 'held', maxId: '2000000000', held: 'near_limit' });
    expect(await seq('wide_id_seq')).toBe('1:false');
    expect(await seq('narrow_id_seq')).toBe('1:false');
    // Within the bound: fixed.
    expect(await guardedSetval(db.pool, await only('wide_pkey'), true, { maxJump: 10_000_000, nearLimitPercent: 90 })).toMatchObject({
      verdict: 'remediated',
      after: '5000000',
    });
  });
});

describe('a key no index leads with', () => {
  it('is marked: MAX over it is a full scan', async () => {
    await db.pool.query(`CREATE TABLE pair (tenant int, id serial, PRIMARY KEY (tenant, id));`);
    expect((await only('pair_pkey')).indexed).toBe(false);
    expect((await only('ticket_pkey')).indexed).toBe(true);
  });
});
