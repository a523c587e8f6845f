import type { Server } from 'node:http';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { AuditLog } from '../audit/AuditLog.js';
import { configWarnings, loadConfig, sourceGivesSqlstate, type Config, type SourceConfig } from '../config/config.js';
import { DatabaseAuthenticationFailed, EXIT_AUTHENTICATION } from '../db/Database.js';
import { Metrics, startMetricsServer } from '../metrics/Metrics.js';
import { Notifier } from '../notify/Notifier.js';
import { isEnglish } from '../formats/severity.js';
import { databaseProblem, translatedProblem, type HealthProblem } from '../service/health.js';
import { Heartbeat } from '../service/Heartbeat.js';
import { fileSafetyWarnings } from '../service/safeFiles.js';
import { SystemdNotifier } from '../service/SystemdNotifier.js';
import { CheckpointStore } from '../sources/CheckpointStore.js';
import { reportAuditTrouble } from './auditTrouble.js';
import { Databases, type ServerLogSettings } from './Databases.js';
import { SourcePipelines } from './SourcePipelines.js';
import { Watches } from './Watches.js';

/** How long a stop waits for checks under way before it gives up on them (and says so). */
const STOP_GRACE_MS = 10_000;

function notifierFor(config: Config, logger: Logger): Notifier | undefined {
  if (!config.notify) return undefined;
  return new Notifier({ ...config.notify, onWarning: (message) => logger.warn(message) });
}

/**
 * The running daemon. It orchestrates the parts, each of which owns its slice of the config: the
 * sources (SourcePipelines), the databases and their remediation (Databases), the proactive watch
 * (Watches), the heartbeat; plus what a service manager needs: readiness, reload on SIGHUP, a
 * bounded clean stop. A log line's way never passes through here (see SourcePipeline).
 */
export class Daemon {
  private stopping: Promise<void> | undefined;
  /** READY=1 was sent: from then on the watchdog is fed. */
  private ready = false;
  /** The process's exit status once stopped: non-zero when it stopped because it cannot work. */
  exitCode = 0;
  private reloading: Promise<void> = Promise.resolve();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private notifier: Notifier | undefined;
  private metricsServer: Server | undefined;
  private readonly pipelines: SourcePipelines;
  private readonly watches: Watches;
  private readonly heartbeat: Heartbeat;

  private constructor(
    private config: Config,
    private readonly configPath: string,
    private readonly logger: Logger,
    private readonly audit: AuditLog,
    private readonly databases: Databases,
    private readonly systemd: SystemdNotifier,
  ) {
    this.pipelines = new SourcePipelines({
      logger,
      checkpoints: new CheckpointStore(config.state_dir),
      route: (incident) => databases.route(incident),
      catalogFull: () => databases.catalogFull(),
      stopping: () => this.stopping !== undefined,
      onEnd: () => void this.stop('end of standard input'),
    });
    this.watches = new Watches(databases.contexts, config.watch, audit, logger);
    this.heartbeat = new Heartbeat({
      logger,
      audit,
      systemd,
      parts: {
        sourceProblems: (now) => [...this.pipelines.problems(now), ...translatedProblems(this.config.sources, databases.serverLogSettings())],
        databaseProblems: (timeoutMs) => databases.problems(timeoutMs),
      },
      auditPath: () => this.config.audit.path,
      stateDir: () => this.config.state_dir,
      statusLine: () => this.statusLine(),
      counters: () => databases.counters(),
      ready: () => this.ready,
      stopping: () => this.stopping !== undefined,
    });
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
    const databases = await Databases.open(config, configPath, audit, logger);
    const systemd = new SystemdNotifier(process.env, (message) => logger.warn(message));
    const daemon = new Daemon(config, configPath, logger, audit, databases, systemd);
    daemon.notifier = notifierFor(config, logger);
    audit.onRecord((record) => daemon.notifier?.notify(record));
    reportAuditTrouble(audit, logger, () => daemon.config.audit.path);
    if (config.metrics) await daemon.startMetrics(config.metrics.listen);
    await daemon.pipelines.reconcile(config.sources);
    daemon.auditStarted();
    // Health from the start: a daemon that waits for its database says so (health file, /healthz).
    daemon.heartbeat.start();
    // Ready once every database answered too; incidents read meanwhile wait for them. A login the
    // server refuses is no outage to wait out: it ends the daemon with a clear error.
    void databases.waitUntilAvailable().then(
      () => {
        logger.info({ hosts: databases.hosts }, 'database answers; ready');
        daemon.ready = true;
        databases.keepCatalogWarm();
        void systemd.ready(daemon.statusLine());
        daemon.scheduleSweep();
        if (!daemon.stopping) daemon.watches.start();
      },
      (error: unknown) => {
        if (error instanceof DatabaseAuthenticationFailed) daemon.refusedLogin(error);
      },
    );
    return daemon;
  }

  private auditStarted(): void {
    const { config } = this;
    const names = this.databases.names;
    const database = names.join(', ');
    this.audit.write(
      'started',
      {
        database,
        dry_run: config.remediation.dry_run,
        sources: config.sources.map((s) => ({ path: s.path, format: s.format })),
        watch: config.watch.enabled ? { interval_ms: config.watch.interval, full_sweep_ms: config.watch.full_sweep } : false,
      },
      `following ${config.sources.length} source(s)${config.watch.enabled ? `, watching the tables every ${config.watch.interval} ms` : ''} for database${names.length > 1 ? 's' : ''} ${database}${config.remediation.dry_run ? ' (dry run: nothing will be changed)' : ''}`,
    );
    this.logger.info({ sources: config.sources.map((s) => s.path), database }, 'seqwatch started; following the logs');
  }

  private async startMetrics(listen: string): Promise<void> {
    const metrics = new Metrics({
      sources: () => this.pipelines.metrics(),
      incidents: () => this.databases.counters().incidents,
      notifications: () => this.notifier?.counters,
      catalogQueries: () => this.databases.catalogQueries(),
      checks: () => this.databases.counters().checks,
      audit: () => this.audit.writeState,
      health: () => this.heartbeat.last(),
      watch: () => this.watches.stats(),
    });
    this.audit.onRecord((record) => metrics.observe(record));
    this.metricsServer = await startMetricsServer(listen, metrics, () => this.heartbeat.last());
    this.logger.info({ listen }, 'serving /metrics and /healthz');
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
        await this.databases.sweep();
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
    const c = this.databases.counters();
    return `following ${this.pipelines.size} source(s); ${c.incidents} incidents, ${c.remediated} remediated, ${c.failed} failed`;
  }

  /**
   * The login was refused before the daemon ever worked (a wrong password, no pg_hba.conf entry):
   * waiting cannot cure it and a restart neither, so it says so once, clearly, and exits with
   * EXIT_AUTHENTICATION (78), which the unit should not restart on (RestartPreventExitStatus=78).
   */
  private refusedLogin(error: DatabaseAuthenticationFailed): void {
    const problem = databaseProblem(this.databases.names.join(', '), error);
    this.logger.fatal(
      { role: error.role, host: error.host, problem: problem.code },
      `cannot log in to the database at ${error.host} as role ${error.role}: ${error.message}; fix: ${problem.fix}; seqwatch exits (status ${EXIT_AUTHENTICATION})`,
    );
    this.audit.write(
      'alert',
      { reason: problem.code, role: error.role, server: error.host, fix: problem.fix },
      `cannot log in to the database at ${error.host} as role ${error.role}; seqwatch stops; fix: ${problem.fix}`,
    );
    this.exitCode = EXIT_AUTHENTICATION;
    void this.stop(`the database at ${error.host} refused the login of role ${error.role}`);
  }

  /**
   * SIGHUP: reopen the audit log (logrotate moved it) and reload the config. An invalid new config
   * is refused whole: the old one stays in force, and the refusal is audited as an alert.
   */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.doReload());
    return this.reloading;
  }

  /** Each part reconciles its own slice of the new config. */
  private async doReload(): Promise<void> {
    if (this.stopping) return;
    void this.systemd.reloading();
    this.audit.reopen();
    let next: Config;
    let passwords: Array<string | undefined>;
    try {
      next = await loadConfig(this.configPath);
      passwords = await Databases.readPasswords(next);
    } catch (error) {
      const message = (error as Error).message;
      this.logger.error({ config: this.configPath }, `reload refused, the running configuration stays in force:\n${message}`);
      this.audit.write(
        'alert',
        { reason: 'config_reload_failed', error: message },
        `reload of ${this.configPath} refused, the running configuration stays in force: ${message}`,
      );
      void this.systemd.ready(this.statusLine());
      return;
    }
    for (const warning of configWarnings(this.configPath, next)) this.logger.warn(warning);
    const previous = this.config;
    this.config = next;
    if (next.audit.path !== previous.audit.path) this.audit.reopen(next.audit.path);
    this.databases.reconfigure(next, passwords);
    this.notifier = notifierFor(next, this.logger);
    if (JSON.stringify(next.metrics) !== JSON.stringify(previous.metrics)) this.logger.warn('metrics.listen changed: it takes effect at the next restart');
    if (next.remediation.sweep_interval !== previous.remediation.sweep_interval) this.scheduleSweep();
    await this.watches.reconfigure(next.watch, !this.stopping);
    await this.pipelines.reconcile(next.sources);
    this.logger.info({ sources: this.pipelines.paths, dry_run: next.remediation.dry_run }, 'configuration reloaded');
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
      this.heartbeat.stop();
      clearInterval(this.sweepTimer);
      // No new watch round starts; the one under way ends with the remediation's grace period.
      const watchesStopped = this.watches.stop();
      await this.pipelines.stopReading();
      this.pipelines.flush();
      // The last checkpoints are saved once the checks under way finished, or, when some still wait
      // for the database after the grace period, before those are given up: the errors given up
      // then hold each checkpoint back, and are read again at the next start.
      const finished = await this.databases.stop(STOP_GRACE_MS, () => this.pipelines.saveCheckpoints());
      // A round still waiting for a database that is away is not waited for past the grace period.
      await Promise.race([watchesStopped, new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref())]);
      this.pipelines.saveCheckpoints();
      this.audit.write(
        'stopped',
        { reason, unfinished_checks: !finished, counters: this.databases.counters() },
        finished
          ? `stopped (${reason})`
          : `stopped (${reason}); checks still waiting for the database after ${STOP_GRACE_MS} ms were given up (their errors are read again at the next start)`,
      );
      await this.notifier?.flush(5_000);
      this.audit.close();
      this.metricsServer?.close();
      await this.databases.close();
      this.logger.info({ reason }, 'seqwatch stopped');
      this.finish(reason);
    })();
    return this.stopping;
  }
}

/**
 * A server that writes its messages in another language, and the sources whose lines carry no
 * SQLSTATE there: the config's prefix has no %e, or the server's has none (then the config's %e
 * reads nothing). The first such database is named.
 */
function translatedProblems(sources: SourceConfig[], servers: ServerLogSettings[]): HealthProblem[] {
  const translated = servers.find((server) => !isEnglish(server.lcMessages));
  if (!translated) return [];
  return sources.flatMap((source) => {
    if (sourceGivesSqlstate(source) === false) return [translatedProblem(source, translated)];
    if (sourceGivesSqlstate({ ...source, log_line_prefix: translated.logLinePrefix }) === false) return [translatedProblem(source, translated, 'server')];
    return [];
  });
}
