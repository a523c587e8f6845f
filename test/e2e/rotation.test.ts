import pg from 'pg';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findLocalBinaries, localBinariesMajor, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';

/*
 * The logging collector rotating jsonlog files mid-stream, by size and by pg_rotate_logfile(),
 * followed through a glob: every error is seen once, none is lost at a rotation. Before
 * PostgreSQL 15 there is no jsonlog: csvlog files rotate the same way.
 */
const json = (localBinariesMajor() ?? 0) >= 15;
const destination = json ? 'jsonlog' : 'csvlog';
const extension = json ? 'json' : 'csv';
describe.runIf(findLocalBinaries())('logging collector rotation', () => {
  let server: ThrowawayPostgres;
  let daemon: RunningDaemon | undefined;
  afterAll(async () => {
    await daemon?.stop();
    await server?.destroy();
  });

  it(`loses no error across size-based rotations and pg_rotate_logfile() (${destination})`, async () => {
    server = await startLocalPostgres({
      logLinePrefix: '%m [%p] ',
      settings: {
        logging_collector: 'on',
        log_destination: destination,
        log_file_mode: '0644',
        log_rotation_size: 64,
        log_rotation_age: 0,
        log_min_duration_statement: 0,
      },
    });
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`ALTER SYSTEM SET log_directory = '${server.logDir}'`);
    await admin.query(`ALTER SYSTEM SET log_filename = 'postgresql-%H%M%S.log'`);
    await admin.query('SELECT pg_reload_conf()');
    await new Promise((r) => setTimeout(r, 500));
    await admin.query('CREATE TABLE ticket (id bigserial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 5)');

    daemon = await startDaemon({
      database: { url: server.url },
      sources: [{ path: join(server.logDir!, `postgresql-*.${extension}`), format: json ? 'postgres-json' : 'postgres-csv', start_at: 'end' }],
      remediation: { debounce_ms: 20, cooldown: 0, max_fixes_per_hour: 1000 },
    });
    const d = daemon;
    const ERRORS = 300;
    for (let i = 0; i < ERRORS; i++) {
      // A duplicate of an existing id: each is one error in the log (the sequence soon is in sync).
      await admin.query('INSERT INTO ticket (id) VALUES (1)').catch(() => {});
      // Filler, logged with its duration: the files grow past log_rotation_size.
      await admin.query(`SELECT repeat('x', 500) AS filler_${i}`);
      if (i % 100 === 50) {
        // A new second, so the rotated-to file gets a new name (postgresql-%H%M%S).
        await new Promise((r) => setTimeout(r, 1_100));
        await admin.query('SELECT pg_rotate_logfile()');
      }
    }
    await admin.end();
    const files = readdirSync(server.logDir!).filter((f) => f.endsWith(`.${extension}`));
    expect(files.length).toBeGreaterThan(2);
    const seen = () =>
      d
        .audit()
        .filter((r) => r.event === 'detected' && r.table === 'public.ticket')
        .reduce((n, r) => n + (r.incidents as number), 0);
    await waitFor(`all ${ERRORS} errors seen`, () => seen() >= ERRORS, 30_000).catch(() => {});
    await new Promise((r) => setTimeout(r, 500));
    expect(seen()).toBe(ERRORS);
  });
});
