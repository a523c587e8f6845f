// Shared helpers for the benchmarks: timing child processes, medians, a throwaway database, results.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Variables of this machine's environment that no database host has, removed before any contender
 * starts. NODE_EXTRA_CA_CERTS (the sandbox's proxy certificates): with it, every Node.js process
 * reads and parses the file's certificates before it runs a line (`node -e 0`: 0.097 s with it,
 * 0.069 s without, 2026-12-03); grep and tail never read it. machine() lists what was removed.
 */
const NOT_ON_A_DATABASE_HOST = ['NODE_EXTRA_CA_CERTS'];
const removedFromEnvironment = NOT_ON_A_DATABASE_HOST.filter((name) => name in process.env);
for (const name of removedFromEnvironment) delete process.env[name];

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const cli = join(root, 'dist/cli/main.js');

/** Runs a command to completion; returns wall seconds and max RSS (KiB) as GNU time reports it, when present. */
export function timed(command, args, options = {}) {
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0 && !options.allowFailure) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr?.slice(0, 2000)}`);
  }
  return { seconds, stdout: result.stdout, stderr: result.stderr, status: result.status };
}

export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** The p-th percentile (nearest rank). */
export const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
};

export function machine() {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    ...(removedFromEnvironment.length > 0 ? { removed_from_environment: removedFromEnvironment } : {}),
  };
}

/** The same loop, 10^8 additions, timed inside a process pinned to one core. */
const CORE_PROBE = 'let x = 0; const t = performance.now(); for (let i = 0; i < 1e8; i++) x = (x + i) | 0; console.log(performance.now() - t, x);';

/**
 * Each core's seconds for the same fixed loop (taskset; undefined where it is missing). Why: on this
 * project's VMs a core is at times much slower than the other (seen 2026-12-04: 0.30 s against
 * 0.51-0.83 s for the same loop, for minutes at a time), and a contender that lands on it takes up
 * to twice as long; a run whose cores differ is not a fair race, and `unequal` says so.
 */
export function coreSeconds() {
  const seconds = [];
  for (let core = 0; core < cpus().length; core++) {
    const r = spawnSync('taskset', ['-c', String(core), process.execPath, '-e', CORE_PROBE], { encoding: 'utf8' });
    if (r.status !== 0) return undefined;
    seconds.push(Number(r.stdout.split(' ')[0]) / 1000);
  }
  return { seconds, unequal: Math.max(...seconds) > 1.15 * Math.min(...seconds) };
}

export function writeResult(name, result) {
  const file = join(root, 'bench/results', `${name}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify({ ...result, machine: machine(), date: new Date().toISOString() }, null, 2) + '\n');
  return file;
}

/** Alternates the contenders run by run (so drift in the machine's state hits both), `runs` times each. */
export function race(contenders, runs, before = () => {}) {
  const times = Object.fromEntries(Object.keys(contenders).map((name) => [name, []]));
  for (let i = 0; i < runs; i++) {
    for (const [name, run] of Object.entries(contenders)) {
      before(name);
      times[name].push(run());
    }
  }
  return times;
}

const clock = (n) =>
  `2026-11-27 ${String(Math.floor(n / 3600000) % 24).padStart(2, '0')}:${String(Math.floor(n / 60000) % 60).padStart(2, '0')}:${String(Math.floor(n / 1000) % 60).padStart(2, '0')}.${String(n % 1000).padStart(3, '0')} UTC`;

/**
 * `count` lines of a busy GOTRS server log (prefix '%m [%p] %q%u@%d '), from line number `from`:
 * ordinary statements, a real but non-sequence unique violation every 250 lines (users_login_key,
 * with DETAIL and STATEMENT), a lagging-sequence one every 200,000 (ticket_pkey). Tallies into `counts`.
 */
export function busyLogBlock(from, count, counts) {
  const block = [];
  for (let line = from; line < from + count; line++) {
    const t = clock(line);
    const pid = 1000 + (line % 97);
    if (line % 250 === 17) {
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
      block.push(
        `${t} [${pid}] gotrs@gotrs LOG:  duration: 0.${line % 1000} ms  execute <unnamed>: SELECT id, tn, title, queue_id FROM ticket WHERE id = $1 AND archive_flag = 0`,
      );
    }
  }
  return block.join('\n') + '\n';
}
