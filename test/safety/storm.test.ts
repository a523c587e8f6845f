import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { duplicateKeyLine, freePort, metricValue, rssMiB, startDaemon, waitFor, waitUntil, type RunningDaemon } from '../helpers/daemon.js';

/*
 * Storms, as a stuck application or a forged log produces them: the same error ten thousand times
 * within a second, and fifty thousand distinct names nobody has. One daemon, metrics on, a real
 * server; the counts come from the daemon's /metrics and its audit log.
 */
// The daemon's old space, capped. A storm held ~50 MB when each error had its own chain of promises,
// held through the cooldown (at 40 MiB the daemon died here; at 64 it did once, on a loaded CI
// machine); the errors one check answers now share one promise (~24 MB at the peak, 4,000 names
// waiting for the catalog).
const HEAP_MIB = 40;

describe('storms', () => {
  let db: TestDatabase;
  let daemon: RunningDaemon;
  let port: number;
  let appLog: string;

  const lastValue = async (seq: string) => Number((await db.pool.query<{ v: string }>('SELECT last_value::text AS v FROM ' + seq)).rows[0]!.v);
  const incidentsOf = (records: ReturnType<RunningDaemon['audit']>, table: string) =>
    records.filter((r) => r.event === 'detected' && r.table === table).reduce((n, r) => n + Number(r.incidents), 0);

  beforeAll(async () => {
    db = await createTestDatabase('storm');
    await db.pool.query(`
      CREATE TABLE ticket (id bigserial PRIMARY KEY);
      CREATE TABLE article (id bigserial PRIMARY KEY);
      INSERT INTO ticket (id) SELECT generate_series(1, 1000);
      INSERT INTO article (id) SELECT generate_series(1, 700);`);
    appLog = join(mkdtempSync(join(tmpdir(), 'seqwatch-storm-')), 'app.log');
    writeFileSync(appLog, '');
    port = await freePort();
    daemon = await startDaemon(
      {
        database: { url: db.url },
        sources: [{ path: appLog, log_line_prefix: '%m [%p] ' }],
        remediation: { debounce_ms: 200, dry_run: false },
        metrics: { listen: `127.0.0.1:${port}` },
      },
      // Bounded memory, shown the hard way: a daemon whose state grew with the names would die here.
      { NODE_OPTIONS: `--max-old-space-size=${HEAP_MIB}` },
    );
  });

  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await db?.drop();
  });

  it('10,000 duplicate key errors for one table within a second: a handful of checks, one setval, every error counted', async () => {
    // Its tables were looked up ahead of any error (the catalog warm-up: the names, then one batch).
    await waitFor('the catalog warm-up', () => daemon.stderr().includes('catalog warmed'), 10_000);
    const warmUp = await metricValue(port, 'seqwatch_catalog_queries_total');
    expect(warmUp).toBe(2);
    const started = Date.now();
    appendFileSync(appLog, Array.from({ length: 10_000 }, (_, i) => duplicateKeyLine('ticket_pkey', 1000 + (i % 50))).join(''));
    expect(Date.now() - started).toBeLessThan(1_000);
    await daemon.waitForAudit('the fix', (r) => r.event === 'remediated' && r.table === 'public.ticket');
    await waitFor('every error to reach a check', () => incidentsOf(daemon.audit(), 'public.ticket') === 10_000, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 500));

    const records = daemon.audit();
    expect(records.filter((r) => r.event === 'remediated')).toHaveLength(1);
    expect(await lastValue('ticket_id_seq')).toBe(1000);
    const checks = await metricValue(port, 'seqwatch_sequence_checks_total');
    expect(checks).toBeGreaterThanOrEqual(1);
    expect(checks).toBeLessThanOrEqual(5);
    expect(records.filter((r) => r.event === 'detected')).toHaveLength(checks);
    // The storm itself asks the catalog nothing: ticket_pkey was looked up ahead.
    expect(await metricValue(port, 'seqwatch_catalog_queries_total')).toBe(warmUp);
    expect(await metricValue(port, 'seqwatch_incidents_total')).toBe(10_000);
    console.info(
      `storm of 10,000: ${checks} checks, no catalog query (warmed ahead), healed ${Date.parse(records.find((r) => r.event === 'remediated')!.time) - started} ms after the write`,
    );
  });

  it('2 x 50,000 distinct unknown names: bounded catalog queries and memory, a summary instead of 50,000 lines, and the real error among them healed', async () => {
    const queriesBefore = await metricValue(port, 'seqwatch_catalog_queries_total');
    const rssBefore = rssMiB(daemon.child.pid!);
    const started = Date.now();
    const lines: string[] = [];
    for (let i = 0; i < 50_000; i++) lines.push(duplicateKeyLine(`forged_${i}_pkey`, 2000 + (i % 50)));
    lines.splice(25_000, 0, duplicateKeyLine('article_pkey'));
    // Written in five bursts, as fast as the file takes them.
    for (let i = 0; i < 5; i++) appendFileSync(appLog, lines.slice(i * 10_000, (i + 1) * 10_000 + (i === 4 ? 1 : 0)).join(''));

    await daemon.waitForAudit('the real error healed', (r) => r.event === 'remediated' && r.table === 'public.article', 30_000);
    expect(await lastValue('article_id_seq')).toBe(700);
    await waitUntil('every record read', async () => (await metricValue(port, 'seqwatch_incidents_total')) === 60_001, 60_000);
    // The lookups still running finish; then nothing more is asked.
    let queries = await metricValue(port, 'seqwatch_catalog_queries_total');
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const now = await metricValue(port, 'seqwatch_catalog_queries_total');
      if (now === queries) break;
      queries = now;
    }
    // Batches of 1,000 names: about 51 queries for 50,001 names (a few more when batches run part full).
    expect(queries - queriesBefore).toBeLessThanOrEqual(120);
    const rssAfter = rssMiB(daemon.child.pid!);

    // 50,000 more: a daemon whose memory grew with each name would not survive its capped heap.
    const more: string[] = [];
    for (let i = 0; i < 50_000; i++) more.push(duplicateKeyLine(`garbled_${i}_key`, 3000 + (i % 50)));
    for (let i = 0; i < 5; i++) appendFileSync(appLog, more.slice(i * 10_000, (i + 1) * 10_000).join(''));
    await waitUntil('every record read', async () => (await metricValue(port, 'seqwatch_incidents_total')) === 110_001, 60_000);
    expect(daemon.alive()).toBe(true);
    const rssEnd = rssMiB(daemon.child.pid!);
    const healed = daemon.audit().find((r) => r.event === 'remediated' && r.table === 'public.article')!;
    console.info(
      `storm of 50,000 names: ${queries - queriesBefore} catalog queries, RSS ${rssBefore.toFixed(0)} -> ${rssAfter.toFixed(0)} -> ${rssEnd.toFixed(0)} MiB after 50,000 more (old space capped at ${HEAP_MIB} MiB), article healed ${Date.parse(healed.time) - started} ms after the first write`,
    );

    expect(await daemon.stop('SIGTERM')).toBe(0);
    // Lookups still running at the stop finish within it: their names are in the summary written last.
    const audited = daemon.audit().filter((r) => r.reason === 'unknown_constraint' && r.trigger?.source !== 'summary');
    const summaries = daemon.audit().filter((r) => r.reason === 'unknown_constraint' && r.trigger?.source === 'summary');
    expect(audited.length).toBeLessThanOrEqual(20);
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({ event: 'skipped', distinct_names: 100_000 - audited.length, records: 100_000 - audited.length });
    expect(daemon.stderr()).not.toMatch(/backlog_full|internal error/);
    expect(daemon.audit().some((r) => r.reason === 'backlog_full')).toBe(false);
  });
});
