import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A token bucket: `burst` at once, then `perSecond`. Callers wait for their turn instead of being
 * refused, so nothing is dropped, and what the limiter guards (the production catalog) never sees
 * more than that rate, however many distinct names a forged or garbled log throws at it.
 */
export class RateLimiter {
  private tokens: number;
  private last: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  take(): Promise<void> {
    const turn = this.queue.then(async () => {
      for (;;) {
        const now = this.now();
        this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
        this.last = now;
        if (this.tokens >= 1) {
          this.tokens -= 1;
          return;
        }
        await sleep(Math.ceil(((1 - this.tokens) * 1000) / this.perSecond));
      }
    });
    this.queue = turn;
    return turn;
  }
}
