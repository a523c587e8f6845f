import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { repoRoot } from '../helpers/db.js';

const run = promisify(execFile);

/*
 * No Docker engine and no systemd as PID 1 here: these check what can be checked without them.
 * The compose file, the Dockerfile and the unit are read as an engine or systemd would read them.
 */
describe('the container image and the compose example', () => {
  const compose = parse(readFileSync(join(repoRoot, 'deploy/compose.yaml'), 'utf8'));
  const pg = compose.services['gotrs-postgres'];
  const seqwatch = compose.services.seqwatch;
  const settings = Object.fromEntries(
    (pg.command as string[]).filter((_, i, all) => all[i - 1] === '-c').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  const configMount = (seqwatch.volumes as string[]).find((v) => v.endsWith(':/etc/seqwatch/seqwatch.yaml:ro'))!;
  const config = parseConfig(readFileSync(join(repoRoot, 'deploy', configMount.split(':')[0]!), 'utf8'), 'seqwatch.compose.yaml');

  it('runs gotrs-postgres with the log settings seqwatch is configured for', () => {
    expect(settings.logging_collector).toBe('on');
    expect(settings.log_destination).toBe('jsonlog');
    // The collector names the jsonlog file after log_filename, .log becoming .json.
    expect(config.sources[0]!.path).toBe(join(settings.log_directory!, settings.log_filename!.replace(/\.log$/, '.json')));
    expect(config.sources[0]!.format).toBe('postgres-json');
  });

  it('shares the log volume read-only, on the same network, locked down, with a health check', () => {
    const pgLogVolume = (pg.volumes as string[]).find((v) => v.endsWith(`:${settings.log_directory}`))!.split(':')[0];
    expect(seqwatch.volumes).toContain(`${pgLogVolume}:${settings.log_directory}:ro`);
    expect(new URL(config.database.url!).hostname).toBe('gotrs-postgres');
    expect(seqwatch.read_only).toBe(true);
    expect(seqwatch.depends_on['gotrs-postgres'].condition).toBe('service_healthy');
    expect(seqwatch.healthcheck.test.join(' ')).toContain('health -c /etc/seqwatch/seqwatch.yaml');
    // Every other path it writes is a volume, since the root filesystem is read-only.
    for (const dir of [config.state_dir, '/var/log/seqwatch']) expect((seqwatch.volumes as string[]).some((v) => v.split(':')[1] === dir)).toBe(true);
    expect(config.audit.path.startsWith('/var/log/seqwatch/')).toBe(true);
    expect(config.database.password_file).toBe(`/run/secrets/${seqwatch.secrets[0]}`);
  });

  it('has a Dockerfile whose copied paths exist after a build, running as non-root', () => {
    const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile.match(/^FROM /gm)).toHaveLength(2);
    const copies = [...dockerfile.matchAll(/^COPY (--from=build )?(.+)$/gm)].map((m) => ({ fromBuild: Boolean(m[1]), args: m[2]!.split(/\s+/) }));
    for (const { fromBuild, args } of copies) {
      for (const source of args.slice(0, -1)) {
        // A build-stage path under /src is the repository's after `npm ci && tsc`.
        const local = fromBuild ? source.replace(/^\/src\//, '') : source;
        expect(existsSync(join(repoRoot, local)), `${source} (COPY${fromBuild ? ' --from=build' : ''})`).toBe(true);
      }
    }
  });

  it('has an entrypoint that runs', async () => {
    const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    const entrypoint = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(dockerfile)![1]!) as string[];
    const cmd = JSON.parse(/^CMD (.+)$/m.exec(dockerfile)![1]!) as string[];
    expect(entrypoint.slice(0, 2)).toEqual(['node', '/app/dist/cli/main.js']);
    expect(cmd).toEqual(['run', '-c', '/etc/seqwatch/seqwatch.yaml']);
    const local = [join(repoRoot, 'dist/cli/main.js')];
    const { stdout } = await run(process.execPath, [...local, '--version']);
    expect(stdout.trim()).toBe(JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version);
    const help = await run(process.execPath, [...local, cmd[0]!, '--help']);
    expect(help.stdout).toContain('--config');
  });
});

describe('the systemd unit', () => {
  const unit = join(repoRoot, 'systemd/seqwatch.service');
  const text = readFileSync(unit, 'utf8');

  it('is a notify service with a watchdog, reload, restart and its own directories', () => {
    for (const line of [
      'Type=notify',
      'NotifyAccess=all',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'Restart=on-failure',
      'DynamicUser=yes',
      'StateDirectory=seqwatch',
      'LogsDirectory=seqwatch',
      'ConfigurationDirectory=seqwatch',
    ]) {
      expect(text).toContain(`\n${line}\n`);
    }
    expect(text).toMatch(/\nWatchdogSec=\d+s\n/);
    expect(text).toMatch(/\nSupplementaryGroups=.*\badm\b/);
  });

  const analyze = existsSync('/usr/bin/systemd-analyze') && existsSync('/usr/bin/node');
  it.runIf(analyze)('passes systemd-analyze verify and rates 2.0 or lower in security --offline=true', async () => {
    await run('systemd-analyze', ['verify', unit]);
    const { stdout } = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', unit]);
    const exposure = Number(/Overall exposure level for seqwatch\.service: ([\d.]+)/.exec(stdout)?.[1]);
    expect(exposure).toBeLessThanOrEqual(2.0);
  });
});
