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
 * The guarded statement. For each target it reads MAX(column) (MIN for a descending sequence), reads
 * the sequence (pg_sequence_last_value) and, only when the next value would collide and the target
 * is inside the sequence's bounds, calls setval, all in one statement: a session that advanced the
 * sequence past MAX before this statement started is seen and left alone, so a sequence only ever
 * moves forward. `$1` says whether to act, `$2` holds the sequence oids in the targets' order.
 *
 * Only the aggregate is written per table (table and column come from the catalog, quoted by the
 * server: quote_ident / format %I; nothing here comes from a log); the guard is the same text for
 * every batch. That keeps planning cheap: thousands of sequences cost a few round trips
 * (`seqwatch fix --all`). The aggregate follows the direction the catalog gave; if the sequence's
 * direction changed since, the aggregate does not match and nothing is done.
 */
function statementFor(targets: SequenceTarget[]): string {
  const aggregates = targets
    .map((t, i) => {
      const aggregate = t.ascending === false ? 'min' : 'max';
      return `(${i}, (SELECT ${aggregate}(${t.columnQuoted}) FROM ${t.table})::numeric, ${t.ascending === false ? 'false' : 'true'})`;
    })
    .join(',\n  ');
  return `
WITH m(position, target, ascending) AS (VALUES
  ${aggregates}
), s AS (
  SELECT m.position, o.oid, m.target, p.seqincrement::numeric AS inc, p.seqstart::numeric AS start,
         (CASE WHEN p.seqincrement > 0 THEN p.seqmax ELSE p.seqmin END)::numeric AS lim,
         (p.seqincrement > 0) = m.ascending AS direction_known,
         pg_catalog.pg_sequence_last_value(o.oid::regclass)::numeric AS last_value
  FROM m
  JOIN unnest($2::oid[]) WITH ORDINALITY AS o(oid, n) ON o.n = m.position + 1
  JOIN pg_catalog.pg_sequence p ON p.seqrelid = o.oid
), v AS (
  SELECT s.*, COALESCE(s.last_value + s.inc, s.start) AS next FROM s
), d AS (
  SELECT v.*,
         v.direction_known AND v.target IS NOT NULL
           AND (CASE WHEN v.inc > 0 THEN v.next <= v.target ELSE v.next >= v.target END) AS behind,
         COALESCE(CASE WHEN v.inc > 0 THEN v.target >= v.lim ELSE v.target <= v.lim END, false) AS exhausted
  FROM v
)
SELECT position, COALESCE(last_value, start)::text AS before, next::text AS next_before, target::text AS max_id,
       inc::text AS increment, lim::text AS "limit", behind, exhausted,
       CASE WHEN $1::boolean AND behind AND NOT exhausted
            THEN pg_catalog.setval(oid::regclass, target::int8, true)::text END AS after
FROM d`;
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
  const { rows } = await db.query<Row>(statementFor(targets), [act, targets.map((t) => t.sequenceOid)]);
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
