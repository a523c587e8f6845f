import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { freePort, metricValue, startDaemon, waitUntil, type AuditRecord, type RunningDaemon } from '../helpers/daemon.js';

const { logPath, logLinePrefix } = inject('pg');

/**
 * How long after an import's commit the application's statements run in these tests: the watch's
 * default interval (2 s) plus the time the importer's statistics take to reach the server (at its
 * transaction's end when it last published them more than a second before, as an importer that
 * connects, imports and disconnects does) plus a margin for a loaded machine. Measured:
 * bench/watch.mjs (docs/watch.md).
 */
const A_FEW_SECONDS = 5_000;
/**
 * The same when the importer stays connected and idle right after two transactions less than a
 * second apart: PostgreSQL 15+ publishes the second one's counters only after 10 s of idling.
 */
const IDLE_IMPORTER_SECONDS = 14_000;

const SCHEMA = `
CREATE TABLE ticket (id serial PRIMARY KEY, title text NOT NULL);
CREATE TABLE customer_user (id serial PRIMARY KEY, login text NOT NULL);
CREATE TABLE article (id bigserial, at date NOT NULL, body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE article_2025 PARTITION OF article FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE article_2026 PARTITION OF article FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE quiet (id serial PRIMARY KEY, note text);
CREATE TABLE unrelated (id serial PRIMARY KEY);
INSERT INTO ticket (title) SELECT 'app ' || g FROM generate_series(1, 5) g;
INSERT INTO article (at, body) SELECT '2026-03-01', 'app' FROM generate_series(1, 3);
`;

/** The remediated record the watch wrote for `table`, if any. */
const healedByWatch = (table: string) => (r: AuditRecord) => r.event === 'remediated' && r.table === table && r.trigger?.source === 'watch';

/** An importer as pg_restore or psql -f is one: connect, write explicit ids, commit, disconnect. */
async function importAndDisconnect(url: string, ...statements: string[]): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let committedAt = 0;
  for (const sql of statements) {
    await client.query(sql);
    committedAt ||= Date.now();
  }
  await client.end();
  return committedAt;
}

describe('the watch at its default settings: silent drift healed before the application writes', () => {
  let db: TestDatabase;
  let daemon: RunningDaemon;
  let metricsPort: number;

  beforeAll(async () => {
    db = await createTestDatabase('watch');
    await db.pool.query(SCHEMA);
    metricsPort = await freePort();
    // An operator's config: the database, the server log, metrics; everything else (the watch
    // included) at its defaults.
    daemon = await startDaemon({
      database: { url: db.url },
      sources: logPath ? [{ path: logPath, format: 'postgres-stderr', log_line_prefix: logLinePrefix }] : [],
      metrics: { listen: `127.0.0.1:${metricsPort}` },
      watch: {},
    });
    await waitUntil("the watch's first look", async () => (await metricValue(metricsPort, 'seqwatch_watch_rounds_total')) >= 1, 20_000);
  });

  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  it('ON CONFLICT DO NOTHING keeps the row, ON CONFLICT DO UPDATE overwrites nothing, no INSERT fails', async () => {
    const committedAt = await importAndDisconnect(
      db.url,
      `INSERT INTO ticket (id, title) SELECT g, 'imported ' || g FROM generate_series(6, 505) g;
       INSERT INTO article (id, at, body) SELECT g, '2025-06-01', 'imported' FROM generate_series(4, 403) g;`,
    );
    await sleep(committedAt + A_FEW_SECONDS - Date.now());

    // Nothing was logged: the only way to know was the watch.
    const kept = await db.pool.query(`INSERT INTO ticket (title) VALUES ('app: do nothing') ON CONFLICT DO NOTHING RETURNING id`);
    expect(kept.rows, 'ON CONFLICT DO NOTHING dropped the row').toHaveLength(1);
    const upserted = await db.pool.query<{ id: number; inserted: boolean }>(
      `INSERT INTO ticket (title) VALUES ('app: upsert') ON CONFLICT (id) DO UPDATE SET title = excluded.title RETURNING id, (xmax = 0) AS inserted`,
    );
    expect(upserted.rows[0]!.inserted, `ON CONFLICT DO UPDATE overwrote imported ticket ${upserted.rows[0]!.id}`).toBe(true);
    await db.pool.query(`INSERT INTO ticket (title) VALUES ('app: plain')`);
    const { rows: imported } = await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ticket WHERE title LIKE 'imported %'`);
    expect(imported[0]!.n).toBe('500');

    // A partitioned table whose key is (id, at) would take a second row with an imported id.
    await db.pool.query(`INSERT INTO article (at, body) VALUES ('2026-04-01', 'app') ON CONFLICT DO NOTHING`);
    const { rows: twice } = await db.pool.query(`SELECT id FROM article GROUP BY id HAVING count(*) > 1`);
    expect(twice, 'an id used twice across partitions').toEqual([]);

    const ticket = daemon.audit().find(healedByWatch('public.ticket'))!;
    const article = daemon.audit().find(healedByWatch('public.article'))!;
    expect(ticket).toMatchObject({ sequence: 'public.ticket_id_seq', after: '505', trigger: { source: 'watch' } });
    expect(article).toMatchObject({ sequence: 'public.article_id_seq', after: '403' });
    console.log(
      `watch: import committed -> ticket healed in ${Date.parse(ticket.time) - committedAt} ms, article (partition) in ${Date.parse(article.time) - committedAt} ms`,
    );
    expect(await metricValue(metricsPort, 'seqwatch_watch_changed_tables_total')).toBeGreaterThanOrEqual(1);
  });

  it('an importer left connected and idle: healed once PostgreSQL publishes its counters (10 s idle flush; 13/14: its next transaction)', async () => {
    const importer = new pg.Client({ connectionString: db.url });
    await importer.connect();
    try {
      const version = (await importer.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`)).rows[0]!.v;
      // Two transactions less than a second apart: the second one's counters wait for the idle flush.
      await importer.query(`INSERT INTO customer_user (login) VALUES ('first')`);
      await importer.query(`INSERT INTO customer_user (id, login) SELECT g, 'imported' || g FROM generate_series(2, 1001) g`);
      let committedAt = Date.now();
      if (version < 150000) {
        // The statistics collector has no idle publication: the counters wait for the importer's
        // next transaction (or its disconnection). Nothing is healed meanwhile but by the full sweep.
        await sleep(IDLE_IMPORTER_SECONDS);
        expect(daemon.audit().find(healedByWatch('public.customer_user'))).toBeUndefined();
        await importer.query('SELECT 1');
        committedAt = Date.now();
        await sleep(A_FEW_SECONDS);
      } else {
        await sleep(committedAt + IDLE_IMPORTER_SECONDS - Date.now());
      }
      const kept = await db.pool.query(`INSERT INTO customer_user (login) VALUES ('app') ON CONFLICT DO NOTHING RETURNING id`);
      expect(kept.rows).toHaveLength(1);
      const healed = daemon.audit().find(healedByWatch('public.customer_user'))!;
      expect(healed).toMatchObject({ after: '1001' });
      console.log(`watch: idle importer committed -> healed in ${Date.parse(healed.time) - committedAt} ms`);
    } finally {
      await importer.end();
    }
  });
});

describe('the watch alone: no log source (a managed database)', () => {
  let db: TestDatabase;
  let daemon: RunningDaemon;

  beforeAll(async () => {
    db = await createTestDatabase('watchonly');
    await db.pool.query(SCHEMA);
    // A lagging table before the daemon starts: the first look (a full sweep) finds it.
    await db.pool.query(`INSERT INTO unrelated (id) SELECT generate_series(1, 50)`);
    daemon = await startDaemon({
      database: { url: db.url },
      sources: [],
      // Its full sweep far away: what heals below is the statistics, not the net.
      watch: { interval: '1s', full_sweep: '1h' },
    });
  });

  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  it('starts with sources: [] and says it is watching', async () => {
    const started = daemon.audit().find((r) => r.event === 'started')!;
    expect(started).toMatchObject({ sources: [], watch: { interval_ms: 1000, full_sweep_ms: 3_600_000 } });
    expect(started.msg).toContain('watching the tables every 1000 ms');
    await daemon.waitForAudit('the table lagging at start healed', healedByWatch('public.unrelated'), 15_000);
  });

  it('heals a table that lags after an import, and again after pg_stat_reset() wiped the counters', async () => {
    const committedAt = await importAndDisconnect(db.url, `INSERT INTO ticket (id, title) SELECT g, 'imported' FROM generate_series(10, 900) g`);
    const healed = await daemon.waitForAudit('ticket healed by the watch', healedByWatch('public.ticket'), 10_000);
    expect(healed).toMatchObject({ after: '900' });
    console.log(`watch only: import committed -> healed in ${Date.parse(healed.time) - committedAt} ms`);

    // quiet has never had a row: its counters are 0 before and, once reset, 0 after the import.
    // Two transactions: the import's counters are published at its commit, then wiped.
    await importAndDisconnect(db.url, `INSERT INTO quiet (id) SELECT generate_series(1, 70)`, `SELECT pg_stat_reset()`);
    const afterReset = await daemon.waitForAudit('quiet healed despite the reset', healedByWatch('public.quiet'), 10_000);
    expect(afterReset).toMatchObject({ after: '70' });
  });
});
