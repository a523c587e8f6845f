/**
 * Compiles a PostgreSQL `log_line_prefix` into a regular expression that recognises the start of a
 * log line and captures the fields a record needs (pid, user, database, SQLSTATE, time).
 *
 * The prefix is compiled, not guessed: a line that does not match the configured prefix is a
 * continuation or noise, never a record with made-up fields.
 */

/** What each escape can expand to. Named groups capture the fields the pipeline uses. */
const ESCAPES: Record<string, { pattern: string; group?: string }> = {
  a: { pattern: '.*?', group: 'application' },
  u: { pattern: '[^\\s]*?', group: 'user' },
  d: { pattern: '[^\\s]*?', group: 'database' },
  r: { pattern: '\\S*?' },
  h: { pattern: '\\S*?' },
  b: { pattern: '.*?' },
  p: { pattern: '\\d+', group: 'pid' },
  P: { pattern: '\\d*' },
  t: { pattern: '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?: [^\\s\\]]+)?', group: 'time' },
  m: { pattern: '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}(?: [^\\s\\]]+)?', group: 'time' },
  n: { pattern: '\\d+\\.\\d{3}', group: 'time' },
  i: { pattern: '.*?' },
  e: { pattern: '[0-9A-Z]{5}', group: 'sqlstate' },
  c: { pattern: '[0-9a-f]+\\.[0-9a-f]+' },
  l: { pattern: '\\d+' },
  s: { pattern: '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?: [^\\s\\]]+)?' },
  v: { pattern: '(?:-?\\d+/\\d+)?' },
  x: { pattern: '\\d+' },
  Q: { pattern: '-?\\d+' },
};

/** Severities that start a message; everything a record is made of begins with one of them. */
export const SEVERITIES = [
  'DEBUG1', 'DEBUG2', 'DEBUG3', 'DEBUG4', 'DEBUG5', 'DEBUG',
  'INFO', 'NOTICE', 'WARNING', 'ERROR', 'LOG', 'FATAL', 'PANIC',
  'DETAIL', 'HINT', 'QUERY', 'CONTEXT', 'LOCATION', 'STATEMENT',
] as const;

export class LogLinePrefixError extends Error {}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * Returns a RegExp matching `<prefix><SEVERITY>:  <message>` with named groups
 * `severity`, `message` and whichever of `time pid user database application sqlstate` the prefix has.
 */
export function compileLogLinePrefix(prefix: string): RegExp {
  const parts: string[] = [];
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
    }
    parts.push(padding ? ` *${pattern} *` : pattern);
  }
  if (optionalFrom >= 0) {
    parts.splice(optionalFrom, parts.length - optionalFrom, `(?:${parts.slice(optionalFrom).join('')})?`);
  }
  const severity = `(?<severity>${SEVERITIES.join('|')})`;
  return new RegExp(`^${parts.join('')}${severity}:  (?<message>.*)$`, 's');
}
