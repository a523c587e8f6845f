import type { Readable } from 'node:stream';
import type { FileFollowerCounters, FileFollowerHandlers } from './FileFollower.js';
import { LineSplitter } from './LineSplitter.js';

/**
 * Lines from a stream: standard input (`path: "-"`), so that `docker logs -f gotrs-postgres 2>&1 |
 * seqwatch run ...` and `kubectl logs -f` pipelines work. A stream cannot be re-read, so it has no
 * checkpoint. Records are flushed after a short quiet spell (a pipe delivers a record in pieces).
 */
export class StreamFollower {
  readonly counters: FileFollowerCounters = { lines: 0, bytes: 0, oversizedLines: 0, rotations: 0, truncations: 0 };
  lastPollAt = 0;
  private readonly lines: LineSplitter;
  private idleTimer: NodeJS.Timeout | undefined;
  private aliveTimer: NodeJS.Timeout | undefined;
  private offset = 0;
  private ended: Promise<void> | undefined;

  constructor(
    readonly path: string,
    private readonly stream: Readable,
    private readonly handlers: FileFollowerHandlers & { onEnd?: () => void },
    private readonly options: { maxLineBytes?: number; idleMs?: number } = {},
  ) {
    this.lines = new LineSplitter(
      options.maxLineBytes ?? 1024 * 1024,
      (line, position) => {
        this.counters.lines++;
        handlers.onLine(line, position);
      },
      () => this.counters.oversizedLines++,
    );
  }

  async start(): Promise<void> {
    this.lastPollAt = Date.now();
    // Nothing to poll, but the health check asks whether the source is alive: it is while open.
    this.aliveTimer = setInterval(() => (this.lastPollAt = Date.now()), 1_000);
    this.aliveTimer.unref();
    this.ended = new Promise((resolve) => {
      this.stream.on('data', (chunk: Buffer) => {
        this.counters.bytes += chunk.length;
        this.lines.push(chunk, this.offset);
        this.offset += chunk.length;
        clearTimeout(this.idleTimer);
        this.idleTimer = setTimeout(() => this.handlers.onIdle?.(), this.options.idleMs ?? 100);
      });
      this.stream.once('end', () => {
        clearTimeout(this.idleTimer);
        this.lines.end();
        this.handlers.onIdle?.();
        clearInterval(this.aliveTimer);
        resolve();
        this.handlers.onEnd?.();
      });
      this.stream.once('error', (error: Error) => this.handlers.onWarning?.(`${this.path}: ${error.message}`));
    });
  }

  async stop(): Promise<void> {
    clearTimeout(this.idleTimer);
    clearInterval(this.aliveTimer);
    this.stream.pause();
    this.stream.removeAllListeners('data');
  }

  checkpoint(): undefined {
    return undefined;
  }

  lagBytes(): number {
    return 0;
  }
}
