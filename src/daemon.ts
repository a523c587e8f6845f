import pg from 'pg';
import type { Logger } from 'pino';
import { AuditLog } from './audit/AuditLog.js';
import type { Config } from './config/config.js';
import { IndexResolver } from './db/resolveIndex.js';
import { detectIncident } from './detect/detectIncident.js';
import { StderrPrefixParser } from './formats/StderrPrefixParser.js';
import { Remediator } from './remediate/Remediator.js';
import { FileFollower } from './sources/FileFollower.js';

/** How long a stop waits for checks under way before it gives up on them (and says so). */
const STOP_GRACE_MS = 10_000;

/** The pool the daemon uses: small, named, and with timeouts, since it shares a production server. */
export function createPool(url: string | undefined): pg.Pool {
  const pool = new pg.Pool({
    ...(url ? { connectionString: url } : {}),
    max: 2,
    application_name: 'seqwatch',
    connectionTimeoutMillis: 5_000,
    statement_timeout: 30_000,
    lock_timeout: 5_000,
    idleTimeoutMillis: 60_000,
  });
  return pool;
}

/** The database a URL (or the libpq environment) connects to, as pg itself works it out. */
export function databaseOf(url: string | undefined): string {
  return new pg.Client(url ? { connectionString: url } : {}).database ?? '';
}

/**
 * The running daemon: sources -> formats -> detect -> remediate (db) -> audit, wired left to right.
 */
export class Daemon {
  private readonly followers: FileFollower[] = [];
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly audit: AuditLog,
    private readonly pool: pg.Pool,
    readonly remediator: Remediator,
  ) {}

  static async start(config: Config, logger: Logger): Promise<Daemon> {
    const audit = new AuditLog(config.audit.path);
    const pool = createPool(config.database.url);
    pool.on('error', (error) => logger.warn({ err: error.message }, 'database connection lost; it is reopened on next use'));
    const database = databaseOf(config.database.url);
    const remediator = new Remediator({
      db: pool,
      resolver: new IndexResolver(pool),
      audit,
      database,
      dryRun: config.remediation.dry_run,
      debounceMs: config.remediation.debounce_ms,
      onWarning: (message) => logger.error(message),
    });
    const daemon = new Daemon(config, logger, audit, pool, remediator);
    await daemon.connectOnce(database);
    for (const source of config.sources) {
      const parser = new StderrPrefixParser(source.log_line_prefix, source.path, (record) => {
        const incident = detectIncident(record);
        if (incident) remediator.handle(incident);
      });
      const follower = new FileFollower(
        source.path,
        {
          onLine: (line, position) => parser.push(line.toString('utf8'), position),
          onIdle: () => parser.flush(),
          onWarning: (message) => logger.warn({ source: source.path }, message),
        },
        { startAt: source.start_at },
      );
      await follower.start();
      daemon.followers.push(follower);
    }
    audit.write(
      'started',
      {
        database,
        dry_run: config.remediation.dry_run,
        sources: config.sources.map((s) => ({ path: s.path, format: s.format })),
      },
      `following ${config.sources.length} source(s) for database ${database}${config.remediation.dry_run ? ' (dry run: nothing will be changed)' : ''}`,
    );
    logger.info({ sources: config.sources.map((s) => s.path), database }, 'seqwatch started');
    return daemon;
  }

  /** A first connection, to tell the operator at once when the database cannot be reached. */
  private async connectOnce(database: string): Promise<void> {
    try {
      const { rows } = await this.pool.query<{ user: string; version: string }>(
        'SELECT current_user AS user, current_setting($1) AS version',
        ['server_version'],
      );
      this.logger.info({ database, user: rows[0]?.user, server_version: rows[0]?.version }, 'database answers');
    } catch (error) {
      this.logger.warn({ database, err: (error as Error).message }, 'database does not answer yet; following the logs anyway, checks retry on each incident');
    }
  }

  /** Stops reading, lets checks under way finish (bounded), audits `stopped`. Safe to call twice. */
  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all(this.followers.map((follower) => follower.stop()));
      const finished = await this.remediator.drain(STOP_GRACE_MS);
      this.audit.write(
        'stopped',
        { reason, unfinished_checks: !finished, counters: this.remediator.counters },
        finished ? `stopped (${reason})` : `stopped (${reason}) with checks still running after ${STOP_GRACE_MS} ms`,
      );
      this.audit.close();
      await this.pool.end().catch(() => {});
      this.logger.info({ reason }, 'seqwatch stopped');
    })();
    return this.stopping;
  }
}
