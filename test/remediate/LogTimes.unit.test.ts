import { describe, expect, it } from 'vitest';
import { LogTimes } from '../../src/remediate/Remediator.js';

describe('LogTimes (the log time of each incident, to tell stale records)', () => {
  it('gives what Date.parse gives, for runs of times in the same second and for every other shape', () => {
    const times = new LogTimes();
    let seed = 3;
    const next = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const pad = (v: number, n = 2) => String(v).padStart(n, '0');
    const zones = ['UTC', 'CET', 'GMT', 'EST', '+01', '-0530', 'Europe/Berlin', 'XYZ', ''];
    const texts: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const second = `${2000 + next(40)}-${pad(1 + next(13))}-${pad(1 + next(32))} ${pad(next(25))}:${pad(next(61))}:${pad(next(62))}`;
      const zone = zones[next(zones.length)]!;
      for (let k = 0; k < 3; k++) texts.push(`${second}.${pad(next(1000), 3)} ${zone}`);
    }
    // Other shapes: parsed whole.
    texts.push('2026-12-02 10:00:00 UTC', '2026-12-02 10:00:00.12 UTC', '2026-12-02T10:00:00.123Z', '2026-12-02 10:00:00.123456 UTC', 'garbage', '');
    texts.push('2026-12-02 10:00:00.1x3 UTC', '2026-12-02 10:00:00.123UTC');
    for (const text of texts) expect(times.parse(text), text).toStrictEqual(Date.parse(text));
  });
});
