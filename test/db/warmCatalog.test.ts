import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IndexResolver, resolveIndex } from '../../src/db/resolveIndex.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { EVERY_KIND_OF_SEQUENCE } from '../helpers/everyKind.js';

/*
 * The first duplicate key error on a table used to wait for the catalog (10-100 ms: the trust rule
 * reads all of pg_depend). Warmed ahead, that lookup is answered from the cache, with exactly what
 * the lookup itself would have said.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('warm');
  await db.pool.query(EVERY_KIND_OF_SEQUENCE);
  await db.pool.query('CREATE TABLE users (id serial PRIMARY KEY, login text UNIQUE)');
});

afterAll(async () => {
  await db?.drop();
});

describe('IndexResolver.warm', () => {
  it('looks every unique index up ahead: the first error asks the catalog nothing and gets what a lookup says', async () => {
    const resolver = new IndexResolver(db.pool);
    const warmed = await resolver.warm();
    expect(warmed).toBeGreaterThanOrEqual(10);
    const queries = resolver.queries;
    for (const name of ['plain_pkey', 'shared_b_pkey', 'events_2026_pkey', 'Invoice Lines_pkey', 'users_login_key']) {
      expect(await resolver.resolve(name)).toEqual(await resolveIndex(db.pool, name));
    }
    expect(resolver.queries).toBe(queries);
  });

  it('costs one query for the names and one per batch of them, whatever the number of indexes', async () => {
    const resolver = new IndexResolver(db.pool, { batchSize: 4 });
    const names = await resolver.warm();
    expect(resolver.queries).toBe(1 + Math.ceil(names / 4));
  });

  it('leaves names it does not know to the lookup (an index created after the warm-up is still found)', async () => {
    const resolver = new IndexResolver(db.pool);
    await resolver.warm();
    await db.pool.query('CREATE TABLE after_warm (id bigserial PRIMARY KEY)');
    const queries = resolver.queries;
    expect((await resolver.resolve('after_warm_pkey')).targets.map((t) => t.table)).toEqual(['public.after_warm']);
    expect(resolver.queries).toBe(queries + 1);
  });
});
