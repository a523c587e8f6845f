import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../src/db/Database.js';
import { guardedSetvalExclusive, guardedSetvalExclusiveBatch, rehearseGuardedSetval, sequenceLockKey, type Transactional } from '../../src/db/guardedSetval.js';
import { IndexResolver, resolveIndex, type SequenceTarget } from '../../src/db/resolveIndex.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { EVERY_KIND_OF_SEQUENCE } from '../helpers/everyKind.js';

// The fix path as the daemon runs it (src/db/Database.ts pipelined, the guarded statement), on a
// real server: one round trip, the same answers and the same locking as the transaction it replaces.

let test: TestDatabase;
let db: Database;
/** The same database, without `pipeline`: the statements go one by one through transaction(). */
let sequential: Transactional;

beforeAll(async () => {
  test = await createTestDatabase('pipe');
  await test.pool.query(EVERY_KIND_OF_SEQUENCE);
  db = new Database({ url: test.url });
  sequential = { transaction: (fn) => db.transaction(fn) };
});

afterAll(async () => {
  await db?.close();
  await test?.drop();
});

async function only(name: string): Promise<SequenceTarget> {
  const { targets } = await resolveIndex(test.pool, name);
  expect(targets).toHaveLength(1);
  return targets[0]!;
}

const lastValue = async (seq: string) =>
  (await test.pool.query<{ v: string | null }>('SELECT pg_sequence_last_value($1::regclass)::text AS v', [seq])).rows[0]!.v;

/** A session holding the advisory lock of `target`'s sequence in an open transaction, as another fixer would. */
async function holdLock(target: SequenceTarget): Promise<pg.Client> {
  const other = new pg.Client({ connectionString: test.url });
  await other.connect();
  await other.query('BEGIN');
  await other.query('SELECT pg_advisory_xact_lock($1::int8)', [sequenceLockKey(target.sequenceOid)]);
  return other;
}

describe('a pipelined fix (one round trip)', () => {
  it('finds what the transaction statement by statement finds, for every kind of sequence', async () => {
    await test.pool.query(`INSERT INTO big (id) VALUES (9000000000); INSERT INTO small (id) VALUES (32767); INSERT INTO shared_a (id) VALUES (40)`);
    const { rows } = await test.pool.query<{ relname: string }>(
      `SELECT c.relname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE i.indisunique AND c.relname LIKE '%pkey' AND c.relnamespace <> 'pg_catalog'::regnamespace`,
    );
    const targets = (await Promise.all(rows.map(async (r) => (await resolveIndex(test.pool, r.relname)).targets))).flat();
    expect(targets.length).toBeGreaterThan(10);
    const guard = { maxJump: 1_000_000 };
    expect(await guardedSetvalExclusiveBatch(db, targets, false, guard)).toEqual(await guardedSetvalExclusiveBatch(sequential, targets, false, guard));
    for (const target of targets) {
      expect(await guardedSetvalExclusive(db, target, false, guard)).toEqual(await guardedSetvalExclusive(sequential, target, false, guard));
    }
  });

  it('moves a sequence that is behind, and the next value is free', async () => {
    await test.pool.query('INSERT INTO ident (id) SELECT generate_series(1, 20)');
    expect(await guardedSetvalExclusive(db, await only('ident_pkey'), true)).toMatchObject({ verdict: 'remediated', after: '20' });
    expect((await test.pool.query('INSERT INTO ident DEFAULT VALUES RETURNING id')).rows[0].id).toBe(21);
  });

  it('runs the statement only once the advisory lock is held: a fix made meanwhile by the holder is seen, not repeated', async () => {
    await test.pool.query('INSERT INTO loose (id) SELECT generate_series(1, 30)');
    const target = await only('loose_pkey');
    const other = await holdLock(target);
    let settled = false;
    const fix = guardedSetvalExclusive(db, target, true).finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(settled).toBe(false);
    await other.query(`SELECT setval('loose_seq', 30)`);
    await other.query('COMMIT');
    await other.end();
    expect(await fix).toMatchObject({ verdict: 'in_sync', before: '30', maxId: '30' });
  });

  it('runs nothing past a statement that failed: the lock not granted in time, the sequence is not moved, the connection is reusable', async () => {
    await test.pool.query('INSERT INTO tenant_a.ticket (id) SELECT generate_series(1, 15)');
    const target = (await resolveIndex(test.pool, 'ticket_pkey')).targets.find((t) => t.schema === 'tenant_a')!;
    const before = await lastValue(target.sequence);
    const other = await holdLock(target);
    await expect(guardedSetvalExclusiveBatch(db, [target], true, {}, { lockTimeoutMs: 100 })).rejects.toMatchObject({ code: '55P03' });
    expect(await lastValue(target.sequence)).toBe(before);
    await other.query('ROLLBACK');
    await other.end();
    expect(await guardedSetvalExclusive(db, target, true)).toMatchObject({ verdict: 'remediated', after: '15' });
  });
});

describe('the rehearsal of the fix path', () => {
  it('is read-only, and runs on each new connection of the primary before its first query', async () => {
    await test.pool.query(`INSERT INTO "Billing"."Invoice Lines" ("Line Id") SELECT generate_series(1, 40)`);
    const resolver = new IndexResolver(test.pool);
    await resolver.warm();
    const target = resolver.rehearsalTargets[0]!;
    expect(target).toBeDefined();
    const behind = await guardedSetvalExclusive(sequential, await only('Invoice Lines_pkey'), false);
    expect(behind.verdict).toBe('planned');

    const rehearsed = new Database({ url: test.url });
    const runs: number[] = [];
    rehearsed.rehearsal = async (client) => {
      runs.push((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
      return rehearseGuardedSetval(client, await only('Invoice Lines_pkey'));
    };
    try {
      // The first connection is the probe's: not yet the pool in use, not rehearsed.
      const first = (await rehearsed.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      expect(runs).toEqual([]);
      // The connection in use and a second one, opened for it (rehearsed once as new, then twice as asked).
      expect(await rehearsed.rehearse()).toBe(true);
      const second = runs.find((pid) => pid !== first)!;
      expect([...runs].sort()).toEqual([first, first, second, second, second].sort());
      // Three at once: the third takes a new connection, rehearsed before it answers.
      runs.length = 0;
      const pids = await Promise.all([0, 1, 2].map(() => rehearsed.query<{ pid: number }>('SELECT pg_backend_pid() AS pid, pg_sleep(0.1)')));
      const fresh = pids.map((r) => r.rows[0]!.pid).filter((pid) => pid !== first && pid !== second);
      expect(fresh).toHaveLength(1);
      expect(runs).toEqual(fresh);
      expect(await guardedSetvalExclusive(sequential, await only('Invoice Lines_pkey'), false)).toEqual(behind);
    } finally {
      await rehearsed.close();
    }
  });
});
