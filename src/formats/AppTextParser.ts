import { parseObject } from './JsonlogParser.js';
import { newCounters, placed, type LinePosition, type ParserCounters, type RecordParser, type RecordSink } from './RecordParser.js';

const ENGLISH = /duplicate key value violates unique constraint "([^"]+)"/;
/** pgx: `... (SQLSTATE 23505)`; the message is what comes before it. */
const PGX = /(?:ERROR: )?(.*?)\s*\(SQLSTATE ([0-9A-Z]{5})\)/;

/**
 * Application logs: GOTRS's Go `log` lines with lib/pq errors (`pq: duplicate key value violates
 * unique constraint "article_pkey"`), pgx's `(SQLSTATE 23505)`, and JSON-structured loggers whose
 * fields hold the message. They name a constraint but no database: records resolve against the
 * configured one. Lines without a database error are not records (and are not counted as bad).
 */
export class AppTextParser implements RecordParser {
  readonly counters: ParserCounters = newCounters();

  constructor(
    private readonly source: string,
    private readonly onRecord: RecordSink,
  ) {}

  push(line: string, position?: LinePosition): void {
    const texts = line.startsWith('{') ? stringsIn(parseObject(line)) : [line];
    for (const text of texts) {
      // Cheap tests first: the patterns are only run on lines that can match them.
      const english = text.includes('duplicate key') ? ENGLISH.exec(text) : null;
      const sqlstateAt = text.indexOf('(SQLSTATE ');
      const pgx = sqlstateAt === -1 ? null : PGX.exec(text.slice(Math.max(0, sqlstateAt - 4096), sqlstateAt + 17));
      if (!english && pgx?.[2] !== '23505') continue;
      const message = english ? english[0] : pgx![1]!;
      this.counters.records++;
      this.onRecord(placed({ source: this.source, severity: 'ERROR', message, ...(pgx ? { sqlstate: pgx[2]! } : {}) }, position));
      return;
    }
  }

  flush(): void {}
}

/** Every string value of a parsed JSON object, nested ones too (bounded depth). */
function stringsIn(value: unknown, depth = 0): string[] {
  if (typeof value === 'string') return [value];
  if (!value || typeof value !== 'object' || depth > 5) return [];
  return Object.values(value as Record<string, unknown>).flatMap((v) => stringsIn(v, depth + 1));
}
