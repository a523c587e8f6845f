import { open, readdir, stat, statfs, type FileHandle } from 'node:fs/promises';
import { fstatSync, readSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import type { Checkpoint, Follower, FollowerCounters, FollowerHandlers, Position } from './Follower.js';
import { traceHeal } from '../metrics/healTrace.js';
import { turn } from '../util/turn.js';
import { LineSplitter, type LinePosition, type LineSkipping } from './LineSplitter.js';
import { MAX_LINE_BYTES } from './maxLineBytes.js';

export type { Checkpoint, LinePosition };

export interface FileFollowerOptions {
  /** Where to begin in a file that already exists at start: its end (like `tail -F`) or its beginning. */
  startAt?: 'end' | 'beginning';
  /** How often the file is checked when no change notification arrives. */
  pollIntervalMs?: number;
  /** A line longer than this is skipped (and counted), so one runaway line cannot exhaust memory. */
  maxLineBytes?: number;
  /** A file rotated away is still read while it keeps growing, and closed once idle this long. */
  rotatedIdleMs?: number;
  /** Runs of lines that cannot matter are counted, not handed out (see LineSkipping). */
  skipping?: LineSkipping;
}

export interface FileFollowerCounters extends FollowerCounters {
  lines: number;
  rotations: number;
  truncations: number;
}

/** Bytes at the head of a file that identify it: changed head bytes mean it was truncated and rewritten. */
const HEAD_BYTES = 256;
/**
 * Bytes read at a time. Larger reads (1 MiB) saved thread-pool trips on a busy log, but handed the
 * pipeline ~5,000 lines per tick: under a storm of distinct names the daemon's capped heap ran out
 * (test/safety/storm.test.ts, 3 of 3 runs), so reads stay at 256 KiB.
 */
const CHUNK_BYTES = 256 * 1024;

/** What a poll found: look again at once (AGAIN), the file read to the size it had (READ), or nothing. */
const AGAIN = 2;
const READ = 1;
type Polled = typeof AGAIN | typeof READ | false;

interface OpenFile {
  handle: FileHandle;
  /** A regular file on a local file system: read and looked at synchronously (see readAt). */
  local: boolean;
  dev: number;
  ino: number;
  /** Next byte to read. */
  position: number;
  lines: LineSplitter;
  head: Buffer;
  lastGrowth: number;
}

/**
 * Follows one log file the way `tail -F` does, and survives what log rotation does to it:
 * rename-and-create (the old file is drained before and while the new one is read),
 * copytruncate (detected by size and by the file's first bytes changing), delete-and-recreate,
 * and a file that does not exist yet (read from its beginning once it appears).
 *
 * It reads by file descriptor and splits on bytes, so a multi-byte character or a NUL never
 * confuses it. Polling is the ground truth; `fs.watch` on the directory only wakes it early.
 * Written in-house because the npm `tail` package loses lines on rename rotation, stops on
 * delete+recreate, cannot start at an offset and buffers unbounded lines (see README).
 */
export class FileFollower implements Follower {
  readonly counters: FileFollowerCounters = { lines: 0, bytes: 0, oversizedLines: 0, rotations: 0, truncations: 0 };
  private readonly startAt: 'end' | 'beginning';
  private readonly pollIntervalMs: number;
  private readonly maxLineBytes: number;
  private readonly rotatedIdleMs: number;
  private readonly chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  /** What a poll reads the file's head into (sizeUnlessTruncated). */
  private readonly headRead = Buffer.allocUnsafe(HEAD_BYTES);
  private current: OpenFile | undefined;
  private rotated: OpenFile[] = [];
  private watcher: FSWatcher | undefined;
  /** The directory watch works: a change after a read wakes the follower (else it polls again at once). */
  private watching = false;
  private running: Promise<void> | undefined;
  private stopped = false;
  private woken = false;
  private wake: (() => void) | undefined;
  private lastWarning = '';
  /** Where it was when it stopped: still valid for the checkpoint written after the last checks finish. */
  private finalCheckpoint: Checkpoint | undefined;
  /** When the follower last looked at its files: a stuck follower stops feeding the watchdog. */
  private lastPollAt = 0;
  private readonly skipping: LineSkipping | undefined;

  constructor(
    readonly path: string,
    private readonly handlers: FollowerHandlers,
    options: FileFollowerOptions = {},
  ) {
    this.startAt = options.startAt ?? 'end';
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    this.maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
    this.rotatedIdleMs = options.rotatedIdleMs ?? 2000;
    this.skipping = options.skipping;
  }

  /**
   * Opens the file (or notes that it does not exist yet) and starts following. Resolves once
   * following. With a checkpoint of the same file, reading resumes where it stopped; a file
   * replaced meanwhile is read from its start; a checkpoint that does not match is ignored, and said.
   */
  async start(position?: Position): Promise<void> {
    if (this.running) return;
    const resume = position?.kind === 'file' ? position.checkpoint : undefined;
    this.lastPollAt = Date.now();
    this.current = await this.openPath(this.startAt === 'end' && !resume);
    if (resume && this.current) await this.resume(this.current, resume);
    this.watchDirectory();
    this.running = this.loop();
  }

  /** Stops following and closes every file. A line still being written is not emitted. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.wakeUp();
    await this.running;
    this.finalCheckpoint = this.checkpoint();
    for (const file of [...this.rotated, ...(this.current ? [this.current] : [])]) await file.handle.close().catch(() => {});
    this.rotated = [];
    this.current = undefined;
  }

  private async resume(file: OpenFile, checkpoint: Checkpoint): Promise<void> {
    if (file.dev !== checkpoint.dev || file.ino !== checkpoint.ino) {
      // Replaced while we were down (rotation, delete and recreate): all of the new file is new.
      this.warn(`${this.path} was replaced since the checkpoint: reading it from its start`);
      return;
    }
    const { size } = await file.handle.stat();
    const head = Buffer.alloc(Math.min(checkpoint.headLength, size));
    if (head.length > 0) await file.handle.read(head, 0, head.length, 0);
    if (head.length < checkpoint.headLength || hashOf(head) !== checkpoint.headHash || checkpoint.offset > size) {
      this.warn(`${this.path}: the checkpoint does not match the file (truncated or rewritten): reading it from its start`);
      return;
    }
    file.position = checkpoint.offset;
    file.lines.reset(checkpoint.offset);
  }

  /**
   * Where to resume after a restart: the current file and the start of the first line not yet
   * delivered. Undefined while a rotated file is still being drained (its rest would be lost).
   */
  checkpoint(): Checkpoint | undefined {
    if (this.stopped && this.finalCheckpoint) return { ...this.finalCheckpoint };
    const file = this.current;
    if (!file || this.rotated.length > 0) return undefined;
    return { dev: file.dev, ino: file.ino, headLength: file.head.length, headHash: hashOf(file.head), offset: file.lines.lineStart };
  }

  position(): Position | undefined {
    const checkpoint = this.checkpoint();
    return checkpoint && { kind: 'file', checkpoint };
  }

  /** It polls its files in a loop: the last poll. */
  lastAliveAt(): number {
    return this.lastPollAt;
  }

  /** Bytes in the file at the path that have not been read yet (0 when it does not exist). */
  lagBytes(): number {
    try {
      const { size, ino } = statSync(this.path);
      if (!this.current || this.current.ino !== ino) return size;
      return Math.max(0, size - this.current.position);
    } catch {
      return 0;
    }
  }

  private wakeUp(): void {
    this.woken = true;
    this.wake?.();
  }

  private watchDirectory(): void {
    try {
      const name = basename(this.path);
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (!file || file.toString() === name) this.wakeUp();
      });
      this.watching = true;
      this.watcher.on('error', () => {
        this.watching = false;
        this.watcher?.close();
      });
    } catch {
      // No directory yet, or no inotify: polling alone still finds every change.
    }
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.lastPollAt = Date.now();
      let polled: Polled;
      try {
        polled = await this.poll();
      } catch (error) {
        this.warn(`${this.path}: ${(error as Error).message}`);
        polled = false;
      }
      // After a read to the size the file had, what was written since has woken it (or will).
      if (polled === AGAIN || this.stopped) continue;
      this.handlers.onIdle?.();
      if (this.woken) {
        this.woken = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          traceHeal('woken', { via: 'poll' });
          resolve();
        }, this.pollIntervalMs);
        this.wake = () => {
          clearTimeout(timer);
          traceHeal('woken', { via: 'watch' });
          resolve();
        };
      });
      this.wake = undefined;
      this.woken = false;
    }
  }

  /**
   * One pass over every open file: AGAIN when anything was reopened, rotated, truncated or read
   * from a rotated file, READ when the current file was read up to the size it had at the start
   * of the pass (no empty read, no second pass, to learn it is at the end: the directory watch
   * wakes the follower for what was written since), false when nothing changed.
   */
  private async poll(): Promise<Polled> {
    let polled: Polled = false;
    const now = Date.now();
    // A rotated file first: its lines are older than the new file's.
    for (const file of [...this.rotated]) {
      if (await this.readAvailable(file)) {
        file.lastGrowth = now;
        polled = AGAIN;
      } else if (now - file.lastGrowth >= this.rotatedIdleMs) {
        await this.retire(file);
      }
    }
    const file = this.current;
    if (!file) {
      this.current = await this.openPath(false);
      return this.current !== undefined ? AGAIN : polled;
    }
    // The file's size and first bytes, and what the path names now, asked for at once: one trip
    // to the thread pool's threads and back instead of three in a row (each a wake-up of the event
    // loop; at 20 MiB/s a poll per write of the server). What the path names is acted on after the
    // reading, as before: a rotation after this look is seen at the next poll, which its events wake.
    // A failure to look at the path does not keep the open file from being read: said after it.
    const [size, looked] = await Promise.all([
      this.sizeUnlessTruncated(file),
      this.identityOfPath(file.local).then(
        (identity) => ({ identity }),
        (error: unknown) => ({ error }),
      ),
    ]);
    if (size === undefined) {
      this.counters.truncations++;
      await this.drainCopy(file);
      file.position = 0;
      file.lines.reset(0);
      file.head = Buffer.alloc(0);
      polled = AGAIN;
    }
    if ((await this.readAvailable(file, size ?? Infinity)) && polled === false) polled = this.watching ? READ : AGAIN;
    if ('error' in looked) throw looked.error;
    const { identity } = looked;
    if (!identity || identity.ino !== file.ino || identity.dev !== file.dev) {
      // Renamed or deleted underneath us: keep reading the old descriptor while it grows.
      this.counters.rotations++;
      file.lastGrowth = now;
      this.rotated.push(file);
      this.current = identity ? await this.openPath(false) : undefined;
      polled = AGAIN;
    }
    return polled;
  }

  /**
   * What the path names now (its device and inode), undefined when nothing is there. `now`: asked
   * synchronously, as tail -F does (the file is local, see readAt).
   */
  private identityOfPath(now: boolean): Promise<{ dev: number; ino: number } | undefined> {
    if (!now) {
      return stat(this.path).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      });
    }
    try {
      return Promise.resolve(statSync(this.path, { throwIfNoEntry: false }));
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  private async openPath(atEnd: boolean): Promise<OpenFile | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.path, 'r');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') this.warn(`cannot open ${this.path}: ${(error as Error).message}`);
      return undefined;
    }
    const info = await handle.stat();
    const position = atEnd ? info.size : 0;
    const head = Buffer.alloc(Math.min(HEAD_BYTES, info.size));
    if (head.length > 0) await handle.read(head, 0, head.length, 0);
    // (A file system that cannot say what it is counts as a network one.)
    const local =
      info.isFile() &&
      (await statfs(this.path).then(
        ({ type }) => isLocalFileSystem(type),
        () => false,
      ));
    return {
      handle,
      local,
      dev: info.dev,
      ino: info.ino,
      position,
      lines: new LineSplitter(
        this.maxLineBytes,
        (line, where) => {
          this.counters.lines++;
          this.handlers.onLine(line, where);
        },
        () => this.counters.oversizedLines++,
        position,
        this.skipping,
      ),
      head,
      lastGrowth: Date.now(),
    };
  }

  /**
   * copytruncate copied the file before it truncated it: the lines written after our last read and
   * before the copy are in the copy only. Find the copy (a sibling that begins with the same bytes
   * and reaches past where we were) and read it from the start of our unfinished line to its end.
   */
  private async drainCopy(file: OpenFile): Promise<void> {
    if (file.head.length === 0) return;
    const dir = dirname(this.path);
    const name = basename(this.path);
    let best: { path: string; mtime: number } | undefined;
    for (const entry of await readdir(dir).catch(() => [] as string[])) {
      if (entry === name || !entry.startsWith(name) || entry.endsWith('.gz')) continue;
      const candidate = join(dir, entry);
      const info = await stat(candidate).catch(() => undefined);
      if (!info?.isFile() || info.size < file.lines.lineStart || (best && best.mtime >= info.mtimeMs)) continue;
      const handle = await open(candidate, 'r').catch(() => undefined);
      if (!handle) continue;
      const head = Buffer.alloc(file.head.length);
      await handle.read(head, 0, head.length, 0).finally(() => handle.close());
      if (head.equals(file.head)) best = { path: candidate, mtime: info.mtimeMs };
    }
    if (!best) return;
    const copy = await open(best.path, 'r');
    try {
      file.lines.reset(file.lines.lineStart, false);
      for (let at = file.lines.lineStart; ;) {
        const { bytesRead } = await copy.read(this.chunk, 0, this.chunk.length, at);
        if (bytesRead === 0) break;
        file.lines.push(this.chunk.subarray(0, bytesRead), at);
        at += bytesRead;
      }
      file.lines.end();
    } finally {
      await copy.close();
    }
  }

  /**
   * The file's size, or undefined when it was truncated (copytruncate): it got shorter than what
   * was read, or its first bytes are no longer the same. The size and the head (what a read of
   * HEAD_BYTES finds, as much as the file then holds) are looked at synchronously for a local file
   * (see readAt), else both at once through the thread pool (one wake-up, see poll).
   */
  private async sizeUnlessTruncated(file: OpenFile): Promise<number | undefined> {
    const { fd } = file.handle;
    const [size, bytesRead] = file.local
      ? [fstatSync(fd).size, readSync(fd, this.headRead, 0, HEAD_BYTES, 0)]
      : await Promise.all([file.handle.stat().then((info) => info.size), file.handle.read(this.headRead, 0, HEAD_BYTES, 0).then((read) => read.bytesRead)]);
    if (size < file.position) return undefined;
    const length = Math.min(bytesRead, size);
    if (length === 0) return size;
    const head = this.headRead.subarray(0, length);
    const overlap = Math.min(head.length, file.head.length);
    if (head.subarray(0, overlap).compare(file.head.subarray(0, overlap)) !== 0) return undefined;
    // (A copy: the buffer is read into again at the next poll.)
    if (head.length > file.head.length) file.head = Buffer.from(head);
    return size;
  }

  /**
   * Reads up to `size` (or to the current end of the file); true when any byte was read. Between
   * chunks the event loop turns (the checks and fixes of what was found go on meanwhile), and at
   * most a chunk's lines are handed on at a time.
   */
  private async readAvailable(file: OpenFile, size = Infinity): Promise<boolean> {
    let any = false;
    while (!this.stopped && file.position < size) {
      const full = this.handlers.backpressure?.();
      if (full) await full;
      if (any) await turn();
      if (this.stopped) break;
      const bytesRead = await readAt(file, this.chunk, Math.min(CHUNK_BYTES, size - file.position), file.position);
      if (bytesRead === 0) break;
      any = true;
      this.counters.bytes += bytesRead;
      const start = file.position;
      file.position += bytesRead;
      file.lines.push(this.chunk.subarray(0, bytesRead), start);
    }
    return any;
  }

  /** Closes a rotated file; its last line needs no newline: nobody will finish it now. */
  private async retire(file: OpenFile): Promise<void> {
    file.lines.end();
    this.rotated = this.rotated.filter((other) => other !== file);
    await file.handle.close().catch(() => {});
  }

  private warn(message: string): void {
    if (message === this.lastWarning) return;
    this.lastWarning = message;
    this.handlers.onWarning?.(message);
  }
}

/**
 * Reads `length` bytes at `position` into `buffer`. A regular file on a local file system is read
 * synchronously, as tail does: a followed log's new bytes are in the page cache, and a read through
 * libuv's thread pool cost more than the copy itself (a queue, a thread's wake-up, an eventfd, the
 * event loop's wake-up; the live bench's csvlog: 12,585 syscalls in 10 s before, 4,056 after, and
 * 18 % less CPU). A file on a network file system goes through the thread pool: its read hangs
 * with its server, which would stop the event loop, every other source and the health endpoint with
 * it, instead of this follower alone. So does anything but a regular file (a FIFO, a device), as
 * before.
 */
function readAt(file: OpenFile, buffer: Buffer, length: number, position: number): number | Promise<number> {
  if (file.local) return readSync(file.handle.fd, buffer, 0, length, position);
  return file.handle.read(buffer, 0, length, position).then(({ bytesRead }) => bytesRead);
}

/**
 * File systems (statfs's f_type, linux/magic.h) whose reads may hang with a server or a user-space
 * daemon: network (NFS, SMB/CIFS, Ceph, AFS, Lustre, GPFS, 9p) and FUSE (sshfs, s3fs, ...).
 */
const REMOTE_FILE_SYSTEMS = new Set([
  0x6969, // NFS
  0xff534d42, // CIFS
  0xfe534d42, // SMB2
  0x517b, // SMB
  0x00c36400, // Ceph
  0x6b414653, // AFS (kAFS)
  0x5346414f, // OpenAFS
  0x0bd00bd0, // Lustre
  0x47504653, // GPFS
  0x01021997, // 9p (v9fs)
  0x65735546, // FUSE
]);

/** Whether a file system of this statfs type is read synchronously (see readAt). */
export function isLocalFileSystem(type: number): boolean {
  return !REMOTE_FILE_SYSTEMS.has(type);
}

function hashOf(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
