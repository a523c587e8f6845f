import { describe, expect, it } from 'vitest';
import { configWarnings, parseConfig } from '../../src/config/config.js';
import { detectIncident } from '../../src/detect/detectIncident.js';
import { createParser, type Format, type FormatOptions } from '../../src/formats/createParser.js';
import type { LogRecord } from '../../src/formats/LogRecord.js';
import { holdsStderrNeedle } from '../../src/detect/scanner.js';

function parse(format: Format, lines: string[], options: Partial<FormatOptions> = {}) {
  const records: LogRecord[] = [];
  const detected: string[] = [];
  const misread: Array<[string, number]> = [];
  const parser = createParser(
    format,
    {
      source: 's',
      logLinePrefix: '%m [%p] ',
      onDetected: (f, inner) => detected.push(inner ? `${f}/${inner}` : f),
      onMisread: (f, n) => misread.push([f, n]),
      ...options,
    },
    (r) => records.push(r),
  );
  lines.forEach((line, i) => parser.push(line, { line: i + 1 }));
  parser.flush();
  return { records, detected, misread, counters: parser.counters, incidents: records.map(detectIncident).filter((i) => i !== undefined) };
}

const dup = (name: string) => `duplicate key value violates unique constraint "${name}"`;

describe('auto: a format only on its whole shape', () => {
  it.each([
    ["Python's %(asctime)s", ['2026-12-02 01:43:10,915 INFO [tickets] worker started', `2026-12-02 01:43:11,002 ERROR [tickets] ${dup('ticket_pkey')}`]],
    [
      "Log4j 2's %d",
      ['2026-12-02 01:43:10,915 INFO c.e.t.TicketService [main] Started', `2026-12-02 01:43:11,002 ERROR c.e.t.TicketService [main] ${dup('ticket_pkey')}`],
    ],
    ['a CSV-looking application line', ['2026-12-02 01:43:10.915 UTC,INFO,tickets,started', `2026-12-02 01:43:11.002 UTC,ERROR,tickets,${dup('ticket_pkey')}`]],
  ])('%s is not csvlog', (_name, lines) => {
    const { detected, incidents } = parse('auto', lines);
    expect(detected).toEqual(['app-text']);
    expect(incidents.map((i) => i.constraint)).toEqual(['ticket_pkey']);
  });

  it('recognises CRI and CloudNativePG lines, and the format inside a container log', () => {
    const cnpg = JSON.stringify({
      level: 'info',
      ts: '2026-12-02T01:02:03Z',
      logger: 'postgres',
      msg: 'record',
      logging_pod: 'pg-1',
      record: { error_severity: 'LOG', message: 'checkpoint starting' },
    });
    expect(parse('auto', [cnpg]).detected).toEqual(['cnpg-json']);
    expect(parse('auto', [`2026-12-02T01:02:03.123456789Z stderr F ${'2026-12-02 01:02:03.123 UTC [7] LOG:  x'}`]).detected).toEqual(['cri/postgres-stderr']);
    expect(parse('auto', [`2026-12-02T01:02:03.123456789Z stdout F ${cnpg}`]).detected).toEqual(['cri/cnpg-json']);
    expect(parse('auto', ['2026-12-02T01:02:03.123456789Z stdout F 2026/12/02 01:02:03 listening on :8080']).detected).toEqual(['cri/app-text']);
  });
});

describe('auto: says so when the chosen format is blind, and chooses again', () => {
  // A Go service whose log lines start the way PostgreSQL's do (time, [pid]): auto takes it for the
  // server's stderr, whose parser finds no record in the application's error lines.
  const lines = [
    '2026-12-02 06:00:00.123 UTC [4242] LOG:  worker started',
    ...[1, 2, 3, 4].map((n) => `2026-12-02 06:00:0${n}.123 UTC [4242] ERROR: create ticket: pq: ${dup('ticket_pkey')}`),
  ];

  it('warns (onMisread, the misread counter), re-detects and loses none of the errors', () => {
    const { detected, misread, counters, incidents } = parse('auto', lines);
    expect(detected).toEqual(['postgres-stderr', 'app-text']);
    expect(misread).toEqual([['postgres-stderr', 3]]);
    expect(counters.misreadLines).toBe(3);
    expect(incidents.map((i) => i.constraint)).toEqual(['ticket_pkey', 'ticket_pkey', 'ticket_pkey', 'ticket_pkey']);
  });

  it('does not when the format gives records of the errors (a real server log with several backends)', () => {
    const server = [1, 2, 3, 4].flatMap((n) => [
      `2026-12-02 06:00:0${n}.123 UTC [${4240 + n}] ERROR:  ${dup('ticket_pkey')}`,
      `2026-12-02 06:00:0${n}.123 UTC [${4240 + n}] DETAIL:  Key (id)=(${n}) already exists.`,
    ]);
    const { detected, misread, incidents } = parse('auto', server);
    expect(detected).toEqual(['postgres-stderr']);
    expect(misread).toEqual([]);
    expect(incidents).toHaveLength(4);
  });
});

describe('auto on a csvlog whose quoted fields hold error words', () => {
  // The field (stop 23): a statement logged with newlines in its text, lines of it holding
  // "duplicate key" or 23505 (a csvlog line pasted into a query, an error handler's source), made auto
  // count them as errors csvlog gave no record of, drop csvlog for app-text, and miss what followed.
  const quoted = (text: string) => `"${text.replace(/"/g, '""')}"`;
  const csv = (time: string, severity: string, state: string, message: string, query = '') =>
    `2026-12-02 06:00:${time} UTC,"app","db",42,"10.0.0.1:5000",6b0f.2a,1,"INSERT",2026-12-02 06:00:00 UTC,3/10,0,${severity},${state},${quoted(message)},,,,,,${quoted(query)},,,"psql","client backend",,0`;
  // Real csvlog lines of an error, pasted into a statement's text (their quotes doubled again there).
  const pasted = [1, 2, 3, 4].map((n) => csv(`0${n}.500`, 'ERROR', '23505', dup('forged_pkey')));
  const statement = `INSERT INTO archived_logs VALUES (1, '\n${pasted.join('\n')}\n')`;
  const lines = [
    csv('00.000', 'LOG', '00000', 'checkpoint starting: time'),
    ...csv('01.000', 'LOG', '00000', `statement: ${statement}`, statement).split('\n'),
    csv('02.000', 'ERROR', '23505', dup('ticket_pkey')),
    csv('03.000', 'ERROR', '23505', dup('ticket_pkey')),
  ];

  it("keeps csvlog (the quoted lines are its records' text, not errors it missed) and finds the real errors after them", () => {
    const { detected, misread, incidents } = parse('auto', lines);
    expect(detected).toEqual(['postgres-csv']);
    expect(misread).toEqual([]);
    expect(incidents.map((i) => i.constraint)).toEqual(['ticket_pkey', 'ticket_pkey']);
  });
});

describe('cri', () => {
  it('joins partial lines per stream, stdout and stderr interleaved', () => {
    const { records, incidents } = parse(
      'cri',
      [
        '2026-12-02T01:02:03.000000001Z stdout P 2026/12/02 01:02:03 create ticket: pq: duplicate key value vio',
        '2026-12-02T01:02:03.000000002Z stderr F panic: nothing to do with it',
        '2026-12-02T01:02:03.000000003Z stdout P lates unique constraint "ticke',
        '2026-12-02T01:02:03.000000004Z stdout F t_pkey"',
        'not a CRI line',
      ],
      { innerFormat: 'app-text' },
    );
    expect(incidents.map((i) => i.constraint)).toEqual(['ticket_pkey']);
    expect(records[0]!.line).toBe(1);
  });
});

describe('cnpg-json', () => {
  it("reads CloudNativePG's records (database, SQLSTATE, any language) and passes over its other loggers", () => {
    const record = (fields: Record<string, string>) =>
      JSON.stringify({ level: 'info', ts: '2026-12-02T01:02:03Z', logger: 'postgres', msg: 'record', logging_pod: 'pg-1', record: fields });
    const { records, incidents, counters } = parse('cnpg-json', [
      JSON.stringify({ level: 'info', ts: '2026-12-02T01:02:03Z', logger: 'instance-manager', msg: 'starting', logging_pod: 'pg-1' }),
      record({
        log_time: '2026-12-02 01:02:03.123 UTC',
        user_name: 'app',
        database_name: 'gotrs',
        process_id: '886',
        error_severity: 'ERROR',
        sql_state_code: '23505',
        message: 'doppelter Schlüsselwert verletzt Unique-Constraint »ticket_pkey«',
      }),
      record({ error_severity: 'LOG', sql_state_code: '00000', message: 'checkpoint complete' }),
    ]);
    expect(records).toHaveLength(2);
    expect(incidents).toEqual([expect.objectContaining({ constraint: 'ticket_pkey', database: 'gotrs', sqlstate: '23505' })]);
    expect(records[0]).toMatchObject({ pid: 886, user: 'app', logTime: '2026-12-02 01:02:03.123 UTC' });
    expect(counters.unrecognisedLines).toBe(0);
  });
});

describe('app-text sources at startup', () => {
  it('give no PostgreSQL-server advice (log_line_prefix, %e) for an application log', () => {
    const config = parseConfig(
      'database: {url: "postgresql://a@h/x"}\nsources:\n  - {path: /var/log/app.log, format: app-text}\n  - {path: /var/log/pods/app.log, format: cri, inner_format: app-text}\n  - {path: /var/log/pods/pg.log, format: cnpg-json}\n  - {path: /var/log/postgresql/pg.log}\n',
      'c.yaml',
    );
    const warnings = configWarnings('c.yaml', config);
    const about = (path: string) => warnings.filter((w) => w.startsWith(`${path}:`));
    for (const app of ['/var/log/app.log', '/var/log/pods/app.log']) {
      expect(about(app)).toHaveLength(1);
      expect(about(app)[0]).not.toMatch(/%e|log_line_prefix/);
    }
    expect(about('/var/log/pods/pg.log')).toEqual([]);
    expect(about('/var/log/postgresql/pg.log')[0]).toMatch(/add %e to log_line_prefix/);
  });
});

describe('app-text: names from the message, failures not lines', () => {
  it('reads a translated pgx message behind logrus (escaped quotes, the name not greedy)', () => {
    const { incidents } = parse('app-text', [
      'time="2026-12-02T05:54:38Z" level=error msg="create ticket" error="FEHLER: doppelter Schlüsselwert verletzt Unique-Constraint »article_pkey« (SQLSTATE 23505)" component=tickets',
      'time="2026-12-02T05:54:39Z" level=error msg="x \\"y\\"" error="ERROR: duplicate key value violates unique constraint \\"queue_pkey\\" (SQLSTATE 23505)"',
    ]);
    expect(incidents.map((i) => [i.constraint, i.sqlstate])).toEqual([
      ['article_pkey', '23505'],
      ['queue_pkey', '23505'],
    ]);
  });

  it('counts the same line form again as a new failure, another form right after as the same one', () => {
    const go = `2026/12/02 05:55:05 create ticket: pq: ${dup('ticket_pkey')}`;
    expect(parse('app-text', [go, go]).incidents).toHaveLength(2);
    const typeorm = [
      'query failed: INSERT INTO "ticket" DEFAULT VALUES',
      `error: error: ${dup('ticket_pkey')}`,
      `QueryFailedError: ${dup('ticket_pkey')}`,
      '    at PostgresQueryRunner.query (x.js:1:1) {',
    ];
    expect(parse('app-text', [...typeorm, ...typeorm]).incidents).toHaveLength(2);
    const winston = JSON.stringify({ error: { code: '23505', constraint: 'ticket_pkey' }, level: 'error', message: 'create ticket failed' });
    // The structured field and the message text name the same constraint: one failure.
    expect(parse('app-text', [winston, `[app] request failed: ${dup('ticket_pkey')}`]).incidents).toHaveLength(1);
  });
});

describe('auto: reading again after a misread', () => {
  it('reads again the lines after the last error the first format did read, not that one', () => {
    const { incidents, misread } = parse('auto', [
      '2026-12-02 06:00:00.123 UTC [4241] ERROR:  duplicate key value violates unique constraint "a_pkey"',
      ...[1, 2, 3, 4, 5, 6].map((n) => `2026-12-02 06:00:0${n}.123 UTC [4242] ERROR: create ticket: pq: ${dup('b_pkey')} (${n})`),
    ]);
    expect(misread).toEqual([['postgres-stderr', 3]]);
    expect(incidents.map((i) => i.constraint)).toEqual(['a_pkey', 'b_pkey', 'b_pkey', 'b_pkey', 'b_pkey', 'b_pkey', 'b_pkey']);
  });
});

/*
 * Found by a field trial: on a busy server's jsonlog and on the logging collector's stderr file,
 * auto dropped the right format for app-text (wrong counts, no times). It counted every line holding
 * "23505" or "duplicate key" that gave no duplicate key record, though the format read those lines
 * as other records: a jsonlog record's vxid ("5/23505") or line_num (23505), a statement's ids
 * (t.id = 123505) or text ('%duplicate key ...%') in a LOG record and its TAB lines. And a jsonlog
 * error it did read still counted one: the record reset the count before its line was counted.
 */
describe('auto on a busy server log: a line its format reads is no misread, whatever it holds', () => {
  const json = (fields: Record<string, unknown>) =>
    JSON.stringify({
      timestamp: '2026-12-04 15:29:37.400 UTC',
      user: 'gotrs',
      dbname: 'gotrs',
      pid: 2618,
      session_id: '6b12dc55.a3a',
      line_num: 23502,
      ps: 'idle',
      vxid: '5/23503',
      txid: 0,
      error_severity: 'LOG',
      message: 'statement: SELECT 1',
      application_name: 'pgbench',
      backend_type: 'client backend',
      ...fields,
    });
  const jsonError = (login: string) =>
    json({
      pid: 2705,
      ps: 'INSERT',
      error_severity: 'ERROR',
      state_code: '23505',
      message: dup('users_login_key'),
      detail: `Key (login)=(${login}) already exists.`,
      statement: `INSERT INTO users (login) VALUES ('${login}');`,
    });

  it('jsonlog: keeps postgres-json through vxids, line numbers and ids holding 23505', () => {
    const lines = [
      json({ message: 'statement: SELECT id, login FROM users WHERE login = $1' }),
      jsonError('user-46'),
      json({ vxid: '5/23505', message: 'statement: SELECT last_value, is_called FROM ticket_id_seq;' }),
      json({ line_num: 23505, message: 'statement: SELECT t.id, t.tn FROM ticket t WHERE t.id = 1' }),
      json({ line_num: 23506, message: 'statement: SELECT t.id, t.tn FROM ticket t\n WHERE t.id = 123505' }),
      jsonError('user-380'),
      json({ message: `statement: SELECT '${dup('users_login_key')}' AS pasted` }),
      json({ vxid: '4/23505', message: 'statement: SELECT 1' }),
      jsonError('user-381'),
    ];
    const { detected, misread, counters, incidents } = parse('auto', lines, { logLinePrefix: '%m [%p] %q%u@%d ' });
    expect(detected).toEqual(['postgres-json']);
    expect(misread).toEqual([]);
    expect(counters.misreadLines).toBe(0);
    expect(incidents.map((i) => i.constraint)).toEqual(['users_login_key', 'users_login_key', 'users_login_key']);
    // Read as jsonlog: with their times (app-text has none).
    expect(incidents.map((i) => i.logTime)).toEqual(Array(3).fill('2026-12-04 15:29:37.400 UTC'));
  });

  const PREFIX = '%m [%p] %q%u@%d ';
  const at = (time: string, pid: number, text: string) => `2026-12-04 15:29:${time} UTC [${pid}] ${pid === 2569 ? '' : 'gotrs@gotrs '}${text}`;
  const stderrError = (time: string, pid: number, login: string) => [
    at(time, pid, `ERROR:  ${dup('users_login_key')}`),
    at(time, pid, `DETAIL:  Key (login)=(${login}) already exists.`),
    at(time, pid, `STATEMENT:  INSERT INTO users (login) VALUES ('${login}');`),
  ];
  const dashboard = (time: string, pid: number, id: number) => [
    at(time, pid, 'LOG:  statement: SELECT t.id, t.tn, t.title, t.queue_id  -- dashboard: open tickets by queue'),
    '\t  FROM ticket t',
    `\t WHERE t.id BETWEEN ${id} AND ${id} + 50`,
    "\t   AND t.title NOT LIKE '%duplicate key value violates unique constraint%'",
    '\t ORDER BY t.id DESC LIMIT 5;',
  ];
  const stderrLines = [
    at('15.863', 2569, 'LOG:  starting PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu'),
    ...dashboard('25.079', 2617, 119619),
    ...stderrError('39.906', 2705, 'user-46'),
    ...dashboard('39.907', 2616, 123505),
    at('39.908', 2618, "LOG:  statement: UPDATE ticket SET title = 'x' WHERE id = 235051;"),
    ...dashboard('39.909', 2617, 23505),
    ...stderrError('39.910', 2705, 'user-380'),
    at('39.911', 2618, `LOG:  statement: SELECT '${dup('users_login_key')}' AS pasted, nextval('article_id_seq');`),
    at('39.912', 2618, 'LOG:  statement: SELECT 23505'),
    ...dashboard('39.913', 2616, 123505),
    ...stderrError('39.914', 2705, 'user-381'),
  ];

  it.each([
    ['every line parsed', {}],
    ["with replay's and the daemon's pre-check", { interesting: holdsStderrNeedle(PREFIX) }],
  ])("the logging collector's stderr file: keeps postgres-stderr through statements holding 23505 and the words (%s)", (_name, options) => {
    const { detected, misread, counters, incidents } = parse('auto', stderrLines, { logLinePrefix: PREFIX, ...options });
    expect(detected).toEqual(['postgres-stderr']);
    expect(misread).toEqual([]);
    expect(counters.misreadLines).toBe(0);
    expect(incidents.map((i) => [i.constraint, i.logTime])).toEqual([
      ['users_login_key', '2026-12-04 15:29:39.906 UTC'],
      ['users_login_key', '2026-12-04 15:29:39.910 UTC'],
      ['users_login_key', '2026-12-04 15:29:39.914 UTC'],
    ]);
  });

  it('still chooses again when the stderr prefix is not the one the server wrote (its errors then give no record)', () => {
    // The server's lines carry %q%u@%d; auto was told '%m [%p] ': the postmaster's first line
    // matches, its backends' lines do not.
    // (Not the statement holding an error's text: app-text, chosen then, cannot tell it from one.)
    const lines = stderrLines.filter((line) => !line.includes('AS pasted'));
    const { detected, misread, incidents } = parse('auto', lines, { logLinePrefix: '%m [%p] ' });
    expect(detected).toEqual(['postgres-stderr', 'app-text']);
    expect(misread).toEqual([['postgres-stderr', 3]]);
    expect(incidents.map((i) => i.constraint)).toEqual(['users_login_key', 'users_login_key', 'users_login_key']);
  });

  it('still chooses again when syslog lines do not have the prefix it was told', () => {
    const lines = [
      'Dec  4 15:29:15 db1 postgres[2569]: [1-1] 2026-12-04 15:29:15.863 UTC [2569] LOG:  starting PostgreSQL 15.18',
      ...[1, 2, 3, 4].map(
        (n) => `Dec  4 15:29:39 db1 postgres[2705]: [${n + 1}-1] 2026-12-04 15:29:39.90${n} UTC [2705] gotrs@gotrs ERROR:  ${dup('users_login_key')}`,
      ),
    ];
    const { detected, misread, incidents } = parse('auto', lines, { logLinePrefix: '%m [%p] ' });
    expect(detected[0]).toBe('syslog');
    expect(misread).toEqual([['syslog', 3]]);
    expect(incidents.map((i) => i.constraint)).toEqual(['users_login_key', 'users_login_key', 'users_login_key', 'users_login_key']);
  });
});
