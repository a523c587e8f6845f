import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { detectIncident } from '../../src/detect/detectIncident.js';
import { createParser, type Format, type InnerFormat } from '../../src/formats/createParser.js';
import { corpusSamples } from '../helpers/corpus.js';

/*
 * The corpus of real application (and container) logs under test/fixtures/logs: every sample,
 * read with the format its annotation names (app-text unless said) and with auto, must give
 * exactly the failures its annotation lists, in order, each counted once.
 */
function incidents(text: string, format: Format, options: { inner?: InnerFormat; prefix: string }) {
  const found: string[] = [];
  let detected: string | undefined;
  const parser = createParser(
    format,
    { source: 'sample', logLinePrefix: options.prefix, ...(options.inner ? { innerFormat: options.inner } : {}), onDetected: (f) => (detected ??= f) },
    (record) => {
      const incident = detectIncident(record);
      if (incident) found.push(incident.constraint);
    },
  );
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, i) => parser.push(line, { line: i + 1 }));
  parser.flush();
  return { found, detected, counters: parser.counters };
}

describe('the corpus of real logs', () => {
  const samples = corpusSamples();

  it('has samples of every stack it claims', () => {
    const stacks = new Set(samples.map((s) => s.stack));
    for (const stack of [
      'go-pgx',
      'go-lib-pq',
      'python-django',
      'python-flask-sqlalchemy',
      'python-psycopg',
      'ruby-rails',
      'java-jdbc',
      'node',
      'cri',
      'cnpg',
    ]) {
      expect(stacks, stack).toContain(stack);
    }
  });

  describe.each(samples.map((s) => [s.name, s] as const))('%s', (_name, sample) => {
    const text = readFileSync(sample.path, 'utf8');
    it(`with ${sample.format}`, () => {
      expect(incidents(text, sample.format, sample).found).toEqual(sample.incidents);
    });
    it('with auto', () => {
      const { found, detected } = incidents(text, 'auto', sample);
      expect(found).toEqual(sample.incidents);
      if (text.length > 0) expect(detected).toBe(sample.format);
    });
  });
});
