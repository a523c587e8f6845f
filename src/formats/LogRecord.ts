/**
 * One logical log record, whatever format it came in. Every format parser produces this shape, so
 * the detector never needs to know where a record came from.
 *
 * Fields the source format does not carry stay undefined. DETAIL and STATEMENT are kept for
 * detection only: they can hold row data and are never written to the audit log.
 */
export interface LogRecord {
  /** The source's name (its path, or "-" for stdin). */
  source: string;
  /** Byte offset of the record's first line within the source, when known. */
  offset?: number;
  /** 1-based physical line number of the record's first line within the source, when known. */
  line?: number;
  /** Log time as written by the server (not parsed: formats differ, and the audit only quotes it). */
  logTime?: string;
  pid?: number;
  user?: string;
  database?: string;
  application?: string;
  /** The process's type (csvlog since PG 13, jsonlog, %b): "client backend", "logical replication worker", ... */
  backendType?: string;
  /** SQLSTATE, when the format carries it (%e, csvlog, jsonlog, verbose messages). */
  sqlstate?: string;
  /** ERROR, LOG, FATAL, ...: always the English word (parsers translate FEHLER, ERREUR, ... back). */
  severity: string;
  message: string;
  detail?: string;
  hint?: string;
  context?: string;
  statement?: string;
  location?: string;
  /**
   * The constraint, when the log keeps it as a field of its own (an application logger's
   * structured error: pg's `constraint`); the message then says it too.
   */
  constraint?: string;
}
