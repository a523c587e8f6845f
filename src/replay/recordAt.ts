import { detectIncident, ruledOutByFirstLine, type Incident } from '../detect/detectIncident.js';
import type { ScannedFormat } from '../detect/scanner.js';
import type { MultiNeedleSearch, SearchExports } from '../detect/wasm/multiNeedle.js';
import { CsvlogParser } from '../formats/CsvlogParser.js';
import { JsonlogParser } from '../formats/JsonlogParser.js';
import { compileLogLinePrefix, MARKER_WORDS, prefixLiteralHasDigit, UNREAD_GROUP } from '../formats/logLinePrefix.js';
import type { LogRecord } from '../formats/LogRecord.js';
import { severityMarkers } from '../formats/severity.js';
import { StderrPrefixParser } from '../formats/StderrPrefixParser.js';
import { MAX_LINE_BYTES } from '../sources/maxLineBytes.js';

/**
 * How far after a candidate line its record may reach: the lines read to complete it (stderr's
 * DETAIL, CONTEXT, LOCATION; a csvlog record's quoted newlines; a jsonlog line). The same bound
 * wherever the file is cut into chunks or ranges, so that every way of reading it finds the same
 * records; as far as the daemon reads a line (MAX_LINE_BYTES: 256 KiB lost a jsonlog record holding
 * a 400 KiB bulk INSERT, and a verbose error's LOCATION after a 270 KiB CONTEXT, which the daemon
 * found; ~15 ms more on the 1 GiB bench log, for the longer carry-over between chunks).
 */
export const RECORD_REACH = MAX_LINE_BYTES;
/** First lines kept as templates, of all shapes (the errors of a log: its users, databases, pid lengths, names). */
const MAX_TEMPLATES = 512;
/**
 * Templates kept of one shape, newest first: lines of one shape that differ in digits no template
 * lets differ, names (t1_k_key .. t20_k_key, a partitioned table's). With one a shape, each such
 * line replaced the one before: a field trial's log with 20 such names had 9-23 % of its hits
 * decided by templates. Few, as a line no template stands for is compared with each.
 */
const SHAPE_TEMPLATES = 16;
/** As StderrPrefixParser: the prefix is matched on a line's first 4096 characters (longer lines are not templates). */
const HEAD_CHARS = 4096;
/** stderr: lines of other backends looked past, at most, when the prefix cannot tell a message's own lines apart (%l). */
const MAX_FOREIGN_LINES = 64;

const NEWLINE = 0x0a;
const TAB = 0x09;

/** Candidates decided by one call of multiNeedle.c's repeats (its MAX_STARTS). */
export const REPEATS_BATCH = 4096;
/** decideRepeats: no template decides this candidate (multiNeedle.c's UNDECIDED). */
export const UNDECIDED = 0xff;
/** multiNeedle.c's MAX_TEMPLATES, TEMPLATE_BYTES, MAX_SPANS, MAX_MARKERS, MARKER_BYTES. */
const NATIVE_TEMPLATES = 64;
const NATIVE_TEMPLATE_BYTES = 1024;
const NATIVE_SPANS = 8;
const NATIVE_MARKERS = 128;
const NATIVE_MARKER_BYTES = 64;

/** multiNeedle.c's repeats, in the instance of a search whose memory the chunks are read into. */
interface NativeRepeats {
  exports: SearchExports;
  memory: ArrayBuffer;
  heap: Uint8Array;
  starts: Uint32Array;
  decided: Uint8Array;
}

/**
 * Reads the record that begins at a candidate line with the format's own parser, and tells the
 * incident it holds, if any. Only that record: lines after it are read as far as it goes on, and
 * records of other lines are the business of their own candidates.
 */
export class RecordReader {
  private readonly stderr: { parser: StderrPrefixParser; matcher: RegExp; spanMatcher: RegExp; sameMessagePrefix: boolean } | undefined;
  private readonly json: JsonlogParser | undefined;
  private found: LogRecord[] = [];
  /** The buffer last read and a DataView of it (a chunk's candidates share one): its bytes compared 4 at a time. */
  private viewed: Buffer | undefined;
  private view: DataView = new DataView(new ArrayBuffer(0));
  /** readStderr's further lines ([start, end) pairs), reused from one candidate to the next. */
  private readonly further: number[] = [];
  /** stderr: first lines read before, by their shape (shapeOf; see LineTemplate), newest first; how many in all. */
  private readonly templates = new Map<number, LineTemplate[]>();
  private kept = 0;
  /** The template the last line decided by one matched. */
  private lastTemplate: LineTemplate | undefined;
  /** Whether this prefix lets lines stand for one another (see LineTemplate). */
  private readonly templatable: boolean;
  /** Templates made, and of those the ones that stood for a line (see remember). */
  private made = 0;
  private used = 0;
  /** Lines no template matched to pass by before the next template is made. */
  private missesToPass = 0;
  /** multiNeedle.c's repeats (decideRepeats), once used; null: not for this log (not stderr, %l, a digit in the prefix's text). */
  private native: NativeRepeats | null | undefined;
  /** The templates the module holds, by its slot; the next slot to fill; templates first used since the last decideRepeats. */
  private readonly slots: Array<LineTemplate | undefined> = [];
  private nextSlot = 0;
  private readonly unsent: LineTemplate[] = [];
  /**
   * The last candidate's line began no record of the format (a log_line_prefix or format that is
   * not the log's): incidentAt's undefined was for that reason, not for a record that is no incident.
   */
  unrecognised = false;

  constructor(
    private readonly format: ScannedFormat,
    logLinePrefix: string,
    private readonly source: string,
  ) {
    const sink = (record: LogRecord) => void this.found.push(record);
    if (format === 'postgres-stderr') {
      // PostgreSQL writes every line of one message with the same prefix, unless the prefix has %l
      // (a number per line): then lines are told apart by their pid, more slowly.
      const matcher = compileLogLinePrefix(logLinePrefix);
      this.stderr = {
        parser: new StderrPrefixParser(logLinePrefix, source, sink),
        matcher,
        // The same expression, telling where each field was found, the fields no record field is
        // read from too (%r, %c, %x, ...: see LineTemplate).
        spanMatcher: spanMatcherOf(logLinePrefix),
        sameMessagePrefix: !/%-?\d*l/.test(logLinePrefix),
      };
    }
    this.templatable = format === 'postgres-stderr' && !prefixLiteralHasDigit(logLinePrefix) && DIGIT_STEMS !== undefined;
    if (format === 'postgres-json') this.json = new JsonlogParser(source, sink);
  }

  /**
   * Decides in the search's WebAssembly module (multiNeedle.c's repeats) which of the candidates
   * starts[from, from + REPEATS_BATCH) of `bytes` a template stands for, as stderrIncident would
   * decide it: their line matches a template and no line after it changes the record. Returns, for
   * each of them, the template's slot (repeatIncident gives the incident) or UNDECIDED (incidentAt
   * reads it), valid until the next call; undefined where the module cannot decide (another
   * format, a prefix without templates, no WebAssembly SIMD, `bytes` not in the module's memory: a
   * decompressed stream). Saves a busy log's repeats ~10 calls and compares of JavaScript each.
   */
  decideRepeats(search: MultiNeedleSearch | undefined, bytes: Buffer, starts: readonly number[], from: number, limit: number): Uint8Array | undefined {
    if (this.native === null) return undefined;
    if (this.native === undefined) {
      if (!this.templatable || !this.stderr?.sameMessagePrefix) {
        this.native = null;
        return undefined;
      }
      const instance = search?.instance;
      // (A decompressed stream is never read into the module's memory: its reader never sends templates.)
      if (!instance || bytes.buffer !== instance.memory) return undefined;
      this.native = nativeRepeats(instance.exports, instance.memory);
      if (!this.native) return undefined;
      for (const ofShape of this.templates.values()) for (const template of ofShape) if (template.used) this.unsent.push(template);
    }
    const native = this.native;
    if (bytes.buffer !== native.memory) return undefined;
    // Templates made since the last call (none while a batch is read: its slots stay as decided).
    for (const template of this.unsent) {
      if (!template.sendTo(native, this.nextSlot)) continue;
      this.slots[this.nextSlot] = template;
      this.nextSlot = (this.nextSlot + 1) % NATIVE_TEMPLATES;
    }
    this.unsent.length = 0;
    const n = Math.min(REPEATS_BATCH, starts.length - from);
    for (let k = 0; k < n; k++) native.starts[k] = starts[from + k]!;
    native.exports.repeats(bytes.byteOffset, n, limit, RECORD_REACH);
    return native.decided.subarray(0, n);
  }

  /** Where the time is in the lines template `slot` stands for ([start, end) from the line's start), if they have one. */
  repeatTime(slot: number): readonly [number, number] | undefined {
    return this.slots[slot]!.time;
  }

  /** The incident of the candidate at bytes[start] (absolute offset `offset`) that decideRepeats said template `slot` stands for. */
  repeatIncident(slot: number, bytes: Buffer, start: number, offset: number): Incident | undefined {
    this.unrecognised = false;
    const template = this.slots[slot]!;
    this.lastTemplate = template;
    if (!template.used) {
      template.used = true;
      this.used++;
    }
    return template.decided && template.incident(bytes, start, offset);
  }

  /** The incident of the record at bytes[start] (absolute offset `offset`), reading no further than `limit`. */
  incidentAt(bytes: Buffer, start: number, limit: number, offset: number): Incident | undefined {
    this.unrecognised = false;
    if (this.stderr?.sameMessagePrefix) return this.stderrIncident(bytes, start, Math.min(limit, start + RECORD_REACH), offset);
    return this.incidentByParser(bytes, start, limit, offset);
  }

  /**
   * The same, every line the record is read from going through the format's parser (push, flush):
   * what incidentAt's stderr path must give (test/replay/recordAt.unit.test.ts compares them on
   * every candidate of the samples and the fuzz corpus), and the path of the other formats.
   */
  incidentByParser(bytes: Buffer, start: number, limit: number, offset: number): Incident | undefined {
    this.found.length = 0;
    const end = Math.min(limit, start + RECORD_REACH);
    if (this.format === 'postgres-json') {
      const newline = bytes.indexOf(NEWLINE, start);
      this.json!.push(lineAt(bytes, start, newline === -1 || newline >= end ? end : newline), { offset });
    } else if (this.format === 'postgres-csv') this.readCsv(bytes, start, end, offset);
    else this.readStderr(bytes, start, end, offset);
    const record = recordAtOffset(this.found, offset);
    if (!record) {
      // A stderr line that goes on with the record before it (a STATEMENT quoting an error's words) is the log's.
      const newline = bytes.indexOf(NEWLINE, start);
      this.unrecognised = !this.stderr?.parser.isSecondaryLine(lineAt(bytes, start, newline === -1 || newline >= end ? end : newline));
      return undefined;
    }
    return detectIncident(record);
  }

  /**
   * stderr, when every line of a message has the same prefix: readStderr's answer, for less. A
   * first line that differs from one read before (a template) only in the digits of its time and
   * pid is decided as that one was, without being decoded or parsed (see LineTemplate); any other
   * is read on its own by StderrPrefixParser.recordOfLine. Either way the lines after it that may
   * change the record (furtherLines) send it to the parser whole, as readStderr does.
   */
  private viewOf(bytes: Buffer): DataView {
    if (bytes !== this.viewed) {
      this.viewed = bytes;
      this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    return this.view;
  }

  private stderrIncident(bytes: Buffer, start: number, end: number, offset: number): Incident | undefined {
    const newline = bytes.indexOf(NEWLINE, start);
    const lineEnd = newline === -1 || newline >= end ? end : newline;
    // The template the line before matched first: a busy log's hits are mostly repeats of one
    // error, so most lines are decided without hashing their shape (any template a line matches
    // decides it alike, see LineTemplate).
    const view = this.viewOf(bytes);
    let template = this.lastTemplate;
    let shape = 0;
    if (!template?.matches(bytes, view, start, lineEnd)) {
      shape = this.templatable ? shapeOf(bytes, start, lineEnd) : 0;
      template = this.templates.get(shape)?.find((one) => one.matches(bytes, view, start, lineEnd));
    }
    if (template) {
      this.lastTemplate = template;
      if (!template.used) {
        template.used = true;
        this.used++;
        // A template that stood for a line goes to multiNeedle.c's repeats (decideRepeats): the
        // module holds few, and most templates made stand for no other line.
        if (this.native) this.unsent.push(template);
      }
      if (template.ruledOut) return undefined;
      if (this.furtherLines(bytes, start, lineEnd, end, template.prefixBytes, template.wantDetail).length === 0) {
        return template.decided && template.incident(bytes, start, offset);
      }
      return this.readAgain(lineAt(bytes, start, lineEnd), bytes, start, offset);
    }
    const first = lineAt(bytes, start, lineEnd);
    const alone = this.stderr!.parser.recordOfLine(first, { offset });
    if (!alone) {
      this.unrecognised = !this.stderr!.parser.isSecondaryLine(first);
      return undefined;
    }
    const prefixBytes = prefixLength(this.stderr!.matcher, first, lineEnd - start);
    const wantDetail = first.includes('conflict=');
    const decided = detectIncident(alone);
    this.remember(shape, bytes, start, lineEnd, first, prefixBytes, wantDetail, alone, decided);
    if (ruledOutByFirstLine(alone)) return undefined;
    if (this.furtherLines(bytes, start, lineEnd, end, prefixBytes, wantDetail).length === 0) return decided;
    return this.readAgain(first, bytes, start, offset);
  }

  /** The record at `offset` read again with its further lines (in this.further), and its incident. */
  private readAgain(first: string, bytes: Buffer, start: number, offset: number): Incident | undefined {
    this.found.length = 0;
    this.readWhole(first, bytes, start, offset, this.further);
    const record = recordAtOffset(this.found, offset);
    return record ? detectIncident(record) : undefined;
  }

  /** Keeps a line just read as a template, when it may be one (see LineTemplate). */
  private remember(
    shape: number,
    bytes: Buffer,
    start: number,
    lineEnd: number,
    first: string,
    prefixBytes: number,
    wantDetail: boolean,
    alone: LogRecord,
    decided: Incident | undefined,
  ): void {
    // A replication conflict is more than a kind and a name; a long line, a line ending in CR, or
    // one with bytes that are no UTF-8 (decoded as U+FFFD: its bytes are not its text) is left to the parser.
    if (!this.templatable || decided?.replication || first.length > HEAD_CHARS || bytes[lineEnd - 1] === 0x0d || first.includes('\uFFFD')) return;
    // Making one costs several reads of a line (the expression telling where its fields are is slow):
    // while most templates made stand for no other line (every line its own shape), few are made.
    if (this.made >= 32 && this.used * 4 < this.made) {
      if (this.missesToPass-- > 0) return;
      this.missesToPass = 63;
    }
    const found = this.stderr!.spanMatcher.exec(first)?.indices?.groups;
    if (!found) return;
    // Where the fields are, in bytes: a translated server's line is not all ASCII (FEHLER:  doppelter
    // Schlüsselwert …), and its characters after the first that is not are not its bytes.
    const spans = first.length === lineEnd - start ? found : spansInBytes(first, found);
    if (!spans) return;
    const template = LineTemplate.make(bytes.subarray(start, lineEnd), spans, prefixBytes, wantDetail, alone, decided);
    if (!template) return;
    if (this.kept >= MAX_TEMPLATES) {
      this.templates.clear();
      this.kept = 0;
    }
    const ofShape = this.templates.get(shape) ?? [];
    if (ofShape.length === 0) this.templates.set(shape, ofShape);
    ofShape.unshift(template);
    if (ofShape.length > SHAPE_TEMPLATES) ofShape.pop();
    else this.kept++;
    this.made++;
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
    const newline = bytes.indexOf(NEWLINE, start);
    const lineEnd = newline === -1 || newline >= end ? end : newline;
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
    const further = this.furtherLines(bytes, start, lineEnd, end, prefixLength(this.stderr!.matcher, first, lineEnd - start), first.includes('conflict='));
    if (further.length === 0) return;
    // Lines that may change what the record says: read it again, whole.
    this.found.length = 0;
    this.readWhole(first, bytes, start, offset, further);
  }

  /**
   * The candidate line's record read again with the further lines that detection reads (`further`:
   * [start, end) pairs from furtherLines).
   */
  private readWhole(first: string, bytes: Buffer, start: number, offset: number, further: number[]): void {
    const { parser } = this.stderr!;
    parser.push(first, { offset });
    for (let i = 0; i < further.length; i += 2) parser.push(lineAt(bytes, further[i]!, further[i + 1]!), { offset: offset + (further[i]! - start) });
    parser.flush();
  }

  /**
   * The lines after the candidate line (bytes[start, firstEnd)) that go on with its message: TAB
   * continuation lines, and the lines PostgreSQL wrote with the same message (same `prefixBytes`),
   * up to the first line that is neither. Of those, the ones detection reads, as [start, end) pairs
   * (reused from one candidate to the next): CONTEXT (an apply worker's), LOCATION (verbose
   * SQLSTATEs), DETAIL when the message names a conflict (`wantDetail`); STATEMENT, HINT and QUERY
   * lines (and their continuations) are passed over. Most candidates (an ERROR line followed by its
   * DETAIL and STATEMENT) have none: their first line decides.
   */
  private furtherLines(bytes: Buffer, start: number, firstEnd: number, end: number, prefixBytes: number, wantDetail: boolean): number[] {
    const further = this.further;
    const view = this.viewOf(bytes);
    // (Most candidates keep none: left as it is, the array is not truncated again.)
    if (further.length !== 0) further.length = 0;
    let passingOver = false;
    for (let at = firstEnd + 1; at < end;) {
      let keep = !passingOver;
      if (bytes[at] !== TAB) {
        if (at + prefixBytes > bytes.length || !sameBytes(view, start, view, at, prefixBytes)) break;
        const marker = markerAt(bytes, at + prefixBytes);
        // Not a secondary line (this backend's next message with the same prefix: a %t time) ends it.
        if (marker === undefined) break;
        passingOver = marker === 'STATEMENT' || marker === 'HINT' || marker === 'QUERY' || (marker === 'DETAIL' && !wantDetail);
        keep = !passingOver;
      }
      // The line's end, only for a line that goes on with the message (the one that ends it is not searched).
      const newline = bytes.indexOf(NEWLINE, at);
      const lineEnd = newline === -1 || newline >= end ? end : newline;
      if (keep) further.push(at, lineEnd);
      at = lineEnd + 1;
    }
    return further;
  }

  /**
   * With %l in the prefix (a number per line): the lines of this backend, looking past a few of
   * other backends' (and past their TAB continuation lines, which are theirs). Without %p to tell
   * backends by, every line, as the parser reads them.
   */
  private readStderrByPid(bytes: Buffer, start: number, firstEnd: number, end: number, offset: number, first: string): void {
    const { parser, matcher } = this.stderr!;
    const pid = matcher.exec(first.length > 4096 ? first.slice(0, 4096) : first)?.groups?.pid;
    parser.push(first, { offset });
    let foreign = 0;
    let inForeign = false;
    for (let at = firstEnd + 1; at < end;) {
      const newline = bytes.indexOf(NEWLINE, at);
      const lineEnd = newline === -1 || newline >= end ? end : newline;
      const lineStart = at;
      at = lineEnd + 1;
      const line = lineAt(bytes, lineStart, lineEnd);
      if (bytes[lineStart] !== TAB) inForeign = pid !== undefined && !line.slice(0, 256).includes(pid);
      if (inForeign) {
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
 * The bytes of a stderr line's prefix: what the prefix expression matched before the severity word
 * (on the line's first HEAD_CHARS, as StderrPrefixParser matches it). Every prefix is exact this
 * way, whatever its last character (`%t:%r:%u@%d:[%p]:` ends in a colon; a background process's
 * line ends its prefix at %q); 0 when the line does not match.
 */
function prefixLength(matcher: RegExp, line: string, lineBytes: number): number {
  const head = line.length > HEAD_CHARS ? line.slice(0, HEAD_CHARS) : line;
  const match = matcher.exec(head);
  const groups = match?.groups;
  if (!match || groups?.severity === undefined) return 0;
  const at = match.index + match[0].length - groups.severity.length - (groups.separator?.length ?? 0) - (groups.message?.length ?? 0);
  // As many characters as bytes and no byte decoded as U+FFFD: all ASCII (the usual line), so the
  // characters are the bytes; otherwise count them (a replacement character counts 3).
  return line.length === lineBytes && line.lastIndexOf('\uFFFD', at) === -1 ? at : Buffer.byteLength(line.slice(0, at));
}

/** The prefix's expression with the places of its fields (RegExp `d` flag), those no record field is read from too. */
function spanMatcherOf(logLinePrefix: string): RegExp {
  const matcher = compileLogLinePrefix(logLinePrefix, { unreadGroups: true });
  return new RegExp(matcher.source, matcher.flags + 'd');
}

/**
 * The spans of the time, the pid and the unread fields in a line's characters as spans in its UTF-8
 * bytes; undefined when one holds a character that is not ASCII (a template reads them as bytes, one
 * a character).
 */
function spansInBytes(line: string, spans: Record<string, [number, number] | undefined>): Record<string, [number, number] | undefined> | undefined {
  const inBytes: Record<string, [number, number] | undefined> = {};
  for (const name of Object.keys(spans)) {
    if (name !== 'time' && name !== 'pid' && !name.startsWith(UNREAD_GROUP)) continue;
    const span = spans[name];
    if (!span) continue;
    const from = Buffer.byteLength(line.slice(0, span[0]));
    const to = from + Buffer.byteLength(line.slice(span[0], span[1]));
    if (to - from !== span[1] - span[0]) return undefined;
    inBytes[name] = [from, to];
  }
  return inBytes;
}

/** The record of `found` read at `offset` (a loop: no closure per candidate). */
function recordAtOffset(found: LogRecord[], offset: number): LogRecord | undefined {
  for (let i = 0; i < found.length; i++) if (found[i]!.offset === offset) return found[i];
  return undefined;
}

/** The English severity of the marker printed at `at` (`DETAIL:  `, `ANWEISUNG:  `, ...), if it is one of the secondary ones. */
function markerAt(bytes: Buffer, at: number): string | undefined {
  for (const { marker, english } of SECONDARY_MARKERS[bytes[at]!] ?? NONE) {
    if (at + marker.length <= bytes.length && bytesAt(bytes, at, marker)) return english;
  }
  return undefined;
}

/** Whether `bytes` holds `expected` at `at` (compared here: a native compare per marker costs more on these few bytes). */
function bytesAt(bytes: Buffer, at: number, expected: Buffer): boolean {
  for (let i = 0; i < expected.length; i++) if (bytes[at + i] !== expected[i]) return false;
  return true;
}

/** The markers of a message's further lines, as printed in every language (markerAt takes the first listed that is there). */
const SECONDARY_MARKER_LIST = severityMarkers()
  .filter(({ english }) => ['DETAIL', 'HINT', 'QUERY', 'CONTEXT', 'LOCATION', 'STATEMENT'].includes(english))
  .map(({ marker, english }) => ({ marker: Buffer.from(marker), english }));
/** The same by their first byte (an array: a line's byte indexes it). */
const SECONDARY_MARKERS: Array<Array<{ marker: Buffer; english: string }> | undefined> = [];
const NONE: Array<{ marker: Buffer; english: string }> = [];
for (const entry of SECONDARY_MARKER_LIST) (SECONDARY_MARKERS[entry.marker[0]!] ??= []).push(entry);

/** multiNeedle.c's classes of a secondary marker: a line detection reads, one passed over, DETAIL (read when the message names a conflict). */
const markerClass = (english: string) => (english === 'DETAIL' ? 2 : english === 'STATEMENT' || english === 'HINT' || english === 'QUERY' ? 1 : 0);

/** multiNeedle.c's repeats in a search's instance, its markers written; undefined when they do not fit its tables. */
function nativeRepeats(exports: SearchExports, memory: ArrayBuffer): NativeRepeats | undefined {
  if (SECONDARY_MARKER_LIST.length > NATIVE_MARKERS || SECONDARY_MARKER_LIST.some(({ marker }) => marker.length > NATIVE_MARKER_BYTES)) return undefined;
  const heap = new Uint8Array(memory);
  SECONDARY_MARKER_LIST.forEach(({ marker, english }, m) => {
    heap.set(marker, exports.marker_bytes(m));
    exports.set_marker(m, marker.length, markerClass(english));
  });
  exports.set_marker_count(SECONDARY_MARKER_LIST.length);
  // No template in any slot until one is sent (a length no line has).
  for (let t = 0; t < NATIVE_TEMPLATES; t++) exports.set_template(t, 0xffffffff, 0, 0, 0, 0);
  return {
    exports,
    memory,
    heap,
    starts: new Uint32Array(memory, exports.starts_ptr(), REPEATS_BATCH),
    decided: new Uint8Array(memory, exports.decided_ptr(), REPEATS_BATCH),
  };
}

/**
 * Whether a[aAt, aAt + length) and b[bAt, bAt + length) hold the same bytes (both in range): 4 at a
 * time (a DataView reads them unaligned), then one by one; ~3x faster than byte by byte on the
 * ~100 bytes of a prefix or a template's line.
 */
function sameBytes(a: DataView, aAt: number, b: DataView, bAt: number, length: number): boolean {
  let i = 0;
  for (; i + 4 <= length; i += 4) if (a.getUint32(aAt + i) !== b.getUint32(bAt + i)) return false;
  for (; i < length; i++) if (a.getUint8(aAt + i) !== b.getUint8(bAt + i)) return false;
  return true;
}

/** A line's text without its newline (and a CR before it), as the followers hand lines out. */
function lineAt(bytes: Buffer, start: number, end: number): string {
  return bytes.toString('utf8', start, end > start && bytes[end - 1] === 0x0d ? end - 1 : end);
}

/**
 * What comes before a digit in the severity words that hold one (`DEBUG` of DEBUG1..DEBUG5), or
 * undefined when a word holds two digits (none does: LineTemplate would then not be used).
 */
const DIGIT_STEMS: string[] | undefined = (() => {
  const stems = new Set<string>();
  for (const word of MARKER_WORDS) {
    const digits = [...word].filter((c) => c >= '0' && c <= '9').length;
    if (digits > 1) return undefined;
    if (digits === 1) stems.add(word.slice(0, word.search(/[0-9]/)));
  }
  return [...stems];
})();

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/**
 * A hash of a line's bytes with every digit as 0: lines a template may stand for have its shape (a
 * template is found by it, then LineTemplate.matches decides).
 */
function shapeOf(bytes: Buffer, start: number, end: number): number {
  let hash = end - start;
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    hash = Math.imul(hash ^ (isDigit(c) ? 0x30 : c), 0x01000193);
  }
  return hash;
}

/**
 * A stderr line read by the parser, standing for the lines that differ from it only in digits of
 * its time, its pid and the prefix's fields no record field is read from (%r: a pooled
 * connection's port, %c, %x, ...: compileLogLinePrefix's unread groups): the repeats of one error
 * in a busy log.
 *
 * Why such a line is read as the template was, field for field: the prefix expression
 * (compileLogLinePrefix) tests a character that is a digit only with classes that hold all ten
 * digits or none (\d, [^\s], ., [0-9A-Z], ...), except for digits the prefix's literal text holds
 * (then no templates: RecordReader.templatable) and the digit of DEBUG1..DEBUG5, which is reached
 * only right after `DEBUG` (a template with a varying digit there is not made). So the expression
 * runs on the line exactly as on the template: the same fields at the same places, every field but
 * the time, the pid and the unread ones the same text, the same severity and message, the same
 * decision (detection reads neither the time nor the pid, and nothing reads the unread fields) and
 * the same prefix length for the lines after it.
 */
class LineTemplate {
  /** A line was found to match it. */
  used = false;

  /** Its bytes, compared 4 at a time (sameBytes). */
  private readonly view: DataView;

  /** Writes it into multiNeedle.c's template `slot` (false: longer, or of more spans, than a slot holds: not sent). */
  sendTo(native: NativeRepeats, slot: number): boolean {
    const { bytes, spans } = this;
    if (bytes.length > NATIVE_TEMPLATE_BYTES || spans.length > 2 * NATIVE_SPANS) return false;
    native.heap.set(bytes, native.exports.template_bytes(slot));
    new Uint32Array(native.memory, native.exports.template_spans(slot), spans.length).set(spans);
    native.exports.set_template(slot, bytes.length, spans.length / 2, this.prefixBytes, this.wantDetail ? 1 : 0, this.ruledOut ? 1 : 0);
    return true;
  }

  private constructor(
    private readonly bytes: Buffer,
    /** [start, end) of the time, the pid and the fields no record field is read from, ascending; the digits in them may differ. */
    private readonly spans: number[],
    readonly time: [number, number] | undefined,
    private readonly pid: [number, number] | undefined,
    readonly prefixBytes: number,
    readonly wantDetail: boolean,
    /** What detectIncident said of the template's record read alone (undefined: no incident); its source, database, SQLSTATE are every match's. */
    readonly decided: Incident | undefined,
    /** Its record is no ERROR (detectIncident.ruledOutByFirstLine): neither is any match's, whatever lines follow. */
    readonly ruledOut: boolean,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  static make(
    line: Buffer,
    groups: Record<string, [number, number] | undefined>,
    prefixBytes: number,
    wantDetail: boolean,
    record: LogRecord,
    decided: Incident | undefined,
  ): LineTemplate | undefined {
    const found: Array<[number, number]> = [];
    if (groups.time && record.logTime !== undefined) found.push(groups.time);
    if (groups.pid && record.pid !== undefined) found.push(groups.pid);
    for (const [name, span] of Object.entries(groups)) if (span && name.startsWith(UNREAD_GROUP)) found.push(span);
    // Ascending and apart, as matches() and multiNeedle.c walk them: a field that printed nothing
    // (%v of a process without one) has no digits, and may begin where the next field does.
    const spans = found.filter(([from, to]) => to > from).sort((a, b) => a[0] - b[0]);
    for (const [from, to] of spans) {
      for (let at = from; at < to; at++) {
        if (!isDigit(line[at]!)) continue;
        // A digit right after DEBUG: the severity alternation could read it (see above).
        for (const stem of DIGIT_STEMS!) if (at >= stem.length && line.toString('latin1', at - stem.length, at) === stem) return undefined;
      }
    }
    return new LineTemplate(
      Buffer.from(line),
      spans.flat(),
      groups.time && record.logTime !== undefined ? groups.time : undefined,
      groups.pid && record.pid !== undefined ? groups.pid : undefined,
      prefixBytes,
      wantDetail,
      decided,
      ruledOutByFirstLine(record),
    );
  }

  /** Whether bytes[start, end) (`view`: a DataView of bytes) is this line but for digits in place of digits in the time and the pid. */
  matches(bytes: Buffer, view: DataView, start: number, end: number): boolean {
    const own = this.bytes;
    if (end - start !== own.length) return false;
    let from = 0;
    const spans = this.spans;
    for (let s = 0; s <= spans.length; s += 2) {
      const to = s < spans.length ? spans[s]! : own.length;
      if (!sameBytes(view, start + from, this.view, from, to - from)) return false;
      if (s === spans.length) break;
      from = spans[s + 1]!;
      for (let i = to; i < from; i++) {
        const c = bytes[start + i]!;
        if (c !== own[i] && !(isDigit(c) && isDigit(own[i]!))) return false;
      }
    }
    return true;
  }

  /**
   * The incident of a matching line at bytes[start] (offset `offset`): the template's, with that
   * line's time and pid. Built here, key by key as detectIncident builds it (withWhere) (one object
   * per hit; the unit test compares keys and their order).
   */
  incident(bytes: Buffer, start: number, offset: number): Incident {
    const decided = this.decided!;
    const incident: Incident = { kind: decided.kind, constraint: decided.constraint, source: decided.source, offset };
    if (this.time) incident.logTime = bytes.toString('latin1', start + this.time[0], start + this.time[1]);
    if (this.pid) {
      let pid = 0;
      for (let i = start + this.pid[0]; i < start + this.pid[1]; i++) pid = pid * 10 + (bytes[i]! - 0x30);
      incident.pid = pid;
    }
    if (decided.database !== undefined) incident.database = decided.database;
    if (decided.sqlstate !== undefined) incident.sqlstate = decided.sqlstate;
    return incident;
  }
}
