import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareActivity, readActivity, type ActivitySnapshot } from '../../src/watch/tableActivity.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/** Runs statements on a connection of their own that then ends, so its counters are published. */
async function onItsOwn(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(sql);
  await client.end();
}

/** The next look that shows `until` (the statistics reach shared memory a little after the commit). */
async function lookUntil(db: TestDatabase, until: (s: ActivitySnapshot) => boolean): Promise<ActivitySnapshot> {
  for (let i = 0; i < 100; i++) {
    const snapshot = await readActivity(db.pool);
    if (until(snapshot)) return snapshot;
    await sleep(100);
  }
  throw new Error('the statistics never showed it');
}

describe('the table statistics, as a real server keeps them', () => {
  let db: TestDatabase;
  const oid = async (table: string) => Number((await db.pool.query<{ oid: string }>(`SELECT '${table}'::regclass::oid::int8 AS oid`)).rows[0]!.oid);

  beforeAll(async () => {
    db = await createTestDatabase('activity');
    await db.pool.query(`
      CREATE TABLE ticket (id serial PRIMARY KEY);
      CREATE TABLE article (id bigserial, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
      CREATE TABLE article_2025 PARTITION OF article FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
      CREATE TABLE article_2026 PARTITION OF article FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');`);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('counts each partition under its root, and says the server is a primary', async () => {
    const [article, partition] = [await oid('article'), await oid('article_2025')];
    const before = await readActivity(db.pool);
    expect(before.inRecovery).toBe(false);
    expect(before.tables.get(partition)).toMatchObject({ root: article, writes: 0n });
    await onItsOwn(db.url, `INSERT INTO article (id, at) SELECT g, '2025-05-01' FROM generate_series(1, 40) g`);
    const after = await lookUntil(db, (s) => s.tables.get(partition)!.writes === 40n);
    expect(compareActivity(before, after)).toEqual({ everything: false, roots: new Set([article]) });
  });

  it('a table created since the last look counts as changed', async () => {
    const before = await readActivity(db.pool);
    await db.pool.query('CREATE TABLE newcomer (id serial PRIMARY KEY)');
    const after = await readActivity(db.pool);
    expect(compareActivity(before, after).roots).toEqual(new Set([await oid('newcomer')]));
  });

  it('pg_stat_reset() is a new epoch, and a table reset alone shows counters gone down: everything is checked', async () => {
    const ticket = await oid('ticket');
    await onItsOwn(db.url, 'INSERT INTO ticket SELECT generate_series(1, 10)');
    const counted = await lookUntil(db, (s) => s.tables.get(ticket)!.writes === 10n);
    await db.pool.query('SELECT pg_stat_reset()');
    // PostgreSQL 13/14's collector applies the reset a moment later.
    const reset = await lookUntil(db, (s) => s.tables.get(ticket)!.writes === 0n);
    expect(compareActivity(counted, reset)).toMatchObject({ everything: true, reason: 'new_epoch' });

    await onItsOwn(db.url, 'INSERT INTO ticket SELECT generate_series(11, 20)');
    const again = await lookUntil(db, (s) => s.tables.get(ticket)!.writes === 10n);
    await db.pool.query(`SELECT pg_stat_reset_single_table_counters('ticket'::regclass)`);
    const single = await lookUntil(db, (s) => s.tables.get(ticket)!.writes === 0n);
    // Whether the server also moves the database's stats_reset (new epoch) or not (counters down): everything.
    expect(compareActivity(again, single).everything).toBe(true);
  });

  it('the first look has nothing to compare with', async () => {
    expect(compareActivity(undefined, await readActivity(db.pool))).toMatchObject({ everything: true, reason: 'first_look' });
  });
});
