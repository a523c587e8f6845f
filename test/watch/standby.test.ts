import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, findSystemBinaries, freePort, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';

const run = promisify(execFile);
const asRoot = process.getuid?.() === 0;
/** As the postgres user when root (initdb, pg_basebackup and pg_ctl refuse root). */
const asPostgres = (command: string, args: string[]) => (asRoot ? run('runuser', ['-u', 'postgres', '--', command, ...args]) : run(command, args));

/*
 * A real streaming standby (pg_basebackup -R) of a primary whose table lags: the watch pointed at
 * the standby checks nothing there and says so (an alert); once the standby is promoted, the first
 * look on the new primary checks everything and heals the table.
 */
describe.runIf(findSystemBinaries())('the watch on a standby', () => {
  let primary: ThrowawayPostgres;
  let standbyDir: string;
  let standbyPort: number;
  let daemon: RunningDaemon | undefined;
  const bin = (name: string) => join(findSystemBinaries()!, name);

  beforeAll(async () => {
    primary = await startLocalPostgres();
    const url = await createDatabase(primary, 'app');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`CREATE TABLE ticket (id serial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 25)`);
    await client.end();
    const base = mkdtempSync(join(tmpdir(), 'seqwatch-standby-'));
    chmodSync(base, 0o755);
    standbyDir = join(base, 'data');
    if (asRoot) chownSync(base, Number((await run('id', ['-u', 'postgres'])).stdout), Number((await run('id', ['-g', 'postgres'])).stdout));
    const port = new URL(primary.url).port;
    await asPostgres(bin('pg_basebackup'), ['-D', standbyDir, '-R', '-X', 'stream', '-c', 'fast', '-h', '127.0.0.1', '-p', port, '-U', 'postgres']);
    standbyPort = await freePort();
    await asPostgres(bin('pg_ctl'), ['start', '-w', '-t', '60', '-D', standbyDir, '-l', join(base, 'standby.log'), '-o', `-p ${standbyPort}`]);
  });

  afterAll(async () => {
    await daemon?.stop();
    if (standbyDir) {
      await asPostgres(bin('pg_ctl'), ['stop', '-w', '-m', 'fast', '-D', standbyDir]).catch(() => {});
      rmSync(join(standbyDir, '..'), { recursive: true, force: true });
    }
    await primary?.destroy();
  });

  it('checks nothing on the standby, alerts once, and heals once it is promoted', async () => {
    const standbyUrl = `postgresql://postgres@127.0.0.1:${standbyPort}/app`;
    daemon = await startDaemon({ database: { url: standbyUrl }, sources: [], watch: { interval: '500ms' } });
    // The daemon uses no server in recovery at all (src/db/Database.ts): the health reporter says so
    // once (database_standby); the watch's own alert is for a server that becomes a standby later.
    const standbyAlert = (r: { event: string; reason?: unknown }) => r.event === 'alert' && (r.reason === 'standby' || r.reason === 'database_standby');
    const alert = await daemon.waitForAudit('the standby alert', standbyAlert, 15_000);
    expect(alert.msg).toContain('standby');
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(daemon.audit().filter((r) => ['remediated', 'in_sync', 'planned', 'failed'].includes(r.event))).toEqual([]);
    expect(daemon.audit().filter(standbyAlert)).toHaveLength(1);
    const { rows } = await (async () => {
      const c = new pg.Client({ connectionString: primary.url.replace(/\/postgres$/, '/app') });
      await c.connect();
      const r = await c.query<{ is_called: boolean }>('SELECT is_called FROM ticket_id_seq');
      await c.end();
      return r;
    })();
    expect(rows[0]!.is_called).toBe(false);

    await asPostgres(bin('pg_ctl'), ['promote', '-w', '-D', standbyDir]);
    const healed = await daemon.waitForAudit(
      'healed on the promoted server',
      (r) => r.event === 'remediated' && r.table === 'public.ticket' && r.trigger?.source === 'watch',
      20_000,
    );
    expect(healed).toMatchObject({ after: '25' });
  });
});
