import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, findLocalBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { readAudit, runCli, startDaemon, type RunningDaemon } from '../helpers/daemon.js';

const PREFIX = '%m [%p] %q%u@%d ';

/*
 * The confused deputy, built as the attacker builds it: a real unprivileged role `mallory`, with no
 * privilege at all on the help desk's `public.ticket_id_seq`, creates her own table whose DEFAULT
 * names that sequence, lets seqwatch read it, and writes 2147483646 twice: a real duplicate key
 * error in the server's own log. seqwatch runs as the least-privileged role of
 * config/seqwatch-role.sql. The daemon (error and sweep), `check` and `fix --all` must all leave the
 * help desk's sequence where it is.
 */
describe.runIf(findLocalBinaries())('the trust rule against a confused deputy', () => {
  let server: ThrowawayPostgres;
  let admin: pg.Client;
  let mallory: pg.Client;
  let daemon: RunningDaemon | undefined;
  let seqwatchUrl: string;

  const ticketSeq = async () => (await admin.query<{ v: string }>(`SELECT last_value::text || ':' || is_called AS v FROM public.ticket_id_seq`)).rows[0]!.v;

  beforeAll(async () => {
    server = await startLocalPostgres({ logLinePrefix: PREFIX });
    const shopUrl = await createDatabase(server, 'shop');
    admin = new pg.Client({ connectionString: shopUrl });
    await admin.connect();
    await admin.query(`
      CREATE ROLE app LOGIN;
      CREATE TABLE ticket (id serial PRIMARY KEY, title text);
      ALTER TABLE ticket OWNER TO app;
      INSERT INTO ticket (title) SELECT 't' || g FROM generate_series(1, 100) g;
      CREATE ROLE seqwatch LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
      GRANT CONNECT ON DATABASE shop TO seqwatch;
      GRANT USAGE ON SCHEMA public TO seqwatch;
      GRANT SELECT ON ALL TABLES IN SCHEMA public TO seqwatch;
      GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO seqwatch;
      CREATE ROLE mallory LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
      GRANT CREATE ON DATABASE shop TO mallory;`);
    const url = new URL(shopUrl);
    url.username = 'mallory';
    mallory = new pg.Client({ connectionString: url.toString() });
    await mallory.connect();
    url.username = 'seqwatch';
    seqwatchUrl = url.toString();
  });

  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await Promise.all([admin?.end(), mallory?.end()]);
    await server?.destroy();
  });

  it('mallory has no privilege on the help desk sequence (the premise)', async () => {
    await expect(mallory.query(`SELECT nextval('public.ticket_id_seq')`)).rejects.toThrow(/permission denied/);
    expect(await ticketSeq()).toBe('100:true');
  });

  it('daemon, sweep, check and fix --all leave ticket_id_seq alone', async () => {
    daemon = await startDaemon({
      database: { url: seqwatchUrl },
      sources: [{ path: server.logPath!, log_line_prefix: PREFIX }],
      remediation: { debounce_ms: 50, cooldown: '0s', sweep_interval: '1s' },
    });
    await mallory.query(`
      CREATE SCHEMA mallory;
      CREATE TABLE mallory.t (id integer DEFAULT nextval('public.ticket_id_seq') PRIMARY KEY);
      GRANT USAGE ON SCHEMA mallory TO seqwatch;
      GRANT SELECT ON mallory.t TO seqwatch;
      INSERT INTO mallory.t VALUES (2147483646);`);
    await expect(mallory.query('INSERT INTO mallory.t VALUES (2147483646)')).rejects.toThrow(/t_pkey/);

    const decided = await daemon.waitForAudit('a decision on mallory.t', (r) => r.table === 'mallory.t' && r.event !== 'detected', 15_000);
    // A few sweeps (every second) pass over it too.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await ticketSeq()).toBe('100:true');
    expect(decided).toMatchObject({ event: 'skipped', reason: 'untrusted_sequence', sequence: 'public.ticket_id_seq' });
    expect(daemon.audit().filter((r) => r.event === 'remediated')).toEqual([]);

    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-trust-'));
    const config = join(dir, 'seqwatch.yaml');
    writeFileSync(
      config,
      stringify({ database: { url: seqwatchUrl }, sources: [{ path: server.logPath! }], audit: { path: join(dir, 'audit.jsonl') }, state_dir: dir }),
    );
    const check = await runCli('check', '-c', config, '--json');
    expect(JSON.parse(check.stdout).sequences.map((s: { table: string }) => s.table)).toEqual(['public.ticket']);
    expect(check.code).toBe(0);
    const fix = await runCli('fix', '--all', '-c', config);
    expect(fix.code).toBe(0);
    expect(await ticketSeq()).toBe('100:true');
    expect(readAudit(join(dir, 'audit.jsonl')).filter((r) => r.event === 'remediated')).toEqual([]);

    // The help desk still creates tickets.
    await admin.query(`SET ROLE app; INSERT INTO ticket (title) VALUES ('after'); RESET ROLE`);
    expect(await ticketSeq()).toBe('101:true');
  });
});
