import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { csvFields } from '../../src/formats/csvFields.js';

/** What csv-parse (the parser csvlog records were read with before) makes of one record. */
function csvParse(text: string): string[] | undefined {
  try {
    const rows = parse(text, { relax_column_count: true }) as string[][];
    return rows.length === 1 ? rows[0] : undefined;
  } catch {
    return undefined;
  }
}

describe('csvFields: one csvlog record, as csv-parse reads it', () => {
  it('quoted fields with doubled quotes and newlines, empty fields, unquoted fields', () => {
    const record = '2026-11-27 10:00:00.123 UTC,"gotrs","go""trs",4242,,"a\nb, ""c""",ERROR,23505,""';
    expect(csvFields(record)).toEqual(['2026-11-27 10:00:00.123 UTC', 'gotrs', 'go"trs', '4242', '', 'a\nb, "c"', 'ERROR', '23505', '']);
    expect(csvFields(record)).toEqual(csvParse(record));
  });

  it('refuses what is not one well-formed record', () => {
    for (const bad of ['a,"b', 'a,"b"c', 'a,b"c', 'a,"b" ,c', 'a\nb']) expect(csvFields(bad), bad).toBeUndefined();
  });

  it('agrees with csv-parse on 20,000 random records of the characters that matter', () => {
    const alphabet = ['a', 'b', ',', '"', '""', '\n', ' ', 'é'];
    let seed = 14;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 20_000; i++) {
      let text = '';
      const length = Math.floor(random() * 16);
      for (let j = 0; j < length; j++) text += alphabet[Math.floor(random() * alphabet.length)];
      // csv-parse reads an empty text or a trailing newline as no row or a row ended: not records csvlog writes.
      if (text === '' || text.endsWith('\n')) continue;
      const expected = csvParse(text);
      const fields = csvFields(text);
      // Where csv-parse reads one row, the same fields; where it reads none or several, none.
      expect(fields, JSON.stringify(text)).toEqual(expected);
    }
  });
});
