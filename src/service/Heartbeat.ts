import type { Logger } from 'pino';
import type { AuditLog } from '../audit/AuditLog.js';
import { auditProblem, ProblemReporter, WATCHDOG_STARVING, type Health, type HealthProblem } from './health.js';
import { HEARTBEAT_MS, heartbeatAge, writeHealthFile } from './healthFile.js';
import type { SystemdNotifier } from './SystemdNotifier.js';

/** What the daemon's parts say about their own health. */
export interface HealthParts {
  /** Every follower polls and can read its file, the lines holding sequence errors parse. */
  sourceProblems(now: number): HealthProblem[];
  /** Every database answers within `timeoutMs` on a primary that accepts the login. */
  databaseProblems(timeoutMs: number): Promise<HealthProblem[]>;
}

export interface HeartbeatOptions {
  logger: Logger;
  audit: AuditLog;
  systemd: SystemdNotifier;
  parts: HealthParts;
  /** Read at each beat: a reload may change them. */
  auditPath(): string;
  stateDir(): string;
  statusLine(): string;
  /** Written into the health file beside the health. */
  counters(): object;
  /** READY=1 was sent: from then on the watchdog is fed and the status line sent. */
  ready(): boolean;
  stopping(): boolean;
}

/**
 * The daemon's pulse: every HEARTBEAT_MS (or faster when systemd's watchdog asks), health is
 * assessed, the watchdog fed unless a restart could help, problems said (log, audit `alert`), the
 * health file written and systemd's status line set. /healthz and seqwatch_up read the last beat.
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private lastHealth: Health | undefined;
  private firstHealth: Promise<Health> | undefined;
  private readonly problems: ProblemReporter;
  readonly intervalMs: number;

  constructor(private readonly options: HeartbeatOptions) {
    this.problems = new ProblemReporter(options.logger, options.audit);
    this.intervalMs = Math.min(options.systemd.watchdogIntervalMs ?? HEARTBEAT_MS, HEARTBEAT_MS);
  }

  start(): void {
    this.firstHealth = this.beat();
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * Healthy means able to heal: the sources and databases have no problem, and the audit log can
   * be written. Each failing condition is a problem with its fix.
   */
  async assess(timeoutMs = HEARTBEAT_MS): Promise<Health> {
    const now = Date.now();
    // The databases first: what their answers say (a server's lc_messages) can be a source's
    // problem, and the first heartbeat must not say "healthy" before it is known.
    const databaseProblems = await this.options.parts.databaseProblems(timeoutMs);
    const problems = this.options.parts.sourceProblems(now);
    const sources = problems.length === 0;
    problems.push(...databaseProblems);
    const state = this.options.audit.writeState;
    if (!state.writable) problems.push(auditProblem(this.options.auditPath(), state.error));
    return {
      ok: problems.length === 0,
      database: databaseProblems.length === 0,
      sources,
      audit: state.writable,
      watchdog: !problems.some((p) => WATCHDOG_STARVING.has(p.code)),
      problems,
      time: new Date(now).toISOString(),
    };
  }

  /**
   * What /healthz and seqwatch_up answer: the last heartbeat's health, never a query per request
   * (a scraper or a flood of requests must not become database load). A stale heartbeat is itself
   * a failure: the daemon is stuck.
   */
  async last(): Promise<Health> {
    const last = this.lastHealth ?? (await this.firstHealth) ?? (await this.assess());
    const { ageMs, stale } = heartbeatAge(last.time);
    if (!stale) return last;
    const stuck: HealthProblem = {
      code: 'source_stuck',
      subject: 'heartbeat',
      message: `the last heartbeat is ${Math.round(ageMs / 1000)} s old`,
      fix: 'the daemon is stuck: restart it and report it with its log',
    };
    return { ...last, ok: false, problems: [...last.problems, stuck] };
  }

  private async beat(): Promise<Health> {
    const { logger, systemd } = this.options;
    this.options.audit.retry();
    const health = await this.assess(this.intervalMs);
    if (this.options.stopping()) return health;
    // Fed unless a restart could help (WATCHDOG_STARVING): see docs/health.md.
    if (this.options.ready() && health.watchdog) void systemd.watchdog();
    if (this.lastHealth?.ok !== health.ok) {
      if (health.ok) logger.info(health, 'healthy');
      else logger.warn(health, `unhealthy${health.watchdog ? '' : ': not feeding the watchdog'}: ${health.problems.map((p) => p.message).join('; ')}`);
    }
    this.problems.report(health.problems);
    this.lastHealth = health;
    try {
      writeHealthFile(this.options.stateDir(), health, this.options.counters());
    } catch (error) {
      logger.warn({ err: (error as Error).message, state_dir: this.options.stateDir() }, 'cannot write the health file');
    }
    const first = health.problems[0];
    if (this.options.ready()) void systemd.status(first ? `UNHEALTHY: ${first.message}`.slice(0, 200) : this.options.statusLine());
    return health;
  }
}
