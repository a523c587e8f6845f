import type pg from 'pg';
import type { QueryResultRow } from 'pg';
import { traceHeal } from '../metrics/healTrace.js';
import { pipelined, type Statement } from './Database.js';
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
  | 'exhausted'
  /** Behind, but the fix would jump further than the jump guard allows: held for a person (`held` says why). */
  | 'held';

/** A bound on how far a fix may move a sequence (remediation.max_jump, remediation.near_limit_percent). */
export interface JumpGuard {
  /** A fix that moves the next value further than this is held (absent: no bound). */
  maxJump?: number | bigint | undefined;
  /** A fix that moves the sequence into the last (100 - this) percent of its range is held (absent: none). */
  nearLimitPercent?: number | undefined;
}

export interface SequenceState {
  verdict: SequenceVerdict;
  /** `last_value` as the sequence itself holds it (psql's `SELECT last_value FROM seq`). */
  before: string;
  /** The value nextval() would return before any fix: last_value + increment once called, else last_value itself. */
  nextBefore: string;
  /** MAX(column), or MIN for a descending sequence, over every trusted column the sequence feeds; null when all are empty. */
  maxId: string | null;
  /** Where the sequence was (or, in a dry run, would be) moved; absent when nothing moves. */
  after?: string;
  increment: string;
  /** The sequence's MAXVALUE (ascending) or MINVALUE (descending). */
  limit: string;
  /** The sequence's data type (`bigint`, `integer`, `smallint`). */
  sequenceType?: string;
  /** Why a fix was held (verdict `held`): the jump is past max_jump, or the target is near the limit. */
  held?: 'max_jump' | 'near_limit';
}

/*
 * The guarded statement. For each target it reads MAX(column) over the column and its peers (MIN for
 * a descending sequence), reads the sequence relation itself (last_value and is_called: after
 * ALTER SEQUENCE ... RESTART or setval(s, n, false) the next value is last_value, not
 * last_value + increment, and pg_sequence_last_value() is NULL), and, only when the next value
 * would collide, the target is inside the sequence's bounds and within the jump guard, calls
 * setval, all in one statement: a session that advanced the sequence past MAX before this statement
 * started is seen and left alone, so a sequence only ever moves forward. `$1` says whether to act,
 * `$2` holds the sequence oids in the targets' order, `$3` the largest jump (NULL: none), `$4` the
 * near-limit percentage (NULL: none).
 *
 * Table, column and sequence names are written into the statement as the catalog gave them, quoted
 * by the server (quote_ident / format %I; nothing here comes from a log); the relation read as the
 * sequence must have the oid the catalog named (`tableoid`), or nothing is done. The aggregate
 * follows the direction the catalog gave; if the sequence's direction changed since, the aggregate
 * does not match and nothing is done.
 */
function statementFor(targets: SequenceTarget[]): string {
  const rows = targets
    .map((t, i) => {
      const aggregate = t.ascending === false ? 'min' : 'max';
      const columns = [{ table: t.table, columnQuoted: t.columnQuoted }, ...(t.peers ?? [])];
      const maxima = columns.map((c) => `(SELECT ${aggregate}(${c.columnQuoted}) FROM ${c.table})::numeric`);
      const target = maxima.length === 1 ? maxima[0]! : `${t.ascending === false ? 'LEAST' : 'GREATEST'}(${maxima.join(', ')})`;
      // One read of the sequence relation: its oid, last_value and is_called together.
      const sequence = `(SELECT ARRAY[tableoid::int8::numeric, last_value::numeric, CASE WHEN is_called THEN 1 ELSE 0 END] FROM ${t.sequence})`;
      return `(${i}, ${target}, ${t.ascending === false ? 'false' : 'true'}, ${sequence})`;
    })
    .join(',\n  ');
  // MATERIALIZED: each target's row is computed once. Inlined (PostgreSQL inlines a CTE used once,
  // and flattens a VALUES of one row), every reference to `target` and `seq` below became a copy of
  // its sub-select: a check of one sequence read the sequence 12 times and MAX 5 times, each read
  // planned on its own (1 ms of planning), and last_value, is_called and the oid could come from
  // different reads.
  return `
WITH r(position, target, ascending, seq) AS MATERIALIZED (VALUES
  ${rows}
), m AS (
  SELECT r.position, r.target, r.ascending, r.seq[1]::int8::oid AS read_oid, r.seq[2] AS last_value, r.seq[3] = 1 AS is_called FROM r
), s AS (
  SELECT m.position, o.oid, m.target, m.last_value, m.is_called, m.read_oid = o.oid AS same_sequence,
         p.seqincrement::numeric AS inc,
         (CASE WHEN p.seqincrement > 0 THEN p.seqmax ELSE p.seqmin END)::numeric AS lim,
         (p.seqincrement > 0) = m.ascending AS direction_known,
         pg_catalog.format_type(p.seqtypid, NULL) AS seq_type
  FROM m
  JOIN unnest($2::oid[]) WITH ORDINALITY AS o(oid, n) ON o.n = m.position + 1
  JOIN pg_catalog.pg_sequence p ON p.seqrelid = o.oid
), v AS (
  SELECT s.*, CASE WHEN s.is_called THEN s.last_value + s.inc ELSE s.last_value END AS next FROM s
), d AS (
  SELECT v.*,
         v.same_sequence AND v.direction_known AND v.target IS NOT NULL
           AND (CASE WHEN v.inc > 0 THEN v.next <= v.target ELSE v.next >= v.target END) AS behind,
         COALESCE(CASE WHEN v.inc > 0 THEN v.target >= v.lim ELSE v.target <= v.lim END, false) AS exhausted,
         CASE WHEN $4::numeric IS NOT NULL
                   AND (CASE WHEN v.inc > 0 THEN v.target * 100 >= v.lim * $4::numeric AND v.next * 100 < v.lim * $4::numeric
                             ELSE v.target * 100 <= v.lim * $4::numeric AND v.next * 100 > v.lim * $4::numeric END)
                THEN 'near_limit'
              WHEN $3::numeric IS NOT NULL AND abs(v.target - v.next) > $3::numeric THEN 'max_jump' END AS held
  FROM v
)
SELECT position, same_sequence, last_value::text AS before, next::text AS next_before, target::text AS max_id,
       inc::text AS increment, lim::text AS "limit", seq_type, behind, exhausted, held,
       CASE WHEN $1::boolean AND behind AND NOT exhausted AND held IS NULL
            THEN pg_catalog.setval(oid::regclass, target::int8, true)::text END AS after
FROM d`;
}

interface Row {
  position: number;
  same_sequence: boolean;
  before: string;
  next_before: string;
  max_id: string | null;
  increment: string;
  limit: string;
  seq_type: string;
  behind: boolean;
  exhausted: boolean;
  held: 'max_jump' | 'near_limit' | null;
  after: string | null;
}

function stateOf(target: SequenceTarget, row: Row | undefined, act: boolean): SequenceState {
  if (!row) throw new Error(`sequence ${target.sequence} (oid ${target.sequenceOid}) no longer exists`);
  if (!row.same_sequence)
    throw new Error(`${target.sequence} is no longer the sequence the catalog named (oid ${target.sequenceOid}): renamed or recreated; nothing done`);
  const state: SequenceState = {
    verdict: 'in_sync',
    before: row.before,
    nextBefore: row.next_before,
    maxId: row.max_id,
    increment: row.increment,
    limit: row.limit,
    sequenceType: row.seq_type,
  };
  if (!row.behind) return state;
  if (row.exhausted) return { ...state, verdict: 'exhausted' };
  if (row.held) return { ...state, verdict: 'held', held: row.held, after: row.max_id! };
  if (!act) return { ...state, verdict: 'planned', after: row.max_id! };
  if (row.after === null) throw new Error(`setval on ${target.sequence} did not run`);
  return { ...state, verdict: 'remediated', after: row.after };
}

/**
 * Splits targets into rounds in which each sequence appears once: a sequence shared by two listed
 * columns is fixed by the first (past MAX over both) and then found in sync by the second, instead of
 * two setvals in one statement that would both report the move.
 */
function rounds(targets: SequenceTarget[]): Array<Array<{ target: SequenceTarget; index: number }>> {
  const result: Array<Array<{ target: SequenceTarget; index: number }>> = [];
  const seen = new Map<number, number>();
  targets.forEach((target, index) => {
    const round = seen.get(target.sequenceOid) ?? 0;
    seen.set(target.sequenceOid, round + 1);
    (result[round] ??= []).push({ target, index });
  });
  return result;
}

/**
 * Checks sequences against their columns and, when `act` is true and a sequence is verifiably
 * behind, moves it forward in the same statement. Never moves a sequence backwards, never past its
 * limit (an exhausted sequence is reported, not "fixed"), never further than `guard` allows (held).
 * Several targets go in one round trip (`seqwatch fix --all` on thousands of sequences); the states
 * come back in the targets' order.
 */
export async function guardedSetvalBatch(db: Queryable, targets: SequenceTarget[], act: boolean, guard: JumpGuard = {}): Promise<SequenceState[]> {
  if (targets.length === 0) return [];
  const states: SequenceState[] = new Array(targets.length);
  for (const round of rounds(targets)) {
    const { text, values } = roundStatement(round, act, guard);
    const { rows } = await db.query<Row>(text, values);
    readRound(states, round, rows, act);
  }
  return states;
}

type Round = Array<{ target: SequenceTarget; index: number }>;

/** The guarded statement of one round and its bind parameters. */
function roundStatement(round: Round, act: boolean, guard: JumpGuard): { text: string; values: unknown[] } {
  const batch = round.map((r) => r.target);
  return {
    text: statementFor(batch),
    values: [
      act,
      batch.map((t) => t.sequenceOid),
      guard.maxJump === undefined ? null : String(guard.maxJump),
      guard.nearLimitPercent === undefined ? null : guard.nearLimitPercent,
    ],
  };
}

/** Puts each target's state, read from its round's rows, at the target's index. */
function readRound(states: SequenceState[], round: Round, rows: Row[], act: boolean): void {
  const byPosition = new Map(rows.map((row) => [Number(row.position), row]));
  round.forEach(({ target, index }, i) => (states[index] = stateOf(target, byPosition.get(i), act)));
}

export async function guardedSetval(db: Queryable, target: SequenceTarget, act: boolean, guard: JumpGuard = {}): Promise<SequenceState> {
  return (await guardedSetvalBatch(db, [target], act, guard))[0]!;
}

/** Whether checking this target reads a whole table (its column, or a peer's, leads no index). */
export function needsFullScan(target: SequenceTarget): boolean {
  return target.indexed === false || (target.peers ?? []).some((p) => !p.indexed);
}

/** 'seqw' in the high half of the advisory lock key, the sequence oid in the low half. */
const LOCK_NAMESPACE = 0x73657177n;

export function sequenceLockKey(sequenceOid: number): string {
  return ((LOCK_NAMESPACE << 32n) | BigInt(sequenceOid)).toString();
}

/** What the exclusive variants need: a transaction on one connection. */
export interface Transactional {
  transaction<T>(fn: (client: Queryable) => Promise<T>): Promise<T>;
  /**
   * The same transaction with every statement written at once (Database.pipeline): one round trip.
   * Without it the statements go one by one through transaction().
   */
  pipeline?(statements: Statement[]): Promise<Array<{ rows: QueryResultRow[] }>>;
}

/**
 * guardedSetvalBatch under transaction-scoped advisory locks keyed by the sequences, so that
 * several daemons watching one cluster (HA pairs, a sidecar per replica) and `seqwatch fix` never
 * run the same fix at once: the second waits for the first, then finds the sequence in sync.
 * Locks are taken in key order, so two batches cannot deadlock.
 */
export async function guardedSetvalExclusiveBatch(
  db: Transactional,
  targets: SequenceTarget[],
  act: boolean,
  guard: JumpGuard = {},
  options: ExclusiveOptions = {},
): Promise<SequenceState[]> {
  if (targets.length === 0) return [];
  // The steps of the transaction, for the heal benchmark's breakdown (nobody listens in production).
  const traced = targets.length === 1 ? { sequence: targets[0]!.sequence } : { sequences: targets.length };
  const settings: Statement[] = [];
  // A MAX that reads a whole table is bounded: it fails (and says so) rather than run for minutes.
  if (options.fullScanTimeoutMs !== undefined && targets.some(needsFullScan)) {
    settings.push({ text: `SELECT pg_catalog.set_config('statement_timeout', $1, true)`, values: [String(options.fullScanTimeoutMs)] });
  }
  for (const [name, ms] of [
    ['statement_timeout', options.statementTimeoutMs],
    ['lock_timeout', options.lockTimeoutMs],
  ] as const) {
    if (ms !== undefined) settings.push({ text: `SELECT pg_catalog.set_config('${name}', $1, true)`, values: [String(ms)] });
  }
  const keys = [...new Set(targets.map((t) => sequenceLockKey(t.sequenceOid)))].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  const lock: Statement = { text: 'SELECT pg_catalog.pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k', values: [keys] };
  const pipeline = db.pipeline?.bind(db);
  if (!pipeline) {
    return db.transaction(async (client) => {
      traceHeal('begun', traced);
      for (const setting of settings) await client.query(setting.text, setting.values);
      await client.query(lock.text, lock.values);
      traceHeal('locked', traced);
      const states = await guardedSetvalBatch(client, targets, act, guard);
      traceHeal('stated', traced);
      return states;
    });
  }
  // One round trip: the settings, the lock and every round's statement, in that order, in one
  // transaction (see pipelined): each round still runs after the lock is held and after the round
  // before it, so a sequence shared by two targets is found in sync by the second, as above.
  const all = rounds(targets);
  const statements = all.map((round) => ({ ...roundStatement(round, act, guard) }));
  traceHeal('begun', traced);
  const results = await pipeline([...settings, { ...lock, onDone: () => traceHeal('locked', traced) }, ...statements]);
  traceHeal('stated', traced);
  const states: SequenceState[] = new Array(targets.length);
  all.forEach((round, i) => readRound(states, round, results[settings.length + 1 + i]!.rows as Row[], act));
  return states;
}

/**
 * A read-only run of what a fix of `target` sends (act false: nothing is moved, no audit), on a
 * connection of its own, bounded so that it never waits long behind a lock: run on each new
 * connection (Database.rehearsal) so that the first fix on it finds the server's catalog caches and
 * the code paths warm. `target` should be one whose MAX is an index read (not needsFullScan).
 */
export function rehearseGuardedSetval(client: pg.ClientBase, target: SequenceTarget): Promise<SequenceState[]> {
  const transactional: Transactional = {
    transaction: () => Promise.reject(new Error('a rehearsal is pipelined')),
    pipeline: (statements) => pipelined(client, statements),
  };
  return guardedSetvalExclusiveBatch(transactional, [target], false, {}, { lockTimeoutMs: 100, statementTimeoutMs: 1_000 });
}

export interface ExclusiveOptions {
  /** statement_timeout (ms) for a batch that holds a full-scan target (needsFullScan). */
  fullScanTimeoutMs?: number;
  /** statement_timeout (ms) and lock_timeout (ms) for the whole transaction (a rehearsal's bounds). */
  statementTimeoutMs?: number;
  lockTimeoutMs?: number;
}

export async function guardedSetvalExclusive(
  db: Transactional,
  target: SequenceTarget,
  act: boolean,
  guard: JumpGuard = {},
  options: ExclusiveOptions = {},
): Promise<SequenceState> {
  return (await guardedSetvalExclusiveBatch(db, [target], act, guard, options))[0]!;
}
