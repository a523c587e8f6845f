import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { endpointsOf } from '../../src/db/Database.js';
import { createTestDatabase, type TestDatabase, sqlOn as sql } from '../helpers/db.js';
import { duplicateKeyLine, freePort, runCli, startDaemon, waitUntil, type RunningDaemon } from '../helpers/daemon.js';
import { startStandby, type Standby } from '../helpers/standby.js';
import { findSystemBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';

let db: TestDatabase;
let appLog: string;
const running: RunningDaemon[] = [];

beforeAll(async () => {
  db = await createTestDatabase('ha');
  await db.pool.query(`CREATE TABLE ticket (id bigserial PRIMARY KEY);
                       CREATE TABLE article (id bigserial PRIMARY KEY);
                       CREATE TABLE queue (id serial PRIMARY KEY);`);
  appLog = join(mkdtempSync(join(tmpdir(), 'seqwatch-ha-')), 'app.log');
  writeFileSync(appLog, '');
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.stop('SIGKILL')));
});
afterAll(async () => {
  await db?.drop();
});

async function daemon(url: string): Promise<RunningDaemon> {
  const d = await startDaemon({
    database: { url },
    sources: [{ path: appLog, log_line_prefix: '%m [%p] ' }],
    remediation: { debounce_ms: 100, dry_run: false },
  });
  running.push(d);
  return d;
}

function multiHost(hosts: string[]): string {
  const url = new URL(db.url);
  return `postgresql://${url.username}@${hosts.join(',')}${url.pathname}?target_session_attrs=read-write`;
}

describe('several hosts, standbys and several daemons', () => {
  it('splits a multi-host URL as libpq does', () => {
    expect(endpointsOf('postgresql://u:p@h1:5432,h2:6432/gotrs?target_session_attrs=read-write&sslmode=disable')).toEqual({
      readWrite: true,
      endpoints: [
        { url: 'postgresql://u:p@h1:5432/gotrs?sslmode=disable', label: 'h1:5432' },
        { url: 'postgresql://u:p@h2:6432/gotrs?sslmode=disable', label: 'h2:6432' },
      ],
    });
  });

  it('passes over a host that is down and fixes on the one that accepts writes', async () => {
    const real = new URL(inject('pg').url);
    // A free port is one nothing listens on: a host that is down.
    const d = await daemon(multiHost([`127.0.0.1:${await freePort()}`, `${real.hostname}:${real.port}`]));
    await db.pool.query('INSERT INTO ticket (id) SELECT generate_series(1, 30)');
    appendFileSync(appLog, duplicateKeyLine('ticket_pkey'));
    await d.waitForAudit('ticket remediated', (r) => r.event === 'remediated' && r.table === 'public.ticket');
  });

  it('waits while the server is read-only (a standby, mid-failover) and fixes once it accepts writes', async () => {
    const real = new URL(inject('pg').url);
    const d = await daemon(multiHost([`${real.hostname}:${real.port}`]));
    const admin = new pg.Client({ connectionString: inject('pg').url });
    await admin.connect();
    try {
      await db.pool.query('INSERT INTO article (id) SELECT generate_series(1, 40)');
      await admin.query(`ALTER DATABASE ${db.name} SET default_transaction_read_only = on`);
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'seqwatch'`, [db.name]);
      appendFileSync(appLog, duplicateKeyLine('article_pkey'));
      const failed = await d.waitForAudit('failed, retrying', (r) => r.event === 'failed' && r.retrying === true);
      expect(failed.trigger?.constraint).toBe('article_pkey');
      await new Promise((r) => setTimeout(r, 1_000));
      expect(d.audit().some((r) => r.event === 'remediated' && r.table === 'public.article')).toBe(false);
      await admin.query(`ALTER DATABASE ${db.name} SET default_transaction_read_only = off`);
      await d.waitForAudit('article remediated', (r) => r.event === 'remediated' && r.table === 'public.article', 20_000);
    } finally {
      await admin.query(`ALTER DATABASE ${db.name} RESET default_transaction_read_only`);
      await admin.end();
    }
  });

  it('two daemons on one cluster never run the same fix twice: one remediates, the other finds it in sync', async () => {
    const [a, b] = [await daemon(db.url), await daemon(db.url)];
    await db.pool.query('INSERT INTO queue (id) SELECT generate_series(1, 60)');
    appendFileSync(appLog, duplicateKeyLine('queue_pkey'));
    const outcome = (d: RunningDaemon) => d.waitForAudit('queue outcome', (r) => ['remediated', 'in_sync'].includes(r.event) && r.table === 'public.queue');
    const outcomes = await Promise.all([outcome(a), outcome(b)]);
    expect(outcomes.map((o) => o.event).sort()).toEqual(['in_sync', 'remediated']);
    expect(outcomes[0]!.pid).not.toBe(outcomes[1]!.pid);
    const { rows } = await db.pool.query(`SELECT last_value::text AS v FROM queue_id_seq`);
    expect(rows[0].v).toBe('60');
  });
});

/*
 * A real streaming standby made with pg_basebackup -R from a primary of this test's own, listed
 * first in the URL, as an HA setup lists its hosts. The standby logs every connection, so its log
 * shows how often seqwatch knocks, and any statement seqwatch would run there.
 */
describe.runIf(findSystemBinaries())('a real streaming standby (pg_basebackup -R) listed first', () => {
  let primary: ThrowawayPostgres;
  let standby: Standby;
  let primaryHost: string;
  let log: string;

  beforeAll(async () => {
    primary = await startLocalPostgres({ logLinePrefix: '%m [%p] ' });
    primaryHost = new URL(primary.url).host;
    await sql(primary.url, `CREATE TABLE ticket (id bigserial PRIMARY KEY); CREATE TABLE queue (id serial PRIMARY KEY);`);
    standby = await startStandby(primary);
    log = join(mkdtempSync(join(tmpdir(), 'seqwatch-standby-app-')), 'app.log');
    writeFileSync(log, '');
  }, 120_000);
  afterEach(async () => {
    await Promise.all(running.splice(0).map((d) => d.stop('SIGKILL')));
  });
  afterAll(async () => {
    await standby?.destroy();
    await primary?.destroy();
  });

  const seqwatchLines = (text: string) => text.split('\n').filter((l) => l.includes('application_name=seqwatch'));
  const errorLines = (text: string) => text.split('\n').filter((l) => /\b(ERROR|FATAL|STATEMENT):/.test(l));

  it('target_session_attrs=read-write: heals the primary; nothing is checked, planned or fixed on the standby', async () => {
    await sql(primary.url, 'INSERT INTO ticket (id) SELECT generate_series(1, 30)');
    await standby.caughtUp(primary.url);
    const standbyLogAt = standby.log().length;
    const d = await startDaemon({
      database: { url: `postgresql://postgres@${standby.host},${primaryHost}/postgres?target_session_attrs=read-write` },
      sources: [{ path: log, log_line_prefix: '%m [%p] ' }],
      remediation: { debounce_ms: 100, dry_run: false },
    });
    running.push(d);
    appendFileSync(log, duplicateKeyLine('ticket_pkey'));
    const healed = await d.waitForAudit('ticket remediated on the primary', (r) => r.event === 'remediated' && r.table === 'public.ticket', 20_000);
    expect(healed).toMatchObject({ before: '1', after: '30' });
    expect((await sql(primary.url, 'SELECT last_value::text AS v FROM ticket_id_seq')).rows[0].v).toBe('30');
    expect(d.audit().filter((r) => r.event === 'in_sync')).toEqual([]);
    await new Promise((r) => setTimeout(r, 1_000));
    const onStandby = standby.log().slice(standbyLogAt);
    // The probe that found it in recovery, and nothing else: no statement, no error.
    expect(seqwatchLines(onStandby).length).toBeLessThanOrEqual(2);
    expect(errorLines(onStandby)).toEqual([]);
    // check and fix, with the same URL, work on the primary too, and send the standby nothing.
    await sql(primary.url, 'INSERT INTO queue (id) SELECT generate_series(1, 7)');
    await standby.caughtUp(primary.url);
    const check = await runCli('check', '--table', 'queue', '-c', d.configPath);
    expect(check.code).toBe(1);
    const fix = await runCli('fix', '--table', 'queue', '-c', d.configPath);
    expect(fix.code).toBe(0);
    expect((await sql(primary.url, 'SELECT last_value::text AS v FROM queue_id_seq')).rows[0].v).toBe('7');
    await sql(primary.url, 'TRUNCATE queue; ALTER SEQUENCE queue_id_seq RESTART');
    expect(errorLines(standby.log().slice(standbyLogAt))).toEqual([]);
    // doctor names the standby it passes over, and connects to the primary.
    const doctor = await runCli('doctor', '-c', d.configPath);
    expect(doctor.stdout).toMatch(new RegExp(`ok\\s+${standby.host} is a standby \\(in recovery\\): .*passes over it`));
    expect(doctor.stdout).toContain(`on ${primaryHost}`);
  });

  it('only the standby answering: waits with backoff, checks nothing there, says why, and the standby log stays quiet', async () => {
    await sql(primary.url, 'INSERT INTO queue (id) SELECT generate_series(1, 40)');
    await standby.caughtUp(primary.url);
    const port = await freePort();
    const d = await startDaemon({
      database: { url: `postgresql://postgres@${standby.host}/postgres?target_session_attrs=read-write` },
      sources: [{ path: log, log_line_prefix: '%m [%p] ' }],
      remediation: { debounce_ms: 100, dry_run: false },
      metrics: { listen: `127.0.0.1:${port}` },
    });
    running.push(d);
    const standbyLogAt = standby.log().length;
    const from = Date.now();
    appendFileSync(log, duplicateKeyLine('queue_pkey'));
    const failed = await d.waitForAudit('failed, retrying', (r) => r.event === 'failed' && r.retrying === true, 20_000);
    expect(failed.error).toMatch(/standby|recovery/);
    await new Promise((r) => setTimeout(r, 10_000));
    const onStandby = standby.log().slice(standbyLogAt);
    const attempts = seqwatchLines(onStandby).length;
    const seconds = (Date.now() - from) / 1000;
    console.log(`standby only: ${attempts} connection attempts in ${seconds.toFixed(1)} s (${(attempts / seconds).toFixed(2)}/s)`);
    // Backoff 0.5 s doubling to 5 s: about 7 in 10 s (plus the health check's, which waits its turn).
    expect(attempts).toBeLessThanOrEqual(15);
    expect(errorLines(onStandby)).toEqual([]);
    expect(d.audit().filter((r) => ['in_sync', 'remediated', 'planned'].includes(r.event))).toEqual([]);
    // Unhealthy, and it says why, with the fix.
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(503);
    expect(JSON.stringify(await health.json())).toMatch(/standby/);
    const alert = await d.waitForAudit('the alert', (r) => r.event === 'alert' && r.reason === 'database_standby', 10_000);
    expect(alert.msg).toMatch(/recovery|standby/);
    expect(d.alive()).toBe(true);

    // doctor says the configured server is a standby, with the fix, and exits 1.
    const doctor = await runCli('doctor', '-c', d.configPath);
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toMatch(new RegExp(`FIX\\s+${standby.host} is a standby \\(in recovery\\)`));
    expect(doctor.stdout).toContain('target_session_attrs=read-write');

    // The failover: the standby is promoted. Within the backoff's 5 s the daemon heals there.
    await standby.promote();
    const healed = await d.waitForAudit('queue remediated on the promoted server', (r) => r.event === 'remediated' && r.table === 'public.queue', 20_000);
    expect(healed).toMatchObject({ after: '40' });
    await waitUntil('healthy again', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200, 15_000);
  }, 90_000);
});
