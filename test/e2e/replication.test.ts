import { sqlOn as sql } from '../helpers/db.js';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findLocalBinaries, localBinariesMajor, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { startDaemon } from '../helpers/daemon.js';

/*
 * Real logical replication between two local clusters: a publisher, and a subscriber that already
 * has a row with the key the publisher sends. The subscriber's apply worker fails on it again and
 * again (a unique violation, every wal_retrieve_retry_interval). That is a stuck subscription, not a
 * sequence behind MAX(id): seqwatch must say so once, and never setval.
 */
// From PostgreSQL 15 (in the version matrix): jsonlog, pg_stat_subscription_stats and the LSN that
// ALTER SUBSCRIPTION ... SKIP takes are 15's; on 13 and 14 this test cannot be written this way.
describe.runIf(findLocalBinaries() && (localBinariesMajor() ?? 0) >= 15)('logical replication: an apply-worker conflict is not drift', () => {
  const servers: ThrowawayPostgres[] = [];
  afterAll(async () => {
    // The subscriber first: its worker would keep reconnecting to a publisher that is gone.
    for (const s of servers.reverse()) await s.destroy();
  });

  it('one alert that the subscription is stuck and why, through csvlog, jsonlog and stderr; no setval, no in_sync', async () => {
    const publisher = await startLocalPostgres({ settings: { wal_level: 'logical' } });
    servers.push(publisher);
    const prefix = '%m [%p] %q%u@%d ';
    const subscriber = await startLocalPostgres({
      logLinePrefix: prefix,
      settings: {
        wal_level: 'logical',
        wal_retrieve_retry_interval: '500ms',
        logging_collector: 'on',
        log_destination: 'stderr,csvlog,jsonlog',
        log_filename: 'collector.log',
        log_file_mode: '0644',
      },
    });
    servers.push(subscriber);
    await sql(subscriber.url, `ALTER SYSTEM SET log_directory = '${subscriber.logDir}'; `);
    await sql(subscriber.url, 'SELECT pg_reload_conf()');
    await new Promise((r) => setTimeout(r, 500));
    const file = (ext: string) => join(subscriber.logDir!, `collector.${ext}`);

    await sql(publisher.url, 'CREATE TABLE ticket (id serial PRIMARY KEY, title text); CREATE PUBLICATION tickets FOR TABLE ticket');
    // The subscriber's copy already holds id 1 (written there by hand), and its sequence is behind.
    await sql(subscriber.url, "CREATE TABLE ticket (id serial PRIMARY KEY, title text); INSERT INTO ticket (id, title) VALUES (1, 'local')");

    const daemon = await startDaemon({
      database: { url: subscriber.url },
      sources: [
        { path: file('csv'), format: 'postgres-csv', start_at: 'end' },
        { path: file('json'), format: 'postgres-json', start_at: 'end' },
        { path: file('log'), format: 'postgres-stderr', log_line_prefix: prefix, start_at: 'end' },
      ],
      remediation: { debounce_ms: 50 },
    });
    try {
      await sql(subscriber.url, `CREATE SUBSCRIPTION tickets_sub CONNECTION '${publisher.url}' PUBLICATION tickets WITH (copy_data = false)`);
      // The apply worker is running (and its slot in use) before the publisher writes.
      const workerRuns = async () =>
        (await sql(subscriber.url, "SELECT 1 FROM pg_stat_subscription WHERE subname = 'tickets_sub' AND pid IS NOT NULL")).rowCount === 1;
      const started = Date.now();
      while (!(await workerRuns()) && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 100));
      await sql(publisher.url, "INSERT INTO ticket (title) VALUES ('remote')");

      const alert = await daemon.waitForAudit('the replication conflict alert', (r) => r.event === 'alert' && r.reason === 'replication_conflict', 30_000);
      const suboid = (await sql(subscriber.url, "SELECT oid::text AS oid FROM pg_subscription WHERE subname = 'tickets_sub'")).rows[0].oid as string;
      expect(alert).toMatchObject({ origin: `pg_${suboid}`, subscription_oid: suboid, index: 'ticket_pkey', relation: 'public.ticket' });
      expect(alert.msg).toMatch(
        /logical replication is stuck: the apply worker of the subscription with oid \d+ .* a row with the same key already exists on this subscriber/,
      );
      expect(alert.msg).toMatch(/ALTER SUBSCRIPTION <name> SKIP \(lsn = '[0-9A-F]+\/[0-9A-F]+'\)/);

      // The worker keeps failing (every 500 ms here): wait for several more of its errors in all three logs.
      const applyErrors = async () =>
        Number((await sql(subscriber.url, "SELECT apply_error_count::int AS n FROM pg_stat_subscription_stats WHERE subname = 'tickets_sub'")).rows[0].n);
      const seen = await applyErrors();
      const deadline = Date.now() + 20_000;
      while ((await applyErrors()) < seen + 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(await applyErrors()).toBeGreaterThanOrEqual(seen + 3);
      await new Promise((r) => setTimeout(r, 1_000));

      const about = daemon.audit().filter((r) => r.table === 'public.ticket' || r.reason === 'replication_conflict' || r.trigger?.constraint === 'ticket_pkey');
      expect(about.map((r) => `${r.event}:${r.reason ?? ''}`)).toEqual(['alert:replication_conflict']);
      // Nothing was moved: the subscriber's sequence is where it was.
      const sequence = (await sql(subscriber.url, 'SELECT last_value::text AS v, is_called FROM ticket_id_seq')).rows[0];
      expect(sequence).toEqual({ v: '1', is_called: false });
    } finally {
      await sql(subscriber.url, 'ALTER SUBSCRIPTION tickets_sub DISABLE').catch(() => {});
      await daemon.stop();
    }
  }, 90_000);
});
