import { closeSync, openSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { IncidentPacker, type PackedIncidents } from './packIncidents.js';
import { CUT_WINDOW, pieceScan, take } from './parallel.js';
import { newScanCounters, ScanTools, type Found, type IncidentSink, type RangeScan, type ScanCounters } from './scanRange.js';

/** A file to scan in pieces with the other threads (see parallel.ts). */
export interface ScanJob {
  file: string;
  size: number;
  scan: RangeScan;
  pieces: number;
  pieceBytes: number;
  /** The counters the threads take pieces by (parallel.ts: take). */
  shared: SharedArrayBuffer;
  /** The incidents' sink takes runs of repeats (IncidentSink.repeats): they are posted as runs. */
  runs: boolean;
}

export interface PieceDone {
  id: number;
  incidents: Found[];
  counters: ScanCounters;
}

/** A piece done, as a worker posts it (see packIncidents). */
export interface PackedPiece {
  id: number;
  packed: PackedIncidents;
  counters: ScanCounters;
}

/** What a worker posts: each piece it scanned, then that it took the job's last. */
export type WorkerMessage = PackedPiece | { done: true };

/**
 * A scanning thread: for each job, the pieces it takes (parallel.ts: take), scanned with
 * synchronous reads (nothing else runs in this thread meanwhile), their incidents posted piece by
 * piece. Its scanner and buffer stay for the next job of the same file (its format and prefix).
 */
if (parentPort) {
  const port = parentPort;
  let tools: ScanTools | undefined;
  let window: Buffer | undefined;
  port.on('message', (job: ScanJob) => {
    const { format, logLinePrefix, source } = job.scan;
    if (tools?.scan.format !== format || tools.scan.logLinePrefix !== logLinePrefix || tools.scan.source !== source) tools = new ScanTools(job.scan);
    window ??= Buffer.allocUnsafe(CUT_WINDOW);
    const shared = new Int32Array(job.shared);
    const fd = openSync(job.file, 'r');
    try {
      const packer = new IncidentPacker();
      const add: IncidentSink = (incident) => packer.add(incident);
      if (job.runs) add.repeats = (run) => packer.addRun(run);
      for (let k = take(shared, job.pieces, true); k !== -1; k = take(shared, job.pieces, true)) {
        const scan = pieceScan(fd, job.size, k, job.pieceBytes, tools, window, add);
        while (scan?.step());
        const piece: PackedPiece = { id: k, packed: packer.take(), counters: scan?.counters ?? newScanCounters() };
        port.postMessage(piece, [piece.packed.columns.buffer as ArrayBuffer]);
      }
    } finally {
      closeSync(fd);
    }
    port.postMessage({ done: true } satisfies WorkerMessage);
  });
}
