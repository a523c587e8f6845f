import { createHash } from 'node:crypto';
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
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

/** Whether the audit log can be written, and what waits in memory when it cannot. */
export interface AuditWriteState {
  writable: boolean;
  /** Since when writes fail, and why (ENOSPC, EACCES, EIO...). */
  since?: string;
  error?: string;
  /** Records written to nothing yet, kept in memory in order. */
  held: number;
  /** Records given up because more than `maxHeld` waited. */
  lost: number;
}

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
 *
 * When the file cannot be written (a full disk, a read-only remount), records are held in memory, in
 * order, up to `maxHeld`, and written as soon as a write succeeds again (the next record, `retry()`,
 * or a reopen), followed by an `alert` that says how long the audit was away and what it held or
 * lost. Meanwhile every record still reaches the listeners (webhooks, metrics, the daemon's own
 * log), and `onTrouble` listeners hear of the failure at once: the daemon keeps healing and says so.
 * A partly written line (the disk filled mid-line) is cut off again, so the file never holds a torn
 * record that the next one would run into.
 */
export class AuditLog {
  private readonly logger: Logger;
  private fd: number;

  private lastHash = '';
  /** The file's size after this writer's last line; another size means someone else wrote (or rotated). */
  private expectedSize = -1;
  /** Serialised records (without prev/hash: those are computed when they reach the file). */
  private readonly held: string[] = [];
  private state: AuditWriteState = { writable: true, held: 0, lost: 0 };
  private readonly troubleListeners: Array<(state: AuditWriteState) => void> = [];

  constructor(
    private path: string,
    private readonly maxHeld = 10_000,
  ) {
    this.fd = openAppend(path);
    this.logger = pino(
      {
        base: { host: hostname(), pid: process.pid },
        // No level (every record is an audit record), so `time` opens the object: without the
        // leading comma pino's isoTime would write after the level it no longer has.
        formatters: { level: () => ({}) },
        timestamp: () => `"time":"${new Date().toISOString()}"`,
      },
      { write: (line: string) => this.enqueue(line) },
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

  /** Called when writing starts failing, and when it works again. */
  onTrouble(listener: (state: AuditWriteState) => void): void {
    this.troubleListeners.push(listener);
  }

  get writeState(): AuditWriteState {
    return { ...this.state, held: this.held.length };
  }

  /** After logrotate moved the file: continue in a new file at the same path (or at a new path). */
  reopen(path: string = this.path): void {
    const previous = this.fd;
    try {
      this.fd = openAppend(path);
      this.path = path;
    } catch (error) {
      this.failed(error as Error);
      return;
    }
    if (previous >= 0) closeSync(previous);
    this.retry();
  }

  /** Tries again to write what is held. True when nothing is held any more. */
  retry(): boolean {
    if (this.held.length > 0) this.drain();
    return this.held.length === 0;
  }

  private enqueue(line: string): void {
    if (this.held.length >= this.maxHeld) {
      this.state.lost++;
      return;
    }
    this.held.push(line);
    this.drain();
  }

  /** Writes held records in order until one fails. */
  private drain(): void {
    if (this.fd < 0) {
      try {
        this.fd = openAppend(this.path);
      } catch (error) {
        this.failed(error as Error);
        return;
      }
    }
    while (this.held.length > 0) {
      try {
        this.append(this.held[0]!);
      } catch (error) {
        this.failed(error as Error);
        return;
      }
      this.held.shift();
    }
    if (!this.state.writable) this.recovered();
  }

  /** Adds `prev` and `hash` to one serialised record (`{...}\n`) and appends it; throws when it could not. */
  private append(line: string): void {
    const size = fileSize(this.path);
    const lastHash = size > 0 && size !== this.expectedSize ? (lastHashIn(this.path, size) ?? this.lastHash) : this.lastHash;
    const body = `${line.slice(0, line.lastIndexOf('}'))},"prev":"${lastHash}"}`;
    const hash = createHash('sha256').update(body).digest('hex');
    const out = Buffer.from(`${body.slice(0, -1)},"hash":"${hash}"}\n`);
    let written = 0;
    try {
      while (written < out.length) written += writeSync(this.fd, out, written);
    } catch (error) {
      if (written > 0) this.cutTornLine(size + written, size);
      throw error;
    }
    this.lastHash = hash;
    this.expectedSize = size + out.length;
  }

  /** Removes the start of a line the disk had no room to finish, unless someone wrote after it. */
  private cutTornLine(sizeWithTear: number, sizeBefore: number): void {
    try {
      if (fstatSync(this.fd).size === sizeWithTear) ftruncateSync(this.fd, sizeBefore);
    } catch {
      // Nothing more can be done here; `audit verify` will name the torn line.
    }
  }

  private failed(error: Error): void {
    if (!this.state.writable) {
      this.state.error = error.message;
      return;
    }
    this.state = { writable: false, since: new Date().toISOString(), error: error.message, held: this.held.length, lost: this.state.lost };
    for (const listener of this.troubleListeners) listener(this.writeState);
  }

  private recovered(): void {
    const away = this.state;
    this.state = { writable: true, held: 0, lost: 0 };
    for (const listener of this.troubleListeners) listener(this.writeState);
    this.write(
      'alert',
      { reason: 'audit_unwritable', since: away.since, error: away.error, lost: away.lost },
      `the audit log could not be written from ${away.since} until now (${away.error}): the records above were held in memory and written late${away.lost > 0 ? `; ${away.lost} more were lost (over ${this.maxHeld} held)` : ''}. The daemon kept acting meanwhile; its own log (journal) has each decision`,
    );
  }

  close(): void {
    this.retry();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

function openAppend(path: string): number {
  mkdirSync(dirname(path), { recursive: true });
  return openSync(path, 'a');
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
