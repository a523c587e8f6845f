// A floor under replay's design, as a peer of the replay bench: a Node.js process that only reads
// the log and finds the lines holding either word (`duplicate key`, `_id_seq`), with the same
// WebAssembly search replay uses, on 1 or 2 threads. It parses nothing, loads no config, asks no
// database and reports only a count: what replay adds to this is what replay's own work costs.
//
//   node bench/searchFloor.mjs LOG [THREADS]    prints the lines found (replay --json's count of them)
//
// Threads take 16 MiB pieces from the two ends of the file (this thread from the start, the worker
// from the end) through a shared counter, so neither waits for the other's start-up.
import { fstatSync, openSync, readSync } from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createMultiNeedleSearch } from '../dist/detect/wasm/multiNeedle.js';

const PIECE = 16 * 2 ** 20;
const CHUNK = 4 * 2 ** 20;
/** Read past each chunk's end so that a word across the cut is found whole (by the chunk it starts in). */
const OVER = 64;

/** Lines with a hit starting in the pieces this thread takes; `fromEnd`: from the file's end. */
function scanPieces(path, size, counters, fromEnd) {
  const search = createMultiNeedleSearch(['duplicate key', '_id_seq'], { buffers: [CHUNK + OVER] });
  const [buffer] = search.buffers;
  const fd = openSync(path, 'r');
  const pieces = Math.ceil(size / PIECE);
  let lines = 0;
  for (;;) {
    // counters[0]: the pieces taken from the start; counters[1]: from the end.
    const k = fromEnd ? pieces - 1 - Atomics.add(counters, 1, 1) : Atomics.add(counters, 0, 1);
    if (fromEnd ? k < Atomics.load(counters, 0) : k >= pieces - Atomics.load(counters, 1)) break;
    for (let at = k * PIECE, end = Math.min(size, at + PIECE); at < end; at += CHUNK) {
      const own = Math.min(CHUNK, end - at);
      const read = readSync(fd, buffer, 0, Math.min(own + OVER, size - at), at);
      // A line is counted by the chunk its first hit starts in (lineHits: one hit a line).
      for (const hit of search.lineHits(buffer, 0, read)) if (hit < own) lines++;
    }
  }
  return lines;
}

if (isMainThread) {
  const [path, threads = '1'] = process.argv.slice(2);
  let size;
  try {
    if (!path || !['1', '2'].includes(threads)) throw new Error('usage: node bench/searchFloor.mjs LOG [1|2]');
    size = fstatSync(openSync(path, 'r')).size;
  } catch (error) {
    process.stderr.write(`searchFloor: ${error.message}\n`);
    process.exit(2);
  }
  const counters = new Int32Array(new SharedArrayBuffer(8));
  const others =
    Number(threads) > 1
      ? [
          new Promise((resolve, reject) => {
            new Worker(new URL(import.meta.url), { workerData: { path, size, counters } }).once('message', resolve).once('error', reject);
          }),
        ]
      : [];
  const own = scanPieces(path, size, counters, false);
  const all = [own, ...(await Promise.all(others))];
  process.stdout.write(`${all.reduce((a, b) => a + b, 0)}\n`);
} else {
  parentPort.postMessage(scanPieces(workerData.path, workerData.size, workerData.counters, true));
}
