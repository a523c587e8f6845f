import type { LogRecord } from '../formats/LogRecord.js';
import { isKnownSeverity } from '../formats/severity.js';

/**
 * A log record that matters: a unique violation (a candidate for a lagging sequence), one of the
 * other sequence errors of the runbook, which setval must not "fix" and a person must see, or a
 * logical-replication apply worker stuck on a row the subscriber already has (not drift at all).
 */
export interface Incident {
  kind: 'unique_violation' | 'replication_conflict' | SequenceErrorKind;
  /**
   * The index named in the message (PostgreSQL reports the index, never schema-qualified); for
   * sequence errors, the sequence; for a replication conflict, the index when the record names it,
   * else the relation.
   */
  constraint: string;
  source: string;
  offset?: number;
  line?: number;
  logTime?: string;
  /** The server process that wrote the record, when the log format says it. */
  pid?: number;
  /** The database the record came from, when the log format says it. */
  database?: string;
  sqlstate?: string;
  /** For a replication conflict: what the apply worker's record says (each part only when found, and checked). */
  replication?: ReplicationConflict;
}

export interface ReplicationConflict {
  /** The replication origin, `pg_<subscription oid>`. */
  origin?: string;
  /** The subscription's oid, from the origin's name. */
  subscriptionOid?: string;
  /** The table the worker could not apply a change to (schema.table), as the record names it. */
  relation?: string;
  /** Where the remote transaction ends (`finished at X/X`): for ALTER SUBSCRIPTION ... SKIP. */
  finishLsn?: string;
  /** PG 18's conflict type (`conflict=insert_exists`). */
  conflict?: string;
}

export const UNIQUE_VIOLATION = '23505';

export type SequenceErrorKind = 'sequence_exhausted' | 'sequence_missing' | 'sequence_permission_denied' | 'setval_out_of_bounds';

/*
 * Everything below reads log text, which anyone who can make the server log a message can write.
 * So nothing here is a regular expression: names are found with indexOf/lastIndexOf and loops over
 * the (bounded) text, each a single pass, so a record costs time linear in its length whatever it
 * holds (test/formats/fuzz.test.ts holds every format to a time budget per record).
 */

/** The English messages of the `_id_seq` family: each returns the name it holds, if it is that message. */
const SEQUENCE_ERRORS: Array<{ kind: SequenceErrorKind; sqlstate: string; english: (message: string) => string | undefined; anyName: boolean }> = [
  {
    kind: 'sequence_exhausted',
    sqlstate: '2200H',
    english: (m) => nameBeforeNumber(m, 'nextval: reached maximum value of sequence "') ?? nameBeforeNumber(m, 'nextval: reached minimum value of sequence "'),
    // 2200H is raised for sequences only: the quoted name is the sequence's, whatever it is called.
    anyName: true,
  },
  {
    kind: 'sequence_missing',
    sqlstate: '42P01',
    english: (m) => between(m, 'relation "', '" does not exist', (name) => name.endsWith('_seq')),
    anyName: false,
  },
  {
    kind: 'sequence_permission_denied',
    sqlstate: '42501',
    english: (m) => between(m, 'permission denied for sequence ', '', (name) => name.length > 0),
    anyName: false,
  },
  {
    kind: 'setval_out_of_bounds',
    sqlstate: '22003',
    english: (m) => {
      if (!m.startsWith('setval: value ')) return undefined;
      const at = m.indexOf(' is out of bounds for sequence "');
      return at === -1 ? undefined : nameBeforeNumber(m.slice(at + 1), 'is out of bounds for sequence "');
    },
    anyName: false,
  },
];

/** The SQLSTATE of each kind of incident the daemon acts on (a replication conflict's varies). */
export function expectedSqlstate(kind: Exclude<Incident['kind'], 'replication_conflict'>): string {
  return kind === 'unique_violation' ? UNIQUE_VIOLATION : SEQUENCE_ERRORS.find((e) => e.kind === kind)!.sqlstate;
}

/**
 * Whether a record's own SQLSTATE says it is not the error its words read as: a RAISE of them (a
 * plain RAISE is P0001). The one rule for the daemon, which skips it (sqlstate_mismatch), and for
 * replay, which passes over it. A record without a SQLSTATE (a prefix without %e) cannot say.
 */
export function sqlstateContradicts(incident: Pick<Incident, 'kind' | 'sqlstate'>): boolean {
  return incident.kind !== 'replication_conflict' && incident.sqlstate !== undefined && incident.sqlstate !== expectedSqlstate(incident.kind);
}

const ENGLISH_UNIQUE = 'duplicate key value violates unique constraint "';
/** PostgreSQL 18's apply worker: `conflict detected on relation "public.t": conflict=insert_exists`. */
const ENGLISH_CONFLICT = 'conflict detected on relation ';
const ENGLISH_NEEDLES = ['duplicate key value violates unique constraint', 'value of sequence', 'for sequence', '_seq" does not exist', ENGLISH_CONFLICT];

/** PG 18's conflict types (`conflict=%s` is printed untranslated). */
const CONFLICT_TYPES = [
  'insert_exists',
  'update_origin_differs',
  'update_exists',
  'update_missing',
  'update_deleted',
  'delete_origin_differs',
  'delete_missing',
  'multiple_unique_conflicts',
];

/**
 * The apply worker's CONTEXT (`processing remote data for replication origin "pg_16394" during
 * message type "INSERT" ...`) in English and in every translation of PostgreSQL's catalogs (a
 * fixed part of it, common to its variants), for stderr logs without %b.
 */
const REPLICATION_CONTEXTS = [
  'processing remote data for replication origin',
  'Verarbeiten empfangener Daten für Replication-Origin',
  'procesando datos remotos de origen de replicación',
  "elaborazione dei dati remoti per l'origine della replica",
  'のリモートからのデータを処理中',
  '복제 오리진용 원격 데이터를 처리합니다',
  'источника репликации',
  'fjärrdata för replikeringskälla',
  'віддалених даних для джерела реплікації',
];

/**
 * The unique violation's message in every translation of PostgreSQL's catalogs, up to the name
 * (PostgreSQL 15's, as Debian installs them). Without a SQLSTATE a translated message is not acted
 * on (uniqueViolation: the English message, or any language with SQLSTATE 23505), so these are no
 * needles: replay looks for them only to say that a log's errors went uncounted (untoldErrors).
 */
export const TRANSLATED_UNIQUE_VIOLATIONS: readonly string[] = [
  'doppelter Schlüsselwert verletzt Unique-Constraint »',
  'llave duplicada viola restricción de unicidad «',
  "la valeur d'une clé dupliquée rompt la contrainte unique « ",
  'un valore chiave duplicato viola il vincolo univoco "',
  '重複したキー値は一意性制約"',
  'დუბლირებული გასაღების მნიშვნელობა არღვევს უნიკალურ შეზღუდვას "',
  '중복된 키 값이 "',
  'повторяющееся значение ключа нарушает ограничение уникальности "',
  'duplicerat nyckelvärde bryter mot unik-villkor "',
  'повторювані значення ключа порушують обмеження унікальності "',
  '重复键违反唯一约束"',
];

/**
 * What a record must hold for detectIncident to act on it, as the text any log format carries
 * unchanged (no quote or character any format escapes): the one source of the byte-level scanner's
 * needles (src/detect/scanner.ts). Each entry says which rule above it stands for; a new rule there
 * needs its text here (test/detect/scanner.unit.test.ts checks every record the rules act on).
 */
export const INCIDENT_TEXTS: {
  /** In the message (a record's first line, or its continuations), whatever the SQLSTATE. */
  readonly message: readonly string[];
  /** SQLSTATEs that alone make a record an incident (a translated message), where the format carries one. */
  readonly sqlstates: readonly string[];
} = {
  message: [
    // uniqueViolation() by the English message (also what a worker's replicationConflict() needs).
    ENGLISH_UNIQUE.slice(0, -2),
    // The English sequence messages: `value of sequence "`, `for sequence "` / `for sequence `.
    'sequence',
    // `relation "x_seq" does not exist`, and every SQLSTATE rule but 2200H's: the name ends in _seq.
    '_seq',
    // conflictType(): PG 18's `conflict=<type>`, printed untranslated.
    'conflict=',
  ],
  sqlstates: [UNIQUE_VIOLATION, ...SEQUENCE_ERRORS.filter((e) => e.anyName).map((e) => e.sqlstate)],
};

/**
 * The English words of the errors seqwatch acts on, for noticing error lines a source's format did
 * not take (a prefix that does not match): not a pre-check of what to parse. Which lines may hold an
 * incident is the scanner's one list (INCIDENT_TEXTS, detect/scanner.ts), which also knows the
 * SQLSTATE a verbose message carries before its text.
 */
const ENGLISH_ERROR_TEXTS: readonly string[] = ENGLISH_NEEDLES;

/**
 * A line a source's format took no record from, up to the error's words when it holds them: what
 * the daemon (source_unparsed) and replay show of it. What follows the words may hold row data.
 */
export function unreadErrorSample(line: string): string | undefined {
  const text = ENGLISH_ERROR_TEXTS.find((words) => line.includes(words));
  return text === undefined ? undefined : line.slice(0, line.indexOf(text) + text.length);
}

/**
 * How PostgreSQL's translations quote a name: "…" (en, it, ja, ko, ru, sv, uk, zh), « … » (fr, es),
 * »…« (de), and „…“, “…”, 「…」 for good measure. The opening quote found first wins: the
 * translations put it right before the name.
 */
const QUOTES: Array<[open: string, close: string]> = [
  ['"', '"'],
  ['«', '»'],
  ['»', '«'],
  ['„', '“'],
  ['“', '”'],
  ['「', '」'],
];

/**
 * The name in the first pair of quotes. `greedy`: up to the last closing quote, since an index's
 * name may itself hold the closing quote (messages do not escape it); otherwise up to the first,
 * for messages that go on after the name (a Japanese setval message ends in a stray quote).
 */
export function quotedName(text: string, greedy: boolean): string | undefined {
  let best: { at: number; open: string; close: string } | undefined;
  for (const [open, close] of QUOTES) {
    const at = text.indexOf(open);
    if (at !== -1 && (best === undefined || at < best.at)) best = { at, open, close };
  }
  if (!best) return undefined;
  const start = best.at + best.open.length;
  const end = greedy ? text.lastIndexOf(best.close) : text.indexOf(best.close, start);
  if (end < start) return undefined;
  return text.slice(start, end).trim();
}

/**
 * Decides whether a record is an incident and, if so, which name it holds. Trusts the SQLSTATE
 * where the format carries one (any message language), the English message otherwise. The name is
 * returned as text only: it is later looked up in the catalog as a bind parameter and never
 * becomes part of a statement.
 */
export function detectIncident(record: LogRecord): Incident | undefined {
  if (!isError(record)) return undefined;
  const replication = replicationConflict(record);
  if (replication) return replication;
  const message = withoutPosition(record.message);
  for (const known of SEQUENCE_ERRORS) {
    let name = known.english(message);
    if (name === undefined && record.sqlstate === known.sqlstate) {
      // By SQLSTATE alone (a translated message) most of these codes also cover tables and
      // numbers: only a message that names a *_seq counts, except for 2200H (sequences only).
      const quoted = quotedName(record.message, false);
      name = quoted !== undefined && (known.anyName || quoted.endsWith('_seq')) ? quoted : sequenceWord(record.message);
    }
    if (!name) continue;
    return withWhere({ kind: known.kind, constraint: name }, record);
  }
  const constraint = uniqueViolation(record);
  if (constraint === undefined) return undefined;
  return withWhere({ kind: 'unique_violation', constraint }, record);
}

/**
 * The incident a record's first line already decides, before its DETAIL, CONTEXT or STATEMENT
 * lines (or the next record's prefix) arrive: a unique violation written by a session. PostgreSQL
 * prints %u and %d only for sessions (MyProcPort), never for a logical-replication worker, whose
 * CONTEXT line would make the same message a replication conflict; a backend type, where the
 * prefix has one, says so too. Anything else waits for the whole record. The caller acts on it at
 * once and lets the whole record add nothing when it names the same index (see the daemon).
 */
export function decidedByFirstLine(record: LogRecord): Incident | undefined {
  // PG 18's conflict message (its SQLSTATE is 23505 too) is a replication conflict whoever writes it (detectIncident).
  if (record.severity !== 'ERROR' || !isSession(record) || conflictType(record.message) !== undefined) return undefined;
  const constraint = uniqueViolation(record);
  if (constraint === undefined) return undefined;
  return withWhere({ kind: 'unique_violation', constraint }, record);
}

/**
 * decidedByFirstLine's incident, and whether the record so far (its first line) already says the
 * same: then its later lines cannot change it, only its message's TAB lines could, and a reader
 * need not read the rest (the daemon's SourcePipeline; the tests' copy of its wiring).
 */
export function firstLineDecision(record: LogRecord): { incident: Incident; settled: boolean } | undefined {
  const incident = decidedByFirstLine(record);
  if (!incident) return undefined;
  const whole = detectIncident(record);
  return { incident, settled: whole?.kind === incident.kind && whole.constraint === incident.constraint };
}

/**
 * Whether a stderr record's first line already rules out an incident, whatever lines follow: it is
 * no ERROR (a LOG of a statement, a NOTICE). Its severity and SQLSTATE are on that line (the prefix's
 * %e, a verbose message's code), and the lines after it add DETAIL, CONTEXT, STATEMENT or the
 * message's TAB lines, never those: replay need not read the rest of a long statement whose text
 * quotes an error's words (log_statement = 'all').
 */
export function ruledOutByFirstLine(record: LogRecord): boolean {
  return !isError(record);
}

/**
 * Written by a session: its backend type says so, or (without one) the prefix printed %u or %d,
 * which PostgreSQL prints only for sessions (MyProcPort), never for a background worker such as a
 * logical-replication apply worker. So a session's record is never a replication conflict by its
 * CONTEXT (a function's CONTEXT quotes SQL text, which anyone may write), and nothing after its
 * message can change what its ERROR line decided (decidedByFirstLine).
 */
function isSession(record: LogRecord): boolean {
  return record.backendType !== undefined ? record.backendType === 'client backend' : Boolean(record.user || record.database);
}

/**
 * An ERROR in any language. The parsers turn known translations into ERROR; a word no catalog we
 * know has (a newer translation) still counts where the SQLSTATE says it is an error.
 */
function isError(record: LogRecord): boolean {
  if (record.severity === 'ERROR') return true;
  return !isKnownSeverity(record.severity) && record.sqlstate !== undefined && record.sqlstate !== '00000';
}

/** The index a unique violation names: by the English message, or by SQLSTATE 23505 in any language. */
function uniqueViolation(record: LogRecord): string | undefined {
  const message = record.message;
  if (message.startsWith(ENGLISH_UNIQUE) && message.length > ENGLISH_UNIQUE.length && message.endsWith('"')) {
    return message.slice(ENGLISH_UNIQUE.length, -1);
  }
  if (record.sqlstate === UNIQUE_VIOLATION) return quotedName(message, true);
  return undefined;
}

/**
 * A logical-replication apply (or table sync) worker that could not apply a row: the subscriber
 * already has a row with that key. Recognised by the worker's backend type (csvlog, jsonlog, %b),
 * its CONTEXT (any language), or PG 18's conflict message. This is not drift: moving a sequence
 * would not help, and the worker retries the same transaction until a person resolves it.
 */
function replicationConflict(record: LogRecord): Incident | undefined {
  const conflict = conflictType(record.message);
  const worker =
    (record.backendType !== undefined && record.backendType.startsWith('logical replication') && record.backendType !== 'logical replication launcher') ||
    (record.context !== undefined && !isSession(record) && REPLICATION_CONTEXTS.some((needle) => record.context!.includes(needle)));
  if (!worker && conflict === undefined) return undefined;
  const index = conflict !== undefined ? quotedName(record.detail ?? '', false) : uniqueViolation(record);
  // Another error of the worker (a missing table, a type mismatch) is not ours to report.
  if (conflict === undefined && index === undefined) return undefined;
  const replication: ReplicationConflict = {};
  const context = record.context ?? '';
  const origin = originIn(context);
  if (origin !== undefined) {
    replication.origin = origin;
    replication.subscriptionOid = origin.slice(3);
  }
  const relation = conflict !== undefined ? quotedName(record.message, false) : textAfter(context, 'replication target relation "', '"');
  if (relation) replication.relation = relation;
  const lsn = finishLsn(context);
  if (lsn !== undefined) replication.finishLsn = lsn;
  if (conflict !== undefined) replication.conflict = conflict;
  const constraint = index ?? relation ?? '';
  const incident = withWhere({ kind: 'replication_conflict', constraint }, record);
  incident.replication = replication;
  return incident;
}

/** PG 18's `conflict=insert_exists` (any known type), if the message has it. */
function conflictType(message: string): string | undefined {
  const at = message.lastIndexOf('conflict=');
  if (at === -1) return undefined;
  const rest = message.slice(at + 9);
  return CONFLICT_TYPES.find((type) => rest === type || rest.startsWith(type + ' ') || rest.startsWith(type + ','));
}

/** The replication origin `pg_<digits>` in quotes in the apply worker's context. */
function originIn(context: string): string | undefined {
  for (let at = context.indexOf('pg_'), tries = 0; at !== -1 && tries < 16; at = context.indexOf('pg_', at + 3), tries++) {
    let end = at + 3;
    while (end < context.length && end - at < 16 && isDigit(context.charCodeAt(end))) end++;
    const quotedBefore = at > 0 && QUOTES.some(([open]) => context.endsWith(open, at));
    if (end > at + 3 && quotedBefore) return context.slice(at, end);
  }
  return undefined;
}

/** `finished at 0/177C240` (any language: the LSN is printed as hex/hex): the last such pair. */
function finishLsn(context: string): string | undefined {
  const slash = context.lastIndexOf('/');
  if (slash === -1) return undefined;
  let start = slash;
  while (start > 0 && slash - start < 8 && isHex(context.charCodeAt(start - 1))) start--;
  let end = slash + 1;
  while (end < context.length && end - slash <= 8 && isHex(context.charCodeAt(end))) end++;
  if (start === slash || end === slash + 1) return undefined;
  // Whole words only: not a piece of a longer token.
  if ((start > 0 && isWordChar(context.charCodeAt(start - 1))) || (end < context.length && isWordChar(context.charCodeAt(end)))) return undefined;
  return context.slice(start, end);
}

/** What PostgreSQL's text logs append to a message where the statement's position is known. */
const POSITION = ' at character ';

/**
 * A message without the position PostgreSQL's stderr and syslog output append to an error raised
 * while a statement is parsed (`relation "ticket_id_seq" does not exist at character 16`, for
 * `SELECT nextval('ticket_id_seq')`); csvlog and jsonlog keep it in a field of their own. A real
 * server's stderr log showed it: its missing-sequence errors went unrecognised there, and were
 * found in its csvlog (test/e2e/sequenceErrors.test.ts).
 */
function withoutPosition(message: string): string {
  const at = message.lastIndexOf(POSITION);
  if (at === -1 || at + POSITION.length === message.length) return message;
  for (let i = at + POSITION.length; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 48 || c > 57) return message;
  }
  return message.slice(0, at);
}

/** `<prefix>NAME<suffix>` as the whole text, NAME accepted by `accept`. */
function between(text: string, prefix: string, suffix: string, accept: (name: string) => boolean): string | undefined {
  if (!text.startsWith(prefix) || !text.endsWith(suffix) || text.length < prefix.length + suffix.length) return undefined;
  const name = text.slice(prefix.length, text.length - suffix.length);
  return accept(name) ? name : undefined;
}

/** The text between the first `start` and the next `end` after it (English context only). */
function textAfter(text: string, start: string, end: string): string | undefined {
  const at = text.indexOf(start);
  if (at === -1) return undefined;
  const close = text.indexOf(end, at + start.length);
  return close === -1 ? undefined : text.slice(at + start.length, close);
}

/** `<prefix>NAME" (<integer or a..b>)`: the English sequence messages. */
function nameBeforeNumber(message: string, prefix: string): string | undefined {
  if (!message.startsWith(prefix) || !message.endsWith(')')) return undefined;
  const close = message.lastIndexOf('" (');
  if (close < prefix.length) return undefined;
  const numbers = message.slice(close + 3, -1);
  for (let i = 0; i < numbers.length; i++) {
    const c = numbers.charCodeAt(i);
    if (!isDigit(c) && c !== 45 /* - */ && c !== 46 /* . */) return undefined;
  }
  return numbers.length > 0 ? message.slice(prefix.length, close) : undefined;
}

/** The first whitespace-separated word ending in `_seq` (trailing punctuation dropped): unquoted names, as in 42501's message. */
function sequenceWord(message: string): string | undefined {
  let start = 0;
  for (let i = 0; i <= message.length; i++) {
    if (i < message.length && !isSpace(message.charCodeAt(i))) continue;
    let end = i;
    while (end > start && ',.;:'.includes(message[end - 1]!)) end--;
    if (end - start > 4 && message.endsWith('_seq', end)) return message.slice(start, end);
    start = i + 1;
  }
  return undefined;
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isHex = (c: number) => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
const isWordChar = (c: number) => isHex(c) || (c >= 71 && c <= 90) || (c >= 103 && c <= 122) || c === 95;
const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;

function withWhere(found: Pick<Incident, 'kind' | 'constraint'>, record: LogRecord): Incident {
  // Built field by field: an object spread here cost more than the rest of detection (V8 11, a hit in a busy log's replay).
  const incident: Incident = { kind: found.kind, constraint: found.constraint, source: record.source };
  if (record.offset !== undefined) incident.offset = record.offset;
  if (record.line !== undefined) incident.line = record.line;
  if (record.logTime !== undefined) incident.logTime = record.logTime;
  if (record.pid !== undefined) incident.pid = record.pid;
  if (record.database !== undefined) incident.database = record.database;
  if (record.sqlstate !== undefined) incident.sqlstate = record.sqlstate;
  return incident;
}
