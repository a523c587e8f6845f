// seqwatch replay over a busy 1 GiB PostgreSQL log, against grep -F for the same words, same file, same run.
// BENCH_LOG_MB=256 npm run bench  scales the log down.
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { gotrsSchemaPath } from '../dist/devtools/gotrs.js';
import { createDatabase, startThrowawayPostgres } from '../dist/devtools/throwawayPostgres.js';
import { cli, median, race, timed, writeResult } from './lib.mjs';

const MB = Number(process.env.BENCH_LOG_MB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PREFIX = '%m [%p] %q%u@%d ';

/** Millions of ordinary statements, tens of thousands of real but non-sequence unique violations, a few dozen lagging-sequence ones. */
async function generate(path, bytes) {
  const out = createWriteStream(path, { highWaterMark: 8 * 1024 * 1024 });
  let written = 0;
  let line = 0;
  const counts = { statements: 0, login_key: 0, pkey: 0 };
  const time = (n) => `2026-11-27 ${String(Math.floor(n / 3600000) % 24).padStart(2, '0')}:${String(Math.floor(n / 60000) % 60).padStart(2, '0')}:${String(Math.floor(n / 1000) % 60).padStart(2, '0')}.${String(n % 1000).padStart(3, '0')} UTC`;
  while (written < bytes) {
    const block = [];
    for (let i = 0; i < 20000; i++, line++) {
      const t = time(line);
      const pid = 1000 + (line % 97);
      if (line % 400 === 17) {
        counts.login_key++;
        block.push(`${t} [${pid}] gotrs@gotrs ERROR:  duplicate key value violates unique constraint "users_login_key"`);
        block.push(`${t} [${pid}] gotrs@gotrs DETAIL:  Key (login)=(agent${line}) already exists.`);
        block.push(`${t} [${pid}] gotrs@gotrs STATEMENT:  INSERT INTO users (login, pw, first_name, last_name, valid_id) VALUES ($1, $2, $3, $4, 1)`);
      } else if (line % 200_000 === 99) {
        counts.pkey++;
        block.push(`${t} [${pid}] gotrs@gotrs ERROR:  duplicate key value violates unique constraint "ticket_pkey"`);
        block.push(`${t} [${pid}] gotrs@gotrs DETAIL:  Key (id)=(${line}) already exists.`);
      } else {
        counts.statements++;
        block.push(`${t} [${pid}] gotrs@gotrs LOG:  duration: 0.${line % 1000} ms  execute <unnamed>: SELECT id, tn, title, queue_id FROM ticket WHERE id = $1 AND archive_flag = 0`);
      }
    }
    const text = block.join('\n') + '\n';
    written += Buffer.byteLength(text);
    if (!out.write(text)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
  return counts;
}

export async function benchReplay() {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-bench-replay-'));
  const log = join(dir, 'postgresql.log');
  process.stderr.write(`replay: generating a ${MB} MiB log...\n`);
  const counts = await generate(log, MB * 1024 * 1024);
  const size = statSync(log).size;
  const server = await startThrowawayPostgres();
  try {
    const url = await createDatabase(server, 'gotrs');
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    await db.query(readFileSync(gotrsSchemaPath(), 'utf8'));
    await db.end();
    const config = join(dir, 'seqwatch.yaml');
    writeFileSync(config, `database: {url: '${url}'}\nsources: [{path: ${log}, log_line_prefix: '${PREFIX}'}]\naudit: {path: ${join(dir, 'audit.jsonl')}}\n`);

    // Warm the page cache so both read from memory.
    timed('cat', [log], { stdio: ['ignore', 'ignore', 'ignore'] });
    let replayed;
    const times = race(
      {
        seqwatch: () => {
          const r = timed('node', [cli, 'replay', '-c', config, log, '--json']);
          replayed = JSON.parse(r.stdout);
          return r.seconds;
        },
        grep: () => timed('sh', ['-c', `grep -c -F -e 'duplicate key' -e '_id_seq' '${log}'`]).seconds,
      },
      RUNS,
    );
    const ticket = replayed.constraints.find((c) => c.constraint === 'ticket_pkey');
    const login = replayed.constraints.find((c) => c.constraint === 'users_login_key');
    if (ticket?.errors !== counts.pkey || login?.errors !== counts.login_key) {
      throw new Error(`replay found ${ticket?.errors}/${login?.errors}, the log has ${counts.pkey}/${counts.login_key}`);
    }
    const result = {
      benchmark: 'replay over a busy log vs grep -F -c -e "duplicate key" -e "_id_seq"',
      log_mib: size / 2 ** 20,
      log_contents: counts,
      runs: RUNS,
      seconds: times,
      median_seconds: { seqwatch: median(times.seqwatch), grep: median(times.grep) },
      median_mib_per_s: { seqwatch: size / 2 ** 20 / median(times.seqwatch), grep: size / 2 ** 20 / median(times.grep) },
      ratio_seqwatch_to_grep_time: median(times.seqwatch) / median(times.grep),
    };
    return { result, file: writeResult('replay', result) };
  } finally {
    await server.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
