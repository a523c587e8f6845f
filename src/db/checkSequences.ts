import { guardedSetvalBatch, guardedSetvalExclusiveBatch, type JumpGuard, type SequenceState, type Transactional } from './guardedSetval.js';
import type { SequenceColumn } from './listSequenceColumns.js';
import type { Queryable } from './Queryable.js';
import type { SequenceTarget } from './resolveIndex.js';

/**
 * Targets per statement. The server's CPU for a check of 2,000 tables was lowest in batches of 50
 * (before the guarded statement's MATERIALIZED: ~0.85 s against ~1.2 s in batches of 250; after
 * it, ~0.97 s against ~1.07 s); smaller batches also share out better over connections
 * (`parallel`), and a failing batch is retried one by one over 50 targets, not 250.
 */
export const BATCH = 50;

export interface CheckOptions {
  /** Move the sequences that are behind (false: read-only, the same statement with act = false). */
  fix: boolean;
  /**
   * Under the per-sequence advisory locks that the daemon and `seqwatch fix` share (needs a
   * transaction): two of them never fix the same sequence at once.
   */
  exclusive?: boolean;
  guard?: JumpGuard;
  /** statement_timeout (ms) for a batch holding a target whose MAX is a full scan (exclusive only). */
  fullScanTimeoutMs?: number;
  batch?: number;
  /** Runs each statement: the daemon waits out outages here. What it throws counts as that statement's failure. */
  run?: <R>(statement: () => Promise<R>) => Promise<R>;
  /** Once aborted (the daemon stopping), no further statement is sent and no further result reported. */
  signal?: AbortSignal;
  /**
   * Batches in flight at once, each on a connection of its own (`db` a pool, as Database is): the
   * server plans and reads several batches together. The results still come in the targets' order,
   * and a batch never runs beside an earlier one that names one of its sequences (a sequence shared
   * by tables in two batches), so every outcome is what one batch at a time would have found.
   */
  parallel?: number;
}

/** One target's outcome: the state it was found in (and left in), or why it could not be checked. */
export interface SequenceCheck<T extends SequenceTarget = SequenceTarget> {
  target: T;
  state?: SequenceState;
  error?: string;
}

/**
 * The one way to check many sequences (`check`, `fix`, the sweep, `replay`): the guarded statement
 * over batches of targets, results in the targets' order, one batch at a time as they come (with
 * `parallel`, several batches in flight, still reported in order). The
 * error policy: a batch that fails (a table seqwatch may not read, a statement timeout) is retried
 * one by one, so one bad table names itself and never stops the others from being checked.
 */
export function checkSequenceBatches<T extends SequenceTarget>(
  db: Transactional,
  targets: T[],
  options: CheckOptions & { exclusive: true },
): AsyncGenerator<Array<SequenceCheck<T>>>;
export function checkSequenceBatches<T extends SequenceTarget>(
  db: Queryable,
  targets: T[],
  options: CheckOptions & { exclusive?: false },
): AsyncGenerator<Array<SequenceCheck<T>>>;
export function checkSequenceBatches<T extends SequenceTarget>(
  db: Transactional | Queryable,
  targets: T[],
  options: CheckOptions,
): AsyncGenerator<Array<SequenceCheck<T>>> {
  return inBatches(db, targets, options);
}

/** checkSequenceBatches, all batches together. */
export function checkSequences<T extends SequenceTarget>(
  db: Transactional,
  targets: T[],
  options: CheckOptions & { exclusive: true },
): Promise<Array<SequenceCheck<T>>>;
export function checkSequences<T extends SequenceTarget>(
  db: Queryable,
  targets: T[],
  options: CheckOptions & { exclusive?: false },
): Promise<Array<SequenceCheck<T>>>;
export async function checkSequences<T extends SequenceTarget>(
  db: Transactional | Queryable,
  targets: T[],
  options: CheckOptions,
): Promise<Array<SequenceCheck<T>>> {
  const results: Array<SequenceCheck<T>> = [];
  for await (const checks of inBatches(db, targets, options)) results.push(...checks);
  return results;
}

async function* inBatches<T extends SequenceTarget>(
  db: Transactional | Queryable,
  targets: T[],
  options: CheckOptions,
): AsyncGenerator<Array<SequenceCheck<T>>> {
  const size = options.batch ?? BATCH;
  const run = options.run ?? ((statement) => statement());
  const statement = (batch: T[]) => () =>
    options.exclusive
      ? guardedSetvalExclusiveBatch(db as Transactional, batch, options.fix, options.guard, {
          ...(options.fullScanTimeoutMs !== undefined ? { fullScanTimeoutMs: options.fullScanTimeoutMs } : {}),
        })
      : guardedSetvalBatch(db as Queryable, batch, options.fix, options.guard);
  const check = async (batch: T[]): Promise<Array<SequenceCheck<T>>> => {
    if (options.signal?.aborted) return [];
    let states: SequenceState[] | undefined;
    try {
      states = await run(statement(batch));
    } catch {
      // One by one below, so that the bad table names itself and the rest are still checked.
    }
    if (states) return batch.map((target, j) => ({ target, state: states[j]! }));
    const checks: Array<SequenceCheck<T>> = [];
    for (const target of batch) {
      if (options.signal?.aborted) break;
      try {
        checks.push({ target, state: (await run(statement([target])))[0]! });
      } catch (error) {
        if (options.signal?.aborted) break;
        checks.push({ target, error: (error as Error).message });
      }
    }
    return checks;
  };
  const batches: T[][] = [];
  for (let i = 0; i < targets.length; i += size) batches.push(targets.slice(i, i + size));
  const started: Array<Promise<Array<SequenceCheck<T>>>> = [];
  // The last batch started that names each sequence: a later batch naming it waits for that one.
  const holder = new Map<number, number>();
  const parallel = Math.max(1, Math.floor(options.parallel ?? 1));
  /*
   * A read-only check over several connections: a connection that finishes its batch takes the next
   * one at once, ahead of the consumer, even while an earlier, slower batch still runs on the other
   * (waiting for the batches in order left one connection idle behind a slow one: a table whose
   * MAX or catalog is slow to read). Still at most `parallel` at once, results yielded in order.
   * A fix keeps to the consumer's pace (at most `parallel` batches past the one it waits for): what
   * was moved is audited before more is moved. So does a single connection (the daemon's sweep).
   */
  const runAhead = !options.fix && parallel > 1;
  /** Batches started and not finished (those waiting for an earlier batch included). */
  let running = 0;
  /** The batch the consumer waits for. */
  let awaited = 0;
  /** The consumer went away (returned early, or threw): nothing more is started. */
  let stopped = false;
  const start = (k: number) => {
    const earlier = new Set<number>();
    for (const target of batches[k]!) {
      const h = holder.get(target.sequenceOid);
      if (h !== undefined && h !== k) earlier.add(h);
      holder.set(target.sequenceOid, k);
    }
    running++;
    const task = Promise.all([...earlier].map((h) => started[h]!)).then(() => check(batches[k]!));
    // Awaited in order below; meanwhile a failure of a later one must not go unhandled.
    task.catch(() => {}).finally(() => (running--, fill()));
    started.push(task);
  };
  const fill = () => {
    const limit = runAhead ? batches.length : Math.min(batches.length, awaited + parallel);
    while (!stopped && !options.signal?.aborted && running < parallel && started.length < limit) start(started.length);
  };
  try {
    for (; awaited < batches.length; awaited++) {
      if (options.signal?.aborted) return;
      fill();
      yield await started[awaited]!;
    }
  } finally {
    stopped = true;
  }
}

export type CheckStatus = 'ok' | 'behind' | 'near_limit' | 'exhausted' | 'error';

export interface CheckedSequence {
  column: SequenceColumn;
  status: CheckStatus;
  state?: SequenceState;
  /** How many values the sequence must skip to pass MAX (behind only). */
  behindBy?: string;
  /** How much of the sequence's range the larger of next value and MAX uses, in percent. */
  usedPercent?: number;
  error?: string;
}

/** What a read-only check found, as `seqwatch check` reports it: in sync, behind (by how much), near the limit, exhausted. */
export function assess(column: SequenceColumn, state: SequenceState, nearLimitPercent: number): CheckedSequence {
  const ascending = BigInt(state.increment) > 0n;
  const next = BigInt(state.nextBefore);
  const limit = BigInt(state.limit);
  const max = state.maxId === null ? undefined : BigInt(state.maxId);
  const furthest = max === undefined ? next : ascending ? (next > max ? next : max) : next < max ? next : max;
  const usedPercent = limit === 0n ? 0 : Number((furthest * 10_000n) / limit) / 100;
  const checked: CheckedSequence = { column, state, status: 'ok', usedPercent };
  if (state.verdict === 'exhausted' || (ascending ? next > limit : next < limit)) return { ...checked, status: 'exhausted' };
  if (state.verdict === 'planned' && max !== undefined) {
    checked.status = 'behind';
    checked.behindBy = String(ascending ? max - next + 1n : next - max + 1n);
  }
  if (usedPercent >= nearLimitPercent && checked.status === 'ok') checked.status = 'near_limit';
  return checked;
}
