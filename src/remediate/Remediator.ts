import { setTimeout as sleep } from 'node:timers/promises';
import pDebounce from 'p-debounce';
import type { AuditLog, Trigger } from '../audit/AuditLog.js';
import type { Incident } from '../detect/detectIncident.js';
import { guardedSetval } from '../db/guardedSetval.js';
import type { Queryable } from '../db/Queryable.js';
import type { IndexResolver, SequenceTarget } from '../db/resolveIndex.js';

export interface RemediatorOptions {
  db: Queryable;
  resolver: IndexResolver;
  audit: AuditLog;
  /** The database this daemon watches; records that name another one are not ours. */
  database: string;
  dryRun: boolean;
  /** After a check, incidents for the same sequence within this window coalesce into one more check. */
  debounceMs: number;
  /** How often the same skip (same constraint, same reason) is audited at most. */
  repeatAuditMs?: number;
  onWarning?: (message: string) => void;
}

export interface RemediatorCounters {
  incidents: number;
  otherDatabase: number;
  checks: number;
  remediated: number;
  failed: number;
}

interface SequenceSlot {
  target: SequenceTarget;
  /** Incidents since the last check started, and the first of them. */
  waiting: number;
  trigger: Trigger | undefined;
  run: () => Promise<void>;
}

/**
 * From incidents to decisions. Each incident is resolved through the catalog; each sequence it
 * names gets its own debouncer (p-debounce's promise mode with `after`): the first incident is
 * checked at once, runs for one sequence never overlap, and everything that arrives while a check
 * runs or during the debounce window after it makes at most one more check.
 */
export class Remediator {
  readonly counters: RemediatorCounters = { incidents: 0, otherDatabase: 0, checks: 0, remediated: 0, failed: 0 };
  private readonly slots = new Map<number, SequenceSlot>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly lastSkip = new Map<string, { at: number; repeats: number }>();

  constructor(private readonly options: RemediatorOptions) {}

  /** Takes an incident; never throws, never blocks the reading of logs. */
  handle(incident: Incident): void {
    if (incident.database !== undefined && incident.database !== this.options.database) {
      this.counters.otherDatabase++;
      return;
    }
    this.counters.incidents++;
    this.track(this.route(incident));
  }

  /** Waits until every check under way has finished (or the time is up); true when all finished. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await Promise.race([Promise.allSettled([...this.inFlight]), sleep(left)]);
    }
    return true;
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((error: Error) => this.options.onWarning?.(`internal error: ${error.stack ?? error.message}`));
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }

  private async route(incident: Incident): Promise<void> {
    const trigger = triggerOf(incident);
    let resolution;
    try {
      resolution = await this.options.resolver.resolve(incident.constraint);
    } catch (error) {
      this.counters.failed++;
      this.options.audit.write(
        'failed',
        { trigger, error: (error as Error).message },
        `could not look up constraint ${JSON.stringify(incident.constraint)} in the catalog: ${(error as Error).message}`,
      );
      return;
    }
    if (resolution.targets.length === 0 && resolution.nonSequence.length === 0) {
      this.skipOnce(trigger, 'unknown_constraint', `no unique index named ${JSON.stringify(incident.constraint)} in database ${this.options.database}: nothing to do`);
      return;
    }
    for (const index of resolution.nonSequence) {
      this.skipOnce(
        trigger,
        'not_sequence_fed',
        `${index.index} on ${index.table} (${index.columns.join(', ')}) is not fed by a sequence: a genuine duplicate, left to the application`,
        { table: index.table, index: index.index },
      );
    }
    for (const target of resolution.targets) this.track(this.enqueue(target, trigger));
  }

  /** Counts the incident against its sequence and makes sure a check will see it. */
  private enqueue(target: SequenceTarget, trigger: Trigger): Promise<void> {
    let slot = this.slots.get(target.sequenceOid);
    if (!slot) {
      const created: SequenceSlot = {
        target,
        waiting: 0,
        trigger: undefined,
        run: pDebounce.promise(
          async () => {
            await this.check(created);
            await sleep(this.options.debounceMs);
          },
          { after: true },
        ),
      };
      slot = created;
      this.slots.set(target.sequenceOid, slot);
    }
    slot.target = target;
    slot.waiting++;
    slot.trigger ??= trigger;
    return slot.run();
  }

  private async check(slot: SequenceSlot): Promise<void> {
    const { target } = slot;
    const trigger = slot.trigger!;
    const incidents = slot.waiting;
    slot.waiting = 0;
    slot.trigger = undefined;
    this.counters.checks++;
    const names = { table: target.table, sequence: target.sequence, column: target.column };
    this.options.audit.write(
      'detected',
      { ...names, trigger, incidents },
      `${incidents === 1 ? 'a duplicate key error' : `${incidents} duplicate key errors`} on ${target.index}: checking ${target.sequence} against ${target.table}.${target.column}`,
    );
    let state;
    try {
      state = await guardedSetval(this.options.db, target, !this.options.dryRun);
    } catch (error) {
      this.counters.failed++;
      // The table may have changed underneath (dropped, renamed): look the name up afresh next time.
      this.options.resolver.forget(trigger.constraint);
      this.options.audit.write(
        'failed',
        { ...names, trigger, error: (error as Error).message },
        `checking ${target.sequence} failed: ${(error as Error).message}`,
      );
      return;
    }
    const values = { before: state.before, max_id: state.maxId };
    switch (state.verdict) {
      case 'remediated':
        this.counters.remediated++;
        this.options.audit.write(
          'remediated',
          { ...names, ...values, after: state.after, trigger },
          `moved ${target.sequence} from ${state.before} to ${state.after} (MAX(${target.column}) = ${state.maxId}); the next INSERT gets ${BigInt(state.after!) + BigInt(state.increment)}`,
        );
        return;
      case 'planned':
        this.options.audit.write(
          'planned',
          { ...names, ...values, after: state.after, trigger },
          `dry run: would move ${target.sequence} from ${state.before} to ${state.after} (MAX(${target.column}) = ${state.maxId})`,
        );
        return;
      case 'exhausted':
        this.options.audit.write(
          'alert',
          { ...names, ...values, limit: state.limit, reason: 'sequence_exhausted', trigger },
          `${target.sequence} is behind (next ${state.nextBefore}, MAX ${state.maxId}) but the table's keys reach the sequence's limit ${state.limit}: setval cannot help; widen the column and sequence (ALTER ... TYPE bigint, ALTER SEQUENCE ... MAXVALUE) or renumber`,
        );
        return;
      case 'in_sync':
        this.options.audit.write(
          'in_sync',
          { ...names, ...values, trigger },
          `${target.sequence} is not behind (next ${state.nextBefore}, MAX ${state.maxId ?? 'none: empty table'}): nothing done`,
        );
        return;
    }
  }

  /** Audits a skip once per constraint and reason within the repeat window, counting the rest. */
  private skipOnce(trigger: Trigger, reason: string, msg: string, fields: Record<string, string> = {}): void {
    const key = `${reason}\u0000${trigger.constraint}`;
    const now = Date.now();
    const seen = this.lastSkip.get(key);
    if (seen && now - seen.at < (this.options.repeatAuditMs ?? 60_000)) {
      seen.repeats++;
      return;
    }
    if (this.lastSkip.size >= 10_000) this.lastSkip.delete(this.lastSkip.keys().next().value!);
    this.lastSkip.set(key, { at: now, repeats: 0 });
    this.options.audit.write('skipped', { ...fields, reason, trigger, repeats_since_last: seen?.repeats ?? 0 }, msg);
  }
}

function triggerOf(incident: Incident): Trigger {
  const trigger: Trigger = { source: incident.source, constraint: incident.constraint };
  if (incident.line !== undefined) trigger.line = incident.line;
  if (incident.offset !== undefined) trigger.offset = incident.offset;
  if (incident.logTime !== undefined) trigger.log_time = incident.logTime;
  return trigger;
}
