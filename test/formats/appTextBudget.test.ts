import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { detectIncident } from '../../src/detect/detectIncident.js';
import { createParser, type Format } from '../../src/formats/createParser.js';

/*
 * A log line is attacker text (any user of the application can put text into its log), so no
 * line may cost more than linear time in app-text, nor in auto, which reads the first lines of
 * every source; what they make of it goes to the detector, which is timed with them. Each of these 16 KiB lines gets a budget of 50 ms (the whole parse, on a loaded
 * machine); a backtracking pattern takes seconds to minutes on them.
 */
const KIB16 = 16 * 1024;
const fill = (unit: string, tail = '') => unit.repeat(Math.ceil((KIB16 - tail.length) / unit.length)).slice(0, KIB16 - tail.length) + tail;

const HOSTILE: Array<[string, string]> = [
  ['whitespace', fill(' ')],
  ['whitespace before (SQLSTATE 23505)', fill(' ', '(SQLSTATE 23505)')],
  // pgx's old pattern took 45 s on 4,000 spaces before a `(SQLSTATE ` without a code.
  ['whitespace before (SQLSTATE without a code', fill(' ', '(SQLSTATE ')],
  ['« and whitespace before (SQLSTATE 23505)', `ERROR: «${fill(' ', '(SQLSTATE 23505)').slice(8)}`],
  // The shape the security review timed at 21 s for 4 KB: the message before the code went whole to the detector.
  ['«, whitespace and a word before (SQLSTATE 23505)', `ERROR: «${fill(' ', 'x (SQLSTATE 23505)').slice(8)}`],
  ['«, 3,000 spaces and a word right before (SQLSTATE 23505)', fill('w', `ERROR: «${' '.repeat(3000)}x (SQLSTATE 23505)`)],
  ['« with 250 spaces and a word, repeated', fill(`«${' '.repeat(250)}x`, ' (SQLSTATE 23505)')],
  ['« and whitespace, then »', `«${fill(' ', '» (SQLSTATE 23505)').slice(1)}`],
  ['(SQLSTATE repeated', fill('(SQLSTATE ')],
  ['(SQLSTATE repeated, then the code', fill('(SQLSTATE ', '(SQLSTATE 23505)')],
  ['word characters', fill('w')],
  ['word characters before (SQLSTATE 23505)', fill('w', '(SQLSTATE 23505)')],
  ['ERROR: repeated before the code', fill('ERROR: ', '(SQLSTATE 23505)')],
  ['the English message repeated, unquoted', fill('duplicate key value violates unique constraint ')],
  ['an opening quote, never closed', `duplicate key value violates unique constraint "${fill('x').slice(48)}`],
  ['backslashes', fill('\\', 'duplicate key value violates unique constraint \\"x')],
  ['quotes', fill('"', '23505')],
  ['braces', fill('{', 'duplicate key')],
  ['a JSON object nested deep', fill('{"a":', '"duplicate key"')],
  ['exception-like head', fill('a.', 'Error: duplicate key')],
  ['tabs and DETAIL:', fill('\tDETAIL: ', '23505')],
];

describe('app-text: linear on attacker text', () => {
  for (const format of ['app-text', 'auto'] as Format[]) {
    it.each(HOSTILE)(`${format}: %s (16 KiB) parses in < 50 ms`, (_name, line) => {
      expect(line.length).toBe(KIB16);
      // The best of three, each with a parser of its own: a shared machine's hiccup is not the parser's cost.
      let took = Infinity;
      for (let run = 0; run < 3; run++) {
        // The record's whole way: parsed, then looked at by the detector.
        const parser = createParser(format, { source: 'budget', logLinePrefix: '%m [%p] ' }, (record) => void detectIncident(record));
        const started = performance.now();
        parser.push(line);
        parser.flush();
        took = Math.min(took, performance.now() - started);
      }
      expect(took, `${took.toFixed(1)} ms`).toBeLessThan(50);
    });
  }
});
