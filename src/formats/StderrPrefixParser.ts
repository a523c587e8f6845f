import type { LogRecord } from './LogRecord.js';
import { compileLogLinePrefix } from './logLinePrefix.js';

/** Lines that add to the record before them instead of starting one. */
const SECONDARY = new Set(['DETAIL', 'HINT', 'QUERY', 'CONTEXT', 'LOCATION', 'STATEMENT']);
const FIELD_OF: Record<string, 'detail' | 'hint' | 'context' | 'statement' | 'location'> = {
  DETAIL: 'detail',
  HINT: 'hint',
  QUERY: 'statement',
  CONTEXT: 'context',
  LOCATION: 'location',
  STATEMENT: 'statement',
};
type TextField = 'message' | 'detail' | 'hint' | 'context' | 'statement' | 'location';

/** A field longer than this is cut: a multi-megabyte STATEMENT must not grow memory without bound. */
const MAX_FIELD_CHARS = 16 * 1024;
/** Backends with a record still open; past this the oldest is emitted as it is. */
const MAX_PENDING = 4096;

export interface StderrParserCounters {
  records: number;
  unrecognisedLines: number;
  orphanLines: number;
}

interface Pending {
  record: LogRecord;
  lastField: TextField;
}

/**
 * Turns the lines of a PostgreSQL stderr log (logging collector's `stderr` files, `pg_ctl -l`, a
 * container's stderr) into records. PostgreSQL writes every line of a message with the prefix
 * (ERROR, then DETAIL, HINT, CONTEXT, STATEMENT), continuation lines of a multi-line value start
 * with a TAB, and lines of different backends interleave, so records are assembled per pid and
 * emitted when that backend starts its next message or when the caller flushes (at end of input).
 */
export class StderrPrefixParser {
  readonly counters: StderrParserCounters = { records: 0, unrecognisedLines: 0, orphanLines: 0 };
  private readonly matcher: RegExp;
  private readonly pending = new Map<string, Pending>();
  private last: Pending | undefined;

  constructor(
    logLinePrefix: string,
    private readonly source: string,
    private readonly onRecord: (record: LogRecord) => void,
  ) {
    this.matcher = compileLogLinePrefix(logLinePrefix);
  }

  /** Feeds one physical line (without its newline), with where it was read, when known. */
  push(line: string, position: { offset?: number; line?: number } = {}): void {
    if (line.startsWith('\t')) {
      if (!this.last) {
        this.counters.orphanLines++;
        return;
      }
      appendField(this.last.record, this.last.lastField, '\n' + line.slice(1));
      return;
    }
    const match = this.matcher.exec(line);
    if (!match?.groups) {
      this.counters.unrecognisedLines++;
      return;
    }
    const g = match.groups;
    const key = g.pid ?? '';
    const severity = g.severity!;
    if (SECONDARY.has(severity)) {
      const open = this.pending.get(key);
      if (!open) {
        this.counters.orphanLines++;
        return;
      }
      const field = FIELD_OF[severity]!;
      setField(open.record, field, g.message!);
      open.lastField = field;
      this.last = open;
      return;
    }
    this.emit(key);
    const record: LogRecord = { source: this.source, severity, message: '' };
    if (position.offset !== undefined) record.offset = position.offset;
    if (position.line !== undefined) record.line = position.line;
    if (g.time) record.logTime = g.time;
    if (g.pid) record.pid = Number(g.pid);
    if (g.user) record.user = g.user;
    if (g.database) record.database = g.database;
    if (g.application) record.application = g.application;
    if (g.sqlstate && g.sqlstate !== '00000') record.sqlstate = g.sqlstate;
    let message = g.message!;
    // log_error_verbosity = verbose puts the SQLSTATE before the message: "ERROR:  23505: duplicate ..."
    const verbose = /^([0-9A-Z]{5}): /.exec(message);
    if (verbose) {
      record.sqlstate ??= verbose[1];
      message = message.slice(verbose[0].length);
    }
    setField(record, 'message', message);
    const open: Pending = { record, lastField: 'message' };
    if (this.pending.size >= MAX_PENDING) this.emit(this.pending.keys().next().value!);
    this.pending.set(key, open);
    this.last = open;
  }

  /** Emits every record still being assembled: call at end of input, or when the source goes idle. */
  flush(): void {
    for (const key of [...this.pending.keys()]) this.emit(key);
    this.last = undefined;
  }

  private emit(key: string): void {
    const open = this.pending.get(key);
    if (!open) return;
    this.pending.delete(key);
    if (this.last === open) this.last = undefined;
    this.counters.records++;
    this.onRecord(open.record);
  }
}

function setField(record: LogRecord, field: TextField, value: string): void {
  record[field] = value.length > MAX_FIELD_CHARS ? value.slice(0, MAX_FIELD_CHARS) : value;
}

function appendField(record: LogRecord, field: TextField, value: string): void {
  const current = record[field] ?? '';
  if (current.length >= MAX_FIELD_CHARS) return;
  setField(record, field, current + value);
}
