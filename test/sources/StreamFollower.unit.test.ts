import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StreamFollower } from '../../src/sources/StreamFollower.js';

// No server: a stream is alive while it is open (no keep-alive timer), and has no position to resume from.

describe('StreamFollower', () => {
  it('hands out lines, is alive while open, and not once the stream ended', async () => {
    const stream = new PassThrough();
    const lines: string[] = [];
    let ended = false;
    const follower = new StreamFollower('-', stream, { onLine: (line) => lines.push(line.toString()), onEnd: () => (ended = true) }, { idleMs: 5 });
    await follower.start();
    stream.write('one\ntw');
    stream.write('o\n');
    expect(follower.lastAliveAt(1_000)).toBe(1_000);
    stream.end();
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toEqual(['one', 'two']);
    expect(ended).toBe(true);
    expect(follower.lastAliveAt(Date.now() + 60_000)).toBeLessThanOrEqual(Date.now());
    expect(follower.position()).toBeUndefined();
    expect(follower.counters).toEqual({ bytes: 8, oversizedLines: 0 });
  });
});
