import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Format, InnerFormat } from '../../src/formats/createParser.js';
import { repoRoot } from './db.js';

export const CORPUS = join(repoRoot, 'test/fixtures/logs');

/** The log files under `dir` (the corpus), without the programs that wrote them and their expectations. */
export function logsUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return logsUnder(path);
    return /\.(log|csv|json|jsonl)$/.test(name) && !name.endsWith('.expect.json') && statSync(path).size < 4_000_000 ? [path] : [];
  });
}

/** One sample of the corpus: a log file and what its `<file>.expect.json` says must be found in it. */
export interface CorpusSample {
  /** `<stack>/<file>` */
  name: string;
  stack: string;
  path: string;
  format: Exclude<Format, 'auto'>;
  inner?: InnerFormat;
  prefix: string;
  /** The constraint of every failure, in order: one entry per failure, not per line. */
  incidents: string[];
  /** Tables whose sequence the sample must heal (in its stack's schema.sql). */
  heals: string[];
  /** Tables whose sequence must stay where it is. */
  untouched: string[];
}

/** Every annotated sample: a file with a sidecar `<file>.expect.json` (adding one needs no TypeScript). */
export function corpusSamples(): CorpusSample[] {
  const samples: CorpusSample[] = [];
  for (const stack of readdirSync(CORPUS, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()) {
    for (const file of readdirSync(join(CORPUS, stack)).sort()) {
      if (!file.endsWith('.expect.json')) continue;
      const path = join(CORPUS, stack, file.slice(0, -'.expect.json'.length));
      if (!existsSync(path)) throw new Error(`${stack}/${file}: annotates a file that does not exist`);
      const expect = JSON.parse(readFileSync(join(CORPUS, stack, file), 'utf8')) as {
        format?: CorpusSample['format'];
        inner_format?: InnerFormat;
        log_line_prefix?: string;
        incidents: string[];
        heals: string[];
        untouched?: string[];
      };
      samples.push({
        name: `${stack}/${file.slice(0, -'.expect.json'.length)}`,
        stack,
        path,
        format: expect.format ?? 'app-text',
        ...(expect.inner_format ? { inner: expect.inner_format } : {}),
        prefix: expect.log_line_prefix ?? '%m [%p] ',
        incidents: expect.incidents,
        heals: expect.heals,
        untouched: expect.untouched ?? [],
      });
    }
  }
  return samples;
}

/** The stacks' schema.sql, each run in a database of its own named as when the samples were made. */
export function corpusStacks(): Array<{ stack: string; database: string; schema: string }> {
  return readdirSync(CORPUS, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(CORPUS, d.name, 'schema.sql')))
    .map((d) => ({ stack: d.name, database: `corpus_${d.name.replace(/\W/g, '_')}`, schema: readFileSync(join(CORPUS, d.name, 'schema.sql'), 'utf8') }));
}
