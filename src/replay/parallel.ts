import { existsSync, readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { IncidentScanner } from '../detect/scanner.js';
import { unpackIncidents } from './packIncidents.js';
import { turn } from '../util/turn.js';
import {
  addScanCounters,
  FileRangeScan,
  handOn,
  keeping,
  newScanCounters,
  scanFileRange,
  ScanTools,
  type Found,
  type IncidentSink,
  type RangeScan,
  type ScanCounters,
} from './scanRange.js';
import type { PackedPiece, PieceDone, ScanJob, WorkerMessage } from './scanWorker.js';

/**
 * The size of the pieces the threads take in turn: small enough that the incidents waiting for their
 * turn stay few and that both threads finish together (16 MiB: less garbage to collect than 32 or
 * 64 MiB on the busy 1 GiB bench log).
 */
export const PIECE_BYTES = 16 * 1024 * 1024;
/**
 * Pieces a thread may take past the first one whose incidents are not handed on yet: what waits in
 * memory, whatever the file's size. Generous, so that a worker does not wait while this thread is
 * busy with something else for a while (loading the database's modules: ~0.1 s, 100-200 MiB scanned).
 */
const MAX_AHEAD = 32;
/** How far past a piece's nominal start its cut is looked for (a line that begins a record). */
export const CUT_WINDOW = 1024 * 1024;
/** What is read first of that window: most cuts are a line or two past the nominal start. */
const CUT_PROBE = 64 * 1024;
/**
 * IncidentScanner.beginsRecord judges a line by its first bytes (csvlog: up to 64); only lines with
 * that many read are judged, so that a cut does not depend on how much of the window was read.
 */
const LINE_HEAD = 256;

/** The shared counters (Int32Array over a SharedArrayBuffer): the next piece to take, the pieces handed on, stop. */
const NEXT = 0;
const EMITTED = 1;
const STOP = 2;
/** take(): no piece now, wait for the pieces before to be handed on. */
const WAIT = -2;

/**
 * Where the piece that nominally starts at `nominal` begins: the first line at or after it that
 * begins a record (IncidentScanner.beginsRecord), within CUT_WINDOW; -1 when there is none (the piece
 * is then part of the one before). A function of the file's bytes alone, so that the thread that
 * scans a piece and the one that scans the piece before find the same cut without telling each
 * other; and a place a single-threaded scan may cut too, so that both find the same records.
 */
export function cutAt(fd: number, size: number, nominal: number, scanner: IncidentScanner, window: Buffer): number {
  if (nominal <= 0) return 0;
  if (nominal >= size) return -1;
  for (let span = Math.min(CUT_PROBE, window.length); ; span = Math.min(CUT_WINDOW, window.length)) {
    // The byte before `nominal` is read too, so a line starting right at it is seen as one.
    const bytesRead = readSync(fd, window, 0, span, nominal - 1);
    const toEnd = nominal - 1 + bytesRead >= size;
    const judged = toEnd ? bytesRead : bytesRead - LINE_HEAD;
    const bytes = window.subarray(0, bytesRead);
    for (let newline = bytes.indexOf(0x0a); newline !== -1 && newline + 1 < judged; newline = bytes.indexOf(0x0a, newline + 1)) {
      if (scanner.beginsRecord(bytes, newline + 1)) return nominal + newline;
    }
    if (toEnd || span >= Math.min(CUT_WINDOW, window.length)) return -1;
  }
}

/**
 * The bytes piece `k` scans: from its cut to the next piece's that has one; undefined when it has
 * none, or the next cut is the same (another piece scans those bytes).
 */
function pieceRange(
  fd: number,
  size: number,
  k: number,
  pieceBytes: number,
  scanner: IncidentScanner,
  window: Buffer,
): { start: number; end: number } | undefined {
  const start = cutAt(fd, size, k * pieceBytes, scanner, window);
  if (start === -1) return undefined;
  for (let j = k + 1; j * pieceBytes < size; j++) {
    const end = cutAt(fd, size, j * pieceBytes, scanner, window);
    if (end !== -1) return end > start ? { start, end } : undefined;
  }
  return { start, end: size };
}

/** The scan of piece `k` of a plain file (FileRangeScan), undefined when it has no bytes of its own. */
export function pieceScan(
  fd: number,
  size: number,
  k: number,
  pieceBytes: number,
  tools: ScanTools,
  window: Buffer,
  onIncident: IncidentSink,
): FileRangeScan | undefined {
  const range = pieceRange(fd, size, k, pieceBytes, tools.scanner, window);
  return range && new FileRangeScan(fd, range.start, range.end, tools, onIncident, size);
}

/**
 * The next piece for a thread to scan, -1 when there is none left (or the scan stopped), WAIT when
 * it would be more than MAX_AHEAD pieces past the first not handed on. `block`: wait instead
 * (a worker; this thread waits for the workers' messages instead).
 */
export function take(shared: Int32Array, pieces: number, block: boolean): number {
  for (;;) {
    if (Atomics.load(shared, STOP) !== 0) return -1;
    const next = Atomics.load(shared, NEXT);
    if (next >= pieces) return -1;
    const emitted = Atomics.load(shared, EMITTED);
    if (next - emitted >= MAX_AHEAD) {
      if (!block) return WAIT;
      // Woken when a piece is handed on (or the scan stops); the timeout only guards against a missed wake.
      Atomics.wait(shared, EMITTED, emitted, 100);
      continue;
    }
    if (Atomics.compareExchange(shared, NEXT, next, next + 1) === next) return next;
  }
}

/**
 * Worker threads for scanning, started before they are needed: replay starts them before it loads
 * its config (~0.2 s of yaml and zod), so that they have loaded their modules (~0.05 s) by then.
 * They stay for every file of the command; close() ends them.
 */
export class ScanThreads {
  private readonly workers: Worker[];
  private readonly exited = new Set<Worker>();

  constructor(count: number) {
    const script = workerScript();
    this.workers = Array.from({ length: count }, () => new Worker(script));
    for (const worker of this.workers) {
      // A worker that fails while a scan uses it fails that scan (its own listeners); one that
      // failed idle (its modules did not load) is left out of the next, which scans with fewer threads.
      worker.on('error', () => {}).once('exit', () => this.exited.add(worker));
    }
  }

  /** The workers still running. */
  get alive(): Worker[] {
    return this.workers.filter((worker) => !this.exited.has(worker));
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}

export interface ParallelOptions {
  /** Workers started before (ScanThreads), else started here and ended after. */
  pool?: ScanThreads;
  /** Stops the scan between pieces: it then throws the signal's reason. */
  signal?: AbortSignal;
  /**
   * This thread takes pieces only once this has settled: it has other work until then (replay:
   * loading the database's modules), the workers scan meanwhile, and their pieces are handed on
   * between that work instead of waiting behind a piece of this thread's.
   */
  joinAfter?: Promise<unknown>;
}

/**
 * Scans a plain file with `threads` threads (this one and threads - 1 workers), in pieces of
 * `pieceBytes` that each thread takes in turn (an atomic counter: no piece waits for this thread to
 * hand it out); incidents are handed to `onIncident` in the file's order (a piece's once every piece
 * before it is done), so the output is that of one thread. At most MAX_AHEAD pieces' incidents wait
 * in memory, whatever the file's size.
 */
export async function scanInParallel(
  handle: FileHandle,
  size: number,
  scan: RangeScan,
  threads: number,
  onIncident: IncidentSink,
  onProgress?: (done: number) => void,
  pieceBytes = PIECE_BYTES,
  { pool, signal, joinAfter }: ParallelOptions = {},
): Promise<ScanCounters> {
  // csvlog is framed by its quotes, counted from the file's start: where a piece's cut falls (a
  // line shaped like a record may lie inside a quoted value) is known only once everything before it
  // is counted. One thread reads it, exactly, as CsvlogParser would.
  if (scan.format === 'postgres-csv') return scanFileRange(handle, 0, size, scan, onIncident, onProgress, signal);
  const pieces = Math.max(1, Math.ceil(size / pieceBytes));
  const own = pool ? undefined : new ScanThreads(Math.max(0, Math.min(threads, pieces) - 1));
  const workers = (pool ?? own!).alive.slice(0, Math.max(0, threads - 1));
  const shared = new Int32Array(new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT));
  const counters = newScanCounters();
  /** Pieces done before their turn: a worker's as it posted them (unpacked in their turn), this thread's. */
  const finished = new Map<number, PackedPiece | PieceDone>();
  let emitted = 0;
  let failure: Error | undefined;
  /** Wakes this thread when it waits for a worker's piece. */
  let wake: (() => void) | undefined;
  const emitReady = () => {
    for (let done = finished.get(emitted); done; done = finished.get(emitted)) {
      finished.delete(emitted);
      addScanCounters(counters, done.counters);
      for (const found of 'packed' in done ? unpackIncidents(done.packed) : done.incidents) handOn(onIncident, found);
      emitted++;
      onProgress?.(Math.min(size, emitted * pieceBytes));
    }
    Atomics.store(shared, EMITTED, emitted);
    Atomics.notify(shared, EMITTED);
  };
  let stopped!: () => void;
  /** Settles when the scan fails or is stopped (this thread may be waiting for joinAfter meanwhile). */
  const stopping = new Promise<void>((resolve) => (stopped = resolve));
  const fail = (error: Error) => {
    failure ??= error;
    Atomics.store(shared, STOP, 1);
    Atomics.notify(shared, EMITTED);
    wake?.();
    stopped();
  };
  const onAbort = () => fail(signal!.reason as Error);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  const runs = onIncident.repeats !== undefined;
  const job: ScanJob = { file: scan.source, size, scan, pieces, pieceBytes, shared: shared.buffer as SharedArrayBuffer, runs };
  const running = workers.map(
    (worker) =>
      new Promise<void>((resolve) => {
        const stop = () => {
          worker.off('message', onMessage).off('error', onError).off('exit', onExit);
          resolve();
        };
        const onMessage = (message: WorkerMessage) => {
          if ('done' in message) return stop();
          try {
            finished.set(message.id, message);
            emitReady();
          } catch (error) {
            fail(error as Error);
          }
          wake?.();
        };
        const onError = (error: Error) => {
          fail(error);
          stop();
        };
        const onExit = (code: number) => onError(new Error(`a scanning thread stopped (exit code ${code})`));
        worker.on('message', onMessage).on('error', onError).on('exit', onExit);
        worker.postMessage(job);
      }),
  );
  // This thread scans pieces too (a worker would cost a thread's start-up for nothing more),
  // letting the event loop run between chunks (the workers' pieces are handed on meanwhile).
  try {
    if (workers.length > 0 && joinAfter) await Promise.race([joinAfter.catch(() => {}), stopping]);
    const tools = new ScanTools(scan);
    const window = Buffer.allocUnsafe(CUT_WINDOW);
    for (;;) {
      const k = take(shared, pieces, false);
      if (k === -1 || failure) break;
      if (k === WAIT) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      // The piece whose turn it is hands its incidents on as they are found; a later one keeps them till its turn.
      const incidents: Found[] = [];
      const inTurn = k === emitted;
      const piece = pieceScan(handle.fd, size, k, pieceBytes, tools, window, inTurn ? onIncident : keeping(incidents, runs));
      while (!failure && piece?.step()) await turn();
      finished.set(k, { id: k, incidents, counters: piece?.counters ?? newScanCounters() });
      emitReady();
    }
  } catch (error) {
    fail(error as Error);
  }
  await Promise.all(running);
  signal?.removeEventListener('abort', onAbort);
  await own?.close();
  // (A worker that failed has exited: a pool leaves it out of the next scan.)
  if (failure) throw failure;
  if (emitted !== pieces) throw new Error(`parallel scan: ${pieces - emitted} of ${pieces} pieces not scanned`);
  return counters;
}

/** The thread's script: beside this module once built; from the TypeScript sources (tests), the built one. */
function workerScript(): string {
  const beside = fileURLToPath(new URL('./scanWorker.js', import.meta.url));
  return existsSync(beside) ? beside : beside.replace(/([\\/])src([\\/]replay[\\/]scanWorker\.js)$/, '$1dist$2');
}
