import type { Draws } from './random.js';
import { installedLanguages, render } from './scannedSamples.js';

/*
 * What a random PostgreSQL log is made of (randomLog.ts puts it together): sessions, their messages
 * (every family detectIncident acts on, in any installed language, near misses, noise), and the
 * log_line_prefix as the server prints it. Adapted from the stop-23 fuzz campaign's generator.
 */

/** A backend (or background process) writing to the log. */
export interface Session {
  pid: number;
  user: string;
  db: string;
  app: string;
  host: string;
  port: number;
  backendId: number;
  /** Session start, ms since the epoch. */
  start: number;
  /** %l: the session's last line number. */
  lineNo: number;
  /** Not a session (an apply worker, the checkpointer): no %u, %d, ..., and %q stops the prefix. */
  background: boolean;
  backendType: string;
  lang: string;
}

/** One message as ErrorData holds it: texts translated, `sev` in English. */
export interface Message {
  sev: string;
  sqlstate: string;
  message: string;
  lang: string;
  detail?: string;
  hint?: string;
  query?: string;
  context?: string;
  statement?: string;
  location?: [string, string, number];
  time: number;
  lineNo: number;
  tag: string;
  lxid: number;
  xid: number;
  queryId: number;
}

let catalogs: Map<string, (msgid: string) => string> | undefined;
const translations = () => (catalogs ??= new Map(installedLanguages().map(({ language, text }) => [language, text])));
/** 'en' and every language whose PostgreSQL catalog is installed (/usr/share/locale/*\/LC_MESSAGES/postgres-N.mo). */
export const languages = (): string[] => [...translations().keys()];
/** The message as the server prints it in `lang` (its msgid where the catalog has no translation). */
export const tr = (lang: string, msgid: string): string => translations().get(lang)?.(msgid) ?? msgid;

export const PREFIXES = [
  ...['%m [%p] ', '%m [%p] %q%u@%d ', '%m [%p] %e %q%u@%d ', '%m [%p] %l %e %q%u@%d ', '%m [%p] %q%u@%d %e ', '%m [%p] %e: ', '%m [%p] %-5e %u '],
  ...['%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ', '%t [%p]: user=%u,db=%d,app=%a,client=%h ', '%t:%r:%u@%d:[%p]:', '%m:%r:%u@%d:[%p]:'],
  ...['%m %p %u ', '%m %u%p ', '%p', '%m [%-6p] %q%u@%d ', '%m [%6p] ', '< %m >', '< %m > ', '%t %c %e ', '%n [%p] ', '%m [%p] %b %q%u@%d '],
  ...['%s %x %v %m [%p] ', '%e: %m [%p] ', '%Q %m [%p] ', '%%%m [%p] ', '', '%m ', '%t ', '%m|%p|%u|%d|%e|', '%m [%p] %q[%e] %u@%d ', ' sql_error_code = %e '],
];
const ESCAPES = ['m', 't', 'p', 'u', 'd', 'e', 'a', 'l', 'c', 'r', 'h', 'b', 'n', 's', 'v', 'x', 'i', 'Q', 'P', 'q'];
const SEPARATORS = [' ', ' ', ' ', '[', ']', ':', '@', ',', '=', '-', '|', '<', '>', '(', ')', 'user=', ' db=', ': '];

/**
 * A log_line_prefix of 1-6 escapes (some padded) with separators between them. At most one %q: with
 * two, only the text after the last is optional to the parser (compileLogLinePrefix), so the
 * reference itself reads no background line; PostgreSQL stops at the first, the rest is meaningless.
 */
export function randomPrefix(d: Draws): string {
  let prefix = d.chance(0.3) ? d.pick(SEPARATORS) : '';
  const count = d.int(1, 6);
  for (let i = 0; i < count; i++) {
    let escape = d.pick(ESCAPES);
    if (escape === 'q' && prefix.includes('q')) escape = 'm';
    prefix += `%${d.chance(0.12) ? (d.chance(0.5) ? -1 : 1) * d.int(1, 8) : ''}${escape}` + (d.chance(0.85) ? d.pick(SEPARATORS) : '');
  }
  return d.chance(0.6) && !prefix.endsWith(' ') ? prefix + ' ' : prefix;
}

const two = (n: number) => String(n).padStart(2, '0');
export function formatTime(ms: number, zone: string, millis: boolean): string {
  const t = new Date(ms);
  const base = `${t.getUTCFullYear()}-${two(t.getUTCMonth() + 1)}-${two(t.getUTCDate())} ${two(t.getUTCHours())}:${two(t.getUTCMinutes())}:${two(t.getUTCSeconds())}`;
  return `${millis ? `${base}.${String(t.getUTCMilliseconds()).padStart(3, '0')}` : base} ${zone}`;
}
export const sessionId = (s: Session): string => `${Math.floor(s.start / 1000).toString(16)}.${s.pid.toString(16)}`;

/** The log_line_prefix as PostgreSQL prints it (elog.c's log_line_prefix()) for message `m` of session `s`. */
export function renderPrefix(prefix: string, s: Session, m: Message, zone: string): string {
  const bg = s.background;
  const values: Record<string, () => string> = {
    a: () => (bg ? '' : s.app),
    u: () => (bg ? '' : s.user),
    d: () => (bg ? '' : s.db),
    r: () => (bg ? '' : s.host === '[local]' ? s.host : `${s.host}(${s.port})`),
    h: () => (bg ? '' : s.host),
    b: () => s.backendType,
    p: () => String(s.pid),
    t: () => formatTime(m.time, zone, false),
    m: () => formatTime(m.time, zone, true),
    n: () => `${Math.floor(m.time / 1000)}.${String(m.time % 1000).padStart(3, '0')}`,
    s: () => formatTime(s.start, zone, false),
    i: () => (bg ? '' : m.tag),
    e: () => m.sqlstate,
    c: () => sessionId(s),
    l: () => String(m.lineNo),
    v: () => (bg ? '' : `${s.backendId}/${m.lxid}`),
    x: () => String(m.xid),
    Q: () => String(m.queryId),
  };
  let out = '';
  for (let i = 0; i < prefix.length; i++) {
    if (prefix[i] !== '%') {
      out += prefix[i];
      continue;
    }
    const padding = /^-?\d+/.exec(prefix.slice(i + 1))?.[0];
    if (padding) i += padding.length;
    const escape = prefix[++i];
    if (escape === undefined) break;
    if (escape === '%') out += '%';
    else if (escape === 'q') {
      if (bg) break;
    } else {
      const value = values[escape]?.() ?? '';
      const width = Number(padding ?? 0);
      out += width < 0 ? value.padEnd(-width) : value.padStart(width);
    }
  }
  return out;
}

const CONSTRAINTS = [
  'ticket_pkey',
  'users_login_key',
  't1_pkey',
  'ключ_pkey',
  'a"b_key',
  'x y_key',
  'with,comma_key',
  'sequence_pkey',
  'DEBUG1_pkey',
  'z'.repeat(63),
];
const SEQUENCES = ['ticket_id_seq', 'users_id_seq', 'valid_id_seq', 'tiny_id_seq', 'art1_id_seq', 'zähler_seq', 'counter', 'x"y_seq'];
export const USERS = ['gotrs', 'gotrs', 'app', 'DEBUG', 'gö', 'postgres', 'u@x', 'ERROR'];
export const DBS = ['gotrs', 'gotrs', 'db1', 'shop', 'bäckerei'];
export const APPS = ['psql', 'app', 'pgAdmin 4', '', 'x]y', 'DEBUG1'];
export const HOSTS = ['[local]', '10.0.0.7', '127.0.0.1', '::1', 'db-host.example'];
export const BACKGROUND_TYPES = ['logical replication apply worker', 'logical replication worker', 'autovacuum worker', 'checkpointer'];

/** A statement: short ones (multi-line, one holding an error's words in a comment), or a bulk INSERT of 5-300 KB. */
export function statementText(d: Draws, big: boolean): string {
  if (big) {
    const rows: string[] = [];
    for (let size = 0, want = d.pick([5000, 20000, 70000, 150000, 300000]); size < want; size += rows[rows.length - 1]!.length + 2) {
      rows.push(`(${d.int(1, 1e6)}, 'row ${d.int(1, 1e6)}')`);
    }
    return `INSERT INTO ticket (id, title) VALUES ${rows.join(d.chance(0.5) ? ', ' : ',\n')}`;
  }
  return d.pick([
    'INSERT INTO ticket (id, title) VALUES ($1, $2)',
    'INSERT INTO t\nSELECT * FROM staging\nWHERE id > 7',
    "SELECT nextval('ticket_id_seq')",
    'INSERT INTO x VALUES (1);\n-- duplicate key value violates unique constraint "fake_pkey"\n',
    'COPY ticket FROM STDIN',
  ]);
}

/** What a log's variant decides of its messages. */
export interface MessageOptions {
  bigStatements: number;
  bigContexts: boolean;
  /** A line shaped like a record of the log's format, put into some statements (forged: anyone who can run SQL). */
  forgeLine?: string;
}

/** A message of session `s`: an incident of any family, a near miss, or noise (time, line numbers and tags are the caller's). */
export function makeMessage(d: Draws, s: Session, o: MessageOptions, lang: string): Omit<Message, 'time' | 'lineNo' | 'tag' | 'lxid' | 'xid' | 'queryId'> {
  const m: ReturnType<typeof makeMessage> = { sev: 'ERROR', sqlstate: '00000', message: '', lang };
  const t = (msgid: string, ...args: string[]) => render(tr(lang, msgid), args);
  const r = d();
  const big = d.chance(o.bigStatements);
  if (s.backendType.startsWith('logical replication') && r < 0.5) {
    // An apply worker stuck on a row the subscriber has (before 18: a unique violation and its CONTEXT; 18: conflict=).
    const lsn = [d.int(0, 15).toString(16).toUpperCase(), d.int(0, 0xfffffff).toString(16).toUpperCase()];
    const target = ['INSERT', 'public', 't', String(d.int(700, 900)), ...lsn];
    m.context = t(
      'processing remote data for replication origin "%s" during message type "%s" for replication target relation "%s.%s" in transaction %u, finished at %X/%X',
      `pg_${d.int(16000, 17000)}`,
      ...target,
    );
    m.sqlstate = '23505';
    if (d.chance(0.5)) {
      m.message = t('duplicate key value violates unique constraint "%s"', d.pick(CONSTRAINTS));
      m.detail = t('Key (%s)=(%s) already exists.', 'id', String(d.int(1, 99)));
    } else {
      m.message = `conflict detected on relation "public.t": conflict=${d.pick(['insert_exists', 'update_exists', 'multiple_unique_conflicts'])}`;
      m.detail = `Key already exists in unique index "${d.pick(CONSTRAINTS)}", modified locally in transaction 740 at 2026-11-27 10:00:00.123+00.\nKey (id)=(1); existing local tuple (1, 1); remote tuple (1, 2).`;
      if (d.chance(0.2)) m.sev = 'LOG';
    }
    m.location = ['ReportApplyConflict', 'conflict.c', 1000];
    return m;
  }
  if (r < 0.3) {
    m.sqlstate = '23505';
    m.message = t('duplicate key value violates unique constraint "%s"', d.pick(CONSTRAINTS));
    m.detail = t('Key (%s)=(%s) already exists.', d.pick(['id', 'login', 'id, name']), String(d.int(1, 999999)));
    m.location = ['_bt_check_unique', 'nbtinsert.c', 664];
    if (d.chance(0.1)) m.context = 'SQL statement "INSERT INTO t VALUES (1)"\nPL/pgSQL function f() line 3 at SQL statement';
    if (o.bigContexts && d.chance(0.02)) m.context = `SQL statement "${'x'.repeat(d.pick([3000, 20000, 300000]))}"\nPL/pgSQL function f() line 3`;
  } else if (r < 0.5) {
    const family = d.int(0, 4);
    const [sqlstate, msgid, ...args] = [
      ['2200H', 'nextval: reached maximum value of sequence "%s" (%lld)', d.pick(SEQUENCES), d.pick(['32767', '2147483647'])],
      ['2200H', 'nextval: reached minimum value of sequence "%s" (%lld)', d.pick(SEQUENCES), d.pick(['1', '-5'])],
      ['42P01', 'relation "%s" does not exist', d.pick([...SEQUENCES, 'ticket', 'x_seq_old'])],
      ['42501', 'permission denied for sequence %s', d.pick(SEQUENCES)],
      ['22003', 'setval: value %lld is out of bounds for sequence "%s" (%lld..%lld)', String(d.int(1, 1e5)), d.pick(SEQUENCES), '1', '32767'],
    ][family]!;
    Object.assign(m, { sqlstate, message: t(msgid!, ...args) });
    m.location = ['nextval_internal', 'sequence.c', 760];
  } else if (r < 0.56) {
    // Near misses: an incident's words at another severity or code, a RAISE with 23505, a message that goes on after the name.
    const [sev, sqlstate, message] = d.pick([
      ['WARNING', '01000', t('duplicate key value violates unique constraint "%s"', d.pick(CONSTRAINTS))],
      ['ERROR', '23502', t('null value in column "%s" of relation "%s" violates not-null constraint', 'id', 'ticket_seq')],
      ['ERROR', 'P0001', `23505: duplicate entry "${d.pick(CONSTRAINTS)}"`],
      ['ERROR', '23505', `custom unique failure on «${d.pick(CONSTRAINTS)}» (raised)`],
      ['ERROR', '42601', t('syntax error at or near "%s"', d.pick(['sequence', '_seq']))],
      ['LOG', '00000', 'conflict detected on relation "public.t": conflict=update_missing'],
      ['ERROR', '23505', `duplicate key value violates unique constraint "${d.pick(CONSTRAINTS)}"\nsecond line "with quotes"`],
      ['DEBUG', '00000', `sequence "a_seq" reached ${d.int(1, 99)}`],
    ] as const);
    Object.assign(m, { sev, sqlstate, message, location: ['exec_stmt_raise', 'pl_exec.c', 3900] });
  } else {
    // Noise: statements, checkpoints, connections.
    m.sev = d.chance(0.9) ? 'LOG' : d.pick(['NOTICE', 'INFO', 'FATAL', 'DEBUG']);
    m.message = d.pick([
      () => `duration: ${d.int(0, 999)}.${d.int(100, 999)} ms  statement: ${statementText(d, big)}`,
      () => `checkpoint complete: wrote ${d.int(1, 9999)} buffers (${d.int(0, 99)}.${d.int(0, 9)}%)`,
      () => `connection authorized: user=${s.user} database=${s.db}`,
      () => `statement: ${statementText(d, big)}`,
      () => `execute <unnamed>: SELECT nextval('${d.pick(SEQUENCES)}')`,
    ])();
    m.location = ['exec_simple_query', 'postgres.c', 1000];
    return m;
  }
  if (d.chance(0.85)) m.statement = statementText(d, big);
  if (d.chance(0.1)) m.hint = t('Key (%s)=(%s) already exists.', 'hint', '1');
  if (d.chance(0.05)) m.query = 'SELECT 1 FROM\nticket';
  if (o.forgeLine && d.chance(0.05)) m.statement = `INSERT INTO notes VALUES ('a\n${o.forgeLine}\nb')`;
  return m;
}
