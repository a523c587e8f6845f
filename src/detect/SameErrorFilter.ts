import type { Incident } from './detectIncident.js';

/** Identities remembered; past this the oldest are forgotten (one destination lagging far behind the others is re-counted). */
const REMEMBERED = 10_000;

interface Seen {
  database: string | undefined;
  /** How many incidents of this identity each destination gave. */
  perDestination: Map<string, number>;
}

/**
 * One server followed through several destinations at once (stderr and csvlog and jsonlog from the
 * same logging collector) writes every error once per destination: the same error must count once,
 * not two or three times. An error's identity is the server process that wrote it, its log time to
 * the second (stderr's %t has no milliseconds, csvlog and jsonlog have), its kind and name; the
 * database too where both records say it. A destination is a log format (stderr, csvlog, jsonlog):
 * the files of one destination (a glob's rotated files) hold different records, never copies.
 * Within one destination every record counts (one backend can fail twice in a second); a record
 * from another destination counts only beyond what that one has already given for the same
 * identity. Records without a pid or a log time (an application log, a prefix without %p) are
 * always counted.
 */
export class SameErrorFilter {
  private readonly seen = new Map<string, Seen>();

  /** True when `incident`, read from `destination` (its format), is one another destination already gave: not to be counted again. */
  isRepeat(incident: Incident, destination: string): boolean {
    if (incident.pid === undefined || incident.logTime === undefined) return false;
    const key = `${incident.pid}\u0000${toSecond(incident.logTime)}\u0000${incident.kind}\u0000${incident.constraint}`;
    let seen = this.seen.get(key);
    if (seen && incident.database !== undefined && seen.database !== undefined && seen.database !== incident.database) return false;
    if (!seen) {
      if (this.seen.size >= REMEMBERED) this.seen.delete(this.seen.keys().next().value!);
      seen = { database: incident.database, perDestination: new Map() };
      this.seen.set(key, seen);
    }
    seen.database ??= incident.database;
    const mine = (seen.perDestination.get(destination) ?? 0) + 1;
    seen.perDestination.set(destination, mine);
    let others = 0;
    for (const [other, count] of seen.perDestination) if (other !== destination && count > others) others = count;
    return mine <= others;
  }
}

/**
 * A log time to the second, the same for `2026-12-02 05:53:48.011 UTC` (%m, csvlog, jsonlog),
 * `2026-12-02 05:53:48 UTC` (%t) and `1764654828.011` (%n).
 */
function toSecond(logTime: string): string {
  const epoch = Number(logTime);
  if (Number.isFinite(epoch)) return String(Math.floor(epoch));
  const parsed = Date.parse(logTime);
  if (Number.isFinite(parsed)) return String(Math.floor(parsed / 1000));
  // A zone Date cannot read (CET): every destination prints the same log_timezone, so the text to the second will do.
  return logTime.slice(0, 19);
}
