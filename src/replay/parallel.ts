import { existsSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Incident } from '../detect/detectIncident.js';
import { IncidentScanner } from '../detect/scanner.js';
import { newScanCounters, scanFileRange, ScanTools, type RangeScan, type ScanCounters } from './scanRange.js';
import { unpackIncidents } from './packIncidents.js';
import type { PackedPiece, PieceDone, PieceTask } from './scanWorker.js';

/**
 * The size of the pieces handed to the threads: small enough that the incidents waiting for their
 * turn stay few (16 MiB: less garbage to collect than 32 or 64 MiB on the busy 1 GiB bench log).
 */
export const PIECE_BYTES = 16 * 1024 * 1024;
/** Pieces a worker holds at once (one scanned, the next waiting). */
const WORKER_QUEUE = 2;
/** How far past a piece's nominal start its cut is looked for (a line that begins a record). */
const CUT_WINDOW = 1024 * 1024;

/**
 * Cuts [0, size) into pieces of about `pieceBytes`, each starting at a line that begins a record
 * (IncidentScanner.beginsRecord): the places a single-threaded scan may cut too, so that both find
 * the same records.
 */
export async function cutFile(handle: FileHandle, size: number, scan: RangeScan, pieceBytes = PIECE_BYTES): Promise<number[]> {
  const scanner = new IncidentScanner(scan.format, scan.logLinePrefix);
  const cuts = [0];
  const window = Buffer.allocUnsafe(CUT_WINDOW);
  for (let nominal = pieceBytes; nominal < size; nominal += pieceBytes) {
    if (nominal <= cuts[cuts.length - 1]!) continue;
    // The byte before `nominal` is read too, so a line starting right at it is seen as one.
    const { bytesRead } = await handle.read(window, 0, CUT_WINDOW, nominal - 1);
    let cut = -1;
    for (let newline = window.indexOf(0x0a); newline !== -1 && newline + 1 < bytesRead; newline = window.indexOf(0x0a, newline + 1)) {
      if (scanner.beginsRecord(window.subarray(0, bytesRead), newline + 1)) {
        cut = nominal - 1 + newline + 1;
        break;
      }
    }
    if (cut !== -1 && cut < size) cuts.push(cut);
  }
  return cuts;
}

/**
 * Scans a plain file with `threads` threads (this one and threads - 1 workers), piece by piece;
 * incidents are handed to `onIncident` in the file's order (a piece's once every piece before it
 * is done), so the output is that of one thread. At most a few pieces' incidents wait in memory,
 * whatever the file's size.
 */
export async function scanInParallel(
  handle: FileHandle,
  size: number,
  scan: RangeScan,
  threads: number,
  onIncident: (incident: Incident) => void,
  onProgress?: (done: number) => void,
  pieceBytes = PIECE_BYTES,
): Promise<ScanCounters> {
  // The workers start (load their modules) while this thread cuts the file.
  const script = workerScript();
  const workers = Array.from({ length: Math.max(0, Math.min(threads, Math.ceil(size / pieceBytes)) - 1) }, () => new Worker(script));
  const cuts = await cutFile(handle, size, scan, pieceBytes).catch(async (error: unknown) => {
    await Promise.all(workers.map((worker) => worker.terminate()));
    throw error;
  });
  const pieces = cuts.map((start, i) => ({ start, end: cuts[i + 1] ?? size }));
  const counters = newScanCounters();
  const finished = new Map<number, PieceDone>();
  let nextToEmit = 0;
  let nextToStart = 0;
  const emitReady = () => {
    for (let done = finished.get(nextToEmit); done; done = finished.get(nextToEmit)) {
      finished.delete(nextToEmit);
      for (const key of Object.keys(counters) as Array<keyof ScanCounters>) counters[key] += done.counters[key];
      for (const incident of done.incidents) onIncident(incident);
      onProgress?.(pieces[nextToEmit]!.end);
      nextToEmit++;
    }
  };
  // This thread scans pieces too (a worker would cost a thread's start-up for nothing more).
  const tools = new ScanTools(scan);
  const here = async () => {
    while (nextToStart < pieces.length) {
      const id = nextToStart++;
      const incidents: Incident[] = [];
      const counted = await scanFileRange(handle, pieces[id]!.start, pieces[id]!.end, tools, (incident) => void incidents.push(incident));
      finished.set(id, { id, incidents, counters: counted });
      emitReady();
    }
  };
  /**
   * A worker has WORKER_QUEUE pieces in hand: it starts the next as soon as it posts one, instead
   * of waiting for this thread (busy with its own piece) to hand it one.
   */
  const inWorker = (worker: Worker) =>
    new Promise<void>((resolve, reject) => {
      let inHand = 0;
      const give = () => {
        while (inHand < WORKER_QUEUE && nextToStart < pieces.length) {
          const id = nextToStart++;
          inHand++;
          const task: PieceTask = { id, file: scan.source, start: pieces[id]!.start, end: pieces[id]!.end, scan };
          worker.postMessage(task);
        }
        if (inHand === 0) {
          worker.off('error', reject).off('exit', onExit);
          resolve();
        }
      };
      const onExit = (code: number) => reject(new Error(`a scanning thread stopped (exit code ${code})`));
      worker.on('message', (done: PackedPiece) => {
        inHand--;
        finished.set(done.id, { id: done.id, incidents: unpackIncidents(done.packed), counters: done.counters });
        emitReady();
        give();
      });
      worker.once('error', reject).once('exit', onExit);
      give();
    });
  try {
    await Promise.all([here(), ...workers.map(inWorker)]);
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
  return counters;
}

/** The thread's script: beside this module once built; from the TypeScript sources (tests), the built one. */
function workerScript(): string {
  const beside = fileURLToPath(new URL('./scanWorker.js', import.meta.url));
  return existsSync(beside) ? beside : beside.replace(/([\\/])src([\\/]replay[\\/]scanWorker\.js)$/, '$1dist$2');
}
