import { spawn, type ChildProcess } from 'node:child_process';
import type { Follower, FollowerCounters, FollowerHandlers, Position } from './Follower.js';
import { LineSplitter } from './LineSplitter.js';

export interface JournalOptions {
  /** The systemd unit whose entries to follow (`postgresql@15-main.service`). */
  unit: string;
  /** Resume after this entry (a cursor checkpointed earlier). */
  cursor?: string;
  /** The journalctl to run (tests point it at a stand-in: there is no journald in a container). */
  command?: string;
  restartDelayMs?: number;
}

/** A line journald cut into entries is joined up to this length; a longer one is passed over (counted). */
const MAX_JOINED_BYTES = 4 * 1024 * 1024;

/**
 * PostgreSQL under systemd without a log file: `journalctl --follow --output=json` spawned and
 * supervised (restarted when it exits), each entry's MESSAGE handed on as a line, its cursor kept
 * for the checkpoint. systemd 252's `--after-cursor` skips an entry when combined with `-u`, so
 * the follower asks for `--cursor` (which includes that entry) and drops the entry it already had.
 */
export class JournalFollower implements Follower {
  readonly counters: FollowerCounters = { bytes: 0, oversizedLines: 0 };
  /** The cursor of the last entry handed on. */
  private cursor: string | undefined;
  private child: ChildProcess | undefined;
  private stopped = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /** When journalctl was last seen running (it is restarted when it exits). */
  private runningAt = 0;
  private entries = 0;

  constructor(
    readonly path: string,
    private readonly handlers: FollowerHandlers,
    private readonly options: JournalOptions,
  ) {
    this.cursor = options.cursor;
  }

  /** With a journal position, from the entry after its cursor. */
  async start(resume?: Position): Promise<void> {
    if (resume?.kind === 'journal') this.cursor = resume.cursor;
    this.runningAt = Date.now();
    this.spawn();
  }

  private spawn(): void {
    if (this.stopped) return;
    const args = ['--follow', '--output=json', '--no-pager', `--unit=${this.options.unit}`];
    const resumeAt = this.cursor;
    args.push(resumeAt ? `--cursor=${resumeAt}` : '--lines=0');
    const child = spawn(this.options.command ?? 'journalctl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let skipFirst = resumeAt !== undefined;
    // journald cuts a line longer than its LineMax= into several entries, each but the last marked
    // _LINE_BREAK=line-max: they are one line again before they reach the format, or the piece after
    // a cut (text a client chose) would be read as a line of its own.
    let cut: Buffer[] = [];
    let cutBytes = 0;
    const lines = new LineSplitter(
      4 * 1024 * 1024,
      (line) => {
        let entry: { MESSAGE?: unknown; __CURSOR?: string; _LINE_BREAK?: unknown };
        try {
          entry = JSON.parse(line.toString('utf8')) as typeof entry;
        } catch {
          return;
        }
        if (skipFirst) {
          skipFirst = false;
          if (entry.__CURSOR === resumeAt) return;
        }
        // journald stores a MESSAGE that is not valid UTF-8 as an array of bytes.
        const piece = Array.isArray(entry.MESSAGE) ? Buffer.from(entry.MESSAGE as number[]) : Buffer.from(String(entry.MESSAGE ?? ''));
        if (entry._LINE_BREAK === 'line-max') {
          // The cursor stays at the line's start: a restart reads the whole line again.
          if (cutBytes + piece.length <= MAX_JOINED_BYTES) cut.push(piece);
          cutBytes += piece.length;
          return;
        }
        const message = cut.length > 0 ? Buffer.concat([...cut, piece]) : piece;
        const oversized = cutBytes + piece.length > MAX_JOINED_BYTES;
        cut = [];
        cutBytes = 0;
        if (entry.__CURSOR) this.cursor = entry.__CURSOR;
        if (oversized) {
          this.counters.oversizedLines++;
          return;
        }
        this.handlers.onLine(message, { offset: this.entries++ });
      },
      () => this.counters.oversizedLines++,
    );
    child.stdout!.on('data', (chunk: Buffer) => {
      this.counters.bytes += chunk.length;
      lines.push(chunk, 0);
      clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => this.handlers.onIdle?.(), 100);
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-1000)));
    child.on('error', (error) => this.handlers.onWarning?.(`journalctl: ${error.message}`));
    child.on('close', (code) => {
      this.runningAt = Date.now();
      if (this.stopped) return;
      this.handlers.onWarning?.(`journalctl exited (${code})${stderr ? `: ${stderr.trim()}` : ''}; restarting it`);
      setTimeout(() => this.spawn(), this.options.restartDelayMs ?? 2_000).unref();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.idleTimer);
    this.runningAt = Date.now();
    this.child?.kill();
  }

  position(): Position | undefined {
    return this.cursor === undefined ? undefined : { kind: 'journal', cursor: this.cursor };
  }

  /** Alive while journalctl runs (between its restarts it is not). */
  lastAliveAt(now: number): number {
    return !this.stopped && this.child && this.child.exitCode === null ? now : this.runningAt;
  }

  lagBytes(): number {
    return 0;
  }
}
