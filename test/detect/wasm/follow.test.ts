import { appendFileSync, copyFileSync, mkdtempSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { detectIncident } from '../../../src/detect/detectIncident.js';
import { IncidentScanner, type ScannerOptions } from '../../../src/detect/scanner.js';
import { createParser, type Format } from '../../../src/formats/createParser.js';
import { lineSkippingFor } from '../../../src/formats/passOver.js';
import { LineSplitter } from '../../../src/sources/LineSplitter.js';
import { FileFollower } from '../../../src/sources/FileFollower.js';
import { waitFor } from '../../helpers/daemon.js';
import { random } from '../../helpers/random.js';
import { catalogSamples } from '../../helpers/scannedSamples.js';

/*
 * The live path asks the scanner's nextCandidate about each buffer it reads, line after line
 * (LineSplitter.skipTo), and the one-pass search remembers its hits per buffer. Followed through
 * reads of every size, rename and copytruncate rotations, the WebAssembly path must pass over
 * exactly what the indexOf path passes over: the same records reach the parser, the same incidents.
 */

const followers: FileFollower[] = [];
afterEach(async () => {
  await Promise.all(followers.splice(0).map((f) => f.stop()));
});

/** A parser fed by lines; `scanner` undefined: every line read (no skipping). */
function reader(format: Format, prefix: string, scanner: ScannerOptions | undefined) {
  const found: string[] = [];
  const search = scanner ? new IncidentScanner(format, prefix, scanner) : undefined;
  // The scanner's needles as the parser's pre-check (they cover verbose messages' `23505: ` too).
  const interesting = search ? { interesting: (line: string) => search.needles.some((needle) => line.includes(needle)) } : {};
  const parser = createParser(format, { source: 's', logLinePrefix: prefix, ...interesting }, (record) => {
    const incident = detectIncident(record);
    if (incident) found.push(`${record.offset} ${incident.kind} ${incident.constraint} ${record.message.length}`);
  });
  const skipping = search ? lineSkippingFor(format, parser, search) : undefined;
  return { found, parser, skipping, search };
}

/** The samples' records between ordinary lines of their format, in pieces (cut anywhere, lines too). */
function pieces(format: Format, text: string, seed: number): string[] {
  const next = random(seed);
  const filler =
    format === 'postgres-json'
      ? JSON.stringify({ error_severity: 'LOG', state_code: '00000', message: 'duration: 0.5 ms', pid: 9 })
      : format === 'postgres-csv'
        ? '2026-12-02 06:00:00.000 UTC,"a","b",9,"h",6b0f.9,1,"SELECT",2026-12-02 06:00:00 UTC,3/4,0,LOG,00000,"duration: 0.5 ms",,,,,,,,,"psql","client backend",,0'
        : '2026-12-02 06:00:00.000 UTC [9] a@b LOG:  duration: 0.5 ms';
  const records = text.split(/\n(?=\S)/);
  const parts: string[] = [];
  for (const record of records) {
    for (let n = Math.floor(next() * 40); n > 0; n--) parts.push(filler + '\n');
    parts.push(record.endsWith('\n') ? record : record + '\n');
  }
  const whole = parts.join('');
  const out: string[] = [];
  for (let at = 0; at < whole.length;) {
    const size = 1 + Math.floor(next() ** 3 * 20_000);
    out.push(whole.slice(at, at + size));
    at += size;
  }
  return out;
}

describe('the live path on the one-pass search finds what it finds on the indexOf passes', () => {
  it('the scanner uses the WebAssembly search by default here (Node 20), the indexOf passes when told', () => {
    expect(new IncidentScanner('postgres-stderr', '%m [%p] ').wasm).toBe(true);
    expect(new IncidentScanner('postgres-stderr', '%m [%p] ', { wasm: false }).wasm).toBe(false);
  });

  it('a LineSplitter fed reads of every size, each a new view of one reused buffer (as FileFollower reads)', () => {
    for (const sample of catalogSamples()) {
      const parts = pieces(sample.format, sample.text, 0x5eed);
      const bytes = Buffer.from(parts.join(''));
      const results = [undefined, {}, { wasm: false }].map((options) => {
        const r = reader(sample.format, sample.prefix, options);
        const splitter = new LineSplitter(
          1024 * 1024,
          (line, position) => r.parser.push(line.toString('utf8'), position),
          () => {},
          0,
          r.skipping,
        );
        const chunk = Buffer.allocUnsafe(64 * 1024);
        const next = random(0x77);
        for (let at = 0; at < bytes.length;) {
          const size = Math.min(bytes.length - at, 1 + Math.floor(next() ** 2 * chunk.length));
          bytes.copy(chunk, 0, at, at + size);
          splitter.push(chunk.subarray(0, size), at);
          at += size;
        }
        splitter.end();
        r.parser.flush();
        return r;
      });
      expect(results[1]!.search!.wasm).toBe(true);
      expect(results[0]!.found.length, sample.name).toBeGreaterThan(5);
      expect(results[1]!.found, `${sample.name}: wasm`).toEqual(results[0]!.found);
      expect(results[2]!.found, `${sample.name}: indexOf`).toEqual(results[0]!.found);
      expect(results[1]!.parser.counters.skippedLines, sample.name).toBe(results[2]!.parser.counters.skippedLines);
    }
  });

  it('FileFollower through appends, rename and copytruncate rotations', { timeout: 60_000 }, async () => {
    for (const sample of catalogSamples().filter((s) => ['stderr %e', 'csvlog', 'jsonlog'].includes(s.name))) {
      const d = mkdtempSync(join(tmpdir(), 'seqwatch-wasm-follow-'));
      const path = join(d, 'pg.log');
      writeFileSync(path, '');
      const readers = [undefined, {}, { wasm: false }].map((options) => reader(sample.format, sample.prefix, options));
      for (const r of readers) {
        const follower = new FileFollower(
          path,
          { onLine: (line, position) => r.parser.push(line.toString('utf8'), position) },
          {
            startAt: 'beginning',
            pollIntervalMs: 5,
            rotatedIdleMs: 50,
            ...(r.skipping ? { skipping: r.skipping } : {}),
          },
        );
        followers.push(follower);
        await follower.start();
      }
      let written = 0;
      /** Every follower has read all that was written to the file now there. */
      const caughtUp = () =>
        waitFor(`${sample.name} read`, () => followers.every((f) => (f.counters as { bytes: number }).bytes >= written), 10_000).then(
          () => new Promise((resolve) => setTimeout(resolve, 60)),
        );
      const parts = pieces(sample.format, sample.text + sample.text, 0xf011);
      for (const [i, part] of parts.entries()) {
        appendFileSync(path, part);
        written += Buffer.byteLength(part);
        if (i % 7 === 3) await new Promise((resolve) => setTimeout(resolve, 8));
        if (i === Math.floor(parts.length / 3)) {
          await caughtUp();
          renameSync(path, join(d, 'pg.log.1'));
          writeFileSync(path, '');
          written = 0;
          await new Promise((resolve) => setTimeout(resolve, 120));
          for (const f of followers) (f.counters as { bytes: number }).bytes = 0;
        }
        if (i === Math.floor((2 * parts.length) / 3)) {
          await caughtUp();
          copyFileSync(path, join(d, 'pg.log.2'));
          truncateSync(path, 0);
          written = 0;
          await new Promise((resolve) => setTimeout(resolve, 120));
          for (const f of followers) (f.counters as { bytes: number }).bytes = 0;
        }
      }
      await caughtUp();
      await Promise.all(followers.splice(0).map((f) => f.stop()));
      for (const r of readers) r.parser.flush();
      expect(readers[1]!.search!.wasm).toBe(true);
      expect(readers[0]!.found.length, sample.name).toBeGreaterThan(10);
      expect(readers[1]!.found, `${sample.name}: wasm`).toEqual(readers[0]!.found);
      expect(readers[2]!.found, `${sample.name}: indexOf`).toEqual(readers[0]!.found);
    }
  });
});
