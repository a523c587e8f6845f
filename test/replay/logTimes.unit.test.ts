import { describe, expect, it } from 'vitest';
import { LogTimes } from '../../src/replay/logTimes.js';
import { random } from '../helpers/random.js';

describe("replay's log times", () => {
  it('are what Date.parse says, time after time, whatever their shape', () => {
    const next = random(0x7173);
    const two = (n: number) => String(Math.floor(n)).padStart(2, '0');
    const times: string[] = [
      '2026-11-27 10:00:05.123 UTC',
      '2026-11-27 10:00:59.999 UTC',
      '2026-11-27 10:00:60.000 UTC',
      '2026-11-27 10:00:05.123 GMT',
      '2026-11-27 10:00:05.123 CET',
      '2026-11-27 10:00:05.123 EST',
      '2026-11-27 10:00:05.123',
      '2026-11-27 10:00:05 UTC',
      '2026-02-30 10:00:05.123 UTC',
      '2026-13-01 10:00:05.123 UTC',
      '2026-11-27 24:00:05.123 UTC',
      '2026-11-27 24:00:00.000 UTC',
      '2026-11-27 23:60:05.123 UTC',
      '0000-01-01 00:00:05.123 UTC',
      '2026-11-27T10:00:05.123Z',
      '1764237605.123',
      '',
      'not a time at all but 27 c.',
      '2026-11-27 10:0a:05.123 UTC',
      // After a time of the same minute (whose minute and zone are then taken as read): what follows them is checked still.
      '2026-11-27 10:00:05.123 UTC',
      '2026-11-27 10:00:0a.123 UTC',
      '2026-11-27 10:00:05x123 UTC',
      '2026-11-27 10:00:05.12a UTC',
      '2026-11-27 10:00;05.123 UTC',
      '2026-11-27 10:00:60.123 UTC',
      '2026-11-27 10:00:99.999 UTC',
      '2026-11-27 10:00:05.123 UTC ',
      '2026-11-27 10:00:05.123 GMT',
      '2026-11-27 10:00:05.123 UTX',
      '2026-11-27 10:00:5.1234 UTC',
    ];
    for (let i = 0; i < 20_000; i++) {
      const zone = [' UTC', ' UTC', ' GMT', ' EST', '', ' +01', ' UTC'][Math.floor(next() * 7)]!;
      const minute =
        next() < 0.7 ? '2026-11-27 10:00' : `20${two(next() * 100)}-${two(1 + next() * 13)}-${two(1 + next() * 31)} ${two(next() * 25)}:${two(next() * 61)}`;
      times.push(`${minute}:${two(next() * 61)}.${String(Math.floor(next() * 1000)).padStart(3, '0')}${zone}`);
    }
    const parsed = new LogTimes();
    for (const time of times) expect(parsed.epochOf(time), time).toBe(Date.parse(time));
    // For gaps (replay's bursts): Date.parse's where it reads the time; from the bytes of a line
    // (replay's runs of repeats) the same, alone and taking turns with epochOf (one cache).
    for (const alone of [true, false]) {
      const fromBytes = new LogTimes();
      times.forEach((time, i) => {
        const line = Buffer.from(`x ${time} y`, 'latin1');
        const epoch = alone || i % 3 ? fromBytes.gapEpochOfBytes(line, 2, 2 + time.length) : fromBytes.gapEpochOf(time);
        expect(epoch, time).toBe(new LogTimes().gapEpochOf(time));
        if (!Number.isNaN(Date.parse(time))) expect(epoch, time).toBe(Date.parse(time));
      });
    }
  });

  it('for gaps, a zone Date.parse does not read is taken as UTC, and %n is epoch seconds; what is no time stays NaN', () => {
    const times = new LogTimes();
    const utc = Date.parse('2026-11-27 08:00:05.123 UTC');
    expect(times.gapEpochOf('2026-11-27 08:00:05.123 CET')).toBe(utc);
    expect(times.gapEpochOf('2026-11-27 08:00:05 CEST')).toBe(utc - 123);
    expect(times.gapEpochOf('2026-11-27 08:00:05.5 MSK')).toBe(utc + 377);
    expect(times.gapEpochOf('1764230405.123')).toBe(1764230405123);
    expect(times.gapEpochOf('1764230405')).toBe(1764230405000);
    // Date.parse's own where it reads them (an offset, a US zone).
    expect(times.gapEpochOf('2026-11-27 08:00:05.123 -03')).toBe(Date.parse('2026-11-27 08:00:05.123 -03'));
    expect(times.gapEpochOf('2026-11-27 08:00:05.123 EST')).toBe(Date.parse('2026-11-27 08:00:05.123 EST'));
    for (const no of ['2026-13-27 08:00:05.123 CET', '2026-11-27 24:00:05 CET', '2026-11-27 08:60:05 CET', 'yesterday', '', 'not a time at all'])
      expect(times.gapEpochOf(no), no).toBeNaN();
    // The instants are Date.parse's alone: the daemon's epochOf (a record's age) is unchanged.
    expect(times.epochOf('2026-11-27 08:00:05.123 CET')).toBeNaN();
  });
});
