// seqwatch replay over a gzip-compressed busy log (a rotated one, as logrotate's `compress` leaves
// it: gzip's default level) against zgrep for the two words, same file, same run. The log is
// bench/replay.mjs's, 256 MiB before compression (BENCH_GZIP_MB); BENCH_RUNS sets the runs (medians).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGotrsDatabase } from '../dist/devtools/gotrs.js';
import { startThrowawayPostgres } from '../dist/devtools/throwawayPostgres.js';
import { cli, median, race, timed, writeResult } from './lib.mjs';
import { generate } from './replay.mjs';

const MB = Number(process.env.BENCH_GZIP_MB ?? 256);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PREFIX = '%m [%p] %q%u@%d ';
/** The peer: what an operator types for a compressed log (gzip -cdfq piped into grep). */
const ZGREP_ARGS = ['-c', '-F', '-e', 'duplicate key', '-e', '_id_seq'];

export async function benchReplayGzip() {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-bench-replay-gzip-'));
  const log = join(dir, 'postgresql.log.2');
  process.stderr.write(`replay-gzip: generating a ${MB} MiB log and compressing it...\n`);
  const counts = await generate(log, MB * 1024 * 1024);
  const size = statSync(log).size;
  const gz = `${log}.gz`;
  if (spawnSync('gzip', [log]).status !== 0) throw new Error(`gzip ${log} failed`);
  const server = await startThrowawayPostgres();
  try {
    const url = await createGotrsDatabase(server);
    const config = join(dir, 'seqwatch.yaml');
    writeFileSync(config, `database: {url: '${url}'}\nsources: [{path: ${log}, log_line_prefix: '${PREFIX}'}]\naudit: {path: ${join(dir, 'audit.jsonl')}}\n`);
    timed('cat', [gz], { stdio: ['ignore', 'ignore', 'ignore'] });
    const load = { before: loadavg() };
    let report;
    let zgrepCount;
    const times = race(
      {
        seqwatch: () => {
          const r = timed('node', [cli, 'replay', '-c', config, gz, '--json']);
          report = JSON.parse(r.stdout);
          return r.seconds;
        },
        zgrep: () => {
          const r = timed('zgrep', [...ZGREP_ARGS, gz]);
          zgrepCount = Number(r.stdout.trim());
          return r.seconds;
        },
      },
      RUNS,
    );
    load.after = loadavg();
    const login = report.constraints.find((c) => c.constraint === 'users_login_key');
    if (login?.errors !== counts.login_key) throw new Error(`replay found ${login?.errors} errors on users_login_key, the log has ${counts.login_key}`);
    const medians = { seqwatch: median(times.seqwatch), zgrep: median(times.zgrep) };
    const result = {
      benchmark: 'replay over a gzip-compressed busy log vs zgrep -c -F -e "duplicate key" -e "_id_seq"',
      peer: "`zgrep -c -F -e 'duplicate key' -e '_id_seq'` over the same compressed log (gzip -cdfq piped into grep)",
      command: 'node bench/run.mjs replay-gzip',
      log_mib: size / 2 ** 20,
      compressed_mib: statSync(gz).size / 2 ** 20,
      log_contents: counts,
      found: report.scanned.kinds,
      zgrep_lines: zgrepCount,
      runs: RUNS,
      load_average: load,
      seconds: times,
      median_seconds: medians,
      ratio_seqwatch_to_zgrep_time: medians.seqwatch / medians.zgrep,
    };
    return { result, file: writeResult(process.env.BENCH_REPLAY_GZIP_RESULT ?? 'replay-gzip', result) };
  } finally {
    await server.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
