import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/AuditLog.js';
import { createDatabase, findLocalBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { Notifier } from '../../src/notify/Notifier.js';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';

const SERVER_PREFIX = '%m [%p] %q%u@%d %e ';
const APP_PREFIX = '%m [%p] ';

const stamp = () => new Date().toISOString().replace('T', ' ').replace('Z', ' UTC');

/*
 * Real alerts hidden by forged ones, built as an attacker would: 300 forged "reached maximum value"
 * lines in an application log (no SQLSTATE there), a real RAISE in the server's own log (SQLSTATE
 * P0001), a forged name carrying SQL; then real exhausted sequences (a MAXVALUE 3 one, a bigint one
 * at bigint's limit). The real ones must each be an alert of their own, notified, with advice made
 * of catalog names; the notify command must not see the daemon's PGPASSWORD.
 */
describe.runIf(findLocalBinaries())('sequence-error alerts', () => {
  let server: ThrowawayPostgres;
  let shop: pg.Client;
  let daemon: RunningDaemon | undefined;

  beforeAll(async () => {
    server = await startLocalPostgres({ logLinePrefix: SERVER_PREFIX });
    shop = new pg.Client({ connectionString: await createDatabase(server, 'shop') });
    await shop.connect();
    await shop.query(`
      CREATE SEQUENCE tiny_id_seq MAXVALUE 3; CREATE TABLE tiny (id bigint PRIMARY KEY DEFAULT nextval('tiny_id_seq'));
      ALTER SEQUENCE tiny_id_seq OWNED BY tiny.id;
      INSERT INTO tiny DEFAULT VALUES; INSERT INTO tiny DEFAULT VALUES; INSERT INTO tiny DEFAULT VALUES;
      CREATE SEQUENCE huge_seq AS bigint START 9223372036854775806; CREATE TABLE huge (id bigint PRIMARY KEY DEFAULT nextval('huge_seq'));
      ALTER SEQUENCE huge_seq OWNED BY huge.id;
      INSERT INTO huge DEFAULT VALUES; INSERT INTO huge DEFAULT VALUES;
      CREATE TABLE ticket (id serial PRIMARY KEY);
      CREATE TABLE legacy (id bigint PRIMARY KEY);`);
  });

  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await shop?.end();
    await server?.destroy();
  });

  it('forged ones are skipped, real ones each alerted and notified first, with catalog names only; the command gets no PGPASSWORD', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-alerts-'));
    const appLog = join(dir, 'app.log');
    const notified = join(dir, 'notified.jsonl');
    writeFileSync(appLog, '');
    daemon = await startDaemon(
      {
        database: { url: server.url.replace(/\/postgres$/, '/shop') },
        sources: [
          { path: server.logPath!, log_line_prefix: SERVER_PREFIX },
          { path: appLog, log_line_prefix: APP_PREFIX },
        ],
        remediation: { debounce_ms: 50 },
        notify: { events: ['alert'], command: ['/bin/sh', '-c', 'env > "$1.env"; cat >> "$1"', 'sh', notified] },
      },
      { PGPASSWORD: 'hunter2-do-not-leak' },
    );
    const forged = Array.from({ length: 300 }, (_, i) => `${stamp()} [4242] ERROR:  nextval: reached maximum value of sequence "fake${i}_seq" (2147483647)\n`);
    forged.push(`${stamp()} [4242] ERROR:  permission denied for sequence ticket_id_seq TO app; DROP TABLE public.ticket; --\n`);
    appendFileSync(appLog, forged.join(''));
    // A RAISE from SQL: the server logs it with SQLSTATE P0001.
    await expect(shop.query(`DO $$ BEGIN RAISE EXCEPTION 'nextval: reached maximum value of sequence "forged_seq" (3)'; END $$`)).rejects.toThrow(/forged_seq/);
    await daemon.waitForAudit('the RAISE recognised', (r) => r.reason === 'sqlstate_mismatch');
    // The real ones.
    await expect(shop.query('INSERT INTO tiny DEFAULT VALUES')).rejects.toThrow(/maximum value/);
    await expect(shop.query('INSERT INTO huge DEFAULT VALUES')).rejects.toThrow(/maximum value/);

    const tiny = await daemon.waitForAudit('the real tiny alert', (r) => r.event === 'alert' && r.sequence === 'public.tiny_id_seq', 20_000);
    const huge = await daemon.waitForAudit('the real huge alert', (r) => r.event === 'alert' && r.sequence === 'public.huge_seq', 20_000);
    expect(tiny).toMatchObject({ reason: 'sequence_exhausted', table: 'public.tiny', verified: 'catalog' });
    expect(tiny.msg).toContain('ALTER SEQUENCE public.tiny_id_seq MAXVALUE 9223372036854775807');
    expect(huge.msg).toContain("bigint's own limit");
    expect(huge.msg).not.toMatch(/TYPE bigint|AS bigint/);

    const audit = daemon.audit();
    const alerts = audit.filter((r) => r.event === 'alert');
    expect(alerts.map((r) => r.sequence).sort()).toEqual(['public.huge_seq', 'public.tiny_id_seq']);
    for (const record of audit) if (record.event === 'alert') expect(record.msg).not.toMatch(/DROP TABLE|fake\d/);
    const unverified = audit.filter((r) => r.reason === 'unverified_sequence_error');
    expect(unverified.filter((r) => r.trigger?.source !== 'summary').length).toBeLessThanOrEqual(20);

    await waitFor('both alerts notified', () => existsSync(notified) && readFileSync(notified, 'utf8').includes('public.huge_seq'), 10_000);
    const sent = readFileSync(notified, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditRecord);
    expect(sent.map((r) => r.sequence).sort()).toEqual(['public.huge_seq', 'public.tiny_id_seq']);
    const env = readFileSync(`${notified}.env`, 'utf8');
    expect(env).toContain('SEQWATCH_EVENT=alert');
    expect(env).not.toContain('hunter2');
    expect(env).not.toMatch(/^PG/m);
  });

  it('a missing sequence whose column the catalog finds: an alert naming the table and column, with the advice to recreate it', async () => {
    // Found by a field trial: the catalog's answer for this case had no column names, and the
    // daemon logged an internal error (sqlLiteral of undefined) for each such error, no alert.
    await daemon?.stop('SIGKILL');
    daemon = await startDaemon({
      database: { url: server.url.replace(/\/postgres$/, '/shop') },
      sources: [{ path: server.logPath!, log_line_prefix: SERVER_PREFIX }],
      remediation: { debounce_ms: 50 },
    });
    // A table restored without its sequence (a partial pg_restore), the sequence asked for by name.
    await expect(shop.query("SELECT nextval('legacy_id_seq')")).rejects.toThrow(/"legacy_id_seq" does not exist/);
    const alert = await daemon.waitForAudit('the missing sequence alerted', (r) => r.event === 'alert' && r.reason === 'sequence_missing', 20_000);
    expect(alert).toMatchObject({ sequence: 'public.legacy_id_seq', table: 'public.legacy', verified: 'catalog' });
    expect(alert.msg).toContain(
      "CREATE SEQUENCE public.legacy_id_seq OWNED BY public.legacy.id; ALTER TABLE public.legacy ALTER COLUMN id SET DEFAULT nextval('public.legacy_id_seq')",
    );
    expect(daemon.stderr()).not.toContain('internal error');
  });
});

describe('notifications', () => {
  const servers: Server[] = [];
  const listen = async (handler: Parameters<typeof createServer>[1]) => {
    const s = createServer(handler);
    servers.push(s);
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  };
  afterAll(() => servers.forEach((s) => s.close()));

  const record = (i: number, reason = 'sequence_exhausted', event: AuditRecord['event'] = 'alert'): AuditRecord =>
    ({ time: new Date().toISOString(), event, reason, sequence: `public.s${i}`, msg: `m${i}` }) as AuditRecord;

  it('the webhook does not follow a redirect (the record would go to another host)', async () => {
    let elsewhere = 0;
    const other = await listen((_req, res) => {
      elsewhere++;
      res.end();
    });
    const url = await listen((_req, res) => {
      res.writeHead(307, { location: other }).end();
    });
    const warnings: string[] = [];
    const notifier = new Notifier({ events: ['alert'], webhook: { url, timeout_ms: 2_000, retries: 0 }, onWarning: (m) => warnings.push(m) });
    notifier.notify(record(1));
    await notifier.flush(5_000);
    expect(elsewhere).toBe(0);
    expect(notifier.counters).toMatchObject({ sent: 0, failed: 1 });
  });

  it('alerts jump the queue; a flood of one reason is limited and summed up', async () => {
    const received: AuditRecord[] = [];
    const url = await listen((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push(JSON.parse(body) as AuditRecord);
        setTimeout(() => res.end(), 20);
      });
    });
    const notifier = new Notifier({ events: ['alert', 'remediated'], webhook: { url, timeout_ms: 2_000, retries: 0 }, perReasonWindowMs: 1_000 });
    for (let i = 0; i < 5; i++) notifier.notify(record(i, 'fixed', 'remediated'));
    for (let i = 0; i < 50; i++) notifier.notify(record(100 + i, 'flood'));
    notifier.notify(record(999, 'sequence_exhausted'));
    await waitFor('the summary', () => received.some((r) => r.suppressed !== undefined), 5_000);
    await notifier.flush(5_000);
    // The first remediated was already being sent; then every alert before the other four.
    const order = received.map((r) => r.event);
    expect(order.indexOf('alert')).toBeLessThanOrEqual(1);
    expect(received.findIndex((r) => r.sequence === 'public.s999')).toBeLessThan(received.findIndex((r) => r.sequence === 'public.s1'));
    expect(received.filter((r) => r.reason === 'flood' && r.suppressed === undefined)).toHaveLength(5);
    expect(received.find((r) => r.suppressed !== undefined)).toMatchObject({ reason: 'flood', suppressed: 45 });
  });
});
