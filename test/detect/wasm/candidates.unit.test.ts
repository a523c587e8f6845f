import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IncidentScanner, SCANNED_FORMATS } from '../../../src/detect/scanner.js';
import { MultiNeedleCandidates } from '../../../src/detect/wasm/candidates.js';
import { createMultiNeedleSearch } from '../../../src/detect/wasm/multiNeedle.js';
import { CORPUS, logsUnder } from '../../helpers/corpus.js';
import { fuzzLines, SEEDS } from '../../helpers/fuzzCorpus.js';
import { random } from '../../helpers/random.js';
import { catalogSamples } from '../../helpers/scannedSamples.js';

/** Logs of every scanned format: the catalog samples (every family, every language), the fuzz corpus, the corpus of real logs. */
function logs(): Array<{ name: string; text: string }> {
  const next = random(0xca4d);
  const extra = [
    '2026-11-27 10:00:00.123 UTC [44] gotrs@gotrs ERROR:  relation "x\n\tticket_id_seq" does not exist',
    '2026-11-27 10:00:00.123 UTC [45] gotrs@gotrs FEHLER:  2200H: nextval: Maximalwert von Sequenz »zähler« erreicht (2)',
    '2026-11-27 10:00:00.123 UTC,"u","d",7,"h",s,1,"INSERT",2026-11-27 10:00:00 UTC,3/4,0,FEHLER,2200H,"nextval: Maximalwert von Sequenz »z« erreicht (2)",,,,,,"INSERT\n(1)",,,"psql","client backend",,0',
    '\tconflict=insert_exists',
  ];
  const seeds = [...SEEDS, ...extra];
  const lines = fuzzLines(seeds, next, 6000);
  return [
    { name: 'fuzz', text: lines.join('\n') + '\n' },
    ...catalogSamples().map((s) => ({ name: s.name, text: s.text })),
    ...logsUnder(CORPUS).map((path) => ({ name: path, text: readFileSync(path, 'utf8') })),
  ];
}

describe('the multi-needle search gives the scanner exactly the lines its indexOf passes give', () => {
  const texts = logs();

  it('candidateLines, whole logs and ranges of them, in every scanned format and prefix', () => {
    const next = random(0xab1e);
    for (const format of SCANNED_FORMATS) {
      for (const prefix of ['%m [%p] %q%u@%d ', '%m [%p] %e %q%u@%d ', '%m [%p] %e: ']) {
        // One search for all the logs (its filter chosen from the first): as a daemon's source reads file after file.
        const search = createMultiNeedleSearch(new IncidentScanner(format, prefix).needles);
        for (const { name, text } of texts) {
          const bytes = Buffer.from(text);
          const scanner = new IncidentScanner(format, prefix, { wasm: false });
          const ranges: Array<[number, number]> = [[0, bytes.length]];
          for (let r = 0; r < 4; r++) {
            // Ranges that end at a line end, as candidateLines requires.
            const from = Math.floor(next() * bytes.length);
            const to = bytes.indexOf(0x0a, from + Math.floor(next() * (bytes.length - from))) + 1 || bytes.length;
            ranges.push([from, to]);
          }
          for (const [from, to] of ranges) {
            const label = `${format} ${prefix} ${name} [${from}, ${to})`;
            const candidates = new MultiNeedleCandidates(search, scanner, format === 'postgres-csv');
            expect(candidates.candidateLines(bytes, from, to), label).toEqual(scanner.candidateLines(bytes, from, to));
          }
        }
      }
    }
  });

  it(
    "a statement of 50,000 lines each holding an error's text (a field trial's bulk INSERT of pasted log lines): its one record, found in time linear in its lines",
    { timeout: 5_000 },
    () => {
      // Each line's hit was walked back through every TAB line before it to the record's first
      // line: 20,000 lines (2.2 MiB) took 2.7 s, 50,000 would take ~17 s.
      const head = '2026-11-27 10:00:00.000 UTC [4242] gotrs@gotrs ';
      const pasted = '\t2026-11-27 10:00:00.123 UTC [4242] gotrs@gotrs ERROR:  duplicate key value violates unique constraint "fake_pkey"';
      const text =
        [`${head}LOG:  statement: INSERT INTO notes (body) VALUES ('`, ...Array<string>(50_000).fill(pasted), "\t')", `${head}ERROR:  boom`].join('\n') + '\n';
      const bytes = Buffer.from(text);
      const scanner = new IncidentScanner('postgres-stderr', '%m [%p] %q%u@%d ', { wasm: false });
      const candidates = new MultiNeedleCandidates(createMultiNeedleSearch(scanner.needles), scanner, false);
      expect(candidates.candidateLines(bytes)).toEqual([0]);
      // And the scanner's own passes (no WebAssembly SIMD), which walked back the same way.
      expect(scanner.candidateLines(bytes)).toEqual([0]);
    },
  );

  it('nextCandidate, walked from candidate to candidate (answered from one search of the buffer), to a line end', () => {
    for (const format of SCANNED_FORMATS) {
      const search = createMultiNeedleSearch(new IncidentScanner(format, '%m [%p] %e %q%u@%d ').needles);
      for (const { name, text } of texts) {
        const bytes = Buffer.from(text);
        const to = bytes.lastIndexOf(0x0a) + 1;
        const scanner = new IncidentScanner(format, '%m [%p] %e %q%u@%d ', { wasm: false });
        const candidates = new MultiNeedleCandidates(search, scanner, format === 'postgres-csv');
        for (let from = 0; from < to;) {
          const expected = scanner.nextCandidate(bytes, from, to);
          expect(candidates.nextCandidate(bytes, from, to), `${format} ${name} from ${from}`).toBe(expected);
          if (expected === -1) break;
          from = bytes.indexOf(0x0a, Math.max(from, expected)) + 1;
          if (from === 0) break;
        }
        // And from line starts and from inside lines every 4 KiB or so (searched anew).
        for (let from = 0; from < to; from += 4099) {
          const lineStart = bytes.lastIndexOf(0x0a, from) + 1;
          for (const at of [lineStart, from])
            expect(candidates.nextCandidate(bytes, at, to), `${format} ${name} from ${at}`).toBe(scanner.nextCandidate(bytes, at, to));
        }
      }
    }
  });
});
