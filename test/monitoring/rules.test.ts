import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { repoRootPath } from '../helpers/daemon.js';

/** promtool comes with Debian's `prometheus` package (.ci/run installs it). */
function findPromtool(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const promtool = findPromtool();
const SKIPPED = promtool ? '' : ' (SKIPPED: promtool is not installed here: apt-get install prometheus)';

describe('the Prometheus alert rules (monitoring/prometheus)', () => {
  it.skipIf(!promtool)(`are valid rules${SKIPPED}`, () => {
    const result = spawnSync(promtool!, ['check', 'rules', repoRootPath('monitoring/prometheus/seqwatch.rules.yml')], { encoding: 'utf8' });
    expect(result.stdout + result.stderr).toContain('SUCCESS: 11 rules found');
    expect(result.status).toBe(0);
  });

  it.skipIf(!promtool)(`fire when they should and only then (promtool test rules)${SKIPPED}`, () => {
    const result = spawnSync(promtool!, ['test', 'rules', repoRootPath('monitoring/prometheus/seqwatch.rules.test.yml')], { encoding: 'utf8' });
    expect(result.stdout + result.stderr, result.stdout + result.stderr).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });
});
