import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';

export const AUDIT_EVENTS = [
  'started',
  'detected',
  'remediated',
  'in_sync',
  'planned',
  'skipped',
  'failed',
  'alert',
  'stopped',
] as const;
export type AuditEvent = (typeof AUDIT_EVENTS)[number];

/** What set a decision off: where the log line is and which constraint it named (or which command). */
export interface Trigger {
  source: string;
  offset?: number;
  line?: number;
  constraint?: string;
  log_time?: string;
}

/** Fields an audit record may carry. Values are decimal strings: bigint sequences exceed JS numbers. */
export interface AuditFields {
  table?: string;
  sequence?: string;
  column?: string;
  before?: string;
  after?: string;
  max_id?: string | null;
  reason?: string;
  error?: string;
  trigger?: Trigger;
  [key: string]: unknown;
}

/**
 * The audit log: one JSON object per line, written synchronously so that a record is on disk
 * before the next decision is taken and nothing is lost when the process is killed. Each line has
 * `time` (ISO 8601), `event`, the acting daemon (`host`, `pid`), the fields, and `msg`, one
 * sentence for a person. Row data (a DETAIL's key values) and passwords never reach it: callers
 * pass names and numbers only.
 */
export class AuditLog {
  private readonly logger: Logger;
  private readonly destination: pino.DestinationStream & { end?: () => void; reopen?: (file?: string) => void };

  constructor(private path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.destination = pino.destination({ dest: path, sync: true, mkdir: true });
    this.logger = pino(
      {
        base: { host: hostname(), pid: process.pid },
        // No level (every record is an audit record), so `time` opens the object: without the
        // leading comma pino's isoTime would write after the level it no longer has.
        formatters: { level: () => ({}) },
        timestamp: () => `"time":"${new Date().toISOString()}"`,
      },
      this.destination,
    );
  }

  write(event: AuditEvent, fields: AuditFields, msg: string): void {
    this.logger.info({ event, ...fields }, msg);
  }

  /** After logrotate moved the file: continue in a new file at the same path (or at a new path). */
  reopen(path: string = this.path): void {
    mkdirSync(dirname(path), { recursive: true });
    this.destination.reopen?.(path);
    this.path = path;
  }

  get file(): string {
    return this.path;
  }

  close(): void {
    this.destination.end?.();
  }
}
