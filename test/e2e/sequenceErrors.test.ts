import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { startCollectorServer, type CollectorFiles } from '../helpers/collector.js';
import { runCli, waitUntil } from '../helpers/daemon.js';
import { incidentsOf } from '../helpers/scannedSamples.js';

/** Debian's default: no %e, so an English server's errors are recognised by their text. */
const PREFIX = '%m [%p] %q%u@%d ';

/**
 * The runbook's sequence errors as a real server writes them, read by the daemon's parsers and by
 * replay. A sequence asked for by name that does not exist (`nextval('x_id_seq')`) fails while the
 * statement is parsed, and the stderr log then appends where to the message (`... does not exist
 * at character 16`), which csvlog and jsonlog keep in a field of their own. Found by a field trial:
 * replay counted these errors in csvlog and not in the stderr log of the same server.
 */
describe('sequence errors written by a real server (English, no %e)', () => {
  let server: ThrowawayPostgres;
  let files: CollectorFiles;
  beforeAll(async () => {
    ({ server, files } = await startCollectorServer('stderr,csvlog', { logLinePrefix: PREFIX, settings: { lc_messages: 'C' } }));
  }, 60_000);
  afterAll(async () => {
    await server?.destroy();
  });

  /** replay's config for one source of this server, in a directory of its own, removed after `body`. */
  async function withReplayConfig(source: Record<string, string>, body: (config: string) => Promise<void>): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-sequence-errors-'));
    try {
      const config = join(dir, 'seqwatch.yaml');
      writeFileSync(config, stringify({ database: { url: server.url }, sources: [source], audit: { path: join(dir, 'audit.jsonl') } }));
      await body(config);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('a missing sequence asked for by name, in a query and as a parameter: found in stderr as in csvlog', async () => {
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    const failures: string[] = [];
    const fails = (query: Promise<unknown>) =>
      query.then(
        () => failures.push('no error'),
        (error: Error) => failures.push(error.message),
      );
    try {
      // The text of the query (the simple protocol: the name is read while the statement is parsed) ...
      await fails(client.query("SELECT nextval('ticket_history_id_seq')"));
      // ... and a bind parameter (what ORMs send: read when the parameter is bound).
      await fails(client.query('SELECT nextval($1)', ['article_id_seq']));
      await client.query('CREATE SEQUENCE tiny_id_seq MAXVALUE 2');
      await client.query("SELECT nextval('tiny_id_seq'), nextval('tiny_id_seq')");
      await fails(client.query("SELECT nextval('tiny_id_seq')"));
    } finally {
      await client.end();
    }
    expect(failures).toEqual([
      'relation "ticket_history_id_seq" does not exist',
      'relation "article_id_seq" does not exist',
      'nextval: reached maximum value of sequence "tiny_id_seq" (2)',
    ]);
    await waitUntil('the server wrote the errors to both logs', async () =>
      [files.stderr, files.csv].every((file) => existsSync(file) && readFileSync(file, 'utf8').includes('reached maximum value of sequence')),
    );
    const stderrText = readFileSync(files.stderr, 'utf8');
    // What the server wrote (the position only where the statement's text was read).
    expect(stderrText).toContain('ERROR:  relation "ticket_history_id_seq" does not exist at character 16');
    const expected = [
      { kind: 'sequence_missing', constraint: 'ticket_history_id_seq' },
      { kind: 'sequence_missing', constraint: 'article_id_seq' },
      { kind: 'sequence_exhausted', constraint: 'tiny_id_seq' },
    ];
    // The daemon's parsers and detection, on each log.
    for (const [format, text] of [
      ['postgres-stderr', stderrText],
      ['postgres-csv', readFileSync(files.csv, 'utf8')],
    ] as const) {
      const found = incidentsOf(format, PREFIX, text).map(({ incident }) => ({ kind: incident.kind, constraint: incident.constraint }));
      expect(found, format).toEqual(expected);
    }
    // replay, the built CLI, on each log.
    await withReplayConfig({ path: files.stderr, log_line_prefix: PREFIX }, async (config) => {
      for (const [format, file] of [
        ['postgres-stderr', files.stderr],
        ['postgres-csv', files.csv],
      ] as const) {
        const result = await runCli('replay', '-c', config, '--format', format, file, '--json');
        expect(result.stderr, format).toBe('');
        const report = JSON.parse(result.stdout) as { scanned: { kinds: Record<string, number> } };
        expect(report.scanned.kinds, format).toEqual({ sequence_missing: 2, sequence_exhausted: 1 });
      }
    });
  });

  it("replay leaves out what the daemon skips: a RAISE of an error's words, whose SQLSTATE (P0001) says it is not that error", async () => {
    // Found by a field trial: csvlog's RAISEs of "duplicate key ... ticket_pkey" and "reached maximum
    // value" were counted as those errors (and shown as the daemon's alert) while the daemon, over the
    // same file, skipped each as sqlstate_mismatch.
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await client.query('CREATE TABLE ticket (id serial PRIMARY KEY)');
      await client.query('INSERT INTO ticket (id) VALUES (1), (2)');
      await expect(client.query('INSERT INTO ticket DEFAULT VALUES')).rejects.toMatchObject({ code: '23505' });
      for (const words of ['duplicate key value violates unique constraint "ticket_pkey"', 'nextval: reached maximum value of sequence "ticket_id_seq" (3)']) {
        await expect(client.query(`DO $$ BEGIN RAISE EXCEPTION '${words}'; END $$`)).rejects.toMatchObject({ code: 'P0001' });
      }
      await client.query("SELECT 'raised'");
    } finally {
      await client.end();
    }
    await waitUntil(
      'the server wrote the RAISEs to csvlog',
      async () => existsSync(files.csv) && readFileSync(files.csv, 'utf8').includes('reached maximum value of sequence ""ticket_id_seq""'),
    );
    await withReplayConfig({ path: files.csv, format: 'postgres-csv' }, async (config) => {
      const result = await runCli('replay', '-c', config, files.csv, '--json');
      const report = JSON.parse(result.stdout) as { other_sqlstate: number; constraints: Array<{ constraint: string; kind: string; errors: number }> };
      // The real duplicate key error only (the first test's errors are of other names).
      expect(report.constraints.filter((c) => ['ticket_pkey', 'ticket_id_seq'].includes(c.constraint))).toEqual([
        expect.objectContaining({ constraint: 'ticket_pkey', kind: 'unique_violation', errors: 1 }),
      ]);
      expect(report.other_sqlstate).toBe(2);
      const text = await runCli('replay', '-c', config, files.csv);
      expect(text.stdout).toContain('2 errors whose SQLSTATE is not that error (a RAISE of its words) passed over, as the daemon does');
    });
  });

  it("replay of the stderr log: a STATEMENT line that quotes an error's words is its record's, not a line of another format", async () => {
    // Found by a field trial: an INSERT whose text held the duplicate key message failed, and the
    // server's STATEMENT line under the ERROR was counted as "no postgres-stderr record": replay
    // ended 1 telling the operator to fix a log_line_prefix that was right.
    const words = 'duplicate key value violates unique constraint "note_pkey"';
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await client.query('CREATE TABLE note (id int PRIMARY KEY, title text)');
      await client.query("INSERT INTO note VALUES (1, 'first')");
      await expect(client.query(`INSERT INTO note VALUES (1, '${words}')`)).rejects.toMatchObject({ code: '23505' });
      // Another error whose statement quotes the words (a NOT NULL violation: no incident at all).
      await expect(client.query(`INSERT INTO note VALUES (NULL, '${words}')`)).rejects.toMatchObject({ code: '23502' });
      await client.query("SELECT 'noted'");
    } finally {
      await client.end();
    }
    await waitUntil('the server wrote the STATEMENT lines', async () =>
      readFileSync(files.stderr, 'utf8').includes(`STATEMENT:  INSERT INTO note VALUES (NULL, '${words}')`),
    );
    await withReplayConfig({ path: files.stderr, log_line_prefix: PREFIX }, async (config) => {
      const result = await runCli('replay', '-c', config, files.stderr, '--json');
      expect(result.stderr).not.toContain('no postgres-stderr records');
      const report = JSON.parse(result.stdout) as { constraints: Array<{ constraint: string; errors: number }> };
      expect(report.constraints.find((c) => c.constraint === 'note_pkey')).toMatchObject({ errors: 1 });
    });
  });
});
