import { exhaustedAdvice, sqlLiteral } from '../audit/writeSequenceOutcome.js';
import { needsFullScan, type SequenceState } from '../db/guardedSetval.js';
import type { SequenceTarget } from '../db/resolveIndex.js';
import type { SequenceErrorKind, VerifiedSequenceError } from '../db/verifySequenceError.js';
import type { Incident } from '../detect/detectIncident.js';

/*
 * What the audit tells a person, for the decisions whose sentence is long: the logic that decides
 * stays readable in the files that decide, the wording lives here. Names come from the catalog;
 * what comes from a log is quoted (JSON.stringify) or a number.
 */

/** Why the catalog does not confirm a missing sequence, each apart (replay asks which: relationsNamed). */
export const MISSING_UNVERIFIED = {
  exists: 'a relation of that name exists',
  unfed: 'no table has a column that sequence would feed',
} as const;

/**
 * What each of the runbook's other sequence errors means, what a person should do (written from
 * the catalog's names only, never from the log's text), and what the catalog must show for it to
 * be an alert at all.
 */
export const SEQUENCE_ERROR_ADVICE: Record<SequenceErrorKind, { reason: string; advice: (v: VerifiedSequenceError) => string; unverified: string }> = {
  sequence_exhausted: {
    reason: 'sequence_exhausted',
    advice: (v) =>
      `nextval() failed: ${v.sequence} reached its limit ${v.limit}${v.table ? ` (it feeds ${v.table})` : ''}. ` +
      exhaustedAdvice(
        { sequence: v.sequence, table: v.table ?? '<its table>', columnQuoted: v.columnQuoted ?? '<its column>' },
        { limit: v.limit!, increment: v.increment!, sequenceType: v.sequenceType! },
      ),
    unverified: 'no sequence of that name whose next value would pass its limit now',
  },
  sequence_missing: {
    reason: 'sequence_missing',
    advice: (v) =>
      `sequence ${v.sequence} does not exist, and ${v.table}.${v.columnQuoted} is the column it would feed: a dropped or never restored sequence (a partial pg_restore?). ` +
      `Recreate it (CREATE SEQUENCE ${v.sequence} OWNED BY ${v.table}.${v.columnQuoted}; ALTER TABLE ${v.table} ALTER COLUMN ${v.columnQuoted} SET DEFAULT nextval(${sqlLiteral(v.sequence)}); then seqwatch fix --table ${v.table})`,
    unverified: `${MISSING_UNVERIFIED.exists}, or ${MISSING_UNVERIFIED.unfed}`,
  },
  sequence_permission_denied: {
    reason: 'sequence_permission_denied',
    advice: (v) => `the application's role may not use ${v.sequence}: GRANT USAGE, SELECT ON SEQUENCE ${v.sequence} TO <application role>`,
    unverified: 'no sequence of that name',
  },
  setval_out_of_bounds: {
    reason: 'setval_out_of_bounds',
    advice: (v) =>
      `a setval on ${v.sequence} was out of its bounds: a hand-run fix used a value past the sequence's limits; compare the column's MAX with the sequence's MAXVALUE`,
    unverified: 'no sequence of that name',
  },
};

/** A record whose SQLSTATE is not the one its text reads like (a plain RAISE is P0001). */
export function sqlstateMismatch(kind: string, expected: string, sqlstate: string): string {
  return `a record reads like ${kind} (SQLSTATE ${expected}) but its SQLSTATE is ${JSON.stringify(sqlstate)}${sqlstate === 'P0001' ? ' (a RAISE from SQL code, not the server)' : ''}: not that error, nothing done`;
}

/** A sequence error the catalog does not confirm. */
export function unverifiedSequenceError(kind: string, name: string, unverified: string): string {
  return `a record reports ${kind} for a sequence named ${JSON.stringify(name)}, but the catalog does not confirm it (${unverified}): not an alert; a forged, garbled or outdated record`;
}

/** A duplicate key error logged longer ago than remediation.stale_after, and where its sequence stands now. */
export function staleRecord(target: SequenceTarget, state: SequenceState, ageMs: number): string {
  const behind = state.verdict === 'planned' || state.verdict === 'held';
  const now = behind ? `behind (next ${state.nextBefore}, MAX ${state.maxId})` : state.verdict === 'exhausted' ? 'exhausted' : 'in sync';
  return (
    `a duplicate key error logged ${Math.round(ageMs / 60_000)} min ago on ${target.index}: not acted on (older than remediation.stale_after); ` +
    `${target.sequence} is ${now} now${behind ? ': seqwatch fix, the sweep or the next error heals it' : ''}`
  );
}

/** A logical-replication apply worker stuck on a row the subscriber already has. */
export function replicationConflict(incident: Incident): string {
  const r = incident.replication ?? {};
  const subscription = r.subscriptionOid !== undefined ? `the subscription with oid ${r.subscriptionOid} (replication origin ${r.origin})` : 'a subscription';
  const what = r.relation !== undefined ? JSON.stringify(r.relation) : 'a table';
  const index = incident.constraint !== '' && incident.constraint !== r.relation ? ` (unique index ${JSON.stringify(incident.constraint)})` : '';
  const skip = r.finishLsn !== undefined ? `, or skip the remote transaction: ALTER SUBSCRIPTION <name> SKIP (lsn = '${r.finishLsn}')` : '';
  const name = r.subscriptionOid !== undefined ? ` (<name>: SELECT subname FROM pg_subscription WHERE oid = ${r.subscriptionOid})` : '';
  return (
    `logical replication is stuck: the apply worker of ${subscription} cannot apply a change to ${what}: a row with the same key already exists on this subscriber${index}${r.conflict !== undefined ? ` (conflict=${r.conflict})` : ''}. ` +
    `This is a replication conflict, not sequence drift: nothing was done. The worker retries the same transaction and fails until a person resolves it: remove or change the conflicting row on the subscriber${skip}${name}`
  );
}

/** Past the hourly cap: something keeps writing explicit ids. */
export function recurringDrift(target: SequenceTarget, fixes: number, until: string): string {
  return (
    `${target.sequence} was moved forward ${fixes} times within the hour for ${target.table}: something keeps writing explicit ids into it (an importer still running, a promoted replica, an application bug). ` +
    `seqwatch stops acting on it for ${target.table} until ${until}; find the writer`
  );
}

/** A check whose MAX reads the whole table. */
export function fullScan(target: SequenceTarget, timeoutMs: number): string {
  return (
    `MAX(${target.column}) on ${target.table}${target.peers?.length ? ' (or a table sharing its sequence)' : ''} reads the whole table: no index leads with the column. ` +
    `Each check is bounded to ${timeoutMs} ms and fails past it; CREATE INDEX ON ${target.table} (${target.columnQuoted}) makes it an index read`
  );
}

/** A table the sweep could not check, with the GRANTs it needs when the catalog says so. */
export function uncheckable(target: SequenceTarget, error: string, grant: string, timeoutMs: number): string {
  const scan = needsFullScan(target) ? `; MAX(${target.column}) there is a full scan (no index leads with it), bounded to ${timeoutMs} ms` : '';
  return `the sweep cannot check ${target.sequence} against ${target.table} (${error})${grant}; the other tables are swept as usual${scan}`;
}

/** The in-sync checks of one sequence that were counted instead of audited one by one. */
export function quietChecks(sequence: string, checks: number, since: string): string {
  return (
    `${checks} more check(s) of ${sequence} since ${since} (their errors are in the detected records): in sync each time, nothing done ` +
    "(errors on a healthy table: an application's genuine duplicates, or a forged log)"
  );
}
