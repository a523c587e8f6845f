// seqwatch replay over a busy 1 GiB PostgreSQL log, against grep -F for the same words, same file, same run.
// BENCH_LOG_MB=256 npm run bench  scales the log down.
import { spawnSync } from 'node:child_process';
import { closeSync, createWriteStream, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGotrsDatabase } from '../dist/devtools/gotrs.js';
import { startThrowawayPostgres } from '../dist/devtools/throwawayPostgres.js';
import { busyLogBlock, cli, median, race, timed, writeResult } from './lib.mjs';

const MB = Number(process.env.BENCH_LOG_MB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PREFIX = '%m [%p] %q%u@%d ';
/** The slice fail2ban-regex reads (MiB). */
const F2B_MB = Number(process.env.BENCH_F2B_MB ?? 64);
/** fail2ban's equivalent of what seqwatch looks for: the duplicate key errors and the _id_seq errors, the name as the ID. */
const F2B_FILTER = `[Definition]
failregex = ^\\s*\\S+@\\S+ ERROR:  duplicate key value violates unique constraint "<F-ID>[^"]+</F-ID>"
            ^\\s*\\S+@\\S+ ERROR:  .*"<F-ID>[^"]*_id_seq</F-ID>"
datepattern = {^LN-BEG}%%Y-%%m-%%d %%H:%%M:%%S(?:\\.%%f)?(?: UTC)? \\[\\d+\\]
`;

/** Copies the first `bytes` of a log, cut at a line end, to `to`; returns its size. */
function sliceOf(from, to, bytes) {
  const fd = openSync(from, 'r');
  const buffer = Buffer.alloc(bytes);
  const read = readSync(fd, buffer, 0, bytes, 0);
  closeSync(fd);
  const end = buffer.lastIndexOf(10, read - 1) + 1;
  writeFileSync(to, buffer.subarray(0, end));
  return end;
}

/** The peak resident memory of a command, in MiB, as GNU time reports it (undefined without /usr/bin/time). */
function peakRssMiB(command, args) {
  const r = spawnSync('/usr/bin/time', ['-f', '%M', command, ...args], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const kib = Number(r.stderr?.trim().split('\n').at(-1));
  return r.status === 0 && Number.isFinite(kib) ? kib / 1024 : undefined;
}

/** Writes a busy log of about `bytes` (busyLogBlock after busyLogBlock); returns what it holds. */
async function generate(path, bytes) {
  const out = createWriteStream(path, { highWaterMark: 8 * 1024 * 1024 });
  let written = 0;
  let line = 0;
  const counts = { statements: 0, login_key: 0, pkey: 0 };
  while (written < bytes) {
    const text = busyLogBlock(line, 20_000, counts);
    line += 20_000;
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
    const url = await createGotrsDatabase(server);
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
    // Memory: the peak RSS of a replay of the whole log and of a 1/16 slice; flat means it does not grow with the log.
    const slice = join(dir, 'slice.log');
    const sliceBytes = sliceOf(log, slice, Math.min(size, F2B_MB * 2 ** 20));
    const rss = { whole_mib: peakRssMiB('node', [cli, 'replay', '-c', config, log, '--json']), slice_mib: peakRssMiB('node', [cli, 'replay', '-c', config, slice, '--json']) };

    // fail2ban-regex with the equivalent filter, on the slice (it reads ~50,000 lines a second), against seqwatch on the same slice.
    let fail2ban;
    if (spawnSync('fail2ban-regex', ['--version']).status === 0) {
      const filter = join(dir, 'seqwatch-filter.conf');
      writeFileSync(filter, F2B_FILTER);
      let matched;
      const sliceTimes = race(
        {
          seqwatch: () => timed('node', [cli, 'replay', '-c', config, slice, '--json']).seconds,
          fail2ban_regex: () => {
            const r = timed('fail2ban-regex', [slice, filter]);
            matched = Number(/(\d+) matched/.exec(r.stdout)?.[1]);
            return r.seconds;
          },
        },
        RUNS,
      );
      fail2ban = {
        slice_mib: sliceBytes / 2 ** 20,
        filter: F2B_FILTER,
        matched,
        seconds: sliceTimes,
        median_seconds: { seqwatch: median(sliceTimes.seqwatch), fail2ban_regex: median(sliceTimes.fail2ban_regex) },
        ratio_seqwatch_to_fail2ban_time: median(sliceTimes.seqwatch) / median(sliceTimes.fail2ban_regex),
      };
    } else {
      process.stderr.write('replay: fail2ban-regex not installed (apt-get install fail2ban): that peer is left out\n');
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
      peak_rss: rss,
      fail2ban,
      ...(fail2ban ? { ratio_seqwatch_to_fail2ban_time: fail2ban.ratio_seqwatch_to_fail2ban_time } : {}),
    };
    return { result, file: writeResult('replay', result) };
  } finally {
    await server.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
