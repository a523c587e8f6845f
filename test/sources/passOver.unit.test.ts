import { describe, expect, it } from 'vitest';
import { detectIncident, type Incident } from '../../src/detect/detectIncident.js';
import { scannerNeedles } from '../../src/detect/scanner.js';
import { IncidentScanner } from '../../src/detect/scanner.js';
import { createParser, type Format } from '../../src/formats/createParser.js';
import type { LogRecord } from '../../src/formats/LogRecord.js';
import { lineSkippingFor } from '../../src/formats/passOver.js';
import { countByte, countByteSwar, countsWithSimd } from '../../src/detect/wasm/countByte.js';
import { balancedUntil, LineSplitter } from '../../src/sources/LineSplitter.js';

/*
 * Passing over lines unseen (the live path's fast path) must find exactly what reading every line
 * finds: the same incidents, from the same records, at the same offsets and line numbers, whatever
 * the reads' sizes, for each server-log format.
 */

const PREFIX = '%m [%p] %q%u@%d ';
const T = '2026-11-27 10:00:00.123 UTC';

/** The candidate lines as the daemon finds them: the shared scanner's. */
const finderFor = (format: Format) => new IncidentScanner(format, PREFIX);

interface Read {
  incidents: Incident[];
  records: LogRecord[];
  skipped: number;
}

/** Reads `log` in reads of `chunk` bytes, with or without passing over lines; what it found. */
function read(format: Format, log: string, chunk: number, skip: boolean): Read {
  const records: LogRecord[] = [];
  // Skipping as the daemon runs it (stderr's pre-check on whole lines too); without, every line parsed in full.
  const interesting = skip ? { interesting: (line: string) => scannerNeedles('postgres-stderr', PREFIX).some((needle) => line.includes(needle)) } : {};
  const parser = createParser(format, { source: 's', logLinePrefix: PREFIX, ...interesting }, (record) => records.push(record));
  const skipping = skip ? lineSkippingFor(format, parser, finderFor(format)) : undefined;
  if (skip) expect(skipping).toBeDefined();
  const splitter = new LineSplitter(
    1024 * 1024,
    (line, position) => parser.push(line.toString('utf8'), position),
    () => {},
    0,
    skipping,
  );
  const bytes = Buffer.from(log);
  for (let at = 0; at < bytes.length; at += chunk) splitter.push(Buffer.from(bytes.subarray(at, at + chunk)), at);
  splitter.end();
  parser.flush();
  const found = records.filter((r) => detectIncident(r) !== undefined);
  return { incidents: found.map((r) => detectIncident(r)!), records: found, skipped: parser.counters.skippedLines };
}

function expectSameWithAndWithoutSkipping(format: Format, log: string, expected: number): void {
  const all = read(format, log, 1 << 30, false);
  expect(all.incidents).toHaveLength(expected);
  for (const chunk of [1 << 30, 64 * 1024, 4096, 333, 97]) {
    const fast = read(format, log, chunk, true);
    expect(fast.incidents, `${format} in reads of ${chunk} bytes`).toEqual(all.incidents);
    // Whole records: DETAIL, STATEMENT, CONTEXT as without skipping (the detector reads some of them).
    expect(fast.records, `${format} in reads of ${chunk} bytes`).toEqual(all.records);
    if (chunk > 4096) expect(fast.skipped, `${format} in reads of ${chunk} bytes`).toBeGreaterThan(0);
  }
}

/** A busy log's ordinary records around each case, so that there is something to pass over. */
function busy(lines: (n: number) => string, around: string[]): string {
  let out = '';
  let n = 0;
  for (const special of around) {
    for (let i = 0; i < 40; i++) out += lines(n++);
    out += special;
  }
  for (let i = 0; i < 40; i++) out += lines(n++);
  return out;
}

const csv = (
  pid: number,
  severity: string,
  sqlstate: string,
  message: string,
  extra: { detail?: string; statement?: string; user?: string; context?: string } = {},
) => {
  const q = (v: string | undefined) => (v === undefined ? '' : `"${v.replaceAll('"', '""')}"`);
  return `${T},${q(extra.user ?? 'gotrs')},"gotrs",${pid},"10.0.0.7:5432",6750a1b2.3e8,1,"INSERT",${T},3/1,0,${severity},${sqlstate},${q(message)},${q(extra.detail)},,,,${q(extra.context)},${q(extra.statement)},,,"app","client backend",,0\n`;
};
const UNIQUE = (name: string) => `duplicate key value violates unique constraint "${name}"`;

describe('csvlog: passing over records finds what reading every line finds', () => {
  const statement = (n: number) => csv(1000 + (n % 7), 'LOG', '00000', `duration: 0.${n} ms  execute <unnamed>: SELECT a,\n  b\n  FROM t WHERE id = $1`);
  it("violations, multi-line records, needles on a record's later lines, forged records inside quoted fields", () => {
    const log = busy(statement, [
      csv(1, 'ERROR', '23505', UNIQUE('users_login_key'), { detail: 'Key (login)=(a) already exists.', statement: 'INSERT INTO users\n  (login) VALUES ($1)' }),
      // The needle only on a record's third line (a statement quoting it): the record is read from its start.
      csv(2, 'LOG', '00000', 'statement: SELECT 1', { statement: `SELECT 1\n-- ${UNIQUE('x_pkey')}\n` }),
      // A forged record inside a quoted field: text, never a record of its own.
      csv(3, 'LOG', '00000', 'statement: INSERT', {
        statement: `INSERT INTO notes VALUES ('\n${csv(666, 'ERROR', '23505', UNIQUE('forged_pkey')).trimEnd()}\n')`,
      }),
      // A user name with a newline: the real violation's needle is on the record's second line.
      csv(4, 'ERROR', '23505', UNIQUE('ticket_pkey'), { user: 'eve\nil', detail: 'Key (id)=(7) already exists.' }),
      // Translated: found by its SQLSTATE only.
      csv(5, 'FEHLER', '23505', 'doppelter Schlüsselwert verletzt Unique-Constraint »article_pkey«'),
      csv(6, 'ERROR', '2200H', 'nextval: reached maximum value of sequence "ticket_id_seq" (2147483647)'),
      // An unbalanced-looking run: a field holding many quotes and a newline right before a violation.
      csv(7, 'LOG', '00000', 'statement: SELECT \'"\'"\'"\'"', { statement: 'a\n"b"\n' }) + csv(8, 'ERROR', '23505', UNIQUE('queue_pkey')),
    ]);
    expectSameWithAndWithoutSkipping('postgres-csv', log, 5);
  });
});

describe('jsonlog: passing over records finds what reading every line finds', () => {
  const json = (pid: number, severity: string, state: string, message: string, extra: Record<string, string> = {}) =>
    JSON.stringify({ timestamp: T, user: 'gotrs', dbname: 'gotrs', pid, error_severity: severity, state_code: state, message, ...extra }) + '\n';
  const statement = (n: number) => json(1000 + (n % 7), 'LOG', '00000', `duration: 0.${n} ms  statement: SELECT a,\n  b FROM t`);
  it('violations, sequence errors, translated messages, needles in other fields', () => {
    const log = busy(statement, [
      json(1, 'ERROR', '23505', UNIQUE('users_login_key'), { detail: 'Key (login)=(a) already exists.', statement: 'INSERT INTO users (login)\nVALUES ($1)' }),
      json(2, 'ERROR', '2200H', 'nextval: reached maximum value of sequence "ticket_id_seq" (2147483647)'),
      json(3, 'ERREUR', '23505', "la valeur d'une clé dupliquée rompt la contrainte unique « ticket_pkey »"),
      json(4, 'LOG', '00000', 'statement: SELECT 1', { detail: UNIQUE('not_an_error_pkey') }),
      json(5, 'ERROR', '42P01', 'relation "gone_id_seq" does not exist'),
    ]);
    expectSameWithAndWithoutSkipping('postgres-json', log, 4);
  });
});

describe('stderr: passing over lines finds what reading every line finds', () => {
  const line = (pid: number, text: string) => `${T} [${pid}] gotrs@gotrs ${text}\n`;
  const statement = (n: number) =>
    n % 5 === 0 ? line(1000 + (n % 7), `LOG:  statement: SELECT a,\n\tb\n\tFROM t WHERE n = ${n}`) : line(1000 + (n % 7), `LOG:  duration: 0.${n} ms`);
  it("records whose DETAIL and STATEMENT come later, between other backends' lines, TAB continuations, needles in continuations", () => {
    const log = busy(statement, [
      line(1, `ERROR:  ${UNIQUE('users_login_key')}`) +
        line(1, 'DETAIL:  Key (login)=(a) already exists.') +
        line(1, 'STATEMENT:  INSERT INTO users\n\t(login) VALUES ($1)'),
      // Interleaved: the DETAIL of backend 2 after other backends' lines (without the logging collector).
      line(2, `ERROR:  ${UNIQUE('ticket_pkey')}`) +
        line(1001, 'LOG:  duration: 1 ms') +
        line(1002, 'LOG:  statement: SELECT 2') +
        line(2, 'DETAIL:  Key (id)=(7) already exists.'),
      // A replication worker's CONTEXT, after another backend's line: it makes the record a replication conflict.
      line(3, `ERROR:  ${UNIQUE('article_pkey')}`) +
        line(1003, 'LOG:  duration: 2 ms') +
        line(
          3,
          'CONTEXT:  processing remote data for replication origin "pg_16394" during message type "INSERT" for replication target relation "public.article" in transaction 748, finished at 0/177C240',
        ),
      // The needle only in a TAB continuation of an ordinary statement: not an incident, the record read whole.
      line(4, 'LOG:  statement: SELECT 1') + `\t-- ${UNIQUE('x_pkey')}\n`,
      // A message continued on a TAB line (no longer the plain English message).
      line(5, `ERROR:  ${UNIQUE('queue_pkey')}`) + '\tand more\n' + line(5, 'DETAIL:  Key (id)=(1) already exists.'),
      line(6, 'ERROR:  nextval: reached maximum value of sequence "ticket_id_seq" (2147483647)') + line(6, 'STATEMENT:  INSERT INTO ticket DEFAULT VALUES'),
      // Two records open at once, each completed later.
      line(7, `ERROR:  ${UNIQUE('a_pkey')}`) +
        line(8, `ERROR:  ${UNIQUE('b_pkey')}`) +
        line(1004, 'LOG:  x') +
        line(8, 'DETAIL:  Key (id)=(8) already exists.') +
        line(7, 'DETAIL:  Key (id)=(7) already exists.'),
    ]);
    expectSameWithAndWithoutSkipping('postgres-stderr', log, 6);
  });
});

describe('balancedUntil (csvlog framing of a run passed over)', () => {
  const bytes = Buffer.from('a,"x"\nb,"multi\nline"\nc,"y"\n');
  it('ends where the quotes balance, else at the start of the record open there', () => {
    expect(balancedUntil(bytes, 0, bytes.length, 0x22)).toBe(bytes.length);
    // Cut inside the multi-line record: back to its first line.
    const inside = bytes.indexOf('line"');
    expect(balancedUntil(bytes, 0, inside, 0x22)).toBe(bytes.indexOf('b,'));
    // Nothing balanced after the start: nothing is passed over.
    expect(balancedUntil(bytes, bytes.indexOf('b,'), inside, 0x22)).toBe(bytes.indexOf('b,'));
  });
});

describe('countByte (the quotes balancedUntil counts)', () => {
  it('counts with WebAssembly SIMD on this Node.js', () => {
    expect(countsWithSimd(0x22)).toBe(true);
  });
});

describe.each([
  ['WebAssembly SIMD, 16 bytes a turn', countByte],
  ['JavaScript, eight bytes a turn', countByteSwar],
])('countByte: %s', (_, countByte) => {
  it('counts what a byte-by-byte loop counts, at every alignment and length, for bytes with and without the top bit', () => {
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
    // Few distinct bytes, so that runs of matches and near-matches (0x22 vs 0xa2, 0x23) fill whole words.
    const alphabet = [0x22, 0xa2, 0x23, 0x00, 0xff, 0x0a, 0x41];
    const pool = Buffer.alloc(4096);
    for (let i = 0; i < pool.length; i++) pool[i] = alphabet[next() % alphabet.length]!;
    for (let trial = 0; trial < 2000; trial++) {
      const offset = next() % 64;
      const bytes = pool.subarray(offset, offset + 64 + (next() % 2000));
      const start = next() % 40;
      const end = Math.max(start, bytes.length - (next() % 40));
      for (const byte of [0x22, 0xff, 0x00]) {
        let expected = 0;
        for (let i = start; i < end; i++) if (bytes[i] === byte) expected++;
        expect(countByte(bytes, start, end, byte)).toBe(expected);
      }
    }
  });

  it('counts long runs of the byte exactly (more matches than a byte lane holds before the lanes are summed)', () => {
    for (const length of [2_031, 2_032, 2_040, 10_000, 65_537]) {
      const bytes = Buffer.alloc(length + 16, 0x22);
      for (const start of [0, 1, 7, 8]) expect(countByte(bytes, start, start + length, 0x22)).toBe(length);
    }
  });

  it('counts ranges longer than the pieces copied into WebAssembly memory (64 KiB) exactly, whatever the other bytes', () => {
    let seed = 11;
    const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
    const bytes = Buffer.alloc(300_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = next() % 7 === 0 ? 0x22 : next() & 0xff;
    for (const [start, end] of [
      [0, bytes.length],
      [3, 65_536 + 5],
      [65_535, 200_001],
      [100, 356],
      [100, 355],
    ] as const) {
      let expected = 0;
      for (let i = start; i < end; i++) if (bytes[i] === 0x22) expected++;
      expect(countByte(bytes, start, end, 0x22)).toBe(expected);
    }
  });
});
