import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadResults, readNotes, renderBenchmarksDoc, renderReadmeTable, withReadmeTable } from '../../bench/doc.mjs';

/**
 * docs/benchmarks.md and the README's table are generated from bench/results/*.json by bench/doc.mjs
 * (`npm run bench:doc`). Committed and generated must be the same, so neither can drift from the
 * results. No server: this reads files only.
 */
const repo = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const results = () => loadResults(repo('bench/results'));
const notes = () => readNotes(repo('bench/notes.md'));

describe('the benchmark docs', () => {
  it('docs/benchmarks.md is what bench/doc.mjs makes of bench/results (run npm run bench:doc)', () => {
    expect(readFileSync(repo('docs/benchmarks.md'), 'utf8')).toBe(renderBenchmarksDoc(results(), notes()));
  });

  it("the README's benchmark table is what bench/doc.mjs makes of bench/results (run npm run bench:doc)", () => {
    const readme = readFileSync(repo('README.md'), 'utf8');
    expect(readme).toBe(withReadmeTable(readme, renderReadmeTable(results())));
  });

  it('names every result file, its machine and its date', () => {
    const doc = renderBenchmarksDoc(results(), notes());
    for (const { name, data } of results()) {
      expect(doc).toContain(`bench/results/${name}.json`);
      expect(doc).toContain(String(data.date).slice(0, 10));
    }
  });

  it('renders keys it has never seen: medians and ratios at any depth, and evaluates the targets it knows', () => {
    const live = {
      name: 'live',
      data: {
        benchmark: 'live overhead per format',
        runs: 3,
        formats: {
          csvlog: {
            median_cpu_ms_per_mib: { seqwatch: 1.9, tail_grep: 2.2 },
            ratio_seqwatch_to_tail_grep_cpu: 0.86,
            ratio_seqwatch_to_tail_grep_cpu_from_ready: 1.31,
          },
          jsonlog: { median_cpu_ms_per_mib: { seqwatch: 2.6, tail_grep: 2.2 }, ratio_seqwatch_to_tail_grep_cpu: 1.18 },
        },
        breakdown: { read_ms: 0.4, scan_ms: 0.9 },
        all_runs: [1, 2, 3],
      },
    };
    const doc = renderBenchmarksDoc([live], { intro: '', sections: new Map() });
    expect(doc).toContain('formats.csvlog.median_cpu_ms_per_mib');
    expect(doc).toContain('0.86x');
    expect(doc).toContain('1.18x');
    expect(doc).toContain('breakdown.read_ms');
    expect(doc).toMatch(/formats\.csvlog\.ratio_seqwatch_to_tail_grep_cpu.*0\.86x.*: met/);
    expect(doc).toMatch(/formats\.jsonlog\.ratio_seqwatch_to_tail_grep_cpu.*1\.18x.*: not met/);
    // live's target is the steady state; the figure from 'ready' (V8 warming up included) is shown, not judged.
    expect(doc).toContain('1.31x');
    expect(doc).not.toMatch(/from_ready.*limit/);
    expect(doc).toContain('machine: not recorded');
    const table = renderReadmeTable([live]);
    expect(table).toContain('0.86x');
    expect(table).toContain('1.18x');
  });

  it("shows replay's search floor beside the targets without judging it (it is a peer, not seqwatch)", () => {
    const replay = {
      name: 'replay',
      data: {
        benchmark: 'replay',
        ratio_seqwatch_to_grep_time: 0.97,
        ratio_seqwatch_2_threads_to_grep_time: 0.93,
        search_floor: { ratio_floor_to_grep_time: 0.58, ratio_floor_2_threads_to_grep_time: 0.51 },
      },
    };
    const doc = renderBenchmarksDoc([replay], { intro: '', sections: new Map() });
    expect(doc).toMatch(/ratio_seqwatch_to_grep_time.*0\.97x.*: met/);
    expect(doc).toMatch(/ratio_seqwatch_2_threads_to_grep_time.*0\.93x.*: not met/);
    expect(doc).toContain('| search_floor: floor 2 threads / grep time | 0.51x |');
    expect(doc).not.toMatch(/0\.5[18]x \(limit/);
    expect(renderReadmeTable([replay])).not.toMatch(/0\.5[18]x \(limit/);
  });

  it('refuses a README without the table markers, naming them', () => {
    expect(() => withReadmeTable('# seqwatch\n', '| a |')).toThrow(/<!-- bench:begin .*<!-- bench:end -->/);
  });
});
