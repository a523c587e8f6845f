import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../src/db/Database.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

// pg-pool takes its own 'error' listener off a new connection before `verify` (where the rehearsal
// runs) and the caller puts one on only once the connection is handed out: a termination arriving
// in between was an unhandled 'error' event, which ends the process (the faults test on CI: the
// daemon died with "terminating connection due to administrator command").
describe('a connection terminated during its rehearsal', () => {
  let test: TestDatabase;

  beforeAll(async () => {
    test = await createTestDatabase('rehearsalkill');
  });

  afterAll(async () => {
    await test?.drop();
  });

  it('does not end the process: the connection is dropped and the next one serves', async () => {
    const database = new Database({ url: test.url });
    const first = (await database.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    let killed = 0;
    database.rehearsal = async (client) => {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      // The first rehearsal on a new connection is pg-pool's verify, before it is handed out: once.
      if (killed > 0 || rows[0]!.pid === first) return;
      killed++;
      await test.pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      // The FATAL arrives while no query runs on this connection.
      await new Promise((resolve) => setTimeout(resolve, 200));
    };
    const unhandled: unknown[] = [];
    const onUncaught = (error: unknown) => unhandled.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      // Two connections at once: the second is new, and rehearses in pg-pool's verify.
      await database.rehearse();
      let answer: unknown;
      for (let attempt = 0; attempt < 20 && answer === undefined; attempt++) {
        answer = await database.query<{ one: number }>('SELECT 1 AS one').then(
          (r) => r.rows[0]!.one,
          () => new Promise((resolve) => setTimeout(resolve, 100)).then(() => undefined),
        );
      }
      expect(answer).toBe(1);
      expect(killed).toBe(1);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await database.close();
    }
  }, 30_000);
});
