import type { Queryable } from './Queryable.js';
import type { SequenceTarget } from './resolveIndex.js';

export type SequenceVerdict =
  /** The next value would collide and the sequence was moved forward to the table's MAX. */
  | 'remediated'
  /** Dry run: the next value would collide; `after` is where a fix would move it. */
  | 'planned'
  /** The next value is past every existing key: nothing to do. */
  | 'in_sync'
  /** Behind, but moving it would reach or pass the sequence's limit: a person must decide. */
  | 'exhausted';

export interface SequenceState {
  verdict: SequenceVerdict;
  /** `last_value` as psql shows it (the start value when the sequence was never used). */
  before: string;
  /** The value nextval() would return before any fix. */
  nextBefore: string;
  /** MAX(column), or MIN for a descending sequence; null for an empty table. */
  maxId: string | null;
  /** Where the sequence was (or, in a dry run, would be) moved; absent when nothing moves. */
  after?: string;
  increment: string;
  /** The sequence's MAXVALUE (ascending) or MINVALUE (descending). */
  limit: string;
}

/*
 * One SELECT per sequence reads the sequence, reads MAX (MIN when descending) of the column and,
 * only when the next value would collide and the target is inside the sequence's bounds, calls
 * setval. The read and the write share one statement, so a session that advanced the sequence past
 * MAX before this statement started is seen and left alone: the sequence only ever moves forward.
 * `$1` says whether to act, `$<n>` is the sequence oid. Table and column come from the catalog,
 * quoted by the server (quote_ident / format %I); nothing here comes from a log.
 */
function selectFor(target: SequenceTarget, oid: string, position: number): string {
  return `(
WITH p AS (
  SELECT seqincrement::numeric AS inc, seqstart::numeric AS start, seqmin::numeric AS lo, seqmax::numeric AS hi
  FROM pg_catalog.pg_sequence WHERE seqrelid = ${oid}::oid
), m AS (
  SELECT max(${target.columnQuoted})::numeric AS max_id, min(${target.columnQuoted})::numeric AS min_id FROM ${target.table}
), s AS (
  SELECT p.*, pg_catalog.pg_sequence_last_value(${oid}::oid::regclass)::numeric AS last_value,
         CASE WHEN p.inc > 0 THEN m.max_id ELSE m.min_id END AS target
  FROM p, m
), v AS (
  SELECT s.*, COALESCE(s.last_value + s.inc, s.start) AS next,
         CASE WHEN s.inc > 0 THEN s.hi ELSE s.lo END AS lim
  FROM s
), d AS (
  SELECT v.*,
         v.target IS NOT NULL AND (CASE WHEN v.inc > 0 THEN v.next <= v.target ELSE v.next >= v.target END) AS behind,
         CASE WHEN v.inc > 0 THEN v.target >= v.lim ELSE v.target <= v.lim END AS exhausted
  FROM v
)
SELECT ${position} AS position, COALESCE(last_value, start)::text AS before, next::text AS next_before, target::text AS max_id,
       inc::text AS increment, lim::text AS "limit", behind, COALESCE(exhausted, false) AS exhausted,
       CASE WHEN $1::boolean AND behind AND NOT exhausted
            THEN pg_catalog.setval(${oid}::oid::regclass, target::int8, true)::text END AS after
FROM d)`;
}

interface Row {
  position: number;
  before: string;
  next_before: string;
  max_id: string | null;
  increment: string;
  limit: string;
  behind: boolean;
  exhausted: boolean;
  after: string | null;
}

function stateOf(target: SequenceTarget, row: Row | undefined, act: boolean): SequenceState {
  if (!row) throw new Error(`sequence ${target.sequence} (oid ${target.sequenceOid}) no longer exists`);
  const state: SequenceState = {
    verdict: 'in_sync',
    before: row.before,
    nextBefore: row.next_before,
    maxId: row.max_id,
    increment: row.increment,
    limit: row.limit,
  };
  if (!row.behind) return state;
  if (row.exhausted) return { ...state, verdict: 'exhausted' };
  if (!act) return { ...state, verdict: 'planned', after: row.max_id! };
  if (row.after === null) throw new Error(`setval on ${target.sequence} did not run`);
  return { ...state, verdict: 'remediated', after: row.after };
}

/**
 * Checks sequences against their columns and, when `act` is true and a sequence is verifiably
 * behind, moves it forward in the same statement. Never moves a sequence backwards, never past its
 * limit: an exhausted sequence is reported, not "fixed". Several targets go in one round trip
 * (`seqwatch fix --all` on thousands of sequences); the states come back in the targets' order.
 */
export async function guardedSetvalBatch(db: Queryable, targets: SequenceTarget[], act: boolean): Promise<SequenceState[]> {
  if (targets.length === 0) return [];
  const text = targets.map((target, i) => selectFor(target, `$${i + 2}`, i)).join('\nUNION ALL\n');
  const { rows } = await db.query<Row>(text, [act, ...targets.map((t) => t.sequenceOid)]);
  const byPosition = new Map(rows.map((row) => [Number(row.position), row]));
  return targets.map((target, i) => stateOf(target, byPosition.get(i), act));
}

export async function guardedSetval(db: Queryable, target: SequenceTarget, act: boolean): Promise<SequenceState> {
  return (await guardedSetvalBatch(db, [target], act))[0]!;
}

/** 'seqw' in the high half of the advisory lock key, the sequence oid in the low half. */
const LOCK_NAMESPACE = 0x73657177n;

export function sequenceLockKey(sequenceOid: number): string {
  return ((LOCK_NAMESPACE << 32n) | BigInt(sequenceOid)).toString();
}

/** What the exclusive variants need: a transaction on one connection. */
export interface Transactional {
  transaction<T>(fn: (client: Queryable) => Promise<T>): Promise<T>;
}

/**
 * guardedSetvalBatch under transaction-scoped advisory locks keyed by the sequences, so that
 * several daemons watching one cluster (HA pairs, a sidecar per replica) and `seqwatch fix` never
 * run the same fix at once: the second waits for the first, then finds the sequence in sync.
 * Locks are taken in key order, so two batches cannot deadlock.
 */
export function guardedSetvalExclusiveBatch(db: Transactional, targets: SequenceTarget[], act: boolean): Promise<SequenceState[]> {
  return db.transaction(async (client) => {
    const keys = [...new Set(targets.map((t) => sequenceLockKey(t.sequenceOid)))].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
    await client.query('SELECT pg_catalog.pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k', [keys]);
    return guardedSetvalBatch(client, targets, act);
  });
}

export async function guardedSetvalExclusive(db: Transactional, target: SequenceTarget, act: boolean): Promise<SequenceState> {
  return (await guardedSetvalExclusiveBatch(db, [target], act))[0]!;
}
