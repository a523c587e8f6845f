import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditWriter, Trigger } from '../audit/AuditLog.js';
import { AuditThrottle } from '../audit/AuditThrottle.js';
import { expectedSqlstate, sqlstateContradicts, type Incident } from '../detect/detectIncident.js';
import { guardedSetvalExclusive, type SequenceState, type Transactional } from '../db/guardedSetval.js';
import { namesAnIndex, type IndexResolver, type Resolution, type SequenceTarget } from '../db/resolveIndex.js';
import { refusalText } from '../db/trustRule.js';
import { SequenceErrorVerifier, type SequenceErrorKind } from '../db/verifySequenceError.js';
import { traceHeal } from '../metrics/healTrace.js';
import { LogTimes } from '../replay/logTimes.js';
import { systemClock, type Clock } from '../util/clock.js';
import { deferred, type Deferred } from '../util/deferred.js';
import { SharedAll } from '../util/sharedAll.js';
import { replicationConflict, SEQUENCE_ERROR_ADVICE, sqlstateMismatch, staleRecord, unverifiedSequenceError } from './advice.js';
import { FixBudget, HOUR } from './FixBudget.js';
import { SequenceChecks } from './SequenceChecks.js';
import { Sweeper } from './Sweeper.js';
import type { TablePolicy } from './TablePolicy.js';
import { OutageWaits, whenAvailable, type OutageWait, type WorkDescription } from './whenAvailable.js';

/** What remediation needs of the database: transactions, and a way to wait out an outage. */
export interface RemediationDatabase extends Transactional {
  waitUntilAvailable(signal?: AbortSignal): Promise<void>;
}

export interface RemediationSettings {
  /** The database this daemon watches; records that name another one are not ours. */
  database: string;
  dryRun: boolean;
  /** After a check, incidents for the same sequence within this window coalesce into one more check. */
  debounceMs: number;
  /** Which tables may be acted on. */
  policy?: TablePolicy;
  /** After a fix, the next fix of the same sequence waits at least this long. */
  cooldownMs?: number;
  /** Past this many fixes of one sequence within an hour: alert, and stop acting on it for the hour. */
  maxFixesPerHour?: number;
  /** Records logged longer ago than this are not acted on: checked read-only, audited as skipped. */
  staleAfterMs?: number;
  /** The jump guard (remediation.max_jump): a fix moving a sequence further than this is an alert. */
  maxJump?: number;
  /** The jump guard (remediation.near_limit_percent): a fix into the last part of the range is an alert. */
  nearLimitPercent?: number;
}

export interface RemediatorOptions extends RemediationSettings {
  db: RemediationDatabase;
  /** The catalog's answers (IndexResolver); the warm-up's answers for its made-up name (warmUp.ts). */
  resolver: Pick<IndexResolver, 'resolve' | 'known' | 'forget'>;
  audit: AuditWriter;
  /** How often the same skip (same constraint, same reason) is audited at most. */
  repeatAuditMs?: number;
  /** Constraint names waiting for the database to come back; past this, new names are dropped (and audited). */
  maxPendingNames?: number;
  /** Confirms sequence errors against the catalog (default: one on `db`). */
  verifier?: SequenceErrorVerifier;
  /** statement_timeout for a check whose MAX is a full scan (no index leads with the column). */
  fullScanTimeoutMs?: number;
  /** Time for the debounce, cooldown, hourly cap and audit throttling (tests move it by hand). */
  clock?: Clock;
  onWarning?: (message: string) => void;
}

export interface RemediatorCounters {
  incidents: number;
  checks: number;
  remediated: number;
  failed: number;
  sweeps: number;
}

/** A MAX that reads a whole table is cut off after this long (ms): it fails and says so. */
const FULL_SCAN_TIMEOUT_MS = 5_000;

/** A name being looked up: the incidents counted into its lookup, and the promise they share. */
interface PendingName {
  extra: number;
  done: Promise<void>;
}

/** What an incident with nothing to wait for settles with (one promise for all of them). */
const SETTLED = Promise.resolve();

/**
 * From incidents to checks. An incident is taken in (handle), judged (another database's, a
 * replication conflict, a SQLSTATE that is not the error, a sequence error to verify, a stale
 * record), and a duplicate key's constraint name is resolved through the catalog, at most one
 * lookup per name at a time: while the database is away, one lookup per name waits for it and
 * further incidents of that name are counted into it. What the name resolves to is sent, past the
 * policy, to SequenceChecks (one single flight per sequence: debounce, cooldown, hourly cap, the
 * guarded check and its outcome). The sweep (Sweeper), the outage waits (whenAvailable) and what
 * reaches the audit in a storm (AuditThrottle) are parts of their own.
 */
export class Remediator {
  readonly counters: RemediatorCounters = { incidents: 0, checks: 0, remediated: 0, failed: 0, sweeps: 0 };
  /** Work under way (handled incidents, sweeps' checks): what drain waits for. */
  private inFlight = 0;
  /** Settled when the last work under way ends (a drain waits on it). */
  private idle: Deferred | undefined;
  /** The checks' promises of a known name, tracked once for all the errors they answer (checkKnown). */
  private readonly trackedChecks = new SharedAll();
  /** Constraint names being handled, with how many more incidents named them meanwhile. */
  private readonly resolving = new Map<string, PendingName>();
  /** Stale records' checks under way, by name (see handle). */
  private readonly staleChecks = new Map<string, Promise<void>>();
  /** Cut short when the stop's grace period is over: waiting for the database. */
  private readonly giveUp = new AbortController();
  private readonly verifier: SequenceErrorVerifier;
  private readonly clock: Clock;
  private readonly throttle: AuditThrottle;
  private readonly budget: FixBudget;
  private readonly outage: OutageWait;
  private readonly checks: SequenceChecks;
  private readonly sweeper: Sweeper;
  private settings: RemediationSettings;
  /** The log times of incidents, as milliseconds (each incident's age decides whether it is stale). */
  private readonly logTimes = new LogTimes();

  constructor(private readonly options: RemediatorOptions) {
    this.settings = { ...options };
    this.clock = options.clock ?? systemClock;
    const { db, audit } = options;
    this.verifier = options.verifier ?? new SequenceErrorVerifier({ query: (text, values) => db.transaction((client) => client.query(text, values)) });
    // Every wait for the database listens to this signal: many at once is normal.
    setMaxListeners(0, this.giveUp.signal);
    const fullScanTimeoutMs = options.fullScanTimeoutMs ?? FULL_SCAN_TIMEOUT_MS;
    const settings = () => this.settings;
    this.throttle = new AuditThrottle(audit, { windowMs: options.repeatAuditMs ?? 60_000, clock: this.clock });
    this.budget = new FixBudget(this.settings, this.clock);
    this.outage = { db, audit, waits: new OutageWaits(audit, () => this.clock.now()), giveUp: this.giveUp.signal, onFailure: () => this.counters.failed++ };
    this.checks = new SequenceChecks({
      check: (target, act, trigger) =>
        this.whenAvailable(() => guardedSetvalExclusive(db, target, act, this.guard, { fullScanTimeoutMs }), {
          trigger,
          names: { database: this.settings.database, table: target.table, sequence: target.sequence, column: target.column },
          what: `checking ${target.sequence}`,
        }),
      audit,
      throttle: this.throttle,
      budget: this.budget,
      settings,
      counters: this.counters,
      forget: (constraint) => options.resolver.forget(constraint),
      ...(options.repeatAuditMs !== undefined ? { repeatAuditMs: options.repeatAuditMs } : {}),
      fullScanTimeoutMs,
      clock: this.clock,
    });
    this.sweeper = new Sweeper({
      db,
      audit,
      throttle: this.throttle,
      budget: this.budget,
      outage: this.outage,
      settings,
      counters: this.counters,
      fullScanTimeoutMs,
    });
  }

  /** The settings in force (the warm-up runs its own dry run with them: warmUp.ts). */
  get currentSettings(): RemediationSettings {
    return this.settings;
  }

  /** New settings (a reloaded config) apply from the next check on. */
  updateSettings(settings: RemediationSettings): void {
    this.settings = settings;
    this.budget.update(settings);
  }

  private get guard() {
    return { maxJump: this.settings.maxJump, nearLimitPercent: this.settings.nearLimitPercent };
  }

  /**
   * Takes an incident; never throws, never blocks the reading of logs. The promise settles once the
   * incident is handled (its outcome audited): a checkpoint may then move past it.
   */
  handle(incident: Incident): Promise<void> {
    this.counters.incidents++;
    if (incident.kind === 'replication_conflict') {
      this.reportReplicationConflict(incident, triggerOf(incident));
      return Promise.resolve();
    }
    if (sqlstateContradicts(incident)) {
      this.throttle.once(
        'skipped',
        triggerOf(incident),
        'sqlstate_mismatch',
        sqlstateMismatch(incident.kind, expectedSqlstate(incident.kind), incident.sqlstate!),
      );
      return Promise.resolve();
    }
    if (incident.kind !== 'unique_violation') {
      return this.track(this.alertIfVerified(incident, incident.kind, triggerOf(incident)));
    }
    const age = incident.logTime ? this.clock.now() - this.logTimes.epochOf(incident.logTime) : NaN;
    if (this.settings.staleAfterMs !== undefined && age > this.settings.staleAfterMs) {
      // A backlog of history: one read-only check per name at a time covers the records of that
      // name that arrive meanwhile (each counted above), as `resolving` does for fresh ones.
      const running = this.staleChecks.get(incident.constraint);
      if (running !== undefined) return running;
      const done = this.track(this.reportStale(incident, age, triggerOf(incident))).finally(() => this.staleChecks.delete(incident.constraint));
      this.staleChecks.set(incident.constraint, done);
      return done;
    }
    const pending = this.resolving.get(incident.constraint);
    if (pending !== undefined) {
      pending.extra++;
      return pending.done;
    }
    const trigger = triggerOf(incident);
    const known = this.options.resolver.known(incident.constraint);
    if (known !== undefined) return this.checkKnown(known, incident.constraint, trigger);
    if (this.resolving.size >= (this.options.maxPendingNames ?? 10_000)) {
      this.throttle.once(
        'skipped',
        trigger,
        'backlog_full',
        `too many distinct constraint names wait for the database; ${JSON.stringify(incident.constraint)} dropped`,
      );
      return Promise.resolve();
    }
    const entry = { extra: 0, done: SETTLED };
    this.resolving.set(incident.constraint, entry);
    entry.done = this.track(this.route(incident.constraint, trigger, entry));
    return entry.done;
  }

  /** Distinct constraint names being looked up or waiting for the catalog. */
  get pendingNames(): number {
    return this.resolving.size;
  }

  /**
   * The periodic sweep over `columns` (see Sweeper); the watch (src/watch) calls it with its own
   * trigger and hears every state through `onChecked`.
   */
  async sweep(
    columns: SequenceTarget[],
    trigger: Trigger = { source: 'sweep' },
    onChecked?: (target: SequenceTarget, state: SequenceState) => void,
  ): Promise<void> {
    this.counters.sweeps++;
    await this.sweeper.sweep(columns, trigger, onChecked);
  }

  /** Waits until every check under way has finished (or the time is up); true when all finished. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      this.idle ??= deferred();
      await Promise.race([this.idle.promise, sleep(left)]);
    }
    return true;
  }

  /**
   * For a stop: skips the debounce pauses, lets checks under way finish within `graceMs`, then
   * gives up on those still waiting for the database (each audited as `skipped`, reason `shutdown`).
   * `beforeGivingUp` runs first (the daemon saves its checkpoints then, held back by the errors
   * about to be given up: they are read again at the next start). True when nothing had to be given up.
   */
  async stop(graceMs: number, beforeGivingUp?: () => void): Promise<boolean> {
    this.checks.stopPausing();
    const finished = await this.drain(graceMs);
    if (!finished) {
      beforeGivingUp?.();
      this.giveUp.abort();
      await this.drain(2_000);
    }
    // Last: the names whose lookups finished during the drain belong in the summary too.
    this.throttle.flush();
    this.checks.flush();
    this.outage.waits.flush();
    return finished;
  }

  /**
   * Counts `work` as under way until it settles; the promise returned never rejects (an error is
   * an internal one, logged). The two handlers are the same for all work: a storm of distinct
   * names waiting for the catalog holds no closures of their own here.
   */
  private track(work: Promise<void>): Promise<void> {
    this.inFlight++;
    return work.then(this.ended, this.failed);
  }

  private readonly ended = (): void => {
    if (--this.inFlight > 0 || this.idle === undefined) return;
    this.idle.resolve();
    this.idle = undefined;
  };

  private readonly failed = (error: Error): void => {
    this.options.onWarning?.(`internal error: ${error.stack ?? error.message}`);
    // In the audit too, once an hour: what the operator reviews must show that an error was left
    // unhandled (a field trial's daemon only logged it, for each missing sequence's error).
    this.throttle.once(
      'alert',
      { source: 'seqwatch' },
      'internal_error',
      `seqwatch failed inside while handling an error from the logs, which was not acted on: ${error.name}: ${error.message} (a bug: the daemon's log has where; please report it)`,
      {},
      { subject: 'internal', windowMs: 3_600_000 },
    );
    this.ended();
  };

  private whenAvailable<T>(work: () => Promise<T>, description: WorkDescription): Promise<T | undefined> {
    return whenAvailable(this.outage, work, description);
  }

  /**
   * A logical-replication apply worker that cannot apply a row the subscriber already has: not
   * drift, no setval. One alert per subscription per hour (the worker retries every few seconds).
   */
  private reportReplicationConflict(incident: Incident, trigger: Trigger): void {
    const r = incident.replication ?? {};
    const fields = {
      ...(r.relation !== undefined ? { relation: r.relation } : {}),
      ...(incident.constraint !== '' ? { index: incident.constraint } : {}),
      ...(r.origin !== undefined ? { origin: r.origin, subscription_oid: r.subscriptionOid! } : {}),
      ...(r.finishLsn !== undefined ? { finish_lsn: r.finishLsn } : {}),
      ...(r.conflict !== undefined ? { conflict: r.conflict } : {}),
    };
    // The subject is a name read from the log: a flood of them is summarised.
    this.throttle.once('alert', trigger, 'replication_conflict', replicationConflict(incident), fields, {
      windowMs: HOUR,
      subject: r.origin ?? incident.constraint,
      fromLog: true,
    });
  }

  /**
   * A sequence error (exhausted, missing, permission denied, setval out of bounds) is an alert only
   * once the catalog confirms it (verifySequenceError.ts); then it is audited on its own, whatever
   * else floods in, with advice written from catalog names. An unconfirmed one is `skipped`.
   */
  private async alertIfVerified(incident: Incident, kind: SequenceErrorKind, trigger: Trigger): Promise<void> {
    const verified = await this.whenAvailable(() => this.verifier.verify(kind, incident.constraint), { trigger, what: `verifying a ${kind} error` });
    if (!verified) return;
    const { reason, advice, unverified } = SEQUENCE_ERROR_ADVICE[kind];
    if (verified.length === 0) {
      this.throttle.once('skipped', trigger, 'unverified_sequence_error', unverifiedSequenceError(kind, incident.constraint, unverified), { kind });
      return;
    }
    for (const found of verified) {
      const fields = { sequence: found.sequence, ...(found.table ? { table: found.table } : {}), verified: 'catalog' };
      this.throttle.once('alert', trigger, reason, `${advice(found)}; setval cannot fix this, nothing was done`, fields, { subject: found.sequence });
    }
  }

  /** Lets the next incident of this name start its own handling (once resolved, or failed). */
  private release(constraint: string, entry: PendingName): void {
    if (this.resolving.get(constraint) === entry) this.resolving.delete(constraint);
  }

  /**
   * A record from long ago (read after a restart or from a backlog): its error is history. The
   * table is checked read-only and the record audited as skipped, with where the sequence stands
   * now; the sweep, or the next fresh error, heals what is still behind.
   */
  private async reportStale(incident: Incident, age: number, trigger: Trigger): Promise<void> {
    const resolution = await this.whenAvailable(() => this.options.resolver.resolve(incident.constraint), {
      trigger,
      what: `looking up ${JSON.stringify(incident.constraint)}`,
    });
    if (!resolution) return;
    this.skipNonTargets(resolution, trigger, incident.constraint);
    for (const target of resolution.targets) {
      if (!this.allowed(target)) continue;
      // Its stale_record was audited within the window: this one's would only be counted (the
      // throttle's repeats), so the sequence is not read again for it. A backlog read at 20 MiB/s
      // made a read-only check per record of a lagging table (~20 a second).
      if (this.throttle.repeated('skipped', 'stale_record', target.sequence)) continue;
      const state = await this.whenAvailable(
        () => guardedSetvalExclusive(this.options.db, target, false, this.guard, { fullScanTimeoutMs: this.options.fullScanTimeoutMs ?? FULL_SCAN_TIMEOUT_MS }),
        {
          trigger,
          what: `checking ${target.sequence}`,
        },
      );
      if (!state) continue;
      const fields = { database: this.settings.database, table: target.table, sequence: target.sequence, before: state.before, max_id: state.maxId ?? '' };
      this.throttle.once('skipped', trigger, 'stale_record', staleRecord(target, state, age), fields);
    }
  }

  /**
   * Looks the name up, then hands what it resolved to to the checks. The lookup is asked for
   * directly (no outage wait: nothing is built per name beyond its promise, and a storm of distinct
   * names waits by the thousand); only a failed one goes through whenAvailable, which audits it and
   * waits out an outage. The name is released on every path (release is a no-op once done).
   */
  private route(constraint: string, trigger: Trigger, entry: PendingName): Promise<void> {
    return this.options.resolver.resolve(constraint).then(
      (resolution) => this.resolved(resolution, constraint, trigger, entry),
      () => this.routeAfterFailure(constraint, trigger, entry),
    );
  }

  private async routeAfterFailure(constraint: string, trigger: Trigger, entry: PendingName): Promise<void> {
    try {
      const resolution = await this.whenAvailable(() => this.options.resolver.resolve(constraint), {
        trigger,
        what: `looking up ${JSON.stringify(constraint)}`,
      });
      if (resolution) await this.resolved(resolution, constraint, trigger, entry);
    } finally {
      this.release(constraint, entry);
    }
  }

  private async resolved(resolution: Resolution, constraint: string, trigger: Trigger, entry: PendingName): Promise<void> {
    // From here on, further incidents of this name go to the sequences' single flights themselves.
    this.release(constraint, entry);
    await Promise.all(this.toChecks(resolution, constraint, trigger, entry.extra + 1));
  }

  /**
   * Audits what a name resolved to that is not a sequence to check: nothing at all, a key no
   * sequence feeds, or a key whose DEFAULT names a sequence the trust rule refuses.
   */
  private skipNonTargets(resolution: Resolution, trigger: Trigger, constraint: string): void {
    if (!namesAnIndex(resolution)) {
      this.throttle.once(
        'skipped',
        trigger,
        'unknown_constraint',
        `no unique index named ${JSON.stringify(constraint)} in database ${this.settings.database}: nothing to do`,
      );
    }
    for (const index of resolution.nonSequence) {
      const msg = `${index.index} on ${index.table} (${index.columns.join(', ')}) is not fed by a sequence: a genuine duplicate, left to the application`;
      this.throttle.once('skipped', trigger, 'not_sequence_fed', msg, { table: index.table, index: index.index });
    }
    for (const refused of resolution.refused ?? []) {
      this.throttle.once('skipped', trigger, refused.why === 'expression' ? 'not_sequence_fed' : 'untrusted_sequence', refusalText(refused), {
        table: refused.table,
        sequence: refused.sequence,
        ...(refused.index ? { index: refused.index } : {}),
      });
    }
  }

  /**
   * A name whose answer is at hand (looked up before, or warmed): its errors go straight to their
   * checks, with nothing of their own to wait for. The errors one check answers share its promise,
   * tracked once: a storm of a known name holds nothing per error until that check.
   */
  private checkKnown(resolution: Resolution, constraint: string, trigger: Trigger): Promise<void> {
    const checks = this.toChecks(resolution, constraint, trigger, 1);
    if (checks.length === 0) return SETTLED;
    // An index that feeds several sequences shares the whole set.
    return this.trackedChecks.all(checks, (all) => this.track(all));
  }

  /**
   * What a name resolved to, to its checks: what is not a sequence to check is audited as skipped,
   * the targets the policy excludes as excluded, the others handed to their single flights (whose
   * promises are returned).
   */
  private toChecks(resolution: Resolution, constraint: string, trigger: Trigger, incidents: number): Array<Promise<void>> {
    traceHeal('resolved', { constraint });
    this.skipNonTargets(resolution, trigger, constraint);
    const checks: Array<Promise<void>> = [];
    for (const target of resolution.targets) {
      if (!this.allowed(target)) {
        const bySequence = this.settings.policy?.allows(target.schema, target.tableName) ?? true;
        const msg = bySequence
          ? `${target.table} is allowed but its sequence ${target.sequence} is in a schema the policy excludes (policy.include/exclude): not acted on`
          : `${target.table} is excluded by the policy (policy.include/exclude): not acted on`;
        this.throttle.once('skipped', trigger, 'excluded_by_policy', msg, { table: target.table, sequence: target.sequence });
        continue;
      }
      checks.push(this.checks.enqueue(target, trigger, incidents));
    }
    return checks;
  }

  /** Whether the policy lets this table and its sequence be acted on (and read for a rehearsal). */
  allows(target: SequenceTarget): boolean {
    return this.allowed(target);
  }

  /** The policy, applied to the table and to the schema of its sequence. */
  private allowed(target: SequenceTarget): boolean {
    return this.settings.policy?.allowsTarget(target) ?? true;
  }
}

function triggerOf(incident: Incident): Trigger {
  const trigger: Trigger = { source: incident.source, constraint: incident.constraint };
  if (incident.line !== undefined) trigger.line = incident.line;
  if (incident.offset !== undefined) trigger.offset = incident.offset;
  if (incident.logTime !== undefined) trigger.log_time = incident.logTime;
  return trigger;
}
