import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { freePort } from '../../src/devtools/throwawayPostgres.js';

const run = promisify(execFile);

/*
 * Pieces of a host as operators run it, made by a test and removed after it: an unprivileged
 * service user, and a Debian cluster from postgresql-common (pg_createcluster). Root only.
 */

export const isRoot = process.getuid?.() === 0;

/** An unprivileged system user in `groups` (what the unit's DynamicUser + SupplementaryGroups give). */
export interface ServiceUser {
  name: string;
  uid: number;
  gid: number;
  remove(): Promise<void>;
}

export async function createServiceUser(groups: string[] = []): Promise<ServiceUser> {
  const name = `swt${randomBytes(3).toString('hex')}`;
  await run('useradd', [
    '--system',
    '--no-create-home',
    '--home-dir',
    '/nonexistent',
    '--shell',
    '/usr/sbin/nologin',
    ...(groups.length ? ['--groups', groups.join(',')] : []),
    name,
  ]);
  const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
  return {
    name,
    uid,
    gid,
    remove: async () => {
      await run('userdel', [name]).catch(() => {});
    },
  };
}

/** The newest PostgreSQL major version Debian's packages installed, if postgresql-common is there. */
export function debianVersion(): string | undefined {
  if (!existsSync('/usr/bin/pg_createcluster') || !existsSync('/usr/lib/postgresql')) return undefined;
  return readdirSync('/usr/lib/postgresql')
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a))[0];
}

/** A cluster as `pg_createcluster` makes it: /etc/postgresql, /var/log/postgresql (group adm), peer and scram auth. */
export interface DebianCluster {
  version: string;
  name: string;
  port: number;
  /** /var/log/postgresql/postgresql-VERSION-NAME.log */
  logPath: string;
  /** Runs SQL as the postgres user over the Unix socket (peer authentication), as an operator does. */
  psql(sql: string, database?: string): Promise<string>;
  drop(): Promise<void>;
}

export async function createDebianCluster(settings: Record<string, string> = {}): Promise<DebianCluster> {
  const version = debianVersion();
  if (!version) throw new Error('postgresql-common (pg_createcluster) is not installed');
  const name = `sw${randomBytes(3).toString('hex')}`;
  const port = await freePort();
  const options = Object.entries(settings).flatMap(([key, value]) => ['-o', `${key}=${value}`]);
  await run('pg_createcluster', [version, name, '-p', String(port), ...options, '--start', '--', '--no-sync'], { timeout: 120_000 });
  const cluster: DebianCluster = {
    version,
    name,
    port,
    logPath: `/var/log/postgresql/postgresql-${version}-${name}.log`,
    psql: async (sql, database = 'postgres') =>
      (await run('runuser', ['-u', 'postgres', '--', 'psql', '-p', String(port), '-d', database, '-v', 'ON_ERROR_STOP=1', '-Atq', '-c', sql], { cwd: '/' }))
        .stdout,
    drop: async () => {
      await run('pg_dropcluster', ['--stop', version, name]).catch(() => {});
    },
  };
  return cluster;
}
