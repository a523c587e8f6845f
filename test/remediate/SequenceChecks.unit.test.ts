import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditFields } from '../../src/audit/AuditLog.js';
import { AuditThrottle } from '../../src/audit/AuditThrottle.js';
import type { SequenceState } from '../../src/db/guardedSetval.js';
import type { SequenceTarget } from '../../src/db/resolveIndex.js';
import { FixBudget, HOUR } from '../../src/remediate/FixBudget.js';
import { SequenceChecks, type SequenceCheckSettings } from '../../src/remediate/SequenceChecks.js';
import { FakeClock } from '../helpers/fakeClock.js';

const target: SequenceTarget = {
  tableOid: 1,
  table: 'public.ticket',
  schema: 'public',
  tableName: 'ticket',
  column: 'id',
  columnQuoted: 'id',
  sequenceOid: 10,
  sequence: 'public.ticket_id_seq',
  index: 'public.ticket_pkey',
  indexed: true,
};
const trigger = { source: 'test.log', constraint: 'ticket_pkey' };

/**
 * SequenceChecks over a stand-in for the guarded statement: one table whose MAX the test moves
 * (`drift`), one sequence that a check with act = true moves past it. Time is a FakeClock.
 */
function checks(settings: Partial<SequenceCheckSettings> & { maxFixesPerHour?: number } = {}) {
  const clock = new FakeClock();
  const s = { database: 'app', dryRun: false, debounceMs: 100, cooldownMs: 0, ...settings };
  const records: Array<AuditFields & { event: AuditEvent; msg: string }> = [];
  const audit = { write: (event: AuditEvent, fields: AuditFields, msg: string) => records.push({ event, ...fields, msg }) };
  const table = { next: 1n, max: 0n };
  const calls: Array<{ act: boolean; at: number }> = [];
  const counters = { checks: 0, remediated: 0 };
  const state = (verdict: SequenceState['verdict'], after?: bigint): SequenceState => ({
    verdict,
    before: String(table.next - 1n),
    nextBefore: String(table.next),
    maxId: String(table.max),
    ...(after !== undefined ? { after: String(after) } : {}),
    increment: '1',
    limit: '9223372036854775807',
  });
  const part = new SequenceChecks({
    check: async (_target, act) => {
      calls.push({ act, at: clock.now() - start });
      if (table.next > table.max) return state('in_sync');
      if (!act) return state('planned', table.max);
      const fixed = state('remediated', table.max);
      table.next = table.max + 1n;
      return fixed;
    },
    audit,
    throttle: new AuditThrottle(audit, { clock }),
    budget: new FixBudget(s, clock),
    settings: () => s,
    counters,
    forget: () => {},
    fullScanTimeoutMs: 5_000,
    clock,
  });
  const start = clock.now();
  return {
    part,
    clock,
    records,
    calls,
    counters,
    /** Rows written with explicit ids: the sequence is now behind. */
    drift: (rows = 10n) => (table.max = (table.max > table.next ? table.max : table.next) + rows),
    at: () => clock.now() - start,
  };
}

describe('SequenceChecks (no server)', () => {
  it('debounce: a burst of 1,000 errors makes one check at once and one more after the window', async () => {
    const { part, clock, records, calls, drift } = checks({ debounceMs: 100 });
    drift(100n);
    const handled = Array.from({ length: 1000 }, () => part.enqueue(target, trigger, 1));
    await clock.advance(99);
    expect(calls).toEqual([{ act: true, at: 0 }]);
    await clock.advance(1);
    expect(calls).toEqual([
      { act: true, at: 0 },
      { act: true, at: 100 },
    ]);
    await Promise.all(handled);
    expect(records.filter((r) => r.event === 'remediated')).toHaveLength(1);
    expect(records.filter((r) => r.event === 'detected').map((r) => r.incidents)).toEqual([1, 999]);
  });

  it('the incidents one check answers share one promise, settled once that check is audited, not after the pause: a storm holds nothing per error', async () => {
    const { part, clock, calls } = checks({ debounceMs: 10, cooldownMs: 1_000 });
    const settled = new Set<Promise<void>>();
    const watch = (p: Promise<void>) => void p.then(() => settled.add(p));
    const first = part.enqueue(target, trigger, 1);
    watch(first);
    const waiting = Array.from({ length: 1000 }, () => part.enqueue(target, trigger, 1));
    expect(new Set(waiting).size).toBe(1);
    watch(waiting[0]!);
    // The first check finds the sequence in sync: the next waits the cooldown (the hold-off).
    await clock.advance(0);
    expect(settled.has(first)).toBe(true);
    await clock.advance(500);
    const later = part.enqueue(target, trigger, 1);
    expect(later).toBe(waiting[0]);
    await clock.advance(499);
    expect(settled.has(waiting[0]!)).toBe(false);
    await clock.advance(1);
    expect(calls.map((c) => c.at)).toEqual([0, 1_000]);
    expect(settled.has(waiting[0]!)).toBe(true);
  });

  it('debounce: an error after the window is checked at once', async () => {
    const { part, clock, calls, drift, at } = checks({ debounceMs: 100 });
    drift();
    void part.enqueue(target, trigger, 1);
    await clock.advance(500);
    drift();
    const second = at();
    await Promise.all([part.enqueue(target, trigger, 1), clock.advance(100)]);
    expect(calls.map((c) => c.at)).toEqual([0, second]);
  });

  it('cooldown: a second fix waits for the end of the cooldown; a read-only check tells it is needed', async () => {
    const { part, clock, records, calls, drift } = checks({ debounceMs: 0, cooldownMs: 1_000 });
    drift();
    await Promise.all([part.enqueue(target, trigger, 1), clock.advance(0)]);
    await clock.advance(200);
    drift();
    const second = part.enqueue(target, trigger, 1);
    await clock.advance(799);
    expect(calls).toEqual([
      { act: true, at: 0 },
      { act: false, at: 200 },
    ]);
    await clock.advance(1);
    await second;
    expect(calls.at(-1)).toEqual({ act: true, at: 1_000 });
    expect(records.filter((r) => r.event === 'remediated')).toHaveLength(2);
  });

  it('hold-off: after a check that found the sequence in sync, the next waits the cooldown, not the debounce', async () => {
    const { part, clock, calls, records } = checks({ debounceMs: 10, cooldownMs: 1_000 });
    const handled = [part.enqueue(target, trigger, 1)];
    await clock.advance(5);
    for (let i = 0; i < 50; i++) {
      handled.push(part.enqueue(target, trigger, 1));
      await clock.advance(10);
    }
    await clock.advance(1_000);
    expect(calls.map((c) => c.at)).toEqual([0, 1_000]);
    await clock.advance(1_000);
    await Promise.all(handled);
    expect(records.filter((r) => r.event === 'detected').map((r) => r.incidents)).toEqual([1, 50]);
    // The second in-sync check within the repeat window is counted, not audited; the stop writes it.
    expect(records.filter((r) => r.event === 'in_sync')).toHaveLength(1);
    part.flush();
    expect(records.filter((r) => r.event === 'in_sync').at(-1)).toMatchObject({ checks: 1, trigger: { source: 'summary' } });
  });

  it('the in-sync checks counted within the repeat window are written at its end, with no further check and no stop', async () => {
    const { part, clock, calls, records } = checks({ debounceMs: 10, cooldownMs: 1_000 });
    void part.enqueue(target, trigger, 1);
    await clock.advance(5);
    void part.enqueue(target, trigger, 1);
    await clock.advance(2_000);
    expect(calls.map((c) => c.at)).toEqual([0, 1_000]);
    expect(records.filter((r) => r.event === 'in_sync')).toHaveLength(1);
    // The second check (at 1 s) was counted: its record is due when its window ends, 60 s later.
    await clock.advance(58_994);
    expect(records.filter((r) => r.event === 'in_sync')).toHaveLength(1);
    await clock.advance(1);
    expect(records.filter((r) => r.event === 'in_sync').at(-1)).toMatchObject({ checks: 1, trigger: { source: 'summary' } });
    part.flush();
    expect(records.filter((r) => r.event === 'in_sync')).toHaveLength(2);
  });

  it('hourly cap: past it, no check and one alert until the oldest fix leaves the hour', async () => {
    const { part, clock, records, calls, counters, drift, at } = checks({ debounceMs: 0, cooldownMs: 0, maxFixesPerHour: 2 });
    const first = clock.now();
    for (let i = 0; i < 4; i++) {
      drift();
      await Promise.all([part.enqueue(target, trigger, 1), clock.advance(0)]);
      await clock.advance(60_000);
    }
    expect(counters.remediated).toBe(2);
    expect(calls).toHaveLength(2);
    const alerts = records.filter((r) => r.event === 'alert');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ reason: 'recurring_drift', fixes_last_hour: '2', paused_until: new Date(first + HOUR).toISOString() });
    await clock.advance(HOUR - at());
    await Promise.all([part.enqueue(target, trigger, 1), clock.advance(0)]);
    expect(counters.remediated).toBe(3);
  });

  it('a dry run plans, is never capped nor cooled, and moves nothing', async () => {
    const { part, clock, records, calls, drift } = checks({ dryRun: true, debounceMs: 0, cooldownMs: 10_000, maxFixesPerHour: 1 });
    drift();
    for (let i = 0; i < 3; i++) {
      void part.enqueue(target, trigger, 1);
      await clock.advance(10_000);
    }
    expect(calls.every((c) => !c.act)).toBe(true);
    expect(records.filter((r) => r.event === 'planned')).toHaveLength(3);
    expect(records.filter((r) => r.event === 'alert')).toHaveLength(0);
  });
});
