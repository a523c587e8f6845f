import { describe, expect, it } from 'vitest';
import type { LogRecord } from '../../src/formats/LogRecord.js';
import { compileLogLinePrefix, printsSqlstate, withSqlstate } from '../../src/formats/logLinePrefix.js';
import { StderrPrefixParser } from '../../src/formats/StderrPrefixParser.js';

function parse(prefix: string, lines: string[]): { records: LogRecord[]; parser: StderrPrefixParser } {
  const records: LogRecord[] = [];
  const parser = new StderrPrefixParser(prefix, 'test.log', (r) => records.push(r));
  lines.forEach((line, i) => parser.push(line, { line: i + 1 }));
  parser.flush();
  return { records, parser };
}

describe('compileLogLinePrefix', () => {
  it('matches the default prefix %m [%p]', () => {
    const m = compileLogLinePrefix('%m [%p] ').exec('2026-11-27 10:00:00.123 UTC [4242] ERROR:  boom');
    expect(m?.groups).toMatchObject({ time: '2026-11-27 10:00:00.123 UTC', pid: '4242', severity: 'ERROR', message: 'boom' });
  });

  it("matches Debian's prefix, with and without the session part after %q", () => {
    const re = compileLogLinePrefix('%m [%p] %q%u@%d ');
    expect(re.exec('2026-11-27 10:00:00.123 CET [17] gotrs@gotrs ERROR:  x')?.groups).toMatchObject({
      user: 'gotrs',
      database: 'gotrs',
      pid: '17',
    });
    const background = re.exec('2026-11-27 10:00:00.123 CET [17] LOG:  checkpoint starting: time')?.groups;
    expect(background).toMatchObject({ severity: 'LOG', message: 'checkpoint starting: time' });
    expect(background?.database).toBeUndefined();
  });

  it('understands %e, %t, %l, %c, %x, %v, %a, %h, %r, %%, and padding', () => {
    const re = compileLogLinePrefix('%t [%p-%l] %c %x/%v %e app=%a,host=%h,remote=%r %% %-10u|%5d ');
    const m = re.exec(
      '2026-11-27 10:00:00 UTC [12-3] 656f1a2b.c 991/7/123 23505 app=psql, the shell,host=10.0.0.1,remote=10.0.0.1(5544) % gotrs     |gotrs ERROR:  dup',
    );
    expect(m?.groups).toMatchObject({ sqlstate: '23505', application: 'psql, the shell', user: 'gotrs', database: 'gotrs', message: 'dup' });
  });

  it("with unreadGroups, also groups the fields no record field is read from (replay's templates let their digits differ)", () => {
    const prefix = '%t [%p-%l] %c %x/%v %e app=%a,host=%h,remote=%r %% %-10u|%5d ';
    const line =
      '2026-11-27 10:00:00 UTC [12-3] 656f1a2b.c 991/7/123 23505 app=psql, the shell,host=10.0.0.1,remote=10.0.0.1(5544) % gotrs     |gotrs ERROR:  dup';
    const groups = compileLogLinePrefix(prefix, { unreadGroups: true }).exec(line)?.groups;
    // %l, %c, %x, %v, %h, %r in turn; the fields records are made of as without the option.
    expect(groups).toMatchObject({ unread0: '3', unread1: '656f1a2b.c', unread2: '991', unread3: '7/123', unread4: '10.0.0.1', unread5: '10.0.0.1(5544)' });
    expect(groups).toMatchObject({ ...compileLogLinePrefix(prefix).exec(line)?.groups });
    expect(Object.keys(compileLogLinePrefix(prefix).exec(line)?.groups ?? {}).some((name) => name.startsWith('unread'))).toBe(false);
  });

  it('rejects a prefix that ends in a lone %', () => {
    expect(() => compileLogLinePrefix('%m %')).toThrow(/lone '%'/);
  });
});

describe('printsSqlstate, withSqlstate', () => {
  it('%e prints the SQLSTATE, padded too; %%e is a literal', () => {
    expect(printsSqlstate('%m [%p] %e %q%u@%d ')).toBe(true);
    expect(printsSqlstate('%m [%p] %-6e %q%u@%d ')).toBe(true);
    expect(printsSqlstate('%m [%p] %q%u@%d %e ')).toBe(true);
    expect(printsSqlstate('%m [%p] %q%u@%d ')).toBe(false);
    expect(printsSqlstate('%m [%p] %%e %u@%d ')).toBe(false);
  });

  it('withSqlstate adds %e where every line prints it: before %q, else at the end', () => {
    expect(withSqlstate('%m [%p] %q%u@%d ')).toBe('%m [%p] %e %q%u@%d ');
    expect(withSqlstate('%t:%r:%u@%d:[%p]:')).toBe('%t:%r:%u@%d:[%p]: %e ');
    expect(withSqlstate('%m [%p] ')).toBe('%m [%p] %e ');
    expect(withSqlstate('%m [%p] %e ')).toBe('%m [%p] %e ');
    expect(withSqlstate('%%q %m ')).toBe('%%q %m %e ');
  });
});

describe('StderrPrefixParser', () => {
  const P = '%m [%p] %q%u@%d ';
  const T = '2026-11-27 10:00:00.000 UTC';

  it('groups ERROR, DETAIL and STATEMENT of one backend into one record', () => {
    const { records } = parse(P, [
      `${T} [10] app@gotrs ERROR:  duplicate key value violates unique constraint "ticket_pkey"`,
      `${T} [10] app@gotrs DETAIL:  Key (id)=(1) already exists.`,
      `${T} [10] app@gotrs STATEMENT:  INSERT INTO ticket (tn) VALUES ('x')`,
    ]);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      severity: 'ERROR',
      pid: 10,
      user: 'app',
      database: 'gotrs',
      message: 'duplicate key value violates unique constraint "ticket_pkey"',
      detail: 'Key (id)=(1) already exists.',
      statement: "INSERT INTO ticket (tn) VALUES ('x')",
      line: 1,
      source: 'test.log',
    });
  });

  it('keeps interleaved backends apart and joins TAB continuation lines', () => {
    const { records } = parse(P, [
      `${T} [10] a@db1 ERROR:  duplicate key value violates unique constraint "a_pkey"`,
      `${T} [11] b@db2 ERROR:  duplicate key value violates unique constraint "b_pkey"`,
      `${T} [10] a@db1 STATEMENT:  INSERT INTO a`,
      `\tSELECT 1`,
      `${T} [11] b@db2 DETAIL:  Key (id)=(2) already exists.`,
      `${T} [10] a@db1 LOG:  next message`,
    ]);
    const a = records.find((r) => r.pid === 10 && r.severity === 'ERROR');
    const b = records.find((r) => r.pid === 11);
    expect(a).toMatchObject({ database: 'db1', statement: 'INSERT INTO a\nSELECT 1' });
    expect(b).toMatchObject({ database: 'db2', message: 'duplicate key value violates unique constraint "b_pkey"', detail: 'Key (id)=(2) already exists.' });
    expect(records.map((r) => r.severity)).toEqual(['ERROR', 'ERROR', 'LOG']);
  });

  it('reads the SQLSTATE of verbose messages and their LOCATION line', () => {
    const { records } = parse('%m [%p] ', [
      `${T} [5] ERROR:  23505: duplicate key value violates unique constraint "t_pkey"`,
      `${T} [5] LOCATION:  _bt_check_unique, nbtinsert.c:666`,
    ]);
    expect(records[0]).toMatchObject({
      sqlstate: '23505',
      message: 'duplicate key value violates unique constraint "t_pkey"',
      location: '_bt_check_unique, nbtinsert.c:666',
    });
  });

  it('counts, and survives, lines that are not records', () => {
    const { records, parser } = parse('%m [%p] ', [
      'waiting for server to start....',
      `\torphan continuation`,
      `${T} [5] DETAIL:  orphan`,
      '',
      '\u0000\u0000garbage',
    ]);
    expect(records).toHaveLength(0);
    expect(parser.counters.unrecognisedLines).toBe(3);
    expect(parser.counters.orphanLines).toBe(2);
  });

  it('bounds a huge statement', () => {
    const { records } = parse('%m [%p] ', [`${T} [5] ERROR:  x`, `${T} [5] STATEMENT:  ${'v'.repeat(1_000_000)}`, ...Array(100).fill('\tmore')]);
    expect(records[0]!.statement!.length).toBeLessThanOrEqual(16 * 1024);
  });
});

describe('StderrPrefixParser with a pre-check (the daemon on a busy log)', () => {
  const interesting = (line: string) => line.includes('duplicate key value violates unique constraint');
  const T = '2026-11-27 10:00:00.123 UTC';
  const busy = [
    `${T} [1] LOG:  statement: SELECT 1`,
    '\tFROM ticket',
    `${T} [2] ERROR:  duplicate key value violates unique constraint "ticket_pkey"`,
    `${T} [1] DETAIL:  of the statement before`,
    `${T} [3] LOG:  statement: SELECT 2`,
    `${T} [2] DETAIL:  Key (id)=(7) already exists.`,
    `${T} [2] STATEMENT:  INSERT INTO ticket DEFAULT VALUES`,
    `${T} [2] LOG:  statement: SELECT 3`,
    `${T} [3] DETAIL:  of SELECT 2`,
  ];

  function parseWith(lines: string[]) {
    const records: LogRecord[] = [];
    const parser = new StderrPrefixParser('%m [%p] ', 'test.log', (r) => records.push(r), interesting);
    lines.forEach((line, i) => parser.push(line, { line: i + 1 }));
    parser.flush();
    return { records, parser };
  }

  it('emits the records that matter, whole, and passes the others over without calling anything an orphan', () => {
    const { records, parser } = parseWith(busy);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      pid: 2,
      message: 'duplicate key value violates unique constraint "ticket_pkey"',
      detail: 'Key (id)=(7) already exists.',
      statement: 'INSERT INTO ticket DEFAULT VALUES',
      line: 3,
    });
    expect(parser.counters).toMatchObject({ records: 1, orphanLines: 0, unrecognisedLines: 0 });
    expect(parser.counters.skippedLines).toBeGreaterThan(0);
  });

  it('still parses one line in 64 in full: a log_line_prefix that does not match shows as unrecognised lines', () => {
    const lines = Array.from({ length: 640 }, (_, i) => `${T} <${i}> LOG:  statement: SELECT ${i}`);
    const { parser } = parseWith(lines);
    expect(parser.counters.unrecognisedLines).toBe(10);
  });

  it('lets its source pass lines over unseen only while nothing is being assembled', () => {
    const { parser } = parseWith([]);
    expect(parser.canPassOver()).toBe(true);
    parser.push(busy[2]!, { line: 1 });
    expect(parser.canPassOver()).toBe(false);
    parser.flush();
    expect(parser.canPassOver()).toBe(true);
  });
});

describe('StderrPrefixParser: each record at its first line too', () => {
  const P = '%m [%p] %q%u@%d ';
  const T = '2026-11-27 10:00:00.000 UTC';

  it('hands a record to onRecordStart as its first line is read, with the prefix fields; the whole record still comes once, at its end', () => {
    const started: LogRecord[] = [];
    const records: LogRecord[] = [];
    const parser = new StderrPrefixParser(
      P,
      'test.log',
      (r) => records.push(r),
      undefined,
      (r) => started.push({ ...r }),
    );
    parser.push(`${T} [17] gotrs@helpdesk ERROR:  duplicate key value violates unique constraint "ticket_pkey"`, { offset: 100, line: 1 });
    expect(started).toEqual([
      {
        source: 'test.log',
        severity: 'ERROR',
        message: 'duplicate key value violates unique constraint "ticket_pkey"',
        offset: 100,
        line: 1,
        logTime: T,
        pid: 17,
        user: 'gotrs',
        database: 'helpdesk',
      },
    ]);
    expect(records).toHaveLength(0);
    parser.push(`${T} [17] gotrs@helpdesk DETAIL:  Key (id)=(5) already exists.`, { offset: 190, line: 2 });
    parser.push(`${T} [17] gotrs@helpdesk STATEMENT:  INSERT INTO ticket (title) VALUES ('x')`, { offset: 250, line: 3 });
    parser.flush();
    expect(started).toHaveLength(1);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ offset: 100, detail: 'Key (id)=(5) already exists.', database: 'helpdesk' });
  });

  it('a DETAIL, HINT or STATEMENT line starts no record, and lines passed over by the pre-check none either', () => {
    const started: LogRecord[] = [];
    const parser = new StderrPrefixParser(
      P,
      'test.log',
      () => {},
      (line) => line.includes('duplicate key'),
      (r) => started.push(r),
    );
    parser.push(`${T} [17] gotrs@helpdesk LOG:  duration: 0.1 ms`);
    parser.push(`${T} [17] gotrs@helpdesk DETAIL:  orphan`);
    parser.push(`${T} [18] gotrs@helpdesk ERROR:  duplicate key value violates unique constraint "a_pkey"`);
    parser.push(`${T} [18] gotrs@helpdesk DETAIL:  Key (id)=(1) already exists.`);
    expect(started.map((r) => r.message)).toEqual(['duplicate key value violates unique constraint "a_pkey"']);
  });

  it('a record onRecordStart settles is not kept open for its backend: emitted once its message is complete (TAB lines still join it), its later lines passed over', () => {
    const records: LogRecord[] = [];
    const parser = new StderrPrefixParser(
      P,
      'test.log',
      (r) => records.push(r),
      (line) => line.includes('duplicate key'),
      (r) => r.message.includes('settle'),
    );
    parser.push(`${T} [18] gotrs@helpdesk ERROR:  duplicate key value violates unique constraint "settle_pkey"`, { offset: 0 });
    // Nothing open for its backend: its DETAIL may be passed over by the source.
    expect(parser.canPassOver()).toBe(true);
    expect(parser.openRecordMarks()).toEqual([]);
    parser.push('\tand more', { offset: 90 });
    expect(records).toHaveLength(0);
    parser.push(`${T} [19] gotrs@helpdesk LOG:  duration: 0.1 ms`, { offset: 100 });
    expect(records).toEqual([expect.objectContaining({ offset: 0, message: 'duplicate key value violates unique constraint "settle_pkey"\nand more' })]);
    parser.push(`${T} [18] gotrs@helpdesk DETAIL:  Key (id)=(1) already exists.`, { offset: 150 });
    expect(parser.counters).toMatchObject({ records: 1, orphanLines: 0, skippedLines: 2 });
    // Lines passed over by the source complete it too; a verbose message (its LOCATION may change it) is kept open.
    parser.push(`${T} [20] gotrs@helpdesk ERROR:  duplicate key value violates unique constraint "settle_too"`, { offset: 200 });
    parser.passedOverLines(3);
    parser.push(`${T} [21] gotrs@helpdesk ERROR:  23505: duplicate key value violates unique constraint "settle_not"`, { offset: 300 });
    expect(records.map((r) => r.offset)).toEqual([0, 200]);
    expect(parser.canPassOver()).toBe(false);
    parser.flush();
    expect(records.map((r) => r.offset)).toEqual([0, 200, 300]);
  });
});
