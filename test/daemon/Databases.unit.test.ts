import type pg from 'pg';
import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AuditLog } from '../../src/audit/AuditLog.js';
import { parseConfig } from '../../src/config/config.js';
import { Databases } from '../../src/daemon/Databases.js';
import type { SequenceTarget } from '../../src/db/resolveIndex.js';
import type { Incident } from '../../src/detect/detectIncident.js';

// No server (no connection is opened until a query): which database an incident goes to, and the
// one place that decides a record is not for a database watched here.

const logger = { info: () => {}, warn: () => {}, error: () => {} } as unknown as Logger;

async function open(yaml: string) {
  const written: Array<{ event: string; fields: Record<string, unknown> }> = [];
  const audit = { write: (event: string, fields: Record<string, unknown>) => written.push({ event, fields }) } as unknown as AuditLog;
  const databases = await Databases.open(parseConfig(`${yaml}\nsources: []\n`, '/etc/seqwatch/seqwatch.yaml'), '/etc/seqwatch/seqwatch.yaml', audit, logger);
  const handled: Array<[string, string | undefined]> = [];
  for (const c of databases.contexts) {
    c.remediator.handle = (incident: Incident) => {
      handled.push([c.db.name, incident.database]);
      return Promise.resolve();
    };
  }
  return { databases, handled, written };
}

const incident = (database?: string): Incident => ({
  kind: 'unique_violation',
  constraint: 'ticket_pkey',
  source: '/var/log/pg.log',
  ...(database ? { database } : {}),
});

describe('Databases.route', () => {
  it('sends a record to the database it names, and counts one naming another database without acting on it', async () => {
    const { databases, handled } = await open('databases:\n  - url: postgresql://seqwatch@db/gotrs\n  - url: postgresql://seqwatch@db/otrs');
    await databases.route(incident('otrs'));
    await databases.route(incident('billing'));
    expect(handled).toEqual([['otrs', 'otrs']]);
    expect(databases.counters().otherDatabase).toBe(1);
  });

  it('with one database, a record naming another is not sent to it either', async () => {
    const { databases, handled } = await open('database:\n  url: postgresql://seqwatch@db/gotrs');
    await databases.route(incident('billing'));
    expect(handled).toEqual([]);
    expect(databases.counters().otherDatabase).toBe(1);
  });

  it('checks a record that names no database in each one, and says so once per source when there are several', async () => {
    const { databases, handled, written } = await open('databases:\n  - url: postgresql://seqwatch@db/gotrs\n  - url: postgresql://seqwatch@db/otrs');
    await databases.route(incident());
    await databases.route(incident());
    expect(handled).toEqual([
      ['gotrs', undefined],
      ['otrs', undefined],
      ['gotrs', undefined],
      ['otrs', undefined],
    ]);
    expect(written.filter((r) => r.fields.reason === 'database_unknown')).toHaveLength(1);
  });

  it("with one database, a record that names none gets the remediator's own promise (the pipeline holds one checkpoint for the errors one check answers)", async () => {
    const { databases } = await open('database:\n  url: postgresql://seqwatch@db/gotrs');
    const shared = Promise.resolve();
    databases.contexts[0]!.remediator.handle = () => shared;
    expect(databases.route(incident())).toBe(shared);
  });

  it('with several databases, the records that name none and that the same checks answer share one promise', async () => {
    const { databases } = await open('databases:\n  - url: postgresql://seqwatch@db/gotrs\n  - url: postgresql://seqwatch@db/otrs');
    const [gotrs, otrs] = [Promise.resolve(), Promise.resolve()];
    databases.contexts[0]!.remediator.handle = () => gotrs;
    databases.contexts[1]!.remediator.handle = () => otrs;
    const first = databases.route(incident());
    expect(databases.route(incident())).toBe(first);
    // Another check in one of them: another promise.
    databases.contexts[1]!.remediator.handle = () => Promise.resolve();
    expect(databases.route(incident())).not.toBe(first);
    await first;
  });
});

describe('the rehearsal of a fix on each new connection', () => {
  const target = (table: string): SequenceTarget => ({
    tableOid: 1,
    table: `public.${table}`,
    schema: 'public',
    tableName: table,
    column: 'id',
    columnQuoted: 'id',
    sequenceOid: 2,
    sequence: `public.${table}_id_seq`,
    sequenceSchema: 'public',
    indexed: true,
  });

  // What the guarded statement answers for a sequence in sync.
  const inSync = {
    position: 0,
    same_sequence: true,
    before: '1',
    next_before: '2',
    max_id: '1',
    increment: '1',
    limit: '9',
    seq_type: 'bigint',
    behind: false,
    exhausted: false,
    held: null,
    after: null,
  };

  function recordingClient() {
    const sent: Array<{ text: string; values?: unknown[] }> = [];
    const client = {
      getTransactionStatus: () => 'I',
      query: (text: string, values?: unknown[]) => (sent.push({ text, values }), Promise.resolve({ rows: text.includes('setval') ? [inSync] : [] })),
    } as unknown as pg.PoolClient;
    return { sent, client, guarded: () => sent.filter((s) => s.text.includes('setval')) };
  }

  it('reads a column the policy allows, read-only (act false), and nothing when the warm-up found none', async () => {
    const { databases } = await open('database:\n  url: postgresql://seqwatch@db/gotrs\npolicy:\n  exclude: [audit_*]');
    const [c] = databases.contexts;
    const { sent, client, guarded } = recordingClient();
    await c!.db.rehearsal!(client);
    expect(sent).toEqual([]);
    c!.resolver.rehearsalTargets = [target('audit_log'), target('ticket')];
    await c!.db.rehearsal!(client, 0);
    await c!.db.rehearsal!(client, 1);
    // The one column allowed, in both runs (Database.rehearse runs two: one leaves the server half warm).
    expect(guarded().map((s) => /FROM public\.\w+\)::numeric/.exec(s.text)?.[0])).toEqual(['FROM public.ticket)::numeric', 'FROM public.ticket)::numeric']);
    expect(guarded().map((s) => s.values![0])).toEqual([false, false]);
  });

  it('rehearses two different columns in its two runs when the policy allows two', async () => {
    const { databases } = await open('database:\n  url: postgresql://seqwatch@db/gotrs');
    const [c] = databases.contexts;
    const { client, guarded } = recordingClient();
    c!.resolver.rehearsalTargets = [target('ticket'), target('article'), target('queue')];
    await c!.db.rehearsal!(client, 0);
    await c!.db.rehearsal!(client, 1);
    expect(guarded().map((s) => /FROM public\.\w+\)::numeric/.exec(s.text)?.[0])).toEqual(['FROM public.ticket)::numeric', 'FROM public.article)::numeric']);
    expect(guarded().map((s) => s.values![0])).toEqual([false, false]);
  });
});
