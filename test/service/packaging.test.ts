import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { repoRoot } from '../helpers/db.js';
import { readAudit, waitFor } from '../helpers/daemon.js';
import { createDebianCluster, createServiceUser, debianVersion, isRoot, type DebianCluster, type ServiceUser } from '../helpers/hostSetup.js';

const run = promisify(execFile);

/*
 * No Docker engine and no systemd as PID 1 here: these check what can be checked without them.
 * The compose file, the Dockerfile and the unit are read as an engine or systemd would read them.
 */
describe('the container image and the compose example', () => {
  const compose = parse(readFileSync(join(repoRoot, 'deploy/compose.yaml'), 'utf8'));
  const pg = compose.services['gotrs-postgres'];
  const seqwatch = compose.services.seqwatch;
  const settings = Object.fromEntries(
    (pg.command as string[]).filter((_, i, all) => all[i - 1] === '-c').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  const configMount = (seqwatch.volumes as string[]).find((v) => v.endsWith(':/etc/seqwatch/seqwatch.yaml:ro'))!;
  const config = parseConfig(readFileSync(join(repoRoot, 'deploy', configMount.split(':')[0]!), 'utf8'), 'seqwatch.compose.yaml');

  it('runs gotrs-postgres with the log settings seqwatch is configured for', () => {
    expect(settings.logging_collector).toBe('on');
    expect(settings.log_destination).toBe('jsonlog');
    // The collector names the jsonlog file after log_filename, .log becoming .json.
    expect(config.sources[0]!.path).toBe(join(settings.log_directory!, settings.log_filename!.replace(/\.log$/, '.json')));
    expect(config.sources[0]!.format).toBe('postgres-json');
  });

  it('shares the log volume read-only, on the same network, locked down, with a health check', () => {
    const pgLogVolume = (pg.volumes as string[]).find((v) => v.endsWith(`:${settings.log_directory}`))!.split(':')[0];
    expect(seqwatch.volumes).toContain(`${pgLogVolume}:${settings.log_directory}:ro`);
    expect(new URL(config.database.url!).hostname).toBe('gotrs-postgres');
    expect(seqwatch.read_only).toBe(true);
    expect(seqwatch.depends_on['gotrs-postgres'].condition).toBe('service_healthy');
    expect(seqwatch.healthcheck.test.join(' ')).toContain('health -c /etc/seqwatch/seqwatch.yaml');
    // Every other path it writes is a volume, since the root filesystem is read-only.
    for (const dir of [config.state_dir, '/var/log/seqwatch']) expect((seqwatch.volumes as string[]).some((v) => v.split(':')[1] === dir)).toBe(true);
    expect(config.audit.path.startsWith('/var/log/seqwatch/')).toBe(true);
    expect(config.database.password_file).toBe(`/run/secrets/${seqwatch.secrets[0]}`);
  });

  it('has a Dockerfile whose copied paths exist after a build, running as non-root', () => {
    const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile.match(/^FROM /gm)).toHaveLength(2);
    const copies = [...dockerfile.matchAll(/^COPY (--from=build )?(.+)$/gm)].map((m) => ({ fromBuild: Boolean(m[1]), args: m[2]!.split(/\s+/) }));
    for (const { fromBuild, args } of copies) {
      for (const source of args.slice(0, -1)) {
        // A build-stage path under /src is the repository's after `npm ci && tsc`.
        const local = fromBuild ? source.replace(/^\/src\//, '') : source;
        expect(existsSync(join(repoRoot, local)), `${source} (COPY${fromBuild ? ' --from=build' : ''})`).toBe(true);
      }
    }
  });

  it('has an entrypoint that runs', async () => {
    const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    const entrypoint = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(dockerfile)![1]!) as string[];
    const cmd = JSON.parse(/^CMD (.+)$/m.exec(dockerfile)![1]!) as string[];
    expect(entrypoint.slice(0, 2)).toEqual(['node', '/app/dist/cli/main.js']);
    expect(cmd).toEqual(['run', '-c', '/etc/seqwatch/seqwatch.yaml']);
    const local = [join(repoRoot, 'dist/cli/main.js')];
    const { stdout } = await run(process.execPath, [...local, '--version']);
    expect(stdout.trim()).toBe(JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version);
    const help = await run(process.execPath, [...local, cmd[0]!, '--help']);
    expect(help.stdout).toContain('--config');
  });
});

describe('the systemd unit', () => {
  const unit = join(repoRoot, 'systemd/seqwatch.service');
  const text = readFileSync(unit, 'utf8');

  it('is a notify service with a watchdog, reload, restart and its own directories', () => {
    for (const line of [
      'Type=notify',
      'NotifyAccess=all',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'Restart=on-failure',
      'DynamicUser=yes',
      'StateDirectory=seqwatch',
      'LogsDirectory=seqwatch',
      'ConfigurationDirectory=seqwatch',
      'ExecStart=/usr/bin/node /usr/lib/node_modules/seqwatch/dist/cli/main.js run -c /etc/seqwatch/seqwatch.yaml',
      'LoadCredential=db_password:/etc/seqwatch/db_password',
    ]) {
      expect(text).toContain(`\n${line}\n`);
    }
    expect(text).toMatch(/\nWatchdogSec=\d+s\n/);
    expect(text).toMatch(/\nSupplementaryGroups=.*\badm\b/);
  });

  const analyze = existsSync('/usr/bin/systemd-analyze') && existsSync('/usr/bin/node');
  it.runIf(analyze)('passes systemd-analyze verify and rates 2.0 or lower in security --offline=true', async () => {
    await run('systemd-analyze', ['verify', unit]);
    const { stdout } = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', unit]);
    const exposure = Number(/Overall exposure level for seqwatch\.service: ([\d.]+)/.exec(stdout)?.[1]);
    expect(exposure).toBeLessThanOrEqual(2.0);
  });
});

describe('the supported Node.js versions', () => {
  it('are checked at start: an older Node gets one sentence and exit 1', async () => {
    const pretend18 = 'data:text/javascript,Object.defineProperty(process,"versions",{value:{...process.versions,node:"18.20.4"}})';
    const result = await run(process.execPath, ['--import', pretend18, join(repoRoot, 'dist/cli/main.js'), '--version']).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `seqwatch: Node.js 18.20.4 is not supported: seqwatch needs Node.js 20.19 or newer (${process.execPath}): install a newer Node.js and start again\n`,
    );
    expect(JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).engines.node).toBe('>=20.19');
  });
});

/** Where the replayed blocks live: the install in the README, upgrade and uninstall in the operations guide. */
const REPLAYED_DOCS = ['README.md', 'docs/operations.md'];

/** The command block that follows `<!-- replayed by test/service/packaging.test.ts: NAME -->`, in exactly one of REPLAYED_DOCS. */
function replayedBlock(name: string): string {
  const marker = `<!-- replayed by test/service/packaging.test.ts: ${name} -->\n\`\`\`sh\n`;
  const found = REPLAYED_DOCS.flatMap((file) => {
    const text = readFileSync(join(repoRoot, file), 'utf8');
    const at = text.indexOf(marker);
    return at < 0 ? [] : [text.slice(at + marker.length, text.indexOf('\n```', at + marker.length))];
  });
  if (found.length !== 1) throw new Error(`${REPLAYED_DOCS.join(' and ')} have ${found.length} blocks marked ${name}, not one`);
  return found[0]!;
}

/**
 * A block as written, run in a scratch root: /etc, the npm prefix /usr and /usr/lib/node_modules
 * move under $ROOT (Node itself stays /usr/bin/node), and systemctl and journalctl (no systemd as
 * PID 1 here) are left out; the test does what they would. Comments are dropped.
 */
function inScratchRoot(block: string): string {
  return block
    .replace(/[ \t]+#[ \t].*$/gm, '')
    .replace(/(^|[\s"'=(])\/(etc(?=\/|\s|$)|usr\/lib\/node_modules|usr(?=[\s"]|$))/gm, '$1$ROOT/$2')
    .replace(/\b(systemctl|journalctl) [^&;|\n]*/g, 'true ');
}

/** One [Service] setting of a unit file (all of its values for a repeatable one). */
const unitValues = (unit: string, key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());

const canReplay = isRoot && debianVersion() !== undefined && existsSync('/usr/bin/setpriv');

/*
 * The documented service install (README.md, docs/operations.md), replayed as written (see inScratchRoot), against a cluster made by
 * pg_createcluster; then the daemon started exactly as the unit would start it, as an unprivileged
 * user, and shown to heal. Then the upgrade and the uninstall blocks.
 */
describe.runIf(canReplay)("the README's service install, replayed", { timeout: 600_000 }, () => {
  let cluster: DebianCluster;
  let user: ServiceUser | undefined;
  let root: string;
  let checkout: string;
  let daemon: ChildProcess | undefined;
  let stderr = '';
  const audit = () => readAudit(join(root, 'var/log/seqwatch/audit.jsonl'));

  async function replay(name: string): Promise<void> {
    const script = `set -euo pipefail\n${inScratchRoot(replayedBlock(name))}\n`;
    await run('bash', ['-c', script], {
      cwd: checkout,
      env: { ...process.env, ROOT: root, PATH: `${root}/usr/bin:${process.env.PATH}`, PGPORT: String(cluster.port), EDITOR: `sh ${join(root, 'edit.sh')}` },
      maxBuffer: 64 * 2 ** 20,
    }).catch((error: { message: string; stdout: string; stderr: string }) => {
      throw new Error(`the documented ${name} block failed: ${error.message}\n${error.stdout}\n${error.stderr}`);
    });
  }

  /** The unit's start: ExecStart as its user, UMask, Environment, LoadCredential, the directories. */
  async function startAsTheUnitWould(): Promise<void> {
    const unit = readFileSync(join(root, 'etc/systemd/system/seqwatch.service'), 'utf8');
    expect(unitValues(unit, 'DynamicUser')).toEqual(['yes']);
    user ??= await createServiceUser(unitValues(unit, 'SupplementaryGroups').join(' ').split(/\s+/));
    for (const [key, base] of [
      ['StateDirectory', 'var/lib'],
      ['LogsDirectory', 'var/log'],
    ] as const) {
      const dir = join(root, base, unitValues(unit, key)[0]!);
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      chownSync(dir, user.uid, user.gid);
    }
    const credentials = mkdtempSync(join(tmpdir(), 'seqwatch-credentials-'));
    for (const credential of unitValues(unit, 'LoadCredential')) {
      const [name, path] = [credential.slice(0, credential.indexOf(':')), credential.slice(credential.indexOf(':') + 1)];
      copyFileSync(inScratchRoot(path).replace('$ROOT', root), join(credentials, name));
      chownSync(join(credentials, name), user.uid, user.gid);
      chmodSync(join(credentials, name), 0o400);
    }
    chownSync(credentials, user.uid, user.gid);
    chmodSync(credentials, 0o500);
    const execStart = inScratchRoot(unitValues(unit, 'ExecStart')[0]!).replaceAll('$ROOT', root).split(/\s+/);
    const environment = Object.fromEntries(unitValues(unit, 'Environment').map((kv) => kv.split('=') as [string, string]));
    stderr = '';
    daemon = spawn(
      'setpriv',
      [
        '--reuid',
        String(user.uid),
        '--regid',
        String(user.gid),
        '--init-groups',
        '--',
        'sh',
        '-c',
        `umask ${unitValues(unit, 'UMask')[0]} && exec "$@"`,
        'sh',
        ...execStart,
      ],
      { cwd: '/', env: { PATH: process.env.PATH, ...environment, CREDENTIALS_DIRECTORY: credentials }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    daemon.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const started = audit().filter((r) => r.event === 'started').length;
    await waitFor(
      'the started record',
      () => {
        if (daemon!.exitCode !== null) throw new Error(`the daemon exited (${daemon!.exitCode}):\n${stderr}`);
        return audit().filter((r) => r.event === 'started').length > started;
      },
      60_000,
    );
    // The daemon is the unit's user, not root.
    const status = readFileSync(`/proc/${daemon.pid}/status`, 'utf8');
    expect(/^Uid:\s+(\d+)/m.exec(status)![1]).toBe(String(user.uid));
  }

  async function stop(): Promise<void> {
    if (!daemon || daemon.exitCode !== null) return;
    const exited = new Promise((resolve) => daemon!.once('exit', resolve));
    daemon.kill('SIGTERM');
    await exited;
  }

  beforeAll(async () => {
    cluster = await createDebianCluster();
    // The GOTRS database, after an import that left the sequence behind.
    await cluster.psql('CREATE DATABASE gotrs');
    await cluster.psql(
      "CREATE TABLE ticket (id bigserial PRIMARY KEY, title text); INSERT INTO ticket (id, title) SELECT g, 'imported' FROM generate_series(1, 500) g",
      'gotrs',
    );
    root = mkdtempSync(join(tmpdir(), 'seqwatch-root-'));
    chmodSync(root, 0o755);
    // What a Debian host already has.
    for (const dir of ['etc/systemd/system', 'etc/logrotate.d']) mkdirSync(join(root, dir), { recursive: true });
    // The operator's edit of the example config: this cluster's port and log; the unit's directories in the scratch root.
    writeFileSync(
      join(root, 'edit.sh'),
      [
        'set -eu',
        `sed -i -e 's|:5432/|:${cluster.port}/|' -e 's|/var/log/postgresql/postgresql-15-main.log|${cluster.logPath}|'` +
          ` -e 's|/var/log/seqwatch/|${root}/var/log/seqwatch/|' -e 's|^state_dir: /var/lib/seqwatch|state_dir: ${root}/var/lib/seqwatch|'` +
          ` -e 's|/etc/seqwatch/db_password|${root}/etc/seqwatch/db_password|' "$1"`,
      ].join('\n'),
    );
    // A checkout after npm ci: the repository's files, its node_modules.
    checkout = mkdtempSync(join(tmpdir(), 'seqwatch-checkout-'));
    for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md', 'LICENSE', 'src', 'scripts', 'config', 'systemd']) {
      if (existsSync(join(repoRoot, entry))) cpSync(join(repoRoot, entry), join(checkout, entry), { recursive: true });
    }
    symlinkSync(join(repoRoot, 'node_modules'), join(checkout, 'node_modules'));
  });
  afterAll(async () => {
    await stop();
    await cluster?.drop();
    await user?.remove();
    if (root) rmSync(root, { recursive: true, force: true });
    if (checkout) rmSync(checkout, { recursive: true, force: true });
  });

  it('install: the steps as written give a service that starts as an unprivileged user and heals', async () => {
    await replay('install');
    const etc = join(root, 'etc/seqwatch');
    expect(readFileSync(join(etc, 'db_password'), 'utf8').trim().length).toBeGreaterThanOrEqual(24);
    await startAsTheUnitWould();
    // The password file itself is root's alone: the daemon read the credential.
    expect(
      await run('setpriv', ['--reuid', String(user!.uid), '--regid', String(user!.gid), '--init-groups', '--', 'test', '-r', join(etc, 'db_password')]).then(
        () => true,
        () => false,
      ),
    ).toBe(false);
    // The installed service watches the tables by default (docs/watch.md): it may heal the import
    // before the application's first INSERT fails; otherwise that INSERT fails once and the log heals it.
    const first = await cluster.psql("INSERT INTO ticket (title) VALUES ('new') RETURNING id", 'gotrs').then(
      (id) => id.trim(),
      (error: Error) => error.message,
    );
    if (first !== '501') expect(first).toMatch(/duplicate key value violates unique constraint "ticket_pkey"/);
    const healed = await waitFor('the remediated record', () => audit().find((r) => r.event === 'remediated'), 30_000);
    expect(healed).toMatchObject({ table: 'public.ticket', after: '500' });
    expect((await cluster.psql("INSERT INTO ticket (title) VALUES ('new') RETURNING id", 'gotrs')).trim()).toBe(first === '501' ? '502' : '501');
    await stop();
    expect(daemon!.exitCode).toBe(0);
  });

  it('upgrade: the package is replaced, the config kept, the service starts again', async () => {
    const config = readFileSync(join(root, 'etc/seqwatch/seqwatch.yaml'), 'utf8');
    await replay('upgrade');
    expect(readFileSync(join(root, 'etc/seqwatch/seqwatch.yaml'), 'utf8')).toBe(config);
    await startAsTheUnitWould();
    const { stdout } = await run(join(root, 'usr/bin/seqwatch'), ['health', '-c', join(root, 'etc/seqwatch/seqwatch.yaml')]).catch(async () => {
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      return run(join(root, 'usr/bin/seqwatch'), ['health', '-c', join(root, 'etc/seqwatch/seqwatch.yaml')]);
    });
    expect(stdout).toBe('healthy\n');
    await stop();
  });

  it('uninstall: the package, the unit, the config and the role are gone; the audit log stays', async () => {
    await replay('uninstall');
    expect(existsSync(join(root, 'usr/lib/node_modules/seqwatch'))).toBe(false);
    expect(existsSync(join(root, 'usr/bin/seqwatch'))).toBe(false);
    expect(existsSync(join(root, 'etc/systemd/system/seqwatch.service'))).toBe(false);
    expect(existsSync(join(root, 'etc/seqwatch'))).toBe(false);
    expect((await cluster.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'seqwatch'")).trim()).toBe('0');
    expect(audit().some((r) => r.event === 'remediated')).toBe(true);
  });
});
