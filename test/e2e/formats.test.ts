import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { findLocalBinaries, localBinariesMajor, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { FileFollower } from '../../src/sources/FileFollower.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { startSyslogReceiver } from '../helpers/syslogReceiver.js';

/*
 * One real server per log format, each healing a sequence end to end through the built CLI.
 * Servers of their own: the logging collector and log_destination are server-wide settings.
 * Run on every supported version (npm run test:matrix): csvlog has 24 columns on 13 and 26 from 14
 * (leader_pid, query_id), and jsonlog exists from 15 on.
 */
const major = localBinariesMajor() ?? 0;
describe.runIf(findLocalBinaries())('every log format, end to end on a real server', () => {
  const servers: ThrowawayPostgres[] = [];
  const daemons: RunningDaemon[] = [];
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await Promise.all(servers.map((s) => s.destroy()));
  });

  async function server(prefix: string, settings: Record<string, string | number> = {}): Promise<ThrowawayPostgres> {
    const s = await startLocalPostgres({ logLinePrefix: prefix, settings });
    servers.push(s);
    return s;
  }

  async function driftAndFail(url: string): Promise<void> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('CREATE TABLE IF NOT EXISTS ticket (id bigserial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 42)');
    await expect(client.query('INSERT INTO ticket DEFAULT VALUES')).rejects.toMatchObject({ code: '23505' });
    await client.end();
  }

  async function healed(url: string, daemon: RunningDaemon): Promise<void> {
    const fix = await daemon.waitForAudit('ticket remediated', (r) => r.event === 'remediated' && r.table === 'public.ticket', 15_000);
    expect(fix).toMatchObject({ before: '1', after: '42', trigger: { constraint: 'ticket_pkey' } });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    expect((await client.query('INSERT INTO ticket DEFAULT VALUES RETURNING id::text AS id')).rows[0].id).toBe('43');
    await client.end();
  }

  for (const destination of ['csvlog', 'jsonlog'] as const) {
    it.runIf(destination === 'csvlog' || major >= 15)(`${destination} from the logging collector`, async () => {
      const s = await server('%m [%p] ', { logging_collector: 'on', log_destination: destination, log_filename: 'postgresql.log', log_file_mode: '0644' });
      // The collector writes into the data directory's log/ unless told otherwise; point it at ours.
      const admin = new pg.Client({ connectionString: s.url });
      await admin.connect();
      await admin.query(`ALTER SYSTEM SET log_directory = '${s.logDir}'`);
      await admin.query('SELECT pg_reload_conf()');
      await admin.end();
      await new Promise((r) => setTimeout(r, 300));
      const path = join(s.logDir!, destination === 'csvlog' ? 'postgresql.csv' : 'postgresql.json');
      const daemon = await startDaemon({
        database: { url: s.url },
        sources: [{ path, format: destination === 'csvlog' ? 'postgres-csv' : 'postgres-json', start_at: 'end' }],
        remediation: { debounce_ms: 50 },
      });
      daemons.push(daemon);
      await driftAndFail(s.url);
      await healed(s.url, daemon);
      if (destination === 'csvlog') {
        // The columns the parser reads by position are the same on every version; later ones add at the end.
        const records = parse(readFileSync(path, 'utf8'), { relax_column_count: true }) as string[][];
        expect(new Set(records.map((r) => r.length))).toEqual(new Set([major >= 14 ? 26 : 24]));
      }
    });
  }

  it("docker-json: the container's json-file log, wrapping stderr with a third log_line_prefix (and %e)", async () => {
    const prefix = '%t [%p-%l] %q%u@%d %e ';
    const s = await server(prefix);
    // What Docker's json-file driver does with the container's stderr, line by line.
    const dockerLog = join(s.logDir!, 'container-json.log');
    writeFileSync(dockerLog, '');
    const shim = new FileFollower(
      s.logPath!,
      { onLine: (line) => appendFileSync(dockerLog, JSON.stringify({ log: `${line.toString()}\n`, stream: 'stderr', time: new Date().toISOString() }) + '\n') },
      { startAt: 'end', pollIntervalMs: 20 },
    );
    await shim.start();
    try {
      const daemon = await startDaemon({
        database: { url: s.url },
        sources: [{ path: dockerLog, format: 'docker-json', inner_format: 'postgres-stderr', log_line_prefix: prefix }],
        remediation: { debounce_ms: 50 },
      });
      daemons.push(daemon);
      await driftAndFail(s.url);
      await healed(s.url, daemon);
      expect(daemon.audit().find((r) => r.event === 'detected')?.trigger).toMatchObject({ source: dockerLog });
    } finally {
      await shim.stop();
    }
  });

  it('postgres-stderr with the default prefix %m [%p], read from the server log itself', async () => {
    const s = await server('%m [%p] ');
    const daemon = await startDaemon({
      database: { url: s.url },
      sources: [{ path: s.logPath, format: 'postgres-stderr', log_line_prefix: '%m [%p] ' }],
      remediation: { debounce_ms: 50 },
    });
    daemons.push(daemon);
    await driftAndFail(s.url);
    await healed(s.url, daemon);
  });

  /** A server logging to syslog through the stand-in rsyslog on /dev/log, followed by a daemon. */
  async function throughSyslog(body: (s: Awaited<ReturnType<typeof server>>, daemon: RunningDaemon, file: string) => Promise<void>): Promise<void> {
    const file = join(mkdtempSync(join(tmpdir(), 'seqwatch-syslog-')), 'postgresql.log');
    writeFileSync(file, '');
    const receiver = await startSyslogReceiver('/dev/log', file);
    try {
      const s = await server('%q%u@%d ', { log_destination: 'syslog', syslog_ident: 'postgres' });
      const daemon = await startDaemon({
        database: { url: s.url },
        sources: [{ path: file, format: 'syslog', log_line_prefix: '%q%u@%d ' }],
        remediation: { debounce_ms: 50 },
      });
      daemons.push(daemon);
      await body(s, daemon, file);
    } finally {
      receiver.kill();
      rmSync('/dev/log', { force: true });
    }
  }

  // PostgreSQL writes to /dev/log; a stand-in for rsyslog writes what it gets to a file. Only where
  // no syslog daemon owns /dev/log and the tests may create it (as root, as in CI).
  it.runIf(process.getuid?.() === 0 && !existsSync('/dev/log'))('syslog: PostgreSQL through (a stand-in for) rsyslog', () =>
    throughSyslog(async (s, daemon, file) => {
      await driftAndFail(s.url);
      await healed(s.url, daemon);
      expect(readFileSync(file, 'utf8')).toMatch(/testhost postgres\[\d+\]: \[\d+-1\] postgres@postgres ERROR: {2}duplicate key/);
    }),
  );

  // Issue 16 item 5: PostgreSQL cuts a syslog message every 900 bytes (at the last space, or hard
  // when there is none); a statement can be built so that a cut piece begins like a record.
  it.runIf(process.getuid?.() === 0 && !existsSync('/dev/log'))('syslog: a piece PostgreSQL cut off a long statement is never a record', () =>
    throughSyslog(async (s, daemon, file) => {
      const client = new pg.Client({ connectionString: s.url });
      await client.connect();
      await client.query('CREATE TABLE ticket (id bigserial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 42)');
      // The STATEMENT line is cut at the space before the x's, then hard after 899 x's: the third
      // piece starts with the attacker's text.
      const forged = 'postgres@postgres ERROR:  duplicate key value violates unique constraint "ticket_pkey"';
      await expect(client.query(`SELECT 1/0 -- ${'x'.repeat(899)}${forged}`)).rejects.toMatchObject({ code: '22012' });
      // A real error afterwards, which must still heal.
      await client.query('CREATE TABLE queue (id serial PRIMARY KEY); INSERT INTO queue (id) VALUES (1), (2), (3)');
      await expect(client.query('INSERT INTO queue DEFAULT VALUES')).rejects.toMatchObject({ code: '23505' });
      await client.end();
      await daemon.waitForAudit('queue healed', (r) => r.event === 'remediated' && r.table === 'public.queue', 15_000);
      expect(readFileSync(file, 'utf8')).toMatch(
        /postgres\[\d+\]: \[\d+-[2-9]\] postgres@postgres ERROR: {2}duplicate key value violates unique constraint "ticket_pkey"$/m,
      );
      expect(daemon.audit().filter((r) => JSON.stringify(r).includes('ticket'))).toEqual([]);
    }),
  );

  it('auto detects the format and says which', async () => {
    const s = servers[0]!;
    const daemon = await startDaemon({
      database: { url: s.url },
      sources: [{ path: join(s.logDir!, 'postgresql.csv'), format: 'auto', start_at: 'end' }],
    });
    daemons.push(daemon);
    const client = new pg.Client({ connectionString: s.url });
    await client.connect();
    await client.query('CREATE TABLE queue (id serial PRIMARY KEY); INSERT INTO queue (id) VALUES (1), (2), (3)');
    await expect(client.query('INSERT INTO queue DEFAULT VALUES')).rejects.toMatchObject({ code: '23505' });
    await client.end();
    // The csvlog test's daemon follows the same server and may heal it first: either outcome is this daemon's proof.
    await daemon.waitForAudit('queue checked', (r) => ['remediated', 'in_sync'].includes(r.event) && r.table === 'public.queue', 15_000);
    expect(daemon.stderr()).toContain('format detected: postgres-csv');
  });
});
