import { describe, expect, it } from 'vitest';
import { detectIncident } from '../../src/detect/detectIncident.js';
import { createParser, type Format, type InnerFormat } from '../../src/formats/createParser.js';
import type { LogRecord } from '../../src/formats/LogRecord.js';

function parse(format: Format, lines: string[], options: { prefix?: string; inner?: InnerFormat } = {}) {
  const records: LogRecord[] = [];
  let detected: string | undefined;
  const parser = createParser(
    format,
    {
      source: 's',
      logLinePrefix: options.prefix ?? '%m [%p] %q%u@%d ',
      ...(options.inner ? { innerFormat: options.inner } : {}),
      onDetected: (f) => (detected = f),
    },
    (r) => records.push(r),
  );
  lines.forEach((line, i) => parser.push(line, { line: i + 1 }));
  parser.flush();
  return { records, parser, detected, incidents: records.map(detectIncident).filter(Boolean) };
}

const CSV_ERROR =
  '2026-11-27 10:00:00.123 UTC,"gotrs","gotrs",4242,"127.0.0.1:5544",656f1a2b.1092,3,"INSERT",2026-11-27 09:59:58 UTC,3/12,0,ERROR,23505,' +
  '"duplicate key value violates unique constraint ""we""ird_pkey""","Key (id)=(1) already exists.",,,,,"INSERT INTO ""we""ird"" (n)\nVALUES (1),\n(2)",,,"psql","client backend",,0';

describe('postgres-csv', () => {
  it('parses records with doubled quotes and newlines inside quoted fields', () => {
    const { records, incidents } = parse('postgres-csv', CSV_ERROR.split('\n'));
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      severity: 'ERROR',
      sqlstate: '23505',
      database: 'gotrs',
      user: 'gotrs',
      pid: 4242,
      message: 'duplicate key value violates unique constraint "we"ird_pkey"',
      statement: 'INSERT INTO "we"ird" (n)\nVALUES (1),\n(2)',
      line: 1,
    });
    expect(incidents[0]).toMatchObject({ kind: 'unique_violation', constraint: 'we"ird_pkey', sqlstate: '23505' });
  });

  it('a cut-off record ends where the source says a file starts, never where a line looks like a record', () => {
    const cut = '2026-11-27 10:00:00.000 UTC,"a","b",1,"unterminated';
    const lines = CSV_ERROR.split('\n');
    // Inside the open quote the next record is text of that field (it may be a forgery: see test/safety/forgery.test.ts).
    expect(parse('postgres-csv', [cut, ...lines]).records).toHaveLength(0);
    // A new file (rotation, truncation), as the follower reports it: the open record is counted and dropped.
    const records: LogRecord[] = [];
    const parser = createParser('postgres-csv', { source: 's', logLinePrefix: '' }, (r) => records.push(r));
    parser.push(cut, { offset: 0, boundary: 'start' });
    lines.forEach((line, i) => parser.push(line, i === 0 ? { offset: 0, boundary: 'start' } : {}));
    expect(records).toHaveLength(1);
    expect(parser.counters.unrecognisedLines).toBe(1);
  });

  it('past the record cap the quotes still frame the record: an over-long value cannot smuggle a record in', () => {
    const forged = '2026-12-02 03:04:05.678 UTC,m,forged,666,,,,,,,,ERROR,2200H,nextval: reached maximum value of sequence x_seq';
    const huge = 'x'.repeat(200 * 1024);
    const lines = [`2026-11-27 10:00:00.000 UTC,"a","b",1,,,,,,,,ERROR,22001,"value too long","${huge}`, forged, `",,,,,,,,,,`, ...CSV_ERROR.split('\n')];
    const { records, parser } = parse('postgres-csv', lines);
    expect(records.map((r) => r.pid)).toEqual([4242]);
    expect(parser.counters.unrecognisedLines).toBe(1);
  });

  it('after a line the source dropped (over its limit) it finds the next record start, and only then', () => {
    const records: LogRecord[] = [];
    const parser = createParser('postgres-csv', { source: 's', logLinePrefix: '' }, (r) => records.push(r));
    parser.push('the rest of a field",,,', { offset: 5_000_000, boundary: 'gap' });
    CSV_ERROR.split('\n').forEach((line) => parser.push(line, {}));
    expect(records.map((r) => r.pid)).toEqual([4242]);
  });

  it('finds a translated message by its SQLSTATE', () => {
    const line = CSV_ERROR.split('\n')[0]!.replace(
      'duplicate key value violates unique constraint ""we""ird_pkey""',
      "la valeur d'une clé dupliquée rompt la contrainte unique « ticket_pkey »",
    );
    const { incidents } = parse('postgres-csv', [line, ...CSV_ERROR.split('\n').slice(1)]);
    expect(incidents[0]).toMatchObject({ constraint: 'ticket_pkey' });
  });
});

describe('postgres-json', () => {
  it('maps jsonlog keys, with keys left out when empty', () => {
    const line = JSON.stringify({
      timestamp: '2026-11-27 10:00:00.123 UTC',
      user: 'gotrs',
      dbname: 'gotrs',
      pid: 77,
      error_severity: 'ERROR',
      state_code: '23505',
      message: 'duplicate key value violates unique constraint "article_pkey"',
      detail: 'Key (id)=(5) already exists.',
    });
    const { records, incidents } = parse('postgres-json', [line, '{"not":"a record"}', '{broken']);
    expect(records[0]).toMatchObject({ pid: 77, database: 'gotrs', sqlstate: '23505', logTime: '2026-11-27 10:00:00.123 UTC' });
    expect(incidents[0]).toMatchObject({ constraint: 'article_pkey' });
  });
});

describe('syslog', () => {
  it('reads PostgreSQL lines as rsyslog writes them, continuation chunks included', () => {
    const lines = [
      'Nov 27 10:00:00 db1 postgres[3360]: [5-1] gotrs@gotrs ERROR:  duplicate key value violates unique constraint "ticket_pkey"',
      'Nov 27 10:00:00 db1 postgres[3361]: [9-1] gotrs@gotrs LOG:  checkpoint',
      'Nov 27 10:00:00 db1 postgres[3360]: [5-2] #011more of the message',
      'Nov 27 10:00:00 db1 postgres[3360]: [5-3] gotrs@gotrs DETAIL:  Key (id)=(1) already exists.',
      'Nov 27 10:00:01 db1 kernel: something else',
    ];
    const { records, incidents, parser } = parse('syslog', lines, { prefix: '%q%u@%d ' });
    const error = records.find((r) => r.severity === 'ERROR');
    expect(error).toMatchObject({ pid: 3360, database: 'gotrs', detail: 'Key (id)=(1) already exists.' });
    expect(error!.message).toBe('duplicate key value violates unique constraint "ticket_pkey"\nmore of the message');
    expect(incidents).toHaveLength(0); // the continuation made the message something else
    expect(parser.counters.unrecognisedLines).toBe(1);
  });
});

describe('syslog chunks', () => {
  it('a chunk after the first is never a record: a cut piece joins the line it was cut from', () => {
    const lines = [
      'Nov 27 10:00:00 db1 postgres[3360]: [6-1] gotrs@gotrs ERROR:  division by zero',
      'Nov 27 10:00:00 db1 postgres[3360]: [6-2] gotrs@gotrs STATEMENT:  SELECT 1/0 --',
      `Nov 27 10:00:00 db1 postgres[3360]: [6-3]  ${'x'.repeat(899)}`,
      'Nov 27 10:00:00 db1 postgres[3360]: [6-4] gotrs@gotrs ERROR:  duplicate key value violates unique constraint "ticket_pkey"',
    ];
    const { records, incidents } = parse('syslog', lines, { prefix: '%q%u@%d ' });
    expect(records).toHaveLength(1);
    expect(incidents).toHaveLength(0);
    expect(records[0]!.statement).toBe(`SELECT 1/0 -- ${'x'.repeat(899)}gotrs@gotrs ERROR:  duplicate key value violates unique constraint "ticket_pkey"`);
  });
});

describe('docker-json', () => {
  const entry = (log: string) => JSON.stringify({ log, stream: 'stderr', time: '2026-11-27T10:00:00.123456789Z' });

  it('unwraps the container log and reassembles lines Docker split', () => {
    const { incidents, records } = parse('docker-json', [
      entry('2026-11-27 10:00:00.123 UTC [64] gotrs@gotrs ERROR:  duplicate key value violates '),
      entry('unique constraint "ticket_pkey"\n'),
      entry('2026-11-27 10:00:00.123 UTC [64] gotrs@gotrs DETAIL:  Key (id)=(1) already exists.\n'),
      'not json at all',
    ]);
    expect(records[0]).toMatchObject({ pid: 64, detail: 'Key (id)=(1) already exists.' });
    expect(incidents[0]).toMatchObject({ constraint: 'ticket_pkey', database: 'gotrs' });
  });

  it('wraps jsonlog too, when told', () => {
    const inner = JSON.stringify({ error_severity: 'ERROR', state_code: '23505', message: 'duplicate key value violates unique constraint "x_pkey"' });
    expect(parse('docker-json', [entry(inner + '\n')], { inner: 'postgres-json' }).incidents[0]).toMatchObject({ constraint: 'x_pkey' });
  });
});

describe('app-text', () => {
  it("finds lib/pq, pgx and JSON loggers' errors", () => {
    const { incidents } = parse('app-text', [
      '2026/11/27 10:00:00 ticket create failed: pq: duplicate key value violates unique constraint "article_pkey"',
      'ERROR: duplicate key value violates unique constraint "ticket_pkey" (SQLSTATE 23505)',
      JSON.stringify({ level: 'error', msg: 'insert failed', error: 'pq: duplicate key value violates unique constraint "queue_pkey"' }),
      "ERROR: la valeur d'une clé dupliquée rompt la contrainte unique « users_pkey » (SQLSTATE 23505)",
      'GET /ticket 200 12ms',
    ]);
    expect(incidents.map((i) => i!.constraint)).toEqual(['article_pkey', 'ticket_pkey', 'queue_pkey', 'users_pkey']);
    expect(incidents.every((i) => i!.database === undefined)).toBe(true);
  });
});

describe('auto', () => {
  it.each([
    ['postgres-stderr', ['waiting for server to start', '2026-11-27 10:00:00.123 UTC [1] LOG:  database system is ready']],
    ['postgres-csv', [CSV_ERROR.split('\n')[0]!]],
    ['postgres-json', [JSON.stringify({ error_severity: 'LOG', message: 'x' })]],
    ['docker-json', [JSON.stringify({ log: '2026-11-27 10:00:00.123 UTC [1] LOG:  x\n', stream: 'stderr' })]],
    ['syslog', ['Nov 27 10:00:00 db1 postgres[3360]: [5-1] LOG:  x']],
    ['app-text', ['2026/11/27 10:00:00 starting GOTRS backend']],
  ])('recognises %s', (format, lines) => {
    expect(parse('auto', lines).detected).toBe(format);
  });

  it('keeps the lines it looked at', () => {
    const { incidents } = parse('auto', ['2026-11-27 10:00:00.123 UTC [1] gotrs@gotrs ERROR:  duplicate key value violates unique constraint "ticket_pkey"']);
    expect(incidents[0]).toMatchObject({ constraint: 'ticket_pkey', database: 'gotrs' });
  });
});
