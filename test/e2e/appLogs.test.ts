import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { corpusSamples, corpusStacks, type CorpusSample } from '../helpers/corpus.js';
import { freePort, startDaemon, waitFor, waitUntil, type AuditRecord, type RunningDaemon } from '../helpers/daemon.js';

/*
 * Every sample of the corpus of real logs (test/fixtures/logs), healed end to end by the built
 * CLI: each stack's tables made as its generator made them (sequences behind MAX(id) after an
 * import), in a database named as when the samples were made (the server's own records name it),
 * one daemon following every sample from its start, the lines appended as the application wrote
 * them. Once with the format each sample's annotation names (app-text unless said: cri, cnpg-json),
 * once with auto. Samples must heal the tables they name, with every failure counted once, and
 * leave every other sequence (the negative samples' duplicate e-mail addresses) untouched.
 */
const { url: serverUrl } = inject('pg');
// CORPUS_ONLY=cnpg,go-pgx/zap runs the samples whose names start so (when adding a sample).
const only = process.env.CORPUS_ONLY?.split(',');
const samples = corpusSamples().filter((s) => !only || only.some((prefix) => s.name.startsWith(prefix)));
const stacks = corpusStacks();

function databaseUrl(name: string): string {
  const parsed = new URL(serverUrl);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

async function onServer<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function createStackDatabases(only?: string): Promise<void> {
  for (const { database, schema } of stacks.filter((s) => !only || s.database === only)) {
    await onServer(serverUrl, async (admin) => {
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(database)} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`);
    });
    await onServer(databaseUrl(database), (client) => client.query(schema));
  }
}

async function dropStackDatabases(): Promise<void> {
  await onServer(serverUrl, async (admin) => {
    for (const { database } of stacks) await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(database)} WITH (FORCE)`);
  });
}

/** The sequence's state: as schema.sql left it (1, not called) unless something moved it. */
async function sequenceOf(sample: CorpusSample, table: string): Promise<{ last_value: string; is_called: boolean }> {
  return onServer(databaseUrl(`corpus_${sample.stack.replace(/\W/g, '_')}`), async (client) => {
    const { rows } = await client.query(`SELECT last_value::text, is_called FROM ${client.escapeIdentifier(`${table}_id_seq`)}`);
    return rows[0];
  });
}

const databaseOf = (sample: CorpusSample) => `corpus_${sample.stack.replace(/\W/g, '_')}`;

describe('the corpus of real logs, healed end to end', () => {
  const daemons: RunningDaemon[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-applogs-'));
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await dropStackDatabases();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const mode of ['declared', 'auto'] as const) {
    it(`every sample, each with ${mode === 'declared' ? 'the format its annotation names' : 'auto'}`, async () => {
      await createStackDatabases();
      const paths = new Map<CorpusSample, string>();
      for (const sample of samples) {
        const path = join(dir, `${mode}-${sample.name.replace('/', '-')}`);
        writeFileSync(path, '');
        paths.set(sample, path);
      }
      const daemon = await startDaemon({
        databases: stacks.map((s) => ({ url: databaseUrl(s.database) })),
        sources: samples.map((sample) => ({
          path: paths.get(sample),
          format: mode === 'auto' ? 'auto' : sample.format,
          ...(mode === 'declared' && sample.inner ? { inner_format: sample.inner } : {}),
          log_line_prefix: sample.prefix,
          start_at: 'beginning',
        })),
        // The samples keep the times they were written at: the server's records (cri, cnpg) are
        // older than the default stale_after (an hour) by the time the suite runs.
        remediation: { debounce_ms: 300, cooldown: 0, stale_after: '87600h' },
      });
      daemons.push(daemon);
      // The application writes its log: half of each sample, then the rest.
      for (const half of [0, 1]) {
        for (const sample of samples) {
          const text = readFileSync(sample.path, 'utf8');
          const cut = text.indexOf('\n', Math.floor(text.length / 2)) + 1;
          appendFileSync(paths.get(sample)!, half === 0 ? text.slice(0, cut) : text.slice(cut));
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }

      const fixed = (sample: CorpusSample, table: string) => (r: AuditRecord) =>
        r.event === 'remediated' && r.table === `public.${table}` && r.database === databaseOf(sample) && r.trigger?.source === paths.get(sample);
      for (const sample of samples) {
        for (const table of sample.heals) {
          const record = await daemon.waitForAudit(`${sample.name} heals ${table}`, fixed(sample, table), 30_000).catch((error: Error) => {
            const told = daemon
              .audit()
              .filter((r) => (r.trigger?.source === paths.get(sample) && r.database !== databaseOf(sample) ? false : r.trigger?.source === paths.get(sample)));
            throw new Error(`${error.message}; the audit about it:\n${told.map((r) => JSON.stringify(r)).join('\n')}\n${daemon.stderr().slice(-3000)}`);
          });
          expect(record, sample.name).toMatchObject({ after: '1000' });
        }
      }
      // Stragglers (an undetected failure, a second check) would show within the debounce and a bit.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const audit = daemon.audit();
      for (const sample of samples) {
        const source = paths.get(sample);
        const healedHere = audit.filter((r) => r.event === 'remediated' && r.trigger?.source === source).map((r) => r.table);
        expect(healedHere, `${sample.name}: remediated`).toEqual(sample.heals.map((t) => `public.${t}`));
        // Each failure once: the checks' incident counts add up to the failures on healed tables.
        const failures = sample.incidents.filter((c) => sample.heals.some((t) => c === `${t}_pkey`)).length;
        const counted = audit
          .filter((r) => r.event === 'detected' && r.trigger?.source === source && r.database === databaseOf(sample))
          .reduce((n, r) => n + Number((r as { incidents?: number }).incidents ?? 0), 0);
        expect(counted, `${sample.name}: failures counted`).toBe(failures);
        for (const table of sample.untouched)
          expect(await sequenceOf(sample, table), `${sample.name}: ${table} untouched`).toEqual({ last_value: '1', is_called: false });
        for (const table of sample.heals)
          expect(await sequenceOf(sample, table), `${sample.name}: ${table} healed`).toEqual({ last_value: '1000', is_called: true });
      }
      if (mode === 'auto') {
        // auto said what it found, per source, and never took an application's log for a server's.
        await waitFor(
          'formats detected',
          () => daemon.stderr().match(/format detected/g)?.length === samples.filter((s) => readFileSync(s.path, 'utf8').length > 0).length,
        );
        expect(daemon.stderr()).not.toContain('looked like');
      }
      await daemon.stop();
      await dropStackDatabases();
    }, 180_000);
  }

  it('auto says loudly when the format it chose is blind to the errors (warning, metric), and still heals from those lines', async () => {
    await createStackDatabases('corpus_go_lib_pq');
    // A Go service whose lines start as PostgreSQL's do (time, [pid]): auto takes it for the
    // server's stderr, whose parser finds no record in the application's error lines.
    const path = join(dir, 'lookalike.log');
    writeFileSync(path, '');
    const port = await freePort();
    const daemon = await startDaemon({
      databases: [{ url: databaseUrl('corpus_go_lib_pq') }],
      sources: [{ path, format: 'auto', start_at: 'beginning' }],
      remediation: { debounce_ms: 300, cooldown: 0 },
      metrics: { listen: `127.0.0.1:${port}` },
    });
    daemons.push(daemon);
    const now = () => new Date().toISOString().replace('T', ' ').replace('Z', ' UTC');
    appendFileSync(path, `${now()} [4242] LOG:  worker started\n`);
    for (let i = 0; i < 3; i++)
      appendFileSync(path, `${now()} [4242] ERROR: create ticket: pq: duplicate key value violates unique constraint "pq_log_ticket_pkey"\n`);
    const fix = await daemon.waitForAudit('healed after the warning', (r) => r.event === 'remediated' && r.table === 'public.pq_log_ticket', 20_000);
    expect(fix).toMatchObject({ after: '1000' });
    expect(daemon.stderr()).toMatch(/looked like postgres-stderr, but 3 lines holding a duplicate key error gave no record in that format/);
    expect(daemon.stderr()).toContain('format detected: app-text');
    const misread = async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return text.split('\n').find((line) => line.startsWith('seqwatch_log_oddities_total{') && line.includes('kind="misread"'));
    };
    await waitUntil('the misread metric', async () => (await misread())?.endsWith(' 3') ?? false);
    await daemon.stop();
    await dropStackDatabases();
  }, 60_000);
});
