import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { Incident } from '../../src/detect/detectIncident.js';
import type { Format } from '../../src/formats/formatNames.js';
import { scanLog } from '../../src/replay/scanLog.js';
import type { Found, RepeatRun, ScanCounters } from '../../src/replay/scanRange.js';
import { catalogSamples } from '../helpers/scannedSamples.js';

/*
 * replay --format auto (or a config whose first source is auto: a `docker logs` pipe's) on a
 * server's own log: auto chooses the format from the first lines, as the daemon's AutoParser does,
 * and a stderr, csvlog or jsonlog file is then read as naming that format reads it (the shared
 * scanner over whole chunks), not line by line (2-5x slower on a field trial's files). The same
 * incidents and counters as naming the format, plain or gzip-compressed.
 */
const dir = mkdtempSync(join(tmpdir(), 'seqwatch-replay-auto-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function replayed(file: string, format: Format, logLinePrefix: string) {
  const found: Found[] = [];
  const detected: string[] = [];
  const misread: string[] = [];
  const onIncident = Object.assign((incident: Incident) => void found.push(incident), {
    repeats: (run: RepeatRun) => void found.push({ ...run, epochs: run.epochs.slice(0, run.count) }),
  });
  const counters: ScanCounters = await scanLog(file, {
    format,
    logLinePrefix,
    onIncident,
    onDetected: (chosen) => void detected.push(chosen),
    onMisread: (chosen) => void misread.push(chosen),
  });
  return { found, counters, detected, misread };
}

describe('replay --format auto on a server log', () => {
  for (const sample of catalogSamples()) {
    for (const gz of [false, true]) {
      it(`${sample.name}${gz ? ', gzip-compressed' : ''}: chooses ${sample.format} and reads it as naming it does`, async () => {
        const file = join(dir, `${sample.name.replace(/\W+/g, '-')}.log${gz ? '.gz' : ''}`);
        // Enough for a few chunks, so that what is read after the first lines counts too.
        const text = sample.text.repeat(40);
        writeFileSync(file, gz ? gzipSync(text) : text);
        const [auto, named] = await Promise.all([replayed(file, 'auto', sample.prefix), replayed(file, sample.format, sample.prefix)]);
        expect(auto.detected).toEqual([sample.format]);
        expect(auto.misread).toEqual([]);
        expect(named.found.length).toBeGreaterThan(0);
        expect(auto.found).toEqual(named.found);
        expect(auto.counters).toEqual(named.counters);
      });
    }
  }

  it('a log whose first lines are no server records (application logs) is read line by line, as before', async () => {
    const file = join(dir, 'app.log');
    const lines = Array.from({ length: 60 }, (_, i) => `2026-12-04T10:00:${String(i % 60).padStart(2, '0')}Z INFO request ${i} done`);
    lines.push('2026-12-04T10:01:00Z ERROR pq: duplicate key value violates unique constraint "ticket_pkey"');
    writeFileSync(file, lines.join('\n') + '\n');
    const auto = await replayed(file, 'auto', '%m [%p] ');
    expect(auto.detected).toEqual(['app-text']);
    expect(auto.found).toEqual([expect.objectContaining({ kind: 'unique_violation', constraint: 'ticket_pkey' })]);
  });

  /**
   * A log that begins as a server's stderr log and goes on with lines of another kind holding
   * errors (an application's, in the same stream): AutoParser chooses again once three of them are
   * no stderr records, and reads them so. A file is read again line by line, by AutoParser, as
   * before the fast path: the same report.
   */
  const mixed = () => {
    const server = (i: number, text: string) => `2026-12-04 10:00:${String(i).padStart(2, '0')}.000 UTC [${100 + i}] app@db ${text}`;
    const lines = [server(0, 'LOG:  database system is ready to accept connections')];
    for (let i = 1; i < 30; i++) lines.push(server(i, `LOG:  statement: SELECT ${i}`));
    lines.push(server(30, 'ERROR:  duplicate key value violates unique constraint "ticket_pkey"'));
    for (let i = 0; i < 4; i++) lines.push(`2026-12-04T10:01:0${i}Z ERROR pq: duplicate key value violates unique constraint "article_pkey"`);
    return lines.join('\n') + '\n';
  };

  it('a file whose later lines holding errors are no records of the format chosen: read again, as AutoParser reads it (it chooses again)', async () => {
    const file = join(dir, 'mixed.log');
    writeFileSync(file, mixed());
    const auto = await replayed(file, 'auto', '%m [%p] %q%u@%d ');
    expect(auto.misread).toEqual(['postgres-stderr']);
    expect(auto.detected[0]).toBe('postgres-stderr');
    const constraints = auto.found.map((found) => ('epochs' in found ? found.first : found).constraint);
    expect(constraints).toContain('ticket_pkey');
    expect(constraints).toContain('article_pkey');
  });

  it('the same through a pipe (read once): what the scan found is handed on, and those lines are counted unreadable', async () => {
    const fifo = join(dir, 'mixed.fifo');
    execFileSync('mkfifo', [fifo]);
    const writer = createWriteStream(fifo);
    writer.end(mixed());
    const auto = await replayed(fifo, 'auto', '%m [%p] %q%u@%d ');
    expect(auto.detected).toEqual(['postgres-stderr']);
    expect(auto.found.map((found) => ('epochs' in found ? found.first : found).constraint)).toEqual(['ticket_pkey']);
    expect(auto.counters.unreadable).toBe(4);
  });
});
