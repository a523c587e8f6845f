import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { EXIT } from '../exit.js';

/** `seqwatch health`: reads the health file the running daemon writes, for container health checks. */
export function registerHealth(program: Command): void {
  program
    .command('health')
    .description(
      'exit 0 when the daemon using this config can heal (sources read and parsed, primary answering), 1 when not, with why; for container health checks',
    )
    .requiredOption('-c, --config <file>', 'YAML config file', '/etc/seqwatch/seqwatch.yaml')
    .addHelpText(
      'after',
      `
Reads the health file the running daemon refreshes every 5 s
(state_dir/health.json); says why on stderr when unhealthy. Examples:
  seqwatch health -c /etc/seqwatch/seqwatch.yaml; echo $?
  HEALTHCHECK CMD ["seqwatch", "health", "-c", "/etc/seqwatch/seqwatch.yaml"]`,
    )
    .action(async (options: { config: string }) => {
      const { loadConfig } = await import('../../config/config.js');
      const config = await loadConfig(options.config);
      const file = join(config.state_dir, 'health.json');
      let health: { ok: boolean; time: string; database: boolean; sources: boolean; audit?: boolean; problems?: Array<{ message: string; fix: string }> };
      try {
        health = JSON.parse(readFileSync(file, 'utf8'));
      } catch (error) {
        process.stderr.write(`unhealthy: no health file ${file} (${(error as Error).message}): is the daemon running with this config?\n`);
        process.exitCode = EXIT.failure;
        return;
      }
      const { HEARTBEAT_MS } = await import('../../daemon.js');
      const age = Date.now() - Date.parse(health.time);
      if (age > 3 * HEARTBEAT_MS) {
        process.stderr.write(`unhealthy: ${file} is ${Math.round(age / 1000)} s old: the daemon is stuck or stopped\n`);
        process.exitCode = EXIT.failure;
      } else if (!health.ok) {
        process.stderr.write(
          `unhealthy: database ${health.database ? 'answers' : 'does not answer'}, sources ${health.sources ? 'followed' : 'not all followed'}, audit log ${health.audit === false ? 'cannot be written (full disk?)' : 'written'}\n`,
        );
        // What keeps it from healing, each with its fix (docs/health.md).
        for (const problem of health.problems ?? []) process.stderr.write(`  ${problem.message}\n    fix: ${problem.fix}\n`);
        process.exitCode = EXIT.failure;
      } else {
        process.stdout.write('healthy\n');
      }
    });
}
