import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Database } from '../../src/db/Database.js';
import { guardedSetvalExclusive, rehearseGuardedSetval } from '../../src/db/guardedSetval.js';
import { resolveIndex, type SequenceTarget } from '../../src/db/resolveIndex.js';
import { createTestDatabase, sqlOn, type TestDatabase } from '../helpers/db.js';

// A role with CONNECTION LIMIT 1 (a reasonable hardening), or a server at max_connections: the
// server refuses the pool's second connection (SQLSTATE 53300). That is no outage while the first
// works: the Database goes on with the one it has, and a fix runs on it.
describe('a Database for a role allowed one connection', () => {
  let test: TestDatabase;
  let url: string;
  let target: SequenceTarget;
  const role = `seqwatch_${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    test = await createTestDatabase('connlimit');
    await test.pool.query(`
      CREATE TABLE lagging (id serial PRIMARY KEY);
      INSERT INTO lagging (id) SELECT generate_series(1, 25);
      CREATE ROLE ${role} LOGIN PASSWORD 'pw' CONNECTION LIMIT 1;
      GRANT USAGE ON SCHEMA public TO ${role};
      GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role};
      GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${role};`);
    const u = new URL(test.url);
    u.username = role;
    u.password = 'pw';
    url = u.toString();
    const { targets } = await resolveIndex(test.pool, 'lagging_pkey');
    target = targets[0]!;
  });

  afterAll(async () => {
    await test?.drop();
    await sqlOn(inject('pg').url, `DROP ROLE IF EXISTS ${role}`);
  });

  it('rehearses and fixes on its one connection: no outage, the working connection kept, said once', async () => {
    const events: Array<[string, Record<string, unknown>]> = [];
    const database = new Database({ url, onEvent: (event, detail) => events.push([event, detail]) });
    database.rehearsal = (client) => rehearseGuardedSetval(client, target);
    try {
      await database.waitUntilAvailable();
      const pid = async () => (await database.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const before = await pid();

      const rehearsed = await database.rehearse();
      expect({ rehearsed, outage: database.lastError?.message }).toEqual({ rehearsed: true, outage: undefined });
      expect(await guardedSetvalExclusive(database, target, true)).toMatchObject({ verdict: 'remediated', after: '25' });
      expect(database.lastError).toBeUndefined();
      expect(await pid()).toBe(before);
      // Again (the catalog is warmed every 9 minutes): still no outage, said only once.
      expect(await database.rehearse()).toBe(true);
      expect(await pid()).toBe(before);
      expect(events.filter(([e]) => e === 'unavailable')).toEqual([]);
      const limited = events.filter(([e]) => e === 'limited');
      expect(limited).toHaveLength(1);
      expect(limited[0]![1]).toMatchObject({ role, connections: 1 });
      expect((await test.pool.query(`SELECT nextval('lagging_id_seq')::int AS v`)).rows[0].v).toBe(26);
    } finally {
      await database.close();
    }
  });

  it('a refusal of its first and only connection is an outage, as before', async () => {
    // Another session holds the role's one connection.
    const holder = new Database({ url });
    const database = new Database({ url, retryInitialMs: 50 });
    try {
      await holder.query('SELECT 1');
      await expect(database.query('SELECT 1')).rejects.toMatchObject({ name: 'DatabaseUnavailable' });
      expect(database.lastError?.message).toMatch(/too many connections for role/);
      await holder.close();
      await database.waitUntilAvailable();
      expect(database.lastError).toBeUndefined();
    } finally {
      await holder.close();
      await database.close();
    }
  });
});
