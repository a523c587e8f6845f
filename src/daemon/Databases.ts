import type { Logger } from 'pino';
import type { AuditLog } from '../audit/AuditLog.js';
import {
  ConfigError,
  databasesOf,
  DEFAULT_MAX_JUMP,
  DEFAULT_NEAR_LIMIT_PERCENT,
  readPasswordFile,
  type Config,
  type DatabaseConfig,
} from '../config/config.js';
import { Database, KEPT_CONNECTIONS, POOL_SIZE } from '../db/Database.js';
import { rehearseGuardedSetval } from '../db/guardedSetval.js';
import { listSequenceColumns } from '../db/listSequenceColumns.js';
import { IndexResolver, type SequenceTarget } from '../db/resolveIndex.js';
import type { Incident } from '../detect/detectIncident.js';
import { namesOtherDatabase } from '../detect/otherDatabase.js';
import { Remediator, type RemediationSettings, type RemediatorCounters } from '../remediate/Remediator.js';
import { TablePolicy } from '../remediate/TablePolicy.js';
import { warmHealPath } from '../remediate/warmUp.js';
import { databaseProblem, type HealthProblem } from '../service/health.js';
import { SharedAll } from '../util/sharedAll.js';

/** Distinct names waiting for the catalog past which files are not read on (see SourcePipelines.backpressure). */
const PENDING_NAMES_HIGH = 2_000;

/** One watched database: its connection, catalog cache and remediation. */
export interface DatabaseContext {
  db: Database;
  resolver: IndexResolver;
  remediator: Remediator;
}

/** What a database's server writes in its log: the language of its messages, the prefix of its stderr and syslog lines. */
export interface ServerLogSettings {
  database: string;
  lcMessages: string;
  logLinePrefix: string;
}

/** The remediation settings a config asks for (also on reload). */
function remediationSettings(config: Config, database: string): RemediationSettings {
  return {
    database,
    dryRun: config.remediation.dry_run,
    debounceMs: config.remediation.debounce_ms,
    policy: new TablePolicy(config.policy.include, config.policy.exclude),
    cooldownMs: config.remediation.cooldown,
    maxFixesPerHour: config.remediation.max_fixes_per_hour,
    staleAfterMs: config.remediation.stale_after,
    maxJump: config.remediation.max_jump ?? DEFAULT_MAX_JUMP,
    nearLimitPercent: config.remediation.near_limit_percent ?? DEFAULT_NEAR_LIMIT_PERCENT,
  };
}

function logDatabaseEvents(logger: Logger) {
  return (event: 'connected' | 'unavailable' | 'limited', detail: Record<string, unknown>) => {
    if (event === 'connected') return logger.info(detail, 'connected to the database');
    if (event === 'unavailable') return logger.warn(detail, 'database unavailable; waiting for it');
    const { role, connections } = detail as { role: string; connections: number };
    logger.warn(
      detail,
      `the server refused one more connection of role ${role} (the role's connection limit, or the server's max_connections): ` +
        `seqwatch goes on with the ${connections} it has, not an outage; it needs up to ${POOL_SIZE} connections, ${KEPT_CONNECTIONS} kept open ` +
        `(ALTER ROLE ${role} CONNECTION LIMIT ${POOL_SIZE})`,
    );
  };
}

/**
 * The watched databases (config `database` or `databases`), each with its connection, catalog
 * cache and Remediator. The only place that decides whether a record is for one of them (route).
 */
/** The remediators' counters together, and the records routing found to be another database's. */
export type DatabasesCounters = RemediatorCounters & { otherDatabase: number };

/** What a database's connections rehearse a fix on: a column the warm-up found that the policy allows. */
function rehearsalTarget(c: Pick<DatabaseContext, 'resolver' | 'remediator'>): SequenceTarget | undefined {
  return c.resolver.rehearsalTargets.find((t) => c.remediator.allows(t));
}

/**
 * The rehearsal's columns, one per run (Database.rehearsal): two the policy allows, or the one
 * twice (two different tables left the server a little warmer than one read twice: 2.3 against
 * 2.8 ms for the first fix, same measurement as Database.rehearse's).
 */
function rehearsalTargets(c: Pick<DatabaseContext, 'resolver' | 'remediator'>): SequenceTarget[] {
  const allowed = c.resolver.rehearsalTargets.filter((t) => c.remediator.allows(t));
  const [first, second] = allowed;
  return first === undefined ? [] : [first, second ?? first];
}

/** The catalog's answers are kept 10 minutes (IndexResolver's foundTtlMs): warmed again before that. */
const CATALOG_WARM_EVERY_MS = 9 * 60_000;

export class Databases {
  private warmTimer: NodeJS.Timeout | undefined;
  /** Records that named a database not watched here: counted, not acted on. */
  private otherDatabase = 0;
  /** Sources whose errors name no database while several are watched, already said in the audit. */
  private readonly databaseUnknownSaid = new Set<string>();
  /** A record that names no database, with several: the promises of its checks in each, shared by the records they answer. */
  private readonly sharedRoutes = new SharedAll();
  /** Each database's server settings that decide what its log says, from its last answer to the heartbeat. */
  private readonly logSettings = new Map<DatabaseContext, ServerLogSettings>();

  private constructor(
    readonly contexts: readonly DatabaseContext[],
    private wanted: DatabaseConfig[],
    private readonly audit: AuditLog,
    private readonly logger: Logger,
  ) {}

  /** Opens no connection yet: each connects on first use (waitUntilAvailable, a check). */
  static async open(config: Config, configPath: string, audit: AuditLog, logger: Logger): Promise<Databases> {
    const contexts: DatabaseContext[] = [];
    for (const database of databasesOf(config)) {
      const db = new Database({ url: database.url, password: await readPasswordFile(database), onEvent: logDatabaseEvents(logger) });
      const resolver = new IndexResolver(db);
      const remediator = new Remediator({ db, resolver, audit, ...remediationSettings(config, db.name), onWarning: (message) => logger.error(message) });
      // Each new connection runs a read-only fix of a column the catalog warm-up found, before its first use.
      db.rehearsal = async (client, run = 0) => {
        const target = rehearsalTargets({ resolver, remediator })[run];
        if (target) await rehearseGuardedSetval(client, target);
      };
      contexts.push({ db, resolver, remediator });
    }
    const names = contexts.map((c) => c.db.name);
    const duplicate = names.find((name, i) => names.indexOf(name) !== i);
    if (duplicate !== undefined) throw new ConfigError([`${configPath}: database ${duplicate} is named twice in databases`]);
    return new Databases(contexts, databasesOf(config), audit, logger);
  }

  get names(): string[] {
    return this.contexts.map((c) => c.db.name);
  }

  /**
   * To the database the record names (%d, dbname); a record naming another database is counted and
   * left alone. A record that names none (an application log) is checked in every watched database:
   * only verified drift is acted on, so that is safe. Settles once the incident is handled.
   */
  route(incident: Incident): Promise<void> {
    if (incident.database !== undefined) {
      const context = this.contexts.find((c) => !namesOtherDatabase(incident, c.db.name));
      if (!context) {
        this.otherDatabase++;
        return Promise.resolve();
      }
      return context.remediator.handle(incident);
    }
    // The remediator's own promise, shared by the errors one check answers: the pipeline then holds
    // one checkpoint for all of them, not one each (a wrapper per record held 10,000 in a storm);
    // with several databases, one promise for the same checks in each (SharedAll).
    if (this.contexts.length === 1) return this.contexts[0]!.remediator.handle(incident);
    if (!this.databaseUnknownSaid.has(incident.source)) {
      // The checks' records name the database each ran in, not the error's: say so, once per source.
      this.databaseUnknownSaid.add(incident.source);
      const names = this.names;
      this.audit.write(
        'alert',
        { database: null, databases: names, reason: 'database_unknown', trigger: { source: incident.source, constraint: incident.constraint } },
        `${incident.source} names no database (a server log whose log_line_prefix has no %d, or an application log): the database of its errors cannot be known: checked in each of ${names.join(', ')}, healed where drift is verified; for a server log, add %d to log_line_prefix (server and config) to route each error to its database`,
      );
    }
    return this.sharedRoutes.all(this.contexts.map((c) => c.remediator.handle(incident)));
  }

  /** Counters of all databases together. */
  counters(): DatabasesCounters {
    const total: RemediatorCounters = { incidents: 0, checks: 0, remediated: 0, failed: 0, sweeps: 0 };
    for (const c of this.contexts) for (const key of Object.keys(total) as Array<keyof RemediatorCounters>) total[key] += c.remediator.counters[key];
    return { ...total, otherDatabase: this.otherDatabase };
  }

  catalogQueries(): number {
    return this.contexts.reduce((n, c) => n + c.resolver.queries, 0);
  }

  /** So many distinct names wait for the catalog (a flood of forged or garbled names) that reading should pause. */
  catalogFull(): boolean {
    return this.contexts.some((c) => c.remediator.pendingNames >= PENDING_NAMES_HIGH);
  }

  /** Each database's lc_messages and log_line_prefix, as its last answer to the heartbeat gave them (none before the first). */
  serverLogSettings(): ServerLogSettings[] {
    return this.contexts.flatMap((c) => this.logSettings.get(c) ?? []);
  }

  /** Resolves once every database answered; rejects with DatabaseAuthenticationFailed when a login is refused. */
  async waitUntilAvailable(): Promise<void> {
    await Promise.all(this.contexts.map((c) => c.db.waitUntilAvailable(undefined, { failOnAuthentication: true })));
  }

  get hosts(): Array<string | undefined> {
    return this.contexts.map((c) => c.db.host);
  }

  /**
   * Health: each database that does not answer within `timeoutMs`, as a problem with its fix. The
   * question asked is what decides what the server's log says (serverLogSettings).
   */
  async problems(timeoutMs: number): Promise<HealthProblem[]> {
    const answers = await Promise.all(
      this.contexts.map((c) =>
        Promise.race([
          c.db.query<{ lc: string; prefix: string }>(`SELECT current_setting('lc_messages') AS lc, current_setting('log_line_prefix') AS prefix`).then(
            ({ rows }) => void this.logSettings.set(c, { database: c.db.name, lcMessages: rows[0]?.lc ?? '', logLinePrefix: rows[0]?.prefix ?? '' }),
            (error: unknown) => error,
          ),
          new Promise<Error>((resolve) => setTimeout(() => resolve(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref()),
        ]),
      ),
    );
    return answers.flatMap((error, i) => (error === undefined ? [] : [databaseProblem(this.contexts[i]!.db.name, error)]));
  }

  /** Read before a reload is committed: an unreadable password file refuses the reload (better the old password than none). */
  static readPasswords(config: Config): Promise<Array<string | undefined>> {
    return Promise.all(databasesOf(config).map((d) => readPasswordFile(d)));
  }

  /**
   * A reloaded config: a changed URL or password reconnects (and forgets the catalog cache), the
   * remediation settings apply from the next check. Adding or removing a database waits for a restart.
   */
  reconfigure(next: Config, passwords: Array<string | undefined>): void {
    const [wanted, running] = [databasesOf(next), this.wanted];
    this.wanted = wanted;
    if (wanted.length !== this.contexts.length) {
      this.logger.warn('the number of databases changed: that takes effect at the next restart; the databases watched stay as they were');
    } else {
      for (const [i, c] of this.contexts.entries()) {
        if (JSON.stringify(wanted[i]) !== JSON.stringify(running[i]) || passwords[i] !== undefined) {
          c.db.reconfigure({ url: wanted[i]!.url, password: passwords[i], onEvent: logDatabaseEvents(this.logger) });
          c.resolver.clear();
          if (this.warmTimer) this.warmCatalog(c);
        }
      }
    }
    for (const c of this.contexts) c.remediator.updateSettings(remediationSettings(next, c.db.name));
  }

  /** The periodic sweep: every sequence-fed column of each database, in turn. Throws at the first database that fails. */
  async sweep(): Promise<void> {
    for (const c of this.contexts) await c.remediator.sweep(await listSequenceColumns(c.db));
  }

  /**
   * Every unique index looked up ahead of its first error (IndexResolver.warm), and again before
   * those answers expire: the first error on a table is then checked at once instead of waiting
   * for the catalog. Started once the database answers.
   */
  keepCatalogWarm(): void {
    for (const c of this.contexts) this.warmCatalog(c);
    this.warmTimer = setInterval(() => this.contexts.forEach((c) => this.warmCatalog(c)), CATALOG_WARM_EVERY_MS).unref();
  }

  private warmCatalog(c: DatabaseContext): void {
    const started = Date.now();
    void c.resolver.warm().then(
      async (names) => {
        // The connection in use rehearses a fix too (new connections do before their first use):
        // the first fix on it then finds the server's caches for the guarded statement warm.
        const rehearsed = await c.db.rehearse();
        // And the daemon's own code for a heal, on a record made up for that column (nothing moved
        // or audited: see warmHealPath).
        const target = rehearsalTarget(c);
        const warmed = target
          ? await warmHealPath(c.db, target, c.remediator.currentSettings).then(
              (result) => result.verdict ?? null,
              (error: Error) => `failed: ${error.message}`,
            )
          : null;
        this.logger.info(
          { database: c.db.name, names, ms: Date.now() - started, fix_rehearsed_on: rehearsed ? target?.sequence : null, heal_path_warmed: warmed },
          'catalog warmed: the unique indexes are looked up ahead of their first error',
        );
      },
      (error: Error) => this.logger.warn({ database: c.db.name, err: error.message }, 'catalog warm-up failed; errors are looked up as they come'),
    );
  }

  /**
   * Lets checks under way finish within `graceMs` (Remediator.stop); false when some were given up.
   * `beforeGivingUp` runs before each database gives anything up: the daemon's last save of the
   * checkpoints, which only the first call does (the trackers are closed after it).
   */
  async stop(graceMs: number, beforeGivingUp?: () => void): Promise<boolean> {
    clearInterval(this.warmTimer);
    return (await Promise.all(this.contexts.map((c) => c.remediator.stop(graceMs, beforeGivingUp)))).every(Boolean);
  }

  async close(): Promise<void> {
    await Promise.all(this.contexts.map((c) => c.db.close()));
  }
}
