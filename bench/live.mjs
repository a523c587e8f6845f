// Live overhead: CPU per MB of log while following a file written at 20 MB/s, seqwatch (the daemon,
// detecting and checking against the database) against `tail -F | grep -F` (finding the lines only).
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGotrsDatabase } from '../dist/devtools/gotrs.js';
import { freePort, startThrowawayPostgres } from '../dist/devtools/throwawayPostgres.js';
import { busyLogBlock, cli, median, writeResult } from './lib.mjs';

const MB_PER_S = Number(process.env.BENCH_LIVE_MB_PER_S ?? 20);
const SECONDS = Number(process.env.BENCH_LIVE_SECONDS ?? 10);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PREFIX = '%m [%p] %q%u@%d ';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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

/** The log to write: blocks of whole lines, about 1 MiB each, MB_PER_S * SECONDS MiB in all. */
function blocks() {
  const counts = { statements: 0, login_key: 0, pkey: 0 };
  const out = [];
  let line = 0;
  let bytes = 0;
  while (bytes < MB_PER_S * SECONDS * 2 ** 20) {
    const block = Buffer.from(busyLogBlock(line, 7_000, counts));
    line += 7_000;
    bytes += block.length;
    out.push(block);
  }
  return { blocks: out, bytes, counts };
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

/** Follows `path` with seqwatch run; resolves once it has read every byte and handled every record. */
async function seqwatch(dir, url, path, expected) {
  const port = await freePort();
  const config = join(dir, `seqwatch-${port}.yaml`);
  writeFileSync(
    config,
    `database: {url: '${url}'}\nsources: [{path: ${path}, log_line_prefix: '${PREFIX}'}]\naudit: {path: ${join(dir, `audit-${port}.jsonl`)}}\nstate_dir: ${join(dir, `state-${port}`)}\nmetrics: {listen: '127.0.0.1:${port}'}\n`,
  );
  const child = spawn('node', [cli, 'run', '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  for (let i = 0; !stderr.includes('ready'); i++) {
    if (i > 400) throw new Error(`seqwatch did not start:\n${stderr}`);
    await sleep(25);
  }
  return {
    pids: [child.pid],
    caughtUp: async (bytes) => (await metric(port, 'seqwatch_log_bytes_total')) >= bytes && (await metric(port, 'seqwatch_incidents_total')) >= expected,
    stop: () => child.kill('SIGTERM'),
  };
}

/** The peer: `tail -n0 -F file | grep -F --line-buffered -e 'duplicate key' -e '_id_seq'`, counting what grep prints. */
async function tailGrep(_dir, _url, path, expected) {
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
    caughtUp: async () => found >= expected,
    stop: () => {
      tail.kill();
      grep.kill();
    },
  };
}

export async function benchLive() {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-bench-live-'));
  const server = await startThrowawayPostgres();
  try {
    const url = await createGotrsDatabase(server);
    const data = blocks();
    const expected = data.counts.login_key + data.counts.pkey;
    const mib = data.bytes / 2 ** 20;
    process.stderr.write(`live: ${RUNS} runs of ${mib.toFixed(0)} MiB written at ${MB_PER_S} MiB/s, each contender following it\n`);
    const cpu = { seqwatch: [], tail_grep: [] };
    const catchUp = { seqwatch: [], tail_grep: [] };
    const writeSeconds = [];
    for (let run = 0; run < RUNS; run++) {
      for (const [name, start] of Object.entries({ seqwatch, tail_grep: tailGrep })) {
        const path = join(dir, `live-${run}-${name}.log`);
        writeFileSync(path, '');
        const follower = await start(dir, url, path, expected);
        const before = follower.pids.reduce((n, pid) => n + cpuSeconds(pid), 0);
        writeSeconds.push(await writePaced(path, data.blocks));
        const stopped = performance.now();
        for (let i = 0; !(await follower.caughtUp(statSync(path).size)); i++) {
          if (i > 6000) throw new Error(`${name} did not keep up: still behind 60 s after the writer stopped`);
          await sleep(10);
        }
        catchUp[name].push((performance.now() - stopped) / 1000);
        const used = follower.pids.reduce((n, pid) => n + cpuSeconds(pid), 0) - before;
        cpu[name].push((used * 1000) / mib);
        follower.stop();
        rmSync(path);
      }
    }
    const msPerMib = { seqwatch: median(cpu.seqwatch), tail_grep: median(cpu.tail_grep) };
    const result = {
      benchmark: `live overhead: CPU per MiB while following a log written at ${MB_PER_S} MiB/s (${mib.toFixed(0)} MiB per run), seqwatch run vs tail -F | grep -F`,
      log_mib: mib,
      log_contents: data.counts,
      runs: RUNS,
      write_seconds_median: median(writeSeconds),
      cpu_ms_per_mib: cpu,
      median_cpu_ms_per_mib: msPerMib,
      share_of_one_core_at_rate: { seqwatch: (msPerMib.seqwatch * MB_PER_S) / 1000, tail_grep: (msPerMib.tail_grep * MB_PER_S) / 1000 },
      catch_up_seconds_after_writer_stopped: { seqwatch: median(catchUp.seqwatch), tail_grep: median(catchUp.tail_grep) },
      median_seconds: { seqwatch_cpu_per_mib: msPerMib.seqwatch / 1000, tail_grep_cpu_per_mib: msPerMib.tail_grep / 1000 },
      ratio_seqwatch_to_tail_grep_cpu: msPerMib.seqwatch / msPerMib.tail_grep,
    };
    return { result, file: writeResult('live', result) };
  } finally {
    await server.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
