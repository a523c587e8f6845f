import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readdirSync, rmSync, chownSync, chmodSync, appendFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A PostgreSQL server that exists for one test run or one demo, then disappears. Used only by the
 * tests and `npm run demo`; production never starts a database.
 */
export interface ThrowawayPostgres {
  /** Superuser URL (trust authentication, loopback only). */
  url: string;
  /** The server's stderr log, where the duplicate key errors appear; undefined when not reachable. */
  logPath: string | undefined;
  /** A directory the server may write logs into (for log_directory with the logging collector). */
  logDir: string | undefined;
  logLinePrefix: string;
  kind: 'local' | 'docker';
  /** Stops the server and removes every file it had. */
  destroy(): Promise<void>;
  /** Stops the server (keeping its data), for outage tests. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
}

export interface ThrowawayOptions {
  logLinePrefix?: string;
  /** Require this password (scram-sha-256) over TCP for the superuser, instead of trusting everyone. */
  password?: string;
  /** Extra postgresql.conf lines. */
  settings?: Record<string, string | number>;
}

/** Debian's prefix, so the log carries user and database like a packaged server's does. */
const DEFAULT_PREFIX = '%m [%p] %q%u@%d ';

/** The newest local PostgreSQL server binaries: $PG_BINDIR, Debian's /usr/lib/postgresql/N/bin, or PATH. */
export function findLocalBinaries(): string | undefined {
  const candidates: string[] = [];
  if (process.env.PG_BINDIR) candidates.push(process.env.PG_BINDIR);
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    for (const version of readdirSync(debian).sort((a, b) => Number(b) - Number(a))) candidates.push(join(debian, version, 'bin'));
  }
  for (const dir of (process.env.PATH ?? '').split(':')) candidates.push(dir);
  return candidates.find((dir) => dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')));
}

/** A TCP port free on loopback right now (for a throwaway server, a daemon's metrics.listen). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function postgresSettings(prefix: string, extra: Record<string, string | number>): string {
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    log_line_prefix: prefix,
    lc_messages: 'C',
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: 200,
    ...extra,
  };
  return Object.entries(settings)
    .map(([key, value]) => `${key} = ${typeof value === 'number' ? value : `'${String(value).replace(/'/g, "''")}'`}`)
    .join('\n');
}

/**
 * A cluster from the local binaries: initdb and pg_ctl in a temporary directory, with the server's
 * stderr in a log file there. initdb refuses to run as root, so as root it runs as `postgres`.
 */
export async function startLocalPostgres(options: ThrowawayOptions = {}): Promise<ThrowawayPostgres> {
  const bindir = findLocalBinaries();
  if (!bindir) throw new Error('no local PostgreSQL binaries (initdb, pg_ctl) found: install postgresql, or set PG_BINDIR');
  const prefix = options.logLinePrefix ?? DEFAULT_PREFIX;
  const base = mkdtempSync(join(tmpdir(), 'seqwatch-pg-'));
  chmodSync(base, 0o755);
  const data = join(base, 'data');
  const logDir = join(base, 'log');
  const socketDir = join(base, 'socket');
  for (const dir of [data, logDir, socketDir]) mkdirSync(dir, { mode: 0o700 });
  const asRoot = process.getuid?.() === 0;
  let owner: { uid: number; gid: number } | undefined;
  if (asRoot) {
    owner = {
      uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
      gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
    };
    for (const dir of [data, logDir, socketDir]) chownSync(dir, owner.uid, owner.gid);
    chmodSync(logDir, 0o755);
  }
  const as = (command: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', command, ...args]) : run(command, args);
  const logPath = join(logDir, 'postgresql.log');
  const port = await freePort();
  const auth = ['-A', 'trust'];
  if (options.password !== undefined) {
    const pwfile = join(socketDir, 'pwfile');
    writeFileSync(pwfile, `${options.password}\n`, { mode: 0o600 });
    if (owner) chownSync(pwfile, owner.uid, owner.gid);
    auth.splice(0, 2, '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${pwfile}`);
  }
  await as(join(bindir, 'initdb'), ['-D', data, '-U', 'postgres', ...auth, '-E', 'UTF8', '--locale=C', '--no-sync']);
  appendFileSync(
    join(data, 'postgresql.conf'),
    `\n# throwaway server for seqwatch tests and demo\nport = ${port}\nunix_socket_directories = '${socketDir}'\n${postgresSettings(prefix, options.settings ?? {})}\n`,
  );
  const startServer = async () => {
    await as(join(bindir, 'pg_ctl'), ['start', '-w', '-t', '60', '-D', data, '-l', logPath]);
  };
  const stopServer = async () => {
    await as(join(bindir, 'pg_ctl'), ['stop', '-w', '-m', 'fast', '-D', data]);
  };
  if (!existsSync(logPath)) {
    writeFileSync(logPath, '');
    if (owner) chownSync(logPath, owner.uid, owner.gid);
  }
  await startServer();
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    logPath,
    logDir,
    logLinePrefix: prefix,
    kind: 'local',
    stopServer,
    startServer,
    destroy: async () => {
      await stopServer().catch(() => {});
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** Whether a Docker engine answers (a socket or DOCKER_HOST, and testcontainers can talk to it). */
export async function dockerEngineAnswers(): Promise<boolean> {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 15_000)),
    ]);
    return true;
  } catch {
    return false;
  }
}

/**
 * The same through testcontainers, for machines with a Docker engine and no local binaries. The
 * logging collector writes the server log into a bind-mounted directory the tests can follow.
 */
export async function startDockerPostgres(options: ThrowawayOptions = {}): Promise<ThrowawayPostgres> {
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const prefix = options.logLinePrefix ?? DEFAULT_PREFIX;
  const logDir = mkdtempSync(join(tmpdir(), 'seqwatch-pglog-'));
  chmodSync(logDir, 0o777);
  const settings = {
    logging_collector: 'on',
    log_directory: '/var/log/seqwatch-test',
    log_filename: 'postgresql.log',
    log_file_mode: '0644',
    log_line_prefix: prefix,
    lc_messages: 'C',
    fsync: 'off',
    ...(options.settings ?? {}),
  };
  const container = await new PostgreSqlContainer('postgres:15-alpine')
    .withUsername('postgres')
    .withPassword('postgres')
    .withDatabase('postgres')
    .withBindMounts([{ source: logDir, target: '/var/log/seqwatch-test', mode: 'rw' }])
    .withCommand(['postgres', ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])])
    .start();
  return {
    url: container.getConnectionUri(),
    logPath: join(logDir, 'postgresql.log'),
    logDir,
    logLinePrefix: prefix,
    kind: 'docker',
    stopServer: async () => {
      await container.exec(['pg_ctl', 'stop', '-m', 'fast', '-D', '/var/lib/postgresql/data']);
    },
    startServer: async () => {
      throw new Error('restarting a containerised test server is not supported');
    },
    destroy: async () => {
      await container.stop();
      rmSync(logDir, { recursive: true, force: true });
    },
  };
}

/** Local binaries first (fast, and the log is a plain file), else Docker. */
export async function startThrowawayPostgres(
  options: ThrowawayOptions = {},
  order: Array<'local' | 'docker'> = ['local', 'docker'],
): Promise<ThrowawayPostgres> {
  const reasons: string[] = [];
  for (const kind of order) {
    if (kind === 'local') {
      if (findLocalBinaries()) return startLocalPostgres(options);
      reasons.push('no local PostgreSQL binaries (apt-get install postgresql)');
    } else {
      if (await dockerEngineAnswers()) return startDockerPostgres(options);
      reasons.push('no Docker engine answers');
    }
  }
  throw new Error(`cannot start a throwaway PostgreSQL: ${reasons.join('; ')}`);
}

/** Creates a database on a throwaway server; returns its URL. */
export async function createDatabase(server: ThrowawayPostgres, name: string): Promise<string> {
  const { default: pg } = await import('pg');
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return server.url.replace(/\/postgres$/, `/${name}`);
}
