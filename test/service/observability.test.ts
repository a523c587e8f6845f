import { appendFileSync, chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { duplicateKeyLine, freePort, startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';

describe('metrics, health and notifications', () => {
  let db: TestDatabase;
  let daemon: RunningDaemon;
  let hook: Server;
  const received: Array<{ event: string; table?: string }> = [];
  let hookCalls = 0;
  let port: number;
  let dir: string;
  let appLog: string;

  beforeAll(async () => {
    db = await createTestDatabase('obs');
    await db.pool.query(`CREATE TABLE ticket (id bigserial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 25);
                         CREATE TABLE queue (id serial PRIMARY KEY); INSERT INTO queue (id) SELECT generate_series(1, 5);`);
    // A webhook receiver that fails the first delivery: seqwatch must retry.
    hook = createServer((request, response) => {
      let body = '';
      request.on('data', (c: Buffer) => (body += c.toString()));
      request.on('end', () => {
        if (hookCalls++ === 0) {
          response.writeHead(503).end();
          return;
        }
        received.push(JSON.parse(body));
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', () => resolve()));
    dir = mkdtempSync(join(tmpdir(), 'seqwatch-obs-'));
    appLog = join(dir, 'app.log');
    writeFileSync(appLog, '');
    const script = join(dir, 'notify.sh');
    writeFileSync(script, `#!/bin/sh\ncat >> "${join(dir, 'command.jsonl')}"\necho "$SEQWATCH_EVENT $SEQWATCH_TABLE" >> "${join(dir, 'command.env')}"\n`);
    chmodSync(script, 0o755);
    port = await freePort();
    daemon = await startDaemon({
      database: { url: db.url },
      sources: [{ path: appLog, log_line_prefix: '%m [%p] ' }],
      remediation: { debounce_ms: 50, sweep_interval: '1h' },
      metrics: { listen: `127.0.0.1:${port}` },
      notify: {
        events: ['remediated', 'alert'],
        webhook: { url: `http://127.0.0.1:${(hook.address() as { port: number }).port}/seqwatch`, timeout_ms: 2000, retries: 3 },
        command: [script],
      },
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    hook?.close();
    await db?.drop();
  });

  it('sweeps at start: drift nobody hit yet is healed and audited with the sweep as its trigger', async () => {
    const fixes = await Promise.all([
      daemon.waitForAudit('ticket swept', (r) => r.event === 'remediated' && r.table === 'public.ticket'),
      daemon.waitForAudit('queue swept', (r) => r.event === 'remediated' && r.table === 'public.queue'),
    ]);
    expect(fixes.map((f) => f.trigger)).toEqual([{ source: 'sweep' }, { source: 'sweep' }]);
  });

  it('notifies a webhook (retrying a failed delivery) and runs a command, for each fix', async () => {
    await waitFor('two webhook deliveries', () => received.length >= 2, 15_000);
    expect(received.map((r) => r.event)).toEqual(['remediated', 'remediated']);
    expect(received.map((r) => r.table).sort()).toEqual(['public.queue', 'public.ticket']);
    expect(hookCalls).toBe(3);
    await waitFor('command runs', () => existsSync(join(dir, 'command.env')) && readFileSync(join(dir, 'command.env'), 'utf8').split('\n').length >= 3, 10_000);
    expect(readFileSync(join(dir, 'command.env'), 'utf8')).toContain('remediated public.ticket');
    expect(JSON.parse(readFileSync(join(dir, 'command.jsonl'), 'utf8').split('\n')[0]!)).toMatchObject({ event: 'remediated' });
    // /metrics counts each record once it is settled: both sent (the webhook's after its retry).
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^seqwatch_notifications_total\{result="sent"\} 2$/m);
    expect(metrics).toMatch(/^seqwatch_notifications_total\{result="failed"\} 0$/m);
  });

  it('serves Prometheus metrics and a health check on loopback', async () => {
    await db.pool.query('INSERT INTO ticket (id) VALUES (100)');
    appendFileSync(appLog, duplicateKeyLine('ticket_pkey'));
    await daemon.waitForAudit('ticket healed from the log', (r) => r.event === 'remediated' && r.trigger?.constraint === 'ticket_pkey');
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^seqwatch_audit_events_total\{event="remediated"\} 3$/m);
    expect(metrics).toMatch(/^seqwatch_incidents_total 1$/m);
    expect(metrics).toMatch(new RegExp(`^seqwatch_log_records_total\\{source="${appLog}"\\} 1$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^seqwatch_source_lag_bytes\\{source="${appLog}"\\} 0$`, 'm'));
    expect(metrics).toMatch(/^seqwatch_heal_seconds_count 1$/m);
    expect(metrics).toMatch(new RegExp(`^seqwatch_log_oddities_total\\{source="${appLog}",kind="oversized"\\} 0$`, 'm'));
    expect(metrics).toMatch(/^seqwatch_up 1$/m);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, database: true, sources: true });
  });

  it('cuts off slow clients and caps connections, so a scraper cannot be locked out', async () => {
    // Slowloris: a request whose headers never end, one byte a second.
    const slow = connect(port, '127.0.0.1');
    slow.on('error', () => {});
    await new Promise((resolve) => slow.once('connect', resolve));
    const opened = Date.now();
    slow.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => slow.write('X'), 1_000);
    const closedAfter = await new Promise<number>((resolve) => slow.once('close', () => resolve(Date.now() - opened)));
    clearInterval(drip);
    console.log(`slow client closed after ${closedAfter} ms`);
    expect(closedAfter).toBeLessThan(12_000);
    // 100 idle connections at once: past the cap they are closed at once.
    const idle = await Promise.all(
      Array.from(
        { length: 100 },
        () =>
          new Promise<Socket>((resolve) => {
            const socket = connect(port, '127.0.0.1', () => resolve(socket));
            socket.on('error', () => {});
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 500));
    const stillOpen = idle.filter((socket) => !socket.destroyed && socket.readyState === 'open' && !socket.readableEnded).length;
    console.log(`${stillOpen} of 100 idle connections left open`);
    expect(stillOpen).toBeLessThanOrEqual(32);
    idle.forEach((socket) => socket.destroy());
    await new Promise((r) => setTimeout(r, 200));
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  }, 30_000);

  it('answers /healthz from the last heartbeat, not with a query per request', async () => {
    // Every statement the daemon's sessions start moves their query_start (live, unlike the
    // statistics counters): sampled while 200 requests come in, it shows the queries they caused.
    const seen = new Set<string>();
    let done = false;
    const sampler = (async () => {
      while (!done) {
        const { rows } = await db.pool.query<{ s: string }>(
          "SELECT pid || ' ' || query_start AS s FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'seqwatch' AND query_start IS NOT NULL",
        );
        rows.forEach((row) => seen.add(row.s));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    const before = seen.size;
    const from = Date.now();
    for (let i = 0; i < 200; i++) expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const elapsed = Date.now() - from;
    done = true;
    await sampler;
    // Only the heartbeat's own query (one every 5 s) and the odd other may show; before, each request was one (145 seen).
    expect(seen.size - before).toBeLessThanOrEqual(Math.ceil(elapsed / 5_000) + 3);
  });

  it('refuses a metrics address that is not loopback', async () => {
    const { parseConfig } = await import('../../src/config/config.js');
    expect(() => parseConfig(`sources: [{path: /x}]\nmetrics: {listen: '0.0.0.0:10187'}\n`, 'c.yaml')).toThrow(
      /c\.yaml:2:19: metrics\.listen: a loopback address/,
    );
  });
});
