import { accessSync, constants, readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { AuditLog } from '../audit/AuditLog.js';
import { DatabaseAuthenticationFailed, DatabaseUnavailable } from '../db/Database.js';
import { readDenial } from '../util/readDenial.js';
import { singleQuoted } from '../util/singleQuoted.js';
import { readsLogLinePrefix } from '../formats/formatNames.js';
import { withSqlstate } from '../formats/logLinePrefix.js';

/**
 * "Healthy" means "can heal". Each condition that keeps seqwatch from healing is a problem with a
 * sentence and the fix; docs/health.md lists them and says which keep the systemd watchdog fed.
 */
export type ProblemCode =
  | 'database_unreachable'
  | 'database_standby'
  | 'database_read_only'
  | 'database_authentication'
  | 'source_unreadable'
  | 'source_unparsed'
  | 'source_translated'
  | 'source_stuck'
  | 'audit_unwritable';

export interface HealthProblem {
  code: ProblemCode;
  /** What it is about: a source's path, a database's name. */
  subject: string;
  message: string;
  fix: string;
}

export interface Health {
  ok: boolean;
  /** Every database answers on a primary. */
  database: boolean;
  /** Every source is followed, readable, and its error lines parse. */
  sources: boolean;
  /** The audit log can be written (when false, decisions wait in memory and go to the daemon's log). */
  audit: boolean;
  /** Whether this state feeds the systemd watchdog (see WATCHDOG_STARVING). */
  watchdog: boolean;
  problems: HealthProblem[];
  time: string;
}

/**
 * The problems a restart may cure, and so the only ones that stop the watchdog: a follower that no
 * longer polls, and a database that does not answer at all (a wedged connection, a server that is
 * down: the process has nothing to lose by starting afresh). A wrong password, a standby, an
 * unreadable file, a prefix that does not match or a full disk are the same after a restart: feeding
 * the watchdog there avoids a restart loop, and health, metrics, the log and the audit say it instead.
 */
export const WATCHDOG_STARVING: ReadonlySet<ProblemCode> = new Set<ProblemCode>(['database_unreachable', 'source_stuck']);

/** A problem is alerted (audit `alert`) when first seen; an unreachable database only once it lasted this long (a restart is no incident). */
const ALERT_AFTER_MS: Partial<Record<ProblemCode, number>> = { database_unreachable: 60_000 };
/** Said in the log only once it lasted this long: a database still connecting at start is no news (its outages are logged as they begin). */
const LOG_AFTER_MS: Partial<Record<ProblemCode, number>> = { database_unreachable: 10_000 };
/** While a problem lasts, the daemon's log repeats it this often. */
export const REPEAT_MS = 60_000;

/** Why a database cannot be used, from the error its last query or connection attempt gave. */
export function databaseProblem(database: string, error: unknown): HealthProblem {
  const message = `database ${database}: ${(error as Error).message}`;
  if (error instanceof DatabaseAuthenticationFailed) {
    return {
      code: 'database_authentication',
      subject: database,
      message,
      fix: `give role ${error.role} its right password (database.password_file, then systemctl reload seqwatch; or the URL, PGPASSWORD, ~/.pgpass), or check pg_hba.conf on ${error.host} for role ${error.role}`,
    };
  }
  if (error instanceof DatabaseUnavailable && error.reason === 'standby') {
    return {
      code: 'database_standby',
      subject: database,
      message,
      fix: 'point database.url at the primary, or list every host with ?target_session_attrs=read-write (postgresql://seqwatch@standby,primary/db?target_session_attrs=read-write); during a failover this clears once a primary answers',
    };
  }
  if (error instanceof DatabaseUnavailable && error.reason === 'read_only') {
    return {
      code: 'database_read_only',
      subject: database,
      message,
      fix: 'list the primary in database.url (with ?target_session_attrs=read-write), or lift default_transaction_read_only for the seqwatch role',
    };
  }
  return {
    code: 'database_unreachable',
    subject: database,
    message,
    fix: 'check that PostgreSQL runs and listens where database.url says (pg_isready -h HOST -p PORT), and the network between',
  };
}

/**
 * Whether the service user can read a file source (or the directory a glob source lists). A file
 * that does not exist yet is no problem (the server creates it); one that exists and cannot be read is.
 */
export function sourceReadProblem(path: string, glob: boolean): HealthProblem | undefined {
  try {
    if (glob) readdirSync(dirname(path));
    else accessSync(path, constants.R_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    const target = glob ? dirname(path) : path;
    const { user, owner } = readDenial(target);
    return {
      code: 'source_unreadable',
      subject: path,
      message: `cannot read ${target} (${code}) as user ${user.name} (groups ${user.groups}): duplicate key errors written there are not seen${owner ? `; it is ${owner}` : ''}`,
      fix: owner?.group
        ? `let ${user.name} read it: add it to group ${owner.group} (SupplementaryGroups=${owner.group} in the unit, or usermod -aG ${owner.group} ${user.name}, then restart), or setfacl -m u:${user.name}:r ${target}; seqwatch doctor checks it`
        : `let ${user.name} read ${target} (and search its directories); seqwatch doctor checks it`,
    };
  }
}

/** Lines holding a sequence error's text that the configured format did not take. */
export function unparsedProblem(
  source: { path: string; format: string; log_line_prefix: string },
  count: number,
  sample: string,
  line: number | undefined,
): HealthProblem {
  const prefixed = readsLogLinePrefix(source.format);
  return {
    code: 'source_unparsed',
    subject: source.path,
    message:
      `${source.path}: ${count} line(s) hold a sequence error's text but do not match the configured format ${source.format}` +
      `${prefixed ? ` with log_line_prefix ${JSON.stringify(source.log_line_prefix)}` : ''}: those errors are not acted on; ` +
      `the last${line !== undefined ? ` (line ${line})` : ''} begins ${JSON.stringify(sample.length > 200 ? `...${sample.slice(-200)}` : sample)}`,
    fix: prefixed
      ? `set log_line_prefix in the config to the server's exactly (psql -Atc 'SHOW log_line_prefix'), or format to the log's real format; then systemctl reload seqwatch (seqwatch doctor compares them)`
      : `set format to the log's real format (postgres-stderr, postgres-csv, postgres-json, syslog, docker-json, app-text); then systemctl reload seqwatch`,
  };
}

/**
 * A source whose lines carry no SQLSTATE beside a server that writes its messages in another
 * language: its duplicate key errors are recognised by SQLSTATE only, so none of them is seen. Either
 * the config's prefix has no %e (`lacking` config; the start's warning says it of every such source,
 * this once the server's lc_messages says so), or the server's has none while the config's has
 * (`lacking` server: the config's %e then reads nothing; the field trial found a daemon healthy so).
 */
export function translatedProblem(
  source: { path: string; format: string; log_line_prefix: string },
  server: { database: string; lcMessages: string; logLinePrefix: string },
  lacking: 'config' | 'server' = 'config',
): HealthProblem {
  const wanted = lacking === 'server' ? source.log_line_prefix : withSqlstate(server.logLinePrefix);
  return {
    code: 'source_translated',
    subject: source.path,
    message:
      `${source.path}: the server of database ${server.database} writes its messages in another language (lc_messages '${server.lcMessages}'), and ` +
      (lacking === 'server'
        ? `its log_line_prefix ${JSON.stringify(server.logLinePrefix)} has no %e (the config's ${JSON.stringify(source.log_line_prefix)} has): its lines carry no SQLSTATE`
        : `${source.format} gives no SQLSTATE here (no %e in the config's log_line_prefix)`) +
      `, so its duplicate key errors are not recognised (a translated message is, by its SQLSTATE only) and nothing is healed from them` +
      ` (the watch, when on, still checks the tables it watches)`,
    fix:
      `ALTER SYSTEM SET log_line_prefix = ${singleQuoted(wanted)}; SELECT pg_reload_conf();` +
      (lacking === 'server' ? '' : ` and in the config: log_line_prefix: ${singleQuoted(wanted)}; then systemctl reload seqwatch`) +
      ` (or ALTER SYSTEM SET lc_messages = 'C'; SELECT pg_reload_conf();)`,
  };
}

export function stuckProblem(path: string, sinceMs: number): HealthProblem {
  return {
    code: 'source_stuck',
    subject: path,
    message: `${path}: the follower has not polled for ${Math.round(sinceMs / 1000)} s`,
    fix: 'the watchdog restarts seqwatch; if it recurs, report it with the daemon log',
  };
}

export function auditProblem(path: string, error: string | undefined): HealthProblem {
  return {
    code: 'audit_unwritable',
    subject: path,
    message: `cannot write the audit log ${path} (${error ?? 'unknown error'})`,
    fix: `free space under ${path}, or make it writable`,
  };
}

/**
 * Says each problem in the daemon's log when it starts and every minute while it lasts, audits it
 * once as an `alert` (with the fix), and says when it is over. The audit log's own trouble is said
 * by src/daemon/auditTrouble.ts, and an alert could not be written there anyway.
 */
export class ProblemReporter {
  private readonly open = new Map<string, { problem: HealthProblem; since: number; loggedAt: number; alerted: boolean }>();

  constructor(
    private readonly logger: Logger,
    private readonly audit: AuditLog,
  ) {}

  report(problems: HealthProblem[], now = Date.now()): void {
    const seen = new Set<string>();
    for (const problem of problems) {
      if (problem.code === 'audit_unwritable') continue;
      const key = `${problem.code}\0${problem.subject}`;
      seen.add(key);
      let entry = this.open.get(key);
      if (!entry) this.open.set(key, (entry = { problem, since: now, loggedAt: 0, alerted: false }));
      entry.problem = problem;
      if (now - entry.loggedAt >= REPEAT_MS && now - entry.since >= (LOG_AFTER_MS[problem.code] ?? 0)) {
        entry.loggedAt = now;
        this.logger.error(
          { problem: problem.code, subject: problem.subject, since: new Date(entry.since).toISOString() },
          `cannot heal: ${problem.message}; fix: ${problem.fix}`,
        );
      }
      if (!entry.alerted && now - entry.since >= (ALERT_AFTER_MS[problem.code] ?? 0)) {
        entry.alerted = true;
        this.audit.write('alert', { reason: problem.code, subject: problem.subject, fix: problem.fix }, `cannot heal: ${problem.message}; fix: ${problem.fix}`);
      }
    }
    for (const [key, entry] of this.open) {
      if (seen.has(key)) continue;
      this.open.delete(key);
      this.logger.info(
        { problem: entry.problem.code, subject: entry.problem.subject },
        `resolved after ${Math.round((now - entry.since) / 1000)} s: ${entry.problem.message}`,
      );
    }
  }
}
