import type { Readable } from 'node:stream';
import type { Follower, FollowerCounters, FollowerHandlers } from './Follower.js';
import { LineSplitter } from './LineSplitter.js';

/**
 * Lines from a stream: standard input (`path: "-"`), so that `docker logs -f gotrs-postgres 2>&1 |
 * seqwatch run ...` and `kubectl logs -f` pipelines work. A stream cannot be re-read, so it has no
 * position to resume from. Records are flushed after a short quiet spell (a pipe delivers a record
 * in pieces).
 */
export class StreamFollower implements Follower {
  readonly counters: FollowerCounters = { bytes: 0, oversizedLines: 0 };
  private readonly lines: LineSplitter;
  private idleTimer: NodeJS.Timeout | undefined;
  private offset = 0;
  /** Set when the stream ended or following stopped: from then on it is no longer alive. */
  private closedAt: number | undefined;

  constructor(
    readonly path: string,
    private readonly stream: Readable,
    private readonly handlers: FollowerHandlers,
    private readonly options: { maxLineBytes?: number; idleMs?: number } = {},
  ) {
    this.lines = new LineSplitter(
      options.maxLineBytes ?? 1024 * 1024,
      (line, position) => handlers.onLine(line, position),
      () => this.counters.oversizedLines++,
    );
  }

  async start(): Promise<void> {
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
      this.closedAt = Date.now();
      this.handlers.onEnd?.();
    });
    this.stream.once('error', (error: Error) => this.handlers.onWarning?.(`${this.path}: ${error.message}`));
  }

  async stop(): Promise<void> {
    clearTimeout(this.idleTimer);
    this.closedAt ??= Date.now();
    this.stream.pause();
    this.stream.removeAllListeners('data');
  }

  position(): undefined {
    return undefined;
  }

  /** Nothing to poll: it is alive while the stream is open. */
  lastAliveAt(now: number): number {
    return this.closedAt ?? now;
  }

  lagBytes(): number {
    return 0;
  }
}
