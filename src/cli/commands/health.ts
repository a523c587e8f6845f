import type { Command } from 'commander';
import { EXIT } from '../exit.js';
import { readHealthFile } from '../../service/healthFile.js';

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
      const reading = readHealthFile(config.state_dir);
      if ('error' in reading) {
        process.stderr.write(`unhealthy: no health file ${reading.file} (${reading.error}): is the daemon running with this config?\n`);
        process.exitCode = EXIT.failure;
        return;
      }
      const { file, health, ageMs, stale } = reading;
      if (stale) {
        process.stderr.write(`unhealthy: ${file} is ${Math.round(ageMs / 1000)} s old: the daemon is stuck or stopped\n`);
        process.exitCode = EXIT.failure;
      } else if (!health.ok) {
        process.stderr.write(
          `unhealthy: database ${health.database ? 'answers' : 'does not answer'}, sources ${health.sources ? 'read and understood' : 'not all read and understood'}, audit log ${health.audit === false ? 'cannot be written (full disk?)' : 'written'}\n`,
        );
        // What keeps it from healing, each with its fix (docs/health.md).
        for (const problem of health.problems ?? []) process.stderr.write(`  ${problem.message}\n    fix: ${problem.fix}\n`);
        process.exitCode = EXIT.failure;
      } else {
        process.stdout.write('healthy\n');
      }
    });
}
