// seqwatch replay over a busy 1 GiB PostgreSQL log (generated here: statements, multi-line
// statements, DETAIL/STATEMENT lines, a non-sequence unique violation every 40 records, every
// sequence error of the runbook), one thread and two, against grep -F for the two words
// (`duplicate key`, `_id_seq`), same file, same run. BENCH_LOG_MB=256 npm run bench -- replay
// scales the log down; BENCH_RUNS sets the runs (medians).
import { spawnSync } from 'node:child_process';
import { closeSync, createWriteStream, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGotrsDatabase } from '../dist/devtools/gotrs.js';
import { startThrowawayPostgres } from '../dist/devtools/throwawayPostgres.js';
import { cli, coreSeconds, median, race, root, timed, writeResult } from './lib.mjs';

const MB = Number(process.env.BENCH_LOG_MB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PREFIX = '%m [%p] %q%u@%d ';
/** The peer: grep counting the lines with either word. */
const GREP_ARGS = ['-c', '-F', '-e', 'duplicate key', '-e', '_id_seq'];
/** A floor under replay's design: reading and searching only (bench/searchFloor.mjs). */
const FLOOR = join(root, 'bench/searchFloor.mjs');
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

const clock = (n) =>
  `2026-11-27 ${String(Math.floor(n / 3600000) % 24).padStart(2, '0')}:${String(Math.floor(n / 60000) % 60).padStart(2, '0')}:${String(Math.floor(n / 1000) % 60).padStart(2, '0')}.${String(n % 1000).padStart(3, '0')} UTC`;

/** The sequence errors of the runbook, in turn (English, as PostgreSQL 15 writes them), each with the statement that failed. */
const SEQUENCE_ERRORS = [
  {
    kind: 'sequence_exhausted',
    lines: [
      'ERROR:  nextval: reached maximum value of sequence "valid_id_seq" (32767)',
      "STATEMENT:  INSERT INTO valid (name, create_by, change_by) VALUES ('x', 1, 1)",
    ],
  },
  { kind: 'sequence_missing', lines: ['ERROR:  relation "ticket_history_id_seq" does not exist', "STATEMENT:  SELECT nextval('ticket_history_id_seq')"] },
  {
    kind: 'sequence_permission_denied',
    lines: ['ERROR:  permission denied for sequence article_id_seq', 'STATEMENT:  INSERT INTO article (ticket_id) VALUES (1)'],
  },
  {
    kind: 'setval_out_of_bounds',
    lines: ['ERROR:  setval: value 40000 is out of bounds for sequence "valid_id_seq" (1..32767)', "STATEMENT:  SELECT setval('valid_id_seq', 40000)"],
  },
];

/**
 * Records `from`..`from + count` of a busy GOTRS server log (prefix '%m [%p] %q%u@%d '), tallied into
 * `counts`: a unique violation on users_login_key (a login form hammered: ERROR, DETAIL, STATEMENT)
 * every 40 records, one on ticket_pkey (a lagging sequence) every 200,000, a sequence error every
 * 250,000, other errors (not-null, deadlock) every 53, multi-line statements every 11, and
 * single-line statements with their durations in between.
 */
export function busyReplayBlock(from, count, counts) {
  const block = [];
  for (let n = from; n < from + count; n++) {
    const head = `${clock(n)} [${1000 + (n % 97)}] gotrs@gotrs `;
    counts.records++;
    if (n % 40 === 5) {
      counts.login_key++;
      block.push(
        `${head}ERROR:  duplicate key value violates unique constraint "users_login_key"`,
        `${head}DETAIL:  Key (login)=(agent${n % 5000}) already exists.`,
        `${head}STATEMENT:  INSERT INTO users (login, pw, first_name, last_name, valid_id, create_time, create_by, change_time, change_by) VALUES ($1, $2, $3, $4, 1, current_timestamp, 1, current_timestamp, 1)`,
      );
    } else if (n % 200_000 === 99) {
      counts.pkey++;
      block.push(
        `${head}ERROR:  duplicate key value violates unique constraint "ticket_pkey"`,
        `${head}DETAIL:  Key (id)=(${n}) already exists.`,
        `${head}STATEMENT:  INSERT INTO ticket (tn, title, queue_id) VALUES ($1, $2, $3)`,
      );
    } else if (n % 250_000 === 777) {
      const error = SEQUENCE_ERRORS[Math.floor(n / 250_000) % SEQUENCE_ERRORS.length];
      counts[error.kind]++;
      for (const line of error.lines) block.push(head + line);
    } else if (n % 53 === 7) {
      counts.other_errors++;
      block.push(
        `${head}ERROR:  null value in column "title" of relation "ticket" violates not-null constraint`,
        `${head}DETAIL:  Failing row contains (${n}, null).`,
        `${head}STATEMENT:  INSERT INTO ticket (tn, title) VALUES ($1, $2)`,
      );
    } else if (n % 11 === 3) {
      counts.statements++;
      block.push(
        `${head}LOG:  statement: SELECT t.id, t.tn, t.title, t.queue_id, q.name`,
        '\tFROM ticket t JOIN queue q ON q.id = t.queue_id',
        `\tWHERE t.archive_flag = 0 AND t.ticket_state_id IN (1, 4) AND q.id = ${n % 17}`,
        '\tORDER BY t.create_time DESC LIMIT 50',
      );
    } else {
      counts.statements++;
      block.push(`${head}LOG:  duration: 0.${n % 1000} ms  execute <unnamed>: SELECT id, tn, title, queue_id FROM ticket WHERE id = $1 AND archive_flag = 0`);
    }
  }
  return block.join('\n') + '\n';
}

/** Writes a busy log of about `bytes`; returns what it holds. */
export async function generate(path, bytes) {
  const out = createWriteStream(path, { highWaterMark: 8 * 1024 * 1024 });
  let written = 0;
  let n = 0;
  const counts = { records: 0, statements: 0, login_key: 0, pkey: 0, other_errors: 0, ...Object.fromEntries(SEQUENCE_ERRORS.map((e) => [e.kind, 0])) };
  while (written < bytes) {
    const text = busyReplayBlock(n, 20_000, counts);
    n += 20_000;
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

    // Warm the page cache so every contender reads from memory.
    timed('cat', [log], { stdio: ['ignore', 'ignore', 'ignore'] });
    const load = { before: loadavg() };
    const cores = { before: coreSeconds() };
    const replay = (threads, file = log) => timed('node', [cli, 'replay', '-c', config, '--threads', String(threads), file, '--json']);
    const reports = {};
    /** The scan's own seconds (replay's report: from the first file opened to the last byte scanned), run by run. */
    const scanSeconds = { seqwatch: [], seqwatch_2_threads: [] };
    // CPU seconds too (user + system, of the process and its threads): what a run takes from the database's host.
    const cpu = { seqwatch: [], seqwatch_2_threads: [], grep: [], floor: [], floor_2_threads: [] };
    const withCpu = (name, command, args) => {
      const r = timed('/usr/bin/time', ['-f', '%U %S', command, ...args]);
      const [user, system] = r.stderr.trim().split('\n').at(-1).split(' ').map(Number);
      cpu[name].push(user + system);
      return r;
    };
    /** The floor's run: it must count what grep counts (else it measured something else). */
    let grepCount;
    const floorRun = (threads) => {
      const r = withCpu(threads > 1 ? 'floor_2_threads' : 'floor', 'node', [FLOOR, log, String(threads)]);
      if (r.stdout.trim() !== grepCount) throw new Error(`the search floor counted ${r.stdout.trim()} lines, grep ${grepCount}`);
      return r.seconds;
    };
    const times = race(
      {
        seqwatch: () => {
          const r = withCpu('seqwatch', 'node', [cli, 'replay', '-c', config, '--threads', '1', log, '--json']);
          reports.one = JSON.parse(r.stdout);
          scanSeconds.seqwatch.push(reports.one.scanned.seconds);
          return r.seconds;
        },
        seqwatch_2_threads: () => {
          const r = withCpu('seqwatch_2_threads', 'node', [cli, 'replay', '-c', config, '--threads', '2', log, '--json']);
          reports.two = JSON.parse(r.stdout);
          scanSeconds.seqwatch_2_threads.push(reports.two.scanned.seconds);
          return r.seconds;
        },
        grep: () => {
          const r = withCpu('grep', 'grep', [...GREP_ARGS, log]);
          grepCount = r.stdout.trim();
          return r.seconds;
        },
        floor: () => floorRun(1),
        floor_2_threads: () => floorRun(2),
      },
      RUNS,
    );
    load.after = loadavg();
    cores.after = coreSeconds();
    if (cores.before?.unequal || cores.after?.unequal) {
      process.stderr.write(`replay: the cores were unequal (${JSON.stringify(cores)}): this run's times are not a fair race; run it again\n`);
    }
    // Every family found, as many as the log holds; two threads say exactly what one says.
    const expected = { unique_violation: counts.login_key + counts.pkey, ...Object.fromEntries(SEQUENCE_ERRORS.map((e) => [e.kind, counts[e.kind]])) };
    const found = reports.one.scanned.kinds;
    if (JSON.stringify(found) !== JSON.stringify(Object.fromEntries(Object.entries(expected).filter(([, n]) => n > 0)))) {
      throw new Error(`replay found ${JSON.stringify(found)}, the log has ${JSON.stringify(expected)}`);
    }
    const login = reports.one.constraints.find((c) => c.constraint === 'users_login_key');
    if (login?.errors !== counts.login_key) throw new Error(`replay found ${login?.errors} errors on users_login_key, the log has ${counts.login_key}`);
    const withoutTimes = (report) => JSON.stringify({ ...report, scanned: { ...report.scanned, seconds: 0 } });
    if (withoutTimes(reports.one) !== withoutTimes(reports.two)) throw new Error('replay --threads 2 reported otherwise than one thread');
    // Memory: the peak RSS of a replay of the whole log and of a 1/16 slice; flat means it does not grow with the log.
    const slice = join(dir, 'slice.log');
    const sliceBytes = sliceOf(log, slice, Math.min(size, F2B_MB * 2 ** 20));
    const args = (threads, file) => [cli, 'replay', '-c', config, '--threads', String(threads), file, '--json'];
    const rss = {
      whole_mib: peakRssMiB('node', args(1, log)),
      slice_mib: peakRssMiB('node', args(1, slice)),
      whole_2_threads_mib: peakRssMiB('node', args(2, log)),
      grep_whole_mib: peakRssMiB('grep', [...GREP_ARGS, log]),
    };

    // Where seqwatch's time goes: the same command over the log's first MiB is what does not grow with
    // the log (Node, the modules, the config, the database's connection and checks, the output).
    const tiny = join(dir, 'tiny.log');
    sliceOf(log, tiny, Math.min(size, 2 ** 20));
    const fixed = race(
      {
        seqwatch: () => replay(1, tiny).seconds,
        grep: () => timed('grep', [...GREP_ARGS, tiny]).seconds,
        // What the floor's start costs (Node.js, the search's module): replay's start above it is its own.
        floor: () => timed('node', [FLOOR, tiny, '1']).seconds,
      },
      RUNS,
    );

    // fail2ban-regex with the equivalent filter, on the slice (it reads ~50,000 lines a second), against seqwatch on the same slice.
    let fail2ban;
    if (spawnSync('fail2ban-regex', ['--version']).status === 0) {
      const filter = join(dir, 'seqwatch-filter.conf');
      writeFileSync(filter, F2B_FILTER);
      let matched;
      const sliceTimes = race(
        {
          seqwatch: () => replay(1, slice).seconds,
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
    const medians = Object.fromEntries(Object.entries(times).map(([name, seconds]) => [name, median(seconds)]));
    const result = {
      benchmark: 'replay over a busy log (every error family) vs grep -F -c -e "duplicate key" -e "_id_seq"',
      command: 'npm run bench -- replay',
      log_mib: size / 2 ** 20,
      log_contents: counts,
      found: reports.one.scanned.kinds,
      runs: RUNS,
      load_average: load,
      core_seconds: cores,
      seconds: times,
      median_seconds: medians,
      median_mib_per_s: Object.fromEntries(Object.entries(medians).map(([name, seconds]) => [name, size / 2 ** 20 / seconds])),
      ratio_seqwatch_to_grep_time: medians.seqwatch / medians.grep,
      ratio_seqwatch_2_threads_to_grep_time: medians.seqwatch_2_threads / medians.grep,
      cpu_seconds: cpu,
      median_cpu_seconds: Object.fromEntries(Object.entries(cpu).map(([name, seconds]) => [name, median(seconds)])),
      ratio_seqwatch_to_grep_cpu: median(cpu.seqwatch) / median(cpu.grep),
      search_floor: {
        about:
          "bench/searchFloor.mjs: a Node.js process that only reads the log and finds the lines with either word (the same WebAssembly search as replay; no parsing, config, database or report), 1 and 2 threads: a floor for replay's design (these reads and this search, nothing else)",
        ratio_floor_to_grep_time: medians.floor / medians.grep,
        ratio_floor_2_threads_to_grep_time: medians.floor_2_threads / medians.grep,
        ratio_seqwatch_to_floor_time: medians.seqwatch / medians.floor,
        ratio_seqwatch_2_threads_to_floor_2_threads_time: medians.seqwatch_2_threads / medians.floor_2_threads,
      },
      breakdown: {
        about:
          'scan_seconds: the scan itself, as replay reports it; fixed_seconds: the whole command over the first MiB of the log (start-up, config, database, output), which the scan of the rest adds to',
        scan_seconds: scanSeconds,
        median_scan_seconds: { seqwatch: median(scanSeconds.seqwatch), seqwatch_2_threads: median(scanSeconds.seqwatch_2_threads) },
        median_scan_mib_per_s: {
          seqwatch: size / 2 ** 20 / median(scanSeconds.seqwatch),
          seqwatch_2_threads: size / 2 ** 20 / median(scanSeconds.seqwatch_2_threads),
        },
        fixed_seconds: fixed,
        median_fixed_seconds: { seqwatch: median(fixed.seqwatch), grep: median(fixed.grep), floor: median(fixed.floor) },
      },
      peak_rss: rss,
      fail2ban,
      ...(fail2ban ? { ratio_seqwatch_to_fail2ban_time: fail2ban.ratio_seqwatch_to_fail2ban_time } : {}),
    };
    return { result, file: writeResult(process.env.BENCH_REPLAY_RESULT ?? 'replay', result) };
  } finally {
    await server.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
