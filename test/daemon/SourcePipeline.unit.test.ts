import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { SourcePipeline } from '../../src/daemon/SourcePipeline.js';
import { detectIncident, type Incident } from '../../src/detect/detectIncident.js';
import { createParser } from '../../src/formats/createParser.js';
import { CheckpointStore } from '../../src/sources/CheckpointStore.js';

// No server: one source's pipeline on a real file, with the databases stood in for by a route
// whose promise the test settles. The checkpoint waits for the incident's outcome, then moves on.

const logger = { info: () => {}, warn: () => {}, error: () => {} } as unknown as Logger;
const line = (text: string) => `2026-12-02 10:00:00.000 UTC [4242] ${text}\n`;

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('SourcePipeline', () => {
  const pipelines: SourcePipeline[] = [];
  afterEach(async () => void (await Promise.all(pipelines.splice(0).map((p) => p.close()))));

  it('routes the incident a line holds, and keeps the checkpoint before it until its outcome is in', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-pipeline-'));
    const log = join(dir, 'postgresql.log');
    const before = line('LOG:  checkpoint starting: time');
    const error = line('ERROR:  duplicate key value violates unique constraint "ticket_pkey"');
    writeFileSync(log, before + error + line('DETAIL:  Key (id)=(7) already exists.') + line('LOG:  checkpoint complete'));
    const yaml = `database: { url: "postgresql://seqwatch@db/gotrs" }\nsources: [{ path: ${JSON.stringify(log)}, log_line_prefix: "%m [%p] ", start_at: beginning }]\n`;
    const source = parseConfig(yaml, join(dir, 'seqwatch.yaml')).sources[0]!;
    const checkpoints = new CheckpointStore(join(dir, 'state'));
    const routed: Incident[] = [];
    let settle = () => {};
    const pipeline = new SourcePipeline(source, {
      logger,
      checkpoints,
      route: (incident) => {
        routed.push(incident);
        return new Promise<void>((resolve) => (settle = resolve));
      },
      isRepeat: () => false,
      backpressure: () => undefined,
      onEnd: () => {},
    });
    pipelines.push(pipeline);
    await pipeline.start();

    const incident = await until('the incident routed', () => routed[0]);
    expect(incident).toMatchObject({ kind: 'unique_violation', constraint: 'ticket_pkey', offset: before.length });
    const offsetSaved = () => {
      const saved = checkpoints.load(log);
      return saved?.kind === 'file' ? saved.checkpoint.offset : undefined;
    };
    // Read to the end and flushed, but the incident is still open: the checkpoint stays at its line.
    await until('a checkpoint', () => offsetSaved() !== undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(offsetSaved()).toBe(before.length);
    expect(pipeline.unfinishedIncidents).toBe(1);

    settle();
    await until('the checkpoint past the handled incident', () => offsetSaved() !== before.length);
    await until(
      'the checkpoint at the end',
      () =>
        offsetSaved() === Buffer.byteLength(before + error) + line('DETAIL:  Key (id)=(7) already exists.').length + line('LOG:  checkpoint complete').length,
    );
    expect(pipeline.unfinishedIncidents).toBe(0);
    expect(pipeline.metrics()).toMatchObject({ source: log, records: expect.any(Number), lagBytes: 0 });

    // A line in no record of the format, holding the error's words: the source says so (health).
    appendFileSync(log, 'garbled ERROR:  duplicate key value violates unique constraint "x"\n');
    await until('the unparsed error said', () => pipeline.problems(Date.now(), false).find((p) => p.code === 'source_unparsed'));
  });
});

describe('SourcePipeline: incidents of one outcome', () => {
  const pipelines: SourcePipeline[] = [];
  afterEach(async () => void (await Promise.all(pipelines.splice(0).map((p) => p.close()))));

  it('incidents waiting for the same outcome (a name being looked up) keep the checkpoint before the first until it is in', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-pipeline-'));
    const log = join(dir, 'postgresql.log');
    const first = line('ERROR:  duplicate key value violates unique constraint "users_login_key"');
    const between = line('LOG:  statement: SELECT 1');
    const second = line('ERROR:  duplicate key value violates unique constraint "users_login_key"');
    writeFileSync(log, first + between + second + line('LOG:  checkpoint complete'));
    const yaml = `database: { url: "postgresql://seqwatch@db/gotrs" }\nsources: [{ path: ${JSON.stringify(log)}, log_line_prefix: "%m [%p] ", start_at: beginning }]\n`;
    const source = parseConfig(yaml, join(dir, 'seqwatch.yaml')).sources[0]!;
    const checkpoints = new CheckpointStore(join(dir, 'state'));
    let settle = () => {};
    const outcome = new Promise<void>((resolve) => (settle = resolve));
    const routed: Incident[] = [];
    const pipeline = new SourcePipeline(source, {
      logger,
      checkpoints,
      route: (incident) => {
        routed.push(incident);
        return outcome;
      },
      isRepeat: () => false,
      backpressure: () => undefined,
      onEnd: () => {},
    });
    pipelines.push(pipeline);
    await pipeline.start();
    await until('both incidents routed', () => routed.length === 2);
    expect(routed.map((i) => i.offset)).toEqual([0, Buffer.byteLength(first + between)]);
    const offsetSaved = () => {
      const saved = checkpoints.load(log);
      return saved?.kind === 'file' ? saved.checkpoint.offset : undefined;
    };
    await until('a checkpoint', () => offsetSaved() !== undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(offsetSaved()).toBe(0);
    expect(pipeline.unfinishedIncidents).toBeGreaterThan(0);
    settle();
    await until('the checkpoint at the end', () => offsetSaved() === Buffer.byteLength(first + between + second) + line('LOG:  checkpoint complete').length);
    expect(pipeline.unfinishedIncidents).toBe(0);
  });
});

describe('SourcePipeline: a record whose lines come apart', () => {
  const pipelines: SourcePipeline[] = [];
  afterEach(async () => void (await Promise.all(pipelines.splice(0).map((p) => p.close()))));

  // A field trial (stop 28): Docker's json-file driver writes each line of a message apart, so the
  // follower read an apply worker's ERROR, caught up and flushed it before its CONTEXT came: a
  // unique violation, which the daemon healed with a setval on the subscriber, instead of the
  // replication conflict (a stuck subscription: an alert) its CONTEXT says it is.
  it.each(['postgres-stderr', 'docker-json'])(
    "%s: an apply worker's ERROR read before its CONTEXT is written is still the replication conflict it is",
    async (format) => {
      const dir = mkdtempSync(join(tmpdir(), 'seqwatch-pipeline-'));
      const log = join(dir, 'postgresql.log');
      const at = (text: string) => `2026-12-02 10:00:00.000 UTC [4343] ${text}`;
      const write = (lines: string[]) =>
        appendFileSync(
          log,
          lines
            .map((text) =>
              format === 'docker-json' ? `${JSON.stringify({ log: `${text}\n`, stream: 'stderr', time: '2026-12-02T10:00:00.000000000Z' })}\n` : `${text}\n`,
            )
            .join(''),
        );
      writeFileSync(log, '');
      const yaml = `database: { url: "postgresql://seqwatch@db/gotrs" }\nsources: [{ path: ${JSON.stringify(log)}, format: ${format}, log_line_prefix: "%m [%p] %q%u@%d ", start_at: beginning }]\n`;
      const routed: Incident[] = [];
      const pipeline = new SourcePipeline(parseConfig(yaml, join(dir, 'seqwatch.yaml')).sources[0]!, {
        logger,
        checkpoints: new CheckpointStore(join(dir, 'state')),
        route: (incident) => {
          routed.push(incident);
          return Promise.resolve();
        },
        isRepeat: () => false,
        backpressure: () => undefined,
        onEnd: () => {},
      });
      pipelines.push(pipeline);
      await pipeline.start();
      // With another backend's statement, whose TAB line comes after the pause too (it had been an orphan line).
      const session = (text: string) => `2026-12-02 10:00:00.000 UTC [4444] gotrs@gotrs ${text}`;
      write([
        at('ERROR:  duplicate key value violates unique constraint "article_pkey"'),
        at('DETAIL:  Key (id)=(5) already exists.'),
        session('LOG:  statement: SELECT a,'),
      ]);
      await until('the ERROR and DETAIL read', () => pipeline.metrics().bytes > 0 && pipeline.metrics().bytes === Buffer.byteLength(readFileSync(log)));
      // Caught up: the follower went idle at once, as it did between Docker's writes under load.
      await new Promise((resolve) => setTimeout(resolve, 50));
      write([
        '\tb FROM t',
        at(
          'CONTEXT:  processing remote data for replication origin "pg_16394" during message type "INSERT" for replication target relation "public.article" in transaction 748, finished at 0/177C240',
        ),
        at('LOG:  background worker "logical replication apply worker" (PID 4343) exited with exit code 1'),
      ]);
      await until('an incident routed', () => routed[0], 5_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(routed.map((incident) => incident.kind)).toEqual(['replication_conflict']);
      expect(pipeline.metrics().oddities.orphan).toBe(0);
    },
  );
});

describe('SourcePipeline: records settled by their ERROR line', () => {
  const prefix = '%m [%p] %q%u@%d ';
  const at = (pid: number, text: string, who = 'gotrs@gotrs ') => `2026-12-02 10:00:00.000 UTC [${pid}] ${who}${text}\n`;
  const unique = (name: string) => `ERROR:  duplicate key value violates unique constraint "${name}"`;
  const cases = [
    // A session's violation: settled at once, its DETAIL and STATEMENT never read.
    at(1, unique('users_login_key')) + at(1, 'DETAIL:  Key (login)=(a) already exists.') + at(1, 'STATEMENT:  INSERT INTO users (login) VALUES ($1)'),
    // Its message continued on a TAB line: another name than the first line's.
    at(2, unique('a_pkey')) + '\tb"\n' + at(2, 'DETAIL:  Key (id)=(1) already exists.'),
    // A CONTEXT quoting a worker's words, after other backends' lines: SQL text, a session's record.
    at(3, unique('ticket_pkey')) +
      at(1001, 'LOG:  duration: 1 ms') +
      at(3, `CONTEXT:  SQL statement "INSERT INTO t VALUES ('processing remote data for replication origin "pg_1"')"`),
    // A worker (%q: no user@db): not decided early; its CONTEXT makes it a replication conflict.
    at(4, unique('article_pkey'), '') +
      at(1002, 'LOG:  duration: 2 ms') +
      at(
        4,
        'CONTEXT:  processing remote data for replication origin "pg_16394" during message type "INSERT" for replication target relation "public.article" in transaction 748, finished at 0/177C240',
        '',
      ),
    // A name that reads as PG 18's conflict type: the record so far says another thing than its first line.
    at(5, unique('x conflict=insert_exists y')) + at(5, 'DETAIL:  Key already exists in unique index "x_pkey".'),
    // Verbose: its LOCATION line may still change it.
    at(6, 'ERROR:  23505: duplicate key value violates unique constraint "v_pkey"') + at(6, 'LOCATION:  _bt_check_unique, nbtinsert.c:666'),
    at(7, 'ERROR:  nextval: reached maximum value of sequence "ticket_id_seq" (2147483647)') + at(7, 'STATEMENT:  INSERT INTO ticket DEFAULT VALUES'),
    // Two at once, the second settled while the first waits for its backend.
    at(8, unique('b_pkey'), '') + at(9, unique('c_pkey')) + at(9, 'DETAIL:  Key (id)=(9) already exists.') + at(8, 'DETAIL:  Key (id)=(8) already exists.', ''),
  ];
  let log = '';
  for (let n = 0; n < 40 * cases.length * 3; n++) {
    log += n % 3 === 0 ? at(1000 + (n % 7), `LOG:  statement: SELECT a,\n\tb FROM t WHERE n = ${n}`) : at(1000 + (n % 7), `LOG:  duration: 0.${n} ms`);
    if (n % 40 === 20) log += cases[((n - 20) / 40) % cases.length]!;
  }

  it("finds what reading every line in full finds: the last incident taken for each record is its whole record's", async () => {
    // The full path: every line parsed, no pre-check, no early decision, each whole record detected.
    const full = new Map<number, Incident>();
    const parser = createParser('postgres-stderr', { source: 'f', logLinePrefix: prefix }, (record) => {
      const incident = detectIncident(record);
      if (incident) full.set(record.offset!, incident);
    });
    let offset = 0;
    for (const text of log.split('\n').slice(0, -1)) {
      parser.push(text, { offset });
      offset += Buffer.byteLength(text) + 1;
    }
    parser.flush();
    expect(new Set([...full.values()].map((i) => i.kind))).toEqual(new Set(['unique_violation', 'replication_conflict', 'sequence_exhausted']));

    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-pipeline-'));
    const path = join(dir, 'postgresql.log');
    writeFileSync(path, log);
    const yaml = `database: { url: "postgresql://seqwatch@db/gotrs" }\nsources: [{ path: ${JSON.stringify(path)}, log_line_prefix: "${prefix}", start_at: beginning }]\n`;
    const source = parseConfig(yaml, join(dir, 'seqwatch.yaml')).sources[0]!;
    const taken = new Map<number, Incident>();
    const pipeline = new SourcePipeline(source, {
      logger,
      checkpoints: new CheckpointStore(join(dir, 'state')),
      route: (incident) => {
        taken.set(incident.offset!, incident);
        return Promise.resolve();
      },
      isRepeat: () => false,
      backpressure: () => undefined,
      onEnd: () => {},
    });
    pipelines.push(pipeline);
    await pipeline.start();
    await until('every line read', () => pipeline.metrics().bytes === Buffer.byteLength(log) && pipeline.metrics().records > 0);
    pipeline.flush();
    const strip = (i: Incident) => ({ kind: i.kind, constraint: i.constraint, offset: i.offset, replication: i.replication });
    expect([...taken.values()].map(strip).sort((a, b) => a.offset! - b.offset!)).toEqual([...full.values()].map(strip).sort((a, b) => a.offset! - b.offset!));
    // The settled records' later lines were passed over, not read.
    expect(pipeline.metrics().skipped).toBeGreaterThan(0);
  });

  const pipelines: SourcePipeline[] = [];
  afterEach(async () => void (await Promise.all(pipelines.splice(0).map((p) => p.close()))));
});
