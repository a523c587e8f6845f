import type { SequenceState } from '../db/guardedSetval.js';
import type { SequenceTarget } from '../db/resolveIndex.js';
import type { AuditFields, AuditLog } from './AuditLog.js';

/**
 * The audit record of one checked sequence, worded for the person who reads it at 3 a.m.
 * The daemon, `seqwatch fix` and the sweep all write through here, so a decision reads the same
 * whoever took it.
 */
export function writeSequenceOutcome(audit: AuditLog, target: SequenceTarget, state: SequenceState, extra: AuditFields = {}): void {
  const names = { table: target.table, sequence: target.sequence, column: target.column };
  const values = { before: state.before, max_id: state.maxId };
  switch (state.verdict) {
    case 'remediated':
      audit.write(
        'remediated',
        { ...names, ...values, after: state.after, ...extra },
        `moved ${target.sequence} from ${state.before} to ${state.after} (MAX(${target.column}) = ${state.maxId}); the next INSERT gets ${BigInt(state.after!) + BigInt(state.increment)}`,
      );
      return;
    case 'planned':
      audit.write(
        'planned',
        { ...names, ...values, after: state.after, ...extra },
        `dry run: would move ${target.sequence} from ${state.before} to ${state.after} (MAX(${target.column}) = ${state.maxId})`,
      );
      return;
    case 'exhausted':
      audit.write(
        'alert',
        { ...names, ...values, limit: state.limit, reason: 'sequence_exhausted', ...extra },
        `${target.sequence} is behind (next ${state.nextBefore}, MAX ${state.maxId}) but the table's keys reach the sequence's limit ${state.limit}: setval cannot help; widen the column and sequence (ALTER ... TYPE bigint, ALTER SEQUENCE ... MAXVALUE) or renumber`,
      );
      return;
    case 'in_sync':
      audit.write(
        'in_sync',
        { ...names, ...values, ...extra },
        `${target.sequence} is not behind (next ${state.nextBefore}, MAX ${state.maxId ?? 'none: empty table'}): nothing done`,
      );
      return;
  }
}
