import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditFields } from '../../src/audit/AuditLog.js';
import { AuditThrottle } from '../../src/audit/AuditThrottle.js';
import { FakeClock } from '../helpers/fakeClock.js';

function throttled(options: { windowMs?: number; distinctPerWindow?: number } = {}) {
  const clock = new FakeClock();
  const records: Array<AuditFields & { event: AuditEvent; msg: string }> = [];
  const throttle = new AuditThrottle({ write: (event, fields, msg) => records.push({ event, ...fields, msg }) }, { ...options, clock });
  return { clock, records, throttle };
}

const from = (constraint: string) => ({ source: 'test.log', constraint });

describe('AuditThrottle (no server)', () => {
  it('audits the same decision once per window and counts the repeats into the next record', async () => {
    const { clock, records, throttle } = throttled({ windowMs: 60_000 });
    for (let i = 0; i < 50; i++) throttle.once('skipped', from('nope_pkey'), 'unknown_constraint', 'no such index');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ event: 'skipped', reason: 'unknown_constraint', repeats_since_last: 0, trigger: { constraint: 'nope_pkey' } });
    await clock.advance(59_999);
    throttle.once('skipped', from('nope_pkey'), 'unknown_constraint', 'no such index');
    expect(records).toHaveLength(1);
    await clock.advance(1);
    throttle.once('skipped', from('nope_pkey'), 'unknown_constraint', 'no such index');
    expect(records).toHaveLength(2);
    expect(records[1]).toMatchObject({ repeats_since_last: 50 });
    // Another reason, or another subject, is another decision.
    throttle.once('skipped', from('nope_pkey'), 'backlog_full', 'dropped');
    throttle.once('skipped', from('other_pkey'), 'unknown_constraint', 'no such index');
    expect(records).toHaveLength(4);
  });

  it('counts a repeat without its record when the same decision was audited within its window (repeated)', async () => {
    const { clock, records, throttle } = throttled({ windowMs: 60_000 });
    const fields = { sequence: 'public.old_id_seq' };
    // Nothing audited yet: not a repeat, and nothing counted.
    expect(throttle.repeated('skipped', 'stale_record', 'public.old_id_seq')).toBe(false);
    throttle.once('skipped', from('old_pkey'), 'stale_record', 'logged long ago', fields);
    for (let i = 0; i < 9; i++) expect(throttle.repeated('skipped', 'stale_record', 'public.old_id_seq')).toBe(true);
    expect(throttle.repeated('skipped', 'stale_record', 'public.other_id_seq')).toBe(false);
    expect(records).toHaveLength(1);
    await clock.advance(60_000);
    expect(throttle.repeated('skipped', 'stale_record', 'public.old_id_seq')).toBe(false);
    throttle.once('skipped', from('old_pkey'), 'stale_record', 'logged long ago', fields);
    expect(records).toHaveLength(2);
    expect(records[1]).toMatchObject({ repeats_since_last: 9 });
  });

  it('a flood of distinct names: the first 20 one by one, the rest in one summary at the window end', async () => {
    const { clock, records, throttle } = throttled({ windowMs: 60_000 });
    for (let i = 0; i < 500; i++) throttle.once('skipped', from(`forged_${i}_pkey`), 'unknown_constraint', 'no such index');
    expect(records).toHaveLength(20);
    await clock.advance(59_999);
    expect(records).toHaveLength(20);
    await clock.advance(1);
    expect(records).toHaveLength(21);
    expect(records[20]).toMatchObject({
      event: 'skipped',
      reason: 'unknown_constraint',
      trigger: { source: 'summary' },
      distinct_names: 480,
      records: 480,
      examples: ['forged_20_pkey', 'forged_21_pkey', 'forged_22_pkey', 'forged_23_pkey', 'forged_24_pkey'],
      since: new Date(clock.now() - 60_000).toISOString(),
    });
    // A new window: the budget is back.
    throttle.once('skipped', from('later_pkey'), 'unknown_constraint', 'no such index');
    expect(records).toHaveLength(22);
  });

  it("alerts about what the catalog confirmed are never summarised; alerts naming a log's name are", () => {
    const { records, throttle } = throttled({ distinctPerWindow: 3 });
    for (let i = 0; i < 10; i++) throttle.once('alert', from('t_pkey'), 'jump_guard', 'held', { sequence: `public.s${i}` });
    expect(records).toHaveLength(10);
    for (let i = 0; i < 10; i++) throttle.once('alert', from(`sub_${i}`), 'replication_conflict', 'stuck', {}, { fromLog: true });
    expect(records).toHaveLength(13);
  });

  it('subject and window per decision; flush writes the open summaries (a stop)', async () => {
    const { clock, records, throttle } = throttled({ windowMs: 1_000, distinctPerWindow: 1 });
    throttle.once('alert', from('a'), 'recurring_drift', 'capped', { sequence: 's' }, { windowMs: 3_600_000, subject: 's t' });
    await clock.advance(2_000);
    throttle.once('alert', from('b'), 'recurring_drift', 'capped', { sequence: 's' }, { windowMs: 3_600_000, subject: 's t' });
    expect(records).toHaveLength(1);
    throttle.once('skipped', from('x'), 'not_sequence_fed', 'a genuine duplicate');
    throttle.once('skipped', from('y'), 'not_sequence_fed', 'a genuine duplicate');
    throttle.once('skipped', from('z'), 'not_sequence_fed', 'a genuine duplicate');
    expect(records).toHaveLength(2);
    throttle.flush();
    expect(records).toHaveLength(3);
    expect(records[2]).toMatchObject({ reason: 'not_sequence_fed', distinct_names: 2, records: 2, examples: ['y', 'z'] });
    // The flushed window's timer is gone: nothing more at its end.
    await clock.advance(5_000);
    expect(records).toHaveLength(3);
  });
});
