import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditFields } from '../../src/audit/AuditLog.js';
import { DatabaseUnavailable } from '../../src/db/Database.js';
import { whenAvailable, type OutageWait } from '../../src/remediate/whenAvailable.js';

function outage(waitUntilAvailable: (signal?: AbortSignal) => Promise<void> = async () => {}) {
  const records: Array<AuditFields & { event: AuditEvent; msg: string }> = [];
  const giveUp = new AbortController();
  let failures = 0;
  const wait: OutageWait = {
    db: { waitUntilAvailable },
    audit: { write: (event, fields, msg) => records.push({ event, ...fields, msg }) },
    giveUp: giveUp.signal,
    onFailure: () => failures++,
  };
  return { wait, records, giveUp, failures: () => failures };
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
    expect(failures()).toBe(1);
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
});
