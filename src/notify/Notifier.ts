import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditEvent, AuditRecord } from '../audit/AuditLog.js';

export interface NotifierOptions {
  events: AuditEvent[];
  webhook?: { url: string; timeout_ms: number; retries: number };
  command?: string[];
  onWarning?: (message: string) => void;
  /** Undelivered notifications kept at most; past this the oldest are dropped (and said). */
  maxQueue?: number;
  /** Notifications per reason (or event, when a record has none) within `perReasonWindowMs`; the rest are summed up in one. */
  perReasonLimit?: number;
  perReasonWindowMs?: number;
}

/**
 * The environment a notify command gets: what a program needs to run (PATH, HOME, locale, time
 * zone, the service's directories), never the daemon's own secrets (PGPASSWORD, PGPASSFILE, cloud
 * credentials, NOTIFY_SOCKET, ...), plus the SEQWATCH_* variables describing the record.
 */
export const NOTIFY_ENV_ALLOWLIST = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'LANG',
  'LC_ALL',
  'LC_CTYPE',
  'LC_MESSAGES',
  'TZ',
  'TMPDIR',
  'RUNTIME_DIRECTORY',
  'STATE_DIRECTORY',
  'LOGS_DIRECTORY',
  'CONFIGURATION_DIRECTORY',
];

export function notifyEnvironment(record: AuditRecord, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const allowed: NodeJS.ProcessEnv = {};
  for (const name of NOTIFY_ENV_ALLOWLIST) if (env[name] !== undefined) allowed[name] = env[name];
  return {
    ...allowed,
    SEQWATCH_EVENT: record.event,
    SEQWATCH_REASON: String(record.reason ?? ''),
    SEQWATCH_TABLE: String(record.table ?? ''),
    SEQWATCH_SEQUENCE: String(record.sequence ?? ''),
    SEQWATCH_MESSAGE: record.msg,
  };
}

/**
 * Tells people and systems what seqwatch did: a JSON POST to a webhook (with a timeout and
 * retries, redirects refused) and/or a command run with the record on its stdin, as fail2ban runs
 * its actions, in an allowlisted environment. Deliveries run in the background, one at a time,
 * from a bounded queue: a slow or dead receiver never holds up the healing. Alerts go before
 * everything else in the queue, and each reason has its own budget per window (the rest of a
 * flood is summed up in one notification at the window's end): a flood of one kind cannot page
 * on-call a hundred times a minute, nor push a different alert out of the queue.
 */
export class Notifier {
  private readonly queue: AuditRecord[] = [];
  private running = false;
  private idle: Promise<void> = Promise.resolve();
  readonly counters = { sent: 0, failed: 0, dropped: 0, suppressed: 0 };
  private readonly windows = new Map<string, { start: number; sent: number; suppressed: number; timer?: NodeJS.Timeout }>();

  constructor(private readonly options: NotifierOptions) {}

  /** Queues the record if its event is one to notify; returns at once. */
  notify(record: AuditRecord): void {
    if (!this.options.events.includes(record.event)) return;
    if (!this.options.webhook && !this.options.command) return;
    if (!this.withinBudget(record)) return;
    this.enqueue(record);
  }

  private enqueue(record: AuditRecord): void {
    if (this.queue.length >= (this.options.maxQueue ?? 1000)) {
      // The oldest of the least urgent goes: an alert is dropped only when the queue holds nothing else.
      const victim = this.queue.findIndex((r) => r.event !== 'alert');
      this.queue.splice(victim === -1 ? 0 : victim, 1);
      this.counters.dropped++;
      this.options.onWarning?.('notification queue full: a notification was dropped');
    }
    if (record.event === 'alert') {
      const firstOther = this.queue.findIndex((r) => r.event !== 'alert');
      this.queue.splice(firstOther === -1 ? this.queue.length : firstOther, 0, record);
    } else {
      this.queue.push(record);
    }
    if (!this.running) this.idle = this.drain();
  }

  /** Per reason: the first `perReasonLimit` of a window go out; the rest are counted and summed up at its end. */
  private withinBudget(record: AuditRecord): boolean {
    const reason = String(record.reason ?? record.event);
    const windowMs = this.options.perReasonWindowMs ?? 60_000;
    const now = Date.now();
    let window = this.windows.get(reason);
    if (!window || now - window.start >= windowMs) {
      if (window) this.summarise(reason, window);
      window = { start: now, sent: 0, suppressed: 0 };
      this.windows.set(reason, window);
    }
    if (window.sent < (this.options.perReasonLimit ?? 5)) {
      window.sent++;
      return true;
    }
    window.suppressed++;
    this.counters.suppressed++;
    const current = window;
    current.timer ??= setTimeout(() => this.summarise(reason, current), Math.max(0, windowMs - (now - current.start))).unref();
    return false;
  }

  private summarise(reason: string, window: { start: number; suppressed: number; timer?: NodeJS.Timeout }): void {
    clearTimeout(window.timer);
    window.timer = undefined;
    if (window.suppressed === 0) return;
    const suppressed = window.suppressed;
    window.suppressed = 0;
    this.enqueue({
      time: new Date().toISOString(),
      host: hostname(),
      pid: process.pid,
      event: 'alert',
      reason,
      suppressed,
      msg: `${suppressed} more notification(s) with reason ${reason} since ${new Date(window.start).toISOString()} were not sent one by one (at most ${this.options.perReasonLimit ?? 5} per reason a minute); they are in the audit log`,
    } as AuditRecord);
  }

  /** Resolves once everything queued was delivered or given up (for a clean stop). */
  async flush(timeoutMs: number): Promise<void> {
    await Promise.race([this.idle, sleep(timeoutMs)]);
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (let record = this.queue.shift(); record; record = this.queue.shift()) {
        const results = await Promise.all([
          this.options.webhook ? this.post(record, this.options.webhook) : true,
          this.options.command ? this.run(record, this.options.command) : true,
        ]);
        if (results.every(Boolean)) this.counters.sent++;
        else this.counters.failed++;
      }
    } finally {
      this.running = false;
    }
  }

  private async post(record: AuditRecord, webhook: NonNullable<NotifierOptions['webhook']>): Promise<boolean> {
    let problem = '';
    for (let attempt = 0; attempt <= webhook.retries; attempt++) {
      if (attempt > 0) await sleep(Math.min(250 * 2 ** attempt, 10_000));
      try {
        const response = await fetch(webhook.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'seqwatch' },
          body: JSON.stringify(record),
          // A redirect could carry the record (and the URL's credentials) to another host.
          redirect: 'error',
          signal: AbortSignal.timeout(webhook.timeout_ms),
        });
        await response.arrayBuffer().catch(() => {});
        if (response.ok) return true;
        problem = `HTTP ${response.status}`;
        if (response.status < 500 && response.status !== 429) break;
      } catch (error) {
        problem = (error as Error).message;
      }
    }
    this.options.onWarning?.(`webhook ${redact(webhook.url)}: ${record.event} not delivered (${problem})`);
    return false;
  }

  private run(record: AuditRecord, command: string[]): Promise<boolean> {
    return new Promise((resolve) => {
      const child = spawn(command[0]!, command.slice(1), {
        stdio: ['pipe', 'ignore', 'pipe'],
        timeout: 30_000,
        env: notifyEnvironment(record),
      });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-500)));
      child.on('error', (error) => {
        this.options.onWarning?.(`notify command ${command[0]}: ${error.message}`);
        resolve(false);
      });
      child.on('close', (code) => {
        if (code !== 0) this.options.onWarning?.(`notify command ${command[0]} exited ${code}: ${stderr.trim()}`);
        resolve(code === 0);
      });
      child.stdin!.on('error', () => {});
      child.stdin!.end(JSON.stringify(record) + '\n');
    });
  }
}

/** A webhook URL without credentials, for messages. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return '(webhook)';
  }
}
