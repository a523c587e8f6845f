import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { freePort, metricValue, repoRootPath, startDaemon, waitUntil, type RunningDaemon } from '../helpers/daemon.js';

/** The metric names a PromQL expression uses (Prometheus's own `up` apart). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b((?:seqwatch|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
}

/** Every PromQL query of a Grafana dashboard: panel targets and templating queries. */
function dashboardQueries(dashboard: { panels: Array<{ targets?: Array<{ expr: string }> }>; templating: { list: Array<{ query: { query: string } }> } }): string[] {
  return [...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)), ...dashboard.templating.list.map((v) => v.query.query)];
}

describe('the monitoring kit against a live daemon', () => {
  let db: TestDatabase;
  let daemon: RunningDaemon;
  let port: number;
  let exported: Set<string>;
  let text: string;

  beforeAll(async () => {
    db = await createTestDatabase('monitoring');
    // A sequence past half its range, so that the headroom metric has a series.
    await db.pool.query(`CREATE TABLE tiny (id smallserial PRIMARY KEY); SELECT setval('tiny_id_seq', 30000)`);
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-monitoring-'));
    const appLog = join(dir, 'app.log');
    writeFileSync(appLog, 'hello\n');
    port = await freePort();
    daemon = await startDaemon({
      database: { url: db.url },
      sources: [{ path: appLog, format: 'postgres-stderr', log_line_prefix: '%m [%p] ', start_at: 'beginning' }],
      metrics: { listen: `127.0.0.1:${port}` },
      watch: {},
    });
    await waitUntil('a watch round', async () => (await metricValue(port, 'seqwatch_watch_rounds_total')) >= 1, 20_000);
    text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    exported = new Set([...text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )/gm)].map((m) => m[1]!));
  });

  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
  });

  it('exports the process metrics under their usual names, and seqwatch_build_info', () => {
    expect(exported).toContain('process_cpu_seconds_total');
    expect(exported).toContain('process_resident_memory_bytes');
    expect(exported).toContain('nodejs_heap_size_used_bytes');
    expect([...exported].filter((name) => name.startsWith('seqwatch_process_'))).toEqual([]);
    const version = (JSON.parse(readFileSync(repoRootPath('package.json'), 'utf8')) as { version: string }).version;
    expect(text).toMatch(new RegExp(`^seqwatch_build_info\\{version="${version.replace(/\./g, '\\.')}",nodejs="${process.versions.node.replace(/\./g, '\\.')}"\\} 1$`, 'm'));
  });

  it('exports what the rules need: alerts by reason from 0, the watch, the headroom of a sequence past half its range', () => {
    expect(text).toMatch(/^seqwatch_alerts_total\{reason="recurring_drift"\} 0$/m);
    expect(text).toMatch(/^seqwatch_watch_standby\{database="[^"]+"\} 0$/m);
    expect(text).toMatch(/^seqwatch_sequence_used_ratio\{database="[^"]+",sequence="public\.tiny_id_seq"\} 0\.91/m);
  });

  it('every query of the Grafana dashboard names metrics the daemon exports', () => {
    const dashboard = JSON.parse(readFileSync(repoRootPath('monitoring/grafana/seqwatch-dashboard.json'), 'utf8'));
    const queries = dashboardQueries(dashboard);
    expect(queries.length).toBeGreaterThan(20);
    for (const query of queries) {
      const names = metricsIn(query);
      expect(names.length, `no seqwatch metric in ${query}`).toBeGreaterThan(0);
      for (const name of names) expect(exported.has(name), `${name} (in the dashboard query ${query}) is not exported`).toBe(true);
    }
  });

  it('every alert rule names metrics the daemon exports', () => {
    const rules = parse(readFileSync(repoRootPath('monitoring/prometheus/seqwatch.rules.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    const all = rules.groups.flatMap((g) => g.rules);
    expect(all.length).toBe(11);
    for (const rule of all) {
      const names = metricsIn(rule.expr);
      // SeqwatchDown is Prometheus's own `up` for the scrape job.
      if (rule.alert === 'SeqwatchDown') continue;
      expect(names.length, `no seqwatch metric in ${rule.alert}`).toBeGreaterThan(0);
      for (const name of names) expect(exported.has(name), `${name} (rule ${rule.alert}) is not exported`).toBe(true);
    }
  });
});
