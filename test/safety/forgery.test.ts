import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findLocalBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { createParser } from '../../src/formats/createParser.js';
import type { LogRecord } from '../../src/formats/LogRecord.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';

/*
 * Issue 16 item 5, as the attacker does it: an anonymous web user signs up with a login that holds
 * a newline and a line shaped like a csvlog record. The login is already taken, so PostgreSQL logs
 * the unique violation with the value in DETAIL, newline and all, inside a quoted csv field. The
 * forged line must stay part of that field: no record with the attacker's time, pid or database.
 */
const FORGED_TIME = '2026-12-02 03:04:05.678 UTC';
const FORGED_PID = 66666;
// No double quotes (csvlog would double them): unquoted fields, a French message that quotes with « ».
const FORGED = [
  `${FORGED_TIME},mallory,forgeddb,${FORGED_PID},,,,,,,,ERROR,23505,la valeur d'une clé dupliquée rompt la contrainte unique « ticket_pkey »`,
  `${FORGED_TIME},mallory,forgeddb,${FORGED_PID},,,,,,,,ERROR,2200H,nextval: reached maximum value of sequence forged_seq`,
];

describe.runIf(findLocalBinaries())('forged csvlog records (a real csvlog server, a real value with newlines)', () => {
  let server: ThrowawayPostgres;
  let csv: string;
  const daemons: RunningDaemon[] = [];

  beforeAll(async () => {
    server = await startLocalPostgres({
      settings: { logging_collector: 'on', log_destination: 'csvlog', log_filename: 'postgresql.log', log_file_mode: '0644' },
    });
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`ALTER SYSTEM SET log_directory = '${server.logDir}'`);
    await admin.query('SELECT pg_reload_conf()');
    await admin.query('CREATE TABLE ticket (id bigserial PRIMARY KEY); CREATE TABLE signup (id bigserial PRIMARY KEY, login text UNIQUE)');
    await admin.end();
    await new Promise((r) => setTimeout(r, 300));
    csv = join(server.logDir!, 'postgresql.csv');
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await server?.destroy();
  });

  it('a sign-up whose login holds a newline and a fake record produces no record', async () => {
    const daemon = await startDaemon({
      database: { url: server.url },
      sources: [{ path: csv, format: 'postgres-csv', start_at: 'end' }],
      remediation: { debounce_ms: 50 },
    });
    daemons.push(daemon);
    const login = `alice\n${FORGED.join('\n')}\n`;
    const web = new pg.Client({ connectionString: server.url });
    await web.connect();
    // The web application binds the value, as it should: it still reaches the log's DETAIL.
    await web.query('INSERT INTO signup (login) VALUES ($1)', [login]);
    await expect(web.query('INSERT INTO signup (login) VALUES ($1)', [login])).rejects.toMatchObject({ code: '23505' });
    // A real error after it, which must still be seen.
    await web.query('INSERT INTO ticket (id) SELECT generate_series(1, 5)');
    await expect(web.query('INSERT INTO ticket DEFAULT VALUES')).rejects.toMatchObject({ code: '23505' });
    await web.end();
    await daemon.waitForAudit('ticket healed', (r) => r.event === 'remediated' && r.table === 'public.ticket', 15_000);

    const text = readFileSync(csv, 'utf8');
    expect(text).toContain(`\n${FORGED[0]}\n`); // the forged line really is a line of its own in the file
    const records: LogRecord[] = [];
    const parser = createParser('postgres-csv', { source: csv, logLinePrefix: '' }, (r) => records.push(r));
    text.split('\n').forEach((line, i) => parser.push(line, i === 0 ? { offset: 0, boundary: 'start' } : {}));
    parser.flush();
    expect(records.filter((r) => r.pid === FORGED_PID || r.logTime === FORGED_TIME || r.database === 'forgeddb')).toEqual([]);
    const signup = records.find((r) => r.message.includes('signup_login_key'));
    expect(signup?.detail).toContain(FORGED[1]);

    const forged = daemon.audit().filter((r) => JSON.stringify(r).includes('forged') || r.trigger?.log_time === FORGED_TIME);
    expect(forged).toEqual([]);
  });
});
