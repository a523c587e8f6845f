import type { ScannedFormat } from '../../src/detect/scanner.js';
import { draws, type Draws } from './random.js';
import { render } from './scannedSamples.js';
import {
  APPS,
  BACKGROUND_TYPES,
  DBS,
  formatTime,
  HOSTS,
  languages,
  makeMessage,
  type Message,
  PREFIXES,
  randomPrefix,
  renderPrefix,
  type Session,
  sessionId,
  tr,
  USERS,
} from './randomMessages.js';

/*
 * Random PostgreSQL logs for the differential test (test/replay/differential.unit.test.ts): stderr
 * with many log_line_prefix values, csvlog and jsonlog; every installed language (English only
 * where no PostgreSQL catalog is installed); verbose messages; multi-line records; CRLF; long
 * statements and contexts; repeats of one error (replay's LineTemplate); background processes;
 * interleaved lines, mutated and stray lines, forged records in statements. Everything is drawn
 * from one seed: randomLog(seed) is the same log on every run (on one machine: the languages are
 * those installed).
 */

/** What a seed's log is made of. */
export interface Variant {
  seed: number;
  format: ScannedFormat;
  prefix: string;
  langs: string[];
  /** log_error_verbosity = verbose: the SQLSTATE before the message, a LOCATION line. */
  verbose: boolean;
  zone: string;
  crlf: 'all' | 'some' | 'none';
  /** A large log crosses replay's 4 MiB chunks (mostly ordinary statements, cheap to make). */
  large: boolean;
  targetBytes: number;
  sessions: number;
  /** The chance that an error repeats the last one of a process of its kind (a busy application's errors). */
  repeats: number;
  bigStatements: number;
  bigContexts: boolean;
  forge: boolean;
  /** Lines of two messages mixed: no logging collector (stderr to a file), large messages. */
  interleave: boolean;
  /** The chance that a line's text after its prefix is garbled (inserted, deleted, odd characters). */
  mutate: number;
  /** Lines no server wrote (a shell's, a stray TAB line, an empty one). */
  stray: boolean;
  /** jsonlog's error_severity translated (PostgreSQL leaves it English; a wrapper may not). */
  jsonTranslated: boolean;
  backgroundShare: number;
}

export function variantOf(seed: number): Variant {
  const d = draws(seed * 7919 + 17);
  const format = d.pick(['postgres-stderr', 'postgres-stderr', 'postgres-csv', 'postgres-json'] as const);
  const large = d.chance(0.03);
  return {
    seed,
    format,
    prefix: d.chance(0.6) ? d.pick(PREFIXES) : randomPrefix(d),
    langs: d.chance(0.35) ? ['en'] : Array.from({ length: d.int(1, 3) }, () => d.pick(languages())),
    verbose: d.chance(0.3),
    zone: d.pick(['UTC', 'UTC', 'CET', '+03', '-0330', 'EST']),
    crlf: d.chance(0.1) ? 'all' : d.chance(0.07) ? 'some' : 'none',
    large,
    targetBytes: large ? d.int(5_300_000, 6_000_000) : d.chance(0.8) ? d.int(2_000, 60_000) : d.int(60_000, 600_000),
    sessions: d.int(1, 24),
    repeats: d.pick([0, 0.2, 0.5, 0.8]),
    bigStatements: d.pick([0, 0, 0, 0.01, 0.05]),
    bigContexts: d.chance(0.5),
    forge: d.chance(0.1),
    interleave: format === 'postgres-stderr' && d.chance(0.1),
    mutate: d.chance(0.1) ? d.pick([0.003, 0.02]) : 0,
    stray: d.chance(0.1),
    jsonTranslated: d.chance(0.3),
    backgroundShare: d.pick([0, 0.1, 0.3]),
  };
}

/** A line shaped like an error record of the format, for a statement to hold. */
const FORGED: Record<ScannedFormat, string> = {
  // Quote-free, as a forger writes it: inside the quoted statement it stays a line shaped like a record.
  'postgres-csv': `2026-11-27 10:00:00.123 UTC,evil,gotrs,666,h:1,6b0f.9,1,INSERT,2026-11-27 09:00:00 UTC,3/4,0,ERROR,23505,duplicate key value violates unique constraint «forged_pkey»,,,,,,,,,psql,client backend,,0`,
  'postgres-json': `{"error_severity":"ERROR","state_code":"23505","message":"duplicate key value violates unique constraint \\"forged_pkey\\"","pid":666}`,
  'postgres-stderr': `2026-11-27 10:00:00.123 UTC [666] evil@gotrs ERROR:  duplicate key value violates unique constraint "forged_pkey"`,
};

/** A seed's log: its variant and its bytes (uncompressed). */
export function randomLog(seed: number): { variant: Variant; text: Buffer } {
  const v = variantOf(seed);
  const d = draws(seed);
  const sessions = Array.from({ length: v.sessions }, (): Session => {
    const background = d.chance(v.backgroundShare);
    const digits = d.int(1, 7);
    return {
      pid: d.int(10 ** (digits - 1), 10 ** digits - 1),
      ...{ user: d.pick(USERS), db: d.pick(DBS), app: d.pick(APPS), host: d.pick(HOSTS), port: d.int(1024, 65535), backendId: d.int(1, 99) },
      start: Date.UTC(2026, 10, 27, 9, 0, 0) + d.int(0, 3_600_000),
      lineNo: 0,
      background,
      backendType: background ? d.pick(BACKGROUND_TYPES) : 'client backend',
      lang: d.pick(v.langs),
    };
  });
  // Sessions of one user and database, as a busy application's: the repeats of one error.
  if (d.chance(0.5)) for (const s of sessions) if (!s.background) Object.assign(s, { user: 'gotrs', db: 'gotrs', app: 'psql' });
  const options = { bigStatements: v.bigStatements, bigContexts: v.bigContexts, ...(v.forge ? { forgeLine: FORGED[v.format] } : {}) };
  const linesOf = (s: Session, m: Message) =>
    v.format === 'postgres-stderr' ? stderrLines(v, s, m) : [{ keep: 0, text: v.format === 'postgres-csv' ? csvLine(v, s, m) : jsonLine(v, s, m) }];
  const out: string[] = [];
  let size = 0;
  let time = Date.UTC(2026, 10, 27, 10, 0, 0) + d.int(0, 1000);
  /** The last error of each kind of process (an apply worker's conflict is no client's error). */
  const last = new Map<string, Message>();
  let pending: Line[] = [];
  while (size < v.targetBytes) {
    time += d.chance(0.3) ? 0 : d.int(0, d.chance(0.1) ? 70_000 : 900);
    const s = d.pick(sessions);
    let m: Message;
    if (v.large && d.chance(0.9)) {
      const message = `duration: 0.0${d.int(10, 99)} ms  statement: SELECT id, name FROM users WHERE id = ${d.int(1, 1e6)}`;
      m = { sev: 'LOG', sqlstate: '00000', message, lang: 'en', time, lineNo: ++s.lineNo, tag: 'SELECT', lxid: 1, xid: 0, queryId: 0 };
    } else if (last.has(s.backendType) && d.chance(v.repeats)) {
      m = { ...structuredClone(last.get(s.backendType)!), time, lineNo: ++s.lineNo };
    } else {
      const made = makeMessage(d, s, options, d.chance(0.8) ? s.lang : d.pick(v.langs));
      const ids = { tag: d.pick(['INSERT', 'SELECT', 'idle', 'UPDATE']), lxid: d.int(1, 9999), xid: d.chance(0.5) ? 0 : d.int(700, 99999) };
      m = { ...made, time, lineNo: ++s.lineNo, ...ids, queryId: d.chance(0.7) ? 0 : d.int(-1e9, 1e9) };
      if (m.sev === 'ERROR') last.set(s.backendType, m);
    }
    let lines = linesOf(s, m);
    if (v.interleave && pending.length > 0 && d.chance(0.5)) {
      lines = mix(d, lines, pending);
      pending = [];
    } else if (v.interleave && d.chance(0.3)) {
      pending = lines;
      continue;
    }
    for (const line of lines) {
      let text = v.mutate && d.chance(v.mutate) ? line.text.slice(0, line.keep) + mutate(d, line.text.slice(line.keep)) : line.text;
      if (v.crlf === 'some' && d.chance(0.1)) text += '\r';
      out.push(text);
      size += Buffer.byteLength(text) + 1;
    }
    if (v.stray && d.chance(0.03)) out.push(d.pick(['sh: 1: cp: not found', '\tstray tab line', '', '\t_seq stray']));
  }
  out.push(...pending.map((line) => line.text));
  const text = out.join('\n') + '\n';
  return { variant: v, text: Buffer.from(v.crlf === 'all' ? text.replace(/\n/g, '\r\n') : text) };
}

/** A physical line, and how many of its first characters a mutation leaves alone (stderr: the prefix and marker, or a continuation's TAB). */
interface Line {
  keep: number;
  text: string;
}

/** The lines of two messages mixed, line by line, each message's TAB lines staying with the line they continue. */
function mix(d: Draws, a: Line[], b: Line[]): Line[] {
  const mixed: Line[] = [];
  while (a.length || b.length) {
    const from = !b.length ? a : !a.length ? b : d.chance(0.5) ? a : b;
    mixed.push(from.shift()!);
    while (from.length && from[0]!.text.startsWith('\t')) mixed.push(from.shift()!);
  }
  return mixed;
}

/**
 * The physical lines of a message in stderr: each field's line with its prefix (%l counting on) and
 * marker, a message's own newlines as TAB lines. A mutation spares the prefix and the marker: a line
 * garbled there ends the message for replay while the full parser reads on (see the differential test).
 */
function stderrLines(v: Variant, s: Session, m: Message): Line[] {
  const lines: Line[] = [];
  const add = (marker: string, text: string) => {
    if (lines.length > 0) m = { ...m, lineNo: ++s.lineNo };
    const prefix = renderPrefix(v.prefix, s, m, v.zone) + marker;
    text.split('\n').forEach((part, i) => lines.push(i === 0 ? { keep: prefix.length, text: prefix + part } : { keep: 1, text: `\t${part}` }));
  };
  const marker = (english: string) => tr(m.lang, `${english}:  `);
  add(`${tr(m.lang, m.sev)}:  `, `${v.verbose ? `${m.sqlstate}: ` : ''}${m.message}`);
  if (m.detail !== undefined) add(marker('DETAIL'), m.detail);
  if (m.hint !== undefined) add(marker('HINT'), m.hint);
  if (m.query !== undefined) add(marker('QUERY'), m.query);
  if (m.context !== undefined) add(marker('CONTEXT'), m.context);
  if (v.verbose && m.location) {
    const location = render(tr(m.lang, 'LOCATION:  %s, %s:%d\n'), m.location.map(String)).trimEnd();
    add(location.slice(0, location.indexOf(':  ') + 3), location.slice(location.indexOf(':  ') + 3));
  }
  if (m.statement !== undefined) add(marker('STATEMENT'), m.statement);
  return lines;
}

const csvQ = (value: string | undefined) => (value === undefined ? '' : `"${value.replace(/"/g, '""')}"`);

/** A csvlog record (PostgreSQL 14-15's 26 columns). */
function csvLine(v: Variant, s: Session, m: Message): string {
  const bg = s.background;
  return [
    ...[formatTime(m.time, v.zone, true), bg ? '' : csvQ(s.user), bg ? '' : csvQ(s.db), String(s.pid)],
    bg ? '' : csvQ(s.host === '[local]' ? s.host : `${s.host}:${s.port}`),
    ...[sessionId(s), String(m.lineNo), csvQ(bg ? '' : m.tag), formatTime(s.start, v.zone, false), bg ? '' : `${s.backendId}/${m.lxid}`, String(m.xid)],
    ...[tr(m.lang, m.sev), m.sqlstate, csvQ(m.message), csvQ(m.detail), csvQ(m.hint), csvQ(m.query), '', csvQ(m.context), csvQ(m.statement), ''],
    v.verbose && m.location ? csvQ(`${m.location[0]}, ${m.location[1]}:${m.location[2]}`) : '',
    ...[csvQ(bg ? undefined : s.app), csvQ(s.backendType), '', String(m.queryId)],
  ].join(',');
}

/** A jsonlog record, its keys in PostgreSQL's order, the absent ones left out. */
function jsonLine(v: Variant, s: Session, m: Message): string {
  const session = !s.background;
  const o: Record<string, unknown> = { timestamp: formatTime(m.time, v.zone, true), ...(session ? { user: s.user, dbname: s.db } : {}), pid: s.pid };
  if (session && s.host !== '[local]') Object.assign(o, { remote_host: s.host, remote_port: s.port });
  Object.assign(o, { session_id: sessionId(s), line_num: m.lineNo, ...(session ? { ps: m.tag } : {}), session_start: formatTime(s.start, v.zone, false) });
  Object.assign(o, { ...(session ? { vxid: `${s.backendId}/${m.lxid}` } : {}), txid: m.xid, error_severity: v.jsonTranslated ? tr(m.lang, m.sev) : m.sev });
  Object.assign(o, {
    state_code: m.sqlstate,
    message: m.message,
    detail: m.detail,
    hint: m.hint,
    internal_query: m.query,
    context: m.context,
    statement: m.statement,
  });
  if (v.verbose && m.location) Object.assign(o, { func_name: m.location[0], file_name: m.location[1], file_line_num: m.location[2] });
  Object.assign(o, { application_name: session && s.app ? s.app : undefined, backend_type: s.backendType, query_id: m.queryId });
  return JSON.stringify(o);
}

/** 1-4 edits of a line's text: characters deleted, inserted (quotes, backslashes, TAB, NUL, CR, U+FFFD, any below U+3000). */
function mutate(d: Draws, text: string): string {
  const chars = [...text];
  for (let edits = d.int(1, 4); edits > 0; edits--) {
    const at = d.int(0, chars.length);
    const choice = d();
    if (choice < 0.3) chars.splice(at, 1);
    else if (choice < 0.6) chars.splice(at, 0, d.pick(['"', '\\', '{', '}', ',', '\t', '\u0000', '\uFFFD', '%', '\r', '9']));
    else if (choice < 0.8) chars.splice(at, 0, String.fromCharCode(d.int(0, 0x2fff)));
    else chars.splice(at, d.int(0, 5));
  }
  return chars.join('');
}
