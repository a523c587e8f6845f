import type { AuditWriter, Trigger } from '../audit/AuditLog.js';
import { isUnavailable } from '../db/Database.js';

/** What waiting out an outage needs: the database to wait for, the audit, and when to give up. */
export interface OutageWait {
  db: { waitUntilAvailable(signal?: AbortSignal): Promise<void> };
  audit: AuditWriter;
  /** Aborted when the daemon stops and will not wait any longer. */
  giveUp: AbortSignal;
  /** Called for each `failed` record written (the remediator's `failed` counter). */
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
 * first failure of an outage is audited as `failed` with `retrying: true`, then the work runs again
 * once the database answers. A failure that is not an outage is handed back; a stop while waiting
 * is audited as `skipped` (reason `shutdown`) and gives undefined.
 */
export async function attempt<T>(wait: OutageWait, work: () => Promise<T>, { trigger, names = {}, what }: WorkDescription): Promise<Attempt<T>> {
  let audited = false;
  for (;;) {
    try {
      return { ok: await work() };
    } catch (error) {
      const message = (error as Error).message;
      if (!isUnavailable(error)) return { error: error as Error };
      if (!audited) {
        audited = true;
        wait.onFailure();
        wait.audit.write(
          'failed',
          { ...names, trigger, error: message, retrying: true },
          `${what}: the database is not available (${message}); waiting for it and trying again`,
        );
      }
      try {
        await wait.db.waitUntilAvailable(wait.giveUp);
      } catch {
        wait.audit.write('skipped', { ...names, trigger, reason: 'shutdown' }, `${what}: given up, the daemon is stopping and the database is still away`);
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
