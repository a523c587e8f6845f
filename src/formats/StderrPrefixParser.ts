import type { LogRecord } from './LogRecord.js';
import { compileLogLinePrefix, markerOf, pidMarkOf } from './logLinePrefix.js';
import { bounded, MAX_FIELD_CHARS, newCounters, type LinePosition, type ParserCounters, type RecordParser } from './RecordParser.js';

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

/** How much of a line the prefix is looked for in. */
const HEAD_CHARS = 4096;
/** With a pre-check, one line in this many is parsed in full all the same. */
const SAMPLE_EVERY = 64;
/** Backends with a record still open; past this the oldest is emitted as it is. */
const MAX_PENDING = 4096;

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
export class StderrPrefixParser implements RecordParser {
  readonly counters: ParserCounters = newCounters();
  private readonly matcher: RegExp;
  private readonly pending = new Map<string, Pending>();
  private last: Pending | undefined;
  /** The line before was passed over by the pre-check: its continuation lines are too. */
  private lastSkipped = false;
  /** Lines passed over since the last one parsed in full (every SAMPLE_EVERY-th is parsed anyway). */
  private sinceParsed = 0;
  /** How the prefix prints a pid, when its lines can be found by it (see openRecordMarks). */
  private readonly pidMark: { before: string; after: string } | undefined;
  private readonly marks = new Map<string, Buffer>();
  /**
   * A record its first line settled (onRecordStart said so): not kept open for its backend's later
   * lines, only for TAB lines continuing its message; emitted at the next line, or when lines are
   * passed over.
   */
  private settled: Pending | undefined;

  /**
   * `interesting`, when given, is a cheap pre-check on a whole line: a line it rejects, while no
   * record is being assembled, cannot start a record that matters and is passed over without the
   * prefix regex (the bulk of a busy log: ordinary statements). Every SAMPLE_EVERY-th line is
   * parsed in full anyway, so a log_line_prefix that does not match still shows as unrecognised lines.
   */
  constructor(
    logLinePrefix: string,
    private readonly source: string,
    private readonly onRecord: (record: LogRecord) => void,
    private readonly interesting?: (line: string) => boolean,
    /**
     * Told of each record as its first line is read (its later lines may follow): see
     * decidedByFirstLine. True: nothing its backend's later lines (DETAIL, CONTEXT, STATEMENT) may
     * say changes what it is, so they need not be read: with a pre-check, the record is emitted once
     * its message is complete, and its later lines are passed over like those of any record.
     */
    private readonly onRecordStart?: (record: LogRecord) => unknown,
  ) {
    this.matcher = compileLogLinePrefix(logLinePrefix);
    this.pidMark = pidMarkOf(logLinePrefix);
  }

  /** Feeds one physical line (without its newline), with where it was read, when known. */
  push(line: string, position: LinePosition = {}): void {
    if (line.startsWith('\t')) {
      if (!this.lastSkipped) this.continueRecord(line.slice(1));
      return;
    }
    if (this.settled) this.emitSettled();
    if (this.interesting && this.pending.size === 0 && ++this.sinceParsed < SAMPLE_EVERY && !this.interesting(line)) {
      this.passOver();
      return;
    }
    this.sinceParsed = 0;
    this.lastSkipped = false;
    // The prefix is matched on the line's head only: its lazy parts (%a, %u) must not scan a huge line.
    const head = line.length > HEAD_CHARS ? line.slice(0, HEAD_CHARS) : line;
    const match = this.matcher.exec(head);
    if (!match?.groups) {
      this.counters.unrecognisedLines++;
      return;
    }
    const g = match.groups;
    // The marker in any language of PostgreSQL's catalogs (FEHLER, ERREUR, ZUSAMMENHANG), as English.
    const marked = markerOf(g);
    if (!marked) {
      this.counters.unrecognisedLines++;
      return;
    }
    const key = g.pid ?? '';
    const severity = marked.severity;
    if (SECONDARY.has(severity)) {
      const open = this.pending.get(key);
      if (!open) {
        // With a pre-check, most records are passed over unseen: a DETAIL or STATEMENT of one is no orphan.
        if (this.interesting) this.passOver();
        else this.counters.orphanLines++;
        return;
      }
      const field = FIELD_OF[severity]!;
      setField(open.record, field, marked.message + line.slice(head.length));
      open.lastField = field;
      this.last = open;
      return;
    }
    this.emit(key);
    if (this.interesting && !this.interesting(line)) {
      // Parsed only to close this backend's record before it: this one is not kept.
      this.passOver();
      return;
    }
    const record = this.newRecord(g, severity, marked.message + line.slice(head.length), position);
    const open: Pending = { record, lastField: 'message' };
    this.last = open;
    // A verbose message's LOCATION line may still change its SQLSTATE and message: kept open.
    if (this.onRecordStart?.(record) === true && this.interesting && !(record.message[5] === ':' && record.message[6] === ' ')) {
      this.settled = open;
      return;
    }
    if (this.pending.size >= MAX_PENDING) this.emit(this.pending.keys().next().value!);
    this.pending.set(key, open);
  }

  /**
   * The record `line` begins read on its own (no record open before it, nothing after it), exactly
   * as push() then flush() would emit it; undefined where they would emit none (a TAB line, a
   * secondary line such as DETAIL, a line the prefix does not match). Touches neither the records
   * being assembled nor the counters: replay reads a candidate's first line so, and most records
   * (an ERROR line, its DETAIL and STATEMENT) are decided by it alone (see replay/recordAt.ts).
   */
  recordOfLine(line: string, position: LinePosition = {}): LogRecord | undefined {
    if (line.startsWith('\t')) return undefined;
    const head = line.length > HEAD_CHARS ? line.slice(0, HEAD_CHARS) : line;
    const g = this.matcher.exec(head)?.groups;
    if (!g) return undefined;
    const marked = markerOf(g);
    if (!marked || SECONDARY.has(marked.severity)) return undefined;
    return withVerboseSqlstate(this.newRecord(g, marked.severity, marked.message + line.slice(head.length), position));
  }

  /**
   * Whether `line` is a secondary line of this format (its prefix, then DETAIL, STATEMENT, ...):
   * one that goes on with the record before it, not one recordOfLine reads a record from. Its words
   * are that record's (a STATEMENT quoting an error's text), not a sign of a prefix that is not the log's.
   */
  isSecondaryLine(line: string): boolean {
    const g = this.matcher.exec(line.length > HEAD_CHARS ? line.slice(0, HEAD_CHARS) : line)?.groups;
    const marked = g && markerOf(g);
    return marked !== undefined && SECONDARY.has(marked.severity);
  }

  /** A record from a first line's prefix fields, severity and message. */
  private newRecord(g: Record<string, string | undefined>, severity: string, message: string, position: LinePosition): LogRecord {
    const record: LogRecord = { source: this.source, severity, message: '' };
    if (position.offset !== undefined) record.offset = position.offset;
    if (position.line !== undefined) record.line = position.line;
    if (g.time) record.logTime = g.time;
    if (g.pid) record.pid = Number(g.pid);
    if (g.user) record.user = g.user;
    if (g.database) record.database = g.database;
    if (g.application) record.application = g.application;
    if (g.backendType) record.backendType = g.backendType;
    if (g.sqlstate && g.sqlstate !== '00000') record.sqlstate = g.sqlstate;
    setField(record, 'message', message);
    return record;
  }

  /**
   * Adds a continuation line to the record being assembled: the one last touched, or, when the
   * caller knows it (syslog carries the pid on every line), the one of backend `pid`.
   */
  continueRecord(text: string, pid?: string): void {
    const open = pid === undefined ? this.last : this.pending.get(pid);
    if (!open) {
      this.counters.orphanLines++;
      return;
    }
    appendField(open.record, open.lastField, '\n' + text);
  }

  /**
   * A line that may only add to backend `pid`'s open record, never start one (syslog's chunks after a
   * message's first). A secondary line with the prefix (DETAIL, STATEMENT, ...) becomes that field;
   * anything else, even text shaped like a new record, is `text` appended as it was cut (no newline).
   */
  addToRecord(line: string, pid: string, text: string): void {
    const open = this.pending.get(pid);
    if (!open) {
      this.counters.orphanLines++;
      return;
    }
    const head = line.length > HEAD_CHARS ? line.slice(0, HEAD_CHARS) : line;
    const g = this.matcher.exec(head)?.groups;
    if (g && (g.pid ?? pid) === pid && SECONDARY.has(g.severity!)) {
      const field = FIELD_OF[g.severity!]!;
      setField(open.record, field, g.message! + line.slice(head.length));
      open.lastField = field;
      this.last = open;
      return;
    }
    appendField(open.record, open.lastField, text);
  }

  /** Nothing is being assembled: lines that hold none of the pre-check's needles may be passed over unseen. */
  canPassOver(): boolean {
    return this.pending.size === 0;
  }

  /**
   * Each open record's pid as the prefix prints it (`[4242]`): a record is only continued by its
   * own backend's lines (and the TAB lines right after them, which its source hands out), so the
   * lines of other backends that hold no needle may be passed over while it waits for its next
   * line. Undefined when the prefix does not print the pid distinctly, or a record has none.
   */
  openRecordMarks(): readonly Buffer[] | undefined {
    const mark = this.pidMark;
    if (!mark || this.pending.has('')) return undefined;
    // Only the characters right around the pid (`[4242]`): every line of that backend holds them,
    // and they are searched far faster than the whole literal (a mark starting with a space makes
    // the search stop at every space). The same Buffer for the same pid: the source remembers
    // where each was found.
    if (this.marks.size > MAX_PENDING) this.marks.clear();
    const marks: Buffer[] = [];
    for (const pid of this.pending.keys()) {
      let bytes = this.marks.get(pid);
      if (!bytes) this.marks.set(pid, (bytes = Buffer.from(mark.before.slice(-1) + pid + mark.after.slice(0, 1))));
      marks.push(bytes);
    }
    return marks;
  }

  /** `lines` lines were passed over unseen (by the source, which searched their bytes): see canPassOver. */
  passedOverLines(lines: number): void {
    this.counters.skippedLines += lines;
    this.lastSkipped = true;
    if (lines > 0 && this.settled) this.emitSettled();
  }

  private passOver(): void {
    this.counters.skippedLines++;
    this.lastSkipped = true;
  }

  /** Emits every record still being assembled: call at end of input, or when the source goes idle. */
  flush(): void {
    if (this.settled) this.emitSettled();
    for (const key of [...this.pending.keys()]) this.emit(key);
    this.last = undefined;
    this.lastSkipped = false;
  }

  private emitSettled(): void {
    const open = this.settled!;
    this.settled = undefined;
    if (this.last === open) this.last = undefined;
    this.counters.records++;
    this.onRecord(withVerboseSqlstate(open.record));
  }

  private emit(key: string): void {
    const open = this.pending.get(key);
    if (!open) return;
    this.pending.delete(key);
    if (this.last === open) this.last = undefined;
    this.counters.records++;
    this.onRecord(withVerboseSqlstate(open.record));
  }
}

/**
 * log_error_verbosity = verbose puts the SQLSTATE before the message ("ERROR:  23505: duplicate
 * ...") and adds a LOCATION line to every message. Only a record with that LOCATION line is taken
 * as verbose: on a server with the default verbosity, a message that merely starts with `23505: `
 * (a RAISE, a value in a message) is text, not an SQLSTATE.
 */
function withVerboseSqlstate(record: LogRecord): LogRecord {
  const message = record.message;
  if (record.location === undefined || message.length < 7 || message[5] !== ':' || message[6] !== ' ') return record;
  const code = message.slice(0, 5);
  if (!isSqlstate(code)) return record;
  record.sqlstate ??= code;
  record.message = message.slice(7);
  return record;
}

/** Five characters of 0-9 and A-Z: what %e and verbose messages print. */
function isSqlstate(text: string): boolean {
  if (text.length !== 5) return false;
  for (let i = 0; i < 5; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90))) return false;
  }
  return true;
}

function setField(record: LogRecord, field: TextField, value: string): void {
  record[field] = bounded(value);
}

function appendField(record: LogRecord, field: TextField, value: string): void {
  const current = record[field] ?? '';
  if (current.length >= MAX_FIELD_CHARS) return;
  setField(record, field, current + value);
}
