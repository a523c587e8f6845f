import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditRecord } from '../audit/AuditLog.js';
import type { WatchStats } from '../watch/TableWatch.js';

export interface MetricsSources {
  /** Per source: records parsed so far, and bytes not yet read (file size minus position). */
  sources(): Array<{
    source: string;
    records: number;
    bytes: number;
    lagBytes: number;
    /** Bad input, counted and passed over: over-long lines, lines of no record, orphan continuations. */
    oddities: { oversized: number; unrecognised: number; orphan: number; misread?: number };
    /** Lines the pre-check passed over without parsing them (they cannot start a record that matters). */
    skipped: number;
  }>;
  incidents(): number;
  /** Catalog queries (name lookups) and sequence checks made so far. */
  catalogQueries(): number;
  checks(): number;
  /** Whether the audit log can be written, and how many records wait in memory. */
  audit(): { writable: boolean; held: number; lost: number; seq?: number };
  health(): Promise<{ ok: boolean; database: boolean; sources: boolean; problems?: Array<{ code: string; subject: string }> }>;
  /** The proactive watch of each database (absent or empty when it is off). */
  watch?(): Array<{ database: string; stats: WatchStats }>;
  /** The notifier's deliveries by result (undefined without a notify: section). */
  notifications?(): Record<'sent' | 'failed' | 'dropped' | 'suppressed', number> | undefined;
}

/** Alert reasons that exist today (src/remediate, src/audit, src/daemon/); others are counted when first seen. */
const KNOWN_ALERT_REASONS = [
  'recurring_drift',
  'sequence_exhausted',
  'sequence_missing',
  'sequence_permission_denied',
  'setval_out_of_bounds',
  'config_reload_failed',
  'audit_unwritable',
  'standby',
];

/** Sequences that have used less of their range than this are left out of seqwatch_sequence_used_ratio. */
export const USED_RATIO_SHOWN_FROM = 0.5;

const VERSION = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

/**
 * Prometheus metrics: records read per source, incidents, every audited decision by event, the
 * time from the log record to the fix, source lag, health. Counters that the pipeline already keeps
 * are read when scraped, not counted twice on the hot path.
 */
/** How often the event loop's lag is sampled (nodejs_eventloop_lag_*). */
export const EVENT_LOOP_SAMPLE_MS = 100;

export class Metrics {
  readonly registry = new Registry();
  private readonly decisions: Counter<'event'>;
  private readonly healSeconds: Histogram;
  private readonly alerts: Counter<'reason'>;

  constructor(sources: MetricsSources) {
    // Under their usual names (process_cpu_seconds_total, nodejs_heap_size_used_bytes...), as every
    // dashboard and rule written for Node expects them. The event loop's lag is sampled every 100
    // ms, not every 10 (prom-client's default): a timer at 100 Hz cost 10 ms of CPU a second on its
    // own (a VM, 2026-12-02; 3 ms at 100 ms), 0.5 ms per MiB of a log written at 20 MiB/s, a sixth
    // of what tail -F | grep -F takes for it; a stall long enough to matter still shows.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    new Gauge({
      name: 'seqwatch_build_info',
      help: 'Always 1; the version of seqwatch and of Node.js as labels',
      labelNames: ['version', 'nodejs'],
      registers: [this.registry],
    }).set({ version: VERSION, nodejs: process.versions.node }, 1);
    new Counter({
      name: 'seqwatch_log_records_total',
      help: 'Log records parsed, per source',
      labelNames: ['source'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of sources.sources()) this.inc({ source: s.source }, s.records);
      },
    });
    new Counter({
      name: 'seqwatch_log_bytes_total',
      help: 'Log bytes read, per source',
      labelNames: ['source'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of sources.sources()) this.inc({ source: s.source }, s.bytes);
      },
    });
    new Counter({
      name: 'seqwatch_log_oddities_total',
      help: 'Bad input passed over, per source and kind: oversized lines, unrecognised lines, orphan continuation lines, misread (auto: error lines the format it had chosen gave no record for)',
      labelNames: ['source', 'kind'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of sources.sources()) for (const [kind, n] of Object.entries(s.oddities)) this.inc({ source: s.source, kind }, n);
      },
    });
    new Counter({
      name: 'seqwatch_log_lines_skipped_total',
      help: 'Lines passed over unparsed by the pre-check (no record starting there can be a sequence error), per source',
      labelNames: ['source'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of sources.sources()) this.inc({ source: s.source }, s.skipped);
      },
    });
    new Gauge({
      name: 'seqwatch_source_lag_bytes',
      help: 'Bytes written to a source file and not yet read',
      labelNames: ['source'],
      registers: [this.registry],
      collect() {
        for (const s of sources.sources()) this.set({ source: s.source }, s.lagBytes);
      },
    });
    new Counter({
      name: 'seqwatch_notifications_total',
      help: 'Notifications (webhook and command) by result: sent, failed (after the retries), dropped (queue full), suppressed (over the per-reason limit, summed up later); from 0 again after a reload',
      labelNames: ['result'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [result, n] of Object.entries(sources.notifications?.() ?? {})) this.inc({ result }, n);
      },
    });
    new Counter({
      name: 'seqwatch_incidents_total',
      help: 'Duplicate key errors seen for the watched database',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(sources.incidents());
      },
    });
    new Counter({
      name: 'seqwatch_catalog_queries_total',
      help: 'Catalog queries made to look up constraint names (each asks about a batch of names)',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(sources.catalogQueries());
      },
    });
    new Counter({
      name: 'seqwatch_sequence_checks_total',
      help: 'Guarded checks of a sequence against its table (each may move it forward once)',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(sources.checks());
      },
    });
    new Gauge({
      name: 'seqwatch_audit_writable',
      help: '1 when the audit log can be written; 0 while records wait in memory (a full disk?)',
      registers: [this.registry],
      collect() {
        this.set(sources.audit().writable ? 1 : 0);
      },
    });
    new Gauge({
      name: 'seqwatch_audit_held_records',
      help: 'Audit records waiting in memory for the audit log to be writable again',
      registers: [this.registry],
      collect() {
        this.set(sources.audit().held);
      },
    });
    new Gauge({
      name: 'seqwatch_audit_chain_records',
      help: "Number of the audit chain's last record (records ever written): an anchor outside the file; it never goes down",
      registers: [this.registry],
      collect() {
        this.set(sources.audit().seq ?? 0);
      },
    });
    new Gauge({
      name: 'seqwatch_up',
      help: '1 when seqwatch can heal: every source read and parsed, a primary answering, the audit log writable (last heartbeat; docs/health.md)',
      registers: [this.registry],
      async collect() {
        this.set((await sources.health()).ok ? 1 : 0);
      },
    });
    new Gauge({
      name: 'seqwatch_health_problem',
      help: '1 per problem that keeps seqwatch from healing, by code (source_unreadable, database_standby, ...) and subject (docs/health.md)',
      labelNames: ['code', 'subject'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const p of (await sources.health()).problems ?? []) this.set({ code: p.code, subject: p.subject }, 1);
      },
    });
    this.decisions = new Counter({
      name: 'seqwatch_audit_events_total',
      help: 'Audited decisions by event: remediated, in_sync, alert, failed, skipped, ...',
      labelNames: ['event'],
      registers: [this.registry],
    });
    this.alerts = new Counter({
      name: 'seqwatch_alerts_total',
      help: 'Audited alerts (things a person must decide) by reason: recurring_drift, sequence_exhausted, standby, ...',
      labelNames: ['reason'],
      registers: [this.registry],
    });
    // The reasons known today start at 0, so that a rule's increase() sees the first alert of each.
    for (const reason of KNOWN_ALERT_REASONS) this.alerts.inc({ reason }, 0);
    const watches = () => sources.watch?.() ?? [];
    const watchCounter = (name: string, help: string, value: (s: WatchStats) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['database'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const w of watches()) this.inc({ database: w.database }, value(w.stats));
        },
      });
    watchCounter('seqwatch_watch_rounds_total', 'Looks at the table statistics by the watch', (s) => s.rounds);
    watchCounter('seqwatch_watch_failed_rounds_total', 'Watch rounds that failed (the database away, a statement refused)', (s) => s.failedRounds);
    watchCounter(
      'seqwatch_watch_full_sweeps_total',
      'Watch rounds that checked every sequence (first look, statistics reset, restart, watch.full_sweep)',
      (s) => s.fullSweeps,
    );
    watchCounter('seqwatch_watch_changed_tables_total', 'Tables the statistics showed to have received rows, summed over rounds', (s) => s.changedTables);
    watchCounter('seqwatch_watch_checked_sequences_total', 'Sequences checked by the watch (full sweeps included)', (s) => s.checkedSequences);
    new Gauge({
      name: 'seqwatch_watch_last_round_timestamp_seconds',
      help: 'When the watch last looked at the statistics successfully (Unix time); 0 before its first look',
      labelNames: ['database'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const w of watches()) this.set({ database: w.database }, w.stats.lastRoundAt / 1000);
      },
    });
    new Gauge({
      name: 'seqwatch_watch_last_round_seconds',
      help: 'How long the last watch round took (statistics query, checks and fixes)',
      labelNames: ['database'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const w of watches()) this.set({ database: w.database }, w.stats.lastRoundMs / 1000);
      },
    });
    new Gauge({
      name: 'seqwatch_watch_standby',
      help: '1 while the server is a standby (pg_is_in_recovery): nothing is checked there',
      labelNames: ['database'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const w of watches()) this.set({ database: w.database }, w.stats.standby ? 1 : 0);
      },
    });
    new Gauge({
      name: 'seqwatch_sequence_used_ratio',
      help: `How much of its range a sequence uses (the larger of its next value and MAX, over its limit), as last checked; only sequences past ${USED_RATIO_SHOWN_FROM * 100}%`,
      labelNames: ['database', 'sequence'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const w of watches())
          for (const [sequence, used] of w.stats.used) if (used >= USED_RATIO_SHOWN_FROM) this.set({ database: w.database, sequence }, used);
      },
    });
    new Gauge({
      name: 'seqwatch_sequence_max_used_ratio',
      help: 'The largest seqwatch_sequence_used_ratio over every sequence checked',
      labelNames: ['database'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const w of watches()) this.set({ database: w.database }, Math.max(0, ...w.stats.used.values()));
      },
    });
    this.healSeconds = new Histogram({
      name: 'seqwatch_heal_seconds',
      help: 'From the log record of the first error to the fix',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [this.registry],
    });
  }

  /** Counts an audit record; for a fix, observes how long after the error's log time it came. */
  observe(record: AuditRecord): void {
    this.decisions.inc({ event: record.event });
    if (record.event === 'alert') this.alerts.inc({ reason: typeof record.reason === 'string' ? record.reason : 'unknown' });
    if (record.event !== 'remediated' || !record.trigger?.log_time) return;
    const logged = Date.parse(record.trigger.log_time);
    if (!Number.isNaN(logged)) this.healSeconds.observe(Math.max(0, (Date.parse(record.time) - logged) / 1000));
  }
}

/**
 * Limits of the metrics server: a scraper sends its request at once, so a client that takes longer
 * (a slowloris, a stuck proxy) is cut off, and a flood of connections cannot hold the daemon's
 * sockets and memory. Node's defaults (60 s for headers, 300 s per request, checked every 30 s,
 * no cap) let slow clients hold connections for 100 s and more.
 */
export const METRICS_SERVER_LIMITS = {
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  /** An idle keep-alive connection, and any socket silent this long, is closed. */
  idleTimeoutMs: 10_000,
  maxConnections: 32,
} as const;

/**
 * /metrics and /healthz on a loopback address. Resolves once listening. `health` should answer
 * from what is known (the daemon's last heartbeat), not query anything per request.
 */
export async function startMetricsServer(listen: string, metrics: Metrics, health: MetricsSources['health']): Promise<Server> {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(listen.slice(at + 1));
  const limits = METRICS_SERVER_LIMITS;
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.idleTimeoutMs,
      // How often the timeouts above are enforced (Node's default, 30 s, would let them run long).
      connectionsCheckingInterval: 1_000,
    },
    (request, response) => {
      void (async () => {
        try {
          if (request.method === 'GET' && request.url === '/metrics') {
            response.writeHead(200, { 'content-type': metrics.registry.contentType });
            response.end(await metrics.registry.metrics());
          } else if (request.method === 'GET' && request.url === '/healthz') {
            const state = await health();
            response.writeHead(state.ok ? 200 : 503, { 'content-type': 'application/json' });
            response.end(JSON.stringify(state) + '\n');
          } else {
            response.writeHead(404, { 'content-type': 'text/plain' });
            response.end('seqwatch: /metrics or /healthz\n');
          }
        } catch (error) {
          response.writeHead(500, { 'content-type': 'text/plain' });
          response.end(`${(error as Error).message}\n`);
        }
      })();
    },
  );
  server.maxConnections = limits.maxConnections;
  server.setTimeout(limits.idleTimeoutMs, (socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
