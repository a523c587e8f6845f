import { detectIncident, type Incident } from '../detect/detectIncident.js';
import type { ScannedFormat } from '../detect/scanner.js';
import { CsvlogParser } from '../formats/CsvlogParser.js';
import { JsonlogParser } from '../formats/JsonlogParser.js';
import { compileLogLinePrefix } from '../formats/logLinePrefix.js';
import type { LogRecord } from '../formats/LogRecord.js';
import { severityMarkers } from '../formats/severity.js';
import { StderrPrefixParser } from '../formats/StderrPrefixParser.js';

/**
 * How far after a candidate line its record may reach: the lines read to complete it (stderr's
 * DETAIL, CONTEXT, LOCATION; a csvlog record's quoted newlines). The same bound wherever the file
 * is cut into chunks or ranges, so that every way of reading it finds the same records.
 */
export const RECORD_REACH = 256 * 1024;
/** stderr: lines of other backends looked past, at most, when the prefix cannot tell a message's own lines apart (%l). */
const MAX_FOREIGN_LINES = 64;

const NEWLINE = 0x0a;
const TAB = 0x09;

/**
 * Reads the record that begins at a candidate line with the format's own parser, and tells the
 * incident it holds, if any. Only that record: lines after it are read as far as it goes on, and
 * records of other lines are the business of their own candidates.
 */
export class RecordReader {
  private readonly stderr: { parser: StderrPrefixParser; matcher: RegExp; sameMessagePrefix: boolean } | undefined;
  private readonly json: JsonlogParser | undefined;
  private found: LogRecord[] = [];
  /** readStderr's further lines ([start, end) pairs), reused from one candidate to the next. */
  private readonly further: number[] = [];

  constructor(
    private readonly format: ScannedFormat,
    logLinePrefix: string,
    private readonly source: string,
  ) {
    const sink = (record: LogRecord) => void this.found.push(record);
    if (format === 'postgres-stderr') {
      // PostgreSQL writes every line of one message with the same prefix, unless the prefix has %l
      // (a number per line): then lines are told apart by their pid, more slowly.
      this.stderr = {
        parser: new StderrPrefixParser(logLinePrefix, source, sink),
        matcher: compileLogLinePrefix(logLinePrefix),
        sameMessagePrefix: !/%-?\d*l/.test(logLinePrefix),
      };
    }
    if (format === 'postgres-json') this.json = new JsonlogParser(source, sink);
  }

  /** The incident of the record at bytes[start] (absolute offset `offset`), reading no further than `limit`. */
  incidentAt(bytes: Buffer, start: number, limit: number, offset: number): Incident | undefined {
    this.found.length = 0;
    const end = Math.min(limit, start + RECORD_REACH);
    if (this.format === 'postgres-json') {
      const newline = bytes.indexOf(NEWLINE, start);
      this.json!.push(lineAt(bytes, start, newline === -1 || newline >= end ? end : newline), { offset });
    } else if (this.format === 'postgres-csv') this.readCsv(bytes, start, end, offset);
    else this.readStderr(bytes, start, end, offset);
    const record = recordAtOffset(this.found, offset);
    return record ? detectIncident(record) : undefined;
  }

  private readCsv(bytes: Buffer, start: number, end: number, offset: number): void {
    const parser = new CsvlogParser(this.source, (record) => void this.found.push(record));
    let first = true;
    for (let at = start; at < end && this.found.length === 0;) {
      const newline = bytes.indexOf(NEWLINE, at);
      const lineEnd = newline === -1 || newline >= end ? end : newline;
      parser.push(lineAt(bytes, at, lineEnd), first ? { offset, boundary: 'start' } : { offset: offset + (at - start) });
      first = false;
      at = lineEnd + 1;
    }
  }

  /**
   * The candidate line, then the lines that go on with its message: TAB continuation lines, and the
   * lines PostgreSQL wrote with the same message (same prefix), up to the first line that is
   * neither. Of those, only the ones detection reads are parsed: CONTEXT (an apply worker's),
   * LOCATION (verbose SQLSTATEs), DETAIL when the message names a conflict; STATEMENT, HINT and
   * QUERY lines (and their continuations) are passed over. Most candidates (an ERROR line followed
   * by its DETAIL and STATEMENT) are so parsed once, from what the ERROR line already says.
   */
  private readStderr(bytes: Buffer, start: number, end: number, offset: number): void {
    const { parser, sameMessagePrefix } = this.stderr!;
    let newline = bytes.indexOf(NEWLINE, start);
    let lineEnd = newline === -1 || newline >= end ? end : newline;
    const first = lineAt(bytes, start, lineEnd);
    parser.push(first, { offset });
    parser.flush();
    const alone = recordAtOffset(this.found, offset);
    if (!alone) return;
    if (!sameMessagePrefix) {
      this.found.length = 0;
      this.readStderrByPid(bytes, start, lineEnd, end, offset, first);
      return;
    }
    const prefixBytes = prefixLength(first, alone.message, lineEnd - start);
    const wantDetail = first.includes('conflict=');
    /** [start, end) of the further lines detection reads. */
    const further = this.further;
    further.length = 0;
    let passingOver = false;
    for (let at = lineEnd + 1; at < end; at = lineEnd + 1) {
      newline = bytes.indexOf(NEWLINE, at);
      lineEnd = newline === -1 || newline >= end ? end : newline;
      if (bytes[at] === TAB) {
        if (!passingOver) further.push(at, lineEnd);
        continue;
      }
      if (!samePrefix(bytes, start, at, prefixBytes)) break;
      const marker = markerAt(bytes, at + prefixBytes);
      // Not a secondary line (this backend's next message with the same prefix: a %t time) ends it.
      if (marker === undefined) break;
      passingOver = marker === 'STATEMENT' || marker === 'HINT' || marker === 'QUERY' || (marker === 'DETAIL' && !wantDetail);
      if (!passingOver) further.push(at, lineEnd);
    }
    if (further.length === 0) return;
    // Lines that may change what the record says: read it again, whole.
    this.found.length = 0;
    parser.push(first, { offset });
    for (let i = 0; i < further.length; i += 2) parser.push(lineAt(bytes, further[i]!, further[i + 1]!), { offset: offset + (further[i]! - start) });
    parser.flush();
  }

  /** With %l in the prefix (a number per line): the lines of this backend, looking past a few of other backends'. */
  private readStderrByPid(bytes: Buffer, start: number, firstEnd: number, end: number, offset: number, first: string): void {
    const { parser, matcher } = this.stderr!;
    const pid = matcher.exec(first.length > 4096 ? first.slice(0, 4096) : first)?.groups?.pid;
    parser.push(first, { offset });
    let foreign = 0;
    for (let at = firstEnd + 1; at < end && pid !== undefined;) {
      const newline = bytes.indexOf(NEWLINE, at);
      const lineEnd = newline === -1 || newline >= end ? end : newline;
      const lineStart = at;
      at = lineEnd + 1;
      const line = lineAt(bytes, lineStart, lineEnd);
      if (bytes[lineStart] !== TAB && !line.slice(0, 256).includes(pid)) {
        if (++foreign > MAX_FOREIGN_LINES) break;
        continue;
      }
      parser.push(line, { offset: offset + (lineStart - start) });
      if (this.found.some((r) => r.offset === offset)) break;
    }
    parser.flush();
  }
}

/**
 * The bytes of a stderr line's prefix, from the line and its record's message: back from where the
 * message starts over the separator and the severity word. Never more than the prefix (a shorter
 * one only lets more lines be looked at).
 */
function prefixLength(line: string, message: string, lineBytes: number): number {
  let at = line.length - message.length;
  if (at < 0 || !line.endsWith(message)) return 0;
  while (at > 0 && (line[at - 1] === ' ' || line[at - 1] === ':')) at--;
  while (at > 0 && line[at - 1] !== ' ' && line[at - 1] !== ']' && line[at - 1] !== ')') at--;
  // As many characters as bytes and no byte decoded as U+FFFD: all ASCII (the usual line), so the
  // characters are the bytes; otherwise count as before (a replacement character counts 3).
  return line.length === lineBytes && line.lastIndexOf('\uFFFD', at) === -1 ? at : Buffer.byteLength(line.slice(0, at));
}

/** The record of `found` read at `offset` (a loop: no closure per candidate). */
function recordAtOffset(found: LogRecord[], offset: number): LogRecord | undefined {
  for (let i = 0; i < found.length; i++) if (found[i]!.offset === offset) return found[i];
  return undefined;
}

/** The English severity of the marker printed at `at` (`DETAIL:  `, `ANWEISUNG:  `, ...), if it is one of the secondary ones. */
function markerAt(bytes: Buffer, at: number): string | undefined {
  for (const { marker, english } of SECONDARY_MARKERS.get(bytes[at]!) ?? []) {
    if (at + marker.length <= bytes.length && bytes.compare(marker, 0, marker.length, at, at + marker.length) === 0) return english;
  }
  return undefined;
}

/** The markers of a message's further lines, as printed in every language, by their first byte. */
const SECONDARY_MARKERS = new Map<number, Array<{ marker: Buffer; english: string }>>();
for (const { marker, english } of severityMarkers()) {
  if (!['DETAIL', 'HINT', 'QUERY', 'CONTEXT', 'LOCATION', 'STATEMENT'].includes(english)) continue;
  const bytes = Buffer.from(marker);
  const list = SECONDARY_MARKERS.get(bytes[0]!) ?? [];
  list.push({ marker: bytes, english });
  SECONDARY_MARKERS.set(bytes[0]!, list);
}

/** Whether the line at `other` begins with the same `length` bytes as the line at `line`. */
function samePrefix(bytes: Buffer, line: number, other: number, length: number): boolean {
  if (other + length > bytes.length) return false;
  for (let i = 0; i < length; i++) if (bytes[line + i] !== bytes[other + i]) return false;
  return true;
}

/** A line's text without its newline (and a CR before it), as the followers hand lines out. */
function lineAt(bytes: Buffer, start: number, end: number): string {
  return bytes.toString('utf8', start, end > start && bytes[end - 1] === 0x0d ? end - 1 : end);
}
