import { readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { unreadErrorSample, type Incident } from '../detect/detectIncident.js';
import { IncidentScanner, type ScannedFormat } from '../detect/scanner.js';
import { countByte } from '../detect/wasm/countByte.js';
import type { MultiNeedleSearch } from '../detect/wasm/multiNeedle.js';
import { LogTimes } from './logTimes.js';
import { RECORD_REACH, RecordReader, REPEATS_BATCH, UNDECIDED } from './recordAt.js';

/** Bytes read at a time. */
export const CHUNK = 4 * 1024 * 1024;
/** The buffer holds a chunk and what is carried over from the one before (at most a record's reach and a line). */
const CAPACITY = CHUNK + 2 * RECORD_REACH;

export interface ScanCounters {
  bytes: number;
  /** Lines the scanner kept, whose record was parsed. */
  candidates: number;
  incidents: number;
  /** Lines longer than a buffer, passed over. */
  oversized: number;
  /**
   * Lines that hold a sequence error's words but are no record of the format (a log_line_prefix or
   * format that is not the log's): errors not counted, which replay says (as the daemon's
   * source_unparsed problem does).
   */
  unreadable: number;
  /** The first of them, up to the error's words (what follows may hold row data). */
  unreadableSample?: string;
}

/**
 * Hits of one error that a template decided one after another (RecordReader.decideRepeats), handed
 * out at once: the first's incident, then `count` more that are that incident but for their offset,
 * pid and time (`epochs[0, count)`: each time's LogTimes.gapEpochOf, NaN without one), the last of
 * them at `lastTime`. Valid during the call only (`epochs` is reused).
 */
export interface RepeatRun {
  first: Incident;
  count: number;
  epochs: Float64Array;
  lastTime: string | undefined;
}

/**
 * Where a scan hands what it finds: each incident, in the file's order. When it has `repeats`, a
 * stderr scan hands a run of repeats (RepeatRun) as one call there instead of an incident each
 * (replay's tally: a busy log's ~140,000 errors a GiB are mostly such runs).
 */
export interface IncidentSink {
  (incident: Incident): void;
  repeats?: (run: RepeatRun) => void;
}

/** What a scan hands out: an incident, or a run of repeats. */
export type Found = Incident | RepeatRun;

/** Hands `found` to `sink` as the scan would have (a run to its `repeats`, which it has when it was given runs). */
export function handOn(sink: IncidentSink, found: Found): void {
  if ('epochs' in found) sink.repeats!(found);
  else sink(found);
}

/**
 * A sink that keeps what it is handed in `into`, in order: runs of repeats too (their epochs
 * copied) when `runs`, else an incident each.
 */
export function keeping(into: Found[], runs: boolean): IncidentSink {
  const sink: IncidentSink = (incident) => void into.push(incident);
  if (runs) sink.repeats = (run) => void into.push({ ...run, epochs: run.epochs.slice(0, run.count) });
  return sink;
}

/**
 * A scan that failed part way (a .gz cut short or damaged, a read error): what it found up to there
 * was handed on, and these are its counts; `cause` is why it stopped.
 */
export class PartlyScanned extends Error {
  constructor(
    override readonly cause: Error,
    readonly counters: ScanCounters,
  ) {
    super(cause.message, { cause });
  }
}

export const newScanCounters = (): ScanCounters => ({ bytes: 0, candidates: 0, incidents: 0, oversized: 0, unreadable: 0 });

/** Adds `from`'s counts to `into` (the first unreadable line stays the first). */
export function addScanCounters(into: ScanCounters, from: ScanCounters): void {
  into.bytes += from.bytes;
  into.candidates += from.candidates;
  into.incidents += from.incidents;
  into.oversized += from.oversized;
  into.unreadable += from.unreadable;
  if (into.unreadableSample === undefined && from.unreadableSample !== undefined) into.unreadableSample = from.unreadableSample;
}

/** Counts a line its format took no record from, when it holds a sequence error's words (the daemon's rule, SourcePipeline.noteUnparsed). */
export function noteUnreadable(counters: ScanCounters, line: string): void {
  const sample = unreadErrorSample(line);
  if (sample === undefined) return;
  counters.unreadable++;
  counters.unreadableSample ??= sample;
}

export interface RangeScan {
  format: ScannedFormat;
  logLinePrefix: string;
  /** The name records and incidents carry (the file's path). */
  source: string;
}

/**
 * What scanning a log takes, made once and used for every piece of it a thread scans: the scanner
 * (its search made once), the record reader (its parser and compiled prefix), the two read buffers.
 * The buffers are the scanner's own, inside the WebAssembly search's memory where it has one: the
 * file is read straight into what is searched, with no copy in between.
 */
export class ScanTools {
  readonly scanner: IncidentScanner;
  readonly reader: RecordReader;
  readonly buffers: readonly Buffer[];

  constructor(readonly scan: RangeScan) {
    this.scanner = new IncidentScanner(scan.format, scan.logLinePrefix, { buffers: [CAPACITY, CAPACITY] });
    this.buffers = this.scanner.buffers;
    this.reader = new RecordReader(scan.format, scan.logLinePrefix, scan.source);
  }
}

/**
 * Finds the incidents of a piece of a log, chunk by chunk: the shared scanner picks the candidate
 * lines out of each chunk with native searches, and only their records are decoded and parsed (by
 * the format's own parser, then detectIncident). Chunks are cut before a line that begins a record
 * (IncidentScanner.beginsRecord) with a record's reach still ahead, so the records found do not
 * depend on where chunks, or the ranges of parallel scans, are cut.
 */
export class ChunkScan {
  readonly counters = newScanCounters();
  /** A candidate at or past the range's end was reached: the rest belongs to the next range. */
  done = false;
  /**
   * stderr, with onIncident.repeats: the hits one template decided one after another (the first's
   * incident, the last's start in the chunk), handed out as one run when another incident comes, a
   * batch begins or the chunk ends; the epochs of the further hits' times, and what reads them.
   */
  private run: { slot: number; first: Incident; count: number; last: number } | undefined;
  private epochs = new Float64Array(1024);
  private readonly times = new LogTimes();
  private readonly scanner: IncidentScanner;
  private readonly reader: RecordReader;
  /** csvlog: records are framed by their quotes (CsvlogParser's rule), counted from the range's start. */
  private readonly framedByQuotes: boolean;
  /** csvlog: the quotes before the next byte to scan are odd (it lies inside a quoted field). */
  private quoted = false;
  /**
   * stderr: repeats are decided a batch of candidates at a time, in the search's module (a candidate
   * is its line's start); a line that begins with a TAB goes on with the record before it.
   */
  private readonly stderr: boolean;
  /** csvlog: the search's module, once it searched, where chunks read into its memory have their quotes counted. */
  private inPlace: MultiNeedleSearch['instance'];

  /** Candidates at absolute offsets from `rangeEnd` on are not this scan's. */
  constructor(
    tools: ScanTools,
    private readonly rangeEnd: number,
    private readonly onIncident: IncidentSink,
  ) {
    this.scanner = tools.scanner;
    this.reader = tools.reader;
    this.framedByQuotes = tools.scan.format === 'postgres-csv';
    this.stderr = tools.scan.format === 'postgres-stderr';
  }

  /**
   * csvlog: the quotes in bytes[from, to). Counted where they lie when the chunk was read into the
   * search's memory (multiNeedle.c's count_byte), else by countByte, which copies them into its
   * own: the copies had cost a csvlog replay ~0.12 s a GiB, as much as the counting.
   */
  private quotes(bytes: Buffer, from: number, to: number): number {
    const instance = (this.inPlace ??= this.scanner.search?.instance);
    return instance && bytes.buffer === instance.memory ? instance.exports.count_byte(bytes.byteOffset, from, to, QUOTE) : countByte(bytes, from, to, QUOTE);
  }

  /** csvlog: what follows is read afresh (after a line dropped as over-long: CsvlogParser too starts its framing again after a gap). */
  reframe(): void {
    this.quoted = false;
  }

  /**
   * Where to stop scanning bytes[0, length) so that what follows is carried over: before the last
   * line that begins a record with a record's reach after it (csvlog: where its quotes are even, a
   * record boundary, whatever the lines look like). `final`: no data follows, scan it all.
   */
  cutAt(bytes: Buffer, length: number, final: boolean): number {
    if (final) return length;
    const latest = length - RECORD_REACH;
    let lineStart = latestLineStart(bytes, latest);
    let quoted = this.framedByQuotes && lineStart > 0 ? this.quoted !== ((this.quotes(bytes, 0, lineStart) & 1) === 1) : false;
    for (let lines = 0; lineStart > 0 && lines < 10_000; lines++) {
      if (!quoted && this.scanner.beginsRecord(bytes, lineStart)) return lineStart;
      const before = latestLineStart(bytes, lineStart - 1);
      if (this.framedByQuotes && this.quotes(bytes, before, lineStart) & 1) quoted = !quoted;
      lineStart = before;
    }
    // No record begins in the last 10,000 lines (one runaway csvlog record?): cut at a line all the same.
    return Math.max(0, latestLineStart(bytes, latest));
  }

  /** Scans bytes[0, end), the bytes up to `length` being there to complete records; `base` is bytes[0]'s offset in the file. */
  scan(bytes: Buffer, end: number, length: number, base: number): void {
    if (this.done || end === 0) return;
    let counted = 0;
    let last = -1;
    const starts = this.scanner.candidateLines(bytes, 0, end);
    /** stderr: the candidates of this batch that a template stands for (RecordReader.decideRepeats). */
    let decided: Uint8Array | undefined;
    for (let i = 0; i < starts.length; i++) {
      const hit = starts[i]!;
      let start = hit;
      if (this.framedByQuotes) {
        // The quotes up to this line: inside a quoted field it is a value's text, and its record began before.
        if (this.quotes(bytes, counted, hit) & 1) this.quoted = !this.quoted;
        counted = hit;
        // Walked back no further than the candidate before: reached with the quotes still odd, this
        // line is inside the same quoted field as that one, whose record is `last` (or before it).
        // (Walked back 128 KiB for each, a statement of pasted csvlog lines took ~1 ms a line.)
        if (this.quoted) start = this.scanner.quotedRecordStart(bytes, hit, i > 0 ? starts[i - 1]! : 0);
        if (start <= last) continue;
        last = start;
      }
      if (base + start >= this.rangeEnd) {
        this.endRun(bytes);
        this.done = true;
        return;
      }
      this.counters.candidates++;
      if (this.stderr && i % REPEATS_BATCH === 0) {
        // A run is a slot's: the module's slots may hold other templates from the next batch on
        // (a field trial's log had hits of one constraint counted under another's).
        this.endRun(bytes);
        decided = this.reader.decideRepeats(this.scanner.search, bytes, starts, i, length);
      }
      const slot = decided ? decided[i % REPEATS_BATCH]! : UNDECIDED;
      if (slot !== UNDECIDED && this.run?.slot === slot) {
        this.extendRun(bytes, start);
        this.counters.incidents++;
        continue;
      }
      const incident =
        slot === UNDECIDED ? this.reader.incidentAt(bytes, start, length, base + start) : this.reader.repeatIncident(slot, bytes, start, base + start);
      // (A candidate that holds no incident leaves the run open: a DETAIL line with %e's SQLSTATE.)
      if (!incident) {
        // A stderr TAB line here goes on with a record that began before the chunk: one longer than
        // a chunk, cut inside (no record began in its last 10,000 lines), passed over as over-long.
        if (this.reader.unrecognised && this.stderr && bytes[start] === TAB) this.counters.oversized++;
        else if (this.reader.unrecognised) noteUnreadable(this.counters, lineText(bytes, start, length));
        continue;
      }
      this.counters.incidents++;
      this.endRun(bytes);
      if (slot !== UNDECIDED && this.onIncident.repeats) this.run = { slot, first: incident, count: 0, last: start };
      else this.onIncident(incident);
    }
    this.endRun(bytes);
    if (this.framedByQuotes && this.quotes(bytes, counted, end) & 1) this.quoted = !this.quoted;
  }

  /** One more hit of the open run, at bytes[start]: its time's epoch kept. */
  private extendRun(bytes: Buffer, start: number): void {
    const run = this.run!;
    const time = this.reader.repeatTime(run.slot);
    if (run.count === this.epochs.length) {
      const more = new Float64Array(2 * this.epochs.length);
      more.set(this.epochs);
      this.epochs = more;
    }
    this.epochs[run.count++] = time ? this.times.gapEpochOfBytes(bytes, start + time[0], start + time[1]) : NaN;
    run.last = start;
  }

  /** Hands out the open run (a single hit as the incident it is), before anything found after it. */
  private endRun(bytes: Buffer): void {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    if (run.count === 0) return this.onIncident(run.first);
    const time = this.reader.repeatTime(run.slot);
    this.onIncident.repeats!({
      first: run.first,
      count: run.count,
      epochs: this.epochs,
      lastTime: time && bytes.toString('latin1', run.last + time[0], run.last + time[1]),
    });
  }
}

const QUOTE = 0x22;
const TAB = 0x09;

/** The text of the line at bytes[start] (its first 4 KiB at most), without its newline. */
function lineText(bytes: Buffer, start: number, end: number): string {
  const newline = bytes.indexOf(0x0a, start);
  return bytes.toString('utf8', start, Math.min(newline === -1 || newline > end ? end : newline, start + 4096));
}

/** The start of the line holding byte `at` (0 when it is the first), -1 when at < 0. */
function latestLineStart(bytes: Buffer, at: number): number {
  if (at < 0) return -1;
  return at === 0 ? 0 : bytes.lastIndexOf(0x0a, at - 1) + 1;
}

/**
 * Scans the candidates at offsets [start, end) of a plain file, chunk by chunk, reading on past
 * `end` by a record's reach. `start` must be where a record may begin (the file's start, or a cut
 * made by parallel.ts's cutAt). Two ways to read, the same chunks and cuts:
 *
 * - readAhead(): one scanning thread (--threads 1). The next chunk is read into the second buffer
 *   on libuv's thread pool while this one is searched: the copy from the page cache (~0.1 s of a
 *   1 GiB log) is done by another core, off the scan's path.
 * - step(): several scanning threads (parallel.ts), which keep the cores busy by themselves. Each
 *   reads its chunks synchronously into its one buffer: no hop to the thread pool and back per
 *   chunk, no third and fourth thread competing for the 2 cores of the bench machine. 1 GiB read
 *   so and searched took ~0.65 s of CPU, against ~0.85-0.9 s read ahead.
 */
export class FileRangeScan {
  readonly chunks: ChunkScan;
  /** The offset read up to. */
  position: number;
  private readonly stop: number;
  /** Bytes carried over at the start of the buffer the next chunk is read into. */
  private carry = 0;
  /** The file offset of that buffer's first byte. */
  private base: number;
  /** Inside a line longer than a chunk: its bytes are dropped up to its end. */
  private dropping = false;
  private finished = false;

  constructor(
    private readonly fd: number,
    private readonly start: number,
    private readonly end: number,
    private readonly tools: ScanTools,
    onIncident: IncidentSink,
    size: number,
  ) {
    this.stop = Math.min(size, end + RECORD_REACH);
    this.chunks = new ChunkScan(tools, end, onIncident);
    this.base = this.position = start;
  }

  get counters(): ScanCounters {
    return this.chunks.counters;
  }

  /** Reads (synchronously) and scans the next chunk; false once the range is done. */
  step(): boolean {
    if (this.finished) return false;
    const buffer = this.tools.buffers[0]!;
    const want = this.wanted();
    const chunk = this.received(buffer, want > 0 ? readSync(this.fd, buffer, this.carry, want, this.position) : 0);
    this.scanChunk(buffer, chunk);
    if (chunk.final || this.chunks.done) return !(this.finished = true);
    // What follows the cut is read again with the next chunk: moved to the buffer's start.
    buffer.copy(buffer, 0, chunk.length - chunk.rest, chunk.length);
    this.carryOver(chunk);
    return true;
  }

  /**
   * Reads and scans the whole range, each chunk read while the one before is scanned; `between`
   * runs after each chunk. What a chunk carries over is read again from the file into the next
   * buffer, with the new bytes, instead of copied there: the copy (a record's reach, 1 MiB a chunk,
   * ~20 ms of this thread per GiB) is then done by the read, on libuv's thread pool.
   */
  async readAhead(handle: FileHandle, between?: () => Promise<void>): Promise<void> {
    const buffers = this.tools.buffers;
    /** Reads the carried-over bytes again and the next chunk after them; resolves to the new bytes read. */
    const readInto = async (buffer: Buffer, carriedFrom: Buffer, carriedAt: number): Promise<number> => {
      const want = this.wanted();
      const { carry } = this;
      if (want === 0 && carry === 0) return 0;
      const { bytesRead } = await handle.read(buffer, 0, carry + want, this.position - carry);
      if (bytesRead >= carry) return bytesRead - carry;
      // The file is shorter now than what was read of it (truncated while replayed): what was
      // carried over is kept as it was read, and nothing follows it.
      carriedFrom.copy(buffer, 0, carriedAt, carriedAt + carry);
      return 0;
    };
    let current = 0;
    let pending = readInto(buffers[0]!, buffers[0]!, 0);
    // Should a scan throw, the read in flight must not become an unhandled rejection.
    pending.catch(() => {});
    try {
      for (;;) {
        const buffer = buffers[current]!;
        const chunk = this.received(buffer, await pending);
        const last = chunk.final;
        if (!last) {
          this.carryOver(chunk);
          pending = readInto(buffers[1 - current]!, buffer, chunk.length - chunk.rest);
          pending.catch(() => {});
        }
        this.scanChunk(buffer, chunk);
        if (last || this.chunks.done) break;
        await between?.();
        current = 1 - current;
      }
    } finally {
      await pending.catch(() => {});
    }
  }

  /** How many bytes the next read takes (0: the range is read). */
  private wanted(): number {
    return Math.min(CHUNK, CAPACITY - this.carry, this.stop - this.position);
  }

  /** A chunk read into `buffer` after what was carried over: where it is scanned from and cut, what is carried over from it. */
  private received(buffer: Buffer, bytesRead: number): Chunk {
    const { chunks } = this;
    chunks.counters.bytes += Math.max(0, Math.min(this.position + bytesRead, this.end) - Math.max(this.position, this.start));
    this.position += bytesRead;
    const length = this.carry + bytesRead;
    const final = bytesRead === 0 || this.position >= this.stop;
    let from = 0;
    if (this.dropping) {
      const newline = buffer.indexOf(0x0a);
      from = newline === -1 || newline >= length ? length : newline + 1;
      this.dropping = from === length;
      chunks.reframe();
    }
    let cut = Math.max(from, chunks.cutAt(buffer, length, final));
    if (!final && length - cut > CHUNK) {
      // What would be carried over is longer than a chunk: a line that long holds no record worth parsing.
      chunks.counters.oversized++;
      const newline = buffer.lastIndexOf(0x0a, length - 1);
      cut = Math.max(cut, newline + 1);
      if (length - cut > CHUNK) {
        this.dropping = true;
        cut = length;
      }
    }
    return { from, cut, length, final, base: this.base, rest: final || this.dropping ? 0 : length - cut };
  }

  private scanChunk(buffer: Buffer, { from, cut, length, base }: Chunk): void {
    if (cut > from) this.chunks.scan(buffer.subarray(from, length), cut - from, length - from, base + from);
  }

  /** The next buffer starts with the chunk's rest. */
  private carryOver(chunk: Chunk): void {
    this.base += chunk.length - chunk.rest;
    this.carry = chunk.rest;
  }
}

interface Chunk {
  /** bytes[from, cut) are scanned, bytes up to `length` complete their records; bytes[length - rest, length) are carried over. */
  from: number;
  cut: number;
  length: number;
  rest: number;
  /** No data follows. */
  final: boolean;
  /** The file offset of the buffer's first byte. */
  base: number;
}

/**
 * One thread's scan of a range of an open file handle (readAhead), the event loop let run between
 * chunks (the database modules loading, the connection).
 */
export async function scanFileRange(
  handle: FileHandle,
  start: number,
  end: number,
  scan: RangeScan | ScanTools,
  onIncident: IncidentSink,
  onProgress?: (position: number) => void,
  signal?: AbortSignal,
): Promise<ScanCounters> {
  const { size } = await handle.stat();
  const tools = scan instanceof ScanTools ? scan : new ScanTools(scan);
  const range = new FileRangeScan(handle.fd, start, end, tools, onIncident, size);
  await range.readAhead(handle, async () => {
    onProgress?.(range.position);
    signal?.throwIfAborted();
  });
  onProgress?.(range.position);
  return range.counters;
}

/**
 * The same over a stream (a decompressed file), chunk by chunk, from its start to its end. Its parts
 * are gathered into the scan's own buffer, inside the search's memory (searched where they lie),
 * what a chunk carries over moved to its start: no buffer made per chunk. (Each chunk had been a
 * new 5 MiB Buffer.concat, searched through the module's scratch: a fresh page's first use costs
 * ~13 µs on the 2-core bench machine, ~1,300 of them a chunk.)
 */
export async function scanStream(
  stream: AsyncIterable<Buffer>,
  scan: RangeScan,
  onIncident: IncidentSink,
  onProgress?: () => void,
  signal?: AbortSignal,
): Promise<ScanCounters> {
  const tools = new ScanTools(scan);
  const chunks = new ChunkScan(tools, Number.MAX_SAFE_INTEGER, onIncident);
  const buffer = tools.buffers[0]!;
  let gathered = 0;
  let base = 0;
  /** Scans what is gathered up to its cut; false (nothing scanned) while a line longer than that may still end. */
  const scanGathered = (final: boolean): boolean => {
    let cut = chunks.cutAt(buffer, gathered, final);
    if (cut === 0 && !final) {
      if (gathered < buffer.length) return false;
      chunks.counters.oversized++;
      const newline = buffer.lastIndexOf(0x0a, gathered - 1);
      cut = newline === -1 ? gathered : newline + 1;
    }
    chunks.scan(buffer.subarray(0, gathered), cut, gathered, base);
    base += cut;
    buffer.copyWithin(0, cut, gathered);
    gathered -= cut;
    return true;
  };
  try {
    for await (const part of stream) {
      signal?.throwIfAborted();
      chunks.counters.bytes += part.length;
      for (let at = 0; at < part.length;) {
        const taken = part.copy(buffer, gathered, at, at + Math.min(part.length - at, buffer.length - gathered));
        gathered += taken;
        at += taken;
        if (gathered >= CHUNK + RECORD_REACH && scanGathered(false)) onProgress?.();
      }
    }
  } catch (error) {
    // A damaged stream (a truncated .gz): what it gave up to there is scanned all the same (lose
    // nothing), then the error is the caller's to say, with what was scanned.
    if (signal?.aborted) throw error;
    if (gathered > 0) scanGathered(true);
    throw new PartlyScanned(error as Error, chunks.counters);
  }
  if (gathered > 0) scanGathered(true);
  return chunks.counters;
}
