import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import pDebounce from 'p-debounce';
import type { AuditLog, Trigger } from '../audit/AuditLog.js';
import { describeOutcome, exhaustedAdvice, sqlLiteral } from '../audit/writeSequenceOutcome.js';
import type { Incident } from '../detect/detectIncident.js';
import { isUnavailable } from '../db/Database.js';
import {
  guardedSetvalExclusive,
  guardedSetvalExclusiveBatch,
  needsFullScan,
  type JumpGuard,
  type SequenceState,
  type Transactional,
} from '../db/guardedSetval.js';
import type { IndexResolver, Resolution, SequenceTarget } from '../db/resolveIndex.js';
import { missingPrivileges } from '../db/privileges.js';
import { refusalText } from '../db/trustRule.js';
import { SequenceErrorVerifier, type SequenceErrorKind, type VerifiedSequenceError } from '../db/verifySequenceError.js';
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
  /** The jump guard (remediation.max_jump): a fix moving a sequence further than this is an alert. */
  maxJump?: number;
  /** The jump guard (remediation.near_limit_percent): a fix into the last part of the range is an alert. */
  nearLimitPercent?: number;
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
  /** Confirms sequence errors against the catalog (default: one on `db`). */
  verifier?: SequenceErrorVerifier;
  /** statement_timeout for a check whose MAX is a full scan (no index leads with the column). */
  fullScanTimeoutMs?: number;
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
  /** The last check found the sequence in sync (its in-sync records may then be quiet). */
  inSync: boolean;
  /**
   * The last check changed nothing and another check soon would not either (in sync, held,
   * exhausted, capped, failed): the next check waits the cooldown instead of the debounce.
   */
  holdOff: boolean;
  /** Checks found in sync and not yet audited one by one (see writeQuiet). */
  quiet: { checks: number; since: number };
  /** When a record about this slot was last written. */
  lastAuditAt: number;
}

/** SQLSTATE of each kind of incident: a record whose format gives another (a plain RAISE is P0001) is not that error. */
const EXPECTED_SQLSTATE: Record<Exclude<Incident['kind'], 'replication_conflict'>, string> = {
  unique_violation: '23505',
  sequence_exhausted: '2200H',
  sequence_missing: '42P01',
  sequence_permission_denied: '42501',
  setval_out_of_bounds: '22003',
};

/**
 * From incidents to decisions. Each incident is resolved through the catalog; each sequence it
 * names gets its own debouncer (p-debounce's promise mode with `after`): the first incident is
 * checked at once, runs for one sequence never overlap, and everything that arrives while a check
 * runs or during the debounce window after it makes at most one more check. After a check that
 * found the sequence in sync, the next one waits the cooldown (the hold-off): errors on a healthy
 * table (forged ones) cost one check per cooldown, not one per debounce. While the database is
 * away, at most one lookup per constraint name and one check per sequence wait for it.
 */
export class Remediator {
  readonly counters: RemediatorCounters = { incidents: 0, otherDatabase: 0, checks: 0, remediated: 0, failed: 0, sweeps: 0 };
  /**
   * When each sequence was fixed for each table within the last hour, for the hourly cap: counted
   * per sequence and table, so errors on another table that shares the sequence cannot spend the
   * cap of the sequence's own table.
   */
  private readonly fixTimes = new Map<string, number[]>();
  /** When each sequence was last fixed (any table), for the cooldown. */
  private readonly lastFixAt = new Map<number, number>();
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
  private readonly verifier: SequenceErrorVerifier;
  private settings: RemediationSettings;

  constructor(private readonly options: RemediatorOptions) {
    this.settings = { ...options };
    this.verifier = options.verifier ?? new SequenceErrorVerifier({ query: (text, values) => options.db.transaction((client) => client.query(text, values)) });
    // Every sequence's debounce pause and every wait for the database listen to these: many at once is normal.
    setMaxListeners(0, this.cooldown.signal, this.giveUp.signal);
  }

  /** New settings (a reloaded config) apply from the next check on. */
  updateSettings(settings: RemediationSettings): void {
    this.settings = settings;
  }

  private get guard(): JumpGuard {
    return { maxJump: this.settings.maxJump, nearLimitPercent: this.settings.nearLimitPercent };
  }

  private get exclusive() {
    return { fullScanTimeoutMs: this.options.fullScanTimeoutMs ?? FULL_SCAN_TIMEOUT_MS };
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
    const expected = EXPECTED_SQLSTATE[incident.kind];
    if (incident.sqlstate !== undefined && incident.sqlstate !== expected) {
      this.skipOnce(
        triggerOf(incident),
        'sqlstate_mismatch',
        `a record reads like ${incident.kind} (SQLSTATE ${expected}) but its SQLSTATE is ${JSON.stringify(incident.sqlstate)}${incident.sqlstate === 'P0001' ? ' (a RAISE from SQL code, not the server)' : ''}: not that error, nothing done`,
      );
      return Promise.resolve();
    }
    if (incident.kind !== 'unique_violation') {
      return this.track(this.alertIfVerified(incident, incident.kind));
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

  /**
   * A sequence error (exhausted, missing, permission denied, setval out of bounds) is an alert only
   * once the catalog confirms it (verifySequenceError.ts); then it is audited on its own, whatever
   * else floods in, with advice written from catalog names. An unconfirmed one is `skipped`.
   */
  private async alertIfVerified(incident: Incident, kind: SequenceErrorKind): Promise<void> {
    const trigger = triggerOf(incident);
    const verified = await this.whenAvailable(() => this.verifier.verify(kind, incident.constraint), trigger, {}, `verifying a ${kind} error`);
    if (!verified) return;
    const { reason, advice, unverified } = SEQUENCE_ERROR_ADVICE[kind];
    if (verified.length === 0) {
      this.skipOnce(
        trigger,
        'unverified_sequence_error',
        `a record reports ${kind} for a sequence named ${JSON.stringify(incident.constraint)}, but the catalog does not confirm it (${unverified}): not an alert; a forged, garbled or outdated record`,
        { kind },
      );
      return;
    }
    for (const found of verified) {
      this.auditOnce(
        'alert',
        trigger,
        reason,
        `${advice(found)}; setval cannot fix this, nothing was done`,
        { sequence: found.sequence, ...(found.table ? { table: found.table } : {}), verified: 'catalog' },
        undefined,
        found.sequence,
      );
    }
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
      if (!this.allowed(target)) continue;
      const state = await this.whenAvailable(() => guardedSetvalExclusive(this.options.db, target, false, this.guard, this.exclusive), trigger, {}, `checking ${target.sequence}`);
      if (!state) continue;
      const behind = state.verdict === 'planned' || state.verdict === 'held';
      const now = behind ? `behind (next ${state.nextBefore}, MAX ${state.maxId})` : state.verdict === 'exhausted' ? 'exhausted' : 'in sync';
      this.auditOnce(
        'skipped',
        trigger,
        'stale_record',
        `a duplicate key error logged ${Math.round(age / 60_000)} min ago on ${target.index}: not acted on (older than remediation.stale_after); ${target.sequence} is ${now} now${behind ? ': seqwatch fix, the sweep or the next error heals it' : ''}`,
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
    for (const slot of this.slots.values()) this.writeQuiet(slot);
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

  /**
   * Audits what a name resolved to that is not a sequence to check: nothing at all, a key no
   * sequence feeds, or a key whose DEFAULT names a sequence the trust rule refuses.
   */
  private skipNonTargets(resolution: Resolution, trigger: Trigger, constraint: string): void {
    if (resolution.targets.length === 0 && resolution.nonSequence.length === 0 && !resolution.refused?.length) {
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
    for (const refused of resolution.refused ?? []) {
      this.skipOnce(trigger, refused.why === 'expression' ? 'not_sequence_fed' : 'untrusted_sequence', refusalText(refused), {
        table: refused.table,
        sequence: refused.sequence,
        ...(refused.index ? { index: refused.index } : {}),
      });
    }
  }

  private async dispatch(resolution: Resolution, trigger: Trigger, incidents: number): Promise<void> {
    const checks: Array<Promise<void>> = [];
    for (const target of resolution.targets) {
      if (!this.allowed(target)) {
        const bySequence = this.settings.policy?.allows(target.schema, target.tableName) ?? true;
        this.auditOnce(
          'skipped',
          trigger,
          'excluded_by_policy',
          bySequence
            ? `${target.table} is allowed but its sequence ${target.sequence} is in a schema the policy excludes (policy.include/exclude): not acted on`
            : `${target.table} is excluded by the policy (policy.include/exclude): not acted on`,
          { table: target.table, sequence: target.sequence },
        );
        continue;
      }
      checks.push(this.enqueue(target, trigger, incidents));
    }
    await Promise.all(checks);
  }

  /** The policy, applied to the table and to the schema of its sequence. */
  private allowed(target: SequenceTarget): boolean {
    const policy = this.settings.policy;
    if (!policy) return true;
    return policy.allows(target.schema, target.tableName) && (target.sequenceSchema === undefined || policy.allowsSchema(target.sequenceSchema));
  }

  /** Fixes of this sequence for this table within the last hour (oldest first). */
  private recentFixes(target: SequenceTarget, now = Date.now()): number[] {
    const key = `${target.sequenceOid}:${target.tableOid}`;
    const recent = (this.fixTimes.get(key) ?? []).filter((t) => now - t < HOUR);
    this.fixTimes.set(key, recent);
    return recent;
  }

  private recordFix(target: SequenceTarget): void {
    const now = Date.now();
    this.recentFixes(target, now).push(now);
    this.lastFixAt.set(target.sequenceOid, now);
  }

  /**
   * Past the hourly cap, something keeps writing explicit ids: say so once (alert) and leave the
   * sequence to a person until the hour has passed. Counted per sequence and table. True when capped.
   */
  private capped(target: SequenceTarget, trigger: Trigger): boolean {
    const cap = this.settings.maxFixesPerHour ?? Infinity;
    const recent = this.recentFixes(target);
    if (recent.length < cap) return false;
    const until = new Date(recent[0]! + HOUR).toISOString();
    this.auditOnce(
      'alert',
      trigger,
      'recurring_drift',
      `${target.sequence} was moved forward ${recent.length} times within the hour for ${target.table}: something keeps writing explicit ids into it (an importer still running, a promoted replica, an application bug). seqwatch stops acting on it for ${target.table} until ${until}; find the writer`,
      { table: target.table, sequence: target.sequence, fixes_last_hour: String(recent.length), paused_until: until },
      HOUR,
      `${target.sequence} ${target.table}`,
    );
    return true;
  }

  /**
   * The periodic sweep: every sequence-fed column (as listed by the caller) checked, drift healed
   * before the first INSERT fails. Audited like any other decision, except "in sync", which would
   * only repeat itself every interval. The watch (src/watch) checks the tables that received rows
   * through here too, with its own trigger; `onChecked` hears every state (its headroom metrics).
   * A batch that fails (a table seqwatch may not read) is retried one by one, so one table cannot
   * stop the others from being healed; that table is alerted once an hour with the GRANT it needs.
   */
  async sweep(columns: SequenceTarget[], trigger: Trigger = { source: 'sweep' }, onChecked?: (target: SequenceTarget, state: SequenceState) => void): Promise<void> {
    this.counters.sweeps++;
    const act = !this.settings.dryRun;
    const eligible = columns.filter((c) => this.allowed(c) && !(act && this.capped(c, trigger)));
    for (let i = 0; i < eligible.length; i += 100) {
      const batch = eligible.slice(i, i + 100);
      const attempt = await this.attempt(() => guardedSetvalExclusiveBatch(this.options.db, batch, act, this.guard, this.exclusive), trigger, {}, 'sweeping');
      if (!attempt) return;
      if ('ok' in attempt) {
        batch.forEach((target, j) => {
          onChecked?.(target, attempt.ok[j]!);
          this.sweepOutcome(target, attempt.ok[j]!, trigger);
        });
        continue;
      }
      for (const target of batch) {
        const one = await this.attempt(() => guardedSetvalExclusive(this.options.db, target, act, this.guard, this.exclusive), trigger, {}, 'sweeping');
        if (!one) return;
        if ('ok' in one) {
          onChecked?.(target, one.ok);
          this.sweepOutcome(target, one.ok, trigger);
        } else {
          await this.reportUncheckable(target, one.error, trigger);
        }
      }
    }
  }

  private sweepOutcome(target: SequenceTarget, state: SequenceState, trigger: Trigger): void {
    if (state.verdict === 'in_sync') return;
    const outcome = describeOutcome(target, state, { database: this.settings.database, trigger });
    if (outcome.event === 'alert') {
      this.auditOnce('alert', trigger, String(outcome.fields.reason), outcome.msg, stringFields(outcome.fields), HOUR, target.sequence);
      return;
    }
    if (state.verdict === 'remediated') {
      this.counters.remediated++;
      this.recordFix(target);
    }
    this.options.audit.write(outcome.event, outcome.fields, outcome.msg);
  }

  /** A table the sweep could not check: one alert an hour, with the GRANTs the catalog says are missing. */
  private async reportUncheckable(target: SequenceTarget, error: Error, trigger: Trigger): Promise<void> {
    this.counters.failed++;
    const missing = await this.options.db.transaction((client) => missingPrivileges(client, target)).catch(() => undefined);
    const grant = missing && missing.grants.length > 0 ? `: seqwatch's role ${missing.role} needs ${missing.grants.join(' ')}` : '';
    this.auditOnce(
      'alert',
      trigger,
      grant ? 'table_unreadable' : 'check_failed',
      `the sweep cannot check ${target.sequence} against ${target.table} (${error.message})${grant}; the other tables are swept as usual${needsFullScan(target) ? `; MAX(${target.column}) there is a full scan (no index leads with it), bounded to ${this.exclusive.fullScanTimeoutMs} ms` : ''}`,
      { table: target.table, sequence: target.sequence, error: error.message },
      HOUR,
      target.table,
    );
  }

  /**
   * Runs `work`, waiting out database outages (standby, failover, restart) instead of failing.
   * The first failure of an outage is audited as `failed` with `retrying: true`. Undefined when it
   * failed for good or the daemon stopped.
   */
  private async whenAvailable<T>(work: () => Promise<T>, trigger: Trigger, names: Record<string, string>, what: string): Promise<T | undefined> {
    const result = await this.attempt(work, trigger, names, what);
    if (!result) return undefined;
    if ('ok' in result) return result.ok;
    const message = result.error.message;
    this.counters.failed++;
    this.options.audit.write('failed', { ...names, trigger, error: message }, `${what} failed: ${message}`);
    return undefined;
  }

  /** whenAvailable, but a failure that is not an outage is handed back instead of audited. Undefined: stopped. */
  private async attempt<T>(work: () => Promise<T>, trigger: Trigger, names: Record<string, string>, what: string): Promise<{ ok: T } | { error: Error } | undefined> {
    let audited = false;
    for (;;) {
      try {
        return { ok: await work() };
      } catch (error) {
        const message = (error as Error).message;
        if (!isUnavailable(error)) return { error: error as Error };
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
        inSync: false,
        holdOff: false,
        quiet: { checks: 0, since: 0 },
        lastAuditAt: 0,
        run: pDebounce.promise(
          async () => {
            await this.check(created);
            // The hold-off: after a check that changed nothing, the next waits the cooldown too.
            const pause = Math.max(this.settings.debounceMs, created.holdOff ? (this.settings.cooldownMs ?? 0) : 0);
            if (!this.cooldown.signal.aborted) {
              await sleep(pause, undefined, { signal: this.cooldown.signal }).catch(() => {});
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

  /**
   * After a check found the sequence in sync, further checks that find it in sync again within the
   * repeat window are not audited one by one (each has its `detected` record, which counts its
   * errors): they are counted (slot.quiet) and written as one `in_sync` record before the next
   * record of that sequence, at the window's end, or at the stop.
   */
  private writeQuiet(slot: SequenceSlot): void {
    const { quiet, target } = slot;
    if (quiet.checks === 0) return;
    this.options.audit.write(
      'in_sync',
      { database: this.settings.database, table: target.table, sequence: target.sequence, column: target.column, trigger: { source: 'summary' }, checks: quiet.checks, since: new Date(quiet.since).toISOString() },
      `${quiet.checks} more check(s) of ${target.sequence} since ${new Date(quiet.since).toISOString()} (their errors are in the detected records): in sync each time, nothing done (errors on a healthy table: an application's genuine duplicates, or a forged log)`,
    );
    slot.quiet = { checks: 0, since: 0 };
    slot.lastAuditAt = Date.now();
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
    const now = Date.now();
    const windowMs = this.options.repeatAuditMs ?? 60_000;
    if (slot.quiet.checks > 0 && now - slot.quiet.since >= windowMs) this.writeQuiet(slot);
    const quiet = slot.inSync && now - slot.lastAuditAt < windowMs;
    const fullScan = needsFullScan(target);
    const detected = () =>
      this.options.audit.write(
        'detected',
        { ...names, trigger, incidents, ...(fullScan ? { full_scan: true } : {}) },
        `${incidents === 1 ? 'a duplicate key error' : `${incidents} duplicate key errors`} on ${target.index}: checking ${target.sequence} against ${target.table}.${target.column}${target.peers?.length ? ` and the ${target.peers.length} other table(s) it feeds` : ''}`,
      );
    detected();
    if (fullScan) {
      this.auditOnce(
        'alert',
        trigger,
        'full_scan',
        `MAX(${target.column}) on ${target.table}${target.peers?.length ? ' (or a table sharing its sequence)' : ''} reads the whole table: no index leads with the column. Each check is bounded to ${this.exclusive.fullScanTimeoutMs} ms and fails past it; CREATE INDEX ON ${target.table} (${target.columnQuoted}) makes it an index read`,
        { table: target.table, sequence: target.sequence },
        DAY,
        `${target.table}.${target.column}`,
      );
    }
    if (!dryRun && this.capped(target, trigger)) {
      slot.inSync = false;
      slot.holdOff = true;
      return;
    }
    const check = (act: boolean) =>
      this.whenAvailable(() => guardedSetvalExclusive(this.options.db, target, act, this.guard, this.exclusive), trigger, names, `checking ${target.sequence}`);
    const cooldownMs = this.settings.cooldownMs ?? 0;
    const last = this.lastFixAt.get(target.sequenceOid);
    const cooling = dryRun || last === undefined ? 0 : last + cooldownMs - Date.now();
    let state = cooling > 0 ? await check(false) : undefined;
    // Within the cooldown only a fix waits: a sequence found in sync is reported at once.
    if (state?.verdict === 'planned') await sleep(last! + cooldownMs - Date.now(), undefined, { signal: this.cooldown.signal }).catch(() => {});
    if (!state || state.verdict === 'planned') state = await check(!dryRun);
    if (!state) {
      slot.inSync = false;
      slot.holdOff = true;
      // The table may have changed underneath (dropped, renamed): look the name up afresh next time.
      if (trigger.constraint !== undefined) this.options.resolver.forget(trigger.constraint);
      return;
    }
    if (quiet && state.verdict === 'in_sync') {
      slot.holdOff = true;
      if (slot.quiet.checks === 0) slot.quiet.since = now;
      slot.quiet.checks++;
      return;
    }
    if (quiet) this.writeQuiet(slot);
    slot.inSync = state.verdict === 'in_sync';
    slot.holdOff = state.verdict !== 'remediated';
    slot.lastAuditAt = Date.now();
    if (state.verdict === 'remediated') {
      this.counters.remediated++;
      this.recordFix(target);
    }
    const outcome = describeOutcome(target, state, { database: this.settings.database, trigger });
    if (outcome.event === 'alert') {
      // Held or exhausted: the same state every check; a person needs it once an hour, not per error.
      this.auditOnce('alert', trigger, String(outcome.fields.reason), outcome.msg, stringFields(outcome.fields), HOUR, target.sequence);
      return;
    }
    this.options.audit.write(outcome.event, outcome.fields, outcome.msg);
  }

  private skipOnce(trigger: Trigger, reason: string, msg: string, fields: Record<string, string> = {}): void {
    this.auditOnce('skipped', trigger, reason, msg, fields);
  }

  /**
   * Audits a decision once per subject and reason within `windowMs`, counting the repeats: a
   * storm of the same error must not bury the audit log. The subject is the constraint (or
   * `subject`, e.g. a sequence, when given). Past DISTINCT_PER_WINDOW subjects of one reason within
   * the window (a storm of forged or garbled names), the rest of the `skipped` records are
   * summarised in one record at the window's end: how many names, how many records, a few
   * examples. Alerts are about what the catalog confirmed (a sequence, a table): bounded by the
   * database itself, they are always audited one by one.
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
    // Names read from logs can flood; what the catalog confirmed cannot.
    if ((event === 'skipped' || LOG_NAMED_ALERTS.has(reason)) && !this.withinReasonBudget(event, reason, subject, windowMs, now)) return;
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

/**
 * What each of the runbook's other sequence errors means, what a person should do (written from
 * the catalog's names only, never from the log's text), and what the catalog must show for it to
 * be an alert at all.
 */
const SEQUENCE_ERROR_ADVICE: Record<SequenceErrorKind, { reason: string; advice: (v: VerifiedSequenceError) => string; unverified: string }> = {
  sequence_exhausted: {
    reason: 'sequence_exhausted',
    advice: (v) =>
      `nextval() failed: ${v.sequence} reached its limit ${v.limit}${v.table ? ` (it feeds ${v.table})` : ''}. ` +
      exhaustedAdvice({ sequence: v.sequence, table: v.table ?? '<its table>', columnQuoted: v.columnQuoted ?? '<its column>' }, { limit: v.limit!, increment: v.increment!, sequenceType: v.sequenceType! }),
    unverified: 'no sequence of that name whose next value would pass its limit now',
  },
  sequence_missing: {
    reason: 'sequence_missing',
    advice: (v) =>
      `sequence ${v.sequence} does not exist, and ${v.table}.${v.columnQuoted} is the column it would feed: a dropped or never restored sequence (a partial pg_restore?). ` +
      `Recreate it (CREATE SEQUENCE ${v.sequence} OWNED BY ${v.table}.${v.columnQuoted}; ALTER TABLE ${v.table} ALTER COLUMN ${v.columnQuoted} SET DEFAULT nextval(${sqlLiteral(v.sequence)}); then seqwatch fix --table ${v.table})`,
    unverified: 'a relation of that name exists, or no table has a column that sequence would feed',
  },
  sequence_permission_denied: {
    reason: 'sequence_permission_denied',
    advice: (v) => `the application's role may not use ${v.sequence}: GRANT USAGE, SELECT ON SEQUENCE ${v.sequence} TO <application role>`,
    unverified: 'no sequence of that name',
  },
  setval_out_of_bounds: {
    reason: 'setval_out_of_bounds',
    advice: (v) => `a setval on ${v.sequence} was out of its bounds: a hand-run fix used a value past the sequence's limits; compare the column's MAX with the sequence's MAXVALUE`,
    unverified: 'no sequence of that name',
  },
};

/** Alerts whose subject is a name read from a log, not confirmed by the catalog (and may therefore come in floods). */
const LOG_NAMED_ALERTS = new Set(['replication_conflict']);

const DAY = 24 * HOUR;

/** A MAX that reads a whole table is cut off after this long (ms): it fails and says so. */
const FULL_SCAN_TIMEOUT_MS = 5_000;

/** Audit fields as auditOnce takes them (strings), from an Outcome's fields. */
function stringFields(fields: Record<string, unknown>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null && k !== 'trigger' && k !== 'reason') result[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return result;
}

function triggerOf(incident: Incident): Trigger {
  const trigger: Trigger = { source: incident.source, constraint: incident.constraint };
  if (incident.line !== undefined) trigger.line = incident.line;
  if (incident.offset !== undefined) trigger.offset = incident.offset;
  if (incident.logTime !== undefined) trigger.log_time = incident.logTime;
  return trigger;
}
