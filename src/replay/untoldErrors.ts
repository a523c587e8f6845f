import { detectIncident, TRANSLATED_UNIQUE_VIOLATIONS } from '../detect/detectIncident.js';
import { compileLogLinePrefix, markerOf, printsSqlstate } from '../formats/logLinePrefix.js';
import { severityMarkers, TRANSLATED_LOG_STARTS } from '../formats/severity.js';
import { StderrPrefixParser } from '../formats/StderrPrefixParser.js';
import { readHead } from './fileOrder.js';

/** What is looked at of each file: a log's language is the same throughout, unless lc_messages changed. */
export const UNTOLD_HEAD_BYTES = 1024 * 1024;
/** What of it is read line by line for the language its records are written in (a few hundred records). */
const LANGUAGE_HEAD_BYTES = 64 * 1024;
/**
 * The needles, as the log's bytes hold them, each with its first byte that is not ASCII (Italian's
 * has none): a head without that byte (an English log's) cannot hold the needle, and a search for
 * one byte (memchr) is ~20x cheaper than for the needle.
 */
const TEXTS = TRANSLATED_UNIQUE_VIOLATIONS.map((text) => {
  const bytes = Buffer.from(text);
  return { bytes, lead: bytes.find((byte) => byte >= 0x80) };
});
const NEWLINE = 0x0a;

export interface UntoldErrors {
  /** Records of the log's prefix that detection does not act on: translated, and no SQLSTATE (no %e). */
  noSqlstate?: Found;
  /** Error lines the prefix does not match (the server's prefix changed while the file was written). */
  unmatched?: Found;
  /**
   * Without %e and without those: records written in another language (a translated marker, a
   * statement's or duration's LOG in its words) among the file's first records. Its errors, further
   * on, would be none of detection's either: a report of none must not look healthy.
   */
  translated?: Found;
}

interface Found {
  /** How many among the file's first UNTOLD_HEAD_BYTES. */
  errors: number;
  /** The first one's message, or its line up to the message (the name of an index, no row data). */
  sample: string;
}

/** How a translated ERROR line ends right before its message (`FEHLER:  `, `ERREUR:  `): every language's. */
const ERROR_MARKERS = severityMarkers()
  .filter(({ english }) => english === 'ERROR')
  .map(({ marker }) => marker);

/**
 * The duplicate key errors in another language that a replay of a stderr log would not count, and
 * so report none of and look healthy: records whose prefix gives no SQLSTATE (no %e; a translated
 * message is recognised by its SQLSTATE only, see TRANSLATED_UNIQUE_VIOLATIONS), and error lines
 * the prefix does not match at all (written before or after the server's prefix changed: the
 * English ones are counted by the scan, unreadableLinesProblem). Looked for in the file's first MiB
 * (decompressed), each line holding a translated message read by the daemon's parser: the error's
 * own line, not a statement that quotes it, and not a verbose message (its SQLSTATE before the
 * text: recognised). Without either, and without %e: whether the file's first records are written
 * in another language (translatedIn), its errors further on then not recognised either. Undefined
 * when there is nothing to say.
 */
export async function untoldErrors(file: string, logLinePrefix: string): Promise<UntoldErrors | undefined> {
  return untoldErrorsIn(await readHead(file, UNTOLD_HEAD_BYTES).catch(() => Buffer.alloc(0)), file, logLinePrefix);
}

/** untoldErrors of a log's first UNTOLD_HEAD_BYTES (a pipe's, which its scan hands on: scanLog's onPipeHead). */
export function untoldErrorsIn(head: Buffer, file: string, logLinePrefix: string): UntoldErrors | undefined {
  const untold = errorsIn(head, file, logLinePrefix);
  if (untold || printsSqlstate(logLinePrefix)) return untold;
  const translated = translatedIn(head.subarray(0, LANGUAGE_HEAD_BYTES), logLinePrefix);
  return translated && { translated };
}

/**
 * The records among `head`'s lines written in another language: their marker translated
 * (`FEHLER:  `, `ANWEISUNG:  `), or a LOG of a statement or duration in its words (`Anweisung: `),
 * with the first one's marker and words (no statement text). None when the records carry their
 * SQLSTATE in a verbose message (`FEHLER:  23505: `): detection recognises them by it.
 */
function translatedIn(head: Buffer, logLinePrefix: string): Found | undefined {
  const matcher = compileLogLinePrefix(logLinePrefix);
  let found: Found | undefined;
  for (let start = 0; start < head.length;) {
    const newline = head.indexOf(NEWLINE, start);
    // The last line, cut short by the head's end: left out.
    if (newline === -1) break;
    const groups = matcher.exec(head.toString('utf8', start, Math.min(newline, start + 4096)))?.groups;
    start = newline + 1;
    const marker = groups && markerOf(groups);
    if (!marker) continue;
    if (VERBOSE.test(marker.message)) return undefined;
    const words = marker.severity === 'LOG' ? TRANSLATED_LOG_STARTS.find((text) => marker.message.startsWith(text)) : undefined;
    if (groups.severity === marker.severity && words === undefined) continue;
    if (!found) {
      // The marker as printed: the separator's spaces past it belong to the message (markerOf).
      const separator = groups.separator ?? '';
      const printed = `${groups.severity ?? ''}${separator.slice(0, separator.length - (marker.message.length - (groups.message ?? '').length))}`;
      found = { errors: 0, sample: `${printed}${words ?? ''}` };
    }
    found.errors++;
  }
  return found;
}

/** A verbose message's SQLSTATE before its text (log_error_verbosity = verbose). */
const VERBOSE = /^[0-9A-Z]{5}: /;

/** untoldErrors's noSqlstate and unmatched, among `head`'s lines. */
function errorsIn(head: Buffer, file: string, logLinePrefix: string): UntoldErrors | undefined {
  const lineStarts = new Set<number>();
  const holds = new Map<number, boolean>();
  for (const { bytes, lead } of TEXTS) {
    if (lead !== undefined) {
      let held = holds.get(lead);
      if (held === undefined) holds.set(lead, (held = head.includes(lead)));
      if (!held) continue;
    }
    for (let at = head.indexOf(bytes); at !== -1; at = head.indexOf(bytes, at + bytes.length)) lineStarts.add(head.lastIndexOf(NEWLINE, at) + 1);
  }
  if (lineStarts.size === 0) return undefined;
  const parser = new StderrPrefixParser(logLinePrefix, file, () => {});
  const matcher = compileLogLinePrefix(logLinePrefix);
  const untold: UntoldErrors = {};
  const count = (kind: keyof UntoldErrors, sample: string) => {
    const found = (untold[kind] ??= { errors: 0, sample: sample.slice(0, 200) });
    found.errors++;
  };
  for (const start of [...lineStarts].sort((a, b) => a - b)) {
    const newline = head.indexOf(NEWLINE, start);
    // The last line, cut short by the head's end: left out.
    if (newline === -1 && head.length === UNTOLD_HEAD_BYTES) continue;
    const line = head.toString('utf8', start, newline === -1 ? head.length : newline).replace(/\r$/, '');
    // A TAB line goes on with a record before it (a statement's text).
    if (line.startsWith('\t')) continue;
    const record = parser.recordOfLine(line);
    if (record) {
      if (record.severity === 'ERROR' && detectIncident(record) === undefined && TRANSLATED_UNIQUE_VIOLATIONS.some((text) => record.message.startsWith(text)))
        count('noSqlstate', record.message);
      continue;
    }
    // No first line of a record: a further line of one (ANWEISUNG:  quoting the message), or no line of this prefix at all.
    const groups = matcher.exec(line.length > 4096 ? line.slice(0, 4096) : line)?.groups;
    if (groups && markerOf(groups)) continue;
    // Counted when the message follows an ERROR marker, as the server writes it.
    const at = Math.min(...TRANSLATED_UNIQUE_VIOLATIONS.map((text) => line.indexOf(text)).filter((i) => i !== -1));
    if (ERROR_MARKERS.some((marker) => line.startsWith(marker, at - marker.length))) count('unmatched', line.slice(0, at));
  }
  return untold.noSqlstate || untold.unmatched ? untold : undefined;
}
