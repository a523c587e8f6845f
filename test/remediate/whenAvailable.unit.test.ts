import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditFields } from '../../src/audit/AuditLog.js';
import { DatabaseUnavailable } from '../../src/db/Database.js';
import { OutageWaits, whenAvailable, type OutageWait } from '../../src/remediate/whenAvailable.js';

function outage(waitUntilAvailable: (signal?: AbortSignal) => Promise<void> = async () => {}) {
  const records: Array<AuditFields & { event: AuditEvent; msg: string }> = [];
  const giveUp = new AbortController();
  let failures = 0;
  const clock = { now: Date.parse('2026-12-04T03:00:00Z') };
  const audit = { write: (event: AuditEvent, fields: AuditFields, msg: string) => void records.push({ event, ...fields, msg }) };
  const wait: OutageWait = {
    db: { waitUntilAvailable },
    audit,
    waits: new OutageWaits(audit, () => clock.now),
    giveUp: giveUp.signal,
    onFailure: () => failures++,
  };
  return { wait, records, giveUp, clock, failures: () => failures };
}

const description = { trigger: { source: 'test.log' }, names: { table: 'public.t' }, what: 'checking public.t_id_seq' };

describe('whenAvailable (no server)', () => {
  it('waits out an outage: one failed record with retrying, then the work runs again', async () => {
    const { wait, records, failures } = outage();
    let runs = 0;
    const result = await whenAvailable(
      wait,
      async () => {
        if (++runs < 4) throw new DatabaseUnavailable('connection refused');
        return 'done';
      },
      description,
    );
    expect(result).toBe('done');
    expect(runs).toBe(4);
    expect(failures()).toBe(0); // waited, then done: no failure
    expect(records).toEqual([expect.objectContaining({ event: 'failed', retrying: true, table: 'public.t', error: 'connection refused' })]);
  });

  it('a failure that is no outage is audited as failed at once', async () => {
    const { wait, records, failures } = outage();
    expect(await whenAvailable(wait, async () => Promise.reject(new Error('permission denied for table t')), description)).toBeUndefined();
    expect(failures()).toBe(1);
    expect(records).toEqual([expect.objectContaining({ event: 'failed', msg: 'checking public.t_id_seq failed: permission denied for table t' })]);
  });

  it('a stop while waiting: skipped with reason shutdown', async () => {
    // As Database.waitUntilAvailable: rejects once the signal is aborted (at once when it already is).
    const { wait, records, giveUp } = outage(
      (signal) =>
        new Promise((_, reject) => {
          if (signal!.aborted) reject(new Error('aborted'));
          signal!.addEventListener('abort', () => reject(new Error('aborted')));
        }),
    );
    const result = whenAvailable(wait, async () => Promise.reject(new DatabaseUnavailable('the database system is shutting down')), description);
    giveUp.abort();
    expect(await result).toBeUndefined();
    expect(records.map((r) => [r.event, r.reason])).toEqual([
      ['failed', undefined],
      ['skipped', 'shutdown'],
    ]);
  });

  it('a storm of waits in one outage: 20 audited one by one, the others in one record once the database answers', async () => {
    let answer = () => {};
    const answers = new Promise<void>((resolve) => (answer = resolve));
    const { wait, records, failures, clock } = outage(() => answers);
    let up = false;
    const work = async () => {
      if (!up) throw new DatabaseUnavailable('connection refused');
      return 'done';
    };
    const lookUp = (i: number) => whenAvailable(wait, work, { trigger: { source: 'test.log' }, what: `looking up "n${i}"` });
    const results = [lookUp(0)];
    await new Promise((resolve) => setImmediate(resolve));
    // The summary says since when the database was away: from the outage's first wait.
    clock.now += 5_000;
    for (let i = 1; i < 100; i++) results.push(lookUp(i));
    await new Promise((resolve) => setImmediate(resolve));
    expect(records.filter((r) => r.event === 'failed' && r.retrying === true)).toHaveLength(20);
    expect(failures()).toBe(0);
    up = true;
    answer();
    expect(await Promise.all(results)).toEqual(Array.from({ length: 100 }, () => 'done'));
    expect(records).toHaveLength(21);
    expect(records[20]).toMatchObject({
      event: 'failed',
      retrying: false,
      waited: 80,
      trigger: { source: 'summary' },
      since: '2026-12-04T03:00:00.000Z',
      examples: ['looking up "n20"', 'looking up "n21"', 'looking up "n22"', 'looking up "n23"', 'looking up "n24"'],
    });
    expect(records[20]!.msg).toMatch(/^80 more lookups and checks waited for the database since \S+, beyond the 20 audited one by one/);

    // The next outage is audited one by one again.
    up = false;
    expect(await whenAvailable(wait, async () => (up ? 'again' : ((up = true), Promise.reject(new DatabaseUnavailable('refused')))), description)).toBe(
      'again',
    );
    expect(records.slice(21)).toEqual([expect.objectContaining({ event: 'failed', retrying: true, table: 'public.t' })]);
  });

  it('a stop while a storm waits: 20 given up one by one, the others in one record at the flush', async () => {
    const { wait, records, giveUp, failures } = outage(
      (signal) =>
        new Promise((_, reject) => {
          if (signal!.aborted) reject(new Error('aborted'));
          signal!.addEventListener('abort', () => reject(new Error('aborted')));
        }),
    );
    const results = Array.from({ length: 50 }, (_, i) =>
      whenAvailable(wait, async () => Promise.reject(new DatabaseUnavailable('shutting down')), { trigger: { source: 'test.log' }, what: `checking s${i}` }),
    );
    giveUp.abort();
    expect(await Promise.all(results)).toEqual(Array.from({ length: 50 }, () => undefined));
    wait.waits.flush();
    expect(records.filter((r) => r.event === 'skipped' && r.trigger?.source === 'test.log')).toHaveLength(20);
    expect(records.at(-1)).toMatchObject({ event: 'skipped', reason: 'shutdown', given_up: 30, trigger: { source: 'summary' } });
    expect(records).toHaveLength(20 + 20 + 1);
    // Each wait given up is work not done: a failure.
    expect(failures()).toBe(50);
  });
});
