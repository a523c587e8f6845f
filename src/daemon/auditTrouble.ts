import type { Logger } from 'pino';
import type { AuditLog } from '../audit/AuditLog.js';

/** While the audit log cannot be written, the daemon's log repeats it this often. */
const NAG_EVERY_MS = 60_000;

/**
 * A full disk (or a read-only remount) under the audit log: the daemon keeps healing, since a fix
 * is as safe unaudited and an outage left alone is harm. It says so loudly instead: an error in its
 * own log (the journal) at once and every minute, each decision echoed there in full, /healthz and
 * the health file report `audit: false`, and the held records reach the file when it has room.
 * `auditPath` is read each time: a reload may move the audit log.
 */
export function reportAuditTrouble(audit: AuditLog, logger: Logger, auditPath: () => string): void {
  let nagged = 0;
  const nag = () => {
    const state = audit.writeState;
    logger.error(
      { audit: auditPath(), ...state },
      `cannot write the audit log (${state.error}): seqwatch keeps healing, holds ${state.held} record(s) in memory and logs each decision here until it can write again; free space under ${auditPath()}`,
    );
    nagged = Date.now();
  };
  audit.onTrouble((state) => {
    if (state.writable) logger.warn({ audit: auditPath() }, 'the audit log is writable again; the held records were written to it');
    else nag();
  });
  audit.onRecord((record) => {
    if (audit.writeState.writable) return;
    logger.warn({ unaudited: record }, `decision not yet in the audit log: ${record.event}: ${record.msg}`);
    if (Date.now() - nagged > NAG_EVERY_MS) nag();
  });
}
