import { describe, expect, it } from 'vitest';
import { FixBudget, HOUR } from '../../src/remediate/FixBudget.js';
import { FakeClock } from '../helpers/fakeClock.js';

const ticket = { sequenceOid: 10, tableOid: 1 };
/** Another table fed by the same sequence. */
const archive = { sequenceOid: 10, tableOid: 2 };

describe('FixBudget (no server)', () => {
  it('cooldown: after a fix, the next fix of the sequence waits the rest of it, whichever table', async () => {
    const clock = new FakeClock();
    const budget = new FixBudget({ cooldownMs: 1_000 }, clock);
    expect(budget.cooldownLeft(ticket)).toBe(0);
    budget.recordFix(ticket);
    expect(budget.cooldownLeft(ticket)).toBe(1_000);
    await clock.advance(400);
    expect(budget.cooldownLeft(ticket)).toBe(600);
    expect(budget.cooldownLeft(archive)).toBe(600);
    expect(budget.cooldownLeft({ sequenceOid: 11, tableOid: 1 })).toBe(0);
    await clock.advance(600);
    expect(budget.cooldownLeft(ticket)).toBe(0);
  });

  it('hourly cap: counted per sequence and table, lifted when the oldest fix leaves the hour', async () => {
    const clock = new FakeClock();
    const budget = new FixBudget({ maxFixesPerHour: 2 }, clock);
    const first = clock.now();
    budget.recordFix(ticket);
    await clock.advance(10 * 60_000);
    expect(budget.cap(ticket)).toEqual({ capped: false });
    budget.recordFix(ticket);
    expect(budget.cap(ticket)).toEqual({ capped: true, fixes: 2, until: first + HOUR });
    // Errors on another table sharing the sequence cannot spend the cap of this one, nor the other way round.
    expect(budget.cap(archive)).toEqual({ capped: false });
    await clock.advance(50 * 60_000 - 1);
    expect(budget.cap(ticket).capped).toBe(true);
    await clock.advance(1);
    expect(budget.cap(ticket)).toEqual({ capped: false });
  });

  it('no cap configured: never capped; a reload applies to the fixes already counted', () => {
    const clock = new FakeClock();
    const budget = new FixBudget({}, clock);
    for (let i = 0; i < 100; i++) budget.recordFix(ticket);
    expect(budget.cap(ticket)).toEqual({ capped: false });
    expect(budget.cooldownLeft(ticket)).toBe(0);
    budget.update({ maxFixesPerHour: 100, cooldownMs: 5_000 });
    expect(budget.cap(ticket)).toMatchObject({ capped: true, fixes: 100 });
    expect(budget.cooldownLeft(ticket)).toBe(5_000);
  });
});
