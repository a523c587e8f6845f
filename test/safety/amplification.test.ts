import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { duplicateKeyLine, freePort, metricValue, startDaemon, type RunningDaemon } from '../helpers/daemon.js';

/*
 * Forged duplicate key errors on healthy tables, as fast as a log takes them: each one costs the
 * production database a check and the audit log two records unless seqwatch holds off. The daemon
 * with its default settings (debounce 200 ms, cooldown 5 s), 40 healthy tables, 10 s of forged lines.
 */
const TABLES = 40;
const SECONDS = 10;

describe('errors on healthy tables', () => {
  let db: TestDatabase;
  let daemon: RunningDaemon | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('amp');
    for (let i = 0; i < TABLES; i++) await db.pool.query(`CREATE TABLE h${i} (id serial PRIMARY KEY); INSERT INTO h${i} DEFAULT VALUES;`);
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await db?.drop();
  });

  it('cost a check per table per cooldown and a few audit records, and every error is still counted', async () => {
    const appLog = join(mkdtempSync(join(tmpdir(), 'seqwatch-amp-')), 'app.log');
    writeFileSync(appLog, '');
    const port = await freePort();
    daemon = await startDaemon({
      database: { url: db.url },
      sources: [{ path: appLog, log_line_prefix: '%m [%p] ' }],
      metrics: { listen: `127.0.0.1:${port}` },
    });
    let written = 0;
    const started = Date.now();
    while (Date.now() - started < SECONDS * 1000) {
      const lines: string[] = [];
      for (let i = 0; i < 100; i++) lines.push(duplicateKeyLine(`h${(written + i) % TABLES}_pkey`));
      appendFileSync(appLog, lines.join(''));
      written += lines.length;
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    const deadline = Date.now() + 20_000;
    while ((await metricValue(port, 'seqwatch_incidents_total')) < written && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    const checks = await metricValue(port, 'seqwatch_sequence_checks_total');
    expect(await daemon.stop('SIGTERM')).toBe(0);
    const records = daemon.audit().filter((r) => r.event === 'detected' || r.event === 'in_sync');
    console.info(`${written} forged errors over ${SECONDS} s on ${TABLES} healthy tables: ${checks} checks, ${records.length} detected/in_sync records`);
    // One check at once, then one per 5 s cooldown: 3 or 4 per table over 10 s.
    expect(checks).toBeLessThanOrEqual(TABLES * 4);
    // A detected record per check (it counts the errors); in_sync once a minute per table, then one summary.
    expect(records.filter((r) => r.event === 'in_sync').length).toBeLessThanOrEqual(TABLES * 2);
    expect(records.length).toBeLessThanOrEqual(TABLES * 6);
    const counted = records.filter((r) => r.event === 'detected').reduce((n, r) => n + Number(r.incidents), 0);
    expect(counted).toBe(written);
    expect(daemon.audit().filter((r) => r.event === 'remediated')).toEqual([]);
  });
});
