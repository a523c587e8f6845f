import { createHash } from 'node:crypto';
import { closeSync, fstatSync, ftruncateSync, readSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { openAppendSafely } from '../service/safeFiles.js';
import { auditFiles, lastRecordIn, parseChainFields } from './readAuditFiles.js';
import { AuditSealer } from './seal.js';
import type { AuditEvent } from './events.js';

export { AUDIT_EVENTS, type AuditEvent } from './events.js';

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

/** A record as written and as listeners see it: the time, the acting daemon, the event, the fields, a sentence. */
export type AuditRecord = AuditFields & { time: string; host: string; pid: number; event: AuditEvent; msg: string };

/** What a part that takes decisions needs of the audit log (tests hand in a list). */
export interface AuditWriter {
  write(event: AuditEvent, fields: AuditFields, msg: string): void;
}

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
  /** The chain's last record: its sequence number (how many records the chain holds) and hash. */
  seq?: number;
  hash?: string;
}

/** A point of the chain to keep outside the audit file (`seqwatch audit verify --anchor SEQ:HASH`). */
export interface AuditAnchor {
  seq: number;
  hash: string;
  file: string;
}

/** Anchors are handed out at the first record, then every this many records or this often, and at close. */
const ANCHOR_EVERY_RECORDS = 1000;
const ANCHOR_EVERY_MS = 10 * 60_000;

/**
 * The audit log: one JSON object per line, written synchronously so that a record is on disk
 * before the next decision is taken and nothing is lost when the process is killed. Each line has
 * `time` (ISO 8601), `event`, the acting daemon (`host`, `pid`), the fields, and `msg`, one
 * sentence for a person. Row data (a DETAIL's key values) and passwords never reach it: callers
 * pass names and numbers only.
 *
 * Tamper evidence: every line ends with `"seq"` (its number in the chain: 1 for the first record
 * ever, so the count of records), `"prev"` (the previous record's hash) and `"hash"`, the SHA-256
 * of the line up to and including `prev`; with a sealing key (seal.ts), also `"seal"`, an HMAC of
 * the hash under a key that evolves forward and forgets its past. The chain runs through the file in
 * line order and on into the next file: after a rotation, or a restart that finds the file empty,
 * the number and hash carry on from the newest rotated file. Other writers of the same file
 * (`seqwatch fix` while the daemon runs) continue the chain: before each write the file's size is
 * compared with what this writer last left, and if someone else wrote, their last record is read
 * from the file's tail. A file found shorter than this writer left it (emptied, cut) is not
 * papered over: the chain goes on from what this writer knows, so verify shows the hole. Anchors
 * (seq and hash, `onAnchor`) go to the daemon's own log, outside the file.
 *
 * When the file cannot be written (a full disk, a read-only remount), records are held in memory, in
 * order, up to `maxHeld`, and written as soon as a write succeeds again (the next record, `retry()`,
 * or a reopen), followed by an `alert` that says how long the audit was away and what it held or
 * lost. Meanwhile every record still reaches the listeners (webhooks, metrics, the daemon's own
 * log), and `onTrouble` listeners hear of the failure at once: the daemon keeps healing and says so.
 * A partly written line (the disk filled mid-line) is cut off again, so the file never holds a torn
 * record that the next one would run into.
 */
export class AuditLog implements AuditWriter {
  private fd: number;

  private lastHash = '';
  /** The last record's number in the chain (0: none yet). */
  private lastSeq = 0;
  /** The file's size after this writer's last line; another size means someone else wrote (or rotated). */
  private expectedSize = -1;
  private readonly sealer: AuditSealer | undefined;
  private readonly anchorListeners: Array<(anchor: AuditAnchor) => void> = [];
  private lastAnchor = { seq: -1, at: 0 };
  /** Records serialised when written, not yet in the file (seq, prev and hash are added when they reach it). */
  private readonly held: string[] = [];
  private state: AuditWriteState = { writable: true, held: 0, lost: 0 };
  private readonly troubleListeners: Array<(state: AuditWriteState) => void> = [];

  constructor(
    private path: string,
    private readonly maxHeld = 10_000,
  ) {
    this.fd = openAppend(path);
    this.carryOn(path);
    this.sealer = AuditSealer.forAuditLog(path);
  }

  private readonly listeners: Array<(record: AuditRecord) => void> = [];

  /**
   * Builds the record once, in the order of the file (time, host, pid, event, fields, msg), writes
   * it, and hands the same object to the listeners: a webhook says which daemon acted, and metrics
   * measure from the time that is in the file.
   */
  write(event: AuditEvent, fields: AuditFields, msg: string): void {
    const record = { time: new Date().toISOString(), host: HOST, pid: process.pid, event, ...fields, msg } as AuditRecord;
    // Serialised now: a record held while the disk is full says what was decided when it was decided.
    this.enqueue(JSON.stringify(record));
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
    return { ...this.state, held: this.held.length, seq: this.lastSeq, hash: this.lastHash };
  }

  /** Called with a point of the chain (seq, hash) to record outside the file: see ANCHOR_EVERY_*. */
  onAnchor(listener: (anchor: AuditAnchor) => void): void {
    this.anchorListeners.push(listener);
  }

  /** The chain as it stands: the last record's number and hash. */
  get anchor(): AuditAnchor {
    return { seq: this.lastSeq, hash: this.lastHash, file: this.path };
  }

  private anchorIfDue(force = false): void {
    if (this.lastSeq === 0 || this.lastSeq === this.lastAnchor.seq) return;
    const now = Date.now();
    if (!force && this.lastSeq - this.lastAnchor.seq < ANCHOR_EVERY_RECORDS && now - this.lastAnchor.at < ANCHOR_EVERY_MS) return;
    this.lastAnchor = { seq: this.lastSeq, at: now };
    for (const listener of this.anchorListeners) listener(this.anchor);
  }

  /**
   * Where the chain stands when a file is opened: its last record, or, for an empty file (just
   * rotated, or a restart after a rotation), the last record of the newest rotated one.
   */
  private carryOn(path: string): void {
    const size = fstatSync(this.fd).size;
    let last = size > 0 ? lastRecordOfFd(this.fd, size) : undefined;
    if (!last) {
      const rotated = auditFiles(path).filter((file) => file !== path);
      for (const file of rotated.reverse()) {
        last = lastRecordIn(file);
        if (last) break;
      }
    }
    if (last && last.hash.length > 0 && (this.lastSeq === 0 || (last.seq ?? 0) >= this.lastSeq)) {
      this.lastHash = last.hash;
      this.lastSeq = last.seq ?? 0;
    }
    this.expectedSize = size;
  }

  /** After logrotate moved the file: continue in a new file at the same path (or at a new path). */
  reopen(path: string = this.path): void {
    const previous = this.fd;
    try {
      this.fd = openAppend(path);
      this.path = path;
      // Its last record, if it has one, is read at the first write (see append).
      this.expectedSize = -1;
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

  private enqueue(json: string): void {
    if (this.held.length >= this.maxHeld) {
      this.state.lost++;
      return;
    }
    this.held.push(json);
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

  /** Appends one serialised record (`{...}`, JSON.stringify's) with `seq`, `prev`, `hash` (and `seal`); throws when it could not. */
  private append(json: string): void {
    const size = fstatSync(this.fd).size;
    if (size > 0 && size !== this.expectedSize) {
      // Someone else wrote since (`seqwatch fix`): go on from their last record. A file that got
      // shorter than this writer left it was cut or emptied: go on from what this writer knows.
      const theirs = lastRecordOfFd(this.fd, size);
      if (theirs && (theirs.seq ?? 0) >= this.lastSeq) {
        this.lastHash = theirs.hash;
        this.lastSeq = theirs.seq ?? this.lastSeq;
      }
    }
    const seq = this.lastSeq + 1;
    // The hash covers the record up to and including `prev`; `hash` and `seal` follow it (verifyChain).
    const body = `${json.slice(0, -1)},"seq":${seq},"prev":${JSON.stringify(this.lastHash)}}`;
    const hash = createHash('sha256').update(body).digest('hex');
    const seal = this.sealer?.seal(hash);
    const out = Buffer.from(`${body.slice(0, -1)},"hash":"${hash}"${seal ? `,"seal":"${seal}"` : ''}}\n`);
    let written = 0;
    try {
      while (written < out.length) written += writeSync(this.fd, out, written);
    } catch (error) {
      if (written > 0) this.cutTornLine(size + written, size);
      throw error;
    }
    this.lastHash = hash;
    this.lastSeq = seq;
    this.expectedSize = size + out.length;
    this.anchorIfDue();
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
    this.anchorIfDue(true);
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** The acting daemon's host, in every record (as `pid`): HA pairs and sidecars share one audit trail. */
const HOST = hostname();

function openAppend(path: string): number {
  return openAppendSafely(path, 'audit log');
}

/** The last complete record of an open file, read from its tail. */
function lastRecordOfFd(fd: number, size: number): { seq?: number; hash: string } | undefined {
  const length = Math.min(size, 64 * 1024);
  const buffer = Buffer.alloc(length);
  readSync(fd, buffer, 0, length, size - length);
  const lines = buffer.toString('utf8').split('\n').filter(Boolean);
  // A torn last line (a disk that filled mid-line, a crash) is passed over: the record before it counts.
  for (let i = lines.length - 1; i >= 0; i--) {
    const fields = parseChainFields(lines[i]);
    if (fields) return fields;
  }
  return undefined;
}
