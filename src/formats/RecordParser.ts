import type { LogRecord } from './LogRecord.js';

/** Where a line came from, as the sources report it. */
export interface LinePosition {
  offset?: number;
  line?: number;
  /**
   * Set by the source on the first line after a discontinuity: `start` where it (re)starts reading
   * (a new file, a truncated one, a resumed checkpoint), `gap` after a line it dropped (over its
   * length limit). Nothing before it may join what follows: the only place where a format whose
   * records span lines (csvlog) may find its framing again without trusting the lines' content.
   */
  boundary?: 'start' | 'gap';
}

export interface ParserCounters {
  records: number;
  /** Lines that belong to no record of this format (counted, never fatal). */
  unrecognisedLines: number;
  orphanLines: number;
  /** Lines a pre-check passed over unparsed (ordinary statements in a busy log). */
  skippedLines: number;
  /** auto: lines holding a duplicate key error that the format it had chosen gave no record for (then it chose again). */
  misreadLines: number;
}

/**
 * A format: physical lines in, LogRecords out. Every format turns its input into the same record
 * type, so the detector never needs to know where a record came from.
 */
export interface RecordParser {
  readonly counters: ParserCounters;
  /** Feeds one physical line, without its newline. */
  push(line: string, position?: LinePosition): void;
  /** Emits whatever is still being assembled: at the end of input, or when the source goes idle. */
  flush(): void;
  /** Formats whose sources may pass over lines unseen (stderr, csvlog, jsonlog): true while nothing is being assembled. */
  canPassOver?(): boolean;
  /**
   * While canPassOver() is false: bytes every line of the records being assembled holds (stderr:
   * each one's pid as the prefix prints it), so the source may pass over the lines that hold none
   * of them (and no needle) all the same; undefined when they cannot be told apart.
   */
  openRecordMarks?(): readonly Buffer[] | undefined;
  /** Told how many lines the source passed over unseen. */
  passedOverLines?(lines: number): void;
}

export type RecordSink = (record: LogRecord) => void;

export const newCounters = (): ParserCounters => ({ records: 0, unrecognisedLines: 0, orphanLines: 0, skippedLines: 0, misreadLines: 0 });

/** Fields longer than this are cut: a multi-megabyte statement must not grow memory without bound. */
export const MAX_FIELD_CHARS = 16 * 1024;

export function bounded(value: string): string {
  return value.length > MAX_FIELD_CHARS ? value.slice(0, MAX_FIELD_CHARS) : value;
}

/** Copies the position into a record. */
export function placed(record: LogRecord, position: LinePosition | undefined): LogRecord {
  if (position?.offset !== undefined) record.offset = position.offset;
  if (position?.line !== undefined) record.line = position.line;
  return record;
}
