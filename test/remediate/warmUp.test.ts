import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database, type Statement } from '../../src/db/Database.js';
import { guardedSetvalExclusive, sequenceLockKey } from '../../src/db/guardedSetval.js';
import { resolveIndex, type SequenceTarget } from '../../src/db/resolveIndex.js';
import { readOnlyDatabase, warmHealPath } from '../../src/remediate/warmUp.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/*
 * The warm-up runs the heal path once at start on a record it makes up (warmUp.ts). It must do no
 * harm: on a sequence that is behind (what a real error would heal) it moves nothing, and the
 * records it builds go nowhere; its transactions are READ ONLY, so even a setval asked of them by
 * mistake would fail rather than move the sequence.
 */
let test: TestDatabase;
let database: Database;
let target: SequenceTarget;

const lastValue = async () => (await test.pool.query<{ last_value: string }>('SELECT last_value::text FROM behind_id_seq')).rows[0]!.last_value;

beforeAll(async () => {
  test = await createTestDatabase('warmup');
  await test.pool.query(`CREATE TABLE behind (id bigserial PRIMARY KEY, title text)`);
  await test.pool.query(`INSERT INTO behind (title) SELECT 'row' FROM generate_series(1, 10)`);
  // An import past the sequence: a real error here would be healed to 510.
  await test.pool.query(`INSERT INTO behind (id, title) SELECT g, 'imported' FROM generate_series(11, 510) g`);
  target = (await resolveIndex(test.pool, 'behind_pkey')).targets[0]!;
  database = new Database({ url: test.url });
});

afterAll(async () => {
  await database?.close();
  await test?.drop();
});

describe('warmHealPath', () => {
  it('runs the path on a sequence that is behind and moves nothing: its check is read-only and its records are dropped', async () => {
    const statements: Statement[][] = [];
    const spied = {
      transaction: database.transaction.bind(database),
      pipeline: (sent: Statement[]) => (statements.push(sent), database.pipeline(sent)),
      waitUntilAvailable: database.waitUntilAvailable.bind(database),
    };
    const result = await warmHealPath(spied, target, { database: test.name, dryRun: false, debounceMs: 200, cooldownMs: 5_000 });
    // It saw the sequence behind (a fix would have been planned) and left it where it was.
    expect(result.verdict).toBe('planned');
    expect(await lastValue()).toBe('10');
    // Its records (detected, planned) were built and dropped: it is given no audit log to write to.
    expect(result.dropped).toBeGreaterThanOrEqual(2);
    // One transaction, READ ONLY from its first statement, bounded as a rehearsal is, its guarded statement with act false.
    expect(statements).toHaveLength(1);
    expect(statements[0]![0]!.text).toBe('SET TRANSACTION READ ONLY');
    expect(statements[0]![1]!.text).toContain("set_config('lock_timeout', '100', true)");
    const guarded = statements[0]!.find((s) => s.text.includes('setval'))!;
    expect(guarded.values![0]).toBe(false);
  });

  it('does not wait behind a fix that holds the sequence: its lock wait is bounded (100 ms)', async () => {
    const holder = await test.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1::int8)', [sequenceLockKey(target.sequenceOid)]);
      const started = Date.now();
      const result = await warmHealPath(database, target, { database: test.name, dryRun: false, debounceMs: 200 });
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(result.verdict).toBe('failed');
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await lastValue()).toBe('10');
  });

  it('its transactions are READ ONLY: a setval asked of them fails and the sequence stays behind', async () => {
    // On a connection of its own: the daemon's Database reconnects after a 25006 (see readOnlyDatabase).
    const own = new Database({ url: test.url });
    const error = await guardedSetvalExclusive(readOnlyDatabase(own), target, true).then(
      () => undefined,
      (e: Error) => e,
    );
    await own.close();
    expect(error?.message).toMatch(/read-only transaction/);
    expect(await lastValue()).toBe('10');
    // And a real fix afterwards still heals it: the warm-up left nothing behind (no lock, no cooldown).
    const fixed = await guardedSetvalExclusive(database, target, true);
    expect(fixed).toMatchObject({ verdict: 'remediated', after: '510' });
  });
});
