import { describe, expect, it } from 'vitest';
import { Metrics, type MetricsSources } from '../../src/metrics/Metrics.js';

const quiet: MetricsSources = {
  sources: () => [],
  incidents: () => 0,
  catalogQueries: () => 0,
  checks: () => 0,
  audit: () => ({ writable: true, held: 0, lost: 0 }),
  health: async () => ({ ok: true, database: true, sources: true }),
};

describe('seqwatch_notifications_total', () => {
  it("counts the notifier's deliveries by result: sent, failed, dropped, suppressed", async () => {
    const metrics = new Metrics({ ...quiet, notifications: () => ({ sent: 7, failed: 2, dropped: 1, suppressed: 3 }) });
    const text = await metrics.registry.metrics();
    expect(text).toContain('seqwatch_notifications_total{result="sent"} 7');
    expect(text).toContain('seqwatch_notifications_total{result="failed"} 2');
    expect(text).toContain('seqwatch_notifications_total{result="dropped"} 1');
    expect(text).toContain('seqwatch_notifications_total{result="suppressed"} 3');
  });

  it('has no series when nothing is notified (no notify: section)', async () => {
    const text = await new Metrics({ ...quiet, notifications: () => undefined }).registry.metrics();
    expect(text).not.toMatch(/^seqwatch_notifications_total\{/m);
  });
});
