import type { Command } from 'commander';
import type { Daemon } from '../../daemon/Daemon.js';
import { EXIT } from '../exit.js';
import { printableJson } from '../output.js';

/** `seqwatch run`: the daemon in the foreground. Its modules are loaded when it runs, not when it is registered. */
export function registerRun(program: Command): void {
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
      const [{ default: pino }, { loadConfig }] = await Promise.all([import('pino'), import('../../config/config.js')]);
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
      const { Daemon } = await import('../../daemon/Daemon.js');
      daemon = await Daemon.start(config, options.config, logger);
      // Non-zero when it stopped because it cannot work (the database refused the login: 78).
      void daemon.finished.then(() => process.exit(daemon!.exitCode));
      if (stopSignal) void daemon.stop(stopSignal).then(() => process.exit(daemon!.exitCode));
      else if (reloadWanted) void daemon.reload();
    });
}
