import { closeSync, mkdtempSync, openSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Incident } from '../../src/detect/detectIncident.js';
import { IncidentScanner } from '../../src/detect/scanner.js';
import { IncidentPacker, unpackIncidents } from '../../src/replay/packIncidents.js';
import { cutAt, CUT_WINDOW, pieceScan, scanInParallel, ScanThreads } from '../../src/replay/parallel.js';
import { FileRangeScan, scanFileRange, ScanTools } from '../../src/replay/scanRange.js';
import { catalogSamples, incidentsOf, PACKED_INCIDENT, type ScannedSample } from '../helpers/scannedSamples.js';

/*
 * The parallel scan (parallel.ts, scanWorker.ts): pieces that each thread cuts for itself, read
 * synchronously, taken in turn from a shared counter; and the single thread's read-ahead. Each
 * must find exactly what the full parser finds, in the file's order.
 */

const dir = mkdtempSync(join(tmpdir(), 'seqwatch-parallel-'));
let files = 0;
const fileOf = (text: string) => {
  const path = join(dir, `log-${files++}`);
  writeFileSync(path, text);
  return path;
};

const summary = (incidents: Incident[]) => incidents.map((i) => `${i.offset} ${i.kind} ${i.constraint} ${i.sqlstate ?? ''} ${i.pid ?? ''} ${i.database ?? ''}`);
const wholeParse = (sample: ScannedSample) =>
  summary(incidentsOf(sample.format, sample.prefix, sample.text).map(({ incident }) => incident)).sort(
    (a, b) => Number(a.split(' ')[0]) - Number(b.split(' ')[0]),
  );

/**
 * A sample's records again and again between ordinary lines, to about `bytes`, with records half as
 * long again as a cut's window now and then (a stderr statement in TAB lines, a csvlog value with
 * newlines, a jsonlog line), so that cuts fall everywhere and some pieces have none.
 */
function busy(sample: ScannedSample, bytes: number): ScannedSample {
  const filler =
    sample.format === 'postgres-json'
      ? JSON.stringify({ error_severity: 'LOG', state_code: '00000', message: 'x'.repeat(200), pid: 9 })
      : sample.format === 'postgres-csv'
        ? `2026-12-02 06:00:00.000 UTC,"a","b",9,"h",6b0f.9,1,"SELECT",2026-12-02 06:00:00 UTC,3/4,0,LOG,00000,"${'x'.repeat(200)}",,,,,,,,,"psql","client backend",,0`
        : `2026-12-02 06:00:00.000 UTC [9] a@b LOG:  ${'x'.repeat(200)}`;
  const long =
    sample.format === 'postgres-json'
      ? JSON.stringify({ error_severity: 'LOG', state_code: '00000', message: 'y'.repeat(1.5 * CUT_WINDOW), pid: 9 })
      : sample.format === 'postgres-csv'
        ? `2026-12-02 06:00:00.000 UTC,"a","b",9,"h",6b0f.9,1,"SELECT",2026-12-02 06:00:00 UTC,3/4,0,LOG,00000,"${'y\n'.repeat(0.75 * CUT_WINDOW)}",,,,,,,,,"psql","client backend",,0`
        : `2026-12-02 06:00:00.000 UTC [9] a@b LOG:  statement: SELECT 1${'\n\tAND y = 1'.repeat((1.5 * CUT_WINDOW) / 11)}`;
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const piece = i % 400 === 0 ? sample.text : i % 3001 === 1500 ? long + '\n' : filler + '\n';
    parts.push(piece);
    size += Buffer.byteLength(piece);
  }
  return { ...sample, text: parts.join('') };
}

/** One sample of each format (every family of the daemon in English), made busy. */
const samples = () => {
  const all = catalogSamples();
  return (['postgres-stderr', 'postgres-csv', 'postgres-json'] as const).map((format) =>
    busy(
      all.find((s) => s.format === format)!,
      5 * 1024 * 1024,
    ),
  );
};

const pool = new ScanThreads(2);
afterAll(() => pool.close());

describe('the parallel scan finds what the full parser finds', () => {
  const logs = samples().map((sample) => ({ sample, path: fileOf(sample.text), expected: wholeParse(sample) }));

  it('each thread cuts its pieces itself: the cuts are lines that begin a record, the same whatever was read of the window, and the pieces tile the file', () => {
    for (const { sample, path } of logs) {
      const bytes = Buffer.from(sample.text);
      const scanner = new IncidentScanner(sample.format, sample.prefix);
      const fd = openSync(path, 'r');
      try {
        const window = Buffer.allocUnsafe(CUT_WINDOW);
        const cuts: number[] = [];
        for (let nominal = 0; nominal < bytes.length; nominal += 97 * 1024) {
          const cut = cutAt(fd, bytes.length, nominal, scanner, window);
          if (nominal === 0) {
            expect(cut).toBe(0);
            cuts.push(cut);
            continue;
          }
          /** Line starts in [from, to) that begin a record, judged on all the bytes. */
          const recordStarts = (from: number, to: number) => {
            const starts: number[] = [];
            for (let at = bytes.indexOf(0x0a, from - 1) + 1; at > 0 && at < to; at = bytes.indexOf(0x0a, at) + 1)
              if (scanner.beginsRecord(bytes, at)) starts.push(at);
            return starts;
          };
          if (cut === -1) {
            // None within the window (read in two steps: its first 64 KiB, then the rest).
            expect(recordStarts(nominal, Math.min(bytes.length, nominal + CUT_WINDOW / 2)), `${sample.name} @${nominal}`).toEqual([]);
            continue;
          }
          expect(cut).toBeGreaterThanOrEqual(nominal);
          // The first line at or after the nominal start that begins a record.
          expect(recordStarts(nominal, cut + 1), `${sample.name} @${nominal}`).toEqual([cut]);
          cuts.push(cut);
        }
        // A piece inside a record longer than the window has no cut of its own.
        expect(cuts.length).toBeLessThan(Math.ceil(bytes.length / (97 * 1024)));
        expect([...cuts].sort((a, b) => a - b)).toEqual(cuts);
        // Pieces as the threads scan them: each byte in exactly one, in order.
        const tools = new ScanTools({ format: sample.format, logLinePrefix: sample.prefix, source: path });
        let covered = 0;
        for (let k = 0; k * 97 * 1024 < bytes.length; k++) {
          const scan = pieceScan(fd, bytes.length, k, 97 * 1024, tools, window, () => {});
          while (scan?.step());
          covered += scan?.counters.bytes ?? 0;
        }
        expect(covered, sample.name).toBe(bytes.length);
      } finally {
        closeSync(fd);
      }
    }
  });

  it(
    'one thread reading ahead, one thread reading piece by piece, and 2 and 3 threads (workers started before, reused from file to file) say the same, in the same order',
    { timeout: 600_000 },
    async () => {
      for (const { sample, path, expected } of logs) {
        const scan = { format: sample.format, logLinePrefix: sample.prefix, source: path };
        const handle = await open(path, 'r');
        try {
          const size = (await handle.stat()).size;
          const one: Incident[] = [];
          await scanFileRange(handle, 0, size, scan, (i) => void one.push(i));
          expect(summary(one), sample.name).toEqual(expected);

          const stepped: Incident[] = [];
          const tools = new ScanTools(scan);
          const range = new FileRangeScan(handle.fd, 0, size, tools, (i) => void stepped.push(i), size);
          while (range.step());
          expect(summary(stepped), sample.name).toEqual(expected);
          expect(range.counters.bytes).toBe(size);

          for (const threads of [2, 3]) {
            const many: Incident[] = [];
            // Pieces of 256 KiB (not 16 MiB): many cuts, some pieces without one.
            const counters = await scanInParallel(handle, size, scan, threads, (i) => void many.push(i), undefined, 256 * 1024, { pool });
            expect(summary(many), `${sample.name}, ${threads} threads`).toEqual(expected);
            expect(many).toStrictEqual(one);
            expect(counters.bytes).toBe(size);
            expect(counters.incidents).toBe(one.length);
          }
        } finally {
          await handle.close();
        }
      }
    },
  );

  // The field (stop 23): replay given a log_line_prefix that is not the log's said "0 duplicate key
  // errors" and ended 0. The lines it cannot read are counted by every way of scanning alike.
  it('lines that hold an error but are no record of the format (a wrong prefix): counted alike by one thread and by several, the first kept', async () => {
    const sample = logs[0]!.sample;
    const scan = { format: sample.format, logLinePrefix: '%t [%p] ', source: logs[0]!.path };
    const handle = await open(logs[0]!.path, 'r');
    try {
      const size = (await handle.stat()).size;
      const one = await scanFileRange(handle, 0, size, scan, () => {});
      expect(one.incidents).toBe(0);
      expect(one.unreadable).toBeGreaterThan(0);
      expect(one.unreadableSample).toMatch(/duplicate key value violates unique constraint$/);
      const two = await scanInParallel(handle, size, scan, 2, () => {}, undefined, 256 * 1024, { pool });
      expect(two).toEqual(one);
    } finally {
      await handle.close();
    }
  });

  it('this thread joining only later (joinAfter): the workers scan meanwhile and their pieces are handed on in order', async () => {
    const { sample, path, expected } = logs[0]!;
    const scan = { format: sample.format, logLinePrefix: sample.prefix, source: path };
    const handle = await open(path, 'r');
    try {
      const size = (await handle.stat()).size;
      let join!: () => void;
      const joinAfter = new Promise<void>((resolve) => (join = resolve));
      const found: Incident[] = [];
      const counters = await scanInParallel(
        handle,
        size,
        scan,
        2,
        (incident) => {
          // This thread joins once a worker's incidents have been handed on (only a worker can have found them).
          if (found.push(incident) === 1) setTimeout(join, 50);
        },
        undefined,
        256 * 1024,
        { pool, joinAfter },
      );
      expect(summary(found)).toEqual(expected);
      expect(counters.bytes).toBe(size);
    } finally {
      await handle.close();
    }
  });

  it('a stopped scan throws its reason and leaves the workers ready for the next', async () => {
    const { sample, path, expected } = logs[0]!;
    const scan = { format: sample.format, logLinePrefix: sample.prefix, source: path };
    const handle = await open(path, 'r');
    try {
      const size = (await handle.stat()).size;
      const stop = new AbortController();
      stop.abort(new Error('no such database'));
      await expect(scanInParallel(handle, size, scan, 2, () => {}, undefined, 256 * 1024, { signal: stop.signal })).rejects.toThrow('no such database');
      // Stopped while this thread waits to join (joinAfter never settles): at once, the workers too.
      const later = new AbortController();
      setTimeout(() => later.abort(new Error('stopped while waiting')), 20);
      await expect(
        scanInParallel(handle, size, scan, 2, () => {}, undefined, 256 * 1024, { pool, signal: later.signal, joinAfter: new Promise(() => {}) }),
      ).rejects.toThrow('stopped while waiting');
      const again: Incident[] = [];
      await scanInParallel(handle, size, scan, 2, (i) => void again.push(i), undefined, 256 * 1024, { pool });
      expect(summary(again)).toEqual(expected);
    } finally {
      await handle.close();
    }
  });

  it('one thread reading ahead, the file truncated under it (copytruncate): what it had read is scanned as read, nothing after', async () => {
    // The read-ahead reads what a chunk carries over again from the file, with the next chunk: here
    // the file is cut short right before that second read, so it must keep what it read the first time.
    for (const { sample } of logs) {
      const path = fileOf(sample.text);
      const firstRead = 4 * 1024 * 1024;
      const asRead = Buffer.from(sample.text).subarray(0, firstRead).toString('utf8');
      const expected = summary(incidentsOf(sample.format, sample.prefix, asRead).map(({ incident }) => incident));
      expect(expected.length, sample.name).toBeGreaterThan(0);
      const handle = await open(path, 'r');
      try {
        const size = (await handle.stat()).size;
        let reads = 0;
        const truncating = {
          read: (...args: Parameters<typeof handle.read>) => {
            if (++reads === 2) truncateSync(path, 1024 * 1024);
            return handle.read(...args);
          },
        } as typeof handle;
        const found: Incident[] = [];
        const tools = new ScanTools({ format: sample.format, logLinePrefix: sample.prefix, source: path });
        await new FileRangeScan(handle.fd, 0, size, tools, (i) => void found.push(i), size).readAhead(truncating);
        expect(reads, sample.name).toBe(2);
        expect(summary(found), sample.name).toEqual(expected);
      } finally {
        await handle.close();
      }
    }
  });
});

describe('IncidentPacker', () => {
  it('packs piece after piece as packIncidents packs each: the same incidents back, the names of each piece its own', () => {
    const common = PACKED_INCIDENT;
    const first: Incident[] = Array.from({ length: 3000 }, (_, i) => ({ ...common, offset: i, constraint: `k${i % 7}` }));
    const second: Incident[] = [
      { kind: 'sequence_missing', constraint: 'x_id_seq', source: '/l', offset: 5, sqlstate: '42P01' },
      { ...common, constraint: 'other' },
    ];
    const packer = new IncidentPacker();
    for (const incident of first) packer.add(incident);
    const one = packer.take();
    for (const incident of second) packer.add(incident);
    const two = packer.take();
    expect(unpackIncidents(structuredClone(one))).toStrictEqual(first);
    expect(unpackIncidents(structuredClone(two))).toStrictEqual(second);
    expect(two.names).toEqual(['unique_violation', 'other', '/l', 'gotrs']);
    expect(unpackIncidents(packer.take())).toEqual([]);
  });
});
