// The byte-level scanner's search, alone: the current IncidentScanner.candidateLines (one native
// indexOf pass per anchor) against the WebAssembly multi-needle search (src/detect/wasm, one SIMD
// pass for all needles) finding the same lines, and grep -c -F -e 'duplicate key' -e '_id_seq' on
// the same bytes. Replay's busy stderr log (bench/replay.mjs), read in 4 MiB chunks as replay reads.
//
//   node bench/needles.mjs                    BENCH_NEEDLES_MB (256) MiB log, BENCH_RUNS (5) runs each, CPU and wall
//   BENCH_CALLGRIND=1 node bench/needles.mjs  instructions too (valgrind, on a BENCH_CALLGRIND_MB (32) MiB log:
//                                             each contender over it twice less once, so start-up,
//                                             compilation and warm-up are not counted)
//   BENCH_NEEDLES_FORMAT=csvlog|jsonlog|stderr   bench/busyLogs.mjs's log of that destination instead
//   node bench/needles.mjs --one <contender> <file> [passes]   one contender (what callgrind runs)
//
// Contenders: read (the 4 MiB reads alone: what every in-process contender includes), scanner,
// wasm_copy (data read into a Buffer of its own, copied into the module 256 KiB at a time),
// wasm_inplace (read straight into a buffer inside the module's memory), indexof (the fallback).
// Prints JSON; writes no results file (not part of `npm run bench`).
import { spawnSync } from 'node:child_process';
import { closeSync, createWriteStream, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IncidentScanner } from '../dist/detect/scanner.js';
import { createMultiNeedleSearch } from '../dist/detect/wasm/multiNeedle.js';
import { machine, median } from './lib.mjs';
import { busyRecords, FORMAT_OF } from './busyLogs.mjs';
import { busyReplayBlock } from './replay.mjs';

const PREFIX = '%m [%p] %q%u@%d ';
/** replay: bench/replay.mjs's log (stderr, a unique violation every 40 records); else a destination of bench/busyLogs.mjs. */
const SOURCE = process.env.BENCH_NEEDLES_FORMAT ?? 'replay';
const FORMAT = SOURCE === 'replay' ? 'postgres-stderr' : FORMAT_OF[SOURCE];
const CHUNK = 4 * 1024 * 1024;
const CAPACITY = CHUNK + 256 * 1024;
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const MB = Number(process.env.BENCH_NEEDLES_MB ?? 256);
const CALLGRIND_MB = Number(process.env.BENCH_CALLGRIND_MB ?? 32);
const GREP = ['-c', '-F', '-e', 'duplicate key', '-e', '_id_seq'];
const CONTENDERS = ['read', 'scanner', 'wasm_copy', 'wasm_inplace', 'indexof'];

/** Reads `file` in 4 MiB chunks cut at line ends into `buffer`, calling `search(buffer, end)` for each; returns the candidate lines' count and a checksum of their offsets. */
function chunks(file, buffer, search) {
  const fd = openSync(file, 'r');
  let carry = 0;
  let base = 0;
  let lines = 0;
  let sum = 0;
  for (;;) {
    const read = readSync(fd, buffer, carry, Math.min(CHUNK, buffer.length - carry), null);
    const length = carry + read;
    if (length === 0) break;
    const end = read === 0 ? length : buffer.lastIndexOf(10, length - 1) + 1 || length;
    for (const start of search(buffer, end)) {
      lines++;
      sum = (sum + base + start) % 2 ** 48;
    }
    buffer.copyWithin(0, end, length);
    carry = length - end;
    base += end;
    if (read === 0 && carry === 0) break;
  }
  closeSync(fd);
  return { lines, sum };
}

/** One contender over the file, `passes` times over (one searcher): its candidate lines (count, checksum). */
function runOne(name, file, passes = 1) {
  const contender = contender_(name, file);
  let found;
  for (let pass = 0; pass < passes; pass++) found = contender();
  return found;
}

function contender_(name, file) {
  const scanner = new IncidentScanner(FORMAT, PREFIX);
  // The lines a hit gives, as candidateLines gives them: the line, walked back to its record's
  // start (stderr: over TAB continuations; csvlog: to a line shaped like a record's start, and the
  // hit's own line too).
  const linesOf = (search) => (bytes, end) => {
    const starts = [];
    let sorted = true;
    const push = (start) => {
      if (starts.length > 0 && starts[starts.length - 1] >= start) sorted = false;
      starts.push(start);
    };
    for (const hit of search.lineHits(bytes, 0, end)) {
      const lineStart = bytes.lastIndexOf(10, hit) + 1;
      const start = scanner.recordStart(bytes, lineStart, 0);
      push(start);
      if (start !== lineStart && FORMAT === 'postgres-csv') push(lineStart);
    }
    return sorted ? starts : [...new Set(starts)].sort((a, b) => a - b);
  };
  const sample = () => {
    const fd = openSync(file, 'r');
    const bytes = Buffer.alloc(64 * 1024);
    readSync(fd, bytes, 0, bytes.length, 0);
    closeSync(fd);
    return bytes;
  };
  switch (name) {
    case 'read': {
      const buffer = Buffer.allocUnsafe(CAPACITY);
      return () => chunks(file, buffer, () => []);
    }
    case 'scanner': {
      const buffer = Buffer.allocUnsafe(CAPACITY);
      return () => chunks(file, buffer, (bytes, end) => scanner.candidateLines(bytes, 0, end));
    }
    case 'wasm_copy': {
      const search = createMultiNeedleSearch(scanner.needles, { sample: sample() });
      const buffer = Buffer.allocUnsafe(CAPACITY);
      return () => chunks(file, buffer, linesOf(search));
    }
    case 'wasm_inplace': {
      const search = createMultiNeedleSearch(scanner.needles, { sample: sample(), buffers: [CAPACITY] });
      return () => chunks(file, search.buffers[0], linesOf(search));
    }
    case 'indexof': {
      const search = createMultiNeedleSearch(scanner.needles, { simd: false });
      const buffer = Buffer.allocUnsafe(CAPACITY);
      return () => chunks(file, buffer, linesOf(search));
    }
  }
  throw new Error(`no contender ${name}`);
}

async function generate(path, bytes) {
  const out = createWriteStream(path, { highWaterMark: 8 * 1024 * 1024 });
  const counts = new Proxy({}, { get: (t, k) => t[k] ?? 0 });
  let written = 0;
  for (let n = 0; written < bytes; n += 20_000) {
    const text = SOURCE === 'replay' ? busyReplayBlock(n, 20_000, counts) : busyRecords(SOURCE, n, 20_000, counts, Date.UTC(2026, 10, 27));
    written += Buffer.byteLength(text);
    if (!out.write(text)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
}

/** Instructions a command executes (valgrind --tool=callgrind), or undefined without valgrind. */
function instructions(command, args) {
  const r = spawnSync('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', command, ...args], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const match = /Collected : (\d+)/.exec(r.stderr ?? '');
  return match ? Number(match[1]) : undefined;
}

function cpuOf(command, args) {
  const started = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', command, ...args], { encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  const [user, system] = r.stderr.trim().split('\n').at(-1).split(' ').map(Number);
  return { cpu: user + system, wall, stdout: r.stdout.trim() };
}

async function main() {
  if (process.argv[2] === '--one') {
    process.stdout.write(JSON.stringify(runOne(process.argv[3], process.argv[4], Number(process.argv[5] ?? 1))) + '\n');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-bench-needles-'));
  try {
    const log = join(dir, 'postgresql.log');
    process.stderr.write(`needles: generating a ${MB} MiB log...\n`);
    await generate(log, MB * 2 ** 20);
    const size = statSync(log).size;
    const gib = size / 2 ** 30;
    const load = { before: loadavg() };
    chunks(log, Buffer.allocUnsafe(CAPACITY), () => []); // the page cache
    const cpu = Object.fromEntries([...CONTENDERS, 'grep'].map((n) => [n, []]));
    const wall = Object.fromEntries([...CONTENDERS, 'grep'].map((n) => [n, []]));
    const found = {};
    for (let run = 0; run < RUNS; run++) {
      for (const name of CONTENDERS) {
        const before = process.cpuUsage();
        const started = process.hrtime.bigint();
        found[name] = runOne(name, log);
        wall[name].push(Number(process.hrtime.bigint() - started) / 1e9);
        const used = process.cpuUsage(before);
        cpu[name].push((used.user + used.system) / 1e6);
      }
      const g = cpuOf('grep', [...GREP, log]);
      cpu.grep.push(g.cpu);
      wall.grep.push(g.wall);
      found.grep = Number(g.stdout);
    }
    load.after = loadavg();
    for (const name of ['wasm_copy', 'wasm_inplace', 'indexof']) {
      if (JSON.stringify(found[name]) !== JSON.stringify(found.scanner))
        throw new Error(`${name} found ${JSON.stringify(found[name])}, the scanner ${JSON.stringify(found.scanner)}`);
    }
    const readCpu = median(cpu.read);
    const result = {
      benchmark: 'scanner search: candidateLines (indexOf per anchor) vs WebAssembly multi-needle vs grep -c -F (2 patterns)',
      log: SOURCE === 'replay' ? 'bench/replay.mjs busy stderr log' : `bench/busyLogs.mjs ${SOURCE}`,
      log_mib: Math.round(size / 2 ** 20),
      runs: RUNS,
      candidate_lines: found.scanner.lines,
      grep_count: found.grep,
      cpu_seconds: Object.fromEntries(Object.entries(cpu).map(([n, v]) => [n, +median(v).toFixed(3)])),
      wall_seconds: Object.fromEntries(Object.entries(wall).map(([n, v]) => [n, +median(v).toFixed(3)])),
      // The search alone: the contender's CPU less the reads' (grep's is its whole process).
      search_gb_per_s: Object.fromEntries(
        Object.entries(cpu)
          .filter(([n]) => n !== 'read')
          .map(([n, v]) => [n, +(size / 1e9 / Math.max(1e-6, median(v) - (n === 'grep' ? 0 : readCpu))).toFixed(2)]),
      ),
      whole_gb_per_s_cpu: Object.fromEntries(Object.entries(cpu).map(([n, v]) => [n, +(size / 1e9 / median(v)).toFixed(2)])),
      cpu_per_gib: Object.fromEntries(Object.entries(cpu).map(([n, v]) => [n, +(median(v) / gib).toFixed(3)])),
      load,
      machine: machine(),
    };
    if (process.env.BENCH_CALLGRIND) {
      const small = join(dir, 'small.log');
      await generate(small, CALLGRIND_MB * 2 ** 20);
      const self = fileURLToPath(import.meta.url);
      // Twice over less once over: what a pass over the bytes costs, without start-up, compilation and warm-up.
      const perPass = {};
      for (const name of CONTENDERS.filter((n) => n !== 'indexof')) {
        perPass[name] = instructions('node', [self, '--one', name, small, '2']) - instructions('node', [self, '--one', name, small, '1']);
      }
      perPass.grep = instructions('grep', [...GREP, small, small]) - instructions('grep', [...GREP, small]);
      const smallBytes = statSync(small).size;
      result.callgrind = {
        log_mib: CALLGRIND_MB,
        instructions_per_pass: perPass,
        // The search alone: the in-process contenders' reads taken out (grep's are in).
        search_instructions_per_byte: Object.fromEntries(
          Object.entries(perPass)
            .filter(([n]) => n !== 'read')
            .map(([n, c]) => [n, +((c - (n === 'grep' ? 0 : perPass.read)) / smallBytes).toFixed(3)]),
        ),
        read_instructions_per_byte: +(perPass.read / smallBytes).toFixed(3),
      };
    }
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
