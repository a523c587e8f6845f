import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { detectIncident, type Incident } from '../detect/detectIncident.js';
import { StderrPrefixParser } from '../formats/StderrPrefixParser.js';
import { createParser, type Format, type InnerFormat } from '../formats/createParser.js';
import { LineSplitter } from '../sources/LineSplitter.js';

const ENGLISH = Buffer.from('duplicate key value violates unique constraint "');
const SQLSTATE = Buffer.from('23505');
const CHUNK = 4 * 1024 * 1024;

export interface ScanCounters {
  bytes: number;
  /** Lines that contained a needle and were parsed. */
  candidates: number;
  incidents: number;
  /** Lines longer than a chunk, passed over. */
  oversized: number;
}

export interface ScanOptions {
  logLinePrefix: string;
  onIncident(incident: Incident): void;
  onProgress?(bytesRead: number, totalBytes: number): void;
}

/**
 * Finds the unique violations in a (possibly huge, possibly gzip-compressed) PostgreSQL stderr log.
 * Speed through simple code: the raw bytes are searched for the message's fixed text with
 * Buffer.indexOf, the way grep -F does, and only the lines that contain it are decoded and parsed
 * (by the daemon's own parser). With `%e` in the prefix the SQLSTATE is searched too, so translated
 * messages are found as well.
 */
export async function scanLog(file: string, options: ScanOptions): Promise<ScanCounters> {
  const counters: ScanCounters = { bytes: 0, candidates: 0, incidents: 0, oversized: 0 };
  const needles = options.logLinePrefix.includes('%e') ? [ENGLISH, SQLSTATE] : [ENGLISH];
  const parser = new StderrPrefixParser(options.logLinePrefix, file, (record) => {
    const incident = detectIncident(record);
    if (!incident) return;
    counters.incidents++;
    options.onIncident(incident);
  });
  const scan = (region: Buffer, base: number) => {
    for (const needle of needles) {
      for (let from = 0; ; ) {
        const hit = region.indexOf(needle, from);
        if (hit === -1) break;
        const start = region.lastIndexOf(0x0a, hit) + 1;
        const newline = region.indexOf(0x0a, hit);
        const end = newline === -1 ? region.length : newline;
        from = end + 1;
        // A line with both needles is taken once, under the first.
        if (needle !== needles[0] && region.subarray(start, end).includes(needles[0]!)) continue;
        counters.candidates++;
        parser.push(region.toString('utf8', start, region[end - 1] === 0x0d ? end - 1 : end), { offset: base + start });
        parser.flush();
      }
    }
  };

  const handle = await open(file, 'r');
  const { size } = await handle.stat();
  const magic = Buffer.alloc(2);
  await handle.read(magic, 0, 2, 0);
  if (magic[0] === 0x1f && magic[1] === 0x8b) {
    await handle.close();
    const raw = createReadStream(file);
    await scanStream(raw.pipe(createGunzip()), scan, counters, () => options.onProgress?.(raw.bytesRead, size));
    return counters;
  }
  try {
    // Two buffers: while one is scanned, the next chunk is read into the other (the read runs on
    // libuv's thread pool), so the scan never waits for the copy from the page cache. Each buffer
    // starts with the unfinished last line of the one before.
    const buffers = [Buffer.allocUnsafe(CHUNK * 2), Buffer.allocUnsafe(CHUNK * 2)];
    let current = 0;
    let carry = 0;
    let position = 0;
    const readInto = (buffer: Buffer, at: number) => handle.read(buffer, at, CHUNK, position);
    let pending = readInto(buffers[0]!, 0);
    // Should a scan throw, the read in flight must not become an unhandled rejection.
    pending.catch(() => {});
    for (;;) {
      const { bytesRead } = await pending;
      const buffer = buffers[current]!;
      if (bytesRead === 0) {
        if (carry > 0) scan(buffer.subarray(0, carry), position - carry);
        break;
      }
      const start = position - carry;
      position += bytesRead;
      counters.bytes += bytesRead;
      const end = carry + bytesRead;
      const lastNewline = buffer.lastIndexOf(0x0a, end - 1);
      let nextCarry = lastNewline === -1 ? end : end - lastNewline - 1;
      const next = buffers[1 - current]!;
      if (nextCarry > CHUNK) {
        // A line longer than a chunk: no record worth parsing is that long.
        counters.oversized++;
        nextCarry = 0;
      } else {
        buffer.copy(next, 0, end - nextCarry, end);
      }
      pending = readInto(next, nextCarry);
      pending.catch(() => {});
      if (lastNewline !== -1) scan(buffer.subarray(0, lastNewline + 1), start);
      options.onProgress?.(position, size);
      carry = nextCarry;
      current = 1 - current;
    }
  } finally {
    await handle.close();
  }
  return counters;
}

/** The same over a stream (a decompressed file), chunk by chunk. */
async function scanStream(
  stream: AsyncIterable<Buffer>,
  scan: (region: Buffer, base: number) => void,
  counters: ScanCounters,
  progress: () => void,
): Promise<void> {
  let carry: Buffer = Buffer.alloc(0);
  let offset = 0;
  for await (const chunk of stream) {
    counters.bytes += chunk.length;
    const data: Buffer = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    const lastNewline = data.lastIndexOf(0x0a);
    if (lastNewline === -1) {
      if (data.length > CHUNK) {
        counters.oversized++;
        offset += data.length;
        carry = Buffer.alloc(0);
      } else {
        carry = data;
      }
      continue;
    }
    scan(data.subarray(0, lastNewline + 1), offset);
    offset += lastNewline + 1;
    carry = Buffer.from(data.subarray(lastNewline + 1));
    progress();
  }
  if (carry.length > 0) scan(carry, offset);
}

/**
 * Any other format (csvlog, jsonlog, syslog, docker json-file, application logs, auto): every line
 * goes through that format's parser, as in the daemon. Slower than the stderr fast path, as exact.
 */
export async function scanLogAs(file: string, format: Format, options: ScanOptions & { innerFormat?: InnerFormat }): Promise<ScanCounters> {
  const counters: ScanCounters = { bytes: 0, candidates: 0, incidents: 0, oversized: 0 };
  const parser = createParser(
    format,
    { source: file, logLinePrefix: options.logLinePrefix, ...(options.innerFormat ? { innerFormat: options.innerFormat } : {}) },
    (record) => {
      counters.candidates++;
      const incident = detectIncident(record);
      if (!incident || incident.kind !== 'unique_violation') return;
      counters.incidents++;
      options.onIncident(incident);
    },
  );
  const lines = new LineSplitter(
    4 * 1024 * 1024,
    (line, position) => parser.push(line.toString('utf8'), position),
    () => counters.oversized++,
  );
  const { size } = await stat(file);
  const magic = Buffer.alloc(2);
  const probe = await open(file, 'r');
  await probe.read(magic, 0, 2, 0).finally(() => probe.close());
  const raw = createReadStream(file, { highWaterMark: 1024 * 1024 });
  const stream: AsyncIterable<Buffer> = magic[0] === 0x1f && magic[1] === 0x8b ? raw.pipe(createGunzip()) : raw;
  for await (const chunk of stream) {
    lines.push(chunk, counters.bytes);
    counters.bytes += chunk.length;
    options.onProgress?.(raw.bytesRead, size);
  }
  lines.end();
  parser.flush();
  return counters;
}
