import { createHash } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';
import { tailLines } from '../sources/tailLines.js';

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

/** A record as listeners see it. */
export type AuditRecord = AuditFields & { time: string; event: AuditEvent; msg: string };

/**
 * The audit log: one JSON object per line, written synchronously so that a record is on disk
 * before the next decision is taken and nothing is lost when the process is killed. Each line has
 * `time` (ISO 8601), `event`, the acting daemon (`host`, `pid`), the fields, and `msg`, one
 * sentence for a person. Row data (a DETAIL's key values) and passwords never reach it: callers
 * pass names and numbers only.
 *
 * Tamper evidence: every line ends with `"prev"` (the previous line's hash) and `"hash"`, the
 * SHA-256 of the line up to and including `prev`. The chain runs through the file in line order and
 * on into the next file after a rotation; `seqwatch audit verify` walks it. Other writers of the
 * same file (`seqwatch fix` while the daemon runs) continue the chain: before each write the file's
 * size is compared with what this writer last left, and if someone else wrote, their last hash is
 * read from the file's tail.
 */
export class AuditLog {
  private readonly logger: Logger;
  private readonly destination: pino.DestinationStream & { end?: () => void; reopen?: (file?: string) => void };

  private lastHash = '';
  /** The file's size after this writer's last line; another size means someone else wrote (or rotated). */
  private expectedSize = -1;

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
        hooks: { streamWrite: (line: string) => this.chain(line) },
      },
      this.destination,
    );
  }

  private readonly listeners: Array<(record: AuditRecord) => void> = [];

  write(event: AuditEvent, fields: AuditFields, msg: string): void {
    this.logger.info({ event, ...fields }, msg);
    if (this.listeners.length === 0) return;
    const record: AuditRecord = { time: new Date().toISOString(), event, ...fields, msg };
    for (const listener of this.listeners) listener(record);
  }

  /** Called after each record is written (notifications, metrics); must not throw or block. */
  onRecord(listener: (record: AuditRecord) => void): void {
    this.listeners.push(listener);
  }

  /** After logrotate moved the file: continue in a new file at the same path (or at a new path). */
  reopen(path: string = this.path): void {
    mkdirSync(dirname(path), { recursive: true });
    this.destination.reopen?.(path);
    this.path = path;
  }


  /** Adds `prev` and `hash` to one serialised record (`{...}\n`). */
  private chain(line: string): string {
    const size = fileSize(this.path);
    if (size > 0 && size !== this.expectedSize) this.lastHash = lastHashIn(this.path, size) ?? this.lastHash;
    const body = `${line.slice(0, line.lastIndexOf('}'))},"prev":"${this.lastHash}"}`;
    const hash = createHash('sha256').update(body).digest('hex');
    const out = `${body.slice(0, -1)},"hash":"${hash}"}\n`;
    this.lastHash = hash;
    this.expectedSize = size + Buffer.byteLength(out);
    return out;
  }

  close(): void {
    this.destination.end?.();
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The `hash` of the last complete line of a file, read from its tail. */
function lastHashIn(path: string, size: number): string | undefined {
  const lines = tailLines(path, 64 * 1024, size).filter(Boolean);
  return /,"hash":"([0-9a-f]{64})"}$/.exec(lines.at(-1) ?? '')?.[1];
}
