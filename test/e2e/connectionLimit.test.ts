import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, sqlOn, type TestDatabase } from '../helpers/db.js';
import { runCli, startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';

const { logPath, logLinePrefix } = inject('pg');

/*
 * The daemon (the built CLI, as a child process) for a role with CONNECTION LIMIT 1: the pool keeps
 * two connections and the catalog warm-up rehearses a fix on two at once, so the server refuses
 * the second (SQLSTATE 53300). It must go on with the one it has: healthy, and healing.
 */
describe.runIf(logPath)('the daemon for a role allowed one connection', () => {
  let db: TestDatabase;
  let daemon: RunningDaemon;
  const role = `seqwatch_${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    db = await createTestDatabase('connlimit');
    await db.pool.query(`
      CREATE TABLE lagging (id serial PRIMARY KEY, title text);
      INSERT INTO lagging (id, title) SELECT g, 'imported' FROM generate_series(1, 40) g;
      CREATE ROLE ${role} LOGIN PASSWORD 'pw' CONNECTION LIMIT 1;
      GRANT USAGE ON SCHEMA public TO ${role};
      GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role};
      GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${role};`);
    const url = new URL(db.url);
    url.username = role;
    url.password = 'pw';
    daemon = await startDaemon({
      database: { url: url.toString() },
      sources: [{ path: logPath, format: 'postgres-stderr', log_line_prefix: logLinePrefix }],
      remediation: { debounce_ms: 200, dry_run: false },
    });
  });

  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
    await sqlOn(inject('pg').url, `DROP ROLE IF EXISTS ${role}`);
  });

  it('warms its catalog, says once that the role allows one connection, heals, and is healthy', async () => {
    const warmed = await waitFor(
      'the catalog warm-up',
      () =>
        daemon
          .stderr()
          .split('\n')
          .find((l) => l.includes('catalog warmed')),
      15_000,
    );
    expect(JSON.parse(warmed)).toMatchObject({ fix_rehearsed_on: 'public.lagging_id_seq' });

    const error = await db.pool.query(`INSERT INTO lagging (title) VALUES ('new')`).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(error?.code).toBe('23505');
    const remediated = await daemon.waitForAudit('lagging remediated', (r) => r.event === 'remediated' && r.table === 'public.lagging');
    expect(remediated).toMatchObject({ sequence: 'public.lagging_id_seq', after: '40' });
    expect(daemon.audit().filter((r) => r.event === 'failed')).toEqual([]);

    // The health file is refreshed every 5 s: healthy, and it stays so.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    const health = await runCli('health', '-c', daemon.configPath);
    expect({ code: health.code, stderr: health.stderr }).toEqual({ code: 0, stderr: '' });

    const log = daemon.stderr();
    expect(log).not.toContain('database unavailable');
    const limited = log.split('\n').filter((l) => l.includes('connection limit'));
    expect(limited).toHaveLength(1);
    expect(limited[0]).toContain(role);
    expect(limited[0]).toMatch(/up to 3 connections, 2 kept open/);
  }, 60_000);
});
