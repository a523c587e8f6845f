import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findLocalBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { duplicateKeyLine, startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { startNotifyListener, type NotifyListener } from '../helpers/notifyListener.js';

/*
 * A server of its own, since this test stops it. It needs the local binaries: with only an
 * external TEST_DATABASE_URL or Docker, the test cannot stop and start the server, and says so.
 */
describe.runIf(findLocalBinaries())('database outage', () => {
  let server: ThrowawayPostgres;
  let daemon: RunningDaemon | undefined;
  let listener: NotifyListener | undefined;
  let appLog = '';

  beforeAll(async () => {
    server = await startLocalPostgres({ logLinePrefix: '%m [%p] ' });
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    listener?.close();
    await server?.destroy();
  });

  it('survives the server going away during an error storm, and heals once it is back', async () => {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query('CREATE TABLE ticket (id bigserial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 500)');
    await admin.end();
    appLog = join(mkdtempSync(join(tmpdir(), 'seqwatch-outage-')), 'app.log');
    writeFileSync(appLog, '');
    listener = await startNotifyListener();
    daemon = await startDaemon(
      {
        database: { url: server.url },
        sources: [{ path: appLog, log_line_prefix: '%m [%p] ' }],
        remediation: { debounce_ms: 100, dry_run: false },
      },
      { NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '400000' },
    );
    const d = daemon;
    await waitFor('ready', () => listener!.messages().some((m) => m.includes('READY=1')), 10_000);

    await server.stopServer();
    const down = Date.now();
    // The application keeps failing (its log says so) while the database is down.
    for (let i = 0; i < 20; i++) {
      appendFileSync(appLog, Array.from({ length: 100 }, () => duplicateKeyLine('ticket_pkey')).join(''));
      await new Promise((r) => setTimeout(r, 100));
    }
    await d.waitForAudit('the failure, once', (r) => r.event === 'failed' && r.retrying === true);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(d.alive()).toBe(true);
    const pingsWhileDown = listener.messages().length;

    await new Promise((r) => setTimeout(r, 1_000));
    // No watchdog pings while the database does not answer (a few status lines may still go out).
    expect(
      listener
        .messages()
        .slice(pingsWhileDown)
        .filter((m) => m.includes('WATCHDOG=1')),
    ).toEqual([]);
    expect(Date.now() - down).toBeGreaterThan(4_000);

    await server.startServer();
    const healed = await d.waitForAudit('remediated after the restart', (r) => r.event === 'remediated' && r.table === 'public.ticket', 30_000);
    expect(healed).toMatchObject({ before: '1', after: '500' });
    const audit = d.audit();
    expect(audit.filter((r) => r.event === 'failed')).toHaveLength(1);
    expect(audit.filter((r) => r.event === 'remediated')).toHaveLength(1);
    await waitFor(
      'watchdog fed again',
      () =>
        listener!
          .messages()
          .slice(pingsWhileDown)
          .some((m) => m.includes('WATCHDOG=1')),
      15_000,
    );

    const app = new pg.Client({ connectionString: server.url });
    await app.connect();
    expect((await app.query('INSERT INTO ticket DEFAULT VALUES RETURNING id::text AS id')).rows[0].id).toBe('501');
    await app.end();
  });

  it('a storm of distinct names during an outage: 20 waits audited one by one, the rest in one record once the server is back; its log says the outage once', async () => {
    const d = daemon!;
    const audited = d.audit().length;
    const logged = d.stderr().length;
    const sinceOutage = () => d.audit().slice(audited);
    await server.stopServer();
    // Names no index has (a forged or garbled log, or many tables at once): each is looked up, and each lookup waits.
    appendFileSync(appLog, Array.from({ length: 300 }, (_, i) => duplicateKeyLine(`gone_${i}_key`)).join(''));
    await waitFor('20 waits audited', () => sinceOutage().filter((r) => r.event === 'failed').length >= 20, 15_000);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(sinceOutage().filter((r) => r.event === 'failed' && r.retrying === true)).toHaveLength(20);

    await server.startServer();
    const summary = await d.waitForAudit('the waits summed up', (r) => r.event === 'failed' && r.trigger?.source === 'summary', 30_000);
    expect(summary).toMatchObject({ waited: 280, retrying: false });
    expect(String(summary.msg)).toMatch(/^280 more lookups and checks waited for the database/);
    expect(sinceOutage().filter((r) => r.event === 'failed')).toHaveLength(21);
    const said = d
      .stderr()
      .slice(logged)
      .split('\n')
      .filter((line) => line.includes('database unavailable; waiting for it'));
    // The pool's drop says it, and the first wait: not one line per waiting name.
    expect(said.length).toBeLessThanOrEqual(2);
    expect(d.alive()).toBe(true);
  });

  it('stopped while its checks wait for the database: they are given up, and their errors read again at the next start (lose nothing)', async () => {
    await daemon!.stop('SIGKILL');
    const state = join(mkdtempSync(join(tmpdir(), 'seqwatch-outage-state-')), 'state');
    const config = {
      database: { url: server.url },
      sources: [{ path: appLog, log_line_prefix: '%m [%p] ' }],
      remediation: { debounce_ms: 100, dry_run: false },
      state_dir: state,
    };
    const first = await startDaemon(config);
    daemon = first;
    await waitFor('the catalog warm-up', () => first.stderr().includes('catalog warmed'), 10_000);
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`SELECT setval('ticket_id_seq', 1)`);
    await admin.end();
    await server.stopServer();
    appendFileSync(appLog, duplicateKeyLine('ticket_pkey'));
    await first.waitForAudit('the check waits', (r) => r.event === 'failed' && r.retrying === true && r.sequence === 'public.ticket_id_seq', 15_000);
    // The stop's grace period (10 s) passes with the database still away: the check is given up.
    expect(await first.stop('SIGTERM')).toBe(0);
    expect(first.audit().filter((r) => r.event === 'skipped' && r.reason === 'shutdown')).toHaveLength(1);

    await server.startServer();
    const second = await startDaemon(config);
    daemon = second;
    // Its checkpoint was held by the error given up: read again, and healed.
    const healed = await second.waitForAudit('healed at the next start', (r) => r.event === 'remediated' && r.table === 'public.ticket', 20_000);
    expect(healed).toMatchObject({ before: '1', trigger: { constraint: 'ticket_pkey' } });
  }, 60_000);
});
