import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import pDebounce from 'p-debounce';
import type { AuditLog, Trigger } from '../audit/AuditLog.js';
import { writeSequenceOutcome } from '../audit/writeSequenceOutcome.js';
import type { Incident } from '../detect/detectIncident.js';
import { isUnavailable } from '../db/Database.js';
import { guardedSetvalExclusive, guardedSetvalExclusiveBatch, type SequenceState, type Transactional } from '../db/guardedSetval.js';
import type { IndexResolver, Resolution, SequenceTarget } from '../db/resolveIndex.js';
import type { TablePolicy } from './TablePolicy.js';

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
}

const HOUR = 3_600_000;

export interface RemediatorOptions extends RemediationSettings {
  db: RemediationDatabase;
  resolver: IndexResolver;
  audit: AuditLog;
  /** How often the same skip (same constraint, same reason) is audited at most. */
  repeatAuditMs?: number;
  /** Constraint names waiting for the database to come back; past this, new names are dropped (and audited). */
  maxPendingNames?: number;
  onWarning?: (message: string) => void;
}

export interface RemediatorCounters {
  incidents: number;
  otherDatabase: number;
  checks: number;
  remediated: number;
  failed: number;
  sweeps: number;
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
 * runs or during the debounce window after it makes at most one more check. While the database is
 * away, at most one lookup per constraint name and one check per sequence wait for it.
 */
export class Remediator {
  readonly counters: RemediatorCounters = { incidents: 0, otherDatabase: 0, checks: 0, remediated: 0, failed: 0, sweeps: 0 };
  /** When each sequence was fixed within the last hour, for the cooldown and the hourly cap. */
  private readonly fixTimes = new Map<number, number[]>();
  /**
   * One debouncer per sequence and table: a sequence shared by two tables is checked against the
   * table whose index the error named (the advisory lock still serialises them per sequence).
   */
  private readonly slots = new Map<string, SequenceSlot>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly lastSkip = new Map<string, { at: number; repeats: number }>();
  /** Per event and reason: how many distinct subjects were audited this window, and those that were not. */
  private readonly reasonWindows = new Map<string, ReasonWindow>();
  /** Constraint names being handled, with how many more incidents named them meanwhile. */
  private readonly resolving = new Map<string, { extra: number; done: Promise<void> }>();
  /** Cut short on stop: the debounce pauses. */
  private readonly cooldown = new AbortController();
  /** Cut short when the stop's grace period is over: waiting for the database. */
  private readonly giveUp = new AbortController();
  private settings: RemediationSettings;

  constructor(private readonly options: RemediatorOptions) {
    this.settings = { ...options };
    // Every sequence's debounce pause and every wait for the database listen to these: many at once is normal.
    setMaxListeners(0, this.cooldown.signal, this.giveUp.signal);
  }

  /** New settings (a reloaded config) apply from the next check on. */
  updateSettings(settings: RemediationSettings): void {
    this.settings = settings;
  }

  /**
   * Takes an incident; never throws, never blocks the reading of logs. The promise settles once the
   * incident is handled (its outcome audited): a checkpoint may then move past it.
   */
  handle(incident: Incident): Promise<void> {
    if (incident.database !== undefined && incident.database !== this.settings.database) {
      this.counters.otherDatabase++;
      return Promise.resolve();
    }
    this.counters.incidents++;
    if (incident.kind === 'replication_conflict') {
      this.reportReplicationConflict(incident);
      return Promise.resolve();
    }
    if (incident.kind !== 'unique_violation') {
      const { reason, advice } = SEQUENCE_ERROR_ADVICE[incident.kind];
      this.auditOnce('alert', triggerOf(incident), reason, `${advice(incident.constraint)}; setval cannot fix this, nothing was done`, { sequence: incident.constraint });
      return Promise.resolve();
    }
    const age = incident.logTime ? Date.now() - Date.parse(incident.logTime) : NaN;
    if (this.settings.staleAfterMs !== undefined && age > this.settings.staleAfterMs) {
      return this.track(this.reportStale(incident, age));
    }
    const pending = this.resolving.get(incident.constraint);
    if (pending !== undefined) {
      pending.extra++;
      return pending.done;
    }
    if (this.resolving.size >= (this.options.maxPendingNames ?? 10_000)) {
      this.skipOnce(triggerOf(incident), 'backlog_full', `too many distinct constraint names wait for the database; ${JSON.stringify(incident.constraint)} dropped`);
      return Promise.resolve();
    }
    const entry = { extra: 0, done: Promise.resolve() };
    this.resolving.set(incident.constraint, entry);
    entry.done = this.track(this.route(incident, entry).finally(() => this.release(incident.constraint, entry)));
    return entry.done;
  }

  /**
   * A logical-replication apply worker that cannot apply a row the subscriber already has: not
   * drift, no setval. One alert per subscription per hour (the worker retries every few seconds).
   */
  private reportReplicationConflict(incident: Incident): void {
    const r = incident.replication ?? {};
    const subscription = r.subscriptionOid !== undefined ? `the subscription with oid ${r.subscriptionOid} (replication origin ${r.origin})` : 'a subscription';
    const what = r.relation !== undefined ? JSON.stringify(r.relation) : 'a table';
    const index = incident.constraint !== '' && incident.constraint !== r.relation ? ` (unique index ${JSON.stringify(incident.constraint)})` : '';
    const skip = r.finishLsn !== undefined ? `, or skip the remote transaction: ALTER SUBSCRIPTION <name> SKIP (lsn = '${r.finishLsn}')` : '';
    const name = r.subscriptionOid !== undefined ? ` (<name>: SELECT subname FROM pg_subscription WHERE oid = ${r.subscriptionOid})` : '';
    this.auditOnce(
      'alert',
      triggerOf(incident),
      'replication_conflict',
      `logical replication is stuck: the apply worker of ${subscription} cannot apply a change to ${what}: a row with the same key already exists on this subscriber${index}${r.conflict !== undefined ? ` (conflict=${r.conflict})` : ''}. This is a replication conflict, not sequence drift: nothing was done. The worker retries the same transaction and fails until a person resolves it: remove or change the conflicting row on the subscriber${skip}${name}`,
      {
        ...(r.relation !== undefined ? { relation: r.relation } : {}),
        ...(incident.constraint !== '' ? { index: incident.constraint } : {}),
        ...(r.origin !== undefined ? { origin: r.origin, subscription_oid: r.subscriptionOid! } : {}),
        ...(r.finishLsn !== undefined ? { finish_lsn: r.finishLsn } : {}),
        ...(r.conflict !== undefined ? { conflict: r.conflict } : {}),
      },
      HOUR,
      r.origin ?? incident.constraint,
    );
  }

  /** Distinct constraint names being looked up or waiting for the catalog. */
  get pendingNames(): number {
    return this.resolving.size;
  }

  /** Lets the next incident of this name start its own handling (once resolved, or failed). */
  private release(constraint: string, entry: { extra: number; done: Promise<void> }): void {
    if (this.resolving.get(constraint) === entry) this.resolving.delete(constraint);
  }

  /**
   * A record from long ago (read after a restart or from a backlog): its error is history. The
   * table is checked read-only and the record audited as skipped, with where the sequence stands
   * now; the sweep, or the next fresh error, heals what is still behind.
   */
  private async reportStale(incident: Incident, age: number): Promise<void> {
    const trigger = triggerOf(incident);
    const resolution = await this.whenAvailable(() => this.options.resolver.resolve(incident.constraint), trigger, {}, `looking up ${JSON.stringify(incident.constraint)}`);
    if (!resolution) return;
    this.skipNonTargets(resolution, trigger, incident.constraint);
    for (const target of resolution.targets) {
      const state = await this.whenAvailable(() => guardedSetvalExclusive(this.options.db, target, false), trigger, {}, `checking ${target.sequence}`);
      if (!state) continue;
      const now = state.verdict === 'planned' ? `behind (next ${state.nextBefore}, MAX ${state.maxId})` : state.verdict === 'exhausted' ? 'exhausted' : 'in sync';
      this.auditOnce(
        'skipped',
        trigger,
        'stale_record',
        `a duplicate key error logged ${Math.round(age / 60_000)} min ago on ${target.index}: not acted on (older than remediation.stale_after); ${target.sequence} is ${now} now${state.verdict === 'planned' ? ': seqwatch fix, the sweep or the next error heals it' : ''}`,
        { database: this.settings.database, table: target.table, sequence: target.sequence, before: state.before, max_id: state.maxId ?? '' },
      );
    }
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

  /**
   * For a stop: skips the debounce pauses, lets checks under way finish within `graceMs`, then
   * gives up on those still waiting for the database (each audited as `skipped`, reason `shutdown`).
   * True when nothing had to be given up.
   */
  async stop(graceMs: number): Promise<boolean> {
    this.cooldown.abort();
    const finished = await this.drain(graceMs);
    if (!finished) {
      this.giveUp.abort();
      await this.drain(2_000);
    }
    // Last: the names whose lookups finished during the drain belong in the summary too.
    for (const window of [...this.reasonWindows.values()]) this.summarise(window);
    return finished;
  }

  private track(work: Promise<void>): Promise<void> {
    const tracked = work.catch((error: Error) => this.options.onWarning?.(`internal error: ${error.stack ?? error.message}`));
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
    return tracked;
  }

  private async route(incident: Incident, entry: { extra: number; done: Promise<void> }): Promise<void> {
    const trigger = triggerOf(incident);
    const resolution = await this.whenAvailable(
      () => this.options.resolver.resolve(incident.constraint),
      trigger,
      {},
      `looking up ${JSON.stringify(incident.constraint)}`,
    );
    if (!resolution) return;
    this.skipNonTargets(resolution, trigger, incident.constraint);
    // From here on, further incidents of this name go to the sequences' debouncers themselves.
    this.release(incident.constraint, entry);
    await this.dispatch(resolution, trigger, entry.extra + 1);
  }

  /** Audits what a name resolved to that is not a sequence to check: nothing at all, or a key no sequence feeds. */
  private skipNonTargets(resolution: Resolution, trigger: Trigger, constraint: string): void {
    if (resolution.targets.length === 0 && resolution.nonSequence.length === 0) {
      this.skipOnce(trigger, 'unknown_constraint', `no unique index named ${JSON.stringify(constraint)} in database ${this.settings.database}: nothing to do`);
    }
    for (const index of resolution.nonSequence) {
      this.skipOnce(
        trigger,
        'not_sequence_fed',
        `${index.index} on ${index.table} (${index.columns.join(', ')}) is not fed by a sequence: a genuine duplicate, left to the application`,
        { table: index.table, index: index.index },
      );
    }
  }

  private async dispatch(resolution: Resolution, trigger: Trigger, incidents: number): Promise<void> {
    const checks: Array<Promise<void>> = [];
    for (const target of resolution.targets) {
      if (!this.allowed(target)) {
        this.auditOnce('skipped', trigger, 'excluded_by_policy', `${target.table} is excluded by the policy (policy.include/exclude): not acted on`, { table: target.table, sequence: target.sequence });
        continue;
      }
      checks.push(this.enqueue(target, trigger, incidents));
    }
    await Promise.all(checks);
  }

  private allowed(target: SequenceTarget): boolean {
    return this.settings.policy?.allows(target.schema, target.tableName) ?? true;
  }

  /** Fixes of this sequence within the last hour (oldest first). */
  private recentFixes(sequenceOid: number, now = Date.now()): number[] {
    const recent = (this.fixTimes.get(sequenceOid) ?? []).filter((t) => now - t < HOUR);
    this.fixTimes.set(sequenceOid, recent);
    return recent;
  }

  /**
   * Past the hourly cap, something keeps writing explicit ids: say so once (alert) and leave the
   * sequence to a person until the hour has passed. True when capped.
   */
  private capped(target: SequenceTarget, trigger: Trigger): boolean {
    const cap = this.settings.maxFixesPerHour ?? Infinity;
    const recent = this.recentFixes(target.sequenceOid);
    if (recent.length < cap) return false;
    const until = new Date(recent[0]! + HOUR).toISOString();
    this.auditOnce(
      'alert',
      trigger,
      'recurring_drift',
      `${target.sequence} was moved forward ${recent.length} times within the hour: something keeps writing explicit ids into ${target.table} (an importer still running, a promoted replica, an application bug). seqwatch stops acting on it until ${until}; find the writer`,
      { table: target.table, sequence: target.sequence, fixes_last_hour: String(recent.length), paused_until: until },
      HOUR,
    );
    return true;
  }

  /**
   * The periodic sweep: every sequence-fed column (as listed by the caller) checked, drift healed
   * before the first INSERT fails. Audited like any other decision, except "in sync", which would
   * only repeat itself every interval. The watch (src/watch) checks the tables that received rows
   * through here too, with its own trigger; `onChecked` hears every state (its headroom metrics).
   */
  async sweep(columns: SequenceTarget[], trigger: Trigger = { source: 'sweep' }, onChecked?: (target: SequenceTarget, state: SequenceState) => void): Promise<void> {
    this.counters.sweeps++;
    const act = !this.settings.dryRun;
    const eligible = columns.filter((c) => this.allowed(c) && !(act && this.capped(c, trigger)));
    for (let i = 0; i < eligible.length; i += 100) {
      const batch = eligible.slice(i, i + 100);
      const states = await this.whenAvailable(() => guardedSetvalExclusiveBatch(this.options.db, batch, act), trigger, {}, 'sweeping');
      if (!states) return;
      batch.forEach((target, j) => {
        const state = states[j]!;
        onChecked?.(target, state);
        if (state.verdict === 'in_sync') return;
        if (state.verdict === 'exhausted') {
          this.auditOnce('alert', trigger, 'sequence_exhausted', `${target.sequence} is behind but its table's keys reach the sequence's limit ${state.limit}: setval cannot help`, { table: target.table, sequence: target.sequence }, HOUR, target.sequence);
          return;
        }
        if (state.verdict === 'remediated') {
          this.counters.remediated++;
          this.recentFixes(target.sequenceOid).push(Date.now());
        }
        writeSequenceOutcome(this.options.audit, target, state, { database: this.settings.database, trigger });
      });
    }
  }

  /**
   * Runs `work`, waiting out database outages (standby, failover, restart) instead of failing.
   * The first failure of an outage is audited as `failed` with `retrying: true`. Undefined when it
   * failed for good or the daemon stopped.
   */
  private async whenAvailable<T>(work: () => Promise<T>, trigger: Trigger, names: Record<string, string>, what: string): Promise<T | undefined> {
    let audited = false;
    for (;;) {
      try {
        return await work();
      } catch (error) {
        const message = (error as Error).message;
        if (!isUnavailable(error)) {
          this.counters.failed++;
          this.options.audit.write('failed', { ...names, trigger, error: message }, `${what} failed: ${message}`);
          return undefined;
        }
        if (!audited) {
          audited = true;
          this.counters.failed++;
          this.options.audit.write(
            'failed',
            { ...names, trigger, error: message, retrying: true },
            `${what}: the database is not available (${message}); waiting for it and trying again`,
          );
        }
        try {
          await this.options.db.waitUntilAvailable(this.giveUp.signal);
        } catch {
          this.options.audit.write('skipped', { ...names, trigger, reason: 'shutdown' }, `${what}: given up, the daemon is stopping and the database is still away`);
          return undefined;
        }
      }
    }
  }

  /** Counts the incidents against their sequence and makes sure a check will see them. */
  private enqueue(target: SequenceTarget, trigger: Trigger, incidents: number): Promise<void> {
    const key = `${target.sequenceOid}:${target.tableOid}:${target.column}`;
    let slot = this.slots.get(key);
    if (!slot) {
      const created: SequenceSlot = {
        target,
        waiting: 0,
        trigger: undefined,
        run: pDebounce.promise(
          async () => {
            await this.check(created);
            if (!this.cooldown.signal.aborted) {
              await sleep(this.settings.debounceMs, undefined, { signal: this.cooldown.signal }).catch(() => {});
            }
          },
          { after: true },
        ),
      };
      slot = created;
      this.slots.set(key, slot);
    }
    slot.target = target;
    slot.waiting += incidents;
    slot.trigger ??= trigger;
    return slot.run();
  }

  private async check(slot: SequenceSlot): Promise<void> {
    const { target } = slot;
    if (slot.waiting === 0) return;
    const trigger = slot.trigger!;
    const incidents = slot.waiting;
    slot.waiting = 0;
    slot.trigger = undefined;
    this.counters.checks++;
    const names = { database: this.settings.database, table: target.table, sequence: target.sequence, column: target.column };
    const { dryRun } = this.settings;
    this.options.audit.write(
      'detected',
      { ...names, trigger, incidents },
      `${incidents === 1 ? 'a duplicate key error' : `${incidents} duplicate key errors`} on ${target.index}: checking ${target.sequence} against ${target.table}.${target.column}`,
    );
    if (!dryRun && this.capped(target, trigger)) return;
    const check = (act: boolean) =>
      this.whenAvailable(() => guardedSetvalExclusive(this.options.db, target, act), trigger, names, `checking ${target.sequence}`);
    const last = this.recentFixes(target.sequenceOid).at(-1);
    const cooling = dryRun || last === undefined ? 0 : last + (this.settings.cooldownMs ?? 0) - Date.now();
    let state = cooling > 0 ? await check(false) : undefined;
    // Within the cooldown only a fix waits: a sequence found in sync is reported at once.
    if (state?.verdict === 'planned') await sleep(last! + (this.settings.cooldownMs ?? 0) - Date.now(), undefined, { signal: this.cooldown.signal }).catch(() => {});
    if (!state || state.verdict === 'planned') state = await check(!dryRun);
    if (!state) {
      // The table may have changed underneath (dropped, renamed): look the name up afresh next time.
      if (trigger.constraint !== undefined) this.options.resolver.forget(trigger.constraint);
      return;
    }
    if (state.verdict === 'remediated') {
      this.counters.remediated++;
      this.recentFixes(target.sequenceOid).push(Date.now());
    }
    writeSequenceOutcome(this.options.audit, target, state, { database: this.settings.database, trigger });
  }

  private skipOnce(trigger: Trigger, reason: string, msg: string, fields: Record<string, string> = {}): void {
    this.auditOnce('skipped', trigger, reason, msg, fields);
  }

  /**
   * Audits a decision once per subject and reason within `windowMs`, counting the repeats: a
   * storm of the same error must not bury the audit log. The subject is the constraint (or
   * `subject`, e.g. a sequence, when given). Past DISTINCT_PER_WINDOW subjects of one reason within
   * the window (a storm of forged or garbled names), the rest are summarised in one record at the
   * window's end: how many names, how many records, a few examples.
   */
  private auditOnce(
    event: 'skipped' | 'alert',
    trigger: Trigger,
    reason: string,
    msg: string,
    fields: Record<string, string> = {},
    windowMs = this.options.repeatAuditMs ?? 60_000,
    subject = fields.sequence ?? trigger.constraint ?? trigger.source,
  ): void {
    const key = `${event}\u0000${reason}\u0000${subject}`;
    const now = Date.now();
    const seen = this.lastSkip.get(key);
    if (seen && now - seen.at < windowMs) {
      seen.repeats++;
      return;
    }
    // Names read from logs can flood; alerts about sequences the catalog knows cannot.
    const fromLog = event === 'skipped' || LOG_NAMED_ALERTS.has(reason);
    if (fromLog && !this.withinReasonBudget(event, reason, subject, windowMs, now)) return;
    if (this.lastSkip.size >= 10_000) this.lastSkip.delete(this.lastSkip.keys().next().value!);
    this.lastSkip.set(key, { at: now, repeats: 0 });
    this.options.audit.write(event, { ...fields, reason, trigger, repeats_since_last: seen?.repeats ?? 0 }, msg);
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
      window = { event, reason, start: now, audited: 0, names: new Set(), records: 0, moreNames: 0, timer: undefined };
      this.reasonWindows.set(key, window);
    }
    if (window.audited < DISTINCT_PER_WINDOW) {
      window.audited++;
      return true;
    }
    window.records++;
    if (window.names.has(subject)) return false;
    if (window.names.size < 10_000) window.names.add(subject);
    else window.moreNames++;
    const flushing = window;
    window.timer ??= setTimeout(() => this.summarise(flushing), Math.max(0, windowMs - (now - window.start))).unref();
    return false;
  }

  /** One record for the subjects of a reason that were not audited one by one. */
  private summarise(window: ReasonWindow): void {
    clearTimeout(window.timer);
    if (this.reasonWindows.get(`${window.event}\u0000${window.reason}`) === window) this.reasonWindows.delete(`${window.event}\u0000${window.reason}`);
    if (window.records === 0) return;
    const distinct = window.names.size + window.moreNames;
    const examples = [...window.names].slice(0, 5);
    this.options.audit.write(
      window.event,
      { reason: window.reason, trigger: { source: 'summary' }, distinct_names: distinct, records: window.records, examples, since: new Date(window.start).toISOString() },
      `${distinct} more distinct name(s) with reason ${window.reason} in ${window.records} record(s) since ${new Date(window.start).toISOString()}, beyond the ${DISTINCT_PER_WINDOW} audited one by one (e.g. ${examples.map((e) => JSON.stringify(e)).join(', ')}): each handled as those audited one by one, nothing was changed for them. A flood of names: a forged or garbled log, or an application producing many unique violations`,
    );
  }
}

/** Distinct subjects of one reason audited one by one per window; the rest go into a summary record. */
const DISTINCT_PER_WINDOW = 20;

interface ReasonWindow {
  event: 'skipped' | 'alert';
  reason: string;
  start: number;
  audited: number;
  names: Set<string>;
  /** Distinct names past the set's bound (counted, not kept). */
  moreNames: number;
  records: number;
  timer: NodeJS.Timeout | undefined;
}

/** What each of the runbook's other sequence errors means, and what a person should do. */
const SEQUENCE_ERROR_ADVICE: Record<Exclude<Incident['kind'], 'unique_violation' | 'replication_conflict'>, { reason: string; advice: (sequence: string) => string }> = {
  sequence_exhausted: {
    reason: 'sequence_exhausted',
    advice: (s) => `nextval() failed: ${s} reached its limit. Widen it and its column (ALTER TABLE ... ALTER COLUMN ... TYPE bigint; ALTER SEQUENCE ${s} AS bigint)`,
  },
  sequence_missing: {
    reason: 'sequence_missing',
    advice: (s) => `sequence ${s} does not exist: a column DEFAULT points at a dropped or never restored sequence (a partial pg_restore?). Recreate it (CREATE SEQUENCE ${s}; then seqwatch fix) or correct the DEFAULT`,
  },
  sequence_permission_denied: {
    reason: 'sequence_permission_denied',
    advice: (s) => `the application's role may not use ${s}: GRANT USAGE, SELECT ON SEQUENCE ${s} TO <application role>`,
  },
  setval_out_of_bounds: {
    reason: 'setval_out_of_bounds',
    advice: (s) => `a setval on ${s} was out of its bounds: a hand-run fix used a value past the sequence's limits; compare the column's MAX with the sequence's MAXVALUE`,
  },
};

/** Alerts whose subject is a name read from a log (and may therefore come in floods). */
const LOG_NAMED_ALERTS = new Set([...Object.values(SEQUENCE_ERROR_ADVICE).map((a) => a.reason), 'replication_conflict']);

function triggerOf(incident: Incident): Trigger {
  const trigger: Trigger = { source: incident.source, constraint: incident.constraint };
  if (incident.line !== undefined) trigger.line = incident.line;
  if (incident.offset !== undefined) trigger.offset = incident.offset;
  if (incident.logTime !== undefined) trigger.log_time = incident.logTime;
  return trigger;
}
