import type { FileHandle } from 'node:fs/promises';
import type { Incident } from '../detect/detectIncident.js';
import { IncidentScanner, type ScannedFormat } from '../detect/scanner.js';
import { RECORD_REACH, RecordReader } from './recordAt.js';

/** Bytes read at a time. */
export const CHUNK = 4 * 1024 * 1024;
/** A buffer holds a chunk and what is carried over from the one before (at most a record's reach and a line). */
const CAPACITY = CHUNK + 2 * RECORD_REACH;

export interface ScanCounters {
  bytes: number;
  /** Lines the scanner kept, whose record was parsed. */
  candidates: number;
  incidents: number;
  /** Lines longer than a buffer, passed over. */
  oversized: number;
}

export const newScanCounters = (): ScanCounters => ({ bytes: 0, candidates: 0, incidents: 0, oversized: 0 });

export interface RangeScan {
  format: ScannedFormat;
  logLinePrefix: string;
  /** The name records and incidents carry (the file's path). */
  source: string;
}

/**
 * What scanning a log takes, made once and used for every piece of it a thread scans: the scanner
 * (its search made once), the record reader (its parser and compiled prefix), the two buffers.
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
  private readonly scanner: IncidentScanner;
  private readonly reader: RecordReader;

  /** Candidates at absolute offsets from `rangeEnd` on are not this scan's. */
  constructor(
    tools: ScanTools,
    private readonly rangeEnd: number,
    private readonly onIncident: (incident: Incident) => void,
  ) {
    this.scanner = tools.scanner;
    this.reader = tools.reader;
  }

  /**
   * Where to stop scanning bytes[0, length) so that what follows is carried over: before the last
   * line that begins a record with a record's reach after it. `final`: no data follows, scan it all.
   */
  cutAt(bytes: Buffer, length: number, final: boolean): number {
    if (final) return length;
    const latest = length - RECORD_REACH;
    for (
      let lineStart = latestLineStart(bytes, latest), lines = 0;
      lineStart > 0 && lines < 10_000;
      lineStart = latestLineStart(bytes, lineStart - 1), lines++
    ) {
      if (this.scanner.beginsRecord(bytes, lineStart)) return lineStart;
    }
    // No record begins in the last 10,000 lines (one runaway csvlog record?): cut at a line all the same.
    return Math.max(0, latestLineStart(bytes, latest));
  }

  /** Scans bytes[0, end), the bytes up to `length` being there to complete records; `base` is bytes[0]'s offset in the file. */
  scan(bytes: Buffer, end: number, length: number, base: number): void {
    if (this.done || end === 0) return;
    for (const start of this.scanner.candidateLines(bytes, 0, end)) {
      if (base + start >= this.rangeEnd) {
        this.done = true;
        return;
      }
      this.counters.candidates++;
      const incident = this.reader.incidentAt(bytes, start, length, base + start);
      if (!incident) continue;
      this.counters.incidents++;
      this.onIncident(incident);
    }
  }
}

/** The start of the line holding byte `at` (0 when it is the first), -1 when at < 0. */
function latestLineStart(bytes: Buffer, at: number): number {
  if (at < 0) return -1;
  return at === 0 ? 0 : bytes.lastIndexOf(0x0a, at - 1) + 1;
}

/**
 * Scans the candidates at offsets [start, end) of an open plain file, reading on past `end` by a
 * record's reach. Two buffers: while one is scanned the next chunk is read into the other (on
 * libuv's thread pool). `start` must be where a record may begin (the file's start, or a cut made
 * by cutFile).
 */
export async function scanFileRange(
  handle: FileHandle,
  start: number,
  end: number,
  scan: RangeScan | ScanTools,
  onIncident: (incident: Incident) => void,
  onProgress?: (position: number) => void,
): Promise<ScanCounters> {
  const { size } = await handle.stat();
  const stop = Math.min(size, end + RECORD_REACH);
  const tools = scan instanceof ScanTools ? scan : new ScanTools(scan);
  const chunks = new ChunkScan(tools, end, onIncident);
  const buffers = tools.buffers;
  let current = 0;
  let carry = 0;
  /** The file offset of the current buffer's first byte. */
  let base = start;
  let position = start;
  /** Inside a line longer than a chunk: its bytes are dropped up to its end. */
  let dropping = false;
  const readInto = (buffer: Buffer, at: number) =>
    position >= stop ? Promise.resolve({ bytesRead: 0 }) : handle.read(buffer, at, Math.min(CHUNK, CAPACITY - at, stop - position), position);
  let pending = readInto(buffers[0]!, 0);
  // Should a scan throw, the read in flight must not become an unhandled rejection.
  pending.catch(() => {});
  for (;;) {
    const { bytesRead } = await pending;
    const buffer = buffers[current]!;
    chunks.counters.bytes += Math.max(0, Math.min(position + bytesRead, end) - Math.max(position, start));
    position += bytesRead;
    const length = carry + bytesRead;
    const final = bytesRead === 0 || position >= stop;
    let from = 0;
    if (dropping) {
      const newline = buffer.indexOf(0x0a);
      from = newline === -1 || newline >= length ? length : newline + 1;
      dropping = from === length;
    }
    let cut = Math.max(from, chunks.cutAt(buffer, length, final));
    if (!final && length - cut > CHUNK) {
      // What would be carried over is longer than a chunk: a line that long holds no record worth parsing.
      chunks.counters.oversized++;
      const newline = buffer.lastIndexOf(0x0a, length - 1);
      cut = Math.max(cut, newline + 1);
      if (length - cut > CHUNK) {
        dropping = true;
        cut = length;
      }
    }
    const rest = final || dropping ? 0 : length - cut;
    const next = buffers[1 - current]!;
    buffer.copy(next, 0, length - rest, length);
    if (!final) {
      pending = readInto(next, rest);
      pending.catch(() => {});
    }
    if (cut > from) chunks.scan(buffer.subarray(from, length), cut - from, length - from, base + from);
    onProgress?.(position);
    if (final || chunks.done) break;
    base += length - rest;
    carry = rest;
    current = 1 - current;
  }
  await pending.catch(() => {});
  return chunks.counters;
}

/**
 * The same over a stream (a decompressed file), chunk by chunk, from its start to its end.
 */
export async function scanStream(
  stream: AsyncIterable<Buffer>,
  scan: RangeScan,
  onIncident: (incident: Incident) => void,
  onProgress?: () => void,
): Promise<ScanCounters> {
  const chunks = new ChunkScan(new ScanTools(scan), Number.MAX_SAFE_INTEGER, onIncident);
  let parts: Buffer[] = [];
  let gathered = 0;
  let base = 0;
  const scanGathered = (final: boolean) => {
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, gathered);
    let cut = chunks.cutAt(data, data.length, final);
    if (cut === 0 && !final && data.length >= CAPACITY) {
      chunks.counters.oversized++;
      const newline = data.lastIndexOf(0x0a);
      cut = newline === -1 ? data.length : newline + 1;
    }
    chunks.scan(data, cut, data.length, base);
    base += cut;
    const rest = Buffer.from(data.subarray(cut));
    parts = rest.length > 0 ? [rest] : [];
    gathered = rest.length;
  };
  for await (const chunk of stream) {
    chunks.counters.bytes += chunk.length;
    parts.push(chunk);
    gathered += chunk.length;
    if (gathered >= CHUNK + RECORD_REACH) {
      scanGathered(false);
      onProgress?.();
    }
  }
  if (gathered > 0) scanGathered(true);
  return chunks.counters;
}
