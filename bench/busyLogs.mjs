// A busy GOTRS server's log in each of PostgreSQL's destinations (stderr, csvlog, jsonlog), the same
// records in each: ordinary statements (one in 11 over three lines), a non-sequence unique violation
// every 37 records (a login form hammered: users_login_key, with DETAIL and STATEMENT), a lagging
// sequence's error every 5,000 (ticket_pkey) and an `_id_seq` family error every 20,000
// (nextval at the maximum of ticket_id_seq).

/** log_line_prefix of the stderr log. */
export const STDERR_PREFIX = '%m [%p] %q%u@%d ';
/** What seqwatch's config calls each destination. */
export const FORMAT_OF = { stderr: 'postgres-stderr', csvlog: 'postgres-csv', jsonlog: 'postgres-json' };

/** One record: what each destination writes of it. */
function recordAt(n, at) {
  const time = new Date(at + Math.floor(n / 100)).toISOString().replace('T', ' ').replace('Z', ' UTC');
  const pid = 1000 + (n % 97);
  const base = { time, pid, line: n, session: `6750a1b2.${pid.toString(16)}` };
  if (n % 37 === 5) {
    return {
      ...base,
      kind: 'login_key',
      severity: 'ERROR',
      sqlstate: '23505',
      message: 'duplicate key value violates unique constraint "users_login_key"',
      detail: `Key (login)=(agent${n}) already exists.`,
      statement: 'INSERT INTO users (login, pw, first_name, last_name, valid_id) VALUES ($1, $2, $3, $4, 1)',
    };
  }
  if (n % 5_000 === 99) {
    return {
      ...base,
      kind: 'pkey',
      severity: 'ERROR',
      sqlstate: '23505',
      message: 'duplicate key value violates unique constraint "ticket_pkey"',
      detail: `Key (id)=(${n}) already exists.`,
    };
  }
  if (n % 20_000 === 1_234) {
    return {
      ...base,
      kind: 'sequence',
      severity: 'ERROR',
      sqlstate: '2200H',
      message: 'nextval: reached maximum value of sequence "ticket_id_seq" (2147483647)',
      statement: 'INSERT INTO ticket (tn, title) VALUES ($1, $2)',
    };
  }
  const statement =
    n % 11 === 3
      ? `SELECT t.id, t.tn, t.title, q.name\n  FROM ticket t JOIN queue q ON q.id = t.queue_id\n  WHERE t.customer_id = $1 AND t.archive_flag = 0 ORDER BY t.id DESC LIMIT ${n % 50}`
      : 'SELECT id, tn, title, queue_id FROM ticket WHERE id = $1 AND archive_flag = 0';
  return { ...base, kind: 'statements', severity: 'LOG', sqlstate: '00000', message: `duration: 0.${n % 1000} ms  execute <unnamed>: ${statement}` };
}

const csvText = (value) => (value === undefined ? '' : `"${value.replaceAll('"', '""')}"`);

/** As the logging collector writes each destination (PostgreSQL 15-17 columns and keys). */
const WRITE = {
  stderr(r) {
    const head = `${r.time} [${r.pid}] gotrs@gotrs `;
    // stderr continues a multi-line value on lines that start with a tab.
    const text = (value) => value.replaceAll('\n', '\n\t');
    let out = `${head}${r.severity}:  ${text(r.message)}\n`;
    if (r.detail) out += `${head}DETAIL:  ${r.detail}\n`;
    if (r.statement) out += `${head}STATEMENT:  ${r.statement}\n`;
    return out;
  },
  csvlog(r) {
    return (
      [
        r.time,
        csvText('gotrs'),
        csvText('gotrs'),
        r.pid,
        csvText('10.0.0.7:51234'),
        r.session,
        r.line,
        csvText(r.severity === 'LOG' ? 'SELECT' : 'INSERT'),
        r.time,
        `3/${r.line}`,
        0,
        r.severity,
        r.sqlstate,
        csvText(r.message),
        csvText(r.detail),
        '',
        '',
        '',
        '',
        csvText(r.statement),
        '',
        '',
        csvText('gotrs-backend'),
        csvText('client backend'),
        '',
        0,
      ].join(',') + '\n'
    );
  },
  jsonlog(r) {
    const entry = {
      timestamp: r.time,
      user: 'gotrs',
      dbname: 'gotrs',
      pid: r.pid,
      remote_host: '10.0.0.7',
      remote_port: 51234,
      session_id: r.session,
      line_num: r.line,
      ps: r.severity === 'LOG' ? 'SELECT' : 'INSERT',
      session_start: r.time,
      vxid: `3/${r.line}`,
      txid: 0,
      error_severity: r.severity,
      state_code: r.sqlstate,
      message: r.message,
      ...(r.detail ? { detail: r.detail } : {}),
      ...(r.statement ? { statement: r.statement } : {}),
      application_name: 'gotrs-backend',
      backend_type: 'client backend',
      query_id: 0,
    };
    return JSON.stringify(entry) + '\n';
  },
};

/**
 * `count` records from record number `from`, in destination `format`, their times from `at` (ms
 * since the epoch) on; tallies the records by kind into `counts`.
 */
export function busyRecords(format, from, count, counts, at = Date.now()) {
  let out = '';
  for (let n = from; n < from + count; n++) {
    const record = recordAt(n, at);
    counts[record.kind] = (counts[record.kind] ?? 0) + 1;
    out += WRITE[format](record);
  }
  return out;
}

/** The incidents a log of these counts holds (what seqwatch must find, and grep's lines). */
export const incidentsOf = (counts) => (counts.login_key ?? 0) + (counts.pkey ?? 0) + (counts.sequence ?? 0);
