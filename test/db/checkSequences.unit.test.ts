import { describe, expect, it } from 'vitest';
import { checkSequences } from '../../src/db/checkSequences.js';
import type { Queryable } from '../../src/db/Queryable.js';
import type { SequenceTarget } from '../../src/db/resolveIndex.js';

const target = (i: number): SequenceTarget => ({
  tableOid: 1000 + i,
  table: `public.t${i}`,
  schema: 'public',
  tableName: `t${i}`,
  column: 'id',
  columnQuoted: 'id',
  sequenceOid: 2000 + i,
  sequence: `public.t${i}_id_seq`,
});

/**
 * A stand-in for the server that answers the guarded statement with "in sync" for every target it
 * names, and refuses any statement that reads the tables in `unreadable` (as a missing SELECT grant does).
 */
function server(unreadable: string[]) {
  const statements: number[] = [];
  const db: Queryable = {
    query: async (text: string, values?: unknown[]) => {
      const oids = values![1] as number[];
      statements.push(oids.length);
      const denied = unreadable.find((table) => text.includes(`FROM ${table})`));
      if (denied) throw new Error(`permission denied for table ${denied.split('.')[1]}`);
      const rows = oids.map((_, position) => ({
        position,
        same_sequence: true,
        before: '1',
        next_before: '2',
        max_id: '1',
        increment: '1',
        limit: '100',
        seq_type: 'bigint',
        behind: false,
        exhausted: false,
        held: null,
        after: null,
      }));
      return { rows: rows as never[] };
    },
  };
  return { db, statements };
}

describe('checkSequences (no server)', () => {
  it('one unreadable table: its batch is retried one by one, every other target is checked, results in order', async () => {
    const { db, statements } = server(['public.t300']);
    const targets = Array.from({ length: 600 }, (_, i) => target(i));
    const results = await checkSequences(db, targets, { fix: false });
    expect(results.map((r) => r.target)).toEqual(targets);
    expect(results.filter((r) => r.error)).toEqual([{ target: targets[300], error: 'permission denied for table t300' }]);
    expect(results.filter((r) => r.state?.verdict === 'in_sync')).toHaveLength(599);
    // 250, then 250 failing and 250 one by one, then 100.
    expect(statements).toEqual([250, 250, ...Array(250).fill(1), 100]);
  });

  it('every statement goes through `run`; once the signal is aborted nothing more is sent or reported', async () => {
    const { db, statements } = server(['public.t1']);
    const stopped = new AbortController();
    let runs = 0;
    const results = await checkSequences(db, [0, 1, 2, 3].map(target), {
      fix: false,
      batch: 2,
      run: async (statement) => {
        runs++;
        try {
          return await statement();
        } catch (error) {
          stopped.abort();
          throw error;
        }
      },
      signal: stopped.signal,
    });
    expect(runs).toBe(1);
    expect(statements).toEqual([2]);
    expect(results).toEqual([]);
  });
});
