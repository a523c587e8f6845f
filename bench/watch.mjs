// The watch (src/watch): its cost per round on 2,000 sequences with 0, 1 and 50 tables changing,
// against a full sweep of the same 2,000 in the same run; then how soon after an import the daemon,
// at its default settings, has healed the table (`node bench/watch.mjs`, or `npm run bench -- watch`).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { AuditLog } from '../dist/audit/AuditLog.js';
import { Database } from '../dist/db/Database.js';
import { IndexResolver } from '../dist/db/resolveIndex.js';
import { createDatabase, findLocalBinaries, startThrowawayPostgres } from '../dist/devtools/throwawayPostgres.js';
import { Remediator } from '../dist/remediate/Remediator.js';
import { TableWatch } from '../dist/watch/TableWatch.js';
import { readActivity } from '../dist/watch/tableActivity.js';
import { cli, median, percentile, writeResult } from './lib.mjs';

const TABLES = Number(process.env.BENCH_SEQUENCES ?? 2000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const HEAL_TRIALS = Number(process.env.BENCH_HEAL_TRIALS ?? 10);
const IDLE_TRIALS = Number(process.env.BENCH_IDLE_TRIALS ?? 3);

/**
 * The server's time for the statements of role `seqwatch` since the last call: planning plus
 * execution, as pg_stat_statements counts them (the BEGIN, lock, check and COMMIT of every batch).
 */
async function serverSeconds(admin) {
  const { rows } = await admin.query(`SELECT COALESCE(sum(total_plan_time + total_exec_time), 0)::float8 / 1000 AS s
                                        FROM pg_stat_statements WHERE userid = 'seqwatch'::regrole`);
  await admin.query(`SELECT pg_stat_statements_reset()`);
  return rows[0].s;
}

/** Writes rows into tables t1..tN on a connection of its own that then ends (its counters are published). */
async function appWrites(url, count) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`DO $$ BEGIN FOR i IN 1..${count} LOOP EXECUTE format('INSERT INTO t%s (v) VALUES (1)', i); END LOOP; END $$`);
  await client.end();
}

/** Waits until the statistics show `count` more writes than `before` on t1..t{count}. */
async function published(admin, before, count) {
  for (let i = 0; i < 200; i++) {
    const now = await readActivity(admin);
    let changed = 0;
    for (const [relid, t] of now.tables) if (t.writes !== (before.tables.get(relid)?.writes ?? -1n)) changed++;
    if (changed >= count) return;
    await sleep(25);
  }
  throw new Error(`the statistics never showed ${count} changed tables`);
}

async function costPerRound(server) {
  const url = await createDatabase(server, 'watchcost');
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  process.stderr.write(`watch: creating ${TABLES} tables...\n`);
  await admin.query(`DO $$ BEGIN FOR i IN 1..${TABLES} LOOP
    EXECUTE format('CREATE TABLE t%s (id serial PRIMARY KEY, v int)', i);
    EXECUTE format('INSERT INTO t%s (v) SELECT 1 FROM generate_series(1, 10 + %s %% 50)', i, i);
  END LOOP; END $$`);
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-bench-watch-'));
  const audit = new AuditLog(join(dir, 'audit.jsonl'));
  await admin.query(`CREATE EXTENSION pg_stat_statements; CREATE ROLE seqwatch LOGIN SUPERUSER`);
  const db = new Database({ url: url.replace('postgres@', 'seqwatch@') });
  const remediator = new Remediator({ db, resolver: new IndexResolver(db), audit, database: 'watchcost', dryRun: false, debounceMs: 0 });
  const hour = 3_600_000;
  // The watch as the daemon runs it, and the same watch made to sweep everything every round.
  const watch = new TableWatch({ db, remediation: remediator, intervalMs: hour, fullSweepMs: hour });
  const full = new TableWatch({ db, remediation: remediator, intervalMs: hour, fullSweepMs: 0 });
  await watch.round();
  await full.round();
  const measure = async (which, prepare) => {
    const before = await readActivity(admin);
    const count = await prepare();
    if (count > 0) await published(admin, before, count);
    const checkedBefore = which.stats.checkedSequences;
    await serverSeconds(admin);
    const started = process.hrtime.bigint();
    await which.round();
    const wall = Number(process.hrtime.bigint() - started) / 1e9;
    return { wall, server: await serverSeconds(admin), checked: which.stats.checkedSequences - checkedBefore };
  };
  const contenders = {
    unchanged: () => measure(watch, async () => 0),
    one_changed: () => measure(watch, async () => (await appWrites(url, 1), 1)),
    fifty_changed: () => measure(watch, async () => (await appWrites(url, 50), 50)),
    full_sweep: () => measure(full, async () => 0),
  };
  const runs = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const [name, run] of Object.entries(contenders)) {
      // The watch starts each measurement from the statistics as they are now.
      await watch.round();
      runs[name].push(await run());
    }
  }
  for (const [name, list] of Object.entries(runs)) {
    const expected = { unchanged: 0, one_changed: 1, fifty_changed: 50, full_sweep: TABLES }[name];
    if (list.some((r) => r.checked !== expected)) throw new Error(`${name}: checked ${list.map((r) => r.checked)} sequences, expected ${expected}`);
  }
  await db.close();
  audit.close();
  await admin.end();
  rmSync(dir, { recursive: true, force: true });
  const summary = (key) => Object.fromEntries(Object.entries(runs).map(([name, list]) => [name, median(list.map((r) => r[key]))]));
  return { runs, median_wall_seconds: summary('wall'), median_server_seconds: summary('server') };
}

/** The daemon at its default settings (watch on, no metrics); how long from an import's commit to the fix. */
async function timeToHeal(server) {
  const url = await createDatabase(server, 'watchheal');
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const trials = HEAL_TRIALS + IDLE_TRIALS;
  await admin.query(`DO $$ BEGIN FOR i IN 1..${trials} LOOP
    EXECUTE format('CREATE TABLE h%s (id serial PRIMARY KEY, v int)', i);
    EXECUTE format('INSERT INTO h%s (v) VALUES (1)', i);
  END LOOP; END $$`);
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-bench-watchheal-'));
  const config = join(dir, 'seqwatch.yaml');
  writeFileSync(config, `database: {url: '${url}'}\nsources: []\naudit: {path: ${join(dir, 'audit.jsonl')}}\nstate_dir: ${dir}\n`);
  const daemon = spawn(process.execPath, [cli, 'run', '-c', config], { stdio: 'ignore' });
  try {
    // Started, and past its first look (a full sweep) and a round after it.
    const audit = join(dir, 'audit.jsonl');
    for (let i = 0; i < 600 && !(existsSync(audit) && readFileSync(audit, 'utf8').includes('"event":"started"')); i++) await sleep(50);
    await sleep(5_000);
    const healed = async (table, committedAt) => {
      for (;;) {
        const { rows } = await admin.query(`SELECT last_value::int AS v FROM ${table}_id_seq`);
        if (rows[0].v >= 1000) return Date.now() - committedAt;
        if (Date.now() - committedAt > 60_000) throw new Error(`${table} not healed within 60 s`);
        await sleep(20);
      }
    };
    const disconnected = [];
    for (let i = 1; i <= HEAL_TRIALS; i++) {
      // At a random moment of the watch's 2 s cycle.
      await sleep(500 + Math.random() * 2_000);
      const importer = new pg.Client({ connectionString: url });
      await importer.connect();
      await importer.query(`INSERT INTO h${i} (id, v) SELECT g, 0 FROM generate_series(2, 1000) g`);
      const committedAt = Date.now();
      await importer.end();
      disconnected.push((await healed(`h${i}`, committedAt)) / 1000);
    }
    const idle = [];
    for (let i = HEAL_TRIALS + 1; i <= trials; i++) {
      const importer = new pg.Client({ connectionString: url });
      await importer.connect();
      await importer.query(`SELECT 1`);
      await importer.query(`INSERT INTO h${i} (id, v) SELECT g, 0 FROM generate_series(2, 1000) g`);
      const committedAt = Date.now();
      idle.push((await healed(`h${i}`, committedAt)) / 1000);
      await importer.end();
    }
    const stats = (list) => (list.length === 0 ? { trials: [] } : { trials: list, p50: median(list), max: Math.max(...list), p90: percentile(list, 90) });
    return { importer_disconnects: stats(disconnected), importer_stays_idle: stats(idle) };
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((resolve) => daemon.once('exit', resolve));
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchWatch() {
  if (!findLocalBinaries()) throw new Error('the watch benchmark needs local PostgreSQL binaries');
  const server = await startThrowawayPostgres({ settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track_planning': 'on' } });
  try {
    const { version } = await (async () => {
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      const r = await c.query('SHOW server_version');
      await c.end();
      return { version: r.rows[0].server_version };
    })();
    const cost = await costPerRound(server);
    const heal = await timeToHeal(server);
    const result = {
      benchmark: `the watch on ${TABLES} sequences: one round with 0, 1 and 50 tables changing vs a full sweep (same run, alternating; server time = planning + execution from pg_stat_statements, wall = the round in the client); then the daemon at its defaults, seconds from an import's commit to the fix`,
      sequences: TABLES,
      runs: RUNS,
      postgresql: version,
      ...cost,
      ratio_full_sweep_to_one_changed_server: cost.median_server_seconds.full_sweep / cost.median_server_seconds.one_changed,
      ratio_full_sweep_to_fifty_changed_server: cost.median_server_seconds.full_sweep / cost.median_server_seconds.fifty_changed,
      time_to_heal_seconds: heal,
      median_seconds: cost.median_wall_seconds,
    };
    // Another size (BENCH_SEQUENCES) goes to a file of its own: watch-200.json.
    return { result, file: writeResult(TABLES === 2000 ? 'watch' : `watch-${TABLES}`, result) };
  } finally {
    await server.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { result, file } = await benchWatch();
  process.stdout.write(
    `${JSON.stringify({ wall: result.median_wall_seconds, server: result.median_server_seconds, heal: result.time_to_heal_seconds }, null, 2)}\nwritten to ${file}\n`,
  );
}
