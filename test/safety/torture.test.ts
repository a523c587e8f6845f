import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, findLocalBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';

const WRITERS = 4;
const INSERTS_PER_WRITER = 150;
const IMPORT_FOR_MS = 8_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/*
 * The daemon against the race it exists for: writers INSERT without ids (retrying on 23505) while
 * an importer keeps writing explicit ids ahead of the sequence, so the sequence falls behind again
 * and again. The errors reach seqwatch the real way, through the server's log. A sampler reads the
 * sequence throughout: it must never go down.
 */
describe.runIf(findLocalBinaries())('concurrency torture', () => {
  let server: ThrowawayPostgres;
  let url: string;
  let daemon: RunningDaemon | undefined;
  const clients: pg.Client[] = [];

  async function connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    server = await startLocalPostgres({ logLinePrefix: '%m [%p] %q%u@%d ' });
    url = await createDatabase(server, 'torture');
    const admin = await connect();
    await admin.query(
      "CREATE TABLE ticket (id bigserial PRIMARY KEY, title text NOT NULL); INSERT INTO ticket (id, title) SELECT g, 'imported' FROM generate_series(1, 1000) g",
    );
  });

  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await server?.destroy();
  });

  it('writers all succeed, no id is handed out twice, and the sequence never moves backwards', async () => {
    daemon = await startDaemon({
      database: { url },
      sources: [{ path: server.logPath!, log_line_prefix: server.logLinePrefix }],
      // An importer that never stops would trip the hourly cap (rightly): lifted for the race.
      remediation: { debounce_ms: 50, cooldown: '0s', max_fixes_per_hour: 100_000 },
    });

    let importing = true;
    let sampling = true;
    const samples: bigint[] = [];
    const sampler = (async () => {
      const client = await connect();
      while (sampling) {
        samples.push(BigInt((await client.query<{ v: string }>('SELECT last_value::text AS v FROM ticket_id_seq')).rows[0]!.v));
        await sleep(5);
      }
    })();

    let imported = 0;
    const importer = (async () => {
      const client = await connect();
      while (importing) {
        try {
          const { rowCount } = await client.query(
            "INSERT INTO ticket (id, title) SELECT (SELECT max(id) FROM ticket) + g, 'imported' FROM generate_series(1, 25) g",
          );
          imported += rowCount ?? 0;
        } catch (error) {
          if ((error as { code?: string }).code !== '23505') throw error;
        }
        await sleep(100 + Math.random() * 150);
      }
    })();

    const failures = new Array<number>(WRITERS).fill(0);
    const ids: string[][] = Array.from({ length: WRITERS }, () => []);
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      const client = await connect();
      const deadline = Date.now() + 90_000;
      while (ids[w]!.length < INSERTS_PER_WRITER) {
        try {
          ids[w]!.push((await client.query<{ id: string }>("INSERT INTO ticket (title) VALUES ('app') RETURNING id::text AS id")).rows[0]!.id);
          await sleep(IMPORT_FOR_MS / INSERTS_PER_WRITER / 2);
        } catch (error) {
          if ((error as { code?: string }).code !== '23505') throw error;
          failures[w]!++;
          if (Date.now() > deadline) throw new Error(`writer ${w} still failing after 90 s`, { cause: error });
          await sleep(5 + Math.random() * 15);
        }
      }
    });

    await sleep(IMPORT_FOR_MS);
    importing = false;
    await importer;
    await Promise.all(writers);
    sampling = false;
    await sampler;

    const all = ids.flat();
    expect(all).toHaveLength(WRITERS * INSERTS_PER_WRITER);
    expect(new Set(all).size).toBe(all.length);
    const { rows } = await clients[0]!.query<{ n: string; distinct: string }>('SELECT count(*)::text AS n, count(DISTINCT id)::text AS distinct FROM ticket');
    expect(rows[0]).toEqual({ n: String(1000 + imported + all.length), distinct: String(1000 + imported + all.length) });
    expect(samples.length).toBeGreaterThan(100);
    for (let i = 1; i < samples.length; i++) if (samples[i]! < samples[i - 1]!) expect.fail(`sample ${i}: ${samples[i - 1]} -> ${samples[i]}`);
    const fixes = daemon.audit().filter((r) => r.event === 'remediated').length;
    expect(fixes).toBeGreaterThan(3);
    expect(failures.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    console.info(
      `torture: ${WRITERS} writers x ${INSERTS_PER_WRITER} inserts, ${imported} rows imported ahead, ${failures.reduce((a, b) => a + b, 0)} failed inserts retried, ${fixes} fixes, ${samples.length} samples, none backwards`,
    );
  });
});
