import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { SourcePipeline } from '../../src/daemon/SourcePipeline.js';
import type { Incident } from '../../src/detect/detectIncident.js';
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
