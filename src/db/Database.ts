import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';
import pgPass from 'pgpass';
import type { Queryable } from './Queryable.js';

/** Thrown when no usable server answers: down, restarting, a standby, or mid-failover. Worth waiting for. */
export class DatabaseUnavailable extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'DatabaseUnavailable';
  }
}

export interface DatabaseOptions {
  /** libpq URL; several hosts allowed (`postgresql://u@h1:5432,h2:5432/db?target_session_attrs=read-write`). */
  url?: string;
  /** A password that overrides the URL's (read from `database.password_file`). */
  password?: string;
  /** First and largest wait between reconnection attempts. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  onEvent?: (event: 'connected' | 'unavailable', detail: Record<string, unknown>) => void;
}

/** SQLSTATEs and socket errors that mean "this server cannot serve us now", not "this statement is wrong". */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '25006', '08000', '08001', '08003', '08004', '08006']);
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

export function isUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseUnavailable) return true;
  const e = error as { code?: string; message?: string };
  if (e?.code && (UNAVAILABLE_SQLSTATES.has(e.code) || UNAVAILABLE_ERRNOS.has(e.code))) return true;
  return /Connection terminated|connection timeout|Client has encountered a connection error|terminating connection/i.test(e?.message ?? '');
}

interface Endpoint {
  url: string;
  label: string;
}

/**
 * Splits a multi-host URL into one URL per host, as libpq tries them in order. node-postgres
 * takes one host only, so host selection and `target_session_attrs` are done here.
 */
export function endpointsOf(url: string | undefined): { endpoints: Endpoint[]; readWrite: boolean } {
  if (!url) return { endpoints: [{ url: '', label: 'libpq environment' }], readWrite: false };
  const match = /^(postgres(?:ql)?:\/\/)([^@/?]*@)?([^/?]*)(.*)$/.exec(url);
  if (!match) return { endpoints: [{ url, label: 'database' }], readWrite: false };
  const [, scheme, auth = '', hosts = '', rest = ''] = match;
  const params = new URLSearchParams(rest.includes('?') ? rest.slice(rest.indexOf('?') + 1) : '');
  const readWrite = ['read-write', 'primary'].includes(params.get('target_session_attrs') ?? '');
  params.delete('target_session_attrs');
  const path = rest.includes('?') ? rest.slice(0, rest.indexOf('?')) : rest;
  const query = params.toString() ? `?${params.toString()}` : '';
  const endpoints = hosts.split(',').map((host) => ({ url: `${scheme}${auth}${host}${path}${query}`, label: host || 'localhost' }));
  return { endpoints, readWrite };
}

/**
 * The daemon's connection to PostgreSQL. Tries the URL's hosts in order and, with
 * `target_session_attrs=read-write`, keeps only a server that accepts writes, so fixes go to the
 * primary. When the server goes away (restart, failover, promotion of another host) queries fail
 * with DatabaseUnavailable, the pool is dropped, and `waitUntilAvailable` reconnects with backoff.
 * It never gives up: the daemon must outlive every outage.
 */
export class Database implements Queryable {
  private pool: pg.Pool | undefined;
  private connecting: Promise<pg.Pool> | undefined;
  private endpoints: Endpoint[];
  private readWrite: boolean;
  private cachedName: string | undefined;
  private closed = false;
  /** The host in use, for the audit ("which server was fixed"). */
  host: string | undefined;
  lastOkAt = 0;

  constructor(private options: DatabaseOptions = {}) {
    ({ endpoints: this.endpoints, readWrite: this.readWrite } = endpointsOf(options.url));
  }

  /** New URL or password (a reloaded config): the next query connects with them. */
  reconfigure(options: DatabaseOptions): void {
    this.options = options;
    ({ endpoints: this.endpoints, readWrite: this.readWrite } = endpointsOf(options.url));
    this.cachedName = undefined;
    this.drop();
  }

  /** The database name, as pg works it out from the URL or the libpq environment. */
  get name(): string {
    this.cachedName ??= new pg.Client(this.endpoints[0]!.url ? { connectionString: this.endpoints[0]!.url } : {}).database ?? '';
    return this.cachedName;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[] }> {
    const pool = await this.connected();
    try {
      const result = await pool.query<R>(text, values);
      this.lastOkAt = Date.now();
      return result;
    } catch (error) {
      throw this.failed(pool, error);
    }
  }

  /** Runs `fn` on one connection inside a transaction (advisory locks that end with it). */
  async transaction<T>(fn: (client: Queryable) => Promise<T>): Promise<T> {
    const pool = await this.connected();
    let broken = false;
    // A checked-out connection that dies between two queries (pg_terminate_backend, a restart)
    // emits 'error' with no query to take it: without a listener that would end the process.
    const onError = () => (broken = true);
    let client: pg.PoolClient;
    try {
      // The listener goes on inside pg-pool's callback, not after an await: a new connection's
      // ReadyForQuery and a FATAL sent just after it can arrive in one read, and the parser emits
      // that FATAL before any awaiting code resumes.
      client = await new Promise<pg.PoolClient>((resolve, reject) =>
        pool.connect((error, connected) => {
          if (error || !connected) return reject(error ?? new Error('no connection'));
          connected.on('error', onError);
          resolve(connected);
        }),
      );
    } catch (error) {
      throw this.failed(pool, error);
    }
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      this.lastOkAt = Date.now();
      return result;
    } catch (error) {
      broken = isUnavailable(error);
      if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
      throw broken ? this.failed(pool, error) : error;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  /** Resolves once a usable server answers; retries with backoff. Rejects only when aborted or closed. */
  async waitUntilAvailable(signal?: AbortSignal): Promise<void> {
    let delay = this.options.retryInitialMs ?? 500;
    let said = false;
    for (;;) {
      signal?.throwIfAborted();
      if (this.closed) throw new DatabaseUnavailable('database connection closed');
      try {
        await (await this.connected()).query('SELECT 1');
        this.lastOkAt = Date.now();
        return;
      } catch (error) {
        // Say why once per wait: "connection refused" and "read-only" call for different fixes.
        if (!said) this.options.onEvent?.('unavailable', { error: (error as Error).message });
        said = true;
        this.drop();
        await sleep(delay, undefined, { signal });
        delay = Math.min(delay * 2, this.options.retryMaxMs ?? 5_000);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => {});
  }

  private failed(pool: pg.Pool, error: unknown): Error {
    if (!isUnavailable(error)) return error as Error;
    if (this.pool === pool) {
      this.options.onEvent?.('unavailable', { host: this.host, error: (error as Error).message });
      this.drop();
    }
    return error instanceof DatabaseUnavailable ? error : new DatabaseUnavailable((error as Error).message, error);
  }

  private drop(): void {
    const pool = this.pool;
    this.pool = undefined;
    this.host = undefined;
    void pool?.end().catch(() => {});
  }

  private connected(): Promise<pg.Pool> {
    if (this.pool) return Promise.resolve(this.pool);
    if (this.closed) return Promise.reject(new DatabaseUnavailable('database connection closed'));
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** Tries each host in turn; the first that answers (and accepts writes, when asked) wins. */
  private async connect(): Promise<pg.Pool> {
    const reasons: string[] = [];
    for (const endpoint of this.endpoints) {
      const pool = this.createPool(endpoint.url);
      try {
        if (this.readWrite) {
          const { rows } = await pool.query<{ ro: string }>('SHOW transaction_read_only');
          if (rows[0]?.ro === 'on') {
            reasons.push(`${endpoint.label}: read-only (a standby?)`);
            await pool.end();
            continue;
          }
        } else {
          await pool.query('SELECT 1');
        }
      } catch (error) {
        reasons.push(`${endpoint.label}: ${(error as Error).message}`);
        await pool.end().catch(() => {});
        continue;
      }
      this.pool = pool;
      this.host = endpoint.label;
      this.lastOkAt = Date.now();
      this.options.onEvent?.('connected', { host: endpoint.label });
      return pool;
    }
    throw new DatabaseUnavailable(`no usable database server: ${reasons.join('; ')}`);
  }

  private createPool(url: string): pg.Pool {
    const explicit = this.options.password;
    // Parsed here, not passed as connectionString: pg would let the URL's (empty) password win.
    const fromUrl = url ? parseIntoClientConfig(url) : {};
    const urlPassword = typeof fromUrl.password === 'string' && fromUrl.password !== '' ? fromUrl.password : undefined;
    const pool = new pg.Pool({
      ...fromUrl,
      max: 3,
      application_name: 'seqwatch',
      connectionTimeoutMillis: 5_000,
      statement_timeout: 30_000,
      lock_timeout: 5_000,
      idleTimeoutMillis: 60_000,
      // password_file, then the URL or PGPASSWORD, then PGPASSFILE / ~/.pgpass, as libpq does.
      password: async () => {
        if (explicit !== undefined) return explicit;
        if (urlPassword !== undefined) return urlPassword;
        if (process.env.PGPASSWORD) return process.env.PGPASSWORD;
        // libpq reads the password file when PGPASSWORD is empty; pgpass skips it when the variable exists at all.
        if (process.env.PGPASSWORD === '') delete process.env.PGPASSWORD;
        const params = new pg.Client(fromUrl);
        return new Promise<string | undefined>((resolve) =>
          pgPass({ host: params.host, port: params.port, database: params.database, user: params.user }, resolve),
        ) as Promise<string>;
      },
    });
    // An idle connection that dies (server restart) must not crash the process: the next query reconnects.
    pool.on('error', () => {});
    return pool;
  }
}
