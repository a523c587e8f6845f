import { parseObject } from './JsonlogParser.js';
import type { LogRecord } from './LogRecord.js';
import { newCounters, placed, type LinePosition, type ParserCounters, type RecordParser, type RecordSink } from './RecordParser.js';

/*
 * Every scan here is linear in the line: indexOf/lastIndexOf and loops with fixed bounds, and the
 * few regular expressions left run on slices of bounded length and cannot backtrack more than
 * their length (a log line is attacker text: see test/formats/appTextBudget.test.ts).
 */

const ENGLISH = 'duplicate key value violates unique constraint ';
/** pgx (`ERROR: ... (SQLSTATE 23505)`) and others that print the SQLSTATE after the message. */
const SQLSTATE = '(SQLSTATE 23505)';
/** What a line must hold to be looked at any closer. */
const NEEDLES = ['duplicate key', '23505'];
/** PostgreSQL's names are at most 63 bytes; quoting and escapes leave some room on top. */
const MAX_NAME_CHARS = 256;
/** How far before `(SQLSTATE 23505)` its message may start (the longest translation with a 63-byte name is far shorter). */
const MAX_MESSAGE_CHARS = 256;
/** A JSON object is looked for this far into a line (a text prefix before it: Rails, Docker, Kubernetes). */
const MAX_JSON_PREFIX = 1024;
/** Nested objects looked into for structured fields and strings (Sequelize's parent, TypeORM's driverError, log4j's cause). */
const MAX_DEPTH = 6;
/**
 * A failure told again in a different form this many events later (Hibernate's own line, then the
 * application's wrapped exception; lograge's line, then Rails' FATAL) is still the same failure.
 */
const RETOLD_WITHIN_EVENTS = 4;

/** Keys under which loggers keep a PostgreSQL error's SQLSTATE and constraint (pg, pgx, psycopg, JDBC, ...). */
const CODE_KEYS = ['code', 'sqlstate', 'sqlState', 'SQLState', 'sql_state', 'sql_state_code', 'state_code', 'pgcode', 'pgCode', 'Code'];
const CONSTRAINT_KEYS = ['constraint', 'constraint_name', 'constraintName', 'Constraint', 'ConstraintName'];

/** A failure found in one line. */
interface Found {
  message: string;
  /** The constraint's name, or the message when only the detector can tell it: what makes two lines one failure. */
  key: string;
  /** Only when the log has it as a field of its own. */
  constraint?: string;
  sqlstate?: string;
}

/**
 * Application logs: whatever a client library or an application wrote when an INSERT failed with a
 * unique violation. Found in a line, in this order:
 * - a JSON object (alone, or after a text prefix: lograge behind Rails' logger): structured fields
 *   (`code: "23505"` with `constraint`, as winston keeps a pg error), else any string in it;
 * - the English message, with the name taken from its own quoting, escaped or not
 *   (`constraint "x"`, logfmt's and JSON-in-text's `constraint \"x\"`);
 * - a message of any language before `(SQLSTATE 23505)` (pgx), the name left to the detector.
 * One failure is counted once, however many lines tell it: the lines of one event (a traceback,
 * chained exceptions, `Caused by:`, Node's inspected error) are one, and a failure told again in
 * another form right after (TypeORM, Hibernate, lograge) too. The records name no database: they
 * resolve against the configured ones. Lines without a database error are not records.
 */
export class AppTextParser implements RecordParser {
  readonly counters: ParserCounters = newCounters();
  /** Events seen: a line that does not continue the one before starts one. */
  private event = 0;
  private last: { key: string; shape: string; event: number } | undefined;

  constructor(
    private readonly source: string,
    private readonly onRecord: RecordSink,
  ) {}

  push(line: string, position?: LinePosition): void {
    if (!continues(line)) this.event++;
    if (!NEEDLES.some((needle) => line.includes(needle))) return;
    const found = findInLine(line);
    if (!found) return;
    const { key } = found;
    const shape = shapeOf(line);
    const last = this.last;
    if (last && last.key === key && (last.event === this.event || (last.shape !== shape && this.event - last.event <= RETOLD_WITHIN_EVENTS))) {
      // The same failure, told again: its later lines extend the window.
      last.event = this.event;
      return;
    }
    this.last = { key, shape, event: this.event };
    this.counters.records++;
    const record: LogRecord = { source: this.source, severity: 'ERROR', message: found.message };
    if (found.sqlstate) record.sqlstate = found.sqlstate;
    if (found.constraint) record.constraint = found.constraint;
    this.onRecord(placed(record, position));
  }

  flush(): void {}
}

/** The failure a line tells, if any. */
export function findInLine(line: string): Found | undefined {
  const brace = line.indexOf('{');
  if (brace !== -1 && brace <= MAX_JSON_PREFIX) {
    const object = parseObject(line.slice(brace, line.lastIndexOf('}') + 1));
    if (object) {
      const found = inObject(object, 0);
      if (found) return found;
    }
  }
  return inText(line);
}

/** Structured fields first (the driver's own), then every string, depth first. */
function inObject(value: unknown, depth: number): Found | undefined {
  if (depth > MAX_DEPTH || !value || typeof value !== 'object') return undefined;
  const entries = Array.isArray(value) ? value.slice(0, 100).map((v) => ['', v] as const) : Object.entries(value as Record<string, unknown>);
  if (!Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    const code = CODE_KEYS.map((k) => object[k]).find((v) => typeof v === 'string');
    const constraint = CONSTRAINT_KEYS.map((k) => object[k]).find((v) => typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME_CHARS);
    if (code === '23505' && typeof constraint === 'string') {
      // The message is rebuilt from the fields when the log kept only them (winston: an Error's
      // message is not enumerable).
      const message = typeof object.message === 'string' && object.message.includes(ENGLISH) ? object.message : `${ENGLISH}"${constraint}"`;
      return { message, key: constraint, constraint, sqlstate: '23505' };
    }
  }
  for (const [, v] of entries) {
    const found = typeof v === 'string' ? (NEEDLES.some((n) => v.includes(n)) ? inText(v) : undefined) : inObject(v, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** The English message with its quoted name, or a message before `(SQLSTATE 23505)`. */
export function inText(text: string): Found | undefined {
  for (let at = text.indexOf(ENGLISH); at !== -1; at = text.indexOf(ENGLISH, at + 1)) {
    const name = quotedAt(text, at + ENGLISH.length);
    if (name !== undefined) return { message: `${ENGLISH}"${name}"`, key: name, ...(text.includes(SQLSTATE) ? { sqlstate: '23505' } : {}) };
  }
  const code = text.indexOf(SQLSTATE);
  if (code === -1) return undefined;
  // pgx: `<severity>: <message> (SQLSTATE 23505)`; the severity is translated too, so the message is
  // what follows the last ": " before the code (messages of this error have none of their own).
  const from = Math.max(0, code - MAX_MESSAGE_CHARS);
  let message = unescape(text.slice(from, code)).trimEnd();
  const colon = message.lastIndexOf(': ');
  if (colon !== -1) message = message.slice(colon + 2);
  // A closing quote of the logger's own (logfmt's error="...") does not belong to the message.
  if (message.length === 0) return undefined;
  return { message, key: message, sqlstate: '23505' };
}

/** The name quoted at `from`: `"x"`, or escaped as `\"x\"` (`\\\"x\\\"` ...) with as many backslashes on both sides. */
function quotedAt(text: string, from: number): string | undefined {
  let quote = from;
  while (quote < text.length && quote - from < 8 && text.charCodeAt(quote) === 0x5c /* \ */) quote++;
  if (text[quote] !== '"') return undefined;
  const escapes = quote - from;
  const close = text.indexOf('"', quote + 1);
  if (close === -1 || close - quote > MAX_NAME_CHARS) return undefined;
  let name = text.slice(quote + 1, close);
  if (escapes > 0) {
    if (!name.endsWith('\\'.repeat(escapes))) return undefined;
    name = name.slice(0, -escapes);
  }
  return name.length > 0 ? name : undefined;
}

/** Undoes one level of backslash escapes (logfmt, JSON inside text). */
function unescape(text: string): string {
  if (!text.includes('\\')) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && i + 1 < text.length) i++;
    out += text[i];
  }
  return out;
}

/** Lines that go on telling the event of the line before: a traceback, an exception's causes, a multi-line object. */
const CONTINUATIONS = [
  'Traceback (',
  'The above exception was the direct cause',
  'During handling of the above exception',
  'Caused by: ',
  'Suppressed: ',
  'DETAIL:',
  'HINT:',
  'CONTEXT:',
  'Detail:',
  'Hint:',
  'Where:',
  'Position:',
  '...',
  '}',
  ']',
  '[SQL: ',
  '[parameters: ',
  '(Background on this error',
];

export function continues(line: string): boolean {
  if (line.length === 0) return true;
  const first = line.charCodeAt(0);
  if (first === 0x20 || first === 0x09) return true;
  if (CONTINUATIONS.some((start) => line.startsWith(start))) return true;
  return exceptionLine(line);
}

/**
 * `psycopg.errors.UniqueViolation: ...`, `java.lang.RuntimeException: ...`, `QueryFailedError: ...`,
 * `Error`: an exception's own line, which the runtimes print below the logger's line.
 */
function exceptionLine(line: string): boolean {
  const colon = line.indexOf(': ');
  const name = colon === -1 ? line : line.slice(0, colon);
  if (name.length === 0 || name.length > 200) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const word = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x24 || c === 0x2e;
    if (!word) return false;
  }
  const last = name.slice(name.lastIndexOf('.') + 1);
  const upper = last.charCodeAt(0) >= 0x41 && last.charCodeAt(0) <= 0x5a;
  return upper && (name.includes('.') || /(?:Error|Exception|Violation|NotUnique)$/.test(last));
}

/** The form of a line's start, with what changes from one event to the next (digits, hex ids) left out. */
function shapeOf(line: string): string {
  return line.slice(0, 16).replace(/[0-9a-f]/g, '#');
}
