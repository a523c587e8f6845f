#!/usr/bin/env node
// First: on an unsupported Node.js, one clear sentence and exit 1 before anything else loads.
import './nodeVersion.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError, configWarnings, databasesOf, loadConfig, redactUrl } from '../config/config.js';
import type { Daemon } from '../daemon.js';
import { CommandFailure, EXIT } from './context.js';
import { printableJson } from './output.js';


const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('seqwatch')
  .description(
    'Heals PostgreSQL sequences that fell behind MAX(id) after an import: follows the server log,\n' +
      'sees "duplicate key value violates unique constraint", verifies the sequence really is behind,\n' +
      'moves it forward (never backwards) and writes every decision to an audit log.',
  )
  .version(pkg.version)
  .showHelpAfterError('(run with --help for usage)')
  .enablePositionalOptions()
  .exitOverride();

program
  .command('run')
  .description('run the daemon in the foreground (as systemd or a container runs it)')
  .requiredOption('-c, --config <file>', 'YAML config file', '/etc/seqwatch/seqwatch.yaml')
  .addHelpText(
    'after',
    '\nStops cleanly on SIGTERM or SIGINT; SIGHUP reopens the audit log and reloads the\n' +
      'config. Diagnostics go to stderr; decisions go to the audit log.\n' +
      'Example:\n  seqwatch run -c /etc/seqwatch/seqwatch.yaml',
  )
  .action(async (options: { config: string }) => {
    const { default: pino } = await import('pino');
    // The daemon's log echoes log text (names, messages): JSON escapes C0 controls, printableJson the
    // rest (C1, direction overrides), so `journalctl -u seqwatch` cannot be driven by a log line.
    const stderr = pino.destination({ fd: 2, sync: true });
    const logger = pino({ level: process.env.SEQWATCH_LOG_LEVEL ?? 'info' }, { write: (line: string) => stderr.write(printableJson(line)) });
    const config = await loadConfig(options.config);
    // Signals are caught before anything starts: a SIGHUP from logrotate during start-up must not
    // kill the daemon (the default action), and a SIGTERM then must still stop it cleanly.
    let daemon: Daemon | undefined;
    let stopSignal: string | undefined;
    let reloadWanted = false;
    let signals = 0;
    const stop = (signal: string) => {
      if (++signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(EXIT.failure);
      }
      stopSignal = signal;
      if (daemon) void daemon.stop(signal).then(() => process.exit(EXIT.ok));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => (daemon ? void daemon.reload() : (reloadWanted = true)));
    // Loaded here: the daemon's modules (metrics, notifications) are not needed by the other commands.
    const { Daemon } = await import('../daemon.js');
    daemon = await Daemon.start(config, options.config, logger);
    // Non-zero when it stopped because it cannot work (the database refused the login: 78).
    void daemon.finished.then(() => process.exit(daemon!.exitCode));
    if (stopSignal) void daemon.stop(stopSignal).then(() => process.exit(daemon!.exitCode));
    else if (reloadWanted) void daemon.reload();
  });

program
  .command('health')
  .description('exit 0 when the daemon using this config can heal (sources read and parsed, primary answering), 1 when not, with why; for container health checks')
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
    const { HEARTBEAT_MS } = await import('../daemon.js');
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

const configCommand = program
  .command('config')
  .description('work with the config file')
  .addHelpText('after', '\nExamples:\n  seqwatch config check -c /etc/seqwatch/seqwatch.yaml\n  seqwatch config check -c ./seqwatch.yaml && systemctl reload seqwatch');
configCommand
  .command('check')
  .description('validate a config file; exits 0 when it is valid, 1 when not (each problem with file:line:column)')
  .requiredOption('-c, --config <file>', 'YAML config file', '/etc/seqwatch/seqwatch.yaml')
  .addHelpText(
    'after',
    `
Prints what it understood (passwords redacted) and, on stderr, warnings about
settings that are allowed but unwise. Examples:
  seqwatch config check -c /etc/seqwatch/seqwatch.yaml
  seqwatch config check -c ./seqwatch.yaml && systemctl reload seqwatch`,
  )
  .action(async (options: { config: string }) => {
    const config = await loadConfig(options.config);
    for (const warning of configWarnings(options.config, config)) process.stderr.write(`warning: ${warning}\n`);
    const lines = [
      `${options.config}: valid`,
      ...databasesOf(config).map(
        (d) =>
          `  database: ${redactUrl(d.url)}${d.password_credential ? ` (password from the credential ${d.password_credential} under systemd${d.password_file ? `, else ${d.password_file}` : ''})` : d.password_file ? ` (password from ${d.password_file})` : ''}`,
      ),
      ...config.sources.map((s) => `  source:   ${s.path} (${s.format}, log_line_prefix ${JSON.stringify(s.log_line_prefix)}, start at ${s.start_at})`),
      `  remediation: debounce ${config.remediation.debounce_ms} ms${config.remediation.dry_run ? ', DRY RUN (nothing is changed)' : ''}`,
      `  audit:    ${config.audit.path}`,
      `  state:    ${config.state_dir}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  });

/*
 * The operator's commands, each in its own module with its own dependencies. `seqwatch fix ...`
 * loads only fix's (a quicker start for scripts and sweeps); `--help` and anything unknown load all.
 */
const COMMANDS: Record<string, () => Promise<(program: Command) => void>> = {
  check: async () => (await import('./commands/check.js')).registerCheck,
  fix: async () => (await import('./commands/fix.js')).registerFix,
  audit: async () => (await import('./commands/audit.js')).registerAudit,
  replay: async () => (await import('./commands/replay.js')).registerReplay,
  doctor: async () => (await import('./commands/doctor.js')).registerDoctor,
};
const named = process.argv[2];
for (const name of named !== undefined && named in COMMANDS ? [named] : Object.keys(COMMANDS)) (await COMMANDS[name]!())(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else if (error instanceof CommandFailure) {
    process.stderr.write(`seqwatch: ${error.message}\n`);
    process.exitCode = error.exitCode;
  } else if (error instanceof ConfigError) {
    const running = process.argv[2] === 'run';
    process.stderr.write(`${error.message}\nseqwatch: invalid configuration${running ? '; nothing was started' : ''}\n`);
    process.exitCode = EXIT.failure;
  } else {
    process.stderr.write(`seqwatch: ${startupProblem(error as NodeJS.ErrnoException & { address?: string; port?: number })}\n`);
    process.exitCode = EXIT.failure;
  }
}

/**
 * One sentence for what went wrong, naming the file or port and the fix (FileAccessError already is
 * one); a stack trace only when asked for (SEQWATCH_LOG_LEVEL=debug), never at 3 a.m. by default.
 */
function startupProblem(error: NodeJS.ErrnoException & { address?: string; port?: number }): string {
  if (process.env.SEQWATCH_LOG_LEVEL === 'debug' && error.stack) return error.stack;
  const where = error.address !== undefined ? `${error.address}:${error.port}` : '';
  switch (error.code) {
    case 'EADDRINUSE':
      return `cannot serve metrics on ${where}: another program listens there already (\`ss -ltnp 'sport = :${error.port}'\` names it); choose a free port in metrics.listen`;
    case 'EACCES':
      if (where) return `cannot serve metrics on ${where}: permission denied (ports below 1024 need privileges); choose a port above 1024 in metrics.listen`;
      return `${error.message}: permission denied for the user seqwatch runs as; give it access${error.path ? ` to ${error.path}` : ''} or point the config elsewhere`;
    case 'EADDRNOTAVAIL':
      return `cannot serve metrics on ${where}: no such address on this host; use 127.0.0.1 in metrics.listen`;
    default:
      return error.message ?? String(error);
  }
}
