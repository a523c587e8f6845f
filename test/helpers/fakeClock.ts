import type { Clock } from '../../src/util/clock.js';

/** Lets every promise that can settle now settle (setImmediate runs after the microtask queue is empty). */
export const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A clock the test moves by hand: timers and sleeps fall due only when `advance` passes their time,
 * in order, with the promises they release settled before the next one runs.
 */
export class FakeClock implements Clock {
  private time: number;
  private timers: Array<{ at: number; order: number; fn: () => void }> = [];
  private order = 0;

  constructor(start = Date.parse('2026-12-02T10:00:00.000Z')) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.time + Math.max(0, ms), order: this.order++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const cancel = this.setTimer(resolve, ms);
      signal?.addEventListener(
        'abort',
        () => {
          cancel();
          resolve();
        },
        { once: true },
      );
    });
  }

  /** Moves time forward by `ms`, running each timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.order - b.order)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.fn();
    }
    this.time = end;
    await settle();
  }
}
