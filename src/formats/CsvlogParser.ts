import type { LogRecord } from './LogRecord.js';
import { assign } from './JsonlogParser.js';
import { csvFields } from './csvFields.js';
import { englishSeverity } from './severity.js';
import { bounded, MAX_FIELD_CHARS, newCounters, placed, type LinePosition, type ParserCounters, type RecordParser, type RecordSink } from './RecordParser.js';

/** csvlog's columns, PostgreSQL 13 to 17 (later ones only add columns at the end). */
const COLUMN = {
  log_time: 0,
  user_name: 1,
  database_name: 2,
  process_id: 3,
  error_severity: 11,
  sql_state_code: 12,
  message: 13,
  detail: 14,
  hint: 15,
  context: 18,
  query: 19,
  application_name: 22,
  /** PG 13+. */
  backend_type: 23,
} as const;

/** How every csvlog record begins: its log_time, then a comma. */
export const CSV_RECORD_START = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [^ ,]+)?,/;

/** A record larger than this is dropped (and counted): a runaway quoted field cannot take all memory. */
const MAX_RECORD_CHARS = 8 * MAX_FIELD_CHARS;
/**
 * Past the cap a record's rest is still framed by its quotes (counted, not kept); only when the
 * quotes have not balanced within this much text is the framing given up for the next line that
 * begins like a record. A cut-off record (a torn write) so costs at most this much of the log.
 */
const RESYNC_AFTER_CHARS = 8 * MAX_RECORD_CHARS;

/**
 * PostgreSQL's csvlog. A quoted field can hold newlines and doubled quotes, so one record spans
 * several physical lines: lines are gathered until the quotes balance, then the record is parsed by
 * csvFields (quote-aware, held to csv-parse's answers: no splitting on commas).
 *
 * Framing is by the quotes alone, never by what a line looks like: a value logged inside a quoted
 * field (a sign-up form's login in DETAIL, a statement) can hold a newline followed by text shaped
 * exactly like a record, and must stay part of its field. The framing starts afresh only where the
 * source says the stream starts or has a hole (LinePosition.boundary: a new or truncated file, a
 * line dropped as over-long), or past the record cap (RESYNC_AFTER_CHARS).
 */
export class CsvlogParser implements RecordParser {
  readonly counters: ParserCounters = newCounters();
  /** The physical lines of the record being gathered (joined only once it is complete). */
  private pending: string[] = [];
  private pendingChars = 0;
  private quotes = 0;
  private position: LinePosition | undefined;
  /** Over the cap: the rest of the record is framed by its quotes but not kept; chars seen so far. */
  private overflow: number | undefined;
  /** Where records begin is unknown (after a gap, or a record past RESYNC_AFTER_CHARS): wait for a line that begins like one. */
  private lost = false;

  constructor(
    private readonly source: string,
    private readonly onRecord: RecordSink,
  ) {}

  push(line: string, position?: LinePosition): void {
    if (position?.boundary) {
      // Whatever was open ended with the file (or lost its rest in the hole): count it and start over.
      if (this.pending.length > 0 || this.overflow !== undefined) this.counters.unrecognisedLines++;
      this.reset();
      this.overflow = undefined;
      // After a dropped line its quotes are unknown: where the next record begins can only be guessed.
      this.lost = position.boundary === 'gap';
    }
    if (this.lost) {
      if (!CSV_RECORD_START.test(line)) {
        this.counters.unrecognisedLines++;
        return;
      }
      this.lost = false;
    }
    const quotes = countQuotes(line);
    if (this.overflow !== undefined) {
      this.quotes += quotes;
      this.overflow += line.length + 1;
      if (this.quotes % 2 === 0) {
        this.overflow = undefined;
        this.quotes = 0;
      } else if (this.overflow > RESYNC_AFTER_CHARS) {
        this.overflow = undefined;
        this.quotes = 0;
        this.lost = true;
      }
      return;
    }
    if (this.pending.length === 0) this.position = position;
    this.pending.push(line);
    this.pendingChars += line.length + 1;
    this.quotes += quotes;
    if (this.pendingChars > MAX_RECORD_CHARS) {
      // Dropped, counted; its rest is still told apart from the records after it by the quotes.
      this.counters.unrecognisedLines++;
      const [chars, open] = [this.pendingChars, this.quotes % 2 === 1];
      this.reset();
      if (open) {
        this.overflow = chars;
        this.quotes = 1;
      }
      return;
    }
    if (this.quotes % 2 === 0) this.emit();
  }

  /** Between records (the quotes balanced, the framing known): lines the scanner rules out may be passed over unseen. */
  canPassOver(): boolean {
    return this.pending.length === 0 && this.overflow === undefined && !this.lost;
  }

  /** `lines` whole records' lines were passed over unseen (by the source, which balanced their quotes). */
  passedOverLines(lines: number): void {
    this.counters.skippedLines += lines;
  }

  flush(): void {
    // A record still open at the end is half-written: keep it, its rest may still come.
  }

  private reset(): void {
    this.pending = [];
    this.pendingChars = 0;
    this.quotes = 0;
  }

  private emit(): void {
    const text = this.pending.join('\n');
    const position = this.position;
    this.reset();
    const fields = csvFields(text);
    const field = (index: number) => (fields?.[index] !== undefined && fields[index] !== '' ? bounded(fields[index]!) : undefined);
    const severity = field(COLUMN.error_severity);
    const message = field(COLUMN.message);
    if (!fields || fields.length < 14 || !severity || message === undefined) {
      this.counters.unrecognisedLines++;
      return;
    }
    // The severity word is translated on a server with lc_messages other than English (FEHLER, ERREUR).
    const record: LogRecord = { source: this.source, severity: englishSeverity(severity), message };
    assign(record, {
      logTime: field(COLUMN.log_time),
      user: field(COLUMN.user_name),
      database: field(COLUMN.database_name),
      sqlstate: field(COLUMN.sql_state_code),
      detail: field(COLUMN.detail),
      hint: field(COLUMN.hint),
      context: field(COLUMN.context),
      statement: field(COLUMN.query),
      application: field(COLUMN.application_name),
      backendType: field(COLUMN.backend_type),
    });
    const pid = Number(field(COLUMN.process_id));
    if (Number.isInteger(pid)) record.pid = pid;
    this.counters.records++;
    this.onRecord(placed(record, position));
  }
}

function countQuotes(line: string): number {
  let n = 0;
  for (let i = line.indexOf('"'); i !== -1; i = line.indexOf('"', i + 1)) n++;
  return n;
}
