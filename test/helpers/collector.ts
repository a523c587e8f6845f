import { join } from 'node:path';
import pg from 'pg';
import { startLocalPostgres, type ThrowawayOptions, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';

/** The files a collector server writes, one per destination (stderr, csvlog, jsonlog). */
export interface CollectorFiles {
  stderr: string;
  csv: string;
  json: string;
}

/**
 * A throwaway server whose logging collector writes `destinations` (log_destination) into the
 * server's logDir as collector.log, collector.csv and collector.json, readable by all (as a
 * packaged server writes /var/log/postgresql). log_directory is set once the server runs (its
 * logDir is known then), and the collector is given a moment to open its files there. `settings`
 * add to, or override, the collector's.
 */
export async function startCollectorServer(
  destinations: string,
  options: ThrowawayOptions = {},
): Promise<{ server: ThrowawayPostgres; files: CollectorFiles }> {
  const server = await startLocalPostgres({
    ...options,
    settings: { logging_collector: 'on', log_destination: destinations, log_filename: 'collector.log', log_file_mode: '0644', ...options.settings },
  });
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query(`ALTER SYSTEM SET log_directory = '${server.logDir}'`);
  await admin.query('SELECT pg_reload_conf()');
  await admin.end();
  await new Promise((r) => setTimeout(r, 500));
  const file = (extension: string) => join(server.logDir!, `collector.${extension}`);
  return { server, files: { stderr: file('log'), csv: file('csv'), json: file('json') } };
}
