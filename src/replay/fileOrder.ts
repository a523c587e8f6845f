import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import type { Format, InnerFormat } from '../formats/formatNames.js';
import { LogTimes } from './logTimes.js';
import { isGzip } from '../util/gzip.js';

/** What is read of each file to find its first record's time. */
const HEAD_BYTES = 64 * 1024;

export interface FileOrderOptions {
  format: Format;
  logLinePrefix: string;
  innerFormat?: InnerFormat;
}

export interface FileOrder {
  /** Oldest first (see orderFiles). */
  ordered: string[];
  /** Files whose first HEAD_BYTES (decompressed) are the same: one a copy of the other, its errors counted twice. */
  copies: Array<[string, string]>;
  /** Files whose first time is not known ahead (a pipe, a head without a time): read after the others, in their places. */
  untimed: string[];
}

/**
 * The files of a replay, oldest first by the time of their first record. Rotated logs are named
 * newest first (postgresql.log, .log.1, .log.2.gz) and shell globs sort them so (`*.gz` puts .10.gz
 * before .2.gz), while a replay's first and last times and its bursts (the checks the daemon would
 * have made) follow the order the files are read in. A file whose first 64 KiB show no time (none
 * parsed, unreadable: said by its scan) keeps its place among those, after the others. And which of
 * them begin alike: a log beside its own archive (`gzip -k`) or copy, each error of it counted twice.
 */
export async function orderFiles(files: string[], options: FileOrderOptions): Promise<FileOrder> {
  const times = new LogTimes();
  const heads = await Promise.all(files.map((file) => readHead(file).catch(() => Buffer.alloc(0))));
  const firsts = await Promise.all(heads.map((head, i) => firstTime(files[i]!, head, options)));
  const epochs = firsts.map((time) => (time === undefined ? NaN : times.epochOf(time)));
  const rank = (i: number) => (Number.isNaN(epochs[i]!) ? Infinity : epochs[i]!);
  const ordered = files
    .map((file, i) => ({ file, i }))
    .sort((a, b) => rank(a.i) - rank(b.i) || a.i - b.i)
    .map(({ file }) => file);
  const copies: Array<[string, string]> = [];
  const seen = new Map<string, string>();
  for (const [i, head] of heads.entries()) {
    if (head.length === 0) continue;
    const key = createHash('sha256').update(head).digest('hex');
    const earlier = seen.get(key);
    if (earlier !== undefined) copies.push([earlier, files[i]!]);
    else seen.set(key, files[i]!);
  }
  // (They come last in `ordered`, in the order given.)
  return { ordered, copies, untimed: files.filter((_, i) => rank(i) === Infinity) };
}

/** The time of the first record with one among the file's first HEAD_BYTES (decompressed), read by the format's parser. */
async function firstTime(file: string, head: Buffer, options: FileOrderOptions): Promise<string | undefined> {
  if (head.length === 0) return undefined;
  const { createParser } = await import('../formats/createParser.js');
  let first: string | undefined;
  const parser = createParser(
    options.format,
    { source: file, logLinePrefix: options.logLinePrefix, ...(options.innerFormat ? { innerFormat: options.innerFormat } : {}) },
    (record) => void (first ??= record.logTime),
  );
  // The last line may be cut short by HEAD_BYTES: left out.
  const lines = head.toString('utf8').split('\n');
  if (head.length === HEAD_BYTES) lines.pop();
  for (let i = 0; i < lines.length && first === undefined; i++)
    parser.push(lines[i]!.replace(/\r$/, ''), { offset: 0, ...(i === 0 ? { boundary: 'start' } : {}) });
  if (first === undefined) parser.flush();
  return first;
}

/** The file's first `bytes` (HEAD_BYTES), decompressed when it is gzip (none of a pipe or standard input). */
export async function readHead(file: string, bytes = HEAD_BYTES): Promise<Buffer> {
  // Standard input and pipes are read once, by their scan: nothing of them is read ahead.
  if (file === '-') return Buffer.alloc(0);
  // Not opened unless a regular file: a named pipe opened and closed again would lose its writer.
  if (!(await stat(file)).isFile()) return Buffer.alloc(0);
  const handle = await open(file, 'r');
  let raw: Buffer;
  try {
    if (!(await handle.stat()).isFile()) return Buffer.alloc(0);
    // (Not zeroed: only what is read is used. A fresh page's first touch is then the read's, off this thread.)
    const { buffer, bytesRead } = await handle.read(Buffer.allocUnsafe(bytes), 0, bytes, 0);
    raw = buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  if (!isGzip(raw)) return raw;
  // A gzip file's head: what its first compressed bytes give, up to `bytes` (a cut stream ends early, not in error).
  const { createGunzip } = await import('node:zlib');
  const gunzip = createGunzip();
  const parts: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve) => {
    gunzip.on('data', (part: Buffer) => {
      parts.push(part);
      size += part.length;
      if (size >= bytes) resolve();
    });
    gunzip.on('error', () => resolve());
    gunzip.on('end', () => resolve());
    gunzip.end(raw);
  });
  gunzip.destroy();
  return Buffer.concat(parts).subarray(0, bytes);
}
