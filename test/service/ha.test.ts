import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { endpointsOf } from '../../src/db/Database.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { duplicateKeyLine, freePort, startDaemon, type RunningDaemon } from '../helpers/daemon.js';

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
    const outcome = (d: RunningDaemon) =>
      d.waitForAudit('queue outcome', (r) => ['remediated', 'in_sync'].includes(r.event) && r.table === 'public.queue');
    const outcomes = await Promise.all([outcome(a), outcome(b)]);
    expect(outcomes.map((o) => o.event).sort()).toEqual(['in_sync', 'remediated']);
    expect(outcomes[0]!.pid).not.toBe(outcomes[1]!.pid);
    const { rows } = await db.pool.query(`SELECT last_value::text AS v FROM queue_id_seq`);
    expect(rows[0].v).toBe('60');
  });
});
