import { systemClock, type Clock } from '../util/clock.js';
import type { AuditWriter, Trigger } from './AuditLog.js';

/** Distinct subjects of one reason audited one by one per window; the rest go into a summary record. */
export const DISTINCT_PER_WINDOW = 20;

export interface AuditThrottleOptions {
  /** How often the same decision (event, reason, subject) is audited at most (default: a minute). */
  windowMs?: number;
  distinctPerWindow?: number;
  clock?: Pick<Clock, 'now' | 'setTimer'>;
}

export interface OnceOptions {
  /** This decision's window, when not the default one. */
  windowMs?: number;
  /** What counts as "the same" decision (default: the sequence, else the constraint, else the source). */
  subject?: string;
  /**
   * The subject is a name read from a log, so it may come in floods (forged or garbled names): past
   * `distinctPerWindow` subjects of one reason the rest are summarised. Default: true for `skipped`;
   * alerts are about what the catalog confirmed, which the database itself bounds.
   */
  fromLog?: boolean;
}

interface ReasonWindow {
  event: 'skipped' | 'alert';
  reason: string;
  start: number;
  audited: number;
  names: Set<string>;
  /** Distinct names past the set's bound (counted, not kept). */
  moreNames: number;
  records: number;
  cancelTimer: (() => void) | undefined;
}

/** The key a decision is remembered by (lastAudited). */
const decisionKey = (event: string, reason: string, subject: string) => `${event}\u0000${reason}\u0000${subject}`;

/**
 * Decides what of a storm reaches the audit log. A decision is audited once per subject and reason
 * within its window, with the repeats since counted in the next one (`repeats_since_last`): a storm
 * of the same error must not bury the audit log. Past `distinctPerWindow` subjects of one reason
 * within the window (a storm of forged or garbled names), the rest are summarised in one record at
 * the window's end: how many names, how many records, a few examples.
 */
export class AuditThrottle {
  private readonly lastAudited = new Map<string, { at: number; repeats: number }>();
  /** Per event and reason: how many distinct subjects were audited this window, and those that were not. */
  private readonly reasonWindows = new Map<string, ReasonWindow>();
  private readonly clock: Pick<Clock, 'now' | 'setTimer'>;
  private readonly windowMs: number;
  private readonly distinctPerWindow: number;

  constructor(
    private readonly audit: AuditWriter,
    options: AuditThrottleOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.windowMs = options.windowMs ?? 60_000;
    this.distinctPerWindow = options.distinctPerWindow ?? DISTINCT_PER_WINDOW;
  }

  /** Audits a decision unless the same one was audited within its window (then it is counted). */
  once(event: 'skipped' | 'alert', trigger: Trigger, reason: string, msg: string, fields: Record<string, string> = {}, options: OnceOptions = {}): void {
    const windowMs = options.windowMs ?? this.windowMs;
    const subject = options.subject ?? fields.sequence ?? trigger.constraint ?? trigger.source;
    if (this.repeated(event, reason, subject, windowMs)) return;
    const now = this.clock.now();
    if ((options.fromLog ?? event === 'skipped') && !this.withinReasonBudget(event, reason, subject, windowMs, now)) return;
    const key = decisionKey(event, reason, subject);
    // Audited before, longer ago than the window: its repeats since are this record's.
    const seen = this.lastAudited.get(key);
    if (this.lastAudited.size >= 10_000) this.lastAudited.delete(this.lastAudited.keys().next().value!);
    this.lastAudited.set(key, { at: now, repeats: 0 });
    this.audit.write(event, { ...fields, reason, trigger, repeats_since_last: seen?.repeats ?? 0 }, msg);
  }

  /**
   * True, and the repeat counted as once() would count it, when the decision (event, reason,
   * subject) was audited within its window: its record would not be written, so whatever it would
   * say (a state to read from the database) need not be found out. False counts nothing.
   */
  repeated(event: 'skipped' | 'alert', reason: string, subject: string, windowMs = this.windowMs): boolean {
    const seen = this.lastAudited.get(decisionKey(event, reason, subject));
    if (!seen || this.clock.now() - seen.at >= windowMs) return false;
    seen.repeats++;
    return true;
  }

  /** Writes the summaries of the windows still open (at a stop). */
  flush(): void {
    for (const window of [...this.reasonWindows.values()]) this.summarise(window);
  }

  /** False when this reason has had its share of distinct subjects this window (the subject is counted for the summary). */
  private withinReasonBudget(event: 'skipped' | 'alert', reason: string, subject: string, windowMs: number, now: number): boolean {
    const key = `${event}\u0000${reason}`;
    let window = this.reasonWindows.get(key);
    if (window && now - window.start >= windowMs) {
      this.summarise(window);
      window = undefined;
    }
    if (!window) {
      window = { event, reason, start: now, audited: 0, names: new Set(), records: 0, moreNames: 0, cancelTimer: undefined };
      this.reasonWindows.set(key, window);
    }
    if (window.audited < this.distinctPerWindow) {
      window.audited++;
      return true;
    }
    window.records++;
    if (window.names.has(subject)) return false;
    if (window.names.size < 10_000) window.names.add(subject);
    else window.moreNames++;
    const flushing = window;
    window.cancelTimer ??= this.clock.setTimer(() => this.summarise(flushing), windowMs - (now - window.start));
    return false;
  }

  /** One record for the subjects of a reason that were not audited one by one. */
  private summarise(window: ReasonWindow): void {
    window.cancelTimer?.();
    window.cancelTimer = undefined;
    const key = `${window.event}\u0000${window.reason}`;
    if (this.reasonWindows.get(key) === window) this.reasonWindows.delete(key);
    if (window.records === 0) return;
    const distinct = window.names.size + window.moreNames;
    const examples = [...window.names].slice(0, 5);
    const since = new Date(window.start).toISOString();
    this.audit.write(
      window.event,
      { reason: window.reason, trigger: { source: 'summary' }, distinct_names: distinct, records: window.records, examples, since },
      `${distinct} more distinct name(s) with reason ${window.reason} in ${window.records} record(s) since ${since}, beyond the ${this.distinctPerWindow} audited one by one (e.g. ${examples.map((e) => JSON.stringify(e)).join(', ')}): ` +
        'each handled as those audited one by one, nothing was changed for them. A flood of names: a forged or garbled log, or an application producing many unique violations',
    );
  }
}
