import type { AuditWriter, Trigger } from '../audit/AuditLog.js';
import { DISTINCT_PER_WINDOW } from '../audit/AuditThrottle.js';
import { isUnavailable } from '../db/Database.js';

/** What waiting out an outage needs: the database to wait for, the audit, and when to give up. */
export interface OutageWait {
  db: { waitUntilAvailable(signal?: AbortSignal): Promise<void> };
  audit: AuditWriter;
  /** What of the waits of an outage is audited one by one (see OutageWaits). */
  waits: OutageWaits;
  /** Aborted when the daemon stops and will not wait any longer. */
  giveUp: AbortSignal;
  /**
   * Called for each piece of work that failed for good, audited one by one or not: a failure that is
   * no outage, or a wait given up at a stop (the remediator's `failed` counter). A wait that ends
   * with the work done is none: counted, three outages of a storm's lookups made 5,765 "failed" of
   * the daemon's status line, all of them done.
   */
  onFailure: () => void;
}

/** The work's result, or its error when that is not an outage; undefined when the daemon gave up waiting. */
export type Attempt<T> = { ok: T } | { error: Error } | undefined;

/** What a record says about the work: the names it concerns and what it was doing (`checking public.t_id_seq`). */
export interface WorkDescription {
  trigger: Trigger;
  names?: Record<string, string>;
  what: string;
}

/**
 * Runs `work`, waiting out database outages (standby, failover, restart) instead of failing: the
 * first failure of an outage is audited as `failed` with `retrying: true` (see OutageWaits), then
 * the work runs again once the database answers. A failure that is not an outage is handed back; a
 * stop while waiting is audited as `skipped` (reason `shutdown`) and gives undefined.
 */
export async function attempt<T>(wait: OutageWait, work: () => Promise<T>, description: WorkDescription): Promise<Attempt<T>> {
  let waited = false;
  for (;;) {
    try {
      const ok = await work();
      if (waited) wait.waits.ended();
      return { ok };
    } catch (error) {
      if (!isUnavailable(error)) {
        if (waited) wait.waits.ended();
        return { error: error as Error };
      }
      if (!waited) {
        waited = true;
        wait.waits.waiting(description, (error as Error).message);
      }
      try {
        await wait.db.waitUntilAvailable(wait.giveUp);
      } catch {
        wait.onFailure();
        wait.waits.gaveUp(description);
        return undefined;
      }
    }
  }
}

/** attempt(), with a failure that is not an outage audited as `failed`: undefined when it failed or the daemon stopped. */
export async function whenAvailable<T>(wait: OutageWait, work: () => Promise<T>, description: WorkDescription): Promise<T | undefined> {
  const result = await attempt(wait, work, description);
  if (!result) return undefined;
  if ('ok' in result) return result.ok;
  const message = result.error.message;
  wait.onFailure();
  wait.audit.write('failed', { ...(description.names ?? {}), trigger: description.trigger, error: message }, `${description.what} failed: ${message}`);
  return undefined;
}

/** The waits past those audited one by one: counted, with a few examples. */
interface Unaudited {
  /** When the first of the run was audited (an outage's first wait). */
  since: number;
  count: number;
  examples: string[];
}

/** A run of waits (one outage's, or those given up at a stop): the first DISTINCT_PER_WINDOW audited one by one, the rest counted. */
class AuditedFirst {
  private audited = 0;
  private since = 0;
  private rest: Unaudited | undefined;

  /** True when this wait is audited on its own; otherwise it is counted (`what` kept as an example). */
  admit(what: string, now: number): boolean {
    if (this.audited < DISTINCT_PER_WINDOW) {
      if (this.audited++ === 0) this.since = now;
      return true;
    }
    this.rest ??= { since: this.since, count: 0, examples: [] };
    this.rest.count++;
    if (this.rest.examples.length < 5) this.rest.examples.push(what);
    return false;
  }

  /** The run is over: what was only counted, if anything; the next run starts afresh. */
  end(): Unaudited | undefined {
    const rest = this.rest;
    this.audited = 0;
    this.rest = undefined;
    return rest;
  }
}

/**
 * What of an outage's waits reaches the audit. Each piece of work that meets the outage (a check,
 * a lookup, a sweep) waits for the database on its own, and a storm of distinct names meets it
 * with thousands of lookups at once: audited one by one, they were 2,301 `failed` records in one
 * millisecond of a field trial, each saying the same thing. So the first DISTINCT_PER_WINDOW waits
 * of an outage are audited one by one (`failed`, `retrying: true`), the others counted; once the
 * database answers one of them again, one record says how many more had waited since when. The
 * same holds for the waits given up at a stop (`skipped`, reason `shutdown`), summed up by flush().
 * An outage ends when a wait ends (the work ran, or failed for another reason).
 */
export class OutageWaits {
  private readonly waits = new AuditedFirst();
  private readonly givenUp = new AuditedFirst();

  constructor(
    private readonly audit: AuditWriter,
    private readonly now: () => number = Date.now,
  ) {}

  /** A piece of work met the outage and waits for the database. */
  waiting({ trigger, names = {}, what }: WorkDescription, error: string): void {
    if (!this.waits.admit(what, this.now())) return;
    this.audit.write(
      'failed',
      { ...names, trigger, error, retrying: true },
      `${what}: the database is not available (${error}); waiting for it and trying again`,
    );
  }

  /** A wait ended (the database answered): the outage is over, and its uncounted waits are written. */
  ended(): void {
    const waited = this.waits.end();
    if (!waited) return;
    const since = new Date(waited.since).toISOString();
    this.audit.write(
      'failed',
      { trigger: { source: 'summary' }, retrying: false, waited: waited.count, examples: waited.examples, since },
      `${waited.count} more lookups and checks waited for the database since ${since}, beyond the ${DISTINCT_PER_WINDOW} audited one by one ` +
        `(e.g. ${waited.examples.join('; ')}): it answers again, and each goes on as those did`,
    );
  }

  /** A wait was given up: the daemon stops and the database is still away. */
  gaveUp({ trigger, names = {}, what }: WorkDescription): void {
    if (!this.givenUp.admit(what, this.now())) return;
    this.audit.write(
      'skipped',
      { ...names, trigger, reason: 'shutdown' },
      `${what}: given up, the daemon is stopping and the database is still away: done at the next start`,
    );
  }

  /** At a stop: the waits given up past those audited one by one, in one record. */
  flush(): void {
    const givenUp = this.givenUp.end();
    if (!givenUp) return;
    this.audit.write(
      'skipped',
      { reason: 'shutdown', trigger: { source: 'summary' }, given_up: givenUp.count, examples: givenUp.examples },
      `${givenUp.count} more lookups and checks given up, beyond the ${DISTINCT_PER_WINDOW} audited one by one (e.g. ${givenUp.examples.join('; ')}): ` +
        'the daemon is stopping and the database is still away: nothing was done for them yet, their errors are read again at the next start',
    );
  }
}
