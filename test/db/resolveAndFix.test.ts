import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guardedSetval } from '../../src/db/guardedSetval.js';
import { resolveIndex, IndexResolver, type SequenceTarget } from '../../src/db/resolveIndex.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { EVERY_KIND_OF_SEQUENCE } from '../helpers/everyKind.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('db');
  await db.pool.query(EVERY_KIND_OF_SEQUENCE);
});

afterAll(async () => {
  await db?.drop();
});

async function only(name: string): Promise<SequenceTarget> {
  const { targets } = await resolveIndex(db.pool, name);
  expect(targets).toHaveLength(1);
  return targets[0]!;
}

const lastValue = async (seq: string) =>
  (await db.pool.query<{ v: string | null }>('SELECT pg_sequence_last_value($1::regclass)::text AS v', [seq])).rows[0]!.v;

describe('resolveIndex', () => {
  it.each([
    ['plain_pkey', 'public.plain', 'id', 'public.plain_id_seq'],
    ['big_pkey', 'public.big', 'id', 'public.big_id_seq'],
    ['small_pkey', 'public.small', 'id', 'public.small_id_seq'],
    ['ident_pkey', 'public.ident', 'id', 'public.ident_id_seq'],
    ['loose_pkey', 'public.loose', 'id', 'public.loose_seq'],
    ['shared_b_pkey', 'public.shared_b', 'id', 'public.shared_seq'],
    ['events_2026_pkey', 'public.events', 'id', 'public.events_id_seq'],
    ['Invoice Lines_pkey', '"Billing"."Invoice Lines"', 'Line Id', '"Billing"."Invoice Lines_Line Id_seq"'],
  ])('%s -> %s.%s fed by %s', async (index, table, column, sequence) => {
    expect(await only(index)).toMatchObject({ table, column, sequence });
  });

  it('finds a name in every schema that has it', async () => {
    const { targets } = await resolveIndex(db.pool, 'ticket_pkey');
    expect(targets.map((t) => t.sequence)).toEqual(['tenant_a.ticket_id_seq', 'tenant_b.ticket_id_seq']);
  });

  it('reports a unique index that no sequence feeds', async () => {
    expect(await resolveIndex(db.pool, 'plain_login_key')).toEqual({
      targets: [],
      nonSequence: [{ table: 'public.plain', index: 'public.plain_login_key', columns: ['login'] }],
    });
  });

  it('treats hostile names as names: nothing found, nothing run', async () => {
    for (const name of [`plain_pkey'; DROP TABLE plain; --`, '"plain_pkey"', 'plain_pkey\u0000', 'x'.repeat(64), '%I', '$1']) {
      expect(await resolveIndex(db.pool, name)).toEqual({ targets: [], nonSequence: [] });
    }
    expect((await db.pool.query('SELECT count(*) FROM plain')).rows).toHaveLength(1);
  });

  it('caches per name, and shares a lookup in flight', async () => {
    let queries = 0;
    const counting = { query: (text: string, values?: unknown[]) => (queries++, db.pool.query(text, values)) };
    const resolver = new IndexResolver(counting);
    await Promise.all([resolver.resolve('plain_pkey'), resolver.resolve('plain_pkey')]);
    await resolver.resolve('plain_pkey');
    expect(queries).toBe(1);
  });
});

describe('guardedSetval', () => {
  it('moves a sequence that is behind to MAX, and the next value is free', async () => {
    await db.pool.query('INSERT INTO plain (id) SELECT generate_series(1, 50)');
    const state = await guardedSetval(db.pool, await only('plain_pkey'), true);
    expect(state).toMatchObject({ verdict: 'remediated', before: '1', maxId: '50', after: '50' });
    expect((await db.pool.query('INSERT INTO plain DEFAULT VALUES RETURNING id')).rows[0].id).toBe(51);
  });

  it('is idempotent: a second run finds it in sync and changes nothing', async () => {
    const state = await guardedSetval(db.pool, await only('plain_pkey'), true);
    expect(state).toMatchObject({ verdict: 'in_sync', before: '51', maxId: '51' });
    expect(await lastValue('plain_id_seq')).toBe('51');
  });

  it('plans without acting in a dry run', async () => {
    await db.pool.query('INSERT INTO big (id) VALUES (9000000000)');
    const state = await guardedSetval(db.pool, await only('big_pkey'), false);
    expect(state).toMatchObject({ verdict: 'planned', before: '1', after: '9000000000', maxId: '9000000000' });
    expect(await lastValue('big_id_seq')).toBeNull();
  });

  it('never moves a sequence that is ahead backwards', async () => {
    await db.pool.query(`INSERT INTO loose (id) VALUES (1), (2); SELECT setval('loose_seq', 1000)`);
    expect(await guardedSetval(db.pool, await only('loose_pkey'), true)).toMatchObject({ verdict: 'in_sync', before: '1000', maxId: '2' });
    expect(await lastValue('loose_seq')).toBe('1000');
  });

  it('sees a sequence advanced by another session after an earlier read, and leaves it alone', async () => {
    await db.pool.query('INSERT INTO ident (id) SELECT generate_series(1, 10)');
    const target = await only('ident_pkey');
    expect((await guardedSetval(db.pool, target, false)).verdict).toBe('planned');
    await db.pool.query(`SELECT setval('ident_id_seq', 500)`);
    expect(await guardedSetval(db.pool, target, true)).toMatchObject({ verdict: 'in_sync', before: '500' });
    expect(await lastValue('ident_id_seq')).toBe('500');
  });

  it('heals a sequence shared by two tables against the table that named it', async () => {
    await db.pool.query('INSERT INTO shared_b (id) VALUES (77)');
    expect(await guardedSetval(db.pool, await only('shared_b_pkey'), true)).toMatchObject({ verdict: 'remediated', after: '77' });
  });

  it('uses MAX over every partition', async () => {
    await db.pool.query(`INSERT INTO events (id, at) VALUES (5, '2026-03-01'), (12, '2026-04-01')`);
    expect(await guardedSetval(db.pool, await only('events_2026_pkey'), true)).toMatchObject({ verdict: 'remediated', after: '12' });
  });

  it('handles quoted mixed-case names', async () => {
    await db.pool.query(`INSERT INTO "Billing"."Invoice Lines" ("Line Id") VALUES (3)`);
    expect(await guardedSetval(db.pool, await only('Invoice Lines_pkey'), true)).toMatchObject({ verdict: 'remediated', after: '3' });
  });

  it('alerts instead of fixing when the keys reach the sequence limit (SMALLSERIAL)', async () => {
    await db.pool.query('INSERT INTO small (id) VALUES (1), (32767)');
    const state = await guardedSetval(db.pool, await only('small_pkey'), true);
    expect(state).toMatchObject({ verdict: 'exhausted', maxId: '32767', limit: '32767' });
    expect(await lastValue('small_id_seq')).toBeNull();
  });

  it('moves a descending sequence down to MIN, never up', async () => {
    await db.pool.query('INSERT INTO down (id) VALUES (-1), (-2), (-40)');
    const state = await guardedSetval(db.pool, await only('down_pkey'), true);
    expect(state).toMatchObject({ verdict: 'remediated', before: '-1', maxId: '-40', after: '-40' });
    expect((await db.pool.query('INSERT INTO down DEFAULT VALUES RETURNING id')).rows[0].id).toBe(-41);
    expect((await guardedSetval(db.pool, await only('down_pkey'), true)).verdict).toBe('in_sync');
  });

  it('finds nothing to do on an empty table', async () => {
    expect(await guardedSetval(db.pool, await only('empty_pkey'), true)).toMatchObject({ verdict: 'in_sync', maxId: null });
  });

  it('never moves a sequence backwards while a concurrent writer advances it', async () => {
    await db.pool.query('CREATE TABLE race (id bigserial PRIMARY KEY)');
    await db.pool.query('INSERT INTO race (id) SELECT generate_series(1, 2000)');
    const target = await only('race_pkey');
    const writer = new pg.Client({ connectionString: db.url });
    const sampler = new pg.Client({ connectionString: db.url });
    await Promise.all([writer.connect(), sampler.connect()]);
    let running = true;
    const handedOut: bigint[] = [];
    const samples: bigint[] = [];
    const writing = (async () => {
      while (running) handedOut.push(BigInt((await writer.query(`SELECT nextval('race_id_seq')::text AS v`)).rows[0].v));
    })();
    const sampling = (async () => {
      while (running) {
        const v = (await sampler.query(`SELECT last_value::text AS v FROM race_id_seq`)).rows[0].v;
        samples.push(BigInt(v));
      }
    })();
    const verdicts: string[] = [];
    for (let i = 0; i < 30; i++) {
      // Each round leaves the sequence behind again, as a new import would.
      await db.pool.query('INSERT INTO race (id) SELECT max(id) + 1000 FROM race');
      verdicts.push((await guardedSetval(db.pool, target, true)).verdict);
    }
    running = false;
    await Promise.all([writing, sampling]);
    await Promise.all([writer.end(), sampler.end()]);
    expect(verdicts.filter((v) => v === 'remediated').length).toBeGreaterThan(0);
    expect(handedOut.length).toBeGreaterThan(10);
    for (let i = 1; i < handedOut.length; i++) expect(handedOut[i]! > handedOut[i - 1]!).toBe(true);
    for (let i = 1; i < samples.length; i++) expect(samples[i]! >= samples[i - 1]!).toBe(true);
  });
});

describe('catalog lookups under a storm of distinct names', () => {
  it('are batched: 50,000 names cost a few dozen queries, and the real name among them is found', async () => {
    let queries = 0;
    const counting = { query: (text: string, values?: unknown[]) => (queries++, db.pool.query(text, values)) };
    const resolver = new IndexResolver(counting, { maxEntries: 5_000 });
    const names = Array.from({ length: 50_000 }, (_, i) => `forged_${i}_pkey`);
    names.splice(25_000, 0, 'plain_pkey');
    const answers = await Promise.all(names.map((name) => resolver.resolve(name)));
    expect(answers.filter((a) => a.targets.length > 0).map((a) => a.targets[0]!.table)).toEqual(['public.plain']);
    expect(answers.filter((a) => a.targets.length === 0 && a.nonSequence.length === 0)).toHaveLength(50_000);
    // The first name goes alone, the rest in batches of 1,000.
    expect(queries).toBeLessThanOrEqual(2 + Math.ceil(50_001 / 1_000));
    expect(resolver.queries).toBe(queries);
    // The negative cache keeps the newest names (bounded), and answers them without a query.
    await resolver.resolve('forged_49999_pkey');
    expect(queries).toBe(resolver.queries);
  });

  it('remember an unknown name for unknownTtlMs only: an index created after its first error is found once that has passed', async () => {
    const resolver = new IndexResolver(db.pool, { unknownTtlMs: 300 });
    expect((await resolver.resolve('late_pkey')).targets).toHaveLength(0);
    await db.pool.query('CREATE TABLE late (id serial PRIMARY KEY)');
    const queries = resolver.queries;
    expect((await resolver.resolve('late_pkey')).targets).toHaveLength(0); // from the negative cache
    expect(resolver.queries).toBe(queries);
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect((await resolver.resolve('late_pkey')).targets.map((t) => t.table)).toEqual(['public.late']);
    expect(resolver.queries).toBe(queries + 1);
  });

  it('go to the catalog at the bounded rate', async () => {
    let queries = 0;
    const counting = { query: (text: string, values?: unknown[]) => (queries++, db.pool.query(text, values)) };
    const resolver = new IndexResolver(counting, { queriesPerSecond: 20, queryBurst: 2, batchSize: 10 });
    const started = Date.now();
    await Promise.all(Array.from({ length: 100 }, (_, i) => resolver.resolve(`forged_${i}_key`)));
    const elapsed = (Date.now() - started) / 1000;
    expect(queries).toBeGreaterThanOrEqual(10);
    // 10 or 11 queries at 20/s after a burst of 2 take at least 8 / 20 s.
    expect(elapsed).toBeGreaterThanOrEqual(8 / 20 - 0.05);
  });
});
