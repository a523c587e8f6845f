import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { findLocalBinaries, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { startCollectorServer } from '../helpers/collector.js';
import { freePort, metricValue, startDaemon } from '../helpers/daemon.js';

/*
 * One server followed through all its destinations at once (the logging collector writing stderr,
 * csvlog and jsonlog): every error is in the three files, and must be counted once.
 */
describe.runIf(findLocalBinaries())('one server, several destinations', () => {
  let server: ThrowawayPostgres | undefined;
  afterAll(async () => {
    await server?.destroy();
  });

  it('one error written to stderr, csvlog and jsonlog at once is counted once', async () => {
    const prefix = '%m [%p] %q%u@%d ';
    const started = await startCollectorServer('stderr,csvlog,jsonlog', { logLinePrefix: prefix });
    server = started.server;
    const file = (ext: 'log' | 'csv' | 'json') => started.files[ext === 'log' ? 'stderr' : ext];
    const port = await freePort();
    const daemon = await startDaemon({
      database: { url: server.url },
      sources: [
        { path: file('log'), format: 'postgres-stderr', log_line_prefix: prefix, start_at: 'end' },
        { path: file('csv'), format: 'postgres-csv', start_at: 'end' },
        { path: file('json'), format: 'postgres-json', start_at: 'end' },
      ],
      remediation: { debounce_ms: 200 },
      metrics: { listen: `127.0.0.1:${port}` },
    });
    try {
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      await client.query('CREATE TABLE once (id serial PRIMARY KEY); INSERT INTO once (id) VALUES (1), (2), (3)');
      await expect(client.query('INSERT INTO once DEFAULT VALUES')).rejects.toMatchObject({ code: '23505' });
      await client.end();
      await daemon.waitForAudit('once remediated', (r) => r.event === 'remediated' && r.table === 'public.once', 20_000);
      // Time for all three followers to read their copy of the same error.
      await new Promise((r) => setTimeout(r, 1_500));
      const detected = daemon.audit().filter((r) => r.event === 'detected' && r.table === 'public.once');
      expect(detected.map((r) => r.incidents)).toEqual([1]);
      expect(daemon.audit().filter((r) => r.event === 'in_sync' && r.table === 'public.once')).toEqual([]);
      expect(await metricValue(port, 'seqwatch_incidents_total')).toBe(1);
    } finally {
      await daemon.stop();
    }
  }, 60_000);
});
