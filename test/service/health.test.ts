import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { stringify } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { AuditLog } from '../../src/audit/AuditLog.js';
import { ProblemReporter, type HealthProblem } from '../../src/service/health.js';
import { findLocalBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { CLI, duplicateKeyLine, freePort, metricValue, readAudit, runCli, startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { startNotifyListener, type NotifyListener } from '../helpers/notifyListener.js';

/** "Healthy" means "can heal": each way of being blind makes the daemon unhealthy, says why and how to fix it. */

const running: RunningDaemon[] = [];
const listeners: NotifyListener[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.stop('SIGKILL')));
  listeners.splice(0).forEach((l) => l.close());
});

interface HealthFile {
  ok: boolean;
  sources: boolean;
  database: boolean;
  watchdog: boolean;
  problems: HealthProblem[];
}
const healthOf = (d: RunningDaemon): HealthFile | undefined => {
  const file = join(d.dir, 'state', 'health.json');
  try {
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as HealthFile) : undefined;
  } catch {
    return undefined; // being replaced
  }
};
const uidOf = (user: string) => Number(execFileSync('id', ['-u', user]).toString().trim());
const gidOf = (group: string) => Number(execFileSync('getent', ['group', group]).toString().split(':')[2]);

/** The built CLI run to its end, but killed after `ms` (a daemon that waits forever must fail the test, not hang it). */
function runFor(ms: number, ...args: string[]): Promise<{ code: number | string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: ms, killSignal: 'SIGKILL' }, (error, _stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? (error as { signal?: string }).signal ?? 1) : 0, stderr }),
    );
  });
}

describe('health: a source the service user cannot read', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('hl');
    await db.pool.query('CREATE TABLE ticket (id bigserial PRIMARY KEY)');
  });
  afterAll(async () => {
    await db?.drop();
  });

  // A real unprivileged user (nobody, no supplementary groups: not in adm) and a log file as Debian
  // makes it (0640 root:adm). Needs root to make that file and to switch users.
  it.runIf(process.getuid?.() === 0)(
    'a daemon run as nobody that cannot read its 0640 root:adm log is unhealthy, says why with the fix, audits one alert',
    async () => {
      const logDir = mkdtempSync(join(tmpdir(), 'seqwatch-adm-'));
      chmodSync(logDir, 0o755);
      const log = join(logDir, 'postgresql-15-main.log');
      writeFileSync(log, '');
      chownSync(log, 0, gidOf('adm'));
      chmodSync(log, 0o640);
      const listener = await startNotifyListener();
      listeners.push(listener);
      // The listener's socket is root's: let the service user reach it, as systemd's is.
      chmodSync(dirname(listener.socket), 0o755);
      chmodSync(listener.socket, 0o666);
      const port = await freePort();
      const d = await startDaemon(
        {
          database: { url: db.url },
          sources: [{ path: log, log_line_prefix: '%m [%p] ' }],
          remediation: { debounce_ms: 100, dry_run: false },
          metrics: { listen: `127.0.0.1:${port}` },
        },
        { NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '400000' },
        { uid: uidOf('nobody'), gid: gidOf('nogroup') },
      );
      running.push(d);
      const health = await waitFor(
        'an unhealthy health file',
        () => healthOf(d)?.problems?.some((p) => p.code === 'source_unreadable') && healthOf(d)?.database && healthOf(d),
        15_000,
      );
      expect(health).toMatchObject({ ok: false, sources: false, database: true });
      const problem = health.problems.find((p) => p.code === 'source_unreadable')!;
      expect(problem.message).toContain(`cannot read ${log} (EACCES) as user nobody`);
      expect(problem.message).toContain('owner root:adm');
      expect(problem.fix).toContain('group adm');
      // seqwatch health, /healthz and seqwatch_up agree, and say why.
      const cli = await runCli('health', '-c', d.configPath);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toContain(`cannot read ${log}`);
      expect(cli.stderr).toContain('fix: let nobody read it');
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(503);
      expect(await metricValue(port, 'seqwatch_up')).toBe(0);
      expect(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).toContain(`seqwatch_health_problem{code="source_unreadable",subject="${log}"} 1`);
      // Its log says it (and again every minute: see the ProblemReporter test); the audit once.
      await waitFor('the log line', () => d.stderr().includes(`cannot heal: cannot read ${log}`), 5_000);
      await new Promise((r) => setTimeout(r, 2_000));
      const alerts = d.audit().filter((r) => r.event === 'alert' && r.reason === 'source_unreadable');
      expect(alerts).toHaveLength(1);
      expect(alerts[0]!.msg).toContain('fix: let nobody read it');
      // A restart would not make the file readable: the watchdog stays fed (no restart loop).
      await waitFor('READY=1', () => listener.messages().some((m) => m.includes('READY=1')), 10_000);
      const before = listener.messages().length;
      await waitFor(
        'watchdog fed while unhealthy',
        () =>
          listener
            .messages()
            .slice(before)
            .some((m) => m.includes('WATCHDOG=1')),
        5_000,
      );
      await waitFor(
        'the status line',
        () =>
          listener
            .messages()
            .slice(before)
            .some((m) => m.includes('STATUS=UNHEALTHY: cannot read')),
        5_000,
      );

      // Once it can read the file (here: the file made readable to others): healthy within a heartbeat, and it heals.
      chmodSync(log, 0o644);
      await waitFor('healthy again', () => healthOf(d)?.ok === true, 15_000);
      await db.pool.query('INSERT INTO ticket (id) SELECT generate_series(1, 12)');
      appendFileSync(log, duplicateKeyLine('ticket_pkey'));
      await d.waitForAudit('healed from the file it can read now', (r) => r.event === 'remediated' && r.table === 'public.ticket', 15_000);
    },
  );

  it("a prefix that does not match the server's real lines: the real duplicate key error is seen, not dropped in silence", async () => {
    const server = inject('pg');
    if (!server.logPath) return; // an external server without its log: nothing to follow
    const port = await freePort();
    const d = await startDaemon({
      database: { url: db.url },
      // The server writes '%m [%p] %q%u@%d '; this is another common prefix, not the server's.
      sources: [{ path: server.logPath, format: 'postgres-stderr', log_line_prefix: '%t [%p]: [%l-1] user=%u,db=%d ' }],
      remediation: { debounce_ms: 100, dry_run: false },
      metrics: { listen: `127.0.0.1:${port}` },
    });
    running.push(d);
    // (Not "healthy first": other test files write their own errors into this shared log meanwhile.)
    await waitFor('the first heartbeat', () => healthOf(d) !== undefined, 15_000);
    // A real error, written by the server itself.
    await db.pool.query('INSERT INTO ticket (id) VALUES (1000)');
    await expect(db.pool.query('INSERT INTO ticket (id) VALUES (1000)')).rejects.toThrow(/duplicate key/);
    const health = await waitFor('unhealthy', () => healthOf(d)?.ok === false && healthOf(d), 15_000);
    const problem = health.problems.find((p) => p.code === 'source_unparsed')!;
    expect(problem.message).toContain(`do not match the configured format postgres-stderr with log_line_prefix "%t [%p]: [%l-1] user=%u,db=%d "`);
    // The line up to the error's words (what did not match the prefix), nothing after them (row data).
    expect(problem.message).toMatch(/begins "\d{4}-\d\d-\d\d [\d:.]+ \w+ \[\d+\] (?:\S*@\S* )?ERROR: {2}duplicate key value violates unique constraint"$/);
    expect(problem.fix).toContain('SHOW log_line_prefix');
    const alert = await d.waitForAudit('one alert', (r) => r.event === 'alert' && r.reason === 'source_unparsed');
    expect(alert.subject).toBe(server.logPath);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(503);
    expect(d.stderr()).toContain('cannot heal: ' + server.logPath);
  });
});

describe.runIf(findLocalBinaries())('health: a login the server refuses (scram)', () => {
  const PASSWORD = 'right-Pässword';
  let server: ThrowawayPostgres;
  let dir: string;
  beforeAll(async () => {
    server = await startLocalPostgres({ logLinePrefix: '%m [%p] ', password: PASSWORD });
    dir = mkdtempSync(join(tmpdir(), 'seqwatch-auth-'));
    writeFileSync(join(dir, 'app.log'), '');
  });
  afterAll(async () => {
    await server?.destroy();
  });

  const configWith = (name: string, database: Record<string, unknown>) => {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(
      path,
      stringify({
        database,
        sources: [{ path: join(dir, 'app.log'), log_line_prefix: '%m [%p] ' }],
        audit: { path: join(dir, `${name}.audit.jsonl`) },
        state_dir: join(dir, `${name}-state`),
      }),
    );
    return path;
  };
  const host = () => new URL(server.url).host;

  it('a wrong password at start: a clear error naming role and host, exit 78, no wait, one alert', async () => {
    const file = join(dir, 'wrong');
    writeFileSync(file, 'not-the-password\n', { mode: 0o600 });
    const config = configWith('wrong', { url: server.url, password_file: file });
    const started = Date.now();
    const result = await runFor(30_000, 'run', '-c', config);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(result.code).toBe(78);
    expect(result.stderr).toContain(`cannot log in to the database at ${host()} as role postgres`);
    expect(result.stderr).toContain('password authentication failed for user \\"postgres\\" (28P01)');
    expect(result.stderr).toContain('database.password_file');
    expect(result.stderr).not.toContain('not-the-password');
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const audit = readAudit(join(dir, 'wrong.audit.jsonl'));
    expect(audit.filter((r) => r.event === 'alert').map((r) => r.reason)).toEqual(['database_authentication']);
    expect(audit.at(-1)).toMatchObject({ event: 'stopped' });
  });

  it('no password at all for a scram server: the same, and it says none was given', async () => {
    const config = configWith('none', { url: server.url });
    const result = await runFor(30_000, 'run', '-c', config);
    expect(result.code).toBe(78);
    expect(result.stderr).toContain(`cannot log in to the database at ${host()} as role postgres`);
    expect(result.stderr).toContain('no password was given');
  });

  it('a password that goes wrong while running (rotated on the server): keeps running, unhealthy, one alert, heals after the reload', async () => {
    const admin = new pg.Client({ host: '127.0.0.1', port: Number(new URL(server.url).port), user: 'postgres', database: 'postgres', password: PASSWORD });
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE rotating LOGIN PASSWORD 'first-password'; CREATE TABLE IF NOT EXISTS article (id bigserial PRIMARY KEY);
                         GRANT SELECT ON article TO rotating; GRANT SELECT, UPDATE ON SEQUENCE article_id_seq TO rotating;`);
      const file = join(dir, 'rotating');
      writeFileSync(file, 'first-password\n', { mode: 0o600 });
      const { hostname, port } = new URL(server.url);
      const d = await startDaemon(
        {
          database: { url: `postgresql://rotating@${hostname}:${port}/postgres`, password_file: file },
          sources: [{ path: join(dir, 'app.log'), log_line_prefix: '%m [%p] ' }],
          remediation: { debounce_ms: 100, dry_run: false },
        },
        { PGPASSWORD: '' },
      );
      running.push(d);
      await waitFor('ready and healthy', () => d.stderr().includes('ready') && healthOf(d)?.ok === true, 15_000);
      await admin.query(`ALTER ROLE rotating PASSWORD 'second-password'`);
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rotating'`);
      const health = await waitFor('unhealthy', () => healthOf(d)?.problems?.some((p) => p.code === 'database_authentication') && healthOf(d), 20_000);
      expect(health.ok).toBe(false);
      expect(health.watchdog).toBe(true);
      const alert = await d.waitForAudit('the alert', (r) => r.event === 'alert' && r.reason === 'database_authentication');
      expect(alert.msg).toContain('role rotating');
      expect(d.alive()).toBe(true);
      // The operator puts the new password in the file and reloads: healthy again.
      writeFileSync(file, 'second-password\n', { mode: 0o600 });
      d.child.kill('SIGHUP');
      await waitFor('healthy again', () => healthOf(d)?.ok === true, 20_000);
      expect(d.stderr()).not.toContain('first-password');
      expect(d.stderr()).not.toContain('second-password');
    } finally {
      await admin.end();
    }
  });
});

describe('ProblemReporter', () => {
  it('logs a problem at once and every minute while it lasts, audits it once, and says when it is over', () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-reporter-'));
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const audit = new AuditLog(join(dir, 'audit.jsonl'));
    const reporter = new ProblemReporter(logger, audit);
    const problem: HealthProblem = { code: 'source_unreadable', subject: '/var/log/x.log', message: 'cannot read /var/log/x.log', fix: 'let it read' };
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    for (let s = 0; s <= 150; s += 5) reporter.report([problem], t0 + s * 1000);
    reporter.report([], t0 + 155_000);
    audit.close();
    const logged = lines.map((l) => JSON.parse(l) as { msg: string });
    expect(logged.filter((l) => l.msg.startsWith('cannot heal: cannot read /var/log/x.log; fix: let it read'))).toHaveLength(3); // 0 s, 60 s, 120 s
    expect(logged.at(-1)!.msg).toMatch(/^resolved after 155 s/);
    expect(readAudit(join(dir, 'audit.jsonl')).map((r) => [r.event, r.reason])).toEqual([['alert', 'source_unreadable']]);
  });
});
