import type { Position } from './Follower.js';

/**
 * Checkpoints written after handled incidents at most this often (see CheckpointTracker.request).
 * Each is a write and a rename over the last one (~0.2 ms idle, ~1 ms on a loaded ext4, on the event
 * loop): at 100 ms, following a 20 MiB/s backlog of stale records spent ~0.28 ms of CPU per MiB on
 * them alone. A crash re-reads at most this much more of the log (each record then found in sync).
 */
export const CHECKPOINT_EVERY_MS = 250;

export interface PositionStore {
  save(key: string, position: Position): void;
}

export interface CheckpointTrackerOptions {
  everyMs?: number;
  now?: () => number;
  /** A save that failed: following goes on, a restart would re-read from the last checkpoint written. */
  onSaveError?: (error: Error) => void;
}

/** What still holds a source's checkpoint back. */
export interface OpenWork {
  /** Lines went to the parser since it last flushed: it may hold a record whose continuation lines may follow. */
  recordOpen: boolean;
  /** Offsets of the source's incidents still being handled (offset order not assumed). */
  incidents: readonly number[];
}

/**
 * The rule: a checkpoint never passes an open record or an unfinished incident. No position is taken
 * while the parser holds a record (its continuation lines may follow; the next idle moment, once
 * the parser flushed, takes it). A file position moves back to the first unfinished incident; a
 * journal cursor names one entry and cannot move back, so it is taken only when no incident is
 * unfinished. Undefined: nothing to save now.
 */
export function checkpointAllowed(position: Position | undefined, open: OpenWork): Position | undefined {
  if (!position || open.recordOpen) return undefined;
  if (position.kind === 'journal') return open.incidents.length === 0 ? position : undefined;
  let offset = position.checkpoint.offset;
  for (const at of open.incidents) if (at < offset) offset = at;
  return { kind: 'file', checkpoint: { ...position.checkpoint, offset } };
}

/**
 * Where one source may resume after a restart (kill -9 included) without losing or repeating a
 * record: fed by the source's pipeline (a line went to the parser, the parser flushed, an incident
 * opened, its outcome was audited), it asks the follower where it is, applies checkpointAllowed and
 * saves. Saves are throttled: a storm of 50,000 records must not become 50,000 file writes, nor a
 * log written at 20 MB/s a checkpoint per read. Crashing in between only means re-reading those
 * few records (each then found in sync).
 */
export class CheckpointTracker {
  private readonly incidents: number[] = [];
  private recordOpen = false;
  private lastSavedAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly everyMs: number;
  private readonly now: () => number;

  constructor(
    private readonly store: PositionStore,
    private readonly key: string,
    private readonly follower: { position(): Position | undefined },
    private readonly options: CheckpointTrackerOptions = {},
  ) {
    this.everyMs = options.everyMs ?? CHECKPOINT_EVERY_MS;
    this.now = options.now ?? Date.now;
  }

  /** Incidents opened and not yet closed. */
  get unfinishedIncidents(): number {
    return this.incidents.length;
  }

  /** A line went to the parser: it may now hold a record being assembled. */
  lineParsed(): void {
    this.recordOpen = true;
  }

  /** The parser emitted everything it held: nothing is being assembled. */
  recordsFlushed(): void {
    this.recordOpen = false;
  }

  /**
   * An incident read at `offset` is being handled: the checkpoint stays before it until the
   * returned function is called, once its outcome is audited; calling it asks for a checkpoint.
   * Without an offset (a journal entry) it holds a cursor back, and no byte offset.
   */
  openIncident(offset: number | undefined): () => void {
    const at = offset ?? Number.MAX_SAFE_INTEGER;
    this.incidents.push(at);
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      this.incidents.splice(this.incidents.indexOf(at), 1);
      this.request();
    };
  }

  /** A checkpoint now, or at most everyMs after the last one. */
  request(): void {
    if (this.closed) return;
    const wait = (this.lastSavedAt ?? -Infinity) + this.everyMs - this.now();
    if (wait <= 0) return this.save();
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      if (!this.closed) this.save();
    }, wait);
  }

  /** A checkpoint now, whatever the throttle says (at stop, after the last checks finished). */
  saveNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.save();
  }

  /**
   * The source is no longer followed: a last checkpoint now, then none (a file found again later
   * gets a new tracker, which an old one's late write must not overwrite).
   */
  close(): void {
    if (this.closed) return;
    this.saveNow();
    this.closed = true;
  }

  private save(): void {
    // Asking a file follower costs a hash of the file's head: not while the answer is known to be no
    // (in a storm each finished incident asks, while the parser holds a record).
    if (this.recordOpen) return;
    const position = checkpointAllowed(this.follower.position(), { recordOpen: false, incidents: this.incidents });
    if (!position) return;
    this.lastSavedAt = this.now();
    try {
      this.store.save(this.key, position);
    } catch (error) {
      this.options.onSaveError?.(error as Error);
    }
  }
}
