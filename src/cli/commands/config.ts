import type { Command } from 'commander';

/** `seqwatch config check`: validates a config file and prints what it understood. */
export function registerConfig(program: Command): void {
  const configCommand = program
    .command('config')
    .description('work with the config file')
    .addHelpText(
      'after',
      '\nExamples:\n  seqwatch config check -c /etc/seqwatch/seqwatch.yaml\n  seqwatch config check -c ./seqwatch.yaml && systemctl reload seqwatch',
    );
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
      const { configWarnings, databasesOf, formatNameOf, loadConfig, recordFormatOf, redactUrl } = await import('../../config/config.js');
      const { readsLogLinePrefix } = await import('../../formats/formatNames.js');
      const config = await loadConfig(options.config);
      for (const warning of configWarnings(options.config, config)) process.stderr.write(`warning: ${warning}\n`);
      const lines = [
        `${options.config}: valid`,
        ...databasesOf(config).map(
          (d) =>
            `  database: ${redactUrl(d.url)}${d.password_credential ? ` (password from the credential ${d.password_credential} under systemd${d.password_file ? `, else ${d.password_file}` : ''})` : d.password_file ? ` (password from ${d.password_file})` : ''}`,
        ),
        ...config.sources.map((s) => {
          const prefix = readsLogLinePrefix(recordFormatOf(s)) ? `, log_line_prefix ${JSON.stringify(s.log_line_prefix)}` : '';
          return `  source:   ${s.path} (${formatNameOf(s)}${prefix}, start at ${s.start_at})`;
        }),
        `  remediation: debounce ${config.remediation.debounce_ms} ms${config.remediation.dry_run ? ', DRY RUN (nothing is changed)' : ''}`,
        `  audit:    ${config.audit.path}`,
        `  state:    ${config.state_dir}`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });
}
