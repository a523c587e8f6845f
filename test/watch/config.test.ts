import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { runCli } from '../helpers/daemon.js';

describe('the watch in the config', () => {
  it('is on by default: every 2 s, a full sweep every 10 min', () => {
    expect(parseConfig('sources: []\n', 'c.yaml').watch).toEqual({ enabled: true, interval: 2_000, full_sweep: 600_000 });
  });

  it('takes durations, and sources: [] for a database with no log to follow', () => {
    const config = parseConfig('sources: []\nwatch:\n  interval: 5s\n  full_sweep: 1h\n', 'c.yaml');
    expect(config.sources).toEqual([]);
    expect(config.watch).toEqual({ enabled: true, interval: 5_000, full_sweep: 3_600_000 });
  });

  it('refuses a config that would do nothing, one without sources, and an interval too short', () => {
    expect(() => parseConfig('sources: []\nwatch:\n  enabled: false\n', 'c.yaml')).toThrow(
      /c\.yaml: sources: \[\] and watch\.enabled: false leave nothing to do/,
    );
    expect(() => parseConfig('audit:\n  path: /tmp/a\n', 'c.yaml')).toThrow(/c\.yaml:1:1: sources: required: .*or \[\] to rely on the watch alone/);
    expect(() => parseConfig('sources: []\nwatch:\n  interval: 10ms\n', 'c.yaml')).toThrow(/c\.yaml:3:13: watch\.interval: at least 100ms/);
    expect(() => parseConfig('sources: []\nwatch:\n  every: 1s\n', 'c.yaml')).toThrow(
      /watch\.every: unknown key \(known here: enabled, interval, full_sweep\)/,
    );
  });

  it('seqwatch replay with a watch-only config: the default format and prefix, not a TypeError', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-watchonly-'));
    writeFileSync(join(dir, 'seqwatch.yaml'), `sources: []\naudit:\n  path: ${dir}/audit.jsonl\nstate_dir: ${dir}\n`);
    writeFileSync(join(dir, 'old.log'), '2026-12-02 06:00:00.000 UTC [42] LOG:  checkpoint starting: time\n');
    const result = await runCli('replay', join(dir, 'old.log'), '-c', join(dir, 'seqwatch.yaml'));
    expect(result.stderr).not.toContain('TypeError');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('0 duplicate key errors');
  });
});
