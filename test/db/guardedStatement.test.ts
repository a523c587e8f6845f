import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guardedSetvalBatch } from '../../src/db/guardedSetval.js';
import { resolveIndex } from '../../src/db/resolveIndex.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { EVERY_KIND_OF_SEQUENCE } from '../helpers/everyKind.js';

let test: TestDatabase;

beforeAll(async () => {
  test = await createTestDatabase('stmt');
  await test.pool.query(EVERY_KIND_OF_SEQUENCE);
});

afterAll(async () => {
  await test?.drop();
});

describe('the guarded statement for one sequence', () => {
  it('reads the sequence and MAX once (a single-row VALUES inlined made a copy of each for every reference)', async () => {
    const [target] = (await resolveIndex(test.pool, 'plain_pkey')).targets;
    let text = '';
    const capture = { query: async (sql: string) => ((text = sql), { rows: [] }) };
    await guardedSetvalBatch(capture, [target!], false).catch(() => {});
    const { rows } = await test.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${text}`, [false, [target!.sequenceOid], null, null]);
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    // Before MATERIALIZED: 12 scans of plain_id_seq and 5 of plain_pkey, each planned on its own.
    expect(plan.match(/Scan on plain_id_seq/g)).toHaveLength(1);
    expect(plan.match(/using plain_pkey/g)).toHaveLength(1);
  });
});
