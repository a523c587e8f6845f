import { setMaxListeners } from 'node:events';
import type { AuditWriter, Trigger } from '../audit/AuditLog.js';
import type { AuditThrottle } from '../audit/AuditThrottle.js';
import { describeOutcome, type Outcome } from '../audit/writeSequenceOutcome.js';
import { needsFullScan, type SequenceState } from '../db/guardedSetval.js';
import type { SequenceTarget } from '../db/resolveIndex.js';
import { traceHeal } from '../metrics/healTrace.js';
import { systemClock, type Clock } from '../util/clock.js';
import { deferred, type Deferred } from '../util/deferred.js';
import { fullScan, quietChecks, recurringDrift } from './advice.js';
import { HOUR, type FixBudget } from './FixBudget.js';

const DAY = 24 * HOUR;

/** The guarded check of one sequence (act: move it when behind); undefined when it failed (audited) or the daemon stopped. */
export type CheckSequence = (target: SequenceTarget, act: boolean, trigger: Trigger) => Promise<SequenceState | undefined>;

export interface SequenceCheckSettings {
  database: string;
  dryRun: boolean;
  /** After a check, incidents for the same sequence within this window coalesce into one more check. */
  debounceMs: number;
  /** After a check that changed nothing, the next waits this long (the hold-off); a fix waits it after a fix (FixBudget). */
  cooldownMs?: number;
}

export interface SequenceChecksOptions {
  check: CheckSequence;
  audit: AuditWriter;
  throttle: AuditThrottle;
  budget: FixBudget;
  /** Read at each check: a reloaded config applies from the next check on. */
  settings: () => SequenceCheckSettings;
  /** The remediator's counters this part moves. */
  counters: { checks: number; remediated: number };
  /** A check failed: look the constraint name up afresh next time (the table may have been dropped or renamed). */
  forget: (constraint: string) => void;
  /** In-sync checks within this window after an audited one are counted, not audited one by one. */
  repeatAuditMs?: number;
  /** The bound on a full-scan check, for the advice. */
  fullScanTimeoutMs: number;
  clock?: Clock;
}

interface SequenceSlot {
  target: SequenceTarget;
  /** Incidents since the last check started, and the first of them. */
  waiting: number;
  trigger: Trigger | undefined;
  /**
   * The incidents waiting for the next check, all answered by one promise: a storm of one name
   * holds nothing per error while it waits (10,000 errors held ~30 MB when each had its own).
   */
  next: Deferred | undefined;
  /** A check, or the pause after it, is under way: whatever arrives waits for the next check. */
  busy: boolean;
  /** The last check found the sequence in sync (its in-sync records may then be quiet). */
  inSync: boolean;
  /**
   * The last check changed nothing and another check soon would not either (in sync, held,
   * exhausted, capped, failed): the next check waits the cooldown instead of the debounce.
   */
  holdOff: boolean;
  /** Checks found in sync and not yet audited one by one (see writeQuiet). */
  quiet: { checks: number; since: number };
  /** Cancels the timer that writes the counted checks at their window's end. */
  cancelQuiet: (() => void) | undefined;
  /** When a record about this slot was last written. */
  lastAuditAt: number;
}

/**
 * The checks of each sequence an incident named. Every sequence (and table) has its own single
 * flight: the first incident is checked at once, checks of one sequence never overlap, and
 * everything that arrives while a check runs or during the pause after it (the debounce window)
 * makes at most one more check. An incident's promise settles once the check that saw it is
 * audited, not after the pause that follows (a hold-off lasts the cooldown: a storm's promises
 * would be held that long). After a check that changed nothing,
 * the pause is the cooldown (the hold-off): errors on a healthy table (forged ones) cost one check
 * per cooldown, not one per debounce. A fix within the cooldown of the last one waits for its end;
 * past the hourly cap, nothing is fixed and one alert says so. Each check is audited (detected, then
 * its outcome), except repeated in-sync ones, which are summed up (writeQuiet).
 */
export class SequenceChecks {
  /**
   * One slot per sequence and table: a sequence shared by two tables is checked against the table
   * whose index the error named (the advisory lock still serialises them per sequence).
   */
  private readonly slots = new Map<string, SequenceSlot>();
  /** Aborted at a stop: the pauses end at once. */
  private readonly pauses = new AbortController();
  private readonly clock: Clock;

  constructor(private readonly options: SequenceChecksOptions) {
    this.clock = options.clock ?? systemClock;
    // Every sequence's pause listens to this signal: many at once is normal.
    setMaxListeners(0, this.pauses.signal);
  }

  /** Counts the incidents against their sequence; settles once a check has seen them (and its outcome is audited). */
  enqueue(target: SequenceTarget, trigger: Trigger, incidents: number): Promise<void> {
    const key = `${target.sequenceOid}:${target.tableOid}:${target.column}`;
    let slot = this.slots.get(key);
    if (!slot) {
      slot = {
        target,
        waiting: 0,
        trigger: undefined,
        inSync: false,
        holdOff: false,
        quiet: { checks: 0, since: 0 },
        cancelQuiet: undefined,
        lastAuditAt: 0,
        next: undefined,
        busy: false,
      };
      this.slots.set(key, slot);
    }
    slot.target = target;
    slot.waiting += incidents;
    slot.trigger ??= trigger;
    slot.next ??= deferred();
    const { promise } = slot.next;
    if (!slot.busy) void this.run(slot);
    return promise;
  }

  /** Checks while incidents wait, each check followed by its pause (the debounce, or the cooldown after a check that changed nothing). */
  private async run(slot: SequenceSlot): Promise<void> {
    slot.busy = true;
    try {
      while (slot.next !== undefined) {
        const answered = slot.next;
        slot.next = undefined;
        try {
          await this.check(slot);
          answered.resolve();
        } catch (error) {
          answered.reject(error as Error);
        }
        const { debounceMs, cooldownMs } = this.options.settings();
        await this.clock.sleep(Math.max(debounceMs, slot.holdOff ? (cooldownMs ?? 0) : 0), this.pauses.signal);
      }
    } finally {
      slot.busy = false;
    }
  }

  /** For a stop: no more pauses (debounce, hold-off, cooldown); waiting incidents are checked at once. */
  stopPausing(): void {
    this.pauses.abort();
  }

  /** Writes the counted in-sync checks of every sequence (at a stop). */
  flush(): void {
    for (const slot of this.slots.values()) this.writeQuiet(slot);
  }

  private async check(slot: SequenceSlot): Promise<void> {
    const { target } = slot;
    if (slot.waiting === 0) return;
    const trigger = slot.trigger!;
    const incidents = slot.waiting;
    slot.waiting = 0;
    slot.trigger = undefined;
    this.options.counters.checks++;
    const { database, dryRun } = this.options.settings();
    const { audit, throttle, budget } = this.options;
    const now = this.clock.now();
    const windowMs = this.options.repeatAuditMs ?? 60_000;
    if (slot.quiet.checks > 0 && now - slot.quiet.since >= windowMs) this.writeQuiet(slot);
    const quiet = slot.inSync && now - slot.lastAuditAt < windowMs;
    const scan = needsFullScan(target);
    const names = { database, table: target.table, sequence: target.sequence, column: target.column };
    audit.write(
      'detected',
      { ...names, trigger, incidents, ...(scan ? { full_scan: true } : {}) },
      `${incidents === 1 ? 'a duplicate key error' : `${incidents} duplicate key errors`} on ${target.index}: checking ${target.sequence} against ${target.table}.${target.column}${target.peers?.length ? ` and the ${target.peers.length} other table(s) it feeds` : ''}`,
    );
    if (scan) {
      throttle.once(
        'alert',
        trigger,
        'full_scan',
        fullScan(target, this.options.fullScanTimeoutMs),
        { table: target.table, sequence: target.sequence },
        { windowMs: DAY, subject: `${target.table}.${target.column}` },
      );
    }
    if (!dryRun && capped(budget, throttle, target, trigger)) {
      slot.inSync = false;
      slot.holdOff = true;
      return;
    }
    const check = async (act: boolean) => {
      traceHeal('check', { sequence: target.sequence });
      const checked = await this.options.check(target, act, trigger);
      traceHeal('fixed', { sequence: target.sequence, verdict: checked?.verdict });
      return checked;
    };
    let state = !dryRun && budget.cooldownLeft(target) > 0 ? await check(false) : undefined;
    // Within the cooldown only a fix waits: a sequence found in sync is reported at once.
    if (state?.verdict === 'planned') await this.clock.sleep(budget.cooldownLeft(target), this.pauses.signal);
    if (!state || state.verdict === 'planned') state = await check(!dryRun);
    if (!state) {
      slot.inSync = false;
      slot.holdOff = true;
      if (trigger.constraint !== undefined) this.options.forget(trigger.constraint);
      return;
    }
    if (quiet && state.verdict === 'in_sync') {
      slot.holdOff = true;
      if (slot.quiet.checks === 0) {
        slot.quiet.since = now;
        // Written at the window's end even when no check follows (it had waited for the next one or the stop).
        slot.cancelQuiet = this.clock.setTimer(() => this.writeQuiet(slot), windowMs);
      }
      slot.quiet.checks++;
      return;
    }
    if (quiet) this.writeQuiet(slot);
    slot.inSync = state.verdict === 'in_sync';
    slot.holdOff = state.verdict !== 'remediated';
    slot.lastAuditAt = this.clock.now();
    if (state.verdict === 'remediated') {
      this.options.counters.remediated++;
      budget.recordFix(target);
    }
    auditOutcome(audit, throttle, target, describeOutcome(target, state, { database, trigger }), trigger);
    traceHeal('audited', { sequence: target.sequence });
  }

  /**
   * After a check found the sequence in sync, further checks that find it in sync again within the
   * repeat window are not audited one by one (each has its `detected` record, which counts its
   * errors): they are counted (slot.quiet) and written as one `in_sync` record before the next
   * record of that sequence, at the window's end, or at the stop.
   */
  private writeQuiet(slot: SequenceSlot): void {
    slot.cancelQuiet?.();
    slot.cancelQuiet = undefined;
    const { quiet, target } = slot;
    if (quiet.checks === 0) return;
    const since = new Date(quiet.since).toISOString();
    this.options.audit.write(
      'in_sync',
      {
        database: this.options.settings().database,
        table: target.table,
        sequence: target.sequence,
        column: target.column,
        trigger: { source: 'summary' },
        checks: quiet.checks,
        since,
      },
      quietChecks(target.sequence, quiet.checks, since),
    );
    slot.quiet = { checks: 0, since: 0 };
    slot.lastAuditAt = this.clock.now();
  }
}

/**
 * Past the hourly cap, something keeps writing explicit ids: say so once an hour (alert) and leave
 * the sequence to a person until the hour has passed. True when capped.
 */
export function capped(budget: FixBudget, throttle: AuditThrottle, target: SequenceTarget, trigger: Trigger): boolean {
  const verdict = budget.cap(target);
  if (!verdict.capped) return false;
  const until = new Date(verdict.until).toISOString();
  throttle.once(
    'alert',
    trigger,
    'recurring_drift',
    recurringDrift(target, verdict.fixes, until),
    { table: target.table, sequence: target.sequence, fixes_last_hour: String(verdict.fixes), paused_until: until },
    { windowMs: HOUR, subject: `${target.sequence} ${target.table}` },
  );
  return true;
}

/** Writes a checked sequence's outcome; held and exhausted are the same state every check: a person needs them once an hour. */
export function auditOutcome(audit: AuditWriter, throttle: AuditThrottle, target: SequenceTarget, outcome: Outcome, trigger: Trigger): void {
  if (outcome.event === 'alert') {
    throttle.once('alert', trigger, String(outcome.fields.reason), outcome.msg, stringFields(outcome.fields), { windowMs: HOUR, subject: target.sequence });
    return;
  }
  audit.write(outcome.event, outcome.fields, outcome.msg);
}

/** Audit fields as the throttle takes them (strings), from an Outcome's fields. */
function stringFields(fields: Record<string, unknown>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields))
    if (v !== undefined && v !== null && k !== 'trigger' && k !== 'reason') result[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return result;
}
