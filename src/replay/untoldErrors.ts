import { detectIncident, TRANSLATED_UNIQUE_VIOLATIONS } from '../detect/detectIncident.js';
import { StderrPrefixParser } from '../formats/StderrPrefixParser.js';
import { readHead } from './fileOrder.js';

/** What is looked at of each file: a log's language is the same throughout, unless lc_messages changed. */
export const UNTOLD_HEAD_BYTES = 1024 * 1024;
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
  /** Duplicate key errors in another language among the file's first UNTOLD_HEAD_BYTES. */
  errors: number;
  /** The first one's message (the name of an index, no row data). */
  sample: string;
}

/**
 * The duplicate key errors a stderr log holds in another language where its log_line_prefix gives
 * no SQLSTATE (no %e): records detection does not act on (a translated message is recognised by its
 * SQLSTATE only, see TRANSLATED_UNIQUE_VIOLATIONS), so a replay would report none of them and look
 * healthy. Looked for in the file's first MiB (decompressed), each line holding a translated
 * message read by the daemon's parser: the error's own line, not a statement that quotes it, and
 * not a verbose message (its SQLSTATE before the text: recognised). Undefined when there are none.
 */
export async function untoldErrors(file: string, logLinePrefix: string): Promise<UntoldErrors | undefined> {
  const head = await readHead(file, UNTOLD_HEAD_BYTES).catch(() => Buffer.alloc(0));
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
  let found: UntoldErrors | undefined;
  for (const start of [...lineStarts].sort((a, b) => a - b)) {
    const newline = head.indexOf(NEWLINE, start);
    // The last line, cut short by the head's end: left out.
    if (newline === -1 && head.length === UNTOLD_HEAD_BYTES) continue;
    const line = head.toString('utf8', start, newline === -1 ? head.length : newline).replace(/\r$/, '');
    const record = parser.recordOfLine(line);
    if (!record || record.severity !== 'ERROR' || detectIncident(record) !== undefined) continue;
    if (!TRANSLATED_UNIQUE_VIOLATIONS.some((text) => record.message.startsWith(text))) continue;
    found ??= { errors: 0, sample: record.message.slice(0, 200) };
    found.errors++;
  }
  return found;
}
