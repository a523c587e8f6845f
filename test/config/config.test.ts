import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, configWarnings, parseConfig } from '../../src/config/config.js';
import { runCli as cli } from '../helpers/daemon.js';
import { repoRoot } from '../helpers/db.js';

function configFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'seqwatch-config-')), 'seqwatch.yaml');
  writeFileSync(path, text);
  return path;
}

const VALID = `database:
  url: postgresql://seqwatch:secret@127.0.0.1:5432/gotrs
sources:
  - path: /var/log/postgresql/postgresql-15-main.log
    format: postgres-stderr
    log_line_prefix: '%m [%p] %q%u@%d '
remediation:
  debounce_ms: 200
  dry_run: false
audit:
  path: /var/log/seqwatch/audit.jsonl
state_dir: /var/lib/seqwatch
`;

describe('config', () => {
  it('accepts the documented example, with defaults filled in', () => {
    const config = parseConfig(VALID, '/etc/seqwatch/seqwatch.yaml');
    expect(config.sources[0]).toMatchObject({ format: 'postgres-stderr', start_at: 'end' });
    expect(config.remediation).toEqual({ debounce_ms: 200, dry_run: false, cooldown: 5000, max_fixes_per_hour: 10, stale_after: 3_600_000 });
  });

  it('accepts the commented example config that ships in config/', () => {
    const path = join(repoRoot, 'config/seqwatch.example.yaml');
    const config = parseConfig(readFileSync(path, 'utf8'), path);
    expect(config.remediation).toMatchObject({ cooldown: 5000, max_fixes_per_hour: 10 });
    expect(config.sources[0]!.log_line_prefix).toBe('%m [%p] %q%u@%d ');
  });

  it('names file, line and column of a wrong value', () => {
    expect(() => parseConfig(VALID.replace('debounce_ms: 200', 'debounce_ms: soon'), 'c.yaml')).toThrow(/^c\.yaml:8:16: remediation\.debounce_ms: /);
  });

  it('rejects a misspelt key, saying which keys are known', () => {
    try {
      parseConfig(VALID.replace('dry_run: false', 'dryrun: true'), 'c.yaml');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toBe(
        'c.yaml:9:3: remediation.dryrun: unknown key (known here: debounce_ms, dry_run, sweep_interval, cooldown, max_fixes_per_hour, stale_after, max_jump, near_limit_percent)',
      );
    }
  });

  it('reports YAML syntax errors with their position', () => {
    expect(() => parseConfig('sources:\n  - path: [unclosed\n', 'c.yaml')).toThrow(/^c\.yaml:\d+:\d+: YAML: /);
  });

  it('rejects a config without sources, and a broken log_line_prefix', () => {
    expect(() => parseConfig('audit:\n  path: /tmp/a\n', 'c.yaml')).toThrow(/sources/);
    expect(() => parseConfig(VALID.replace("'%m [%p] %q%u@%d '", "'%m %'"), 'c.yaml')).toThrow(
      /c\.yaml:6:22: sources\.0\.log_line_prefix: log_line_prefix ends with a lone '%'/,
    );
  });

  it('seqwatch config check: exit 0 and a summary without the password', async () => {
    const result = await cli('config', 'check', '-c', configFile(VALID));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('valid');
    expect(result.stdout).toContain('postgresql://seqwatch:***@127.0.0.1:5432/gotrs');
    expect(result.stdout).not.toContain('secret');
  });

  it('seqwatch config check: a log_line_prefix only for the sources that read one (a container log by what it wraps)', async () => {
    const yaml = [
      'database:',
      '  url: postgresql://seqwatch@127.0.0.1:5432/gotrs',
      'sources:',
      '  - path: /var/log/postgresql/postgresql-15-main.log',
      "    log_line_prefix: '%m [%p] %q%u@%d '",
      '  - path: /var/log/gotrs/app.log',
      '    format: app-text',
      '  - path: /var/lib/docker/containers/x/x-json.log',
      '    format: docker-json',
      '  - path: /var/log/pods/cnpg.log',
      '    format: cri',
      '    inner_format: cnpg-json',
    ].join('\n');
    const result = await cli('config', 'check', '-c', configFile(yaml));
    expect(result.code).toBe(0);
    const sources = result.stdout.split('\n').filter((line) => line.startsWith('  source:'));
    expect(sources).toEqual([
      `  source:   /var/log/postgresql/postgresql-15-main.log (postgres-stderr, log_line_prefix "%m [%p] %q%u@%d ", start at end)`,
      '  source:   /var/log/gotrs/app.log (app-text, start at end)',
      `  source:   /var/lib/docker/containers/x/x-json.log (docker-json of postgres-stderr, log_line_prefix "%m [%p] ", start at end)`,
      '  source:   /var/log/pods/cnpg.log (cri of cnpg-json, start at end)',
    ]);
    // The warnings name a container log the same way (it said "docker-json gives no SQLSTATE").
    expect(result.stderr).toContain('/var/lib/docker/containers/x/x-json.log: docker-json of postgres-stderr gives no SQLSTATE (no %e in log_line_prefix), so');
  });

  it('several databases: a log_line_prefix without %d is warned of wherever the prefix is read (auto too, not csvlog)', () => {
    const withFormat = (format: string) =>
      parseConfig(
        `databases:\n  - url: postgresql://a@127.0.0.1/one\n  - url: postgresql://a@127.0.0.1/two\nsources:\n  - path: /var/log/postgresql/pg.log\n    format: ${format}\n    log_line_prefix: '%m [%p] '\n`,
        'c.yaml',
      );
    const noDatabase = (format: string) => configWarnings('c.yaml', withFormat(format)).filter((w) => w.includes('has no %d'));
    expect(noDatabase('postgres-stderr')).toHaveLength(1);
    expect(noDatabase('syslog')).toHaveLength(1);
    // auto reads the prefix when the log turns out to be the server's stderr log (formatNames.readsLogLinePrefix).
    expect(noDatabase('auto')).toHaveLength(1);
    expect(noDatabase('postgres-csv')).toHaveLength(0);
    expect(noDatabase('postgres-json')).toHaveLength(0);
  });

  it('seqwatch config check: exit 1 with file:line:column on an invalid file', async () => {
    const path = configFile(VALID.replace('dry_run: false', 'dry_run: maybe'));
    const result = await cli('config', 'check', '-c', path);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${path}:9:12: remediation.dry_run:`);
  });

  it('seqwatch run refuses to start on an invalid config; unknown commands exit 64', async () => {
    // No source and no watch: nothing to do (sources: [] alone is the watch-only mode since issue 15).
    const result = await cli('run', '-c', configFile('sources: []\nwatch:\n  enabled: false\n'));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('nothing was started');
    expect((await cli('frobnicate')).code).toBe(64);
    // A config that is not there is said so, with where one comes from: not "invalid", not errno's words.
    const missing = await cli('config', 'check', '-c', '/nonexistent/seqwatch.yaml');
    expect(missing.stderr).toBe(
      '/nonexistent/seqwatch.yaml: no such config file: give one with -c FILE (an install copies config/seqwatch.example.yaml to /etc/seqwatch/seqwatch.yaml)\nseqwatch: no configuration read\n',
    );
    expect(missing.code).toBe(1);
  });
});
