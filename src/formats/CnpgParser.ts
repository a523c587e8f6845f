import { assign, parseObject } from './JsonlogParser.js';
import type { LogRecord } from './LogRecord.js';
import { bounded, newCounters, placed, type LinePosition, type ParserCounters, type RecordParser, type RecordSink } from './RecordParser.js';

/**
 * CloudNativePG's instance log: the operator's instance manager reads PostgreSQL's csvlog and
 * writes each record to the container's stdout as
 * `{"level":"info","ts":...,"logger":"postgres","msg":"record","logging_pod":"cluster-1","record":{...}}`,
 * the record's fields named as csvlog's columns and left out when empty (its LoggingRecord). The
 * other lines (the instance manager's own, other loggers) are passed over. The SQLSTATE is always
 * there (`sql_state_code`), so detection does not depend on the message language.
 */
export class CnpgParser implements RecordParser {
  readonly counters: ParserCounters = newCounters();

  constructor(
    private readonly source: string,
    private readonly onRecord: RecordSink,
  ) {}

  push(line: string, position?: LinePosition): void {
    const entry = parseObject(line);
    if (!entry || typeof entry.logger !== 'string') {
      this.counters.unrecognisedLines++;
      return;
    }
    const fields = entry.record;
    if (entry.logger !== 'postgres' || !fields || typeof fields !== 'object') return;
    const r = fields as Record<string, unknown>;
    if (typeof r.error_severity !== 'string' || typeof r.message !== 'string') {
      this.counters.unrecognisedLines++;
      return;
    }
    const text = (key: string) => (typeof r[key] === 'string' ? bounded(r[key] as string) : undefined);
    const record: LogRecord = { source: this.source, severity: r.error_severity, message: bounded(r.message) };
    assign(record, {
      logTime: text('log_time'),
      user: text('user_name'),
      database: text('database_name'),
      application: text('application_name'),
      sqlstate: text('sql_state_code'),
      detail: text('detail'),
      hint: text('hint'),
      context: text('context'),
      statement: text('query'),
      location: text('location'),
    });
    const pid = Number(r.process_id);
    if (Number.isInteger(pid) && pid > 0) record.pid = pid;
    this.counters.records++;
    this.onRecord(placed(record, position));
  }

  flush(): void {}
}

/** Whether a parsed JSON line is CloudNativePG's. */
export function isCnpgEntry(entry: Record<string, unknown>): boolean {
  return (
    typeof entry.logger === 'string' &&
    typeof entry.msg === 'string' &&
    ('logging_pod' in entry || (entry.logger === 'postgres' && typeof entry.record === 'object'))
  );
}
