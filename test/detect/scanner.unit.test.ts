import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Incident } from '../../src/detect/detectIncident.js';
import { IncidentScanner, SCANNED_FORMATS, type ScannedFormat, type ScannerOptions } from '../../src/detect/scanner.js';
import { packIncidents, unpackIncidents } from '../../src/replay/packIncidents.js';
import { scanInParallel } from '../../src/replay/parallel.js';
import { scanLog } from '../../src/replay/scanLog.js';
import { scanFileRange } from '../../src/replay/scanRange.js';
import { corpusSamples } from '../helpers/corpus.js';
import { fuzzLines, mutate, SEEDS } from '../helpers/fuzzCorpus.js';
import { random } from '../helpers/random.js';
import { catalogSamples, incidentsOf, PACKED_INCIDENT, type ScannedSample } from '../helpers/scannedSamples.js';

const dir = mkdtempSync(join(tmpdir(), 'seqwatch-scanner-'));
let files = 0;
const fileOf = (text: string | Buffer) => {
  const path = join(dir, `log-${files++}`);
  writeFileSync(path, text);
  return path;
};

/** The record offsets with an incident (full parser + detector) that the scanner did not keep. */
function lost(sample: ScannedSample, options: ScannerOptions): number[] {
  const scanner = new IncidentScanner(sample.format, sample.prefix, options);
  const kept = new Set(scanner.candidateLines(Buffer.from(sample.text)));
  return incidentsOf(sample.format, sample.prefix, sample.text)
    .map(({ record }) => record.offset!)
    .filter((offset) => !kept.has(offset));
}

/** What replay reports of a log: the incidents in the file's order, by where, what and which name. */
const summary = (incidents: Incident[]) => incidents.map((i) => `${i.offset} ${i.kind} ${i.constraint} ${i.sqlstate ?? ''} ${i.pid ?? ''} ${i.database ?? ''}`);

async function replayed(sample: ScannedSample, path = fileOf(sample.text)): Promise<string[]> {
  const found: Incident[] = [];
  await scanLog(path, { format: sample.format, logLinePrefix: sample.prefix, onIncident: (i) => void found.push(i) });
  return summary(found);
}

const wholeParse = (sample: ScannedSample) => summary(incidentsOf(sample.format, sample.prefix, sample.text).map(({ incident }) => incident)).sort(byOffset);
const byOffset = (a: string, b: string) => Number(a.split(' ')[0]) - Number(b.split(' ')[0]);

// The default path (the one-pass WebAssembly search where it is available) and the indexOf passes it falls back to.
describe.each([
  { path: 'default', options: {} },
  { path: 'indexOf passes', options: { wasm: false } },
])('the shared scanner ($path) keeps every record the full parser and the detector act on', ({ options }: { options: ScannerOptions }) => {
  it('every family, in every language installed, in stderr (%e, verbose, neither, %l), csvlog and jsonlog', () => {
    for (const sample of catalogSamples()) {
      const incidents = incidentsOf(sample.format, sample.prefix, sample.text);
      // Without %e or verbose messages only English texts (and PG 18's untranslated conflict=) are found at all.
      expect(incidents.length, sample.name).toBeGreaterThanOrEqual(sample.name === 'stderr' ? 7 : 7 * 2);
      expect(lost(sample, options), sample.name).toEqual([]);
    }
  });

  it("PostgreSQL 18's apply-worker conflict, as a real server logged it (test/detect/fixtures)", () => {
    for (const [format, ext] of [
      ['postgres-stderr', 'log'],
      ['postgres-csv', 'csv'],
      ['postgres-json', 'json'],
    ] as const) {
      const sample = {
        name: ext,
        format,
        prefix: '%m [%p] %q%u@%d ',
        text: readFileSync(join(import.meta.dirname, 'fixtures', `pg18-apply-conflict.${ext}`), 'utf8'),
      };
      expect(incidentsOf(format, sample.prefix, sample.text)).toHaveLength(2);
      expect(lost(sample, options), ext).toEqual([]);
    }
  });

  it('the fuzz corpus: mutated records, invalid bytes, stray TABs, quotes and newlines, in each format', () => {
    // The parsers' fuzz seeds, and records of every family in the three formats.
    const extra = [
      '2026-11-27 10:00:00.123 UTC [43] 23505 gotrs@gotrs FEHLER:  doppelter Schlüsselwert verletzt Unique-Constraint »t_pkey«',
      '2026-11-27 10:00:00.123 UTC [44] gotrs@gotrs ERROR:  relation "x\n\tticket_id_seq" does not exist',
      '2026-11-27 10:00:00.123 UTC [45] gotrs@gotrs FEHLER:  2200H: nextval: Maximalwert von Sequenz »zähler« erreicht (2)',
      '2026-11-27 10:00:00.123 UTC [45] gotrs@gotrs ORT:  nextval_internal, sequence.c:760',
      '2026-11-27 10:00:00.123 UTC [46] ERROR:  conflict detected on relation "public.t": conflict=insert_exists',
      '2026-11-27 10:00:00.123 UTC,"u","d",7,"h",s,1,"INSERT",2026-11-27 10:00:00 UTC,3/4,0,FEHLER,2200H,"nextval: Maximalwert von Sequenz »z« erreicht (2)",,,,,,"INSERT\n(1)",,,"psql","client backend",,0',
      JSON.stringify({ error_severity: 'ERREUR', state_code: '42501', message: 'droit refusé pour la séquence ticket_id_seq', pid: 2 }),
    ];
    const seeds = [...SEEDS, ...extra];
    for (const format of SCANNED_FORMATS) {
      const next = random(0x5ca11 + SCANNED_FORMATS.indexOf(format));
      const lines = fuzzLines(seeds, next, 6000);
      for (const prefix of ['%m [%p] %q%u@%d ', '%m [%p] %e %q%u@%d ']) {
        const sample = { name: `fuzz ${format} ${prefix}`, format, prefix, text: lines.join('\n') + '\n' };
        expect(incidentsOf(format, prefix, sample.text).length, sample.name).toBeGreaterThan(10);
        expect(lost(sample, options), sample.name).toEqual([]);
      }
    }
  });

  it("the annotated corpus's formats (container logs, CloudNativePG, application logs) are not filtered: every line is parsed", () => {
    const formats = new Set(corpusSamples().map((sample) => sample.format));
    expect(formats.size).toBeGreaterThan(0);
    for (const format of formats) expect(new IncidentScanner(format, '%m [%p] ').filters, format).toBe(SCANNED_FORMATS.includes(format as ScannedFormat));
  });

  it('needles that share a pass (sequence and _seq share `seq`) keep exactly the lines one search per needle keeps', () => {
    // Lines with each needle (and near misses) at every position, long enough that windows end everywhere.
    const pieces = [
      'sequence',
      '_seq',
      'seq',
      '_sequence',
      'sequ',
      'x_se',
      'duplicate key value violates unique constraint',
      'conflict=',
      '23505: ',
      '2200H: ',
      'queue_id',
      'plain',
    ];
    const lines: string[] = [];
    for (let i = 0; lines.length < 40_000; i++) {
      const piece = pieces[i % pieces.length]!;
      lines.push(`2026-12-02 06:00:00.000 UTC [9] a@b LOG:  ${'q_s'.repeat(i % 7)}${piece}${'e'.repeat(i % 13)} ${'x'.repeat(i % 97)}`);
    }
    const bytes = Buffer.from(lines.join('\n') + '\n');
    const scanner = new IncidentScanner('postgres-stderr', '%m [%p] %q%u@%d ', options);
    const expected: number[] = [];
    let at = 0;
    for (const line of lines) {
      if (scanner.needles.some((needle) => line.includes(needle))) expected.push(at);
      at += Buffer.byteLength(line) + 1;
    }
    expect(expected.length).toBeGreaterThan(10_000);
    expect(scanner.candidateLines(bytes)).toEqual(expected);
    const walked: number[] = [];
    for (let next = scanner.nextCandidate(bytes, 0); next !== -1; next = scanner.nextCandidate(bytes, bytes.indexOf(0x0a, next) + 1)) walked.push(next);
    expect(walked).toEqual(expected);
  });

  it("prepared at start from a sample (the followed file's last bytes, here another log), it keeps the same lines", () => {
    const samples = catalogSamples();
    for (const [i, sample] of samples.entries()) {
      const bytes = Buffer.from(sample.text);
      const unprepared = new IncidentScanner(sample.format, sample.prefix, options).candidateLines(bytes);
      for (const other of [samples[(i + 1) % samples.length]!.text, sample.text.slice(0, 200), '\n']) {
        const prepared = new IncidentScanner(sample.format, sample.prefix, options);
        prepared.prepare(Buffer.from(other));
        const walked: number[] = [];
        for (let at = prepared.nextCandidate(bytes, 0); at !== -1; at = prepared.nextCandidate(bytes, bytes.indexOf(0x0a, at) + 1)) walked.push(at);
        expect(walked, sample.name).toEqual(unprepared);
        expect(prepared.candidateLines(bytes), sample.name).toEqual(unprepared);
      }
    }
  });

  it('nextCandidate walks forward to the same lines candidateLines gives', () => {
    // (csvlog's records here are one line each: candidateLines' second offset for a hit never comes up.)
    for (const sample of catalogSamples()) {
      const bytes = Buffer.from(sample.text);
      const scanner = new IncidentScanner(sample.format, sample.prefix, options);
      const walked: number[] = [];
      for (let at = scanner.nextCandidate(bytes, 0); at !== -1; at = scanner.nextCandidate(bytes, bytes.indexOf(0x0a, at) + 1)) walked.push(at);
      expect(walked, sample.name).toEqual(new IncidentScanner(sample.format, sample.prefix, options).candidateLines(bytes));
    }
  });
});

describe('replay on the shared scanner says what the full parser says', () => {
  it('every family in every language, each format', async () => {
    for (const sample of catalogSamples()) expect(await replayed(sample), sample.name).toEqual(wholeParse(sample));
  });

  /*
   * Replay reads a record's lines as PostgreSQL writes them: its first line, the TAB lines and the
   * lines of the same message right after it. The full parser also glues onto a record what comes
   * after lines it does not recognise (a stray TAB line two lines further on), which a mutated log
   * has and a server's does not: there replay may find a record the full parser spoilt, never lose one.
   */
  it('the fuzz corpus: nothing the full parser finds is lost', async () => {
    for (const format of SCANNED_FORMATS) {
      const next = random(0xf00d + SCANNED_FORMATS.indexOf(format));
      const lines = Array.from({ length: 4000 }, () =>
        next() < 0.6 ? mutate(SEEDS[Math.floor(next() * SEEDS.length)]!, next) : SEEDS[Math.floor(next() * SEEDS.length)]!,
      );
      const sample = { name: `fuzz ${format}`, format, prefix: '%m [%p] %q%u@%d ', text: lines.join('\n') + '\n' };
      const found = new Set(await replayed(sample));
      const whole = wholeParse(sample);
      expect(whole.length, sample.name).toBeGreaterThan(10);
      expect(
        whole.filter((incident) => !found.has(incident)),
        sample.name,
      ).toEqual([]);
    }
  });

  it("a worker's incidents reach the main thread as they were: the same keys, order and values, of every shape", () => {
    const common = PACKED_INCIDENT;
    const incidents: Incident[] = [
      common,
      { ...common, offset: 2 ** 40 + 3, pid: 7, logTime: '' },
      { kind: 'sequence_missing', constraint: 'x_id_seq', source: '/l', offset: 5, sqlstate: '42P01' },
      { ...common, database: undefined },
      { kind: 'replication_conflict', constraint: 'a_pkey', source: '/l', replication: { origin: 'pg_1', conflictType: 'insert_exists' } } as Incident,
      { source: '/l', kind: 'unique_violation', constraint: 'k', offset: 1, logTime: 't', pid: 2, database: 'd' },
      { ...common, logTime: 'two\nlines' },
      { ...common, constraint: 'другой_ключ', offset: 0, pid: -0 },
    ];
    const back = unpackIncidents(structuredClone(packIncidents(incidents)));
    expect(back).toStrictEqual(incidents);
    expect(back.map((incident) => Object.keys(incident))).toEqual(incidents.map((incident) => Object.keys(incident)));
    expect(unpackIncidents(packIncidents([]))).toEqual([]);
  });

  it('records across read chunks (4 MiB) and pieces: one thread and two find the same, in the same order', { timeout: 600_000 }, async () => {
    // ~5 MiB: every family's records again and again between ordinary statements, so chunk and piece ends fall everywhere.
    const samples = catalogSamples();
    for (const sample of samples) {
      const filler =
        sample.format === 'postgres-json'
          ? JSON.stringify({ error_severity: 'LOG', state_code: '00000', message: 'x'.repeat(200), pid: 9 })
          : sample.format === 'postgres-csv'
            ? `2026-12-02 06:00:00.000 UTC,"a","b",9,"h",6b0f.9,1,"SELECT",2026-12-02 06:00:00 UTC,3/4,0,LOG,00000,"${'x'.repeat(200)}",,,,,,,,,"psql","client backend",,0`
            : `2026-12-02 06:00:00.000 UTC [9] a@b LOG:  ${'x'.repeat(200)}`;
      const parts: string[] = [];
      let size = 0;
      for (let i = 0; size < 5 * 1024 * 1024; i++) {
        const piece = i % 400 === 0 ? sample.text : filler + '\n';
        parts.push(piece);
        size += Buffer.byteLength(piece);
      }
      const big = { ...sample, text: parts.join('') };
      const path = fileOf(big.text);
      const one = await replayed(big, path);
      expect(one, sample.name).toEqual(wholeParse(big));
      const handle = await open(path, 'r');
      try {
        const two: Incident[] = [];
        const { size: bytes } = await handle.stat();
        // Pieces of 256 KiB (not 32 MiB): many cuts, each where a record may begin.
        await scanInParallel(handle, bytes, { format: big.format, logLinePrefix: big.prefix, source: path }, 2, (i) => void two.push(i), undefined, 256 * 1024);
        expect(summary(two), sample.name).toEqual(one);
        const range: Incident[] = [];
        await scanFileRange(handle, 0, bytes, { format: big.format, logLinePrefix: big.prefix, source: path }, (i) => void range.push(i));
        expect(summary(range)).toEqual(one);
      } finally {
        await handle.close();
      }
    }
  });
});
