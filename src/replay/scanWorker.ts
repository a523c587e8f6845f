import { open, type FileHandle } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import type { Incident } from '../detect/detectIncident.js';
import { packIncidents, type PackedIncidents } from './packIncidents.js';
import { scanFileRange, ScanTools, type RangeScan, type ScanCounters } from './scanRange.js';

/** A piece of a file to scan (see parallel.ts). */
export interface PieceTask {
  id: number;
  file: string;
  start: number;
  end: number;
  scan: RangeScan;
}

export interface PieceDone {
  id: number;
  incidents: Incident[];
  counters: ScanCounters;
}

/** A piece done, as a worker posts it (see packIncidents). */
export interface PackedPiece {
  id: number;
  packed: PackedIncidents;
  counters: ScanCounters;
}

/** A scanning thread: pieces in, their incidents out, one piece at a time; the file stays open between pieces. */
if (parentPort) {
  const port = parentPort;
  let handle: { file: string; handle: FileHandle; tools: ScanTools } | undefined;
  let queue = Promise.resolve();
  port.on('message', (task: PieceTask) => {
    queue = queue.then(async () => {
      if (handle?.file !== task.file) {
        await handle?.handle.close();
        handle = { file: task.file, handle: await open(task.file, 'r'), tools: new ScanTools(task.scan) };
      }
      const incidents: Incident[] = [];
      const counters = await scanFileRange(handle.handle, task.start, task.end, handle.tools, (incident) => void incidents.push(incident));
      const done: PackedPiece = { id: task.id, packed: packIncidents(incidents), counters };
      port.postMessage(done, [done.packed.columns.buffer as ArrayBuffer]);
    });
    // An error ends the thread with it: the main thread reports it.
    queue.catch((error: unknown) => {
      throw error;
    });
  });
}
