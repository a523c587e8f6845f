import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { detectIncident } from '../../src/detect/detectIncident.js';
import { createParser, FORMATS } from '../../src/formats/createParser.js';
import { mutate, SEEDS } from '../helpers/fuzzCorpus.js';
import { random } from '../helpers/random.js';

/** A real garbage collection, so the memory check sees what the parser keeps, not what awaits collection. */
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

describe('parser fuzzing', () => {
  for (const format of FORMATS) {
    it(`${format}: random and mutated records, huge lines and invalid bytes never throw, memory stays bounded`, () => {
      const seed = 0x5eed + FORMATS.indexOf(format);
      const next = random(seed);
      let records = 0;
      const parser = createParser(format, { source: 'fuzz', logLinePrefix: '%m [%p] %q%u@%d ' }, (record) => {
        records++;
        detectIncident(record);
      });
      collectGarbage();
      const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < 10_000; i++) {
        const r = next();
        let line: string;
        if (r < 0.5) line = mutate(SEEDS[Math.floor(next() * SEEDS.length)]!, next);
        else if (r < 0.8) line = SEEDS[Math.floor(next() * SEEDS.length)]!;
        else if (r < 0.98) line = Buffer.from(Array.from({ length: Math.floor(next() * 300) }, () => Math.floor(next() * 256))).toString('utf8');
        else line = (r < 0.99 ? '"' : '{"log":"') + 'x'.repeat(200_000 + Math.floor(next() * 100_000));
        for (const part of line.split('\n')) expect(() => parser.push(part, { offset: i }), `seed ${seed}, line ${i}`).not.toThrow();
        if (i % 1000 === 0) parser.flush();
      }
      parser.flush();
      collectGarbage();
      const grown = process.memoryUsage().heapUsed - before;
      // What a parser may keep: a pending record of bounded size, a few MiB at most.
      expect(grown).toBeLessThan(16 * 1024 * 1024);
      expect(records + parser.counters.unrecognisedLines + parser.counters.orphanLines).toBeGreaterThan(0);
    });
  }
});

/*
 * Hostile records against the clock: text built from what makes backtracking patterns blow up
 * (whitespace runs, «, "(SQLSTATE ", long words, quotes), 16 KiB each, wrapped in every format
 * with SQLSTATE 23505 where the format carries one, through the parser and the detector. Every
 * record must take less than RECORD_BUDGET_MS: the cost must grow linearly with the text.
 */
const RECORD_BUDGET_MS = 50;
const HOSTILE_CHARS = 16 * 1024;

function hostilePayloads(): Array<[name: string, text: string]> {
  const fill = (unit: string, head = '') => head + unit.repeat(Math.ceil((HOSTILE_CHARS - head.length) / unit.length)).slice(0, HOSTILE_CHARS - head.length);
  const next = random(0xbad);
  const pieces = [' ', '\t', '«', '»', '(SQLSTATE ', 'word', '_seq', '"', ':  ', 'ERROR', '23505: ', 'pg_1', '/', '@', 'FEHLER'];
  let mixed = '';
  while (mixed.length < HOSTILE_CHARS) mixed += pieces[Math.floor(next() * pieces.length)];
  return [
    ['« then spaces', fill(' ', '«')],
    ['« then spaces and tabs', fill(' \t', 'la contrainte unique «')],
    ['(SQLSTATE then words', fill('word ', 'pq: (SQLSTATE ')],
    ['(SQLSTATE repeated', fill('(SQLSTATE ')],
    ['word characters', fill('abcdefgh_')],
    ['word characters, no _seq at the end', fill('a_seqa')],
    ['quotes and spaces', fill('" ')],
    ['markers', fill('ERROR:  ')],
    ['user@database application, repeated', fill('u@d app ')],
    ['@ and spaces', fill('@ ')],
    ['a mix', mixed.slice(0, HOSTILE_CHARS)],
    ['spaces, then (SQLSTATE cut short', ' '.repeat(HOSTILE_CHARS - 14) + '(SQLSTATE 2350'],
  ];
}

const T = '2026-11-27 10:00:00.123 UTC';
const HOSTILE_PREFIX = '%m [%p] %e %q%u@%d %a ';
/** One physical record of `format` whose text fields hold `text`. */
function hostileRecord(format: (typeof FORMATS)[number], text: string): string[] {
  const csvField = (value: string) => `"${value.replace(/"/g, '""')}"`;
  const stderr = `${T} [42] 23505 app@gotrs psql ERROR:  ${text}`;
  switch (format) {
    case 'postgres-stderr':
    case 'auto':
      // The text in the message, in further lines, and where the prefix's user, database and application are.
      return [
        stderr,
        `${T} [42] 23505 app@gotrs psql DETAIL:  ${text}`,
        `${T} [42] 23505 app@gotrs psql CONTEXT:  ${text}`,
        `${T} [43] ${text}`,
        `${T} [44] 23505 ${text}`,
      ];
    case 'postgres-csv':
      // 16 KiB of text per record: the message, and a CONTEXT of an apply worker (read for replication conflicts).
      return [
        `${T},"app","gotrs",42,"h",s,3,"INSERT",${T},3/12,0,ERROR,23505,${csvField(text.slice(0, HOSTILE_CHARS / 2))},,,,,${csvField(text.slice(HOSTILE_CHARS / 2))},,,"psql","logical replication worker",,0`,
      ];
    case 'postgres-json':
      return [
        JSON.stringify({
          timestamp: T,
          pid: 42,
          error_severity: 'ERROR',
          state_code: '23505',
          message: text,
          detail: text,
          context: text,
          backend_type: 'client backend',
        }),
      ];
    case 'syslog':
      return [`Nov 27 10:00:00 db1 postgres[3360]: [5-1] 23505 app@gotrs psql ERROR:  ${text}`, `Nov 27 10:00:00 db1 postgres[3360]: [5-2] #011${text}`];
    case 'docker-json':
      return [JSON.stringify({ log: `${stderr}\n`, stream: 'stderr', time: '2026-11-27T10:00:00Z' })];
    case 'app-text':
      return [text, `pq: ${text}`, JSON.stringify({ level: 'error', msg: text })];
    default:
      return [stderr, text, JSON.stringify({ log: text, message: text })];
  }
}

describe(`hostile records: each under ${RECORD_BUDGET_MS} ms (16 KiB of whitespace, «, (SQLSTATE , word characters)`, () => {
  for (const format of FORMATS) {
    it(`${format}`, () => {
      const slow: string[] = [];
      for (const [name, text] of hostilePayloads()) {
        const parser = createParser(format, { source: 'hostile', logLinePrefix: HOSTILE_PREFIX }, (record) => void detectIncident(record));
        const lines = hostileRecord(format, text);
        // Warm-up with a short record: the first call compiles, which is not what is measured.
        for (const line of hostileRecord(format, 'x')) parser.push(line);
        parser.flush();
        // CPU time, not wall time (a machine shared by many runs waits for a core), and the best of
        // five runs (a garbage collection slows one): backtracking slows every run alike.
        let took = Infinity;
        for (let run = 0; run < 5 && took >= RECORD_BUDGET_MS; run++) {
          const started = process.cpuUsage();
          for (const line of lines) parser.push(line);
          parser.flush();
          const used = process.cpuUsage(started);
          took = Math.min(took, (used.user + used.system) / 1000);
        }
        if (took >= RECORD_BUDGET_MS) slow.push(`${name}: ${took.toFixed(0)} ms`);
      }
      expect(slow, `${format}: records over the budget`).toEqual([]);
    });
  }
});
