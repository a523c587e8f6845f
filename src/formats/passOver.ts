import type { LineSkipping } from '../sources/LineSplitter.js';
import type { Format } from './createParser.js';
import type { RecordParser } from './RecordParser.js';

/** What finds the lines that may matter in raw bytes: the scanner of src/detect/ (its nextCandidate). */
export interface CandidateFinder {
  /** The start of the first line in bytes[from, to) that may begin a record that matters, or -1. */
  nextCandidate(bytes: Buffer, from: number, to: number): number;
}

/** csvlog's quote: its records are framed by it (a quoted field may hold newlines). */
const CSV_QUOTE = 0x22;

const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const LETTER_N = 0x6e;
/**
 * How Docker's json-file driver begins an entry, and one whose line begins with a TAB (a stderr
 * record's continuation): Docker writes a TAB as `\u0009` (moby's ffjsonWriteJSONBytesAsString
 * writes only \n and \r short), other writers as `\t`.
 */
const DOCKER_ENTRY = Buffer.from('{"log":"');
const DOCKER_TAB_ENTRIES = [Buffer.from('{"log":"\\u0009'), Buffer.from('{"log":"\\t')];
/** What follows an entry's `log` value: Docker writes log, stream, (attrs,) time, in that order. */
const DOCKER_STREAM = Buffer.from('","stream":"');
/** TAB entries looked back over for the line they continue (a statement's lines: more are handed out one by one). */
const MAX_ENTRIES_BACK = 128;

/** Whether bytes[start, end) hold `prefix` at `start` (compared here: a call into Buffer's native code cost more, for 8-10 bytes). */
function startsWith(bytes: Buffer, start: number, end: number, prefix: Buffer): boolean {
  if (end - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[start + i] !== prefix[i]) return false;
  return true;
}

/**
 * Where the Docker json-file entry at bytes[start, end) has its `log` value end (the quote before
 * `","stream":"`), or -1 when it is no entry. Inside the value a quote is always escaped, so that
 * text cannot occur there: its first occurrence is the value's end.
 */
function logValueEnd(bytes: Buffer, start: number, end: number): number {
  if (!startsWith(bytes, start, end, DOCKER_ENTRY)) return -1;
  const key = bytes.indexOf(DOCKER_STREAM, start + DOCKER_ENTRY.length);
  // Found past the entry's end (it has no stream: no entry of the driver's), or not at all.
  return key === -1 || key >= end ? -1 : key;
}

const DOCKER_TIME = Buffer.from('","time":"');
const STDOUT = Buffer.from('stdout');
const STDERR = Buffer.from('stderr');
/** The entry's end without attrs: its `log` value, then `","stream":"stderr` (or stdout) and `","time":"<time>"}`. */
const STREAM_NAME = 6;
/** What a time value is at most (RFC 3339 with nanoseconds, UTC: 30; with an offset: 35). */
const TIME_MAX = 40;

/**
 * logValueEnd, read from the entry's end: Docker's tail is `","stream":"stderr","time":"<time>"}`
 * (no quote in the time, no raw `","` in the value before it), so where it is so, the value ends
 * before it; -1 where the tail is otherwise (attrs, another writer's entries): ask logValueEnd.
 * Bytes compared here, over the tail only: a search over each entry's text cost more than the
 * rest of passing it over (a profile of the daemon following one at 20 MiB/s).
 */
function logValueEndFromTail(bytes: Buffer, start: number, newline: number): number {
  let end = newline;
  if (bytes[end - 1] === 0x0d) end--;
  if (bytes[end - 1] !== 0x7d || bytes[end - 2] !== 0x22) return -1;
  let quote = end - 3;
  const floor = Math.max(start, end - 2 - TIME_MAX);
  while (quote > floor && bytes[quote] !== 0x22) quote--;
  const timeKey = quote - (DOCKER_TIME.length - 1);
  const stream = timeKey - STREAM_NAME;
  const key = stream - DOCKER_STREAM.length;
  if (key < start + DOCKER_ENTRY.length || !startsWith(bytes, timeKey, end, DOCKER_TIME)) return -1;
  if (!(startsWith(bytes, stream, end, STDERR) || startsWith(bytes, stream, end, STDOUT)) || !startsWith(bytes, key, end, DOCKER_STREAM)) return -1;
  return startsWith(bytes, start, end, DOCKER_ENTRY) ? key : -1;
}

/**
 * Whether the `log` value ending at `quote` ends a line of the container's output: an escaped
 * newline (`\n`, its backslash not itself escaped: an odd run of backslashes). A line longer
 * than 16 KiB is split into entries only the last of which does.
 */
function endsWithNewline(bytes: Buffer, start: number, quote: number): boolean {
  if (bytes[quote - 1] !== LETTER_N || bytes[quote - 2] !== BACKSLASH) return false;
  let run = 0;
  for (let at = quote - 2; at >= start && bytes[at] === BACKSLASH; at--) run++;
  return run % 2 === 1;
}

/** Whether the entry at `start` holds a line beginning with a TAB: a stderr record's continuation. */
const continuesRecord = (bytes: Buffer, start: number): boolean => DOCKER_TAB_ENTRIES.some((entry) => startsWith(bytes, start, bytes.length, entry));

/**
 * Docker's json-file entries (LineSkipping.wrapped): a run passed over holds only entries that end
 * a line of the output, so a line the runtime split into entries is handed out whole, from its
 * first (a needle may be cut in two by the split: each entry is looked at, the search does not see
 * it); and it ends before an entry whose line is no TAB line (a record's TAB lines are handed out
 * from the line they continue), as a stderr log's runs do.
 */
export const DOCKER_ENTRIES = {
  continues: continuesRecord,
  boundary(bytes: Buffer, start: number, until: number): { end: number; lines: number } {
    const ends = (from: number, newline: number) => {
      let quote = logValueEndFromTail(bytes, from, newline);
      if (quote === -1) quote = logValueEnd(bytes, from, newline);
      return quote !== -1 && endsWithNewline(bytes, from, quote);
    };
    return wrappedBoundary(bytes, start, until, ends, continuesRecord);
  },
};

const SPACE = 0x20;
const TAB = 0x09;
const COLON = 0x3a;
/** What CRI's timestamp is at most (RFC 3339 with nanoseconds and an offset: 35). */
const CRI_TIME_MAX = 40;
/** criContent: the entry is a partial one (P), or no CRI entry. */
const CRI_PARTIAL = -2;
const NOT_AN_ENTRY = -1;

/**
 * Where the content of the CRI entry at bytes[start, end) begins (`<time> <stdout|stderr> <F|P>[:flags] <content>`)
 * when it is a full one (F: it ends a line of the output); CRI_PARTIAL for a P entry, NOT_AN_ENTRY
 * for a line that is none. Read byte by byte: the head is ~40 bytes.
 */
function criContent(bytes: Buffer, start: number, end: number): number {
  let space = start;
  const timeEnd = Math.min(end, start + CRI_TIME_MAX);
  while (space < timeEnd && bytes[space] !== SPACE) space++;
  if (space === timeEnd || space === start) return NOT_AN_ENTRY;
  const stream = space + 1;
  if (stream + 8 >= end || !(startsWith(bytes, stream, end, STDERR) || startsWith(bytes, stream, end, STDOUT)) || bytes[stream + 6] !== SPACE)
    return NOT_AN_ENTRY;
  const tag = bytes[stream + 7];
  if (tag !== 0x46 && tag !== 0x50) return NOT_AN_ENTRY;
  let after = stream + 8;
  if (bytes[after] === COLON) while (after < end && bytes[after] !== SPACE) after++;
  else if (after < end && bytes[after] !== SPACE) return NOT_AN_ENTRY;
  return tag === 0x50 ? CRI_PARTIAL : Math.min(end, after + 1);
}

/**
 * Kubernetes' CRI entries (LineSkipping.wrapped), as Docker's: a run passed over holds only full
 * entries (F), so a line the runtime split into P entries and a last F is handed out whole, from
 * its first; and it ends before an entry whose line is no TAB line.
 */
export const CRI_ENTRIES = {
  continues(bytes: Buffer, start: number): boolean {
    const end = bytes.indexOf(NEWLINE, start);
    const content = criContent(bytes, start, end === -1 ? bytes.length : end);
    return content >= 0 && bytes[content] === TAB;
  },
  boundary(bytes: Buffer, start: number, until: number): { end: number; lines: number } {
    return wrappedBoundary(bytes, start, until, (from, newline) => criContent(bytes, from, newline) >= 0, CRI_ENTRIES.continues);
  },
};

/**
 * The end of a run passed over, for entries that wrap lines of the output: past the entries from
 * `start` that each end a line of the output (`ends`), up to `until`, then back before the entries
 * whose line is a TAB line (`continues`), to the line they continue.
 */
function wrappedBoundary(
  bytes: Buffer,
  start: number,
  until: number,
  ends: (start: number, newline: number) => boolean,
  continues: (bytes: Buffer, start: number) => boolean,
): { end: number; lines: number } {
  let end = start;
  let lines = 0;
  while (end < until) {
    const newline = bytes.indexOf(NEWLINE, end);
    if (newline === -1 || newline >= until || !ends(end, newline)) break;
    end = newline + 1;
    lines++;
  }
  for (let entries = 0; end > start && continues(bytes, end) && entries < MAX_ENTRIES_BACK; entries++) {
    end = end - 1 > start ? Math.max(start, bytes.lastIndexOf(NEWLINE, end - 2) + 1) : start;
    lines--;
  }
  return continues(bytes, end) ? { end: start, lines: 0 } : { end, lines };
}

/** Bytes that Docker's json-file driver writes escaped (JSON's quote, backslash and controls, and <, > and &): a mark holding one is not found as it is. */
const escapedInJson = (mark: Buffer) =>
  mark.some((byte) => byte < 0x20 || byte === 0x22 || byte === BACKSLASH || byte === 0x3c || byte === 0x3e || byte === 0x26);

/** Marks of records being assembled, as Docker's json-file entries carry them: undefined when one would be written escaped. */
export function dockerMarks(marks: readonly Buffer[] | undefined): readonly Buffer[] | undefined {
  return marks?.some(escapedInJson) ? undefined : marks;
}

/**
 * How a source of `format` may pass over lines unseen, with `parser` reading it: only between
 * records (or, for stderr, past other backends' lines while records wait for their next line), only
 * up to the next line the scanner names, for csvlog only where the quotes balance, and for a
 * container runtime's entries (Docker's json-file, CRI; a stderr log inside) only after an entry that
 * ends a line of the output. Undefined for the formats whose parser cannot say when that is safe
 * (syslog, application logs).
 */
export function lineSkippingFor(format: Format, parser: RecordParser, candidates: CandidateFinder): LineSkipping | undefined {
  const { canPassOver, passedOverLines } = parser;
  if (!canPassOver || !passedOverLines) return undefined;
  return {
    nextCandidate: (bytes, from, to) => candidates.nextCandidate(bytes, from, to),
    ...(format === 'postgres-csv' ? { quote: CSV_QUOTE } : {}),
    canSkip: () => canPassOver.call(parser) || (parser.openRecordMarks?.() ?? false),
    onSkipped: (lines) => passedOverLines.call(parser, lines),
    ...(format === 'docker-json' ? { wrapped: DOCKER_ENTRIES } : format === 'cri' ? { wrapped: CRI_ENTRIES } : {}),
  };
}
