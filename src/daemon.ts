import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { AuditLog } from './audit/AuditLog.js';
import { ConfigError, configWarnings, databasesOf, DEFAULT_MAX_JUMP, DEFAULT_NEAR_LIMIT_PERCENT, loadConfig, readPasswordFile, type Config, type SourceConfig } from './config/config.js';
import { Database, DatabaseAuthenticationFailed, EXIT_AUTHENTICATION } from './db/Database.js';
import { IndexResolver } from './db/resolveIndex.js';
import { decidedByFirstLine, detectIncident, incidentNeedles, type Incident } from './detect/detectIncident.js';
import { SameErrorFilter } from './detect/SameErrorFilter.js';
import { createParser } from './formats/createParser.js';
import type { LogRecord } from './formats/LogRecord.js';
import type { RecordParser } from './formats/RecordParser.js';
import { Remediator, type RemediationSettings, type RemediatorCounters } from './remediate/Remediator.js';
import { TablePolicy } from './remediate/TablePolicy.js';
import { listSequenceColumns } from './db/listSequenceColumns.js';
import { Metrics, startMetricsServer } from './metrics/Metrics.js';
import { traceHeal, tracingHeal } from './metrics/healTrace.js';
import { Notifier } from './notify/Notifier.js';
import type { Server } from 'node:http';
import { SystemdNotifier } from './service/SystemdNotifier.js';
import { auditProblem, databaseProblem, ProblemReporter, sourceReadProblem, stuckProblem, unparsedProblem, WATCHDOG_STARVING, type Health, type HealthProblem } from './service/health.js';
import { CheckpointStore } from './sources/CheckpointStore.js';
import { FileFollower, type LinePosition } from './sources/FileFollower.js';
import { StreamFollower } from './sources/StreamFollower.js';
import { JournalFollower } from './sources/JournalFollower.js';
import { globToRegExp, isGlob } from './util/glob.js';
import { fileSafetyWarnings, writeFileAtomically } from './service/safeFiles.js';
import { TableWatch } from './watch/TableWatch.js';

/** How long a stop waits for checks under way before it gives up on them (and says so). */
const STOP_GRACE_MS = 10_000;
/** How often health is assessed (and the health file written) when systemd asks for nothing faster. */
export const HEARTBEAT_MS = 5_000;
/** A follower that has not polled for this long is stuck. */
const STUCK_FOLLOWER_MS = 30_000;

export type { Health } from './service/health.js';
/** A line that held a sequence error's text and was not taken by the format keeps the source unhealthy this long. */
const UNPARSED_MS = 60 * 60_000;
/** English error texts: a line holding one that the format does not take is an error seen and lost. */
const ERROR_TEXTS = incidentNeedles(false);

interface RunningSource {
  key: string;
  config: SourceConfig;
  follower: FileFollower | StreamFollower | JournalFollower;
  parser: RecordParser;
  /** Offsets of this source's incidents still being handled: the checkpoint may not pass them. */
  unfinished: number[];
  /** For a file found by a glob: the glob source's key. */
  parent?: string;
  /** When the file last grew (glob files idle for long are closed). */
  lastGrowth: number;
  lastBytes: number;
  /**
   * Lines went to the parser since it was last flushed: it may hold a record being assembled (its
   * continuation lines may follow) that is no incident yet, so a checkpoint now could pass it.
   */
  parserHolds?: boolean;
  /** When the checkpoint was last written, and the write waiting to follow it. */
  lastCheckpointAt?: number;
  checkpointTimer?: NodeJS.Timeout;
  /** Lines holding a sequence error's text that the format did not take (see UNPARSED_MS). */
  unparsed?: { count: number; at: number; sample: string; line?: number };
}

/** One watched database: its connection, catalog cache and remediation. */
interface DatabaseContext {
  db: Database;
  resolver: IndexResolver;
  remediator: Remediator;
}

/** Checkpoints written after handled incidents at most this often (see requestCheckpoint). */
const CHECKPOINT_EVERY_MS = 100;

/** The catalog's answers are kept 10 minutes (IndexResolver's foundTtlMs): warmed again before that. */
const CATALOG_WARM_EVERY_MS = 9 * 60_000;

/** Distinct names waiting for the catalog past which files are not read on (see backpressure). */
const PENDING_NAMES_HIGH = 2_000;

/** A glob source's file that has not grown for this long, and is not the newest, is closed. */
const GLOB_IDLE_CLOSE_MS = 60_000;
const GLOB_SCAN_MS = 1_000;

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

function notifierFor(config: Config, logger: Logger): Notifier | undefined {
  if (!config.notify) return undefined;
  return new Notifier({ ...config.notify, onWarning: (message) => logger.warn(message) });
}

function logDatabaseEvents(logger: Logger) {
  return (event: 'connected' | 'unavailable', detail: Record<string, unknown>) =>
    event === 'connected' ? logger.info(detail, 'connected to the database') : logger.warn(detail, 'database unavailable; waiting for it');
}

const sourceKey = (s: SourceConfig) => JSON.stringify([s.path, s.format, s.log_line_prefix]);

/**
 * The running daemon: sources -> formats -> detect -> remediate (db) -> audit, wired left to right,
 * plus what a service manager needs: readiness, a watchdog fed only while the pipeline works and
 * the database answers, reload on SIGHUP, a bounded clean stop.
 */
export class Daemon {
  private readonly sources = new Map<string, RunningSource>();
  private stopping: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private lastHealth: Health | undefined;
  private firstHealth: Promise<Health> | undefined;
  private readonly problems: ProblemReporter;
  /** READY=1 was sent: from then on the watchdog is fed. */
  private ready = false;
  /** The process's exit status once stopped: non-zero when it stopped because it cannot work. */
  exitCode = 0;
  private reloading: Promise<void> = Promise.resolve();
  private sweepTimer: NodeJS.Timeout | undefined;
  private warmTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  /** Followers waiting in backpressure() right now. */
  private waitingForCatalog = 0;
  private notifier: Notifier | undefined;
  private metricsServer: Server | undefined;
  private readonly checkpoints: CheckpointStore;
  private readonly globs = new Map<string, { config: SourceConfig; timer: NodeJS.Timeout }>();
  /** One server followed through several destinations: each error counted once (only then: see startSource). */
  private sameErrors: SameErrorFilter | undefined;
  /** The proactive watch, one per database (config `watch`). */
  private watches: TableWatch[] = [];
  /** Sources whose errors name no database while several are watched, already said in the audit. */
  private readonly databaseUnknownSaid = new Set<string>();

  private constructor(
    private config: Config,
    private readonly configPath: string,
    private readonly logger: Logger,
    private readonly audit: AuditLog,
    private readonly contexts: DatabaseContext[],
    private readonly systemd: SystemdNotifier,
  ) {
    this.checkpoints = new CheckpointStore(config.state_dir);
    this.problems = new ProblemReporter(logger, audit);
  }

  static async start(config: Config, configPath: string, logger: Logger): Promise<Daemon> {
    for (const warning of configWarnings(configPath, config)) logger.warn(warning);
    const audit = new AuditLog(config.audit.path);
    for (const warning of fileSafetyWarnings([
      { path: dirname(config.audit.path), what: 'audit log' },
      { path: config.state_dir, what: 'state' },
    ])) {
      logger.warn(warning);
    }
    // The chain's anchors, outside the audit file: `seqwatch audit verify --anchor SEQ:HASH`.
    audit.onAnchor((a) => logger.info({ audit_anchor: `${a.seq}:${a.hash}`, file: a.file }, `audit chain anchor: record #${a.seq} has hash ${a.hash}`));
    const contexts: DatabaseContext[] = [];
    for (const database of databasesOf(config)) {
      const db = new Database({ url: database.url, password: await readPasswordFile(database), onEvent: logDatabaseEvents(logger) });
      const resolver = new IndexResolver(db);
      const remediator = new Remediator({
        db,
        resolver,
        audit,
        ...remediationSettings(config, db.name),
        onWarning: (message) => logger.error(message),
      });
      contexts.push({ db, resolver, remediator });
    }
    const names = contexts.map((c) => c.db.name);
    const duplicate = names.find((name, i) => names.indexOf(name) !== i);
    if (duplicate !== undefined) throw new ConfigError([`${configPath}: database ${duplicate} is named twice in databases`]);
    const systemd = new SystemdNotifier(process.env, (message) => logger.warn(message));
    const daemon = new Daemon(config, configPath, logger, audit, contexts, systemd);
    daemon.notifier = notifierFor(config, logger);
    audit.onRecord((record) => daemon.notifier?.notify(record));
    daemon.reportAuditTrouble();
    if (config.metrics) await daemon.startMetrics(config.metrics.listen);
    for (const source of config.sources) {
      if (isGlob(source.path)) await daemon.watchGlob(source);
      else await daemon.startSource(source);
    }
    const database = names.join(', ');
    audit.write(
      'started',
      {
        database,
        dry_run: config.remediation.dry_run,
        sources: config.sources.map((s) => ({ path: s.path, format: s.format })),
        watch: config.watch.enabled ? { interval_ms: config.watch.interval, full_sweep_ms: config.watch.full_sweep } : false,
      },
      `following ${config.sources.length} source(s)${config.watch.enabled ? `, watching the tables every ${config.watch.interval} ms` : ''} for database${names.length > 1 ? 's' : ''} ${database}${config.remediation.dry_run ? ' (dry run: nothing will be changed)' : ''}`,
    );
    logger.info({ sources: config.sources.map((s) => s.path), database }, 'seqwatch started; following the logs');
    // Health from the start: a daemon that waits for its database says so (health file, /healthz).
    daemon.startHeartbeat();
    // Ready once every database answered too; incidents read meanwhile wait for them. A login the
    // server refuses is no outage to wait out: it ends the daemon with a clear error.
    void Promise.all(contexts.map((c) => c.db.waitUntilAvailable(undefined, { failOnAuthentication: true }))).then(
      () => {
        logger.info({ hosts: contexts.map((c) => c.db.host) }, 'database answers; ready');
        daemon.ready = true;
        daemon.keepCatalogWarm();
        void systemd.ready(daemon.statusLine());
        daemon.scheduleSweep();
        daemon.startWatch();
      },
      (error: unknown) => {
        if (error instanceof DatabaseAuthenticationFailed) daemon.refusedLogin(error);
      },
    );
    return daemon;
  }

  /**
   * A glob source (`/var/log/postgresql/*.json`): every matching file is followed as a source of its
   * own (its own parser and checkpoint). Files that appear later are read from their start, so the
   * logging collector's rotation to a new file loses nothing; files read to the end and unchanged
   * for a while, and not the newest, are closed (their checkpoint kept).
   */
  private async watchGlob(source: SourceConfig): Promise<void> {
    const key = sourceKey(source);
    const dir = dirname(source.path);
    const pattern = globToRegExp(basename(source.path));
    const scan = async (initial: boolean) => {
      let names: string[] = [];
      try {
        names = readdirSync(dir).filter((name) => pattern.test(name));
      } catch {
        // The directory does not exist yet: files will be found once it does.
      }
      const files = names.map((name) => join(dir, name));
      for (const file of files) {
        const child: SourceConfig = { ...source, path: file, start_at: initial ? source.start_at : 'beginning' };
        if (!this.sources.has(sourceKey(child))) await this.startSource(child, key);
      }
      const newest = files.map((f) => ({ f, m: mtimeOf(f) })).sort((a, b) => b.m - a.m)[0]?.f;
      const now = Date.now();
      for (const [childKey, running] of this.sources) {
        if (running.parent !== key) continue;
        if (running.follower.counters.bytes !== running.lastBytes) {
          running.lastBytes = running.follower.counters.bytes;
          running.lastGrowth = now;
        }
        const gone = !files.includes(running.config.path);
        const idle = now - running.lastGrowth > GLOB_IDLE_CLOSE_MS && running.config.path !== newest && running.unfinished.length === 0;
        if (gone || idle) {
          await running.follower.stop();
          this.saveCheckpoint(running);
          this.sources.delete(childKey);
        }
      }
    };
    await scan(true);
    const timer = setInterval(() => void scan(false).catch((error: Error) => this.logger.warn({ source: source.path, err: error.message }, 'glob scan failed')), GLOB_SCAN_MS);
    this.globs.set(key, { config: source, timer });
  }

  private async startSource(source: SourceConfig, parent?: string): Promise<void> {
    const unfinished: number[] = [];
    // Most of a busy log cannot matter: lines without these are passed over (see LineSkipping).
    const needles = incidentNeedles(source.log_line_prefix.includes('%e'));
    // Which of a server's destinations this is (stderr, csvlog, jsonlog): see SameErrorFilter.
    const destination = destinationOf(source);
    const decidedEarly = new WeakMap<LogRecord, Incident>();
    const take = (incident: Incident) => {
      if (this.sameErrors?.isRepeat(incident, destination)) return;
      if (tracingHeal()) traceHeal('incident', { offset: incident.offset, constraint: incident.constraint, logTime: incident.logTime });
      const offset = incident.offset ?? Number.MAX_SAFE_INTEGER;
      unfinished.push(offset);
      void this.route(incident).finally(() => {
        unfinished.splice(unfinished.indexOf(offset), 1);
        this.requestCheckpoint(running);
      });
    };
    // Only sources of several destinations can hold copies of one error; this.config holds every
    // source before the first is started, so the filter exists before the first record.
    if (new Set(this.config.sources.map(destinationOf)).size > 1) this.sameErrors ??= new SameErrorFilter();
    const parser = createParser(
      source.format,
      {
        source: source.path,
        logLinePrefix: source.log_line_prefix,
        ...(source.inner_format ? { innerFormat: source.inner_format } : {}),
        onDetected: (format, inner) =>
          this.logger.info({ source: source.path, format, ...(inner ? { inner_format: inner } : {}) }, `format detected: ${format}${inner ? ` (${inner} inside)` : ''}`),
        onMisread: (format, lines) =>
          this.logger.warn(
            { source: source.path, format, lines },
            `${source.path} looked like ${format}, but ${lines} lines holding a duplicate key error gave no record in that format: detecting the format again from those lines (set format in the config to be sure)`,
          ),
        interesting: (line: string) => needles.some((needle) => line.includes(needle)),
        // What the ERROR line already decides is acted on at once, not when its DETAIL and STATEMENT
        // lines and the next record's prefix have come (decidedByFirstLine).
        onRecordStart: (record) => {
          const incident = decidedByFirstLine(record);
          if (!incident) return;
          decidedEarly.set(record, incident);
          take(incident);
        },
      },
      (record) => {
        const incident = detectIncident(record);
        if (!incident) return;
        // Its first line was acted on already: the rest of the record adds nothing unless it changed what it names.
        const early = decidedEarly.get(record);
        if (early?.kind === incident.kind && early.constraint === incident.constraint) return;
        take(incident);
      },
    );
    const handlers = {
      onLine: (line: Buffer, position: LinePosition) => {
        running.parserHolds = true;
        if (tracingHeal()) traceHeal('read', { offset: position.offset });
        const text = line.toString('utf8');
        const unrecognised = parser.counters.unrecognisedLines;
        parser.push(text, position);
        // Seen and not taken: an error lost to a prefix or format that does not match. Said, not counted only.
        const needle = parser.counters.unrecognisedLines !== unrecognised ? ERROR_TEXTS.find((n) => text.includes(n)) : undefined;
        if (needle !== undefined) {
          // The sample ends with the error's words: the part before them is what did not match the
          // prefix, and what follows may hold row data, which is not for the audit log.
          const sample = text.slice(0, text.indexOf(needle) + needle.length);
          running.unparsed = { count: (running.unparsed?.count ?? 0) + 1, at: Date.now(), sample, ...(position.line !== undefined ? { line: position.line } : {}) };
        }
      },
      onIdle: () => {
        parser.flush();
        running.parserHolds = false;
        this.requestCheckpoint(running);
      },
      onWarning: (message: string) => this.logger.warn({ source: source.path }, message),
      backpressure: () => this.backpressure(),
      // The end of standard input is the end of the pipeline: stop cleanly, as after SIGTERM.
      onEnd: () => void this.stop('end of standard input'),
    };
    const cursor = source.journal_unit ? this.checkpoints.loadCursor(source.path) : undefined;
    const follower = source.journal_unit
      ? new JournalFollower(source.path, handlers, {
          unit: source.journal_unit,
          ...(cursor ? { cursor } : {}),
          ...(process.env.SEQWATCH_JOURNALCTL ? { command: process.env.SEQWATCH_JOURNALCTL } : {}),
        })
      : source.path === '-'
        ? new StreamFollower('-', process.stdin, handlers)
        : new FileFollower(source.path, handlers, {
            startAt: source.start_at,
            ...(parser.canPassOver && parser.passedOverLines
              ? {
                  skipping: {
                    needles: needles.map((needle) => Buffer.from(needle)),
                    canSkip: () => parser.canPassOver!(),
                    onSkipped: (lines: number) => parser.passedOverLines!(lines),
                  },
                }
              : {}),
          });
    const running: RunningSource = { key: sourceKey(source), config: source, follower, parser, unfinished, lastGrowth: Date.now(), lastBytes: 0 };
    if (parent) running.parent = parent;
    const resume = follower instanceof FileFollower ? this.checkpoints.load(source.path) : undefined;
    if (resume) this.logger.info({ source: source.path, offset: resume.offset }, 'resuming from the checkpoint');
    await follower.start(resume);
    this.sources.set(running.key, running);
  }

  /**
   * Past PENDING_NAMES_HIGH distinct names waiting for the catalog (a flood of forged or garbled
   * names), files are not read on until the lookups catch up: the lines wait on disk instead of in
   * memory, and none is dropped.
   */
  private backpressure(): Promise<void> | undefined {
    const full = () => this.contexts.some((c) => c.remediator.pendingNames >= PENDING_NAMES_HIGH);
    if (!full()) return undefined;
    return (async () => {
      this.waitingForCatalog++;
      try {
        while (full() && !this.stopping) await new Promise((resolve) => setTimeout(resolve, 20));
      } finally {
        this.waitingForCatalog--;
      }
    })();
  }

  /**
   * To the database the record names (%d, dbname); a record that names none (an application log)
   * is checked in every watched database: only verified drift is acted on, so that is safe.
   */
  private route(incident: Incident): Promise<void> {
    if (incident.database !== undefined) {
      const context = this.contexts.find((c) => c.db.name === incident.database) ?? this.contexts[0]!;
      return context.remediator.handle(incident);
    }
    if (this.contexts.length > 1 && !this.databaseUnknownSaid.has(incident.source)) {
      // The checks' records name the database each ran in, not the error's: say so, once per source.
      this.databaseUnknownSaid.add(incident.source);
      const names = this.contexts.map((c) => c.db.name);
      this.audit.write(
        'alert',
        { database: null, databases: names, reason: 'database_unknown', trigger: { source: incident.source, constraint: incident.constraint } },
        `${incident.source} names no database (a server log whose log_line_prefix has no %d, or an application log): the database of its errors cannot be known: checked in each of ${names.join(', ')}, healed where drift is verified; for a server log, add %d to log_line_prefix (server and config) to route each error to its database`,
      );
    }
    return Promise.all(this.contexts.map((c) => c.remediator.handle(incident))).then(() => {});
  }

  /** Counters of all databases together. */
  private counters(): RemediatorCounters {
    const total: RemediatorCounters = { incidents: 0, otherDatabase: 0, checks: 0, remediated: 0, failed: 0, sweeps: 0 };
    for (const c of this.contexts) for (const key of Object.keys(total) as Array<keyof RemediatorCounters>) total[key] += c.remediator.counters[key];
    return total;
  }

  /**
   * A checkpoint after each handled incident and each time the sources are read to their end, but at
   * most every CHECKPOINT_EVERY_MS: a storm of 50,000 records must not become 50,000 file writes, nor
   * a log written at 20 MB/s a checkpoint per read. Crashing in between only means re-reading
   * those few records (each then found in sync).
   */
  private requestCheckpoint(source: RunningSource): void {
    const wait = (source.lastCheckpointAt ?? 0) + CHECKPOINT_EVERY_MS - Date.now();
    if (wait <= 0) return this.saveCheckpoint(source);
    source.checkpointTimer ??= setTimeout(() => {
      source.checkpointTimer = undefined;
      if (this.sources.get(source.key) === source) this.saveCheckpoint(source);
    }, wait);
  }

  /**
   * Records where a source may resume: the first line not yet read, or the first incident still
   * being handled, whichever is earlier. Written after the records before it were handled, so a
   * restart (kill -9 included) neither loses nor repeats one.
   */
  private saveCheckpoint(source: RunningSource): void {
    if (source.follower instanceof JournalFollower) {
      // A cursor names an entry, not a range: move it only when nothing before it is still open.
      if (source.follower.cursor && source.unfinished.length === 0) this.checkpoints.saveCursor(source.config.path, source.follower.cursor);
      return;
    }
    // The next idle moment (parser flushed) writes it instead.
    if (source.parserHolds) return;
    const checkpoint = source.follower.checkpoint();
    if (!checkpoint) return;
    source.lastCheckpointAt = Date.now();
    for (const offset of source.unfinished) if (offset < checkpoint.offset) checkpoint.offset = offset;
    try {
      this.checkpoints.save(source.config.path, checkpoint);
    } catch (error) {
      this.logger.warn({ source: source.config.path, err: (error as Error).message }, 'cannot write the checkpoint: a restart would re-read from the last one');
    }
  }

  private async startMetrics(listen: string): Promise<void> {
    const metrics = new Metrics({
      sources: () =>
        [...this.sources.values()].map((s) => ({
          source: s.config.path,
          records: s.parser.counters.records,
          bytes: s.follower.counters.bytes,
          lagBytes: s.follower.lagBytes(),
          oddities: {
            oversized: s.follower.counters.oversizedLines,
            unrecognised: s.parser.counters.unrecognisedLines,
            orphan: s.parser.counters.orphanLines,
            misread: s.parser.counters.misreadLines,
          },
          skipped: s.parser.counters.skippedLines,
        })),
      incidents: () => this.counters().incidents,
      notifications: () => this.notifier?.counters,
      catalogQueries: () => this.contexts.reduce((n, c) => n + c.resolver.queries, 0),
      checks: () => this.counters().checks,
      audit: () => this.audit.writeState,
      health: () => this.lastHeartbeat(),
      watch: () => this.watches.map((w, i) => ({ database: this.contexts[i]!.db.name, stats: w.stats })),
    });
    this.audit.onRecord((record) => metrics.observe(record));
    this.metricsServer = await startMetricsServer(listen, metrics, () => this.lastHeartbeat());
    this.logger.info({ listen }, 'serving /metrics and /healthz');
  }

  /** The proactive watch (src/watch): tables that received rows are checked, every sequence now and then. */
  private startWatch(): void {
    if (!this.config.watch.enabled || this.stopping) return;
    this.watches = this.contexts.map(
      (c) =>
        new TableWatch({
          db: c.db,
          remediation: c.remediator,
          intervalMs: this.config.watch.interval,
          fullSweepMs: this.config.watch.full_sweep,
          onWarning: (message, detail) => this.logger.warn({ database: c.db.name, ...detail }, message),
          onStandby: (standby) => {
            if (!standby) return void this.logger.info({ database: c.db.name, host: c.db.host }, 'the server is a primary again: the watch checks its tables');
            this.logger.warn({ database: c.db.name, host: c.db.host }, 'the server is a standby (pg_is_in_recovery): the watch checks nothing there');
            this.audit.write(
              'alert',
              { database: c.db.name, reason: 'standby', trigger: { source: 'watch' } },
              `the server ${c.db.host ?? ''} of database ${c.db.name} is a standby: nothing is checked or healed there; point database.url at the primary (several hosts with target_session_attrs=read-write)`,
            );
          },
        }),
    );
    for (const watch of this.watches) watch.start();
  }

  /**
   * Every unique index looked up ahead of its first error (IndexResolver.warm), and again before
   * those answers expire: the first error on a table is then checked at once instead of waiting
   * for the catalog.
   */
  private keepCatalogWarm(): void {
    for (const c of this.contexts) this.warmCatalog(c);
    this.warmTimer = setInterval(() => this.contexts.forEach((c) => this.warmCatalog(c)), CATALOG_WARM_EVERY_MS).unref();
  }

  private warmCatalog(c: DatabaseContext): void {
    const started = Date.now();
    void c.resolver.warm().then(
      (names) => this.logger.info({ database: c.db.name, names, ms: Date.now() - started }, 'catalog warmed: the unique indexes are looked up ahead of their first error'),
      (error: Error) => this.logger.warn({ database: c.db.name, err: error.message }, 'catalog warm-up failed; errors are looked up as they come'),
    );
  }

  /** The periodic sweep (remediation.sweep_interval): once when ready, then every interval. */
  private scheduleSweep(): void {
    clearInterval(this.sweepTimer);
    const interval = this.config.remediation.sweep_interval;
    if (!interval || this.stopping) return;
    const sweep = async () => {
      if (this.sweeping) return;
      this.sweeping = true;
      try {
        for (const c of this.contexts) await c.remediator.sweep(await listSequenceColumns(c.db));
      } catch (error) {
        this.logger.warn({ err: (error as Error).message }, 'sweep failed; the next one retries');
      } finally {
        this.sweeping = false;
      }
    };
    void sweep();
    this.sweepTimer = setInterval(() => void sweep(), interval);
  }

  private statusLine(): string {
    const c = this.counters();
    return `following ${this.sources.size} source(s); ${c.incidents} incidents, ${c.remediated} remediated, ${c.failed} failed`;
  }

  /**
   * A full disk (or a read-only remount) under the audit log: the daemon keeps healing, since a fix
   * is as safe unaudited and an outage left alone is harm. It says so loudly instead: an error in its
   * own log (the journal) at once and every minute, each decision echoed there in full, /healthz and
   * the health file report `audit: false`, and the held records reach the file when it has room.
   */
  private reportAuditTrouble(): void {
    let nagged = 0;
    const nag = () => {
      const state = this.audit.writeState;
      this.logger.error(
        { audit: this.config.audit.path, ...state },
        `cannot write the audit log (${state.error}): seqwatch keeps healing, holds ${state.held} record(s) in memory and logs each decision here until it can write again; free space under ${this.config.audit.path}`,
      );
      nagged = Date.now();
    };
    this.audit.onTrouble((state) => {
      if (state.writable) this.logger.warn({ audit: this.config.audit.path }, 'the audit log is writable again; the held records were written to it');
      else nag();
    });
    this.audit.onRecord((record) => {
      if (this.audit.writeState.writable) return;
      this.logger.warn({ unaudited: record }, `decision not yet in the audit log: ${record.event}: ${record.msg}`);
      if (Date.now() - nagged > 60_000) nag();
    });
  }

  /**
   * The login was refused before the daemon ever worked (a wrong password, no pg_hba.conf entry):
   * waiting cannot cure it and a restart neither, so it says so once, clearly, and exits with
   * EXIT_AUTHENTICATION (78), which the unit should not restart on (RestartPreventExitStatus=78).
   */
  private refusedLogin(error: DatabaseAuthenticationFailed): void {
    const problem = databaseProblem(this.contexts.map((c) => c.db.name).join(', '), error);
    this.logger.fatal(
      { role: error.role, host: error.host, problem: problem.code },
      `cannot log in to the database at ${error.host} as role ${error.role}: ${error.message}; fix: ${problem.fix}; seqwatch exits (status ${EXIT_AUTHENTICATION})`,
    );
    this.audit.write('alert', { reason: problem.code, role: error.role, server: error.host, fix: problem.fix }, `cannot log in to the database at ${error.host} as role ${error.role}; seqwatch stops; fix: ${problem.fix}`);
    this.exitCode = EXIT_AUTHENTICATION;
    void this.stop(`the database at ${error.host} refused the login of role ${error.role}`);
  }

  private startHeartbeat(): void {
    const interval = Math.min(this.systemd.watchdogIntervalMs ?? HEARTBEAT_MS, HEARTBEAT_MS);
    const beat = async () => {
      this.audit.retry();
      const health = await this.health(interval);
      if (this.stopping) return health;
      // Fed unless a restart could help (WATCHDOG_STARVING): see docs/health.md.
      if (this.ready && health.watchdog) void this.systemd.watchdog();
      if (this.lastHealth?.ok !== health.ok) {
        if (health.ok) this.logger.info(health, 'healthy');
        else this.logger.warn(health, `unhealthy${health.watchdog ? '' : ': not feeding the watchdog'}: ${health.problems.map((p) => p.message).join('; ')}`);
      }
      this.problems.report(health.problems);
      this.lastHealth = health;
      this.writeHealthFile(health);
      const first = health.problems[0];
      if (this.ready) void this.systemd.status(first ? `UNHEALTHY: ${first.message}`.slice(0, 200) : this.statusLine());
      return health;
    };
    this.firstHealth = beat();
    this.heartbeat = setInterval(() => void beat(), interval);
  }

  /**
   * What /healthz and seqwatch_up answer: the last heartbeat's health, never a query per request
   * (a scraper or a flood of requests must not become database load). A heartbeat older than three
   * intervals is itself a failure: the daemon is stuck.
   */
  private async lastHeartbeat(): Promise<Health> {
    const last = this.lastHealth ?? (await this.firstHealth) ?? (await this.health());
    const age = Date.now() - Date.parse(last.time);
    if (age <= 3 * HEARTBEAT_MS) return last;
    return { ...last, ok: false, problems: [...last.problems, { code: 'source_stuck', subject: 'heartbeat', message: `the last heartbeat is ${Math.round(age / 1000)} s old`, fix: 'the daemon is stuck: restart it and report it with its log' }] };
  }

  /**
   * Healthy means able to heal: every follower polls and can read its file, the lines holding
   * sequence errors parse, every database answers within `timeoutMs` on a primary that accepts the
   * login, and the audit log can be written. Each failing condition is a problem with its fix.
   */
  async health(timeoutMs = HEARTBEAT_MS): Promise<Health> {
    const now = Date.now();
    const problems: HealthProblem[] = [];
    for (const s of this.sources.values()) {
      // A follower held back by the backpressure is waiting on purpose, not stuck.
      if (this.waitingForCatalog === 0 && now - s.follower.lastPollAt >= STUCK_FOLLOWER_MS) problems.push(stuckProblem(s.config.path, now - s.follower.lastPollAt));
      if (s.follower instanceof FileFollower) {
        const unreadable = sourceReadProblem(s.config.path, false);
        if (unreadable) problems.push(unreadable);
      }
      if (s.unparsed && now - s.unparsed.at < UNPARSED_MS) problems.push(unparsedProblem(s.config, s.unparsed.count, s.unparsed.sample, s.unparsed.line));
    }
    for (const glob of this.globs.values()) {
      const unreadable = sourceReadProblem(glob.config.path, true);
      if (unreadable) problems.push(unreadable);
    }
    const sources = problems.length === 0;
    const answers = await Promise.all(
      this.contexts.map((c) =>
        Promise.race([
          c.db.query('SELECT 1').then(
            () => undefined,
            (error: unknown) => error,
          ),
          new Promise<Error>((resolve) => setTimeout(() => resolve(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref()),
        ]),
      ),
    );
    answers.forEach((error, i) => {
      if (error !== undefined) problems.push(databaseProblem(this.contexts[i]!.db.name, error));
    });
    const database = answers.every((error) => error === undefined);
    const state = this.audit.writeState;
    if (!state.writable) problems.push(auditProblem(this.config.audit.path, state.error));
    return {
      ok: problems.length === 0,
      database,
      sources,
      audit: state.writable,
      watchdog: !problems.some((p) => WATCHDOG_STARVING.has(p.code)),
      problems,
      time: new Date(now).toISOString(),
    };
  }

  /** `seqwatch health` reads this (a container's HEALTHCHECK has no systemd to ask). */
  private writeHealthFile(health: Health): void {
    try {
      const file = join(this.config.state_dir, 'health.json');
      writeFileAtomically(file, JSON.stringify({ ...health, pid: process.pid, counters: this.counters() }) + '\n', 'health file');
    } catch (error) {
      this.logger.warn({ err: (error as Error).message, state_dir: this.config.state_dir }, 'cannot write the health file');
    }
  }

  /**
   * SIGHUP: reopen the audit log (logrotate moved it) and reload the config. An invalid new config
   * is refused whole: the old one stays in force, and the refusal is audited as an alert.
   */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.doReload());
    return this.reloading;
  }

  private async doReload(): Promise<void> {
    if (this.stopping) return;
    void this.systemd.reloading();
    this.audit.reopen();
    let next: Config;
    let passwords: Array<string | undefined>;
    try {
      next = await loadConfig(this.configPath);
      // An unreadable password file refuses the reload too: better the old password than none.
      passwords = await Promise.all(databasesOf(next).map((d) => readPasswordFile(d)));
    } catch (error) {
      const message = (error as Error).message;
      this.logger.error({ config: this.configPath }, `reload refused, the running configuration stays in force:\n${message}`);
      this.audit.write('alert', { reason: 'config_reload_failed', error: message }, `reload of ${this.configPath} refused, the running configuration stays in force: ${message}`);
      void this.systemd.ready(this.statusLine());
      return;
    }
    for (const warning of configWarnings(this.configPath, next)) this.logger.warn(warning);
    const previous = this.config;
    this.config = next;
    if (next.audit.path !== previous.audit.path) this.audit.reopen(next.audit.path);
    const [wantedDatabases, runningDatabases] = [databasesOf(next), databasesOf(previous)];
    if (wantedDatabases.length !== this.contexts.length) {
      this.logger.warn('the number of databases changed: that takes effect at the next restart; the databases watched stay as they were');
    } else {
      for (const [i, c] of this.contexts.entries()) {
        const wanted = wantedDatabases[i]!;
        if (JSON.stringify(wanted) !== JSON.stringify(runningDatabases[i]) || passwords[i] !== undefined) {
          c.db.reconfigure({ url: wanted.url, password: passwords[i], onEvent: logDatabaseEvents(this.logger) });
          c.resolver.clear();
          if (this.warmTimer) this.warmCatalog(c);
        }
      }
    }
    for (const c of this.contexts) c.remediator.updateSettings(remediationSettings(next, c.db.name));
    this.notifier = notifierFor(next, this.logger);
    if (JSON.stringify(next.metrics) !== JSON.stringify(previous.metrics)) {
      this.logger.warn('metrics.listen changed: it takes effect at the next restart');
    }
    if (next.remediation.sweep_interval !== previous.remediation.sweep_interval) this.scheduleSweep();
    if (next.watch.enabled !== previous.watch.enabled) {
      await Promise.all(this.watches.map((w) => w.stop()));
      this.watches = [];
      this.startWatch();
    } else {
      for (const w of this.watches) w.updateSettings({ intervalMs: next.watch.interval, fullSweepMs: next.watch.full_sweep });
    }
    const wanted = new Map(next.sources.map((s) => [sourceKey(s), s]));
    for (const [key, glob] of this.globs) {
      if (!wanted.has(key)) {
        clearInterval(glob.timer);
        this.globs.delete(key);
      }
    }
    for (const [key, running] of this.sources) {
      if (!wanted.has(running.parent ?? key)) {
        await running.follower.stop();
        this.saveCheckpoint(running);
        this.sources.delete(key);
      }
    }
    for (const [key, source] of wanted) {
      if (isGlob(source.path)) {
        if (!this.globs.has(key)) await this.watchGlob(source);
      } else if (!this.sources.has(key)) {
        await this.startSource(source);
      }
    }
    this.logger.info({ sources: [...this.sources.values()].map((s) => s.config.path), dry_run: next.remediation.dry_run }, 'configuration reloaded');
    void this.systemd.ready(this.statusLine());
  }

  // Declared before `finished`, whose initialiser sets it: fields initialise in order.
  private finish: (reason: string) => void = () => {};
  /** Settles once the daemon has stopped, whatever stopped it (a signal, the end of standard input). */
  readonly finished: Promise<string> = new Promise((resolve) => (this.finish = resolve));

  /** Stops reading, lets checks under way finish (bounded), audits `stopped`. Safe to call twice. */
  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      await this.systemd.stopping();
      clearInterval(this.heartbeat);
      clearInterval(this.sweepTimer);
      clearInterval(this.warmTimer);
      // No new watch round starts; the one under way ends with the remediation's grace period.
      const watchesStopped = Promise.all(this.watches.map((w) => w.stop()));
      for (const glob of this.globs.values()) clearInterval(glob.timer);
      await Promise.all([...this.sources.values()].map((s) => s.follower.stop()));
      // Records still being assembled are handled now, within the grace period, not re-read later.
      for (const source of this.sources.values()) {
        source.parser.flush();
        source.parserHolds = false;
      }
      const finished = (await Promise.all(this.contexts.map((c) => c.remediator.stop(STOP_GRACE_MS)))).every(Boolean);
      // A round still waiting for a database that is away is not waited for past the grace period.
      await Promise.race([watchesStopped, new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref())]);
      for (const source of this.sources.values()) {
        clearTimeout(source.checkpointTimer);
        this.saveCheckpoint(source);
      }
      this.audit.write(
        'stopped',
        { reason, unfinished_checks: !finished, counters: this.counters() },
        finished ? `stopped (${reason})` : `stopped (${reason}); checks still waiting for the database after ${STOP_GRACE_MS} ms were given up`,
      );
      await this.notifier?.flush(5_000);
      this.audit.close();
      this.metricsServer?.close();
      await Promise.all(this.contexts.map((c) => c.db.close()));
      this.logger.info({ reason }, 'seqwatch stopped');
      this.finish(reason);
    })();
    return this.stopping;
  }
}

/** Which of a server's log destinations a source reads (stderr, csvlog, jsonlog): its format. */
function destinationOf(source: SourceConfig): string {
  return source.format === 'docker-json' ? (source.inner_format ?? 'postgres-stderr') : source.format;
}

function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}
