import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkSequenceBatches, checkSequences } from '../../src/db/checkSequences.js';
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
function server(unreadable: string[], latencyMs: (oids: number[]) => number = () => 0) {
  const statements: number[] = [];
  /** Each statement as it started and as it finished, by its first sequence oid: 'start 2000', 'end 2000'. */
  const events: string[] = [];
  const load = { now: 0, most: 0 };
  const db: Queryable = {
    query: async (text: string, values?: unknown[]) => {
      if (text.includes('pg_advisory_xact_lock')) return { rows: [] };
      const oids = values![1] as number[];
      statements.push(oids.length);
      events.push(`start ${oids[0]}`);
      load.most = Math.max(load.most, ++load.now);
      await sleep(latencyMs(oids));
      load.now--;
      events.push(`end ${oids[0]}`);
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
  return { db, statements, events, load };
}

describe('checkSequences (no server)', () => {
  it('one unreadable table: its batch is retried one by one, every other target is checked, results in order', async () => {
    const { db, statements } = server(['public.t300']);
    const targets = Array.from({ length: 600 }, (_, i) => target(i));
    const results = await checkSequences(db, targets, { fix: false, batch: 250 });
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

describe('checkSequences with batches in parallel (no server)', () => {
  it("at most `parallel` statements at once; results in the targets' order although later batches answer first", async () => {
    // Each batch answers sooner than the one before it: finished out of order, reported in order.
    const { db, events, load } = server([], (oids) => 40 - Math.floor((oids[0]! - 2000) / 10) * 4);
    const targets = Array.from({ length: 100 }, (_, i) => target(i));
    const reported: number[][] = [];
    for await (const checks of checkSequenceBatches(db, targets, { fix: false, batch: 10, parallel: 3 })) reported.push(checks.map((c) => c.target.tableOid));
    expect(reported.flat()).toEqual(targets.map((t) => t.tableOid));
    expect(reported.every((batch) => batch.length === 10)).toBe(true);
    expect(load.most).toBe(3);
    const finished = events.filter((e) => e.startsWith('end')).map((e) => Number(e.slice(4)));
    expect(finished).not.toEqual([...finished].sort((a, b) => a - b));
  });

  it('a connection that finishes its batch starts the next one without waiting for an earlier, slower batch', async () => {
    // The first batch is slow (a large table's cold catalog, a full scan); the others are quick.
    const { db, events, load } = server([], (oids) => (oids[0] === 2000 ? 80 : 5));
    const targets = Array.from({ length: 40 }, (_, i) => target(i));
    const reported: number[][] = [];
    for await (const checks of checkSequenceBatches(db, targets, { fix: false, batch: 10, parallel: 2 })) reported.push(checks.map((c) => c.target.tableOid));
    expect(reported.flat()).toEqual(targets.map((t) => t.tableOid));
    expect(load.most).toBe(2);
    // The second connection went on with the third and fourth batches while the first was still busy.
    expect(events.indexOf('start 2020')).toBeLessThan(events.indexOf('end 2000'));
    expect(events.indexOf('start 2030')).toBeLessThan(events.indexOf('end 2000'));
  });

  it('a fix keeps to the consumer: no more than `parallel` batches past the one it waits for (moved, then audited)', async () => {
    const { db, events, load } = server([], (oids) => (oids[0] === 2000 ? 80 : 5));
    const targets = Array.from({ length: 40 }, (_, i) => target(i));
    const results = await checkSequences(db, targets, { fix: true, batch: 10, parallel: 2 });
    expect(results.map((r) => r.target)).toEqual(targets);
    expect(load.most).toBe(2);
    expect(events.indexOf('start 2020')).toBeGreaterThan(events.indexOf('end 2000'));
  });

  it('a consumer that stops early: no batch is started after it stopped', async () => {
    const { db, statements } = server([], () => 5);
    const targets = Array.from({ length: 100 }, (_, i) => target(i));
    for await (const checks of checkSequenceBatches(db, targets, { fix: false, batch: 10, parallel: 2 })) {
      expect(checks).toHaveLength(10);
      break;
    }
    const sent = statements.length;
    await sleep(30);
    expect(statements.length).toBe(sent);
    expect(sent).toBeLessThanOrEqual(3);
  });

  it('a failing batch still names its table, one by one, while the others run beside it', async () => {
    const { db, statements, load } = server(['public.t25'], () => 5);
    const targets = Array.from({ length: 60 }, (_, i) => target(i));
    const results = await checkSequences(db, targets, { fix: false, batch: 10, parallel: 2 });
    expect(results.map((r) => r.target)).toEqual(targets);
    expect(results.filter((r) => r.error)).toEqual([{ target: targets[25], error: 'permission denied for table t25' }]);
    expect(results.filter((r) => r.state?.verdict === 'in_sync')).toHaveLength(59);
    // Six batches of ten, the third also one by one.
    expect(statements.filter((n) => n === 10)).toHaveLength(6);
    expect(statements.filter((n) => n === 1)).toHaveLength(10);
    expect(load.most).toBe(2);
  });

  it('a batch that names a sequence of an earlier batch waits for it (a sequence shared by two tables)', async () => {
    const { db, events } = server([], () => 10);
    const targets = Array.from({ length: 30 }, (_, i) => target(i));
    // t25 is fed by t5's sequence (in the first batch): the third batch must not run beside the first.
    targets[25] = { ...targets[25]!, sequenceOid: targets[5]!.sequenceOid };
    const results = await checkSequences(db, targets, { fix: false, batch: 10, parallel: 3 });
    expect(results.map((r) => r.target)).toEqual(targets);
    expect(events.indexOf('start 2020')).toBeGreaterThan(events.indexOf('end 2000'));
    // The second batch shares nothing: it ran beside the first.
    expect(events.slice(0, 2)).toEqual(['start 2000', 'start 2010']);
  });

  it('once the signal is aborted, no batch not yet started is sent, and nothing more is reported', async () => {
    const { db, statements } = server(['public.t0'], () => 5);
    const stopped = new AbortController();
    const run = async <R>(statement: () => Promise<R>) => {
      try {
        return await statement();
      } catch (error) {
        stopped.abort();
        throw error;
      }
    };
    const targets = Array.from({ length: 10 }, (_, i) => target(i));
    const results = await checkSequences(db, targets, { fix: false, batch: 2, parallel: 2, run, signal: stopped.signal });
    // The first two batches were in flight together; the first failed and stopped everything after it.
    expect(statements).toEqual([2, 2]);
    expect(results).toEqual([]);
  });

  it('exclusive: each batch in a transaction of its own, several at once, in order', async () => {
    const { db, load } = server([], (oids) => 20 - (oids[0]! - 2000));
    let transactions = 0;
    const pool = { transaction: async <T>(fn: (client: Queryable) => Promise<T>) => (transactions++, fn(db)) };
    const targets = Array.from({ length: 12 }, (_, i) => target(i));
    const results = await checkSequences(pool, targets, { fix: true, exclusive: true, batch: 3, parallel: 3 });
    expect(results.map((r) => r.target)).toEqual(targets);
    expect(transactions).toBe(4);
    expect(load.most).toBeGreaterThan(1);
  });
});
