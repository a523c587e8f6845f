import { execFile } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findSystemBinaries, freePort, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { repoRoot, sqlOn as sql } from '../helpers/db.js';
import { runCli, waitUntil } from '../helpers/daemon.js';
import { createDebianCluster, createServiceUser, debianVersion, isRoot, type DebianCluster, type ServiceUser } from '../helpers/hostSetup.js';

const run = promisify(execFile);

/*
 * doctor on the setups operators run, each a real server: csvlog only, jsonlog only (deploy/'s
 * compose settings), a stock lc_messages of C.UTF-8, a Debian cluster from pg_createcluster checked
 * as the service user, a streaming standby, a metrics port someone else holds. Correct setups must
 * give exit 0 and no FIX line; wrong ones name the problem.
 */

const ROLE_SQL = (role: string, password: string) => `
  CREATE ROLE ${role} LOGIN PASSWORD '${password}';
  CREATE TABLE ticket (id bigserial PRIMARY KEY);
  GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role};
  GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${role};`;

const scratchDirs: string[] = [];
afterAll(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

/** A directory the service user (when given) owns: where the audit log and state go. */
function scratch(owner?: ServiceUser): string {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-doctor-'));
  scratchDirs.push(dir);
  chmodSync(dir, 0o755);
  if (owner) chownSync(dir, owner.uid, owner.gid);
  return dir;
}

function writeConfig(dir: string, config: Record<string, unknown>): string {
  const path = join(dir, 'seqwatch.yaml');
  writeFileSync(path, stringify({ audit: { path: join(dir, 'audit', 'audit.jsonl') }, state_dir: join(dir, 'state'), ...config }), { mode: 0o644 });
  return path;
}

const fixLines = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('FIX'));

/**
 * A server with these settings (with the logging collector, log_directory is the server's log
 * directory), a database gotrs with a least-privileged role `seqwatch` that has a password, and a
 * duplicate key error in the log.
 */
async function serverWith(settings: Record<string, string>): Promise<{ server: ThrowawayPostgres; url: string; password: string }> {
  const password = `pw${Math.random().toString(36).slice(2)}`;
  const server = await startLocalPostgres({ settings, password: 'super' });
  const admin = server.url.replace('postgres@', 'postgres:super@');
  if (settings.logging_collector === 'on') {
    await sql(admin, `ALTER SYSTEM SET log_directory = '${server.logDir}'`);
    await sql(admin, `SELECT pg_reload_conf()`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  await sql(admin, `CREATE DATABASE gotrs`);
  const gotrs = admin.replace(/\/postgres$/, '/gotrs');
  await sql(gotrs, ROLE_SQL('seqwatch', password));
  await sql(gotrs, `INSERT INTO ticket (id) VALUES (1)`);
  await sql(gotrs, `INSERT INTO ticket DEFAULT VALUES`).catch(() => {});
  return { server, url: gotrs.replace('postgres:super@', 'seqwatch@'), password };
}

/** Waits until the server's file holds a duplicate key error (the collector writes asynchronously). */
async function logged(path: string): Promise<void> {
  await waitUntil(`23505 in ${path}`, async () => existsSync(path) && readFileSync(path, 'utf8').includes('23505'), 10_000);
}

describe.runIf(findSystemBinaries())('doctor on real setups', { timeout: 120_000 }, () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });

  it('a csvlog-only server: exit 0, nothing to fix', async () => {
    const { server, url, password } = await serverWith({ logging_collector: 'on', log_destination: 'csvlog', log_filename: 'postgresql.log' });
    cleanups.push(() => server.destroy());
    await logged(join(server.logDir!, 'postgresql.csv'));
    const dir = scratch();
    writeFileSync(join(dir, 'pw'), password, { mode: 0o600 });
    const result = await runCli(
      'doctor',
      '-c',
      writeConfig(dir, {
        database: { url, password_file: join(dir, 'pw') },
        sources: [{ path: join(server.logDir!, 'postgresql*.csv'), format: 'postgres-csv' }],
      }),
    );
    expect(result.stdout).toMatch(/log_destination includes csvlog and the logging collector is on/);
    expect(fixLines(result.stdout)).toEqual([]);
    expect(result.code).toBe(0);
  });

  it("deploy/'s compose configuration (jsonlog only, collector on): exit 0, nothing to fix, as a member of the log's group", async () => {
    // The -c settings of deploy/compose.yaml's gotrs-postgres, its log directory moved into a temporary one.
    const compose = parse(readFileSync(join(repoRoot, 'deploy/compose.yaml'), 'utf8'));
    const args = compose.services['gotrs-postgres'].command as string[];
    const settings: Record<string, string> = Object.fromEntries(
      args.filter((_, i) => args[i - 1] === '-c').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    const { log_directory: composeLogDir, ...rest } = settings;
    const { server, url, password } = await serverWith(rest);
    cleanups.push(() => server.destroy());
    await logged(join(server.logDir!, settings.log_filename!.replace(/\.log$/, '.json')));
    // The sidecar's config, pointed at this server and this log directory.
    const deployed = parse(readFileSync(join(repoRoot, 'deploy/seqwatch.compose.yaml'), 'utf8'));
    const user = isRoot ? await createServiceUser(['postgres']) : undefined;
    if (user) cleanups.push(() => user.remove());
    const dir = scratch(user);
    writeFileSync(join(dir, 'pw'), password, { mode: 0o600 });
    const config = writeConfig(dir, {
      ...deployed,
      database: { ...deployed.database, url, password_file: join(dir, 'pw') },
      sources: deployed.sources.map((s: { path: string }) => ({ ...s, path: s.path.replace(composeLogDir!, server.logDir!) })),
      audit: { path: join(dir, 'audit', 'audit.jsonl') },
      state_dir: join(dir, 'state'),
    });
    if (user) chownSync(join(dir, 'pw'), user.uid, user.gid);
    const result = await runCli('doctor', '-c', config, ...(user ? ['--as-user', user.name] : []));
    expect(result.stdout).toMatch(/log_destination includes jsonlog and the logging collector is on/);
    expect(result.stdout).toMatch(/postgresql\.json is readable and \d+ of its last \d+ lines are postgres-json records/);
    expect(fixLines(result.stdout)).toEqual([]);
    expect(result.code).toBe(0);
  });

  it("lc_messages = 'C.UTF-8' is English: exit 0 with a prefix that has no %e", async () => {
    const { server, url, password } = await serverWith({ lc_messages: 'C.UTF-8' });
    cleanups.push(() => server.destroy());
    const dir = scratch();
    writeFileSync(join(dir, 'pw'), password, { mode: 0o600 });
    const result = await runCli(
      'doctor',
      '-c',
      writeConfig(dir, { database: { url, password_file: join(dir, 'pw') }, sources: [{ path: server.logPath!, log_line_prefix: server.logLinePrefix }] }),
    );
    expect(result.stdout).toContain("lc_messages 'C.UTF-8': messages in English");
    expect(fixLines(result.stdout)).toEqual([]);
    expect(result.code).toBe(0);
  });

  it('a stderr source on a csvlog-only server is a problem, named with its fix', async () => {
    const { server, url, password } = await serverWith({ logging_collector: 'on', log_destination: 'csvlog' });
    cleanups.push(() => server.destroy());
    const dir = scratch();
    writeFileSync(join(dir, 'pw'), password, { mode: 0o600 });
    const result = await runCli(
      'doctor',
      '-c',
      writeConfig(dir, { database: { url, password_file: join(dir, 'pw') }, sources: [{ path: server.logPath!, log_line_prefix: server.logLinePrefix }] }),
    );
    expect(result.stdout).toMatch(/FIX +log_destination is 'csvlog': .* \(postgres-stderr\) needs stderr/);
    expect(result.stdout).toContain("ALTER SYSTEM SET log_destination = 'csvlog,stderr'");
    expect(result.code).toBe(1);
  });

  it('a streaming standby (pg_basebackup -R) is flagged', { timeout: 120_000 }, async () => {
    const { server, url, password } = await serverWith({ wal_level: 'replica' });
    cleanups.push(() => server.destroy());
    const base = mkdtempSync(join(tmpdir(), 'seqwatch-standby-'));
    chmodSync(base, 0o755);
    const data = join(base, 'data');
    mkdirSync(data, { mode: 0o700 });
    const env = { ...process.env, PGPASSWORD: 'super' };
    const as = (cmd: string, args: string[]) => (isRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args], { cwd: '/', env }) : run(cmd, args, { env }));
    if (isRoot) await run('chown', ['-R', 'postgres:postgres', base]);
    const primary = new URL(server.url);
    const bindir = findSystemBinaries()!;
    await as(join(bindir, 'pg_basebackup'), [
      '-h',
      '127.0.0.1',
      '-p',
      primary.port,
      '-U',
      'postgres',
      '-D',
      data,
      '-R',
      '-X',
      'stream',
      '-c',
      'fast',
      '--no-sync',
    ]);
    const port = await freePort();
    appendFileSync(join(data, 'postgresql.auto.conf'), `\nport = ${port}\nunix_socket_directories = '${base}'\n`);
    await as(join(bindir, 'pg_ctl'), ['start', '-w', '-t', '60', '-D', data, '-l', join(base, 'standby.log')]);
    cleanups.push(async () => {
      await as(join(bindir, 'pg_ctl'), ['stop', '-m', 'immediate', '-D', data]).catch(() => {});
      rmSync(base, { recursive: true, force: true });
    });
    const standbyUrl = new URL(url);
    standbyUrl.port = String(port);
    const dir = scratch();
    writeFileSync(join(dir, 'pw'), password, { mode: 0o600 });
    const result = await runCli(
      'doctor',
      '-c',
      writeConfig(dir, {
        database: { url: standbyUrl.toString(), password_file: join(dir, 'pw') },
        sources: [{ path: server.logPath!, log_line_prefix: server.logLinePrefix }],
      }),
    );
    expect(result.stdout).toMatch(/FIX +127\.0\.0\.1:\d+ is a standby \(in recovery\)/);
    expect(result.stdout).toContain('target_session_attrs=read-write');
    expect(result.code).toBe(1);
  });

  it('a metrics port another program holds is flagged', async () => {
    const { server, url, password } = await serverWith({});
    cleanups.push(() => server.destroy());
    const port = await freePort();
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => holder.close(resolve)));
    const dir = scratch();
    writeFileSync(join(dir, 'pw'), password, { mode: 0o600 });
    const result = await runCli(
      'doctor',
      '-c',
      writeConfig(dir, {
        database: { url, password_file: join(dir, 'pw') },
        sources: [{ path: server.logPath!, log_line_prefix: server.logLinePrefix }],
        metrics: { listen: `127.0.0.1:${port}` },
      }),
    );
    expect(result.stdout).toContain(`FIX   metrics.listen 127.0.0.1:${port}: the port is in use by another program`);
    expect(result.code).toBe(1);
  });
});

describe.runIf(isRoot && debianVersion())('doctor on a stock Debian cluster (pg_createcluster), as the service user', { timeout: 120_000 }, () => {
  let cluster: DebianCluster;
  let inAdm: ServiceUser;
  let notInAdm: ServiceUser;
  let config: string;

  beforeAll(async () => {
    cluster = await createDebianCluster();
    [inAdm, notInAdm] = [await createServiceUser(['adm']), await createServiceUser()];
    const password = `pw${Math.random().toString(36).slice(2)}`;
    await cluster.psql('CREATE DATABASE gotrs');
    await cluster.psql(ROLE_SQL('seqwatch', password), 'gotrs');
    await cluster.psql('INSERT INTO ticket (id) VALUES (1)', 'gotrs');
    await cluster.psql('INSERT INTO ticket DEFAULT VALUES', 'gotrs').catch(() => {});
    const dir = scratch(inAdm);
    writeFileSync(join(dir, 'pw'), password, { mode: 0o600 });
    chownSync(join(dir, 'pw'), inAdm.uid, inAdm.gid);
    // The example config as shipped, with this cluster's port and log file.
    const example = parse(readFileSync(join(repoRoot, 'config/seqwatch.example.yaml'), 'utf8'));
    example.database.url = example.database.url.replace(':5432/', `:${cluster.port}/`);
    example.database.password_file = join(dir, 'pw');
    example.sources[0].path = cluster.logPath;
    config = writeConfig(dir, { ...example, audit: { path: join(dir, 'audit', 'audit.jsonl') }, state_dir: join(dir, 'state') });
  });
  afterAll(async () => {
    await cluster?.drop();
    await inAdm?.remove();
    await notInAdm?.remove();
  });

  it('exits 0 as a user in adm: the log file is group adm, lc_messages C.UTF-8', async () => {
    expect((await cluster.psql('SHOW lc_messages')).trim()).toMatch(/^(C|C\.UTF-8|en_.*)$/);
    const result = await runCli('doctor', '-c', config, '--as-user', inAdm.name);
    expect(result.stdout).toContain(`files checked as ${inAdm.name}`);
    expect(result.stdout).toMatch(new RegExp(`ok +${cluster.logPath.replace(/\./g, '\\.')} is readable and \\d+% of its last`));
    expect(fixLines(result.stdout)).toEqual([]);
    expect(result.code).toBe(0);
  });

  it('names the unreadable log (and what to do) for a user not in adm, as that user would meet it', async () => {
    const result = await runCli('doctor', '-c', config, '--as-user', notInAdm.name);
    expect(result.stdout).toContain(`FIX   ${cluster.logPath} is not readable by ${notInAdm.name}`);
    expect(result.stdout).toContain('usermod -aG adm');
    // The service gets its password as a credential (password_credential): the password file is root's business.
    expect(result.stdout).not.toMatch(/password_file .* is not readable/);
    expect(result.code).toBe(1);
  });

  it('names a config the service user cannot read (0640 root:root, as the README used to install it)', async () => {
    chmodSync(config, 0o640);
    try {
      const result = await runCli('doctor', '-c', config, '--as-user', inAdm.name);
      expect(result.stdout).toContain(`FIX   the config ${config} is not readable by ${inAdm.name}`);
      expect(result.code).toBe(1);
    } finally {
      chmodSync(config, 0o644);
    }
  });

  it('an unknown --as-user is a usage error', async () => {
    const result = await runCli('doctor', '-c', config, '--as-user', 'no-such-user-here');
    expect(result.code).toBe(64);
    expect(result.stderr).toContain('no user no-such-user-here');
  });
});
