// Live overhead: CPU per MiB of log while following a file written at 20 MiB/s, seqwatch (the daemon,
// detecting and checking against the database) against `tail -F | grep -F` (finding the lines only),
// for each destination of the server log (stderr, csvlog, jsonlog), the same busy records in each.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGotrsDatabase } from '../dist/devtools/gotrs.js';
import { freePort, startThrowawayPostgres } from '../dist/devtools/throwawayPostgres.js';
import { busyRecords, FORMAT_OF, incidentsOf, STDERR_PREFIX } from './busyLogs.mjs';
import { cli, median, writeResult } from './lib.mjs';

const MB_PER_S = Number(process.env.BENCH_LIVE_MB_PER_S ?? 20);
const SECONDS = Number(process.env.BENCH_LIVE_SECONDS ?? 10);
/**
 * MiB of the same records written at the same rate before the measured stretch (the CPU baseline is
 * taken once both contenders have caught up with it): a daemon runs for weeks, so what the database
 * host pays is the steady state, not V8 compiling the hot code in a fresh process.
 */
const WARMUP_MB = Number(process.env.BENCH_LIVE_WARMUP_MB ?? 40);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
/** Which logs: a destination, or `stderr-stale` (a backlog older than remediation.stale_after). */
const CASES = (process.env.BENCH_LIVE_CASES ?? 'stderr,csvlog,jsonlog,stderr-stale').split(',');
/** Extra node options for the daemon (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof). */
const NODE_ARGS = (process.env.BENCH_LIVE_NODE_ARGS ?? '').split(' ').filter(Boolean);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const STALE_MS = 2 * 3_600_000;

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 1/100 s). */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function metric(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(match[1]);
  return sum;
}

/**
 * The log to write: blocks of whole records, about 1 MiB each, at least `mib` MiB in all, from record
 * number `from` on (`next`: where the following stretch continues, so record numbers never repeat).
 */
function blocks(format, at, mib, from = 0) {
  const counts = {};
  const out = [];
  let bytes = 0;
  const perBlock = { stderr: 7_000, csvlog: 4_000, jsonlog: 2_500, docker: 5_000 }[format];
  let n = from;
  for (; bytes < mib * 2 ** 20; n += perBlock) {
    const block = Buffer.from(
      format === 'docker' ? dockerJson(busyRecords('stderr', n, perBlock, counts, at), at) : busyRecords(format, n, perBlock, counts, at),
    );
    bytes += block.length;
    out.push(block);
  }
  return { blocks: out, bytes, counts, next: n };
}

/** The stderr log's lines as Docker's json-file driver writes a container's (gotrs-postgres's) output, each line an entry. */
function dockerJson(text, at) {
  const time = new Date(at).toISOString();
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((line) => `${JSON.stringify({ log: `${line}\n`, stream: 'stderr', time })}\n`).join('');
}

/** Appends the blocks at MB_PER_S, as a busy server would; returns the seconds it took. */
async function writePaced(path, data) {
  const fd = openSync(path, 'a');
  const started = performance.now();
  let written = 0;
  for (const block of data) {
    while (written > ((performance.now() - started) / 1000) * MB_PER_S * 2 ** 20) await sleep(5);
    writeSync(fd, block);
    written += block.length;
  }
  closeSync(fd);
  return (performance.now() - started) / 1000;
}

/** Follows `path` with seqwatch run; caughtUp: it has read `bytes` and found `expected` incidents. */
async function seqwatch(dir, url, path, format) {
  const port = await freePort();
  const config = join(dir, `seqwatch-${port}.yaml`);
  const source =
    format === 'stderr'
      ? `{path: ${path}, log_line_prefix: '${STDERR_PREFIX}'}`
      : format === 'docker'
        ? `{path: ${path}, format: docker-json, inner_format: postgres-stderr, log_line_prefix: '${STDERR_PREFIX}'}`
        : `{path: ${path}, format: ${FORMAT_OF[format]}}`;
  writeFileSync(
    config,
    `database: {url: '${url}'}\nsources: [${source}]\naudit: {path: ${join(dir, `audit-${port}.jsonl`)}}\nstate_dir: ${join(dir, `state-${port}`)}\nmetrics: {listen: '127.0.0.1:${port}'}\n`,
  );
  const child = spawn('node', [...NODE_ARGS, cli, 'run', '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  for (let i = 0; !stderr.includes('ready'); i++) {
    if (i > 400) throw new Error(`seqwatch did not start:\n${stderr}`);
    await sleep(25);
  }
  return {
    pids: [child.pid],
    found: () => metric(port, 'seqwatch_incidents_total'),
    caughtUp: async (bytes, expected) =>
      (await metric(port, 'seqwatch_log_bytes_total')) >= bytes && (await metric(port, 'seqwatch_incidents_total')) >= expected,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** The peer: `tail -n0 -F file | grep -F --line-buffered -e 'duplicate key' -e '_id_seq'`, counting what grep prints. */
async function tailGrep(_dir, _url, path) {
  const tail = spawn('tail', ['-n0', '-F', path], { stdio: ['ignore', 'pipe', 'ignore'] });
  const grep = spawn('grep', ['-F', '--line-buffered', '-e', 'duplicate key', '-e', '_id_seq'], { stdio: ['pipe', 'pipe', 'ignore'] });
  tail.stdout.pipe(grep.stdin);
  let found = 0;
  grep.stdout.on('data', (chunk) => {
    for (const byte of chunk) if (byte === 10) found++;
  });
  await sleep(300);
  return {
    pids: [tail.pid, grep.pid],
    found: async () => found,
    caughtUp: async (_bytes, expected) => found >= expected,
    stop: async () => {
      tail.kill();
      grep.kill();
    },
  };
}

/** Writes `data` to the followed file at MB_PER_S and waits until the follower has caught up with it (`expected` incidents in all so far). */
async function writeAndCatchUp(follower, contender, name, path, data, expected) {
  const seconds = await writePaced(path, data.blocks);
  const stopped = performance.now();
  for (let i = 0; !(await follower.caughtUp(statSync(path).size, expected)); i++) {
    if (i > 6000)
      throw new Error(`${contender} did not keep up on ${name}: still behind 60 s after the writer stopped (found ${await follower.found()} of ${expected})`);
    await sleep(10);
  }
  return { seconds, catchUp: (performance.now() - stopped) / 1000 };
}

/**
 * RUNS runs of one log, the contenders alternating; CPU ms per MiB of each, in the steady state (the
 * measured stretch after WARMUP_MB of warm-up) and from 'ready' (warm-up included).
 */
async function benchCase(name, dir, url) {
  const format = name.replace(/-stale$/, '');
  const at = name.endsWith('-stale') ? Date.now() - STALE_MS : Date.now();
  const warmup = blocks(format, at, WARMUP_MB);
  const data = blocks(format, at, MB_PER_S * SECONDS, warmup.next);
  const warmupExpected = incidentsOf(warmup.counts);
  const expected = warmupExpected + incidentsOf(data.counts);
  const mib = data.bytes / 2 ** 20;
  const warmupMib = warmup.bytes / 2 ** 20;
  process.stderr.write(
    `live ${name}: ${RUNS} runs of ${warmupMib.toFixed(0)} MiB warm-up + ${mib.toFixed(0)} MiB measured, written at ${MB_PER_S} MiB/s, each contender following it (load ${loadavg()[0].toFixed(2)})\n`,
  );
  const cpu = { seqwatch: [], tail_grep: [] };
  const cpuFromReady = { seqwatch: [], tail_grep: [] };
  const catchUp = { seqwatch: [], tail_grep: [] };
  const found = { seqwatch: [], tail_grep: [] };
  const writeSeconds = [];
  const load = [];
  for (let run = 0; run < RUNS; run++) {
    for (const [contender, start] of Object.entries({ seqwatch, tail_grep: tailGrep })) {
      const path = join(dir, `live-${name}-${run}-${contender}.log`);
      writeFileSync(path, '');
      const follower = await start(dir, url, path, format);
      const cpuNow = () => follower.pids.reduce((n, pid) => n + cpuSeconds(pid), 0);
      const ready = cpuNow();
      if (warmup.bytes > 0) await writeAndCatchUp(follower, contender, name, path, warmup, warmupExpected);
      const steady = cpuNow();
      const measured = await writeAndCatchUp(follower, contender, name, path, data, expected);
      writeSeconds.push(measured.seconds);
      catchUp[contender].push(measured.catchUp);
      const end = cpuNow();
      cpu[contender].push(((end - steady) * 1000) / mib);
      cpuFromReady[contender].push(((end - ready) * 1000) / (mib + warmupMib));
      found[contender].push(await follower.found());
      load.push(loadavg()[0]);
      await follower.stop();
      rmSync(path);
    }
  }
  const msPerMib = { seqwatch: median(cpu.seqwatch), tail_grep: median(cpu.tail_grep) };
  const fromReady = { seqwatch: median(cpuFromReady.seqwatch), tail_grep: median(cpuFromReady.tail_grep) };
  process.stderr.write(
    `live ${name}: steady state seqwatch ${msPerMib.seqwatch.toFixed(2)} ms/MiB, tail|grep ${msPerMib.tail_grep.toFixed(2)} ms/MiB: ${(msPerMib.seqwatch / msPerMib.tail_grep).toFixed(2)}x; ` +
      `from ready ${fromReady.seqwatch.toFixed(2)} vs ${fromReady.tail_grep.toFixed(2)}: ${(fromReady.seqwatch / fromReady.tail_grep).toFixed(2)}x\n`,
  );
  return {
    format:
      format === 'stderr'
        ? `postgres-stderr (log_line_prefix '${STDERR_PREFIX}')`
        : format === 'docker'
          ? `docker-json, postgres-stderr inside (log_line_prefix '${STDERR_PREFIX}')`
          : FORMAT_OF[format],
    ...(name.endsWith('-stale') ? { records_older_than_stale_after: true } : {}),
    log_mib: mib,
    warmup_mib: warmupMib,
    log_contents: data.counts,
    warmup_contents: warmup.counts,
    incidents_expected: expected,
    incidents_found: found,
    runs: RUNS,
    write_seconds_median: median(writeSeconds),
    load_average_1min: load,
    cpu_ms_per_mib: cpu,
    median_cpu_ms_per_mib: msPerMib,
    cpu_ms_per_mib_from_ready: cpuFromReady,
    median_cpu_ms_per_mib_from_ready: fromReady,
    share_of_one_core_at_rate: { seqwatch: (msPerMib.seqwatch * MB_PER_S) / 1000, tail_grep: (msPerMib.tail_grep * MB_PER_S) / 1000 },
    catch_up_seconds_after_writer_stopped: { seqwatch: median(catchUp.seqwatch), tail_grep: median(catchUp.tail_grep) },
    ratio_seqwatch_to_tail_grep_cpu: msPerMib.seqwatch / msPerMib.tail_grep,
    ratio_seqwatch_to_tail_grep_cpu_from_ready: fromReady.seqwatch / fromReady.tail_grep,
  };
}

export async function benchLive() {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-bench-live-'));
  const server = await startThrowawayPostgres();
  try {
    const url = await createGotrsDatabase(server);
    const cases = {};
    for (const name of CASES) cases[name] = await benchCase(name, dir, url);
    const result = {
      benchmark: `live overhead: CPU per MiB while following a log written at ${MB_PER_S} MiB/s (${SECONDS} s measured per run after ${WARMUP_MB} MiB of warm-up), seqwatch run vs tail -F | grep -F -e 'duplicate key' -e '_id_seq', per log destination; the busy mix of bench/busyLogs.mjs`,
      cases,
      median_seconds: Object.fromEntries(
        Object.entries(cases).flatMap(([name, c]) => [
          [`${name}_seqwatch_cpu_per_mib`, c.median_cpu_ms_per_mib.seqwatch / 1000],
          [`${name}_tail_grep_cpu_per_mib`, c.median_cpu_ms_per_mib.tail_grep / 1000],
          [`${name}_seqwatch_from_ready_cpu_per_mib`, c.median_cpu_ms_per_mib_from_ready.seqwatch / 1000],
          [`${name}_tail_grep_from_ready_cpu_per_mib`, c.median_cpu_ms_per_mib_from_ready.tail_grep / 1000],
        ]),
      ),
      ...Object.fromEntries(
        Object.entries(cases).flatMap(([name, c]) => [
          [`ratio_${name.replace('-', '_')}_seqwatch_to_tail_grep_cpu`, c.ratio_seqwatch_to_tail_grep_cpu],
          [`ratio_${name.replace('-', '_')}_seqwatch_to_tail_grep_cpu_from_ready`, c.ratio_seqwatch_to_tail_grep_cpu_from_ready],
        ]),
      ),
      runs: RUNS,
      load_average_at_start: loadavg(),
    };
    return { result, file: writeResult(process.env.BENCH_LIVE_RESULT ?? 'live', result) };
  } finally {
    await server.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
