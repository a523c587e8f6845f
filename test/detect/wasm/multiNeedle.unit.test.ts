import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCANNED_FORMATS, scannerNeedles } from '../../../src/detect/scanner.js';
import { createMultiNeedleSearch, type MultiNeedleSearch, wasmSimdAvailable } from '../../../src/detect/wasm/multiNeedle.js';
import { MULTI_NEEDLE_WASM } from '../../../src/detect/wasm/multiNeedleWasm.js';
import { catalogSamples } from '../../helpers/scannedSamples.js';
import { CORPUS, logsUnder } from '../../helpers/corpus.js';
import { fuzzLines, SEEDS } from '../../helpers/fuzzCorpus.js';
import { random } from '../../helpers/random.js';

/** The first occurrence of any needle wholly in bytes[from, to), byte by byte, and which needle (the first listed on a tie). */
function naiveFind(bytes: Buffer, needles: Buffer[], from: number, to: number): { at: number; needle: number } {
  for (let at = from; at < to; at++) {
    for (let n = 0; n < needles.length; n++) {
      const needle = needles[n]!;
      if (at + needle.length > to) continue;
      let k = 0;
      while (k < needle.length && bytes[at + k] === needle[k]) k++;
      if (k === needle.length) return { at, needle: n };
    }
  }
  return { at: -1, needle: -1 };
}

function naiveLineHits(bytes: Buffer, needles: Buffer[], from: number, to: number): number[] {
  const hits: number[] = [];
  for (let k = from; k < to;) {
    const { at } = naiveFind(bytes, needles, k, to);
    if (at === -1) break;
    hits.push(at);
    const end = bytes.indexOf(0x0a, at);
    if (end === -1 || end >= to) break;
    k = end + 1;
  }
  return hits;
}

/** The searchers compared: WebAssembly on data inside its memory and on data copied in, and the indexOf fallback. */
function searchers(needles: Buffer[], size: number, sample?: Buffer): Array<{ name: string; search: MultiNeedleSearch; place: (data: Buffer) => Buffer }> {
  const wasm = createMultiNeedleSearch(needles, { buffers: [size], ...(sample ? { sample } : {}) });
  const fallback = createMultiNeedleSearch(needles, { simd: false });
  return [
    {
      name: 'wasm, in its memory',
      search: wasm,
      place: (data) => {
        const view = wasm.buffers[0]!.subarray(0, data.length);
        data.copy(view);
        return view;
      },
    },
    { name: 'wasm, copied in', search: wasm, place: (data) => data },
    { name: 'indexOf', search: fallback, place: (data) => data },
  ];
}

/** Every searcher gives the naive answers at the ranges given, as find() and as lineHits(). */
function expectSame(data: Buffer, needles: Buffer[], ranges: Array<[number, number]>, label: string, sample?: Buffer): void {
  const expected = ranges.map(([from, to]) => ({ find: naiveFind(data, needles, from, to), lineHits: naiveLineHits(data, needles, from, to) }));
  for (const { name, search, place } of searchers(needles, data.length, sample)) {
    const bytes = place(data);
    ranges.forEach(([from, to], r) => {
      const at = search.find(bytes, from, to);
      expect({ at, needle: at === -1 ? -1 : search.needle }, `${label}: ${name} find(${from}, ${to})`).toEqual(expected[r]!.find);
      expect(search.lineHits(bytes, from, to), `${label}: ${name} lineHits(${from}, ${to})`).toEqual(expected[r]!.lineHits);
    });
  }
}

const buffers = (texts: string[]) => texts.map((text) => Buffer.from(text, 'latin1'));

describe('the WebAssembly multi-needle search finds what a naive search finds', () => {
  it('runs on WebAssembly SIMD here (Node 20), and the embedded module is multiNeedle.wasm', () => {
    expect(wasmSimdAvailable()).toBe(true);
    expect(createMultiNeedleSearch(['ab']).simd).toBe(true);
    const file = readFileSync(join(import.meta.dirname, '../../../src/detect/wasm/multiNeedle.wasm'));
    expect(Buffer.from(MULTI_NEEDLE_WASM, 'base64').equals(file), 'run scripts/build-wasm.sh').toBe(true);
  });

  it('random data over a small alphabet with planted needles: overlapping needles, needles at range edges, every needle count', () => {
    const next = random(0x3ee71e);
    const alphabet = buffers(['ab_seq\n2305:x'])[0]!;
    for (let round = 0; round < 60; round++) {
      const count = 1 + (round % 16);
      // Needles that overlap and contain one another: prefixes and suffixes of the same text, repeats.
      const needles = Array.from({ length: count }, () => {
        const length = 2 + Math.floor(next() ** 3 * 62);
        return Buffer.from(Array.from({ length }, () => alphabet[Math.floor(next() * alphabet.length)]!));
      });
      if (count > 2) needles[1] = needles[0]!.subarray(0, Math.max(2, needles[0]!.length - 1));
      const size = 200 + Math.floor(next() * 3000);
      const data = Buffer.from(Array.from({ length: size }, () => alphabet[Math.floor(next() * alphabet.length)]!));
      for (let p = 0; p < 12; p++) needles[Math.floor(next() * count)]!.copy(data, Math.floor(next() * size));
      const ranges: Array<[number, number]> = [[0, size]];
      for (let r = 0; r < 25; r++) {
        const from = Math.floor(next() * size);
        ranges.push([from, from + Math.floor(next() * (size - from + 1))]);
      }
      // Ranges that end inside a planted needle, and start just past one's first byte.
      const hit = naiveFind(data, needles, 0, size);
      if (hit.at !== -1) ranges.push([hit.at, hit.at + needles[hit.needle]!.length - 1], [hit.at + 1, size], [hit.at, hit.at + needles[hit.needle]!.length]);
      expectSame(data, needles, ranges, `round ${round}`);
    }
  });

  it('needles across the pieces data is copied in by (16 KiB, doubling up to 256 KiB), and at the 16- and 32-byte blocks of the search', () => {
    const needles = buffers(['duplicate key value violates unique constraint', 'sequence', '_seq', 'conflict=', '23505: ', '2200H: ']);
    const size = 1024 * 1024 + 500;
    const data = Buffer.alloc(size, 'x');
    for (let line = 100; line < size; line += 101) data[line] = 0x0a;
    const plant = (at: number, needle: Buffer) => needle.copy(data, at, 0, Math.min(needle.length, size - at));
    // The edges of the pieces from 0 (16, 48, 112, 240, 496, 752 KiB), and every 16 KiB for searches from elsewhere.
    const edges = [16, 48, 112, 240, 496, 752, 1008].map((k) => k * 1024);
    for (let edge = 8 * 1024; edge < size; edge += 16 * 1024) edges.push(edge);
    for (const edge of edges) {
      for (const [shift, n] of [
        [-50, 0],
        [-3, 2],
        [-1, 1],
        [0, 3],
        [15, 4],
        [31, 5],
        [33, 2],
      ] as const)
        plant(edge + shift, needles[n]!);
    }
    plant(size - 4, needles[2]!);
    const ranges: Array<[number, number]> = [
      [0, size],
      [16 * 1024 - 49, size],
      [16 * 1024 - 3, 16 * 1024 + 1],
      [16 * 1024 - 3, 16 * 1024 + 2],
      [300_000, size - 1],
    ];
    for (let from = 0; from < 64; from += 7) ranges.push([from, size - from]);
    for (const edge of edges.slice(0, 7)) ranges.push([edge + 1, size], [edge - 2, size]);
    expectSame(data, needles, ranges, 'pieces');
    // Each needle alone, its start at the last place of a piece (its end in the bytes copied past the piece).
    for (const edge of edges.slice(0, 5)) {
      for (const needle of needles) {
        const alone = Buffer.alloc(edge + 100, 'x');
        needle.copy(alone, edge - 1);
        expectSame(alone, needles, [[0, alone.length]], `${needle.toString()} at ${edge - 1}`);
      }
    }
    // Data with no needle at all, searched in pieces to its end.
    expectSame(Buffer.alloc(size, 'sequenc\n'), needles, [[0, size]], 'none');
  });

  it("the scanner's needles of every format on the fuzz corpus, the catalog samples and the corpus of real logs", () => {
    const next = random(0xf022);
    const lines = fuzzLines(SEEDS, next, 4000);
    const texts = [lines.join('\n') + '\n', ...catalogSamples().map((s) => s.text), ...logsUnder(CORPUS).map((path) => readFileSync(path, 'utf8'))];
    for (const format of SCANNED_FORMATS) {
      for (const prefix of ['%m [%p] %q%u@%d ', '%m [%p] %e %q%u@%d ', '%m [%p] %e: ']) {
        const needles = scannerNeedles(format, prefix).map((n) => Buffer.from(n));
        texts.forEach((text, t) => {
          const data = Buffer.from(text);
          const ranges: Array<[number, number]> = [[0, data.length]];
          for (let r = 0; r < 5; r++) {
            const from = Math.floor(next() * data.length);
            ranges.push([from, from + Math.floor(next() * (data.length - from + 1))]);
          }
          expectSame(data, needles, ranges, `${format} ${prefix} text ${t}`, data);
        });
      }
    }
  });

  it.runIf(wasmSimdAvailable())("count_byte (csvlog's quotes in replay's chunks, counted where they were read) counts as a plain loop does", () => {
    const next = random(91);
    const search = createMultiNeedleSearch(['duplicate key'], { buffers: [70_000] });
    const [buffer] = search.buffers;
    search.lineHits(buffer!.subarray(0, 64));
    const { exports } = search.instance!;
    for (let round = 0; round < 200; round++) {
      // Quotes dense or sparse; ranges of every alignment, empty ones, and longer than 255 blocks.
      const density = next() < 0.5 ? 0.95 : 0.01;
      for (let i = 0; i < buffer!.length; i++) buffer![i] = next() < density ? 0x22 : 0x61;
      const from = Math.floor(next() * 100);
      const to = round % 3 === 0 ? from + Math.floor(next() * 40) : from + Math.floor(next() * (buffer!.length - from));
      let expected = 0;
      for (let i = from; i < to; i++) if (buffer![i] === 0x22) expected++;
      expect(exports.count_byte(buffer!.byteOffset, from, to, 0x22), `${from}..${to}`).toBe(expected);
    }
  });

  it('refuses what it cannot search: too many needles, needles too short or too long', () => {
    expect(() => createMultiNeedleSearch(Array.from({ length: 17 }, (_, i) => `n${i}`))).toThrow(/at most 16/);
    expect(() => createMultiNeedleSearch(['a'])).toThrow(/2 to 64/);
    expect(() => createMultiNeedleSearch(['a'.repeat(65)])).toThrow(/2 to 64/);
  });
});
