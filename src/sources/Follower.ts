import type { LinePosition } from './LineSplitter.js';

/**
 * Where a follower was, to resume there after a restart: the file's identity (device, inode and a
 * hash of its first bytes: an inode can be reused by a new file) and the offset of the first line
 * not yet handled.
 */
export interface Checkpoint {
  dev: number;
  ino: number;
  headLength: number;
  headHash: string;
  offset: number;
}

/**
 * Where a source may resume: a byte range in a file (the offset may be moved back to an earlier
 * line), or a journal entry (a cursor names one entry, it cannot be moved back).
 */
export type Position = { kind: 'file'; checkpoint: Checkpoint } | { kind: 'journal'; cursor: string };

export interface FollowerHandlers {
  /** One complete line, without its newline. The buffer is reused: decode or copy it before returning. */
  onLine(line: Buffer, position: LinePosition): void;
  /** Every open file has been read to its end for now: a good moment to emit records still being assembled. */
  onIdle?(): void;
  /** Something an operator should know (permission denied, ...); following goes on. */
  onWarning?(message: string): void;
  /**
   * Asked before each chunk is read: a promise makes the follower wait for it (the stages after it
   * are full). The lines stay in the file meanwhile, so waiting loses nothing.
   */
  backpressure?(): Promise<void> | undefined;
  /** The input ended for good (standard input closed). */
  onEnd?(): void;
}

export interface FollowerCounters {
  bytes: number;
  /** Lines over the length limit, passed over (counted, never fatal). */
  oversizedLines: number;
}

/**
 * One source of lines: a file (FileFollower), a stream (StreamFollower), the journal
 * (JournalFollower). The daemon sees only this, so it never asks which kind it holds.
 */
export interface Follower {
  /** The source as the config names it (a path, `-`, `journald:UNIT`). */
  readonly path: string;
  readonly counters: FollowerCounters;
  /** Starts following; with a position of its own kind, from there. Resolves once following. */
  start(resume?: Position): Promise<void>;
  /** Stops following; its position() stays what it was at the stop. */
  stop(): Promise<void>;
  /** Where it may resume, as far as it has read; undefined when it cannot say (a stream, a rotated file still draining). */
  position(): Position | undefined;
  /**
   * The last moment it was known to work (`now` while it does): a follower silent for long is stuck.
   * A time rather than a yes/no, so that the health message can say for how long.
   */
  lastAliveAt(now: number): number;
  /** Bytes written to the source and not read yet (0 when it cannot know). */
  lagBytes(): number;
}
