// seqwatch fix --all on 2,000 lagging sequences, against a correct single DO block, same database, same run.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
const DO_BLOCK = `
DO $$
DECLARE r record; m bigint; cur bigint; called boolean;
BEGIN
  FOR r IN
    SELECT format('%I.%I', n.nspname, c.relname) AS tbl, a.attname AS col,
           pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) AS seq
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) IS NOT NULL
  LOOP
    EXECUTE format('SELECT max(%I) FROM %s', r.col, r.tbl) INTO m;
    EXECUTE format('SELECT last_value, is_called FROM %s', r.seq) INTO cur, called;
    IF m IS NOT NULL AND (m > cur OR (m = cur AND NOT called)) THEN
      PERFORM setval(r.seq, m, true);
    END IF;
  END LOOP;
END $$;`;

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
    // Each run starts from the same drift: every sequence back at its start.
    const reset = () => db.query(`DO $$ DECLARE s text; BEGIN FOR s IN SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences LOOP
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
    await db.end();
    const result = {
      benchmark: `fix --all on ${TABLES} lagging sequences vs a correct single DO block (both as processes: node and psql)`,
      sequences: TABLES,
      runs: RUNS,
      seconds: times,
      median_seconds: { seqwatch: median(times.seqwatch), do_block: median(times.do_block) },
      ratio_seqwatch_to_do_block: median(times.seqwatch) / median(times.do_block),
    };
    return { result, file: writeResult('fix', result) };
  } finally {
    await server.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
