#!/usr/bin/env node
// First: on an unsupported Node.js, one clear sentence and exit 1 before anything else loads.
import './nodeVersion.js';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CommandFailure, EXIT } from './exit.js';
import { withoutFetchLoading } from './fetchLoading.js';

/*
 * The commander wiring, and nothing a command does: each command is a module of its own
 * (commands/), loaded with its dependencies only when it runs. Start-up is most of what a short
 * command costs (`check` every minute from monitoring, `--version` from scripts and packaging).
 */
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
const args = process.argv.slice(2);

/**
 * The operator's commands, in the order --help lists them. `seqwatch fix ...` loads only fix's
 * module; `--help` and anything unknown load all of them (their registration, not what they run).
 */
const COMMANDS: Record<string, () => Promise<(program: Command) => void>> = {
  run: async () => (await import('./commands/run.js')).registerRun,
  health: async () => (await import('./commands/health.js')).registerHealth,
  config: async () => (await import('./commands/config.js')).registerConfig,
  check: async () => (await import('./commands/check.js')).registerCheck,
  fix: async () => (await import('./commands/fix.js')).registerFix,
  audit: async () => (await import('./commands/audit.js')).registerAudit,
  replay: async () => (await import('./commands/replay.js')).registerReplay,
  doctor: async () => (await import('./commands/doctor.js')).registerDoctor,
};

if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  // What commander would print, without loading it: as quick as `node -e 0`.
  process.stdout.write(`${pkg.version}\n`);
} else {
  await runCommand();
}

async function runCommand(): Promise<void> {
  const { Command, CommanderError } = await import('commander');
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
  const named = args[0];
  // A reader that goes away (`seqwatch audit | head -1`) wants no more output: the rest is dropped,
  // not thrown as an unhandled EPIPE with a stack trace, and the command ends with its own exit code
  // (for `set -o pipefail`). Not for the daemon, whose log is its stdout.
  if (named !== 'run') {
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      process.stdout.write = (() => true) as typeof process.stdout.write;
    });
  }
  const wanted = named !== undefined && Object.hasOwn(COMMANDS, named) ? [named] : Object.keys(COMMANDS);
  for (const register of await withoutFetchLoading(() => Promise.all(wanted.map((name) => COMMANDS[name]!())))) register(program);

  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    } else if (error instanceof CommandFailure) {
      process.stderr.write(`seqwatch: ${error.message}\n`);
      process.exitCode = error.exitCode;
    } else if (error instanceof (await import('../config/config.js')).ConfigError) {
      const running = named === 'run';
      process.stderr.write(
        `${error.message}\nseqwatch: ${error.unread ? 'no configuration read' : 'invalid configuration'}${running ? '; nothing was started' : ''}\n`,
      );
      process.exitCode = EXIT.failure;
    } else {
      process.stderr.write(`seqwatch: ${startupProblem(error as NodeJS.ErrnoException & { address?: string; port?: number })}\n`);
      process.exitCode = EXIT.failure;
    }
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
