// seqwatch fix --all on 2,000 lagging sequences, against a correct single DO block, same database, same run.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createDatabase, findLocalBinaries, startThrowawayPostgres } from '../dist/devtools/throwawayPostgres.js';
import { cli, median, race, timed, writeResult } from './lib.mjs';

const TABLES = Number(process.env.BENCH_SEQUENCES ?? 2000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

/*
 * The peer: what a careful DBA writes by hand. It finds every serial/identity column, reads MAX, and
 * moves the sequence only forward. It is correct, but it is one transaction holding every sequence's
 * lock, it misses sequences not OWNED BY their column, and it audits nothing.
 */
const DO_BLOCK = readFileSync(new URL('./do-block.sql', import.meta.url), 'utf8');

export async function benchFix() {
  if (!findLocalBinaries()) throw new Error('the fix benchmark needs local PostgreSQL binaries');
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-bench-fix-'));
  const server = await startThrowawayPostgres();
  try {
    const url = await createDatabase(server, 'many');
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    process.stderr.write(`fix: creating ${TABLES} tables...\n`);
    await db.query(`DO $$ BEGIN FOR i IN 1..${TABLES} LOOP
      EXECUTE format('CREATE TABLE t%s (id serial PRIMARY KEY, v int)', i);
      EXECUTE format('INSERT INTO t%s (id) SELECT generate_series(1, 10 + %s %% 50)', i, i);
    END LOOP; END $$`);
    // As autovacuum would soon after: 2,000 CREATE TABLEs leave the catalog's statistics stale, and
    // seqwatch's catalog statements then plan badly (on 2026-12-02, check took 10-13 s before an
    // ANALYZE of the catalog and 2.2 s after; the DO block 1.1-2.7 s either way).
    await db.query('ANALYZE');
    // Each run starts from the same drift: every sequence back at its start.
    const reset = () =>
      db.query(`DO $$ DECLARE s text; BEGIN FOR s IN SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences LOOP
      PERFORM setval(s, 1, false); END LOOP; END $$`);
    const config = join(dir, 'seqwatch.yaml');
    writeFileSync(config, `database: {url: '${url}'}\nsources: [{path: ${join(dir, 'pg.log')}}]\naudit: {path: ${join(dir, 'audit.jsonl')}}\n`);
    const psql = join(findLocalBinaries(), 'psql');
    const drifted = async () => (await db.query(`SELECT count(*)::int AS n FROM pg_sequences WHERE last_value IS NULL`)).rows[0].n;

    const times = { seqwatch: [], do_block: [] };
    for (let i = 0; i < RUNS; i++) {
      for (const [name, run] of Object.entries({
        seqwatch: () => timed('node', [cli, 'fix', '--all', '-c', config]),
        do_block: () => timed(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', DO_BLOCK]),
      })) {
        await reset();
        if ((await drifted()) !== TABLES) throw new Error('reset did not leave every sequence behind');
        times[name].push(run().seconds);
        if ((await drifted()) !== 0) throw new Error(`${name} left sequences behind`);
      }
    }
    // check: read-only, every sequence behind; seqwatch check (exit 1: drift found) vs the DO block's read-only half.
    await reset();
    const CHECK_DO_BLOCK = readFileSync(new URL('./do-block-check.sql', import.meta.url), 'utf8');
    const checkTimes = race(
      {
        seqwatch: () => {
          const r = timed('node', [cli, 'check', '--json', '-c', config], { allowFailure: true });
          if (r.status !== 1 || JSON.parse(r.stdout).sequences.filter((s) => s.status === 'behind').length !== TABLES)
            throw new Error(`check did not report ${TABLES} behind (exit ${r.status})`);
          return r.seconds;
        },
        do_block: () => {
          const r = timed(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', CHECK_DO_BLOCK]);
          if (!r.stderr.includes(`${TABLES} sequence(s) behind`)) throw new Error('the check DO block did not find every sequence behind');
          return r.seconds;
        },
      },
      RUNS,
    );
    await db.end();
    const result = {
      benchmark: `fix --all and check on ${TABLES} lagging sequences vs a correct single DO block (both as processes: node and psql)`,
      sequences: TABLES,
      runs: RUNS,
      seconds: times,
      median_seconds: { seqwatch: median(times.seqwatch), do_block: median(times.do_block) },
      ratio_seqwatch_to_do_block: median(times.seqwatch) / median(times.do_block),
      check: {
        seconds: checkTimes,
        median_seconds: { seqwatch: median(checkTimes.seqwatch), do_block: median(checkTimes.do_block) },
        ratio_seqwatch_to_do_block: median(checkTimes.seqwatch) / median(checkTimes.do_block),
      },
      ratio_check_seqwatch_to_do_block: median(checkTimes.seqwatch) / median(checkTimes.do_block),
    };
    return { result, file: writeResult('fix', result) };
  } finally {
    await server.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
