import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { ScannedFormat } from '../../src/detect/scanner.js';
import { findSystemBinaries, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { startCollectorServer, type CollectorFiles } from '../helpers/collector.js';
import { runCli, startDaemon, waitFor, waitUntil } from '../helpers/daemon.js';
import { incidentsOf } from '../helpers/scannedSamples.js';

/** The locales the server needs for lc_messages (.ci/run generates them with locale-gen). */
function hasLocale(name: string): boolean {
  try {
    const wanted = name.toLowerCase().replace(/utf-?8/, 'utf8');
    return execFileSync('locale', ['-a'])
      .toString()
      .split('\n')
      .some((l) => l.toLowerCase().replace(/utf-?8/, 'utf8') === wanted);
  } catch {
    return false;
  }
}

const LANGUAGES = [
  { lc: 'de_DE.UTF-8', error: 'FEHLER', statement: 'ANWEISUNG:  ', unique: 'doppelter Schlüsselwert verletzt Unique-Constraint »' },
  { lc: 'fr_FR.UTF-8', error: 'ERREUR', statement: 'INSTRUCTION :  ', unique: "la valeur d'une clé dupliquée rompt la contrainte unique « " },
] as const;
const PREFIX = '%m [%p] %e %q%u@%d ';

/**
 * Real translated servers (Debian's PostgreSQL carries the message catalogs), each writing stderr,
 * csvlog and jsonlog at once through the logging collector, followed by the built CLI: each format
 * must heal a sequence behind MAX(id) and alert on an exhausted sequence, in German and in French.
 */
// This machine's binaries: npm's builds (findLocalBinaries without them) have no message catalogs.
describe.runIf(findSystemBinaries())('translated servers, end to end', () => {
  for (const language of LANGUAGES) {
    describe.runIf(hasLocale(language.lc))(`lc_messages = '${language.lc}'`, () => {
      let server: ThrowawayPostgres;
      let files: CollectorFiles;
      beforeAll(async () => {
        ({ server, files } = await startCollectorServer('stderr,csvlog,jsonlog', {
          bindir: findSystemBinaries()!,
          logLinePrefix: PREFIX,
          settings: { lc_messages: language.lc },
        }));
      }, 60_000);
      afterAll(async () => {
        await server?.destroy();
      });

      /** A config for replay in `dir`: this server's database, one source read with `prefix` (replay is given the log itself). */
      const replayConfig = (dir: string, name: string, path: string, prefix: string) => {
        const config = join(dir, name);
        writeFileSync(
          config,
          stringify({ database: { url: server.url }, sources: [{ path, log_line_prefix: prefix }], audit: { path: join(dir, 'audit.jsonl') } }),
        );
        return config;
      };
      /** This server's log_line_prefix set (none: back to the suite's), and the configuration reloaded. */
      const setServerPrefix = async (client: pg.Client, prefix?: string) => {
        await client.query(prefix === undefined ? 'ALTER SYSTEM RESET log_line_prefix' : `ALTER SYSTEM SET log_line_prefix = '${prefix}'`);
        await client.query('SELECT pg_reload_conf()');
      };

      const sourceFor = {
        csv: () => ({ path: files.csv, format: 'postgres-csv', start_at: 'end' }),
        json: () => ({ path: files.json, format: 'postgres-json', start_at: 'end' }),
        stderr: () => ({ path: files.stderr, format: 'postgres-stderr', log_line_prefix: PREFIX, start_at: 'end' }),
      };

      for (const format of ['csv', 'json', 'stderr'] as const) {
        it(`${format}: a duplicate key error in ${language.lc} heals the sequence; an exhausted sequence is an alert`, async () => {
          const table = `ticket_${format}`;
          const daemon = await startDaemon({ database: { url: server.url }, sources: [sourceFor[format]()], remediation: { debounce_ms: 50 } });
          try {
            const client = new pg.Client({ connectionString: server.url });
            await client.connect();
            await client.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY); INSERT INTO ${table} (id) SELECT generate_series(1, 42)`);
            const failure = await client.query(`INSERT INTO ${table} DEFAULT VALUES`).then(
              () => undefined,
              (e: pg.DatabaseError) => e,
            );
            // The server really speaks the language: the message the client got is translated.
            expect(failure).toMatchObject({ code: '23505', severity: language.error });
            expect(failure?.message).toContain(language.unique);
            const fix = await daemon.waitForAudit(`${table} remediated`, (r) => r.event === 'remediated' && r.table === `public.${table}`, 20_000);
            expect(fix).toMatchObject({ before: '1', after: '42', trigger: { constraint: `${table}_pkey` } });
            expect((await client.query(`INSERT INTO ${table} DEFAULT VALUES RETURNING id::text AS id`)).rows[0].id).toBe('43');

            await client.query(`CREATE SEQUENCE tiny_${format}_id_seq MAXVALUE 2; SELECT nextval('tiny_${format}_id_seq'), nextval('tiny_${format}_id_seq')`);
            await expect(client.query(`SELECT nextval('tiny_${format}_id_seq')`)).rejects.toMatchObject({ code: '2200H' });
            await client.end();
            const alert = await daemon.waitForAudit('the exhausted sequence', (r) => r.event === 'alert' && r.reason === 'sequence_exhausted', 20_000);
            // Verified against the catalog (docs/safety-trust.md): the alert names the catalog's sequence.
            expect(alert.sequence).toBe(`public.tiny_${format}_id_seq`);
          } finally {
            await daemon.stop();
          }
        }, 60_000);
      }

      // Before the test below changes the prefix: every line of the stderr file has the suite's.
      it("replay reads this server's own logs, every format, as the full parsers do: repeats, verbose errors, multi-line statements", async () => {
        const client = new pg.Client({ connectionString: server.url });
        await client.connect();
        try {
          // Explicit ids, the sequence left behind: each INSERT by default fails until nextval passes them.
          await client.query(`CREATE TABLE replayed (id bigserial PRIMARY KEY, tn text UNIQUE);
                              INSERT INTO replayed (id, tn) SELECT g, 't' || g FROM generate_series(1, 5) g;
                              INSERT INTO replayed (id) SELECT generate_series(10, 20)`);
          // A burst of one error (the lines replay decides as the first one: its templates).
          for (let i = 0; i < 5; i++) await expect(client.query('INSERT INTO replayed DEFAULT VALUES')).rejects.toMatchObject({ code: '23505' });
          // A unique violation fed by no sequence, in a statement of several lines (TAB lines in stderr).
          await expect(client.query(`INSERT INTO replayed (id, tn)\nVALUES (100, 't1')`)).rejects.toMatchObject({ code: '23505' });
          // Verbose: the SQLSTATE before the message, a LOCATION line after it, in the server's language.
          await client.query('SET log_error_verbosity = verbose');
          await expect(client.query('INSERT INTO replayed (id) VALUES (10)')).rejects.toMatchObject({ code: '23505' });
          await expect(client.query(`INSERT INTO replayed (id, tn)\nVALUES (101, 't2')`)).rejects.toMatchObject({ code: '23505' });
          await client.query(`DO $$ BEGIN RAISE LOG 'replay_end'; END $$`);
        } finally {
          await client.end();
        }
        // The collector has written the last statement to every file.
        for (const file of Object.values(files)) await waitFor(`the end in ${file}`, () => readFileSync(file, 'utf8').includes('replay_end'));
        const dir = mkdtempSync(join(tmpdir(), 'seqwatch-replay-language-'));
        const config = replayConfig(dir, 'seqwatch.yaml', files.stderr, PREFIX);
        const formats = { stderr: 'postgres-stderr', csv: 'postgres-csv', json: 'postgres-json' } as const;
        try {
          for (const [name, format] of Object.entries(formats) as Array<[keyof typeof files, ScannedFormat]>) {
            const result = await runCli('replay', '-c', config, '--format', format, files[name], '--json');
            expect(result.stderr, `${name}: replay's stderr`).toBe('');
            expect(result.code, `${name}: replay's exit code`).toBe(0);
            const report = JSON.parse(result.stdout) as {
              constraints: Array<{ constraint: string; kind: string; errors: number; would: string; now: string | null }>;
            };
            // What the format's full parser and the detector find in the file, error for error.
            const expected = new Map<string, number>();
            for (const { incident } of incidentsOf(format, PREFIX, readFileSync(files[name], 'utf8'))) {
              const key = `${incident.kind} ${incident.constraint}`;
              expected.set(key, (expected.get(key) ?? 0) + 1);
            }
            const found = new Map(report.constraints.map((row) => [`${row.kind} ${row.constraint}`, row.errors]));
            expect(Object.fromEntries(found), name).toEqual(Object.fromEntries(expected));
            const row = (constraint: string) => report.constraints.find((r) => r.constraint === constraint);
            // 5 by default, 1 verbose; the sequence (at 5) still behind MAX(id) = 20: replay changes nothing.
            expect(row('replayed_pkey'), name).toMatchObject({ errors: 6, now: 'BEHIND by 15' });
            expect(row('replayed_tn_key'), name).toMatchObject({ errors: 2, would: 'skip: not fed by a sequence' });
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }, 60_000);

      it.runIf(language.lc.startsWith('de'))(
        'without %e, verbose messages (FEHLER:  23505: …, then ORT:) still heal: the lines the follower passes over are chosen by the scanner alone',
        async () => {
          const table = 'ticket_verbose';
          const prefix = '%m [%p] %q%u@%d ';
          const client = new pg.Client({ connectionString: server.url });
          await client.connect();
          // This server's prefix without %e, for this test (and back to the suite's after it).
          await setServerPrefix(client, prefix);
          await new Promise((r) => setTimeout(r, 300));
          const daemon = await startDaemon({
            database: { url: server.url },
            sources: [{ path: files.stderr, format: 'postgres-stderr', log_line_prefix: prefix, start_at: 'end' }],
            remediation: { debounce_ms: 50 },
          });
          try {
            // The session's own verbosity (a superuser may set it): the SQLSTATE before the message, an ORT: line after it.
            await client.query('SET log_error_verbosity = verbose');
            await client.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY); INSERT INTO ${table} (id) SELECT generate_series(1, 42)`);
            await expect(client.query(`INSERT INTO ${table} DEFAULT VALUES`)).rejects.toMatchObject({ code: '23505', severity: language.error });
            const fix = await daemon.waitForAudit(`${table} remediated`, (r) => r.event === 'remediated' && r.table === `public.${table}`, 20_000);
            expect(fix).toMatchObject({ before: '1', after: '42', trigger: { constraint: `${table}_pkey` } });
          } finally {
            await daemon.stop();
            await setServerPrefix(client);
            await client.end();
          }
        },
        60_000,
      );

      it("without %e in the prefix, replay of the server's log says its translated duplicate key errors cannot be recognised, and ends 1", async () => {
        const prefix = '%m [%p] %q%u@%d ';
        const client = new pg.Client({ connectionString: server.url });
        await client.connect();
        const from = statSync(files.stderr).size;
        try {
          // Debian's default prefix (no %e) on this server, for this test.
          await setServerPrefix(client, prefix);
          await new Promise((r) => setTimeout(r, 300));
          await client.query('CREATE TABLE untold (id bigserial PRIMARY KEY); INSERT INTO untold (id) VALUES (1)');
          await expect(client.query('INSERT INTO untold DEFAULT VALUES')).rejects.toMatchObject({ code: '23505', severity: language.error });
          await client.query(`DO $$ BEGIN RAISE LOG 'untold_end'; END $$`);
        } finally {
          await setServerPrefix(client);
          await client.end();
        }
        await waitFor('the end in the stderr log', () => readFileSync(files.stderr, 'utf8').includes('untold_end'));
        // What the server wrote with that prefix (the file's earlier lines have the suite's).
        const dir = mkdtempSync(join(tmpdir(), 'seqwatch-replay-untold-'));
        try {
          const log = join(dir, 'postgresql.log');
          writeFileSync(log, readFileSync(files.stderr).subarray(from));
          const config = replayConfig(dir, 'seqwatch.yaml', log, prefix);
          const result = await runCli('replay', '-c', config, log);
          expect(result.stdout).toMatch(/^0 duplicate key errors/m);
          expect(result.stderr).toContain(
            `${log}: 1 duplicate key error(s) in another language among its first MiB (the first: "${language.unique}untold_pkey`,
          );
          expect(result.stderr).toMatch(/has no %e, and a translated message is recognised by its SQLSTATE only; add %e to log_line_prefix/);
          expect(result.code).toBe(1);
          // Read with the prefix it was not written with (the config's has %e, as the server's had before and after): said too.
          const other = replayConfig(dir, 'other.yaml', log, PREFIX);
          const unmatched = await runCli('replay', '-c', other, log);
          expect(unmatched.stderr).toContain(
            `${log}: 1 duplicate key error(s) in another language among its first MiB are no records with log_line_prefix "${PREFIX}"`,
          );
          expect(unmatched.code).toBe(1);
          // A log of this server without such an error at its head (the errors of a day come later):
          // its first records' words say its language (the RAISE's STATEMENT line, as the server writes it).
          const lines = readFileSync(log, 'utf8').split('\n');
          const quiet = join(dir, 'quiet.log');
          writeFileSync(quiet, lines.filter((line) => line.includes('untold_end')).join('\n') + '\n');
          const said = await runCli('replay', '-c', config, quiet);
          expect(said.stderr).toContain(`${quiet}: its first records are written in another language (the first begins "${language.statement}")`);
          expect(said.code).toBe(1);
          // Nor those (only the RAISE's own words): the server's lc_messages says it.
          const quieter = join(dir, 'quieter.log');
          writeFileSync(quieter, lines.filter((line) => line.includes('untold_end') && !line.includes('RAISE')).join('\n') + '\n');
          const told = await runCli('replay', '-c', config, quieter);
          expect(told.stderr).toContain(
            `the server's lc_messages is '${language.lc}': it writes its errors in another language, and log_line_prefix "${prefix}" has no %e`,
          );
          expect(told.code).toBe(1);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it('a daemon following a stderr source without %e is unhealthy here: health, the audit and its log say why, with the fix', async () => {
        const daemon = await startDaemon({
          database: { url: server.url },
          sources: [{ path: files.stderr, format: 'postgres-stderr', log_line_prefix: '%m [%p] %q%u@%d ', start_at: 'end' }],
        });
        try {
          // From the first heartbeat on: no "healthy" while the server's language is not known yet.
          const healthFile = join(daemon.dir, 'state', 'health.json');
          const first = await waitFor(
            'the first heartbeat',
            () => existsSync(healthFile) && (JSON.parse(readFileSync(healthFile, 'utf8')) as { ok: boolean; problems: Array<{ code: string }> }),
            15_000,
          );
          expect(first.problems.map((p) => p.code)).toEqual(['source_translated']);
          const alert = await daemon.waitForAudit('the alert', (r) => r.event === 'alert' && r.reason === 'source_translated', 20_000);
          expect(alert.subject).toBe(files.stderr);
          const health = await runCli('health', '-c', daemon.configPath);
          expect(health.code).toBe(1);
          expect(health.stdout + health.stderr).toContain(
            `${files.stderr}: the server of database ${new URL(server.url).pathname.slice(1)} writes its messages in another language (lc_messages '${language.lc}')`,
          );
          expect(health.stdout + health.stderr).toContain(
            `fix: ALTER SYSTEM SET log_line_prefix = '${PREFIX}'; SELECT pg_reload_conf(); and in the config: log_line_prefix: '${PREFIX}'`,
          );
          await waitFor('the log', () => daemon.stderr().includes(`cannot heal: ${files.stderr}: the server of database`));
        } finally {
          await daemon.stop();
        }
      }, 60_000);

      it("the config's prefix with %e, the server's without (changed on one side only): unhealthy too, the fix on the server", async () => {
        const client = new pg.Client({ connectionString: server.url });
        await client.connect();
        await setServerPrefix(client, '%m [%p] %q%u@%d ');
        const daemon = await startDaemon({
          database: { url: server.url },
          sources: [{ path: files.stderr, format: 'postgres-stderr', log_line_prefix: PREFIX, start_at: 'end' }],
        });
        try {
          const alert = await daemon.waitForAudit('the alert', (r) => r.event === 'alert' && r.reason === 'source_translated', 20_000);
          expect(alert.fix).toContain(`ALTER SYSTEM SET log_line_prefix = '${PREFIX}'; SELECT pg_reload_conf();`);
          const health = await runCli('health', '-c', daemon.configPath);
          expect(health.code).toBe(1);
          expect(health.stdout + health.stderr).toContain(
            `its log_line_prefix "%m [%p] %q%u@%d " has no %e (the config's "${PREFIX}" has): its lines carry no SQLSTATE`,
          );
          // The server's prefix made right: healthy again, with no reload of the daemon.
          await setServerPrefix(client);
          await waitUntil('healthy', async () => (await runCli('health', '-c', daemon.configPath)).code === 0, 20_000);
        } finally {
          await daemon.stop();
          await setServerPrefix(client);
          await client.end();
        }
      }, 60_000);

      it.runIf(language.lc.startsWith('fr'))(
        'without %e in the prefix, config check and the start warn that detection depends on English messages',
        async () => {
          const daemon = await startDaemon({
            database: { url: server.url },
            sources: [{ path: files.stderr, format: 'postgres-stderr', log_line_prefix: '%m [%p] %q%u@%d ', start_at: 'end' }],
          });
          try {
            const check = await runCli('config', 'check', '-c', daemon.configPath);
            const warning = /gives no SQLSTATE \(no %e in log_line_prefix\), so duplicate key errors are recognised by their English message only/;
            expect(check.stdout + check.stderr).toMatch(warning);
            await waitFor('the warning at start', () => warning.test(daemon.stderr()));
          } finally {
            await daemon.stop();
          }
        },
      );
    });
  }
});
