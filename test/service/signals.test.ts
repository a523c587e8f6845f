import { execFile } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { CLI, duplicateKeyLine, readAudit, startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { startNotifyListener, type NotifyListener } from '../helpers/notifyListener.js';

const run = promisify(execFile);
let db: TestDatabase;
let appLog: string;
const running: RunningDaemon[] = [];
const listeners: NotifyListener[] = [];

beforeAll(async () => {
  db = await createTestDatabase('sig');
  await db.pool.query(`
    CREATE TABLE ticket (id bigserial PRIMARY KEY);
    CREATE TABLE article (id bigserial PRIMARY KEY);
    CREATE TABLE queue (id serial PRIMARY KEY);
    CREATE TABLE users (id serial PRIMARY KEY);
    CREATE TABLE valid (id smallserial PRIMARY KEY);`);
  appLog = join(mkdtempSync(join(tmpdir(), 'seqwatch-sig-')), 'app.log');
  writeFileSync(appLog, '');
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.stop('SIGKILL')));
  listeners.splice(0).forEach((l) => l.close());
});
afterAll(async () => {
  await db?.drop();
});

async function daemon(env: NodeJS.ProcessEnv = {}, extra: Record<string, unknown> = {}): Promise<RunningDaemon> {
  const d = await startDaemon(
    {
      database: { url: db.url },
      sources: [{ path: appLog, format: 'postgres-stderr', log_line_prefix: '%m [%p] ' }],
      remediation: { debounce_ms: 100, dry_run: false },
      ...extra,
    },
    env,
  );
  running.push(d);
  return d;
}

/** Leaves `table`'s sequence behind by `rows` imported rows. */
async function drift(table: string, rows: number): Promise<void> {
  await db.pool.query(`INSERT INTO ${table} (id) SELECT (SELECT coalesce(max(id), 0) FROM ${table}) + g FROM generate_series(1, $1::int) g`, [rows]);
}

describe('the daemon under a service manager', () => {
  it('tells systemd it is ready, feeds the watchdog, and says it is stopping', async () => {
    const listener = await startNotifyListener();
    listeners.push(listener);
    const d = await daemon({ NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '300000' });
    await waitFor('READY=1', () => listener.messages().some((m) => m.includes('READY=1')));
    await waitFor('two watchdog pings', () => listener.messages().filter((m) => m.includes('WATCHDOG=1')).length >= 2, 10_000);
    const ready = listener.messages().find((m) => m.includes('READY=1'))!;
    expect(ready).toContain(`MAINPID=${d.child.pid}`);
    expect(ready).toMatch(/STATUS=following 1 source/);
    expect(await d.stop('SIGTERM')).toBe(0);
    await waitFor('STOPPING=1', () => listener.messages().some((m) => m.includes('STOPPING=1')));
  });

  it('reports health for a container HEALTHCHECK: 0 while running, 1 without a daemon', async () => {
    const d = await daemon();
    await waitFor('health file', () => existsSync(join(d.dir, 'state', 'health.json')), 10_000);
    const healthy = await run(process.execPath, [CLI, 'health', '-c', d.configPath]);
    expect(healthy.stdout).toBe('healthy\n');
    const lonely = join(mkdtempSync(join(tmpdir(), 'seqwatch-h-')), 'c.yaml');
    writeFileSync(lonely, stringify({ sources: [{ path: appLog }], state_dir: join(tmpdir(), 'nowhere-' + Date.now()) }));
    await expect(run(process.execPath, [CLI, 'health', '-c', lonely])).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('no health file') });
  });

  it('on SIGHUP continues the audit log in a new file after logrotate moved the old one', async () => {
    const d = await daemon();
    await drift('ticket', 10);
    renameSync(d.auditPath, `${d.auditPath}.1`);
    d.child.kill('SIGHUP');
    await waitFor('audit reopened', () => existsSync(d.auditPath), 10_000);
    appendFileSync(appLog, duplicateKeyLine('ticket_pkey'));
    await d.waitForAudit('ticket remediated in the new file', (r) => r.event === 'remediated' && r.table === 'public.ticket');
    expect(readAudit(`${d.auditPath}.1`).map((r) => r.event)).toEqual(['started']);
  });

  it('on SIGHUP with a broken config keeps the old one, says so, and keeps healing; a valid one takes effect', async () => {
    const d = await daemon();
    const good = readFileSync(d.configPath, 'utf8');
    writeFileSync(d.configPath, good.replace('dry_run: false', 'dry_run: perhaps'));
    d.child.kill('SIGHUP');
    const alert = await d.waitForAudit('reload refused', (r) => r.event === 'alert' && r.reason === 'config_reload_failed');
    expect(alert.error).toMatch(/remediation\.dry_run/);
    expect(alert.error).toContain(`${d.configPath}:`);
    await drift('article', 5);
    appendFileSync(appLog, duplicateKeyLine('article_pkey'));
    await d.waitForAudit('article remediated', (r) => r.event === 'remediated' && r.table === 'public.article');

    writeFileSync(d.configPath, good.replace('dry_run: false', 'dry_run: true'));
    d.child.kill('SIGHUP');
    await waitFor('reload logged', () => d.stderr().includes('configuration reloaded'), 10_000);
    await drift('queue', 3);
    appendFileSync(appLog, duplicateKeyLine('queue_pkey'));
    await d.waitForAudit('queue planned (dry run now)', (r) => r.event === 'planned' && r.table === 'public.queue');
    expect(d.alive()).toBe(true);
  });

  it('on SIGTERM during a burst of incidents stops within bounds, audits stopped last, exits 0', async () => {
    const d = await daemon();
    await drift('users', 20);
    const burst = Array.from({ length: 3000 }, (_, i) => duplicateKeyLine(['users_pkey', 'valid_pkey', 'nope_pkey'][i % 3]!)).join('');
    appendFileSync(appLog, burst);
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    expect(await d.stop('SIGTERM')).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    const audit = d.audit();
    expect(audit.at(-1)).toMatchObject({ event: 'stopped', reason: 'SIGTERM' });
    // Every check that started has its outcome in the log: none was cut off halfway.
    const detected = audit.filter((r) => r.event === 'detected').length;
    const outcomes = audit.filter((r) => ['remediated', 'in_sync', 'planned', 'failed', 'alert'].includes(r.event) && r.table).length;
    expect(outcomes).toBe(detected);
  });

  it('exits 1 and starts nothing when the config is invalid', async () => {
    const bad = join(mkdtempSync(join(tmpdir(), 'seqwatch-bad-')), 'c.yaml');
    writeFileSync(bad, 'sources:\n  - path: /x\n    format: syslog-ng\n');
    await expect(run(process.execPath, [CLI, 'run', '-c', bad])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining(`${bad}:3:13: sources.0.format`),
    });
  });
});
