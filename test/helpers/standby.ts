import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { findSystemBinaries, freePort, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';

const run = promisify(execFile);

export interface Standby {
  /** Superuser URL of the standby (trust, loopback). */
  url: string;
  host: string;
  /** The standby's own server log (log_connections on: every connection attempt is a line). */
  logPath: string;
  log(): string;
  /** Waits until the standby has replayed everything the primary had written when called. */
  caughtUp(primaryUrl: string): Promise<void>;
  /** Ends recovery (pg_ctl promote -w): the standby becomes a primary, as in a failover. */
  promote(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * A real streaming standby of a throwaway primary, made the way an operator makes one:
 * `pg_basebackup -R` (the primary's defaults already allow it: wal_level = replica, and initdb's
 * pg_hba.conf has `host replication all 127.0.0.1/32 trust`), started on a port of its own. It
 * runs in recovery (pg_is_in_recovery() is true) and is read-only.
 */
export async function startStandby(primary: ThrowawayPostgres): Promise<Standby> {
  const bindir = findSystemBinaries();
  if (!bindir) throw new Error('no local PostgreSQL binaries for a standby');
  const { hostname, port: primaryPort } = new URL(primary.url);
  const base = mkdtempSync(join(tmpdir(), 'seqwatch-standby-'));
  chmodSync(base, 0o755);
  const data = join(base, 'data');
  const logDir = join(base, 'log');
  const socketDir = join(base, 'socket');
  for (const dir of [data, logDir, socketDir]) mkdirSync(dir, { mode: 0o700 });
  const logPath = join(logDir, 'postgresql.log');
  writeFileSync(logPath, '');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    for (const path of [data, logDir, socketDir, logPath]) chownSync(path, uid, gid);
    chmodSync(logDir, 0o755);
  }
  const as = (command: string, args: string[]) => (asRoot ? run('runuser', ['-u', 'postgres', '--', command, ...args]) : run(command, args));
  await as(join(bindir, 'pg_basebackup'), ['-h', hostname, '-p', primaryPort, '-U', 'postgres', '-D', data, '-R', '-X', 'stream', '-c', 'fast', '--no-sync']);
  const port = await freePort();
  // The copied postgresql.conf names the primary's port; later lines win.
  appendFileSync(
    join(data, 'postgresql.conf'),
    `\n# the standby\nport = ${port}\nunix_socket_directories = '${socketDir}'\nlog_connections = on\nlog_min_error_statement = error\n`,
  );
  if (asRoot) chmodSync(join(data, 'postgresql.conf'), 0o600);
  await as(join(bindir, 'pg_ctl'), ['start', '-w', '-t', '60', '-D', data, '-l', logPath]);
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const { rows } = await query(url, 'SELECT pg_is_in_recovery() AS r');
  if (rows[0]?.r !== true) throw new Error('the standby is not in recovery');
  return {
    url,
    host: `127.0.0.1:${port}`,
    logPath,
    log: () => readFileSync(logPath, 'utf8'),
    caughtUp: async (primaryUrl: string) => {
      const lsn = (await query(primaryUrl, 'SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l as string;
      const deadline = Date.now() + 30_000;
      for (;;) {
        const { rows: r } = await query(url, 'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [lsn]);
        if (r[0]?.done) return;
        if (Date.now() > deadline) throw new Error(`the standby did not replay up to ${lsn} in 30 s`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    promote: async () => {
      await as(join(bindir, 'pg_ctl'), ['promote', '-w', '-t', '60', '-D', data]);
    },
    destroy: async () => {
      await as(join(bindir, 'pg_ctl'), ['stop', '-w', '-m', 'immediate', '-D', data]).catch(() => {});
      rmSync(base, { recursive: true, force: true });
    },
  };
}

async function query(url: string, text: string, values?: unknown[]): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}
