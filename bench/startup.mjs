// Start-up: `seqwatch --version` (scripts, packaging checks) against `node -e 0`, both as whole
// processes, alternated run by run; `--help` and `config check` beside them, for what a command's
// modules add. `check` over 2,000 sequences against the DO block is in fix.mjs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, median, race, timed, writeResult } from './lib.mjs';

const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 11);

export async function benchStartup() {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-bench-startup-'));
  try {
    const config = join(dir, 'seqwatch.yaml');
    writeFileSync(
      config,
      `database: {url: 'postgresql://seqwatch@127.0.0.1/app'}\nsources: [{path: ${join(dir, 'pg.log')}}]\naudit: {path: ${join(dir, 'audit.jsonl')}}\nstate_dir: ${dir}\n`,
    );
    const seconds = race(
      {
        node: () => timed('node', ['-e', '0']).seconds,
        version: () => timed('node', [cli, '--version']).seconds,
        help: () => timed('node', [cli, '--help']).seconds,
        config_check: () => timed('node', [cli, 'config', 'check', '-c', config]).seconds,
      },
      RUNS,
    );
    const medians = Object.fromEntries(Object.entries(seconds).map(([name, times]) => [name, median(times)]));
    const result = {
      benchmark: `start-up as a whole process: seqwatch --version vs node -e 0 (and --help, config check), alternated, ${RUNS} runs each`,
      runs: RUNS,
      seconds,
      median_seconds: medians,
      ratio_version_to_node: medians.version / medians.node,
      // Not judged against the target (that is --version's): what loading a command's modules adds.
      other_commands_relative_to_node_e_0: { help: medians.help / medians.node, config_check: medians.config_check / medians.node },
      note: 'the load of the machine at the time is in load_average (1, 5, 15 min); ratios are measured in the same run',
      load_average: (await import('node:os')).loadavg(),
    };
    return { result, file: writeResult('startup', result) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
