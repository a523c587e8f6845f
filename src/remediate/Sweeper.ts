import type { AuditWriter, Trigger } from '../audit/AuditLog.js';
import type { AuditThrottle } from '../audit/AuditThrottle.js';
import { describeOutcome } from '../audit/writeSequenceOutcome.js';
import { checkSequenceBatches } from '../db/checkSequences.js';
import type { JumpGuard, SequenceState, Transactional } from '../db/guardedSetval.js';
import { missingPrivileges } from '../db/privileges.js';
import type { SequenceTarget } from '../db/resolveIndex.js';
import { uncheckable } from './advice.js';
import { HOUR, type FixBudget } from './FixBudget.js';
import { auditOutcome, capped } from './SequenceChecks.js';
import type { TablePolicy } from './TablePolicy.js';
import { attempt, type OutageWait } from './whenAvailable.js';

export interface SweepSettings {
  database: string;
  dryRun: boolean;
  policy?: TablePolicy;
  maxJump?: number;
  nearLimitPercent?: number;
}

export interface SweeperOptions {
  db: Transactional;
  audit: AuditWriter;
  throttle: AuditThrottle;
  budget: FixBudget;
  /** Waiting out outages: a sweep during a failover goes on once the database is back. */
  outage: OutageWait;
  /** Read at each sweep: a reloaded config applies from the next sweep on. */
  settings: () => SweepSettings;
  counters: { remediated: number; failed: number };
  fullScanTimeoutMs: number;
}

/**
 * The periodic sweep: every sequence-fed column (as listed by the caller) checked, drift healed
 * before the first INSERT fails. Audited like any other decision, except "in sync", which would
 * only repeat itself every interval. The watch (src/watch) checks the tables that received rows
 * through here too, with its own trigger; `onChecked` hears every state (its headroom metrics).
 * A table seqwatch may not read is checked one by one (checkSequences' error policy), so it cannot
 * stop the others from being healed; it is alerted once an hour with the GRANT it needs.
 */
export class Sweeper {
  constructor(private readonly options: SweeperOptions) {}

  async sweep(columns: SequenceTarget[], trigger: Trigger, onChecked?: (target: SequenceTarget, state: SequenceState) => void): Promise<void> {
    const settings = this.options.settings();
    const { budget, throttle } = this.options;
    const act = !settings.dryRun;
    const eligible = columns.filter((c) => (settings.policy?.allowsTarget(c) ?? true) && !(act && capped(budget, throttle, c, trigger)));
    // Given up waiting for the database (a stop): the sweep ends there, as every other check does.
    const stopped = new AbortController();
    const checks = checkSequenceBatches(this.options.db, eligible, {
      fix: act,
      exclusive: true,
      guard: { maxJump: settings.maxJump, nearLimitPercent: settings.nearLimitPercent } satisfies JumpGuard,
      fullScanTimeoutMs: this.options.fullScanTimeoutMs,
      batch: SWEEP_BATCH,
      run: (statement) => this.waitingOutOutages(statement, trigger, stopped),
      signal: stopped.signal,
    });
    for await (const batch of checks) {
      for (const { target, state, error } of batch) {
        if (state) {
          onChecked?.(target, state);
          this.outcome(target, state, trigger, settings.database);
        } else {
          await this.reportUncheckable(target, error ?? 'unknown error', trigger);
        }
      }
    }
  }

  /** Runs a statement, waiting out outages; throws what is not an outage, and when it gave up waiting (then `stopped` is aborted). */
  private async waitingOutOutages<R>(statement: () => Promise<R>, trigger: Trigger, stopped: AbortController): Promise<R> {
    const result = await attempt(this.options.outage, statement, { trigger, what: 'sweeping' });
    if (!result) {
      stopped.abort();
      throw new Error('gave up waiting for the database');
    }
    if ('error' in result) throw result.error;
    return result.ok;
  }

  private outcome(target: SequenceTarget, state: SequenceState, trigger: Trigger, database: string): void {
    if (state.verdict === 'in_sync') return;
    const outcome = describeOutcome(target, state, { database, trigger });
    if (state.verdict === 'remediated') {
      this.options.counters.remediated++;
      this.options.budget.recordFix(target);
    }
    auditOutcome(this.options.audit, this.options.throttle, target, outcome, trigger);
  }

  /** A table the sweep could not check: one alert an hour, with the GRANTs the catalog says are missing. */
  private async reportUncheckable(target: SequenceTarget, error: string, trigger: Trigger): Promise<void> {
    this.options.counters.failed++;
    const missing = await this.options.db.transaction((client) => missingPrivileges(client, target)).catch(() => undefined);
    const grant = missing && missing.grants.length > 0 ? `: seqwatch's role ${missing.role} needs ${missing.grants.join(' ')}` : '';
    this.options.throttle.once(
      'alert',
      trigger,
      grant ? 'table_unreadable' : 'check_failed',
      uncheckable(target, error, grant, this.options.fullScanTimeoutMs),
      { table: target.table, sequence: target.sequence, error },
      { windowMs: HOUR, subject: target.table },
    );
  }
}

/** Targets per statement in the sweep: it holds their advisory locks while it runs, so fewer than `check` takes. */
const SWEEP_BATCH = 100;
