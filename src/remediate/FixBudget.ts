import type { SequenceTarget } from '../db/resolveIndex.js';
import { systemClock, type Clock } from '../util/clock.js';

export const HOUR = 3_600_000;

export interface FixBudgetSettings {
  /** After a fix, the next fix of the same sequence waits at least this long. */
  cooldownMs?: number;
  /** Past this many fixes of one sequence for one table within an hour: no more fixes for the hour. */
  maxFixesPerHour?: number;
}

/** Whether a sequence may be fixed for a table now, as far as the hourly cap goes. */
export type CapVerdict =
  | { capped: false }
  /** `fixes` within the hour; the oldest of them leaves the hour at `until` (ms since the epoch). */
  | { capped: true; fixes: number; until: number };

type Budgeted = Pick<SequenceTarget, 'sequenceOid' | 'tableOid'>;

/**
 * How often seqwatch may move one sequence: the cooldown (per sequence, any table) and the hourly
 * cap (per sequence and table, so that errors on another table sharing the sequence cannot spend
 * the cap of the sequence's own table). It gives verdicts; the caller decides what to audit.
 */
export class FixBudget {
  /** When each sequence was fixed for each table within the last hour (oldest first). */
  private readonly fixTimes = new Map<string, number[]>();
  /** When each sequence was last fixed (any table). */
  private readonly lastFixAt = new Map<number, number>();

  constructor(
    private settings: FixBudgetSettings,
    private readonly clock: Pick<Clock, 'now'> = systemClock,
  ) {}

  /** New settings (a reloaded config) apply from the next question on; the fixes counted so far stay. */
  update(settings: FixBudgetSettings): void {
    this.settings = settings;
  }

  /** The hourly cap for this sequence and table. */
  cap(target: Budgeted): CapVerdict {
    const recent = this.recentFixes(target, this.clock.now());
    if (recent.length < (this.settings.maxFixesPerHour ?? Infinity)) return { capped: false };
    return { capped: true, fixes: recent.length, until: recent[0]! + HOUR };
  }

  /** How long a fix of this sequence must still wait for the cooldown, in ms (0: it may go now). */
  cooldownLeft(target: Budgeted): number {
    const last = this.lastFixAt.get(target.sequenceOid);
    if (last === undefined) return 0;
    return Math.max(0, last + (this.settings.cooldownMs ?? 0) - this.clock.now());
  }

  /** A fix happened: it counts against the cap and starts the cooldown. */
  recordFix(target: Budgeted): void {
    const now = this.clock.now();
    this.recentFixes(target, now).push(now);
    this.lastFixAt.set(target.sequenceOid, now);
  }

  private recentFixes(target: Budgeted, now: number): number[] {
    const key = `${target.sequenceOid}:${target.tableOid}`;
    const recent = (this.fixTimes.get(key) ?? []).filter((t) => now - t < HOUR);
    this.fixTimes.set(key, recent);
    return recent;
  }
}
