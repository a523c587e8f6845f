import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditEvent, AuditRecord } from '../audit/AuditLog.js';

export interface NotifierOptions {
  events: AuditEvent[];
  webhook?: { url: string; timeout_ms: number; retries: number };
  command?: string[];
  onWarning?: (message: string) => void;
  /** Undelivered notifications kept at most; past this the oldest are dropped (and said). */
  maxQueue?: number;
}

/**
 * Tells people and systems what seqwatch did: a JSON POST to a webhook (with a timeout and
 * retries) and/or a command run with the record on its stdin, as fail2ban runs its actions.
 * Deliveries run in the background, one at a time, from a bounded queue: a slow or dead receiver
 * never holds up the healing.
 */
export class Notifier {
  private readonly queue: AuditRecord[] = [];
  private running = false;
  private idle: Promise<void> = Promise.resolve();
  readonly counters = { sent: 0, failed: 0, dropped: 0 };

  constructor(private readonly options: NotifierOptions) {}

  /** Queues the record if its event is one to notify; returns at once. */
  notify(record: AuditRecord): void {
    if (!this.options.events.includes(record.event)) return;
    if (!this.options.webhook && !this.options.command) return;
    if (this.queue.length >= (this.options.maxQueue ?? 1000)) {
      this.queue.shift();
      this.counters.dropped++;
      this.options.onWarning?.('notification queue full: the oldest notification was dropped');
    }
    this.queue.push(record);
    if (!this.running) this.idle = this.drain();
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
        env: {
          ...process.env,
          SEQWATCH_EVENT: record.event,
          SEQWATCH_TABLE: String(record.table ?? ''),
          SEQWATCH_SEQUENCE: String(record.sequence ?? ''),
          SEQWATCH_MESSAGE: record.msg,
        },
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
