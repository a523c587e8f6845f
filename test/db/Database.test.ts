import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import { Database, DatabaseUnavailable, isUnavailable } from '../../src/db/Database.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitUntil } from '../helpers/daemon.js';

/**
 * A TCP proxy in front of the test server that can hold what the server sends and hand it over in
 * one write: what a busy client sees when its event loop falls behind (messages sent apart, read
 * together).
 */
class CoalescingProxy {
  hold = false;
  /** Drops each new connection at once: an outage. */
  refuse = false;
  private held: { socket: Socket; chunks: Buffer[]; ended: boolean }[] = [];
  private server: Server;

  constructor(private target: { host: string; port: number }) {
    this.server = createServer((client) => {
      if (this.refuse) return void client.destroy();
      const upstream = connect(this.target.port, this.target.host);
      const entry = { socket: client, chunks: [] as Buffer[], ended: false };
      this.held.push(entry);
      client.on('data', (chunk) => upstream.write(chunk));
      client.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      upstream.on('data', (chunk) => (this.hold || entry.chunks.length > 0 ? entry.chunks.push(chunk) : client.write(chunk)));
      upstream.on('end', () => (this.hold || entry.chunks.length > 0 ? (entry.ended = true) : client.end()));
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as { port: number }).port;
  }

  /** Hands over everything held, per connection in one write, then the end of those that ended. */
  flush(): void {
    this.hold = false;
    for (const entry of this.held) {
      if (entry.chunks.length > 0) entry.socket.write(Buffer.concat(entry.chunks));
      entry.chunks = [];
      if (entry.ended) entry.socket.end();
    }
  }

  close(): Promise<void> {
    for (const entry of this.held) entry.socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('isUnavailable', () => {
  // Seen in the fault test on a loaded machine: during a server restart a lookup waited for one of
  // the pool's connections longer than connectionTimeoutMillis; pg-pool's "timeout exceeded when
  // trying to connect" was taken for a wrong statement, and that table was never healed.
  it("counts pg-pool's wait for a free connection timing out as unavailability", async () => {
    const pool = new pg.Pool({ connectionString: inject('pg').url, max: 1, connectionTimeoutMillis: 200 });
    const held = await pool.connect();
    const error = await pool.query('SELECT 1').then(
      () => undefined,
      (e: unknown) => e,
    );
    held.release();
    await pool.end();
    expect((error as Error).message).toBe('timeout exceeded when trying to connect');
    expect(isUnavailable(error)).toBe(true);
  });
});

describe('Database', () => {
  let db: TestDatabase;
  let proxy: CoalescingProxy;
  let proxyUrl: string;

  beforeAll(async () => {
    db = await createTestDatabase('dbconn');
    const target = new URL(db.url);
    proxy = new CoalescingProxy({ host: target.hostname, port: Number(target.port) });
    target.port = String(await proxy.listen());
    proxyUrl = target.toString();
  });

  afterAll(async () => {
    await proxy?.close();
    await db?.drop();
  });

  it('survives a connection terminated right after it was established, the FATAL read with its ReadyForQuery', async () => {
    const database = new Database({ url: proxyUrl, retryInitialMs: 50 });
    try {
      // A first transaction keeps the pool's one connection busy, so the next one opens a new one.
      let finishFirst!: () => void;
      let firstPid = 0;
      const first = database.transaction(async (client) => {
        firstPid = Number((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
        await new Promise<void>((resolve) => (finishFirst = resolve));
      });
      await waitUntil('the first transaction holds its connection', async () => firstPid !== 0, 5_000);

      proxy.hold = true;
      const second = database.transaction((client) => client.query('SELECT 1'));
      second.catch(() => {});
      // The new connection is set up (its ReadyForQuery held by the proxy); then terminated.
      const backend = async () =>
        (
          await db.pool.query<{ pid: number }>(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'seqwatch' AND pid <> $1 AND state = 'idle'",
            [firstPid],
          )
        ).rows[0]?.pid;
      await waitUntil('the second connection is idle on the server', async () => (await backend()) !== undefined, 5_000);
      const pid = (await backend())!;
      await db.pool.query('SELECT pg_terminate_backend($1)', [pid]);
      await waitUntil(
        'the terminated backend is gone',
        async () => (await db.pool.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rows.length === 0,
        5_000,
      );
      proxy.flush();

      await expect(second).rejects.toBeInstanceOf(DatabaseUnavailable);
      finishFirst();
      await first.catch(() => {});
      // And it goes on: the next transaction gets a working connection.
      await database.waitUntilAvailable();
      const { rows } = await database.transaction((client) => client.query<{ one: number }>('SELECT 1 AS one'));
      expect(rows).toEqual([{ one: 1 }]);
    } finally {
      proxy.flush();
      await database.close();
    }
  });

  it('a working connection terminated by the server (pg_terminate_backend, 57P01) starts a new outage: retried after 0.5 s, not after a backoff grown by earlier ones', async () => {
    // Connections killed again and again (an idle-session killer, a DBA, the faults test): each had
    // answered, so each is an outage of its own, not one outage growing to 5 s between attempts.
    const database = new Database({ url: db.url });
    try {
      const waits: number[] = [];
      for (let i = 0; i < 5; i++) {
        await database.waitUntilAvailable();
        const running = database.transaction((client) => client.query('SELECT pg_sleep(30)'));
        running.catch(() => {});
        await waitUntil(
          'the statement runs',
          async () =>
            (await db.pool.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'seqwatch' AND query LIKE 'SELECT pg_sleep%' AND state = 'active'"))
              .rows.length > 0,
          5_000,
        );
        await db.pool.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'seqwatch' AND query LIKE 'SELECT pg_sleep%'");
        await expect(running).rejects.toBeInstanceOf(DatabaseUnavailable);
        const failedAt = Date.now();
        await database.waitUntilAvailable();
        waits.push(Date.now() - failedAt);
      }
      // Before: 0.5, 1, 2, 4, 5 s. Now each about 0.5 s (generous bound for a loaded machine).
      expect(Math.max(...waits)).toBeLessThan(2_000);
    } finally {
      await database.close();
    }
  });

  it('backs off for every caller together: 0.5 s doubling to 5 s, however many queries ask meanwhile', async () => {
    // A server that takes each connection and drops it: an outage that answers at once.
    let attempts = 0;
    const dropper = createServer((socket) => {
      attempts++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => dropper.listen(0, '127.0.0.1', resolve));
    const database = new Database({ url: `postgresql://u@127.0.0.1:${(dropper.address() as { port: number }).port}/db` });
    try {
      const until = Date.now() + 4_000;
      let failures = 0;
      while (Date.now() < until) {
        // Ten callers at once, again and again (lookups, checks, the health check).
        const results = await Promise.allSettled(Array.from({ length: 10 }, () => database.query('SELECT 1')));
        failures += results.filter((r) => r.status === 'rejected' && r.reason instanceof DatabaseUnavailable).length;
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(failures).toBeGreaterThan(100);
      // At 0, 0.5, 1.5 and 3.5 s: four attempts in four seconds (one more on a slow machine at most).
      expect(attempts).toBeGreaterThanOrEqual(3);
      expect(attempts).toBeLessThanOrEqual(5);
    } finally {
      await database.close();
      dropper.close();
    }
  });

  it('says an outage once, however many wait it out together; a new outage is said again', async () => {
    const said: string[] = [];
    const database = new Database({ url: proxyUrl, retryInitialMs: 50, retryMaxMs: 100, onEvent: (event) => said.push(event) });
    const giveUp = new AbortController();
    const unavailable = () => said.filter((event) => event === 'unavailable').length;
    try {
      proxy.refuse = true;
      // A storm of distinct names meets the outage: each lookup waits on its own.
      const waits = Array.from({ length: 200 }, () => database.waitUntilAvailable(giveUp.signal));
      await new Promise((r) => setTimeout(r, 500));
      expect(unavailable()).toBe(1);
      proxy.refuse = false;
      await Promise.all(waits);
      expect(said.filter((event) => event === 'connected')).toHaveLength(1);

      proxy.refuse = true;
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', ['seqwatch']);
      await admin.end();
      const again = Array.from({ length: 200 }, () => database.waitUntilAvailable(giveUp.signal).catch(() => 'given up'));
      await new Promise((r) => setTimeout(r, 500));
      // The pool's drop says it, then the waits: once between them.
      expect(unavailable()).toBeLessThanOrEqual(3);
      expect(unavailable()).toBeGreaterThanOrEqual(2);
      giveUp.abort();
      expect(new Set(await Promise.all(again))).toEqual(new Set(['given up']));
    } finally {
      proxy.refuse = false;
      await database.close();
    }
  });
});
