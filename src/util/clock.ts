import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Time as the timing rules see it (debounce, cooldown, hourly cap, audit throttling). Injected, so
 * that those rules are tested with a clock the test moves, without a server and without waiting.
 */
export interface Clock {
  now(): number;
  /** Resolves after `ms`, or at once when `signal` is (or becomes) aborted: never rejects. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Calls `fn` after `ms` without keeping the process alive; returns a function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: async (ms, signal) => {
    if (signal?.aborted) return;
    await sleep(Math.max(0, ms), undefined, signal ? { signal } : undefined).catch(() => {});
  },
  setTimer: (fn, ms) => {
    const timer = setTimeout(fn, Math.max(0, ms)).unref();
    return () => clearTimeout(timer);
  },
};
