import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { pipeline, Readable } from 'node:stream';
import { detectIncident, firstLineDecision } from '../detect/detectIncident.js';
import { holdsStderrNeedle, IncidentScanner, isScannedFormat, type ScannedFormat } from '../detect/scanner.js';
import type { FormatOptions } from '../formats/createParser.js';
import type { Format, InnerFormat } from '../formats/formatNames.js';
import { scanInParallel, ScanThreads } from './parallel.js';
import {
  handOn,
  keeping,
  newScanCounters,
  noteUnreadable,
  PartlyScanned,
  scanFileRange,
  scanStream,
  type Found,
  type IncidentSink,
  type RangeScan,
  type ScanCounters,
} from './scanRange.js';
import { isGzip } from '../util/gzip.js';

export type { ScanCounters } from './scanRange.js';

export interface ScanOptions {
  logLinePrefix: string;
  /** The log's format (default postgres-stderr). */
  format?: Format;
  /** For docker-json and cri: the format inside. */
  innerFormat?: InnerFormat;
  /** For auto (also inside a container log): told which format it chose, as the daemon logs it. */
  onDetected?: FormatOptions['onDetected'];
  /** For auto: told when the format it chose gave no record for lines holding a duplicate key error (it then chooses again). */
  onMisread?: FormatOptions['onMisread'];
  /**
   * Threads to scan one plain file with (default 1: replay runs beside the database it serves).
   * The output is the same whatever the number: pieces are cut where records begin and their
   * incidents come out in the file's order.
   */
  threads?: number;
  /**
   * Told a pipe's first MiB (decompressed; standard input, /dev/stdin, a named pipe: what cannot be
   * read ahead by the path), before its scan: replay's untoldErrors looks at it.
   */
  onPipeHead?(head: Buffer): void;
  /** Workers started before (threadsFor), used for every file; without them each parallel scan starts its own. */
  pool?: ScanThreads;
  /** Stops the scan (between chunks): it then throws the signal's reason. */
  signal?: AbortSignal;
  /** With workers: this thread scans only once this has settled (see ParallelOptions.joinAfter). */
  joinAfter?: Promise<unknown>;
  /** Each incident found, in the file's order (with `repeats`: a stderr file's runs of repeats, see IncidentSink). */
  onIncident: IncidentSink;
  onProgress?(bytesRead: number, totalBytes: number): void;
}

/** Below this a file is scanned in one thread whatever `threads` says: starting workers costs more. */
const PARALLEL_MIN_BYTES = 64 * 1024 * 1024;

/**
 * Finds the incidents in a (possibly huge, possibly gzip-compressed) log. For PostgreSQL's own
 * formats (stderr, csvlog, jsonlog) the shared scanner (detect/scanner.ts) picks the lines that
 * may matter out of whole chunks with native searches, and only their records are decoded and
 * parsed, by the daemon's own parsers; every other format is parsed line by line.
 */
export async function scanLog(file: string, options: ScanOptions): Promise<ScanCounters> {
  const named = options.format ?? 'postgres-stderr';
  let size: number | undefined;
  /** auto chose no format the scanner reads from the file's first lines: it reads the file line by line. */
  let lineByLine = false;
  const read = () => createReadStream(file, { highWaterMark: 1024 * 1024 });
  /** Not a regular file (a pipe: /dev/stdin, <(zcat ...), a named pipe): opened once, read once, as a stream, below. */
  let pipe: FileHandle | number | undefined;
  // The path's kind before it is opened: a named pipe opened and closed again would lose its writer.
  if (file !== STDIN && !(await stat(file)).isFile()) pipe = await openPipe(file);
  else if (file !== STDIN) {
    const handle = await open(file, 'r');
    try {
      const info = await handle.stat();
      if (info.isFile()) {
        size = info.size;
        const head = Buffer.alloc(named === 'auto' ? AUTO_HEAD : 2);
        const { bytesRead } = await handle.read(head, 0, head.length, 0);
        const gzip = isGzip(head);
        const format = gzip ? undefined : named === 'auto' ? await autoChoice(head.subarray(0, bytesRead), bytesRead >= size, options) : named;
        lineByLine = named === 'auto' && !gzip && format === undefined;
        if (format !== undefined && isScannedFormat(format)) {
          const scan: RangeScan = { format, logLinePrefix: options.logLinePrefix, source: file };
          const threads = Math.max(1, Math.min(options.threads ?? 1, availableParallelism()));
          const whole = size;
          const onProgress = (at: number) => options.onProgress?.(at, whole);
          return await asChosen(
            file,
            named,
            format,
            options,
            () => plainOrGunzipped(read(), read),
            (onIncident) =>
              threads === 1 || whole < PARALLEL_MIN_BYTES
                ? scanFileRange(handle, 0, whole, scan, onIncident, onProgress, options.signal)
                : scanInParallel(handle, whole, scan, threads, onIncident, onProgress, undefined, {
                    ...(options.pool ? { pool: options.pool } : {}),
                    ...(options.signal ? { signal: options.signal } : {}),
                    ...(options.joinAfter ? { joinAfter: options.joinAfter } : {}),
                  }),
          );
        }
      }
    } finally {
      await handle.close();
    }
  }
  // A stream: a gzip-compressed file, standard input, a pipe (each decompressed when it begins like gzip).
  const raw =
    file === STDIN
      ? process.stdin
      : typeof pipe === 'number'
        ? createReadStream('', { fd: pipe, highWaterMark: 1024 * 1024 })
        : pipe
          ? pipe.createReadStream({ highWaterMark: 1024 * 1024 })
          : read();
  const once = file === STDIN || size === undefined;
  let stream: AsyncIterable<Buffer> = plainOrGunzipped(raw, once ? undefined : read);
  const progress = () => size !== undefined && options.onProgress?.((raw as { bytesRead?: number }).bytesRead ?? 0, size);
  // A pipe's first bytes, which nothing else may read ahead: for auto, and for the caller (onPipeHead).
  const wanted = once && options.onPipeHead ? PIPE_HEAD : named === 'auto' && !lineByLine ? AUTO_HEAD : 0;
  const { head, whole, rest } = wanted > 0 ? await headOf(stream, wanted) : { head: Buffer.alloc(0), whole: false, rest: stream };
  stream = rest;
  if (once) options.onPipeHead?.(head.subarray(0, PIPE_HEAD));
  if (named === 'auto' && !lineByLine) {
    const format = await autoChoice(head, whole, options);
    // Read again from its start only if a file (a pipe is read once).
    const again = once ? undefined : () => plainOrGunzipped(read(), read);
    if (format)
      return asChosen(file, named, format, options, again, (onIncident) =>
        scanStream(stream, { format, logLinePrefix: options.logLinePrefix, source: file }, onIncident, progress, options.signal),
      );
    return scanEveryLine(stream, file, named, options, progress);
  }
  if (isScannedFormat(named))
    return scanStream(stream, { format: named, logLinePrefix: options.logLinePrefix, source: file }, options.onIncident, progress, options.signal);
  return scanEveryLine(stream, file, named, options, progress);
}

/**
 * What auto is chosen from: a log's first bytes, enough for AutoParser's first lines (it chooses by
 * the first line it recognises among its first 50).
 */
const AUTO_HEAD = 256 * 1024;
/** What of a pipe is handed to onPipeHead: replay's untoldErrors looks at a log's first MiB. */
const PIPE_HEAD = 1024 * 1024;
/**
 * What a scan for auto holds back at most, so that the log can be read again line by line instead
 * (asChosen): runs of repeats count one each (a busy GiB gives ~800).
 */
const AUTO_HELD = 10_000;

/**
 * The format auto chooses for a log from its first lines (`head`: its first bytes; `whole`: all of
 * them), when that is one the shared scanner reads (stderr, csvlog, jsonlog): the log is then read
 * as naming that format reads it, whole chunks searched (2-5x faster than line by line on a field
 * trial's files). Undefined when auto chooses another format, or none from these lines: the log is
 * then read line by line by AutoParser itself. The choice is AutoParser's own, on the same lines.
 */
async function autoChoice(head: Buffer, whole: boolean, options: ScanOptions): Promise<ScannedFormat | undefined> {
  const { AutoParser } = await import('../formats/createParser.js');
  let chosen: Exclude<Format, 'auto'> | undefined;
  const auto = new AutoParser({ source: 'head', logLinePrefix: options.logLinePrefix, onDetected: (format) => (chosen ??= format) }, () => {});
  // Whole lines only (the last one too when the head is the whole log, as LineSplitter ends it).
  const end = whole ? head.length : head.lastIndexOf(0x0a) + 1;
  for (let start = 0; start < end && chosen === undefined;) {
    const newline = head.indexOf(0x0a, start);
    const stop = newline === -1 || newline >= end ? end : newline;
    // Without a CR before the newline, as LineSplitter gives lines.
    auto.push(head.toString('utf8', start, stop > start && head[stop - 1] === 0x0d ? stop - 1 : stop));
    start = stop + 1;
  }
  return chosen !== undefined && isScannedFormat(chosen) ? chosen : undefined;
}

/**
 * Scans a log in the format auto chose from its first lines (`scan`, with the sink to hand its
 * finds to), as AutoParser would read it on: unless some lines holding an error are no records of
 * that format. AutoParser would then choose again, from those lines on: the log is read again
 * (`again`, a file's bytes from their start) line by line by AutoParser itself, and what the scan
 * found, held back till then, is dropped. Past AUTO_HELD finds, or on a pipe (read once), they are
 * handed on as found, and such lines are counted unreadable (replay says so, and ends 1).
 * Without auto (`named`): the scan, as it is.
 */
async function asChosen(
  file: string,
  named: Format,
  format: ScannedFormat,
  options: ScanOptions,
  again: (() => AsyncIterable<Buffer>) | undefined,
  scan: (onIncident: IncidentSink) => Promise<ScanCounters>,
): Promise<ScanCounters> {
  if (named !== 'auto') return scan(options.onIncident);
  const held = heldBack(options.onIncident, again ? AUTO_HELD : 0);
  let counters: ScanCounters;
  try {
    counters = await scan(held.sink);
  } catch (error) {
    // What it found up to a damaged part is handed on (PartlyScanned).
    held.release();
    options.onDetected?.(format);
    throw error;
  }
  if (counters.unreadable > 0 && !held.released && again) return scanEveryLine(again(), file, named, options, () => {});
  held.release();
  options.onDetected?.(format);
  return counters;
}

/**
 * A sink that holds back what it is handed (keeping's: runs of repeats with their epochs copied)
 * until release(), or until it holds `limit` of them: it then hands them on, and what follows
 * straight away.
 */
function heldBack(sink: IncidentSink, limit: number): { sink: IncidentSink; release(): void; readonly released: boolean } {
  const held: Found[] = [];
  const keep = keeping(held, sink.repeats !== undefined);
  let released = limit <= 0;
  const release = () => {
    released = true;
    for (const found of held.splice(0)) handOn(sink, found);
  };
  const holder: IncidentSink = (incident) => {
    if (released) return sink(incident);
    keep(incident);
    if (held.length >= limit) release();
  };
  if (sink.repeats)
    holder.repeats = (run) => {
      if (released) return sink.repeats!(run);
      keep.repeats!(run);
      if (held.length >= limit) release();
    };
  return {
    sink: holder,
    release,
    get released() {
      return released;
    },
  };
}

/** A stream's first `bytes` (all of them: `whole`; a part or so more), and the stream again from its start. */
async function headOf(stream: AsyncIterable<Buffer>, bytes: number): Promise<{ head: Buffer; whole: boolean; rest: AsyncIterable<Buffer> }> {
  const parts = stream[Symbol.asyncIterator]();
  const read: Buffer[] = [];
  let length = 0;
  let whole = false;
  let failure: { error: unknown } | undefined;
  try {
    while (length < bytes) {
      const next = await parts.next();
      if (next.done) {
        whole = true;
        break;
      }
      read.push(next.value);
      length += next.value.length;
    }
  } catch (error) {
    // A damaged stream fails where its scan would have met the damage: after what it gave.
    failure = { error };
  }
  const rest = (async function* () {
    yield* read;
    if (failure) throw failure.error;
    if (!whole) for (let next = await parts.next(); !next.done; next = await parts.next()) yield next.value;
  })();
  return { head: Buffer.concat(read), whole: whole && !failure, rest };
}

/**
 * A path that is no regular file (a pipe), opened: or, for /dev/stdin, /dev/fd/N or
 * /proc/self/fd/N that it may not open (a pipe of another user's shell: `zcat x.gz | sudo -u opr
 * seqwatch replay /dev/stdin`, a pipe being its creator's, mode 0600), the descriptor it names,
 * which this process has already.
 */
async function openPipe(file: string): Promise<FileHandle | number> {
  try {
    return await open(file, 'r');
  } catch (error) {
    const inherited = /^\/(?:dev\/(?:stdin|fd\/(\d+))|proc\/self\/fd\/(\d+))$/.exec(file);
    const code = (error as NodeJS.ErrnoException).code;
    if (!inherited || (code !== 'EACCES' && code !== 'EPERM')) throw error;
    return Number(inherited[1] ?? inherited[2] ?? 0);
  }
}

/** The log named `-` is standard input. */
const STDIN = '-';
/**
 * The size of the parts a gzip-compressed file is decompressed in: 1 MiB, not zlib's 16 KiB. Each
 * part is a round trip to the thread pool and a Buffer of its own (a 256 MiB log: 16,580 of them,
 * 0.73 s to decompress in Node.js, against 0.37 s).
 */
const GUNZIP_PART = 1024 * 1024;
/**
 * Node.js's zlib drops what the call that met damage had decompressed (a stream that ends in
 * garbage, a bad checksum): up to a part. A file is then decompressed again in parts this small,
 * to give what the first pass did not: at most 4 KiB before the damage is lost (a 256 MiB log:
 * ~3 s more); a pipe cannot be read again, and keeps zlib's 16 KiB.
 */
const RECOVERY_PART = 4 * 1024;
const PIPE_PART = 16 * 1024;

/**
 * The stream's bytes, decompressed when its first two are gzip's (a pipe says nothing else of what
 * it carries). `again`: the same bytes from their start, when they can be read again (a file).
 */
async function* plainOrGunzipped(raw: Readable, again?: () => Readable): AsyncGenerator<Buffer> {
  const chunks = raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await chunks.next();
  if (first.done) return;
  const all = (async function* () {
    yield first.value;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
  })();
  if (!isGzip(first.value)) return yield* all;
  // Loaded only here: most logs replayed are plain (node:zlib costs every command ~4 ms).
  const { createGunzip } = await import('node:zlib');
  const gunzipped = (source: Readable, chunkSize: number) => {
    const gunzip = createGunzip({ chunkSize });
    // A damaged source or archive fails the iteration (pipeline passes the error on).
    pipeline(source, gunzip, () => {});
    return gunzip;
  };
  let given = 0;
  try {
    for await (const part of gunzipped(Readable.from(all), again ? GUNZIP_PART : PIPE_PART)) {
      given += part.length;
      yield part as Buffer;
    }
  } catch (error) {
    if (!again) throw error;
    // What the first pass gave is passed over; the rest, up to the damage, is given; then its error.
    let seen = 0;
    try {
      for await (const part of gunzipped(again(), RECOVERY_PART)) {
        const from = given - seen;
        seen += (part as Buffer).length;
        if (seen > given) yield (part as Buffer).subarray(Math.max(0, from));
      }
    } catch {
      // The same damage, met again.
    }
    throw error;
  }
}

/**
 * The worker threads scanLog would start for these files with `threads` threads, started now
 * (they load their modules meanwhile), or undefined when it would start none (one thread, or no
 * file that is plain and large enough). The caller closes them.
 */
export async function threadsFor(files: string[], threads: number, format?: string): Promise<ScanThreads | undefined> {
  const workers = Math.min(threads, availableParallelism()) - 1;
  // (auto: the format is chosen from each file's first lines, by scanLog.)
  if (workers < 1 || (format !== undefined && format !== 'auto' && !isScannedFormat(format))) return undefined;
  for (const file of files) {
    try {
      // Not opened unless a regular file: a named pipe opened and closed again would lose its writer.
      if (file === STDIN || !(await stat(file)).isFile()) continue;
      const handle = await open(file, 'r');
      try {
        const { size } = await handle.stat();
        const magic = Buffer.alloc(2);
        await handle.read(magic, 0, 2, 0);
        if (size >= PARALLEL_MIN_BYTES && !isGzip(magic)) return new ScanThreads(workers);
      } finally {
        await handle.close();
      }
    } catch {
      // An unreadable file is reported by its scan.
    }
  }
  return undefined;
}

/**
 * Any other format (syslog, docker json-file, CRI, CloudNativePG, application logs, auto): every
 * line goes through that format's parser, as in the daemon, and as there a stderr parser (docker
 * json-file's and CRI's inside) passes over the lines without a needle while no record is being
 * assembled, and does not keep a record its ERROR line decided (firstLineDecision) open for its
 * DETAIL and STATEMENT; a container runtime's entries that hold no needle are not even decoded. (A
 * 93 MiB docker json-file log took 1.7-2.2 s with every entry parsed, 0.9 s so.) Slower than the
 * scanned formats, as exact.
 */
async function scanEveryLine(stream: AsyncIterable<Buffer>, file: string, format: Format, options: ScanOptions, onProgress: () => void): Promise<ScanCounters> {
  // Loaded only here: the scanned formats read records with replay's own reader (recordAt.ts).
  const [{ createParser }, { LineSplitter }, { lineSkippingFor }] = await Promise.all([
    import('../formats/createParser.js'),
    import('../sources/LineSplitter.js'),
    import('../formats/passOver.js'),
  ]);
  const counters = newScanCounters();
  const parser = createParser(
    format,
    {
      source: file,
      logLinePrefix: options.logLinePrefix,
      ...(options.innerFormat ? { innerFormat: options.innerFormat } : {}),
      ...(options.onDetected ? { onDetected: options.onDetected } : {}),
      ...(options.onMisread ? { onMisread: options.onMisread } : {}),
      interesting: holdsStderrNeedle(options.logLinePrefix),
      onRecordStart: (record) => firstLineDecision(record)?.settled === true,
    },
    (record) => {
      counters.candidates++;
      const incident = detectIncident(record);
      if (!incident) return;
      counters.incidents++;
      options.onIncident(incident);
    },
  );
  // A container's log (Docker's json-file, CRI) with a stderr log inside: the entries without a
  // needle are passed over unseen, as the daemon's follower does (formats/passOver.ts).
  const skipping =
    (format === 'docker-json' || format === 'cri') && (options.innerFormat ?? 'postgres-stderr') === 'postgres-stderr'
      ? lineSkippingFor(format, parser, new IncidentScanner('postgres-stderr', options.logLinePrefix))
      : undefined;
  const lines = new LineSplitter(
    4 * 1024 * 1024,
    (line, position) => {
      const text = line.toString('utf8');
      const unrecognised = parser.counters.unrecognisedLines;
      parser.push(text, position);
      if (parser.counters.unrecognisedLines !== unrecognised) noteUnreadable(counters, text);
    },
    () => counters.oversized++,
    0,
    skipping,
  );
  try {
    for await (const chunk of stream) {
      options.signal?.throwIfAborted();
      lines.push(chunk, counters.bytes);
      counters.bytes += chunk.length;
      onProgress();
    }
  } catch (error) {
    if (options.signal?.aborted) throw error;
    // A damaged stream: what it gave up to there is read to its end, then said with what was scanned.
    lines.end();
    parser.flush();
    throw new PartlyScanned(error as Error, counters);
  }
  lines.end();
  parser.flush();
  return counters;
}
