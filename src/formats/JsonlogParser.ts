import type { LogRecord } from './LogRecord.js';
import { englishSeverity } from './severity.js';
import { bounded, newCounters, placed, type LinePosition, type ParserCounters, type RecordParser, type RecordSink } from './RecordParser.js';

/**
 * PostgreSQL's jsonlog (log_destination = 'jsonlog', PG 15+): one object per line, keys left out
 * when empty. The SQLSTATE is always there (`state_code`), so detection does not depend on the
 * message language.
 */
export class JsonlogParser implements RecordParser {
  readonly counters: ParserCounters = newCounters();

  constructor(
    private readonly source: string,
    private readonly onRecord: RecordSink,
  ) {}

  push(line: string, position?: LinePosition): void {
    const entry = parseObject(line);
    if (!entry || typeof entry.error_severity !== 'string' || typeof entry.message !== 'string') {
      this.counters.unrecognisedLines++;
      return;
    }
    const text = (key: string) => (typeof entry[key] === 'string' ? bounded(entry[key] as string) : undefined);
    // The severity word is translated on a server with lc_messages other than English (FEHLER, ERREUR).
    const record: LogRecord = { source: this.source, severity: englishSeverity(entry.error_severity), message: bounded(entry.message) };
    assign(record, {
      logTime: text('timestamp'),
      user: text('user'),
      database: text('dbname'),
      application: text('application_name'),
      sqlstate: text('state_code'),
      detail: text('detail'),
      hint: text('hint'),
      context: text('context'),
      statement: text('statement'),
      backendType: text('backend_type'),
    });
    if (typeof entry.pid === 'number') record.pid = entry.pid;
    this.counters.records++;
    this.onRecord(placed(record, position));
  }

  flush(): void {}

  /** One record per line: any line the scanner rules out may be passed over unseen. */
  canPassOver(): boolean {
    return true;
  }

  passedOverLines(lines: number): void {
    this.counters.skippedLines += lines;
  }
}

/** A JSON object, or undefined for anything else (never throws: bad input is counted, not fatal). */
export function parseObject(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sets the fields that have a value. A for-in over the literal, not Object.entries: no array of
 * pairs made per record (csvlog and jsonlog call this for every record they parse).
 */
export function assign(record: LogRecord, fields: Partial<Record<keyof LogRecord, string | undefined>>): void {
  for (const key in fields) {
    const value = fields[key as keyof LogRecord];
    if (value !== undefined && value !== '') (record as unknown as Record<string, string>)[key] = value;
  }
}
