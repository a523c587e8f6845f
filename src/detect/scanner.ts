import { CSV_RECORD_START } from '../formats/CsvlogParser.js';
import { INCIDENT_TEXTS } from './detectIncident.js';
import { MultiNeedleCandidates } from './wasm/candidates.js';
import { countByte } from './wasm/countByte.js';
import { createMultiNeedleSearch, wasmSimdAvailable, type MultiNeedleSearch } from './wasm/multiNeedle.js';

/**
 * The byte-level pre-check shared by the live path (followers, parsers) and replay: which lines of
 * raw log data may carry a record detectIncident acts on. Everything else is passed over without
 * being decoded or parsed, so the speed of both paths is that of a native search over whole
 * chunks, and their coverage is the same by construction (one set of needles, built from
 * detectIncident's own INCIDENT_TEXTS).
 *
 * The promise, for the formats it filters (`scanner.filters`): every record detectIncident acts on,
 * as that format's full parser assembles it, begins at an offset candidateLines() returns (or
 * nextCandidate() reaches). Lines it returns may still hold no incident: the parser and detector
 * decide (test/detect/scanner.unit.test.ts holds it to this on the fuzz corpus and on every
 * sample of test/fixtures/logs).
 *
 * How it stays fast: where WebAssembly SIMD is available (Node 20 has it), all the needles are
 * searched in one pass (wasm/multiNeedle.ts, through wasm/candidates.ts: about half the CPU of the
 * passes below). Otherwise, or with `{ wasm: false }`, each needle is searched by its cheapest
 * piece (an "anchor" of at most 7 bytes, which Buffer.indexOf searches with memchr on its first
 * byte), chosen from the byte frequencies of the log itself, and a hit is verified against the
 * whole needle around it. Both give the same answers (test/detect/wasm/candidates.unit.test.ts).
 */

export interface ScannerOptions {
  /** false: the indexOf passes even where WebAssembly SIMD is available (tests compare the two paths). */
  wasm?: boolean;
  /**
   * Sizes of buffers to make inside the multi-needle search's memory (`buffers`): data read into
   * them is searched where it lies, without a copy (replay's read buffers).
   */
  buffers?: number[];
}

/** The formats whose lines the scanner can tell apart; the others are parsed line by line. */
export const SCANNED_FORMATS = ['postgres-stderr', 'postgres-csv', 'postgres-json'] as const;
export type ScannedFormat = (typeof SCANNED_FORMATS)[number];

export function isScannedFormat(format: string): format is ScannedFormat {
  return (SCANNED_FORMATS as readonly string[]).includes(format);
}

const NEWLINE = 0x0a;
const TAB = 0x09;
const QUOTE = 0x22;
/** Longest anchor: Buffer.indexOf switches from memchr to Boyer-Moore-Horspool (slower on logs) at 8 bytes. */
const MAX_ANCHOR = 7;
/** Bytes of the first data seen that the anchors are chosen from. */
const SAMPLE_BYTES = 64 * 1024;
/** The bytes searched by every needle before the next: what stays in a processor's L2 cache. */
const WINDOW_BYTES = 192 * 1024;
/** Above this many hits in a window they are sorted by sort() (insertion is quadratic). */
const INSERTION_SORT_MAX = 64;
/** How far back a csvlog line may be from the line its record begins on (csvlog's record cap). */
const MAX_CSV_WALK_BACK = 128 * 1024;

/** A needle as the format writes it, and where in it the anchor of its pass starts. */
interface Member {
  text: string;
  bytes: Buffer;
  offset: number;
}

/**
 * One native search over the data: an anchor of at most 7 bytes, and the needles that hold it (most
 * often one; `sequence` and `_seq` share `seq`), each verified whole around a hit.
 */
interface Pass {
  anchor: Buffer;
  members: Member[];
  /** The smallest member offset: the anchor is searched from `from + lead`. */
  lead: number;
}

/**
 * The needles of a format, as its lines carry them: the message texts unchanged (none holds a
 * character csvlog or jsonlog escape), the SQLSTATEs where the format puts them: csvlog's
 * `,23505,` column, jsonlog's `"23505"` value, stderr's %e with the prefix's text after it, or
 * log_error_verbosity = verbose's `23505: ` before the message.
 */
export function scannerNeedles(format: ScannedFormat, logLinePrefix: string): string[] {
  const codes = INCIDENT_TEXTS.sqlstates;
  switch (format) {
    case 'postgres-csv':
      return [...INCIDENT_TEXTS.message, ...codes.map((code) => `,${code},`)];
    case 'postgres-json':
      return [...INCIDENT_TEXTS.message, ...codes.map((code) => `"${code}"`)];
    case 'postgres-stderr': {
      const after = textAfterSqlstate(logLinePrefix);
      const verbose = codes.map((code) => `${code}: `);
      if (after === undefined) return [...INCIDENT_TEXTS.message, ...verbose];
      // With %e the prefix says the SQLSTATE (a verbose message's own code is then not needed),
      // unless %e comes after %q: a background process (an apply worker, pg_cron) ends its prefix
      // at %q, and its lines carry the code only before a verbose message.
      const prefixed = codes.map((code) => code + after);
      return [...INCIDENT_TEXTS.message, ...prefixed, ...(after !== '' && sqlstateAfterQ(logLinePrefix) ? verbose : [])];
    }
  }
}

/**
 * The string pre-check a stderr parser passes lines over by (StderrPrefixParser's `interesting`):
 * whether a line holds one of the scanner's needles, as a stderr line carries them (inside
 * docker-json and CRI entries too). The daemon and replay's line-by-line formats use this one, so
 * that the parser never passes over a line the scanner keeps.
 */
export function holdsStderrNeedle(logLinePrefix: string): (line: string) => boolean {
  const needles = scannerNeedles('postgres-stderr', logLinePrefix);
  return (line) => needles.some((needle) => line.includes(needle));
}

/** Whether the prefix's %e comes after its %q (so lines of background processes do not print it). */
function sqlstateAfterQ(prefix: string): boolean {
  const q = prefix.indexOf('%q');
  return q !== -1 && prefix.slice(q).search(/%-?\d*e/) !== -1;
}

/** The literal text right after %e in a log_line_prefix (at most 2 characters), '' when none; undefined without %e. */
function textAfterSqlstate(prefix: string): string | undefined {
  const at = prefix.search(/%-?\d*e/);
  if (at === -1) return undefined;
  const escape = /%-?\d*e/.exec(prefix.slice(at))![0];
  // Padding (%-6e) prints spaces of its own: nothing after it is fixed.
  if (escape.length > 2) return '';
  let after = '';
  for (let i = at + 2; i < prefix.length && after.length < 2; i++) {
    if (prefix[i] !== '%') {
      after += prefix[i];
      continue;
    }
    if (prefix[i + 1] === '%') {
      after += '%';
      i++;
      continue;
    }
    break;
  }
  return after;
}

/**
 * One scanner per source (or per replayed file): the needles of its format, and the anchors chosen
 * from the first data it sees. Not shared between threads; cheap to make.
 */
export class IncidentScanner {
  /** False for formats the scanner cannot filter (syslog, container logs, application logs, auto): parse every line. */
  readonly filters: boolean;
  /** The needles, as text (for messages, and for a string pre-check such as StderrPrefixParser's `interesting`). */
  readonly needles: readonly string[];
  private readonly format: ScannedFormat | undefined;
  private searched: Pass[] | undefined;
  /** nextCandidate's memory: the buffer it last searched and where each needle next verified in it (-1: not again). */
  private next: { bytes: Buffer; from: number; at: number[] } | undefined;
  /** The one-pass search, made on first use; null: the indexOf passes (no WebAssembly SIMD, or `wasm: false`). */
  private multi: MultiNeedleCandidates | null | undefined;
  private plainBuffers: Buffer[] | undefined;

  constructor(
    format: string,
    logLinePrefix: string,
    private readonly options: ScannerOptions = {},
  ) {
    this.format = isScannedFormat(format) ? format : undefined;
    this.filters = this.format !== undefined;
    this.needles = this.format ? scannerNeedles(this.format, logLinePrefix) : [];
  }

  /** Whether the one-pass WebAssembly search answers (false: the indexOf passes). */
  get wasm(): boolean {
    return this.multiNeedle() !== null;
  }

  /** The one-pass WebAssembly search, where it answers (replay decides its repeats in its module: RecordReader.decideRepeats). */
  get search(): MultiNeedleSearch | undefined {
    return this.multiNeedle()?.search;
  }

  /**
   * The buffers asked for in the options (`buffers`), inside the search's memory when it is the
   * WebAssembly one (read into them: no copy when searched), plain buffers otherwise.
   */
  get buffers(): readonly Buffer[] {
    const multi = this.multiNeedle();
    if (multi) return multi.search.buffers;
    this.plainBuffers ??= (this.options.buffers ?? []).map((size) => Buffer.allocUnsafe(size));
    return this.plainBuffers;
  }

  /**
   * Chooses the anchors (the WebAssembly search's filter, or the indexOf passes) from `sample`, data
   * like what will be searched (a followed file's last bytes), and makes the search now instead of
   * on the first search: on a quiet log that was the first error after a start, which waited ~6 ms
   * for it (bench/heal.mjs's first trial, profiled). Any sample gives the same answers (candidates
   * are verified whole): it decides only how fast.
   */
  prepare(sample: Buffer): void {
    if (!this.format) return;
    const multi = this.multi === undefined ? this.multiNeedle() : this.multi;
    if (multi) multi.search.lineHits(sample);
    else this.needlesFor(sample);
  }

  private multiNeedle(): MultiNeedleCandidates | null {
    if (this.multi !== undefined) return this.multi;
    this.multi = null;
    if (this.format && this.options.wasm !== false && wasmSimdAvailable()) {
      const search = createMultiNeedleSearch(this.needles, { buffers: this.options.buffers ?? [] });
      if (search.simd) this.multi = new MultiNeedleCandidates(search, this, this.format === 'postgres-csv');
    }
    return this.multi;
  }

  /**
   * The offsets, ascending and each once, where a line that may begin a record holding an incident
   * starts within bytes[from, to). `to` must be a line end (or the end of the data): a line cut
   * there is taken as ending there. A hit on a line that continues a record (stderr's TAB lines, a
   * csvlog record's later lines) gives the line that record begins on, if it is at or after `from`
   * (csvlog: the nearest line shaped like a record's start, and the hit's own line as well).
   */
  candidateLines(bytes: Buffer, from = 0, to = bytes.length): number[] {
    if (!this.format) throw new Error('candidateLines: this format is not scanned (check scanner.filters)');
    const multi = this.multi === undefined ? this.multiNeedle() : this.multi;
    if (multi) return multi.candidateLines(bytes, from, to);
    const region = bytes.subarray(from, to);
    const needles = this.needlesFor(region);
    const starts: number[] = [];
    /** Each needle's hit before: its line and its record's start (recordStartAfter). */
    const before = needles.map(() => ({ line: -1, start: -1 }));
    // Every needle is searched in one window before the next window: the window stays in the
    // processor's cache while it is searched again and again. Windows end at line ends (no needle
    // spans lines); a hit walks back through the region for its record's first line.
    for (let windowStart = 0; windowStart < region.length;) {
      const newline = region.indexOf(NEWLINE, Math.min(region.length - 1, windowStart + WINDOW_BYTES));
      const windowEnd = newline === -1 ? region.length : newline + 1;
      const window = region.subarray(windowStart, windowEnd);
      const first = starts.length;
      for (const [n, needle] of needles.entries()) {
        const last = before[n]!;
        for (let at = findNeedle(window, needle, 0); at !== -1;) {
          const lineStart = windowStart + window.lastIndexOf(NEWLINE, at) + 1;
          const start = this.recordStartAfter(region, lineStart, last.line, last.start);
          last.line = lineStart;
          last.start = start;
          // csvlog: a record is framed by its quotes, not by its looks; the hit's own line may begin one too.
          if (start !== lineStart && this.format === 'postgres-csv') starts.push(from + start, from + lineStart);
          else starts.push(from + start);
          const lineEnd = window.indexOf(NEWLINE, at + 1);
          if (lineEnd === -1) break;
          at = findNeedle(window, needle, lineEnd + 1);
        }
      }
      if (starts.length - first > 1) sortUnique(starts, first);
      windowStart = windowEnd;
    }
    return starts;
  }

  /**
   * The start of the first line at or after `from` (and before `to`) that candidateLines would
   * return, or -1: for a reader that passes over everything up to it. Calls that move forward
   * through the same buffer reuse what earlier calls found.
   */
  nextCandidate(bytes: Buffer, from: number, to = bytes.length): number {
    if (!this.format) throw new Error('nextCandidate: this format is not scanned (check scanner.filters)');
    const multi = this.multi === undefined ? this.multiNeedle() : this.multi;
    if (multi) return multi.nextCandidate(bytes, from, to);
    const needles = this.needlesFor(bytes.subarray(from, to));
    if (this.next?.bytes !== bytes || from < this.next.from) this.next = { bytes, from, at: needles.map(() => -2) };
    const memory = this.next;
    memory.from = from;
    let hit = -1;
    needles.forEach((needle, i) => {
      // A needle found before `from` may occur again after it: search on (-2: not searched yet).
      if (memory.at[i] === -2 || (memory.at[i]! !== -1 && memory.at[i]! < from)) memory.at[i] = findNeedle(bytes, needle, from);
      const at = memory.at[i]!;
      if (at !== -1 && (hit === -1 || at < hit)) hit = at;
    });
    if (hit === -1 || hit >= to) return -1;
    // The line its record begins on, which comes first (csvlog: candidateLines gives the hit's own line too).
    return this.recordStart(bytes, bytes.lastIndexOf(NEWLINE, hit) + 1, from);
  }

  /**
   * Whether the line at `lineStart` may begin a record by its first bytes alone (stderr: not a TAB
   * continuation; csvlog: shaped like a record's start; jsonlog: any line). A reader that cuts a log
   * into pieces cuts before such lines: recordStart() never walks back past one, so every way of
   * cutting finds the same candidates.
   */
  beginsRecord(bytes: Buffer, lineStart: number): boolean {
    if (this.format === 'postgres-stderr') return bytes[lineStart] !== TAB;
    if (this.format === 'postgres-csv') return CSV_RECORD_START.test(bytes.toString('latin1', lineStart, Math.min(bytes.length, lineStart + 64)));
    return true;
  }

  /**
   * The line the record holding `lineStart`'s line begins on, not before `floor`: for stderr the
   * line a run of TAB continuation lines continues, for csvlog the nearest line shaped like the
   * start of a record (the rule CsvlogParser itself resynchronises by).
   */
  recordStart(bytes: Buffer, lineStart: number, floor: number): number {
    if (this.format === 'postgres-stderr') {
      let start = lineStart;
      while (start > floor && bytes[start] === TAB) start = Math.max(floor, lineBefore(bytes, start));
      return start;
    }
    if (this.format === 'postgres-csv') {
      for (let start = lineStart; lineStart - start <= MAX_CSV_WALK_BACK; start = Math.max(floor, lineBefore(bytes, start))) {
        if (this.beginsRecord(bytes, start)) return start;
        if (start <= floor) break;
      }
    }
    return lineStart;
  }

  /**
   * recordStart for hits taken in ascending order, `lastLine` the hit before's line (-1: none) and
   * `lastStart` its record's start. A stderr record's TAB lines are walked back no further than that
   * line; reached, the record is that hit's. (Walked back whole for each hit, a statement of 50,000
   * lines of pasted log text took ~17 s: a field trial's bulk INSERT.) csvlog walks back by its own rule.
   */
  recordStartAfter(bytes: Buffer, lineStart: number, lastLine: number, lastStart: number): number {
    if (this.format !== 'postgres-stderr' || lastLine === -1) return this.recordStart(bytes, lineStart, 0);
    const start = this.recordStart(bytes, lineStart, lastLine);
    return start === lastLine ? lastStart : start;
  }

  /**
   * csvlog, for a line that lies inside a quoted field (an odd number of quotes before it since a
   * record boundary): the line its record begins on, the nearest before it where the quotes are even
   * (a csvlog record ends at a newline with its quotes balanced), not before `floor` nor further back
   * than a record's reach; -1 when there is none. Framing by quotes is the rule CsvlogParser reads
   * by: a line shaped like a record inside a quoted value (a statement holding pasted log lines) is
   * that value's text.
   */
  quotedRecordStart(bytes: Buffer, lineStart: number, floor: number): number {
    let quoted = true;
    for (let line = lineStart; line > floor && lineStart - line <= MAX_CSV_WALK_BACK;) {
      const before = Math.max(floor, lineBefore(bytes, line));
      if (countByte(bytes, before, line, QUOTE) & 1) quoted = !quoted;
      line = before;
      if (!quoted) return line;
    }
    return -1;
  }

  /** The passes over the data (needles grouped by shared anchors), chosen from the first data seen. */
  private needlesFor(sample: Buffer): Pass[] {
    if (!this.searched) this.searched = passesFor(this.needles, byteFrequencies(sample), sample.subarray(0, SAMPLE_BYTES));
    return this.searched;
  }
}

/** Sorts starts[from..] in place and drops repeats (also of the last one before `from`: a record walked back to). */
function sortUnique(starts: number[], from: number): void {
  if (starts.length - from > INSERTION_SORT_MAX) {
    const tail = starts.slice(from).sort((a, b) => a - b);
    for (let i = 0; i < tail.length; i++) starts[from + i] = tail[i]!;
  } else {
    // In place, by insertion: a window's hits are usually few, in a few ascending runs (one per
    // pass): no array and no comparator call per window, as sort() on a slice costs.
    for (let i = from + 1; i < starts.length; i++) {
      const start = starts[i]!;
      let j = i - 1;
      for (; j >= from && starts[j]! > start; j--) starts[j + 1] = starts[j]!;
      starts[j + 1] = start;
    }
  }
  let kept = from;
  for (let i = from; i < starts.length; i++) if (kept === 0 || starts[kept - 1]! < starts[i]!) starts[kept++] = starts[i]!;
  starts.length = kept;
}

/** The start of the line before the one at `lineStart` (0 for the first). */
function lineBefore(bytes: Buffer, lineStart: number): number {
  return lineStart < 2 ? 0 : bytes.lastIndexOf(NEWLINE, lineStart - 2) + 1;
}

/**
 * Where a needle of the pass next occurs whole in `bytes` starting at or after `from`, or -1 (the
 * start found is on the line of the first such occurrence, all that callers go by).
 */
function findNeedle(bytes: Buffer, pass: Pass, from: number): number {
  const { anchor, members, lead } = pass;
  for (let at = bytes.indexOf(anchor, from + lead); at !== -1; at = bytes.indexOf(anchor, at + 1)) {
    for (let m = 0; m < members.length; m++) {
      const member = members[m]!;
      const start = at - member.offset;
      if (start >= from && start + member.bytes.length <= bytes.length && matchesAround(bytes, start, member, anchor.length)) return start;
    }
  }
  return -1;
}

/** Whether the whole needle is at `start` (the anchor, `anchorLength` bytes at its offset, is known to be). */
function matchesAround(bytes: Buffer, start: number, member: Member, anchorLength: number): boolean {
  const whole = member.bytes;
  for (let i = 0; i < member.offset; i++) if (bytes[start + i] !== whole[i]) return false;
  for (let i = member.offset + anchorLength; i < whole.length; i++) if (bytes[start + i] !== whole[i]) return false;
  return true;
}

/**
 * A typical server log's bytes, for when the first data seen is too short to go by: ordinary
 * statements, as most of a busy log is.
 */
const PRIOR =
  '2026-11-27 10:00:00.123 UTC [4242] app@app LOG:  duration: 0.042 ms  execute <unnamed>: SELECT id, name, created_at FROM users WHERE id = $1 AND valid = 1\n' +
  '2026-11-27 10:00:00.124 UTC [4243] app@app LOG:  statement: UPDATE ticket SET change_time = current_timestamp, queue_id = 3 WHERE id = 12345\n';

/** Each byte's share of `sample` (blended with PRIOR, so no byte is "never seen"). */
function byteFrequencies(sample: Buffer): Float64Array {
  const counts = new Float64Array(256).fill(0.5);
  const prior = Buffer.from(PRIOR);
  for (const byte of prior) counts[byte]! += 4;
  const end = Math.min(sample.length, SAMPLE_BYTES);
  for (let i = 0; i < end; i++) counts[sample[i]!]!++;
  let total = 0;
  for (const count of counts) total += count;
  for (let i = 0; i < 256; i++) counts[i]! /= total;
  return counts;
}

/**
 * What searching for an anchor costs: memchr stops at every occurrence of its first byte (cheap, in
 * native code), each occurrence of the whole anchor costs a call back into JavaScript (dear), and
 * every pass reads all the data once more (PASS): estimated from the log's byte frequencies.
 */
function anchorCost(anchor: Buffer, frequency: Float64Array, sample?: Buffer): number {
  const STOP = 1;
  const CALL = 40;
  const PASS = 0.005;
  let whole = 1;
  for (const byte of anchor) whole *= frequency[byte]!;
  if (sample !== undefined && sample.length > 0) {
    // The bytes are not independent ('que' in queue, unique, request): the anchor's own count in the
    // sample when higher (counted up to SEEN_ENOUGH: past that it is dear whatever the count).
    let seen = 0;
    for (let at = sample.indexOf(anchor); at !== -1 && seen < SEEN_ENOUGH; at = sample.indexOf(anchor, at + 1)) seen++;
    whole = Math.max(whole, seen / sample.length);
  }
  return PASS + frequency[anchor[0]!]! * STOP + whole * CALL;
}

/** Occurrences of an anchor in the sample past which counting on tells nothing (see anchorCost). */
const SEEN_ENOUGH = 32;

/**
 * Every piece of a needle an anchor may be (3 to MAX_ANCHOR bytes; the whole needle when shorter),
 * as latin1 text: one character per byte, so that pieces are compared as strings (cheap) and are
 * byte strings all the same.
 */
function anchorsOf(needle: string): string[] {
  const pieces: string[] = [];
  for (let length = Math.min(needle.length, 3); length <= Math.min(needle.length, MAX_ANCHOR); length++) {
    for (let offset = 0; offset + length <= needle.length; offset++) pieces.push(needle.slice(offset, offset + length));
  }
  return pieces;
}

/**
 * The passes that find every needle at the least estimated cost: each needle by its cheapest
 * anchor, except where one anchor held by several needles costs less than their own passes
 * together (a pass reads all the data: fewer passes, less memory traffic).
 */
function passesFor(texts: readonly string[], frequency: Float64Array, sample: Buffer): Pass[] {
  const needles = texts.map((text) => Buffer.from(text).toString('latin1'));
  // The estimate from byte frequencies is a lower bound of the cost: the sample is searched only for
  // anchors that could still be chosen.
  const estimates = new Map<string, number>();
  const estimate = (anchor: string) => {
    let known = estimates.get(anchor);
    if (known === undefined) estimates.set(anchor, (known = anchorCost(Buffer.from(anchor, 'latin1'), frequency)));
    return known;
  };
  const costs = new Map<string, number>();
  const cost = (anchor: string) => {
    let known = costs.get(anchor);
    if (known === undefined) costs.set(anchor, (known = anchorCost(Buffer.from(anchor, 'latin1'), frequency, sample)));
    return known;
  };
  const own = needles.map((needle) => {
    let best = { anchor: needle.slice(0, MAX_ANCHOR), cost: Infinity };
    for (const anchor of anchorsOf(needle)) {
      if (estimate(anchor) >= best.cost) continue;
      const real = cost(anchor);
      if (real < best.cost) best = { anchor, cost: real };
    }
    return best;
  });
  const left = new Set(needles.keys());
  const passes: Pass[] = [];
  for (;;) {
    // The shared anchor that saves the most over the needles' own passes, if any saves.
    let best: { anchor: string; holders: number[]; saving: number } | undefined;
    for (const i of left) {
      for (const anchor of anchorsOf(needles[i]!)) {
        const holders = [...left].filter((j) => needles[j]!.includes(anchor));
        if (holders.length < 2) continue;
        const separate = holders.reduce((sum, j) => sum + own[j]!.cost, 0);
        const most = separate - estimate(anchor);
        if (most <= 0 || (best && most <= best.saving)) continue;
        const saving = separate - cost(anchor);
        if (saving > 0 && (!best || saving > best.saving)) best = { anchor, holders, saving };
      }
    }
    if (!best) break;
    passes.push(
      passOf(
        best.anchor,
        best.holders.map((j) => texts[j]!),
      ),
    );
    for (const j of best.holders) left.delete(j);
  }
  for (const i of left) passes.push(passOf(own[i]!.anchor, [texts[i]!]));
  return passes;
}

/** A pass on `anchor` (latin1: a byte per character) verifying the needles `texts`. */
function passOf(anchor: string, texts: string[]): Pass {
  const bytes = Buffer.from(anchor, 'latin1');
  const members = texts.map((text) => {
    const whole = Buffer.from(text);
    return { text, bytes: whole, offset: whole.indexOf(bytes) };
  });
  return { anchor: bytes, members, lead: Math.min(...members.map((m) => m.offset)) };
}
