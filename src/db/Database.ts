import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';
import pgPass from 'pgpass';
import { traceHeal, tracingHeal } from '../metrics/healTrace.js';
import type { Queryable } from './Queryable.js';

/** Why no usable server answered: each calls for a different fix (see docs/health.md). */
export type UnavailableReason = 'unreachable' | 'standby' | 'read_only' | 'authentication';

/** Thrown when no usable server answers: down, restarting, a standby, or mid-failover. Worth waiting for. */
export class DatabaseUnavailable extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
    readonly reason: UnavailableReason = 'unreachable',
  ) {
    super(message);
    this.name = 'DatabaseUnavailable';
  }
}

/**
 * The server refused the login (SQLSTATE 28P01 wrong password, 28000 no pg_hba.conf entry or no
 * such role, or no password to give). Waiting does not cure it: at start the daemon exits with a
 * clear error; while running it keeps trying (the password may be fixed and reloaded) and says so.
 */
export class DatabaseAuthenticationFailed extends DatabaseUnavailable {
  constructor(
    message: string,
    cause: unknown,
    readonly role: string,
    readonly host: string,
  ) {
    super(message, cause, 'authentication');
    this.name = 'DatabaseAuthenticationFailed';
  }
}

/** The exit code of a daemon that cannot log in at start (EX_CONFIG): a restart cannot fix it. */
export const EXIT_AUTHENTICATION = 78;

/** pg's words when a server asks for a SCRAM password and none was configured. */
const NO_PASSWORD = /^SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string/;

/** A login refused by the server, or a password the client does not have for a SCRAM/md5 server. */
export function isAuthenticationFailure(error: unknown): boolean {
  if (error instanceof DatabaseAuthenticationFailed) return true;
  const e = error as { code?: string; message?: string };
  if (e?.code === '28P01' || e?.code === '28000') return true;
  return /^SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string|password authentication failed|no pg_hba\.conf entry/.test(e?.message ?? '');
}

export interface DatabaseOptions {
  /** libpq URL; several hosts allowed (`postgresql://u@h1:5432,h2:5432/db?target_session_attrs=read-write`). */
  url?: string;
  /** A password that overrides the URL's (read from `database.password_file`). */
  password?: string;
  /** First and largest wait between reconnection attempts. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** `limited`: the server refused one more connection while others worked (see shrinkOnRefusal); said once. */
  onEvent?: (event: 'connected' | 'unavailable' | 'limited', detail: Record<string, unknown>) => void;
}

/** Connections the pool may open, until the server refuses one (see shrinkOnRefusal). */
export const POOL_SIZE = 3;
/** Connections the pool keeps open however idle (of its 3): each has rehearsed a fix (Database.rehearse). */
export const KEPT_CONNECTIONS = 2;
/** too_many_connections: the role's CONNECTION LIMIT, or the server's max_connections (or its reserved slots). */
const TOO_MANY_CONNECTIONS = '53300';

/** SQLSTATEs and socket errors that mean "this server cannot serve us now", not "this statement is wrong". */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '25006', '08000', '08001', '08003', '08004', '08006']);
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

export function isUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseUnavailable) return true;
  const e = error as { code?: string; message?: string };
  if (e?.code && (UNAVAILABLE_SQLSTATES.has(e.code) || UNAVAILABLE_ERRNOS.has(e.code))) return true;
  // pg-pool's "timeout exceeded when trying to connect": no connection to be had in time (a restart,
  // an overloaded server), not a wrong statement: waited out and retried like the others.
  return /Connection terminated|connection timeout|Client has encountered a connection error|terminating connection|timeout exceeded when trying to connect/i.test(
    e?.message ?? '',
  );
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

/** What one configured host is, for `doctor` and the daemon's log. */
export interface ServerRole {
  host: string;
  /** primary: in production use; standby: in recovery (never used); read-only: not in recovery, but transaction_read_only is on. */
  role: 'primary' | 'standby' | 'read-only' | 'unavailable' | 'authentication failed';
  error?: string;
}

/**
 * The daemon's connection to PostgreSQL. Tries the URL's hosts in order and keeps only a primary:
 * a server in recovery (a standby, pg_is_in_recovery()) is passed over whatever the URL says, since
 * its sequences and tables are not the primary's and nothing may be checked, planned or fixed from
 * them; with `target_session_attrs=read-write` (or `primary`) a read-only server is passed over too.
 * When the server goes away (restart, failover, promotion of another host) queries fail with
 * DatabaseUnavailable and the pool is dropped. Reconnection backs off: 0.5 s after the first
 * failure, doubling to 5 s, for every caller together; until then queries fail at once without
 * touching the network. It never gives up: the daemon must outlive every outage.
 */
export class Database implements Queryable {
  private pool: pg.Pool | undefined;
  private connecting: Promise<pg.Pool> | undefined;
  private endpoints: Endpoint[];
  private readWrite: boolean;
  private cachedName: string | undefined;
  private closed = false;
  /** Failures in a row (connections refused, or dropped soon after they were made), for the backoff. */
  private failures = 0;
  /** No new connection attempt before this time (the backoff); `lastError` is thrown meanwhile. */
  private retryAt = 0;
  private connectedAt = 0;
  /** A login succeeded once: a refused login after that is a changed password, not a wrong config. */
  private everConnected = false;
  /** A wait for the server has said why it waits (once per outage: see waitUntilAvailable). */
  private waitSaid = false;
  /** The server's refusal of one more connection has been said (once, until the config is reloaded). */
  private limitSaid = false;
  /** Why the last attempt found no usable server; undefined while connected. */
  lastError: DatabaseUnavailable | undefined;
  /** The host in use, for the audit ("which server was fixed"). */
  host: string | undefined;
  /**
   * Run on each new connection of the primary before its first use, and by rehearse(): a
   * read-only run of the statements a fix sends (see rehearseGuardedSetval), so that the first fix
   * on a connection does not pay for the server's first planning of them (its catalog caches are
   * per connection: 10-20 ms on a new one against 1-3 ms). Its errors are ignored. `run`: 0 on a
   * new connection, which a caller waits for; rehearse() runs 0 then 1 (see there).
   */
  rehearsal: ((client: pg.PoolClient, run?: number) => Promise<unknown>) | undefined;

  constructor(private options: DatabaseOptions = {}) {
    ({ endpoints: this.endpoints, readWrite: this.readWrite } = endpointsOf(options.url));
  }

  /** New URL or password (a reloaded config): the next query connects with them, at once. */
  reconfigure(options: DatabaseOptions): void {
    this.options = options;
    ({ endpoints: this.endpoints, readWrite: this.readWrite } = endpointsOf(options.url));
    this.cachedName = undefined;
    this.failures = 0;
    this.retryAt = 0;
    this.limitSaid = false;
    this.drop();
  }

  /** The database name, as pg works it out from the URL or the libpq environment. */
  get name(): string {
    this.cachedName ??= new pg.Client(this.endpoints[0]!.url ? { connectionString: this.endpoints[0]!.url } : {}).database ?? '';
    return this.cachedName;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[] }> {
    const pool = await this.connected();
    for (let attempt = 1; ; attempt++) {
      try {
        return await pool.query<R>(text, values);
      } catch (error) {
        // One more connection refused while others work: again, on those (the pool is now full).
        if (attempt < POOL_SIZE && this.shrinkOnRefusal(pool, error)) continue;
        throw this.failed(pool, error);
      }
    }
  }

  /** Runs `fn` on one connection inside a transaction (advisory locks that end with it). */
  transaction<T>(fn: (client: Queryable) => Promise<T>): Promise<T> {
    return this.withClient(async (client) => {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    });
  }

  /** Runs `statements` in one transaction, written together with its BEGIN and COMMIT: see pipelined(). */
  pipeline(statements: Statement[]): Promise<Array<{ rows: pg.QueryResultRow[] }>> {
    return this.withClient((client) => pipelined(client, statements));
  }

  /**
   * Runs the rehearsal (see `rehearsal`) now on KEPT_CONNECTIONS connections of the pool at once
   * (opening the second if need be), the ones the pool keeps open: a fix that comes while another
   * query holds one (the watch, the heartbeat) then takes the other, warm, instead of opening a
   * cold one. On one only when the server allows one (see shrinkOnRefusal). Twice on each, ahead of
   * any fix (a new connection opened for a waiting caller rehearses once): after one run the first
   * fix on a connection still took 4.8 ms of its server process's CPU, after two 2.3 ms, as much as
   * any later fix of a table it had not read (2.2-2.4 ms; medians of 12, /proc/<pid>/schedstat,
   * PostgreSQL 15). True when every rehearsal succeeded; never throws.
   */
  async rehearse(): Promise<boolean> {
    const rehearsal = this.rehearsal;
    if (!rehearsal) return false;
    // As many as the pool may keep (one, for a role allowed one connection: see shrinkOnRefusal).
    const kept = Math.min(KEPT_CONNECTIONS, this.pool ? limitsOf(this.pool).max : KEPT_CONNECTIONS);
    const runs = Array.from({ length: kept }, () =>
      this.withClient(async (client) => {
        await rehearsal(client, 0);
        await rehearsal(client, 1);
      }).then(
        () => true,
        () => false,
      ),
    );
    return (await Promise.all(runs)).every(Boolean);
  }

  /**
   * Runs `fn` on one connection of the pool. An error rolls back a transaction left open; a
   * connection that failed (or whose transaction state is unknown) is not returned to the pool.
   */
  private async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const pool = await this.connected();
    let broken = false;
    // A checked-out connection that dies between two queries (pg_terminate_backend, a restart)
    // emits 'error' with no query to take it: without a listener that would end the process.
    const onError = () => (broken = true);
    let client: pg.PoolClient | undefined;
    for (let attempt = 1; !client; attempt++) {
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
        // One more connection refused while others work: wait for one of those instead.
        if (attempt < POOL_SIZE && this.shrinkOnRefusal(pool, error)) continue;
        throw this.failed(pool, error);
      }
    }
    try {
      return await fn(client);
    } catch (error) {
      broken = isUnavailable(error);
      if (!broken && transactionStatus(client) !== 'I') await client.query('ROLLBACK').catch(() => (broken = true));
      throw broken ? this.failed(pool, error) : error;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  /**
   * Resolves once a usable server answers; one attempt per backoff step. Rejects when aborted or
   * closed, and, with `failOnAuthentication`, when the server refuses the login before any login
   * succeeded (the daemon's start).
   */
  async waitUntilAvailable(signal?: AbortSignal, options: { failOnAuthentication?: boolean } = {}): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.closed) throw new DatabaseUnavailable('database connection closed');
      const wait = this.retryAt - Date.now();
      if (wait > 0) await sleep(wait, undefined, { signal });
      try {
        await this.query('SELECT 1');
        return;
      } catch (error) {
        // Only before the first login ever succeeded: a password that goes wrong later is waited out (and said).
        if (options.failOnAuthentication && error instanceof DatabaseAuthenticationFailed && !this.everConnected) throw error;
        // Say why once per outage: "connection refused", "a standby" and "password" call for different
        // fixes. Once, not once per wait: a storm of distinct names waits by the thousand (each lookup
        // on its own), and said by each it was 2,301 lines in one millisecond of a field trial.
        if (!this.waitSaid) this.options.onEvent?.('unavailable', { error: (error as Error).message });
        this.waitSaid = true;
        // A statement error that is no outage must not make this a busy loop either.
        if (this.retryAt <= Date.now()) this.backOff(error);
      }
    }
  }

  /** Each configured host and what it is right now (each asked on a connection of its own). */
  async serverRoles(): Promise<ServerRole[]> {
    const roles: ServerRole[] = [];
    for (const endpoint of this.endpoints) {
      const pool = this.createPool(endpoint.url);
      try {
        const state = await probe(pool);
        roles.push({ host: endpoint.label, role: state.inRecovery ? 'standby' : state.readOnly ? 'read-only' : 'primary' });
      } catch (error) {
        roles.push({ host: endpoint.label, role: isAuthenticationFailure(error) ? 'authentication failed' : 'unavailable', error: (error as Error).message });
      } finally {
        await pool.end().catch(() => {});
      }
    }
    return roles;
  }

  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => {});
  }

  /**
   * The server refused one more connection of the pool in use (53300: the role's CONNECTION LIMIT,
   * max_connections) while others of it are open: that is no outage, and those that work are not
   * dropped. The pool shrinks to what it has (the caller then waits for one of them) and the
   * daemon says so once. True when so; a 53300 with no other connection open stays an outage.
   */
  private shrinkOnRefusal(pool: pg.Pool, error: unknown): boolean {
    if ((error as { code?: string } | undefined)?.code !== TOO_MANY_CONNECTIONS || this.pool !== pool || pool.totalCount === 0) return false;
    const limits = limitsOf(pool);
    limits.max = Math.min(limits.max, pool.totalCount);
    limits.min = Math.min(limits.min, limits.max);
    if (!this.limitSaid) {
      this.limitSaid = true;
      const role = roleOf(this.endpoints.find((e) => e.label === this.host)?.url ?? '');
      this.options.onEvent?.('limited', { host: this.host, role, connections: limits.max, error: (error as Error).message });
    }
    return true;
  }

  private failed(pool: pg.Pool, error: unknown): Error {
    const refused = !(error instanceof DatabaseUnavailable) && isAuthenticationFailure(error);
    if (!refused && !isUnavailable(error)) return error as Error;
    const host = this.host ?? this.endpoints[0]!.label;
    // A new connection of the pool refused (the password changed on the server): as at connect.
    const role = refused ? roleOf(this.endpoints.find((e) => e.label === host)?.url ?? '') : '';
    const unavailable = refused
      ? new DatabaseAuthenticationFailed(`${host}: the server refused the login of role ${role}: ${(error as Error).message}`, error, role, host)
      : error instanceof DatabaseUnavailable
        ? error
        : new DatabaseUnavailable(unavailableMessage(error, this.host), error, readOnlyError(error) ? 'read_only' : 'unreachable');
    if (this.pool === pool) {
      this.options.onEvent?.('unavailable', { host: this.host, error: unavailable.message });
      this.drop();
      this.backOff(unavailable);
    }
    return unavailable;
  }

  /**
   * One more failure: no attempt before 0.5 s, 1 s, 2 s, 4 s, then every 5 s. A connection that
   * had lasted longer than the longest wait ends a new outage, which starts again at 0.5 s; one that
   * failed soon after it was made (a read-only server without target_session_attrs) counts on. A
   * working connection the server terminated (57P01: pg_terminate_backend, a shutdown) starts a new
   * outage too: the server answered until then, and if it is going down the next attempt says so.
   */
  private backOff(error: unknown): void {
    const initial = this.options.retryInitialMs ?? 500;
    const max = this.options.retryMaxMs ?? 5_000;
    if (this.connectedAt && (Date.now() - this.connectedAt > max || terminatedByServer(error))) this.failures = 0;
    this.connectedAt = 0;
    this.failures++;
    this.retryAt = Date.now() + Math.min(initial * 2 ** (this.failures - 1), max);
    this.lastError = error instanceof DatabaseUnavailable ? error : new DatabaseUnavailable((error as Error).message, error);
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
    // Within the backoff: the last answer stands, and the servers are left alone.
    if (this.lastError && Date.now() < this.retryAt) return Promise.reject(this.lastError);
    this.connecting ??= this.connect()
      .catch((error: unknown) => {
        this.backOff(error);
        throw error;
      })
      .finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** Tries each host in turn; the first primary (that accepts writes, when asked) wins. */
  private async connect(): Promise<pg.Pool> {
    const reasons: string[] = [];
    const found = new Set<UnavailableReason>();
    let refusedLogin: DatabaseAuthenticationFailed | undefined;
    for (const endpoint of this.endpoints) {
      const pool = this.createPool(endpoint.url);
      let state: { inRecovery: boolean; readOnly: boolean };
      try {
        state = await probe(pool);
      } catch (error) {
        await pool.end().catch(() => {});
        if (isAuthenticationFailure(error)) {
          const role = roleOf(endpoint.url);
          const why = (error as { code?: string }).code
            ? `${(error as Error).message} (${(error as { code?: string }).code})`
            : NO_PASSWORD.test((error as Error).message)
              ? 'the server asks for a password and no password was given (database.password_file, the URL, PGPASSWORD or ~/.pgpass)'
              : (error as Error).message;
          refusedLogin ??= new DatabaseAuthenticationFailed(
            `${endpoint.label}: the server refused the login of role ${role}: ${why}`,
            error,
            role,
            endpoint.label,
          );
          reasons.push(`${endpoint.label}: login of role ${role} refused: ${why}`);
          found.add('authentication');
        } else {
          reasons.push(`${endpoint.label}: ${(error as Error).message}`);
          found.add('unreachable');
        }
        continue;
      }
      if (state.inRecovery || (this.readWrite && state.readOnly)) {
        await pool.end().catch(() => {});
        reasons.push(
          state.inRecovery
            ? `${endpoint.label}: a standby (in recovery): nothing is checked or fixed there, only on the primary`
            : `${endpoint.label}: read-only (transaction_read_only is on) and target_session_attrs asks for read-write`,
        );
        found.add(state.inRecovery ? 'standby' : 'read_only');
        continue;
      }
      this.pool = pool;
      this.host = endpoint.label;
      this.connectedAt = Date.now();
      this.everConnected = true;
      this.lastError = undefined;
      this.waitSaid = false;
      this.options.onEvent?.('connected', { host: endpoint.label });
      return pool;
    }
    const message = `no usable database server: ${reasons.join('; ')}`;
    if (refusedLogin) throw new DatabaseAuthenticationFailed(message, refusedLogin.cause, refusedLogin.role, refusedLogin.host);
    const reason = (['standby', 'read_only'] as const).find((r) => found.has(r)) ?? 'unreachable';
    throw new DatabaseUnavailable(message, undefined, reason);
  }

  private createPool(url: string): pg.Pool {
    const explicit = this.options.password;
    // Parsed here, not passed as connectionString: pg would let the URL's (empty) password win.
    const fromUrl = url ? parseIntoClientConfig(url) : {};
    const urlPassword = typeof fromUrl.password === 'string' && fromUrl.password !== '' ? fromUrl.password : undefined;
    const pool = new pg.Pool({
      ...fromUrl,
      max: POOL_SIZE,
      application_name: 'seqwatch',
      connectionTimeoutMillis: 5_000,
      statement_timeout: 30_000,
      lock_timeout: 5_000,
      idleTimeoutMillis: 60_000,
      // Connections kept open past the idle timeout: rehearsed ones (see rehearse()).
      min: KEPT_CONNECTIONS,
      // Queries issued without waiting for the one before go out together (pipelined()); each still
      // runs alone, in order, with its own Sync: a query awaited before the next is sent as before.
      pipeline: true,
      // Only a connection of the pool in use (a primary, probed): never one being probed.
      verify: (client, done) => {
        const rehearsal = this.rehearsal;
        if (!rehearsal || this.pool !== pool) return done();
        // pg-pool takes its own 'error' listener off a new connection before verify, and the caller
        // puts one on only once it is handed out: a termination (57P01) during the rehearsal would be
        // an unhandled 'error' event, which ends the process. A connection that broke here is given
        // back as an error (pg-pool drops it), so the caller meets the outage it is.
        let broken: Error | undefined;
        const onError = (error: Error) => (broken ??= error);
        client.on('error', onError);
        void rehearsal(client)
          .catch(() => undefined)
          .then(() => {
            client.removeListener('error', onError);
            done(broken);
          });
      },
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
    // An idle connection that dies (server restart) must not crash the process. The pool in use is
    // dropped too: the next query connects through connect(), whose probe sees whether the server
    // came back as a standby (the pool's own reconnection would not ask).
    pool.on('error', () => {
      if (this.pool === pool) this.drop();
    });
    return pool;
  }
}

/** A statement of a pipelined transaction; `onDone` is told when its own result arrives. */
export interface Statement {
  text: string;
  values?: unknown[];
  onDone?: () => void;
}

/** The connection's transaction status at its last ReadyForQuery: 'I' idle, 'T' in a transaction, 'E' in a failed one. */
function transactionStatus(client: pg.ClientBase): string | null {
  return (client as pg.ClientBase & { getTransactionStatus(): string | null }).getTransactionStatus();
}

/**
 * Runs `statements` in one transaction on `client`, written to the server together with the BEGIN
 * before them and the COMMIT after them (pg's pipeline mode): one round trip instead of one per
 * statement, and no wake-up of either process between them. The server still runs them one after
 * the other, each to its end before the next is read (an advisory lock is held before the next
 * statement starts and takes its snapshot), all in the one transaction; after an error the
 * transaction is aborted, every statement behind it fails without running, and the COMMIT ends it
 * as a ROLLBACK: what transaction() would have done. The only difference: the COMMIT is sent
 * before the results are seen, which cannot change what a statement did (it had run), only whether
 * it is kept, and a failed statement's transaction is never kept. Resolves to each statement's
 * result; rejects with the first error.
 */
export async function pipelined(client: pg.ClientBase, statements: Statement[]): Promise<Array<{ rows: pg.QueryResultRow[] }>> {
  // A connection inside a transaction would make BEGIN a warning and our COMMIT end someone else's.
  if (transactionStatus(client) !== 'I') throw new Error(`a pipelined transaction needs an idle connection (status ${transactionStatus(client)})`);
  if (tracingHeal()) traceHeal('sent', { backend: (client as pg.ClientBase & { processID: number | null }).processID });
  const sent: Array<Promise<pg.QueryResult>> = [client.query('BEGIN'), ...statements.map((s) => client.query(s.text, s.values)), client.query('COMMIT')];
  statements.forEach((s, i) => {
    if (s.onDone) void sent[i + 1]!.then(s.onDone, () => {});
  });
  const settled = await Promise.allSettled(sent);
  const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
  return settled.slice(1, -1).map((r) => (r as PromiseFulfilledResult<pg.QueryResult>).value);
}

/** pg-pool's own limits, read by it at each checkout: lowered by Database.shrinkOnRefusal. */
function limitsOf(pool: pg.Pool): { max: number; min: number } {
  return (pool as unknown as { options: { max: number; min: number } }).options;
}

/** Whether a server is a standby, and whether it takes writes; one statement. */
async function probe(pool: pg.Pool): Promise<{ inRecovery: boolean; readOnly: boolean }> {
  const { rows } = await pool.query<{ in_recovery: boolean; read_only: string }>(
    "SELECT pg_is_in_recovery() AS in_recovery, current_setting('transaction_read_only') AS read_only",
  );
  return { inRecovery: rows[0]?.in_recovery === true, readOnly: rows[0]?.read_only === 'on' };
}

/** The role a URL logs in as (the URL's, else PGUSER, else the operating system user, as pg does). */
function roleOf(url: string): string {
  return new pg.Client(url ? parseIntoClientConfig(url) : {}).user ?? '(unknown role)';
}

/** 57P01 admin_shutdown: the server ended this connection (pg_terminate_backend, or a shutdown). */
function terminatedByServer(error: unknown): boolean {
  const original = error instanceof DatabaseUnavailable ? error.cause : error;
  return (original as { code?: string } | undefined)?.code === '57P01';
}

/** 25006: a server turned read-only under an open connection (demoted, or default_transaction_read_only). */
function readOnlyError(error: unknown): boolean {
  return (error as { code?: string })?.code === '25006';
}

function unavailableMessage(error: unknown, host: string | undefined): string {
  const message = (error as Error).message;
  return readOnlyError(error) && host ? `${host}: ${message}` : message;
}

/** Each configured host of `db` and whether it is the primary, a standby or read-only (for `doctor`). */
export function serverRoles(db: Database): Promise<ServerRole[]> {
  return db.serverRoles();
}
