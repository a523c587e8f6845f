import { execFile } from 'node:child_process';
import { appendFileSync, chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findLocalBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { CLI, duplicateKeyLine, startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';

const run = promisify(execFile);
const PASSWORD = 'S3cret-pässword';

/* A server of its own that asks for a password (the shared one trusts every connection). */
describe.runIf(findLocalBinaries())('secrets', () => {
  let server: ThrowawayPostgres;
  let dir: string;
  let appLog: string;
  let url: string;
  const running: RunningDaemon[] = [];

  beforeAll(async () => {
    server = await startLocalPostgres({ logLinePrefix: '%m [%p] ', password: PASSWORD });
    url = server.url; // no password in it
    const admin = new pg.Client({
      ...new URL(url).searchParams,
      host: new URL(url).hostname,
      port: Number(new URL(url).port),
      user: 'postgres',
      database: 'postgres',
      password: PASSWORD,
    });
    await admin.connect();
    await admin.query(`CREATE TABLE ticket (id bigserial PRIMARY KEY);
                       CREATE TABLE article (id bigserial PRIMARY KEY);
                       CREATE TABLE queue (id serial PRIMARY KEY);
                       INSERT INTO ticket (id) SELECT generate_series(1, 10);
                       INSERT INTO article (id) SELECT generate_series(1, 20);
                       INSERT INTO queue (id) SELECT generate_series(1, 30);`);
    await admin.end();
    dir = mkdtempSync(join(tmpdir(), 'seqwatch-secrets-'));
    appLog = join(dir, 'app.log');
    writeFileSync(appLog, '');
  });
  afterEach(async () => {
    for (const d of running.splice(0)) {
      await d.stop('SIGTERM');
      // Whatever happened, the password was never printed nor audited.
      expect(d.stderr()).not.toContain(PASSWORD);
      expect(JSON.stringify(d.audit())).not.toContain(PASSWORD);
    }
  });
  afterAll(async () => {
    await server?.destroy();
  });

  const config = (database: Record<string, unknown>) => ({
    database,
    sources: [{ path: appLog, log_line_prefix: '%m [%p] ' }],
    remediation: { debounce_ms: 100, dry_run: false },
  });

  it('reads the password from database.password_file', async () => {
    const file = join(dir, 'password');
    writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
    const d = await startDaemon(config({ url, password_file: file }), { PGPASSWORD: '' });
    running.push(d);
    appendFileSync(appLog, duplicateKeyLine('ticket_pkey'));
    await d.waitForAudit('ticket remediated', (r) => r.event === 'remediated' && r.table === 'public.ticket');
  });

  it('reads the password from PGPASSFILE, as libpq does', async () => {
    const passfile = join(dir, 'pgpass');
    const { hostname, port } = new URL(url);
    writeFileSync(passfile, `${hostname}:${port}:*:postgres:${PASSWORD.replace(/:/g, '\\:')}\n`, { mode: 0o600 });
    const d = await startDaemon(config({ url }), { PGPASSFILE: passfile, PGPASSWORD: '' });
    running.push(d);
    appendFileSync(appLog, duplicateKeyLine('article_pkey'));
    await d.waitForAudit('article remediated', (r) => r.event === 'remediated' && r.table === 'public.article');
  });

  // A wrong password at start ends the daemon with a clear error (test/service/health.test.ts);
  // one that goes wrong while it runs (here: a reload with a wrong password file) is waited out.
  it('with a password that goes wrong while running keeps running, says why, and never prints it', async () => {
    const file = join(dir, 'wrong');
    writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
    const d = await startDaemon(config({ url, password_file: file }), { PGPASSWORD: '' });
    running.push(d);
    await waitFor('ready', () => d.stderr().includes('database answers; ready'), 10_000);
    writeFileSync(file, 'not-the-password\n', { mode: 0o600 });
    d.child.kill('SIGHUP');
    await waitFor('reloaded', () => d.stderr().includes('configuration reloaded'), 10_000);
    appendFileSync(appLog, duplicateKeyLine('queue_pkey'));
    const failed = await d.waitForAudit('failed', (r) => r.event === 'failed');
    expect(failed.error).toMatch(/password authentication failed/);
    expect(d.stderr()).not.toContain('not-the-password');
    expect(d.alive()).toBe(true);
  });

  it('warns when the config file holding a password is readable by others', async () => {
    const withPassword = join(dir, 'seqwatch.yaml');
    const { hostname, port, pathname } = new URL(url);
    writeFileSync(withPassword, stringify(config({ url: `postgresql://postgres:${encodeURIComponent(PASSWORD)}@${hostname}:${port}${pathname}` })));
    chmodSync(withPassword, 0o644);
    const loose = await run(process.execPath, [CLI, 'config', 'check', '-c', withPassword]);
    expect(loose.stderr).toContain('readable by every user');
    expect(loose.stdout + loose.stderr).not.toContain(PASSWORD);
    expect(loose.stdout + loose.stderr).not.toContain(encodeURIComponent(PASSWORD));
    chmodSync(withPassword, 0o600);
    const tight = await run(process.execPath, [CLI, 'config', 'check', '-c', withPassword]);
    expect(tight.stderr).not.toContain('readable by every user');
  });
});
