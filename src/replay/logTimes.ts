/**
 * Date.parse of a log's times, for less: a busy log's incidents come minute after minute, so a time
 * PostgreSQL writes in UTC with milliseconds (%m, csvlog, jsonlog: `2026-11-27 10:00:05.123 UTC`)
 * is its minute's epoch, parsed once, plus its seconds and milliseconds (in UTC a minute has no
 * jump). Any other shape (another zone, no milliseconds, hour 24, a second 60) is parsed as it is.
 * test/replay/logTimes.unit.test.ts holds it to Date.parse.
 */
export class LogTimes {
  private minute = '';
  private minuteEpoch = NaN;

  epochOf(time: string): number {
    // The minute and zone of the time before (their digits and separators checked then): only the
    // seconds and milliseconds are read, without a copy (the busy log's next error is most often
    // in the same minute; ~2x less time than the whole check, in a profile of replay).
    if (time.length === 27 && this.minute !== '' && time.startsWith(this.minute) && time.endsWith(this.zone) && isSecondsMillisAt(time, 16)) {
      const seconds = digit(time, 17) * 10 + digit(time, 18);
      if (seconds <= 59) return this.minuteEpoch + seconds * 1000 + digit(time, 20) * 100 + digit(time, 21) * 10 + digit(time, 22);
    }
    if (!isUtcMillis(time)) return Date.parse(time);
    const seconds = digit(time, 17) * 10 + digit(time, 18);
    // 24:00:00 is a time and 24:00:05 is not; a second 60 is not either: parsed as they are.
    if (seconds > 59 || digit(time, 11) * 10 + digit(time, 12) > 23 || digit(time, 14) * 10 + digit(time, 15) > 59) return Date.parse(time);
    // The minute and the zone: `2026-11-27 10:00` + ` UTC`.
    const minute = time.slice(0, 16);
    if (minute !== this.minute || !time.endsWith(this.zone)) {
      this.minute = minute;
      this.zone = time.slice(23);
      this.minuteEpoch = Date.parse(`${minute}:00.000${this.zone}`);
      this.minuteBytes = Buffer.from(minute + this.zone, 'latin1');
    }
    return this.minuteEpoch + seconds * 1000 + digit(time, 20) * 100 + digit(time, 21) * 10 + digit(time, 22);
  }

  /**
   * An epoch for the gaps between the times of one log (replay's bursts): epochOf's where Date.parse
   * reads the time; else, a time in a zone Date.parse does not know (`2026-11-27 08:00:00.000 CET`:
   * a server whose log_timezone is not UTC) read as if it were UTC, and %n's epoch seconds. Within
   * one zone the gaps are right (not across a change of daylight saving time, an hour once a
   * season); the instants are not, so this is for gaps only. NaN for what it cannot read.
   */
  gapEpochOf(time: string): number {
    const epoch = this.epochOf(time);
    return Number.isNaN(epoch) ? zonelessEpoch(time) : epoch;
  }

  /**
   * gapEpochOf of the time written in bytes[from, to) (read as latin1, as replay's templates read
   * it), without making its text: in the minute and zone of the time before, from its digits; any
   * other from its text. For replay's runs of repeats (a busy log's errors, most in the same minute).
   */
  gapEpochOfBytes(bytes: Uint8Array, from: number, to: number): number {
    const known = this.minuteBytes;
    if (to - from === 27 && known.length === 20 && isSecondsMillisIn(bytes, from + 16) && sameMinuteAndZone(bytes, from, known)) {
      const seconds = (bytes[from + 17]! - 48) * 10 + bytes[from + 18]! - 48;
      if (seconds <= 59) return this.minuteEpoch + seconds * 1000 + (bytes[from + 20]! - 48) * 100 + (bytes[from + 21]! - 48) * 10 + bytes[from + 22]! - 48;
    }
    return this.gapEpochOf(Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from).toString('latin1'));
  }

  private zone = '';
  /** The minute and the zone as bytes (`2026-11-27 10:00 UTC`), for gapEpochOfBytes. */
  private minuteBytes: Uint8Array = new Uint8Array(0);
}

/** `2026-11-27 08:00:00[.000] CET`: a date and a time, then a zone (its name or offset, as PostgreSQL prints it). */
const ZONED = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))? [A-Za-z+-][A-Za-z0-9+:-]{0,9}$/;
/** %n: `1764230400.123`. */
const EPOCH_SECONDS = /^(\d{1,12})(?:\.(\d{1,6}))?$/;

/** The milliseconds of a fraction's digits (`5` is 500, `123456` is 123). */
const millis = (fraction: string | undefined) => (fraction ? Number(fraction.padEnd(3, '0').slice(0, 3)) : 0);

/** A time Date.parse did not read: ZONED's date and time as UTC, or EPOCH_SECONDS; NaN for anything else (or a field out of range). */
function zonelessEpoch(time: string): number {
  const zoned = ZONED.exec(time);
  if (zoned) {
    const [year, month, day, hour, minute, second] = zoned.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) return NaN;
    return Date.UTC(year, month - 1, day, hour, minute, second, millis(zoned[7]));
  }
  const epoch = EPOCH_SECONDS.exec(time);
  return epoch ? Number(epoch[1]) * 1000 + millis(epoch[2]) : NaN;
}

/** Whether bytes[from, from + 16) and bytes[from + 23, from + 27) are the 20 bytes of `known` (a minute and a zone). */
function sameMinuteAndZone(bytes: Uint8Array, from: number, known: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (bytes[from + i] !== known[i]) return false;
  for (let i = 16; i < 20; i++) if (bytes[from + 7 + i] !== known[i]) return false;
  return true;
}

const isDigitByte = (c: number | undefined) => c !== undefined && c >= 48 && c <= 57;

/** isSecondsMillisAt, on bytes. */
function isSecondsMillisIn(bytes: Uint8Array, at: number): boolean {
  return (
    bytes[at] === 58 &&
    isDigitByte(bytes[at + 1]) &&
    isDigitByte(bytes[at + 2]) &&
    bytes[at + 3] === 46 &&
    isDigitByte(bytes[at + 4]) &&
    isDigitByte(bytes[at + 5]) &&
    isDigitByte(bytes[at + 6])
  );
}

const digit = (text: string, at: number) => text.charCodeAt(at) - 48;

const isDigitAt = (text: string, at: number) => {
  const c = text.charCodeAt(at);
  return c >= 48 && c <= 57;
};

/** `:SS.mmm` at `at`: digits where digits go. */
function isSecondsMillisAt(time: string, at: number): boolean {
  return (
    time.charCodeAt(at) === 58 &&
    isDigitAt(time, at + 1) &&
    isDigitAt(time, at + 2) &&
    time.charCodeAt(at + 3) === 46 &&
    isDigitAt(time, at + 4) &&
    isDigitAt(time, at + 5) &&
    isDigitAt(time, at + 6)
  );
}

/** `YYYY-MM-DD HH:MM:SS.mmm UTC` (or GMT): digits where digits go. */
function isUtcMillis(time: string): boolean {
  if (time.length !== 27 || !(time.endsWith(' UTC') || time.endsWith(' GMT'))) return false;
  for (let i = 0; i < 23; i++) {
    const expected = i === 4 || i === 7 ? '-' : i === 10 ? ' ' : i === 13 || i === 16 ? ':' : i === 19 ? '.' : undefined;
    if (expected === undefined ? !isDigitAt(time, i) : time[i] !== expected) return false;
  }
  return true;
}
