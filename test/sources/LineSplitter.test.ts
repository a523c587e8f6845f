import { describe, expect, it } from 'vitest';
import { LineSplitter, type LinePosition } from '../../src/sources/LineSplitter.js';

/** The start of the first line in bytes[from, to) holding one of `needles`, or -1 (the scanner's job in the daemon). */
function nextLineWith(needles: string[]) {
  return (bytes: Buffer, from: number, to: number) => {
    const hits = needles.map((n) => bytes.indexOf(n, from)).filter((at) => at !== -1 && at < to);
    return hits.length === 0 ? -1 : bytes.lastIndexOf(0x0a, Math.min(...hits)) + 1;
  };
}

/** Splits `chunks` (pushed one after the other) and returns what came out. */
function split(chunks: string[], skipping?: { needles: string[]; canSkip: () => boolean }) {
  const lines: Array<{ text: string } & LinePosition> = [];
  let skipped = 0;
  const splitter = new LineSplitter(
    1024,
    (line, position) => lines.push({ text: line.toString(), ...position }),
    () => {},
    0,
    skipping && { nextCandidate: nextLineWith(skipping.needles), canSkip: skipping.canSkip, onSkipped: (n) => (skipped += n) },
  );
  let at = 0;
  for (const chunk of chunks) {
    splitter.push(Buffer.from(chunk), at);
    at += Buffer.byteLength(chunk);
  }
  return { lines, skipped, lineStart: splitter.lineStart };
}

describe('LineSplitter passing over lines that cannot matter', () => {
  const log = ['first', 'ordinary 1', 'ordinary 2', 'a NEEDLE here', 'ordinary 3', 'ordinary 4', 'NEEDLE again', 'tail'].map((l) => `${l}\n`).join('');

  it('hands out the first line and the lines with a needle, with their true offsets and numbers; the rest are counted', () => {
    const { lines, skipped, lineStart } = split([log], { needles: ['NEEDLE'], canSkip: () => true });
    expect(lines.map((l) => [l.text, l.offset, l.line])).toEqual([
      ['first', 0, 1],
      ['a NEEDLE here', log.indexOf('a NEEDLE'), 4],
      ['NEEDLE again', log.indexOf('NEEDLE again'), 7],
    ]);
    expect(skipped).toBe(5);
    expect(lineStart).toBe(Buffer.byteLength(log));
  });

  it('hands out every line while something downstream is being assembled', () => {
    expect(split([log], { needles: ['NEEDLE'], canSkip: () => false }).lines).toHaveLength(8);
  });

  it('never passes over a line split between two reads, nor a needle split between them', () => {
    const cut = log.indexOf('EDLE again');
    const { lines } = split([log.slice(0, cut), log.slice(cut)], { needles: ['NEEDLE'], canSkip: () => true });
    expect(lines.map((l) => l.text)).toContain('NEEDLE again');
    expect(lines.map((l) => l.text)).toContain('a NEEDLE here');
  });

  it('without skipping, hands out every line', () => {
    expect(split([log]).lines).toHaveLength(8);
  });
});

describe('LineSplitter reporting discontinuities (the framing of multi-line records relies on them)', () => {
  it('marks the first line, the line after a dropped over-long one, and the first line after a reset', () => {
    const { lines } = split(['one\n', `${'x'.repeat(2000)}\ntwo\nthree\n`]);
    expect(lines.map((l) => [l.text, l.boundary])).toEqual([
      ['one', 'start'],
      ['two', 'gap'],
      ['three', undefined],
    ]);
    const out: Array<LinePosition> = [];
    const splitter = new LineSplitter(
      1024,
      (_line, position) => out.push(position),
      () => {},
    );
    splitter.push(Buffer.from('a\n'), 0);
    splitter.reset(2, false);
    splitter.push(Buffer.from('b\n'), 2);
    splitter.reset(0);
    splitter.push(Buffer.from('c\n'), 0);
    expect(out.map((p) => p.boundary)).toEqual(['start', undefined, 'start']);
  });
});
