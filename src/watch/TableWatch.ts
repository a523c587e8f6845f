import type { Trigger } from '../audit/AuditLog.js';
import type { SequenceState } from '../db/guardedSetval.js';
import { listSequenceColumns, type SequenceColumn } from '../db/listSequenceColumns.js';
import type { Queryable } from '../db/Queryable.js';
import type { SequenceTarget } from '../db/resolveIndex.js';
import { compareActivity, readActivity, type ActivitySnapshot } from './tableActivity.js';

/** What the watch needs of the remediation: the sweep, which applies policy, caps and the audit. */
export interface WatchRemediation {
  sweep(columns: SequenceTarget[], trigger: Trigger, onChecked: (target: SequenceTarget, state: SequenceState) => void): Promise<void>;
}

export interface WatchSettings {
  /** How often the statistics are read. */
  intervalMs: number;
  /** How often every sequence is checked whatever the statistics say. */
  fullSweepMs: number;
}

export interface TableWatchOptions extends WatchSettings {
  db: Queryable;
  remediation: WatchRemediation;
  /** Said once when the server turns out to be a standby, and once when it is a primary again. */
  onStandby?: (standby: boolean) => void;
  onWarning?: (message: string, detail: Record<string, unknown>) => void;
}

/** What the watch has done, for /metrics. */
export interface WatchStats {
  rounds: number;
  /** Rounds that checked every sequence (first look, statistics reset, restart, the long interval). */
  fullSweeps: number;
  /** Root tables found to have received rows, summed over rounds. */
  changedTables: number;
  /** Sequences checked, summed over rounds (full sweeps included). */
  checkedSequences: number;
  /** Rounds that failed (the database away, a statement refused). */
  failedRounds: number;
  /** When the last successful round ended (ms since the epoch; 0 before the first), and what the last round cost. */
  lastRoundAt: number;
  lastRoundMs: number;
  /** The server is a standby: nothing is checked there. */
  standby: boolean;
  /** Per sequence last checked: how much of its range the larger of its next value and MAX uses (0..1). */
  used: Map<string, number>;
}

/**
 * The proactive watch: every `intervalMs`, one statistics query (tableActivity) says which tables
 * received rows since the last look, and only their sequences are checked (and healed when
 * behind) through the remediation's sweep, audited with `trigger.source: "watch"`. Every
 * `fullSweepMs`, and whenever the statistics cannot be compared (first look, restart, failover,
 * reset), every sequence is checked instead. Nothing is checked on a standby.
 *
 * It heals drift that no log line announces (an upsert that silently keeps the old row) and
 * needs no log at all (managed databases). Its delay is the statistics' own: a backend publishes
 * its counters when a transaction ends, at most once a second (PostgreSQL 15+: an idle backend
 * holding newer counters publishes them within 10 s; 13/14: at its next transaction or exit), so
 * the full sweep stays behind it as the net.
 */
export class TableWatch {
  readonly stats: WatchStats = {
    rounds: 0,
    fullSweeps: 0,
    changedTables: 0,
    checkedSequences: 0,
    failedRounds: 0,
    lastRoundAt: 0,
    lastRoundMs: 0,
    standby: false,
    used: new Map(),
  };
  private previous: ActivitySnapshot | undefined;
  private columns: SequenceColumn[] = [];
  /** Root tables the statistics showed when the columns were listed: a root not among them is new. */
  private listedRoots = new Set<number>();
  /** Targets that got no answer even alone (no SELECT on the table, policy, hourly cap): until the next full sweep. */
  private readonly setAside = new Set<string>();
  private lastFullAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private settings: WatchSettings;

  constructor(private readonly options: TableWatchOptions) {
    this.settings = { intervalMs: options.intervalMs, fullSweepMs: options.fullSweepMs };
  }

  /** The first round at once (a full sweep: there is nothing to compare with yet), then every interval. */
  start(): void {
    this.schedule(0);
  }

  updateSettings(settings: WatchSettings): void {
    const sooner = settings.intervalMs < this.settings.intervalMs;
    this.settings = settings;
    if (sooner && !this.running && !this.stopped) this.schedule(settings.intervalMs);
  }

  /** No new round starts; resolves when the one under way has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.round().finally(() => {
        this.running = undefined;
        this.schedule(this.settings.intervalMs);
      });
    }, delayMs);
  }

  /** One look at the statistics and the checks it calls for. Never throws. */
  async round(): Promise<void> {
    const started = Date.now();
    try {
      await this.look();
      // Only a round that looked: a watch whose rounds fail is seen to stand still (SeqwatchWatchStalled).
      this.stats.lastRoundAt = Date.now();
    } catch (error) {
      // The server may have restarted, crashed (its counters discarded) or failed over meanwhile:
      // the next look that succeeds checks everything.
      this.previous = undefined;
      this.stats.failedRounds++;
      this.options.onWarning?.('watch round failed; the next one retries', { err: (error as Error).message });
    } finally {
      this.stats.rounds++;
      this.stats.lastRoundMs = Date.now() - started;
    }
  }

  private async look(): Promise<void> {
    const { db } = this.options;
    const snapshot = await readActivity(db);
    if (snapshot.inRecovery !== this.stats.standby) {
      this.stats.standby = snapshot.inRecovery;
      this.options.onStandby?.(snapshot.inRecovery);
    }
    if (snapshot.inRecovery) {
      // A standby's values are not the primary's: never checked. Once it is promoted, its
      // counters start from its own history: the first look there checks everything.
      this.previous = undefined;
      return;
    }
    const change = compareActivity(this.previous, snapshot);
    const full = change.everything || Date.now() - this.lastFullAt >= this.settings.fullSweepMs;
    if (!full && change.roots.size === 0) {
      this.previous = snapshot;
      return;
    }
    if (full || [...change.roots].some((root) => !this.listedRoots.has(root))) {
      this.columns = await listSequenceColumns(db);
      this.listedRoots = new Set([...snapshot.tables.values()].map((t) => t.root));
    }
    if (full) this.setAside.clear();
    const targets = full ? this.columns : this.columns.filter((c) => change.roots.has(c.tableOid) && !this.setAside.has(keyOf(c)));
    const checked = await this.check(targets);
    if (full) {
      this.stats.fullSweeps++;
      this.lastFullAt = Date.now();
    } else {
      this.stats.changedTables += change.roots.size;
    }
    // One table the role may not read (or the policy leaves alone) must not keep the others of its
    // batch from being healed: the rest are checked one by one, and a target that still gets no
    // answer is set aside until the next full sweep, so that a busy table does not fill the audit
    // log with the same failure every round.
    const unchecked = targets.filter((t) => !checked.has(keyOf(t)));
    if (unchecked.length > 0 && targets.length > 1 && !this.stopped) {
      for (const target of unchecked) {
        if ((await this.check([target])).size === 0) this.setAside.add(keyOf(target));
      }
    } else {
      for (const target of unchecked) this.setAside.add(keyOf(target));
    }
    this.previous = snapshot;
  }

  /** Checks (and heals) through the remediation; the keys of the targets that got an answer. */
  private async check(targets: SequenceTarget[]): Promise<Set<string>> {
    const checked = new Set<string>();
    if (targets.length === 0) return checked;
    await this.options.remediation.sweep(targets, { source: 'watch' }, (target, state) => {
      checked.add(keyOf(target));
      this.stats.checkedSequences++;
      this.recordUse(target, state);
      // Dry run: a busy table that lags would be `planned` again every round; once per full sweep is enough.
      if (state.verdict === 'planned') this.setAside.add(keyOf(target));
    });
    return checked;
  }

  /** How much of the sequence's range is used: the larger of its next value and MAX, over its limit. */
  private recordUse(target: SequenceTarget, state: SequenceState): void {
    const limit = Number(state.limit);
    if (!Number.isFinite(limit) || limit === 0) return;
    const next = Number(state.nextBefore);
    const max = state.maxId === null ? next : Number(state.maxId);
    const ascending = Number(state.increment) > 0;
    const furthest = ascending ? Math.max(next, max) : Math.min(next, max);
    this.stats.used.set(target.sequence, Math.max(0, Math.min(1, furthest / limit)));
  }
}

const keyOf = (t: SequenceTarget) => `${t.sequenceOid}:${t.tableOid}:${t.column}`;
