import type { SequenceState } from '../db/guardedSetval.js';
import type { SequenceTarget } from '../db/resolveIndex.js';
import type { AuditEvent, AuditFields, AuditLog } from './AuditLog.js';

/** One audit record, before it is written: the Remediator throttles some of them (auditOnce). */
export interface Outcome {
  event: AuditEvent;
  fields: AuditFields;
  msg: string;
}

/** A catalog name as an SQL string literal, for advice a person may paste (never for our own statements). */
export function sqlLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

const TYPE_LIMITS: Record<string, { max: bigint; min: bigint }> = {
  smallint: { max: 32767n, min: -32768n },
  integer: { max: 2147483647n, min: -2147483648n },
  bigint: { max: 9223372036854775807n, min: -9223372036854775808n },
};

/**
 * What a person can do about a sequence whose limit the table's keys reach, from the catalog's
 * facts only: raise a MAXVALUE set below the type's limit, widen a smallint/integer sequence (and
 * its column) to bigint, or, for a bigint sequence at bigint's limit, renumber (never "widen to
 * bigint": it already is).
 */
export function exhaustedAdvice(
  target: Pick<SequenceTarget, 'sequence' | 'table' | 'columnQuoted'>,
  state: Pick<SequenceState, 'limit' | 'increment' | 'sequenceType'>,
): string {
  const type = state.sequenceType ?? '';
  const limits = TYPE_LIMITS[type];
  const ascending = BigInt(state.increment) > 0n;
  const typeLimit = limits ? (ascending ? limits.max : limits.min) : undefined;
  if (typeLimit !== undefined && BigInt(state.limit) !== typeLimit) {
    return `its ${ascending ? 'MAXVALUE' : 'MINVALUE'} ${state.limit} is below the ${type} limit: raise it (ALTER SEQUENCE ${target.sequence} ${ascending ? 'MAXVALUE' : 'MINVALUE'} ${typeLimit}) if the column's type allows`;
  }
  if (type === 'bigint') {
    return `${target.sequence} is a bigint sequence at bigint's own limit: no wider type exists; renumber the keys of ${target.table}, or find the rows whose keys were written near the limit (a mistaken or forged id) and correct them`;
  }
  return `widen the sequence and its column to bigint (ALTER SEQUENCE ${target.sequence} AS bigint; ALTER TABLE ${target.table} ALTER COLUMN ${target.columnQuoted} TYPE bigint)`;
}

/** The audit record of one checked sequence, worded for the person who reads it at 3 a.m. */
export function describeOutcome(target: SequenceTarget, state: SequenceState, extra: AuditFields = {}): Outcome {
  const names = { table: target.table, sequence: target.sequence, column: target.column };
  const values = { before: state.before, max_id: state.maxId };
  const over = target.peers?.length ? ` over ${target.table} and ${target.peers.map((p) => p.table).join(', ')}, which it feeds too` : '';
  switch (state.verdict) {
    case 'remediated':
      return {
        event: 'remediated',
        fields: { ...names, ...values, after: state.after, ...extra },
        msg: `moved ${target.sequence} from ${state.before} to ${state.after} (MAX(${target.column}) = ${state.maxId}${over}); the next INSERT gets ${BigInt(state.after!) + BigInt(state.increment)}`,
      };
    case 'planned':
      return {
        event: 'planned',
        fields: { ...names, ...values, after: state.after, ...extra },
        msg: `dry run: would move ${target.sequence} from ${state.before} to ${state.after} (MAX(${target.column}) = ${state.maxId}${over})`,
      };
    case 'exhausted':
      return {
        event: 'alert',
        fields: { ...names, ...values, limit: state.limit, reason: 'sequence_exhausted', ...extra },
        msg: `${target.sequence} is behind (next ${state.nextBefore}, MAX ${state.maxId}) but the table's keys reach the sequence's limit ${state.limit}: setval cannot help; ${exhaustedAdvice(target, state)}`,
      };
    case 'held': {
      const jump = (BigInt(state.after!) - BigInt(state.nextBefore)).toString().replace(/^-/, '');
      const why =
        state.held === 'near_limit'
          ? `it would move ${target.sequence} into the last part of its range (limit ${state.limit}, remediation.near_limit_percent)`
          : `that is a jump of ${jump}, more than remediation.max_jump allows`;
      return {
        event: 'alert',
        fields: { ...names, ...values, after: state.after, limit: state.limit, reason: 'jump_guard', held: state.held, jump, ...extra },
        msg: `${target.sequence} is behind (next ${state.nextBefore}, MAX(${target.column}) = ${state.maxId}${over}) but not moved: ${why}. A few keys far ahead of the rest are more often a mistaken or forged id than an import; check them (SELECT ${target.columnQuoted} FROM ${target.table} ORDER BY 1 DESC LIMIT 5). If they are right: SELECT setval(${sqlLiteral(target.sequence)}, ${state.after}); or raise remediation.max_jump`,
      };
    }
    case 'in_sync':
      return {
        event: 'in_sync',
        fields: { ...names, ...values, ...extra },
        msg: `${target.sequence} is not behind (next ${state.nextBefore}, MAX ${state.maxId ?? 'none: empty table'}${over}): nothing done`,
      };
  }
}

/**
 * Writes the audit record of one checked sequence. The daemon, `seqwatch fix` and the sweep all
 * describe their decisions through describeOutcome, so a decision reads the same whoever took it.
 */
export function writeSequenceOutcome(audit: AuditLog, target: SequenceTarget, state: SequenceState, extra: AuditFields = {}): void {
  const { event, fields, msg } = describeOutcome(target, state, extra);
  audit.write(event, fields, msg);
}
