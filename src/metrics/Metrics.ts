import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditRecord } from '../audit/AuditLog.js';

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
}

/**
 * Prometheus metrics: records read per source, incidents, every audited decision by event, the
 * time from the log record to the fix, source lag, health. Counters that the pipeline already keeps
 * are read when scraped, not counted twice on the hot path.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly decisions: Counter<'event'>;
  private readonly healSeconds: Histogram;

  constructor(sources: MetricsSources) {
    collectDefaultMetrics({ register: this.registry, prefix: 'seqwatch_process_' });
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
  const server = createServer({
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    // How often the timeouts above are enforced (Node's default, 30 s, would let them run long).
    connectionsCheckingInterval: 1_000,
  }, (request, response) => {
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
  });
  server.maxConnections = limits.maxConnections;
  server.setTimeout(limits.idleTimeoutMs, (socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
