import { severityMarkers } from './severity.js';

/** A time zone after %t, %m, %s (an abbreviation or an offset). */
const ZONE = '(?: [^\\s\\]]{1,64})?';

/**
 * Compiles a PostgreSQL `log_line_prefix` into a regular expression that recognises the start of a
 * log line and captures the fields a record needs (pid, user, database, SQLSTATE, time).
 *
 * The prefix is compiled, not guessed: a line that does not match the configured prefix is a
 * continuation or noise, never a record with made-up fields.
 */

/**
 * What each escape can expand to. Named groups capture the fields the pipeline uses; `unread`: no
 * record field is read from it (replay's templates let its digits differ, see compileLogLinePrefix).
 * Every part has a bound (PostgreSQL's own: names are at most NAMEDATALEN-1 = 63 bytes, application_name is
 * cut there too, and PG 16+ writes its non-ASCII bytes as \xNN, up to 4 characters each; a host
 * name is at most NI_MAXHOST): with only bounded parts before the message, the
 * expression's backtracking is bounded by the prefix, whatever a line holds, and a line costs
 * time linear in its length (see test/formats/fuzz.test.ts for the budget).
 */
const ESCAPES: Record<string, { pattern: string; group?: string; unread?: true }> = {
  a: { pattern: '.{0,256}?', group: 'application' },
  u: { pattern: '[^\\s]{0,64}?', group: 'user' },
  d: { pattern: '[^\\s]{0,64}?', group: 'database' },
  r: { pattern: '\\S{0,1100}?', unread: true },
  h: { pattern: '\\S{0,1100}?', unread: true },
  b: { pattern: '.{0,64}?', group: 'backendType' },
  p: { pattern: '\\d{1,10}', group: 'pid' },
  P: { pattern: '\\d{0,10}', unread: true },
  t: { pattern: `\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d${ZONE}`, group: 'time' },
  m: { pattern: `\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}${ZONE}`, group: 'time' },
  n: { pattern: '\\d{1,20}\\.\\d{3}', group: 'time' },
  i: { pattern: '.{0,64}?', unread: true },
  e: { pattern: '[0-9A-Z]{5}', group: 'sqlstate' },
  c: { pattern: '[0-9a-f]{1,16}\\.[0-9a-f]{1,16}', unread: true },
  l: { pattern: '\\d{1,20}', unread: true },
  s: { pattern: `\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d${ZONE}`, unread: true },
  v: { pattern: '(?:-?\\d{1,10}/\\d{1,20})?', unread: true },
  x: { pattern: '\\d{1,20}', unread: true },
  Q: { pattern: '-?\\d{1,20}', unread: true },
};

/** Severities that start a message; everything a record is made of begins with one of them. */
export const SEVERITIES = [
  'DEBUG1',
  'DEBUG2',
  'DEBUG3',
  'DEBUG4',
  'DEBUG5',
  'DEBUG',
  'INFO',
  'NOTICE',
  'WARNING',
  'ERROR',
  'LOG',
  'FATAL',
  'PANIC',
  'DETAIL',
  'HINT',
  'QUERY',
  'CONTEXT',
  'LOCATION',
  'STATEMENT',
] as const;

/**
 * Every marker a message can start with, English and translated, as printed: the word, then the
 * separator (`ERROR:  `, `FEHLER:  `, `ASTUCE :  `, `쿼리:`), with the English word it stands for.
 */
const MARKERS = new Map(severityMarkers().map(({ marker, english }) => [marker, english]));
/** The words of all markers, longest first (an alternation tries them in order). */
export const MARKER_WORDS = [...new Set([...MARKERS.keys()].map((marker) => marker.slice(0, marker.lastIndexOf(':')).trimEnd()))].sort(
  (a, b) => b.length - a.length,
);

/**
 * The English severity and the message of a matched line: the marker (`groups.severity` and
 * `groups.separator`) must be one PostgreSQL prints; spaces past the marker belong to the message.
 * Undefined for a word with a separator no catalog has (`ERROR:x`).
 */
export function markerOf(groups: Record<string, string | undefined>): { severity: string; message: string } | undefined {
  const word = groups.severity ?? '';
  const separator = groups.separator ?? '';
  for (let cut = separator.length; cut > 0; cut--) {
    const english = MARKERS.get(word + separator.slice(0, cut));
    if (english !== undefined) return { severity: english, message: separator.slice(cut) + (groups.message ?? '') };
  }
  return undefined;
}

export class LogLinePrefixError extends Error {}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** compileLogLinePrefix's groups for the fields no record field is read from: unread0, unread1, ... */
export const UNREAD_GROUP = 'unread';

/**
 * Returns a RegExp matching `<prefix><SEVERITY>:  <message>` with named groups `severity` (the word
 * as printed, in any language of PostgreSQL's catalogs), `separator`, `message` and whichever of
 * `time pid user database application backendType sqlstate` the prefix has. markerOf() checks the
 * marker and gives the English severity. `unreadGroups`: a group too for each field no record field
 * is read from (%r, %h, %c, %x, ...: UNREAD_GROUP and its number), where replay's templates
 * (src/replay/recordAt.ts) let digits differ; the parsers do without.
 */
export function compileLogLinePrefix(prefix: string, options: { unreadGroups?: boolean } = {}): RegExp {
  const parts: string[] = [];
  let unread = 0;
  const used = new Set<string>();
  let optionalFrom = -1;
  for (let i = 0; i < prefix.length; i++) {
    const ch = prefix[i]!;
    if (ch !== '%') {
      parts.push(escapeRegExp(ch));
      continue;
    }
    // Padding (%-10u, %5p) shifts a field with spaces; accept any amount of them around it.
    const padding = /^-?\d+/.exec(prefix.slice(i + 1));
    if (padding) i += padding[0].length;
    const escape = prefix[++i];
    if (escape === undefined) throw new LogLinePrefixError(`log_line_prefix ends with a lone '%': ${JSON.stringify(prefix)}`);
    if (escape === '%') {
      parts.push('%');
      continue;
    }
    if (escape === 'q') {
      // Everything after %q is printed only by session processes; background workers stop here.
      optionalFrom = parts.length;
      continue;
    }
    const spec = ESCAPES[escape];
    if (!spec) {
      // PostgreSQL prints nothing for an unknown escape.
      continue;
    }
    let pattern = spec.pattern;
    if (spec.group && !used.has(spec.group)) {
      used.add(spec.group);
      pattern = `(?<${spec.group}>${pattern})`;
    } else if (spec.unread && options.unreadGroups) pattern = `(?<${UNREAD_GROUP}${unread++}>${pattern})`;
    // Padding shifts a field by at most its width: bounded, as every other part.
    const pad = padding ? ` {0,${Math.min(Math.abs(Number(padding[0])), 1024)}}` : '';
    parts.push(`${pad}${pattern}${pad}`);
  }
  if (optionalFrom >= 0) {
    parts.splice(optionalFrom, parts.length - optionalFrom, `(?:${parts.slice(optionalFrom).join('')})?`);
  }
  const severity = `(?<severity>${MARKER_WORDS.map(escapeRegExp).join('|')})(?<separator> ?: {0,3})`;
  return new RegExp(`^${parts.join('')}${severity}(?<message>.*)$`, 's');
}

/**
 * The literal text the prefix prints right around the pid (`%m [%p] ` gives ` [` and `] `), so the
 * lines of one backend can be found in raw bytes by `before + pid + after`. Undefined without %p,
 * with a padded %p (its spaces vary), or with %p after %q (background processes print no pid).
 */
export function pidMarkOf(prefix: string): { before: string; after: string } | undefined {
  let before = '';
  let after: string | undefined;
  let optional = false;
  for (let i = 0; i < prefix.length; i++) {
    if (prefix[i] !== '%' || prefix[i + 1] === '%') {
      const literal = prefix[i]!;
      if (literal === '%') i++;
      if (after === undefined) before += literal;
      else after += literal;
      continue;
    }
    if (after !== undefined) return { before, after };
    const padding = /^-?\d+/.exec(prefix.slice(i + 1))?.[0] ?? '';
    i += 1 + padding.length;
    const escape = prefix[i];
    if (escape === 'q') optional = true;
    if (escape === 'p') {
      if (optional || padding !== '') return undefined;
      after = '';
    } else {
      before = '';
    }
  }
  return after === undefined ? undefined : { before, after };
}

/** Whether the literal text of a log_line_prefix (what is not an escape) holds a digit. */
export function prefixLiteralHasDigit(prefix: string): boolean {
  let from = 0;
  for (const { start, end } of escapesOf(prefix)) {
    if (/[0-9]/.test(prefix.slice(from, start))) return true;
    from = end;
  }
  return /[0-9]/.test(prefix.slice(from));
}

/**
 * Whether a log_line_prefix prints the SQLSTATE (%e, padded or not; %%e is a literal): then a
 * stderr record carries it, and a translated message is recognised by it.
 */
export function printsSqlstate(prefix: string): boolean {
  return escapeAt(prefix, 'e') !== -1;
}

/**
 * The prefix with %e added, where it is printed for every line: before %q (background processes
 * stop there), else at the end. What a fix proposes for a server whose messages are translated.
 */
export function withSqlstate(prefix: string): string {
  if (printsSqlstate(prefix)) return prefix;
  const q = escapeAt(prefix, 'q');
  if (q !== -1) return `${prefix.slice(0, q)}%e ${prefix.slice(q)}`;
  return `${prefix}${prefix === '' || prefix.endsWith(' ') ? '' : ' '}%e `;
}

/** Where the escape %<letter> (padded or not) first begins in a prefix, -1 when it has none. */
function escapeAt(prefix: string, letter: string): number {
  for (const escape of escapesOf(prefix)) if (escape.letter === letter) return escape.start;
  return -1;
}

/** Each escape of a prefix, its padding (%-10u) included: where it begins and ends, and its letter (%% prints a '%'). */
function* escapesOf(prefix: string): Generator<{ start: number; end: number; letter: string | undefined }> {
  for (let i = 0; i < prefix.length; i++) {
    if (prefix[i] !== '%') continue;
    const start = i++;
    while (i < prefix.length && (prefix[i] === '-' || (prefix[i]! >= '0' && prefix[i]! <= '9'))) i++;
    yield { start, end: i + 1, letter: prefix[i] };
  }
}
