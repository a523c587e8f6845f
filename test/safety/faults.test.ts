import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, findLocalBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { duplicateKeyLine, readAudit, runCli, startDaemon, waitFor, waitUntil, type RunningDaemon } from '../helpers/daemon.js';
import { random } from '../helpers/random.js';

const TABLES = Array.from({ length: 12 }, (_, i) => `t${i}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/*
 * Faults while fixes are under way: connections killed, the server restarted, the log deleted, the
 * audit log's disk full, the daemon itself killed -9 again and again. A server of its own (the test
 * restarts it); every client of the test connects afresh, so that it survives what it inflicts.
 */
describe.runIf(findLocalBinaries())('faults', () => {
  let server: ThrowawayPostgres;
  let url: string;
  const daemons: RunningDaemon[] = [];

  /** Runs one statement on a connection of its own; undefined when the server is away. */
  async function sql<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[] | undefined> {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      return (await client.query<R>(text, values)).rows;
    } catch {
      return undefined;
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** An import with explicit ids: the table's MAX moves 20 past its sequence. */
  const drift = (table: string) => sql(`INSERT INTO ${table} (id) SELECT max(id) + g FROM ${table}, generate_series(1, 20) g GROUP BY g`);

  /** Per table: the next value the sequence hands out, and the table's MAX. */
  async function state(): Promise<Map<string, { next: number; max: number }> | undefined> {
    const query = TABLES.map(
      (t) =>
        `SELECT '${t}' AS t, (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM ${t}_id_seq)::int8::text AS next, (SELECT max(id) FROM ${t})::text AS max`,
    ).join(' UNION ALL ');
    const rows = await sql<{ t: string; next: string; max: string }>(query);
    return rows && new Map(rows.map((r) => [r.t, { next: Number(r.next), max: Number(r.max) }]));
  }

  const allHealed = async () => {
    const s = await state();
    return s !== undefined && [...s.values()].every(({ next, max }) => next > max);
  };

  /**
   * Reads every sequence every 20 ms until stopped; the promise rejects if one ever went down.
   */
  function sampleSequences(): { stop: () => Promise<number> } {
    let running = true;
    const seen = new Map<string, number>();
    let samples = 0;
    const done = (async () => {
      while (running) {
        const s = await state();
        if (s) {
          samples++;
          for (const [table, { next }] of s) {
            const previous = seen.get(table) ?? -Infinity;
            if (next < previous) throw new Error(`${table}_id_seq went backwards: ${previous} -> ${next}`);
            seen.set(table, next);
          }
        }
        await sleep(20);
      }
      return samples;
    })();
    return {
      stop: async () => {
        running = false;
        return done;
      },
    };
  }

  beforeAll(async () => {
    server = await startLocalPostgres({ logLinePrefix: '%m [%p] ' });
    url = await createDatabase(server, 'faults');
    await sql(TABLES.map((t) => `CREATE TABLE ${t} (id bigserial PRIMARY KEY); INSERT INTO ${t} (id) SELECT generate_series(1, 100);`).join('\n'));
  });

  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
    await server?.destroy();
  });

  const logFile = (name: string) => {
    const path = join(mkdtempSync(join(tmpdir(), 'seqwatch-faults-')), name);
    writeFileSync(path, '');
    return path;
  };

  const config = (appLog: string, extra: Record<string, unknown> = {}) => ({
    database: { url },
    sources: [{ path: appLog, log_line_prefix: '%m [%p] ' }],
    remediation: { debounce_ms: 50, cooldown: '0s', max_fixes_per_hour: 10_000 },
    ...extra,
  });

  it('heals through pg_terminate_backend of its connections and a server restart during fixes', async () => {
    const appLog = logFile('app.log');
    const daemon = await startDaemon(config(appLog));
    daemons.push(daemon);
    const sampler = sampleSequences();
    const rng = random(6);
    let terminated = 0;
    const started = Date.now();
    let restarted = false;
    while (Date.now() - started < 8_000) {
      const table = TABLES[Math.floor(rng() * TABLES.length)]!;
      await drift(table);
      appendFileSync(appLog, duplicateKeyLine(`${table}_pkey`));
      if (rng() < 0.3) {
        const killed = await sql<{ n: number }>("SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = 'seqwatch'");
        terminated += killed?.[0]?.n ?? 0;
      }
      if (!restarted && Date.now() - started > 3_000) {
        restarted = true;
        await server.stopServer();
        await sleep(1_000);
        await server.startServer();
      }
      await sleep(30 + rng() * 70);
    }
    // A last error for every table: whatever the faults interrupted is healed now.
    for (const table of TABLES) appendFileSync(appLog, duplicateKeyLine(`${table}_pkey`));
    await waitUntil('every table healed', allHealed, 30_000).catch(async (error) => {
      console.error(
        JSON.stringify([...(await state())!]),
        daemon
          .audit()
          .slice(-30)
          .map((r) => JSON.stringify(r))
          .join('\n'),
        daemon.stderr().slice(-3000),
      );
      throw error;
    });
    const samples = await sampler.stop();

    expect(daemon.alive()).toBe(true);
    expect(terminated).toBeGreaterThan(3);
    // The sampler checked throughout the faults (every 20 ms plus its query; on a loaded machine a
    // query took 100-200 ms and the server is down for a second): more than one sample per 400 ms.
    expect(samples).toBeGreaterThan(20);
    const audit = daemon.audit();
    expect(audit.filter((r) => r.event === 'remediated').length).toBeGreaterThan(TABLES.length);
    expect(audit.some((r) => r.event === 'failed' && r.retrying === true)).toBe(true);
    expect(daemon.stderr()).not.toMatch(/internal error/);
    expect((await runCli('audit', 'verify', '-f', daemon.auditPath)).code).toBe(0);
    console.info(
      `faults: ${terminated} connections terminated, 1 restart, ${audit.filter((r) => r.event === 'remediated').length} fixes, ${audit.filter((r) => r.event === 'failed').length} failed (retried), ${samples} samples, none backwards`,
    );
    await daemon.stop();
  });

  it('keeps following a log that is deleted, and reads it again once it is recreated', async () => {
    const appLog = logFile('app.log');
    const daemon = await startDaemon(config(appLog));
    daemons.push(daemon);
    appendFileSync(appLog, 'ordinary line\n');
    rmSync(appLog);
    await sleep(1_500);
    expect(daemon.alive()).toBe(true);
    await drift('t0');
    writeFileSync(appLog, duplicateKeyLine('t0_pkey'));
    await daemon.waitForAudit('t0 healed from the recreated file', (r) => r.event === 'remediated' && r.table === 'public.t0');
    await daemon.stop();
  });

  // A real full file system (a small tmpfs): the audit file is a regular file of the daemon's own,
  // never a link or a device (seqwatch refuses those), so only a real disk can fill. Root only.
  it.runIf(process.getuid?.() === 0)('keeps healing when the audit log cannot be written, says so loudly, and writes what it held once it can', async () => {
    const appLog = logFile('app.log');
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-auditfull-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k,mode=0755', 'tmpfs', dir]);
    try {
      const path = join(dir, 'audit.jsonl');
      const filler = join(dir, 'filler');
      const daemon = await startDaemon(config(appLog, { audit: { path } }));
      daemons.push(daemon);

      // The disk fills: logrotate moves the file away, the new one gets no block (ENOSPC).
      renameSync(path, `${path}.1`);
      try {
        writeFileSync(filler, Buffer.alloc(1024 * 1024));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      }
      daemon.child.kill('SIGHUP');
      await sleep(500);
      await drift('t1');
      appendFileSync(appLog, duplicateKeyLine('t1_pkey'));
      await waitFor('the loud error', () => /cannot write the audit log \(ENOSPC/.test(daemon.stderr()), 10_000);
      await waitFor('the fix, logged by the daemon itself', () => /decision not yet in the audit log: remediated/.test(daemon.stderr()), 10_000);
      await waitUntil('t1 healed', async () => {
        const s = await state();
        return s !== undefined && s.get('t1')!.next > s.get('t1')!.max;
      });
      const health = () => JSON.parse(readFileSync(join(daemon.dir, 'state', 'health.json'), 'utf8')) as { ok: boolean; audit: boolean };
      await waitFor('health reporting the audit log', () => existsSync(join(daemon.dir, 'state', 'health.json')) && health().audit === false, 12_000);
      expect((await runCli('health', '-c', daemon.configPath)).stderr).toMatch(/audit log cannot be written/);
      expect(readAudit(`${path}.1`).some((r) => r.event === 'remediated')).toBe(false);

      // Space again (the operator freed some): the held records land.
      rmSync(filler);
      daemon.child.kill('SIGHUP');
      await waitFor('the held records written', () => existsSync(path) && readAudit(path).some((r) => r.reason === 'audit_unwritable'), 10_000);
      const written = readAudit(path);
      expect(written.find((r) => r.event === 'remediated')).toMatchObject({ table: 'public.t1' });
      expect(written.findIndex((r) => r.event === 'remediated')).toBeLessThan(written.findIndex((r) => r.reason === 'audit_unwritable'));
      expect((await runCli('audit', 'verify', '-f', `${path}.1`, path)).code).toBe(0);
      expect(daemon.alive()).toBe(true);
      await daemon.stop();
    } finally {
      execFileSync('umount', ['-l', dir]);
    }
  });

  it('after kill -9 at random points of a long run: every table healed, every error handled, the audit chain intact', async () => {
    const seed = Number(process.env.SEQWATCH_FAULT_SEED ?? 27);
    const rng = random(seed);
    const killAfter = random(seed + 1);
    const appLog = logFile('app.log');
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-kill9-'));
    const shared = { audit: { path: join(dir, 'audit.jsonl') }, state_dir: join(dir, 'state') };
    const sampler = sampleSequences();
    // The first daemon is up before the first error (start_at: end skips what came before it).
    let daemon = await startDaemon(config(appLog, shared));
    daemons.push(daemon);
    let written = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const table = TABLES[Math.floor(rng() * TABLES.length)]!;
        if (rng() < 0.5) await drift(table);
        appendFileSync(appLog, duplicateKeyLine(`${table}_pkey`));
        written++;
        await sleep(5 + rng() * 30);
      }
    })();
    const kills: number[] = [];
    for (let i = 0; i < 6; i++) {
      if (i > 0) {
        daemon = await startDaemon(config(appLog, shared));
        daemons.push(daemon);
      }
      const uptime = 300 + killAfter() * 2_000;
      await sleep(uptime);
      await daemon.stop('SIGKILL');
      kills.push(Math.round(uptime));
    }
    writing = false;
    await writer;
    for (const table of TABLES) appendFileSync(appLog, duplicateKeyLine(`${table}_pkey`));
    written += TABLES.length;
    const last = await startDaemon(config(appLog, shared));
    daemons.push(last);
    await waitUntil('every table healed', allHealed, 30_000);
    const records = () => readAudit(shared.audit.path);
    const counted = () =>
      records()
        .filter((r) => r.event === 'detected')
        .reduce((n, r) => n + Number(r.incidents), 0);
    await waitFor('every error counted', () => counted() >= written && counted(), 30_000).catch((error) => {
      console.error(
        `written ${written}, counted ${counted()}`,
        records()
          .filter((r) => !['detected', 'remediated', 'in_sync', 'started'].includes(r.event))
          .map((r) => JSON.stringify(r))
          .join('\n')
          .slice(-5000),
        daemons
          .map((d) =>
            d
              .stderr()
              .split('\n')
              .filter((l) => !l.includes('"level":30'))
              .join('\n'),
          )
          .join('\n----\n')
          .slice(-6000),
      );
      throw error;
    });
    await sampler.stop();
    expect(last.alive()).toBe(true);
    expect((await runCli('audit', 'verify', '-f', shared.audit.path)).code).toBe(0);
    console.info(
      `kill -9 (seed ${seed}): killed after ${kills.join(', ')} ms; ${written} errors written, ${counted()} counted in checks (a re-read after a kill counts twice), ${records().filter((r) => r.event === 'remediated').length} fixes`,
    );
    await last.stop();
  });
});
