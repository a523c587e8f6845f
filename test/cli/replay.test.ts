import { execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { gzipSync } from 'node:zlib';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localBinariesMajor, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { scanLog } from '../../src/replay/scanLog.js';
import { startCollectorServer, type CollectorFiles } from '../helpers/collector.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { CLI, runCli, waitUntil } from '../helpers/daemon.js';
import { createServiceUser, isRoot, type ServiceUser } from '../helpers/hostSetup.js';

const run = promisify(execFile);
const PREFIX = '%m [%p] %q%u@%d ';

describe('seqwatch replay', () => {
  let db: TestDatabase;
  let dir: string;
  let config: string;
  let log: string;
  /** A config in the test's directory with this database section (the log's prefix, an audit path replay never writes). */
  const configWith = (name: string, database: Record<string, string>) => {
    const path = join(dir, name);
    writeFileSync(path, stringify({ database, sources: [{ path: '/var/log/x.log', log_line_prefix: PREFIX }], audit: { path: join(dir, 'audit.jsonl') } }));
    return path;
  };
  /**
   * `work` as a service user of its own, in a directory that user may enter with the config copied
   * in; the user and the directory removed after.
   */
  const asServiceUser = async (work: (user: ServiceUser, open: string, cfg: string) => Promise<void>) => {
    const user = await createServiceUser();
    const open = mkdtempSync(join(tmpdir(), 'seqwatch-replay-user-'));
    try {
      chmodSync(open, 0o755);
      const cfg = join(open, 'seqwatch.yaml');
      writeFileSync(cfg, readFileSync(config));
      await work(user, open, cfg);
    } finally {
      await user.remove();
      rmSync(open, { recursive: true, force: true });
    }
  };

  beforeAll(async () => {
    db = await createTestDatabase('replay');
    await db.pool.query(`CREATE TABLE ticket (id bigserial PRIMARY KEY, tn text UNIQUE);
                         CREATE TABLE article (id bigserial PRIMARY KEY);
                         INSERT INTO ticket (id, tn) SELECT g, 't' || g FROM generate_series(1, 100) g;
                         INSERT INTO article (id) SELECT generate_series(1, 10); SELECT setval('article_id_seq', 10);`);
    dir = mkdtempSync(join(tmpdir(), 'seqwatch-replay-'));
    config = configWith('seqwatch.yaml', { url: db.url });
    const line = (t: string, pid: number, dbname: string, text: string) => `2026-11-27 ${t} UTC [${pid}] app@${dbname} ${text}`;
    const lines: string[] = [];
    for (let i = 0; i < 2000; i++) lines.push(line('09:00:00.000', 10, db.name, `LOG:  duration: 0.1${i} ms  statement: SELECT ${i}`));
    lines.push(line('09:00:01.000', 11, db.name, 'ERROR:  duplicate key value violates unique constraint "ticket_pkey"'));
    lines.push(line('09:00:01.000', 11, db.name, 'DETAIL:  Key (id)=(1) already exists.'));
    lines.push(line('09:00:01.050', 12, db.name, 'ERROR:  duplicate key value violates unique constraint "ticket_pkey"'));
    lines.push(line('09:10:00.000', 13, db.name, 'ERROR:  duplicate key value violates unique constraint "ticket_pkey"'));
    lines.push(line('09:11:00.000', 14, db.name, 'ERROR:  duplicate key value violates unique constraint "ticket_tn_key"'));
    lines.push(line('09:12:00.000', 15, db.name, 'ERROR:  duplicate key value violates unique constraint "article_pkey"'));
    lines.push(line('09:13:00.000', 16, 'otherdb', 'ERROR:  duplicate key value violates unique constraint "ticket_pkey"'));
    lines.push(line('09:14:00.000', 17, db.name, 'ERROR:  duplicate key value violates unique constraint "gone_pkey"'));
    lines.push(line('09:15:00.000', 18, db.name, `LOG:  statement: SELECT 'duplicate key value violates unique constraint "ticket_pkey"'`));
    log = join(dir, 'postgresql.log');
    writeFileSync(log, lines.join('\n') + '\n');
    // Its rotated predecessor: begun a second earlier, then the same lines (their errors overlap the plain file's bursts).
    const started = line('08:59:59.000', 9, db.name, 'LOG:  database system is ready to accept connections');
    writeFileSync(`${log}.1.gz`, gzipSync([started, ...lines.slice(0, 2003)].join('\n') + '\n'));
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('reports, per constraint, what the daemon would have done and where each sequence stands now; changes nothing', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'replay', '-c', config, log, `${log}.1.gz`, '--json']);
    const report = JSON.parse(stdout);
    const row = (constraint: string) => report.constraints.find((r: { constraint: string }) => r.constraint === constraint);
    expect(report).toMatchObject({ format: 'postgres-stderr', log_line_prefix: PREFIX });
    // 3 in the plain file, 2 in the compressed one; two bursts in the plain file, the gz one overlaps them.
    expect(row('ticket_pkey')).toMatchObject({ errors: 5, table: 'public.ticket', sequence: 'public.ticket_id_seq', now: 'BEHIND by 100' });
    expect(row('ticket_pkey').would).toMatch(/^heal \(\d checks?\)$/);
    expect(row('ticket_tn_key')).toMatchObject({ errors: 1, would: 'skip: not fed by a sequence' });
    expect(row('article_pkey')).toMatchObject({ errors: 1, now: 'in sync' });
    expect(row('gone_pkey')).toMatchObject({ would: 'skip: no such index' });
    expect(report.other_database).toBe(1);
    expect(report.scanned.incidents).toBe(9); // the other database's included
    const { rows } = await db.pool.query(`SELECT last_value::text AS v, is_called FROM ticket_id_seq`);
    expect(rows[0]).toEqual({ v: '1', is_called: false });
  });

  // A field trial (stop 28): a stuck subscription's errors were shown as 'heal (70 checks)',
  // though the daemon alerts on them and never runs setval.
  it("a logical-replication apply worker's conflict: shown as the alert the daemon raises, never as a heal", async () => {
    const worker = join(dir, 'subscriber.log');
    const at = (text: string) => `2026-11-27 10:00:00.000 UTC [4343] ${text}`;
    writeFileSync(
      worker,
      [
        at('ERROR:  duplicate key value violates unique constraint "ticket_pkey"'),
        at('DETAIL:  Key (id)=(5) already exists.'),
        at(
          'CONTEXT:  processing remote data for replication origin "pg_16394" during message type "INSERT" for replication target relation "public.ticket" in transaction 748, finished at 0/177C240',
        ),
        '',
      ].join('\n'),
    );
    const { stdout } = await run(process.execPath, [CLI, 'replay', '-c', config, worker, '--json']);
    const report = JSON.parse(stdout);
    expect(report.constraints).toHaveLength(1);
    expect(report.constraints[0]).toMatchObject({ constraint: 'ticket_pkey', kind: 'replication_conflict', errors: 1, sequence: null });
    expect(report.constraints[0].would).toMatch(/^alert: /);
  });

  it('reads well in a terminal', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'replay', '-c', config, log], { env: { ...process.env, NO_COLOR: '1' } });
    expect(stdout).toMatch(/^CONSTRAINT\s+ERRORS\s+FIRST\s+LAST\s+TABLE\s+SEQUENCE\s+THE DAEMON WOULD\s+NOW$/m);
    expect(stdout).toMatch(
      /^ticket_pkey\s+3\s+2026-11-27 09:00:01.000 UTC\s+2026-11-27 09:10:00.000 UTC\s+public\.ticket\s+public\.ticket_id_seq\s+heal \(3 checks\)\s+BEHIND by 100$/m,
    );
    expect(stdout).toMatch(/6 duplicate key errors on 4 constraints in 1 file,/);
    expect(stdout).toContain('1 error of other databases ignored');
  });

  it('finds records split across read chunks and survives lines longer than a chunk', async () => {
    const big = join(dir, 'big.log');
    const filler = 'x'.repeat(1000);
    const parts: string[] = [];
    for (let i = 0; i < 12_000; i++) parts.push(`2026-11-27 09:00:00.000 UTC [1] app@db LOG:  ${filler}`);
    parts.push('y'.repeat(9 * 1024 * 1024));
    parts.push('2026-11-27 09:00:00.000 UTC [2] app@db ERROR:  duplicate key value violates unique constraint "ticket_pkey"');
    writeFileSync(big, parts.join('\n') + '\n');
    const found: number[] = [];
    const counters = await scanLog(big, { logLinePrefix: PREFIX, onIncident: (i) => found.push(i.offset!) });
    expect(counters.incidents).toBe(1);
    expect(counters.oversized).toBeGreaterThanOrEqual(1);
    expect(found[0]).toBe(parts.slice(0, -1).join('\n').length + 1);
  });

  // The scan starts before pg has loaded and the database is chosen: the incidents found meanwhile
  // (the first of the file) wait for its name, then are routed as the rest.
  it('--threads 2 on a large file says what one thread says, the first incidents routed like the rest', { timeout: 120_000 }, async () => {
    const large = join(dir, 'large.log');
    const head = [
      `2026-11-27 09:00:00.000 UTC [16] app@otherdb ERROR:  duplicate key value violates unique constraint "ticket_pkey"`,
      `2026-11-27 09:00:00.001 UTC [11] app@${db.name} ERROR:  duplicate key value violates unique constraint "ticket_pkey"`,
      `2026-11-27 09:00:00.002 UTC [11] app@${db.name} DETAIL:  Key (id)=(1) already exists.`,
    ].join('\n');
    const filler = `2026-11-27 09:00:01.000 UTC [10] app@${db.name} LOG:  duration: 0.1 ms  statement: SELECT ${'x'.repeat(150)}\n`.repeat(4000);
    const parts = [head + '\n'];
    for (let i = 0; i < 110; i++) {
      parts.push(filler);
      if (i % 10 === 5)
        parts.push(
          `2026-11-27 09:${String(i % 60).padStart(2, '0')}:00.000 UTC [12] app@${i % 20 === 5 ? 'otherdb' : db.name} ERROR:  duplicate key value violates unique constraint "ticket_tn_key"\n`,
        );
    }
    writeFileSync(large, parts.join(''));
    const reports = [];
    for (const threads of ['1', '2']) {
      const { stdout } = await run(process.execPath, [CLI, 'replay', '-c', config, '--threads', threads, large, '--json'], { maxBuffer: 64 * 1024 * 1024 });
      const report = JSON.parse(stdout);
      report.scanned.seconds = 0;
      reports.push(report);
    }
    expect(reports[0].scanned.bytes).toBeGreaterThan(64 * 1024 * 1024);
    expect(reports[0].other_database).toBe(1 + 6);
    expect(reports[0].constraints).toEqual([
      expect.objectContaining({ constraint: 'ticket_tn_key', errors: 5 }),
      expect.objectContaining({ constraint: 'ticket_pkey', errors: 1, first: '2026-11-27 09:00:00.001 UTC' }),
    ]);
    expect(reports[1]).toEqual(reports[0]);
  });

  it('without a reachable database the counts are still shown, each name "database not reachable"', async () => {
    const away = configWith('away.yaml', { url: `postgresql://postgres@127.0.0.1:1/${db.name}` });
    // Not whole: said once after the report, and replay ends 1 (the field, stop 23: it ended 0).
    const failed = await run(process.execPath, [CLI, 'replay', '-c', away, log, '--json']).catch(
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 1 });
    const { stdout, stderr } = failed as { stdout: string; stderr: string };
    expect(stderr).toMatch(/^seqwatch: database not reachable: .*: the counts are shown, not what the catalog says of them$/m);
    const report = JSON.parse(stdout);
    expect(report.constraints.map((r: { constraint: string }) => r.constraint).sort()).toEqual(['article_pkey', 'gone_pkey', 'ticket_pkey', 'ticket_tn_key']);
    for (const row of report.constraints) expect(row).toMatchObject({ would: 'unknown', now: expect.stringMatching(/^database not reachable: /) });
    // In the table the reason is not repeated on every row (the field, stop 23: it made the table very wide).
    const text = await run(process.execPath, [CLI, 'replay', '-c', away, log], { env: { ...process.env, NO_COLOR: '1' } }).catch(
      (error: { stdout: string }) => error,
    );
    expect((text as { stdout: string }).stdout).toMatch(/^ticket_pkey\s+3\s.*\sunknown\s+database not reachable \(below\)$/m);
    expect(report.constraints.find((r: { constraint: string }) => r.constraint === 'ticket_pkey').errors).toBe(3);
  });

  // The field (stop 23): the production config's password file is root's (0600, as the docs say);
  // an operator in group adm, who may read the logs, got "invalid configuration" and no counts.
  it('a password file it cannot read: the counts are shown all the same, the reason said once, and it ends 1', async () => {
    const locked = configWith('locked.yaml', { url: db.url, password_file: join(dir, 'no-such-password') });
    const failed = await run(process.execPath, [CLI, 'replay', '-c', locked, log, '--json']).catch(
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 1 });
    const { stdout, stderr } = failed as { stdout: string; stderr: string };
    const report = JSON.parse(stdout);
    expect(report.constraints.find((r: { constraint: string }) => r.constraint === 'ticket_pkey')).toMatchObject({ errors: 3, would: 'unknown' });
    expect(stderr).toMatch(/^seqwatch: database not reachable: .*cannot read database\.password_file: ENOENT.*: the counts are shown/m);
  });

  // The field (stop 23): logs copied to a machine without seqwatch's config could not be replayed
  // ("/etc/seqwatch/seqwatch.yaml: ... ENOENT", "invalid configuration") even with the prefix given.
  it.runIf(!existsSync('/etc/seqwatch/seqwatch.yaml'))(
    "without -c and without the default config: the defaults and the database from libpq's environment, said",
    async () => {
      const url = new URL(db.url);
      const env = { ...process.env, PGHOST: url.hostname, PGPORT: url.port, PGDATABASE: url.pathname.slice(1), PGUSER: decodeURIComponent(url.username) };
      if (url.password) Object.assign(env, { PGPASSWORD: decodeURIComponent(url.password) });
      const { stdout, stderr } = await run(process.execPath, [CLI, 'replay', '--log-line-prefix', PREFIX, log, '--json'], { env });
      expect(JSON.parse(stdout).constraints.find((r: { constraint: string }) => r.constraint === 'ticket_pkey')).toMatchObject({
        errors: 3,
        now: 'BEHIND by 100',
      });
      expect(stderr).toMatch(/^seqwatch: no config at \/etc\/seqwatch\/seqwatch\.yaml: replaying with the defaults/m);
      // A config named with -c that is not there is still an error.
      const failed = await run(process.execPath, [CLI, 'replay', '-c', join(dir, 'nosuch.yaml'), log]).catch((error: { code: number }) => error);
      expect(failed).toMatchObject({ code: 1 });
    },
  );

  it('a --database the config does not watch: said before any result, the scan stopped', async () => {
    for (const threads of ['1', '2']) {
      const failed = await run(process.execPath, [CLI, 'replay', '-c', config, '--threads', threads, '--database', 'nosuch', log, '--json']).catch(
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
      expect(failed).toMatchObject({ code: 64, stdout: '' });
      expect((failed as { stderr: string }).stderr).toMatch(/^seqwatch: no database nosuch in this config \(/);
    }
  });

  // The field (stop 32): a format read line by line hands a record on once its backend's next line
  // comes (a sequence error is not decided by its first line), or at the file's end: out of the
  // file's order. FIRST and LAST were the first and last handed on, here swapped.
  it('a format read line by line: FIRST and LAST are the earliest and latest times, whatever order the records came in', async () => {
    const entry = (time: string, pid: number, text: string) =>
      JSON.stringify({ log: `2026-11-27 ${time} UTC [${pid}] app@${db.name} ${text}\n`, stream: 'stderr', time: `2026-11-27T${time}Z` });
    const docker = join(dir, 'container-json.log');
    writeFileSync(
      docker,
      [
        // Backend 41 writes nothing more: its record is handed on at the file's end.
        entry('10:00:00.000', 41, 'ERROR:  setval: value 10 is out of bounds for sequence "s_seq" (1..3)'),
        entry('10:00:05.000', 42, 'ERROR:  setval: value 10 is out of bounds for sequence "s_seq" (1..3)'),
        entry('10:00:06.000', 42, 'LOG:  statement: SELECT 1'),
      ].join('\n') + '\n',
    );
    const { stdout } = await run(process.execPath, [CLI, 'replay', '-c', config, '--format', 'docker-json', docker, '--json']);
    expect(JSON.parse(stdout).constraints).toEqual([
      expect.objectContaining({
        constraint: 's_seq',
        kind: 'setval_out_of_bounds',
        errors: 2,
        first: '2026-11-27 10:00:00.000 UTC',
        last: '2026-11-27 10:00:05.000 UTC',
      }),
    ]);
  });

  // The field (stop 32): a German server's stderr log without %e, its errors after its first MiB
  // (a busy log_statement log), replayed once the server spoke English again: "0 duplicate key
  // errors", nothing said, exit 0. Its first records' words say the language.
  it('a log in another language, without %e, its errors past its first MiB: said, from its first records, and it ends 1', async () => {
    const german = join(dir, 'de-late.log');
    const at = (pid: number, text: string) => `2026-12-04 18:05:44.639 UTC [${pid}] postgres@${db.name} ${text}\n`;
    writeFileSync(
      german,
      at(16678, 'LOG:  Anweisung: select pg_rotate_logfile()') +
        at(16684, "LOG:  Anweisung: SELECT 'padding padding padding padding padding padding padding padding padding padding' AS p;").repeat(8000) +
        at(16709, 'FEHLER:  doppelter Schlüsselwert verletzt Unique-Constraint »ticket_pkey«') +
        at(16709, 'DETAIL:  Schlüssel »(id)=(1)« existiert bereits.') +
        at(16711, 'FEHLER:  nextval: Maximalwert von Sequenz »tiny_id_seq« erreicht (3)'),
    );
    const failed = await run(process.execPath, [CLI, 'replay', '-c', config, german]).catch((error: { code: number; stdout: string; stderr: string }) => error);
    expect(failed).toMatchObject({ code: 1 });
    const { stdout, stderr } = failed as { stdout: string; stderr: string };
    expect(stdout).toMatch(/^0 duplicate key errors/m);
    expect(stderr).toContain(
      `seqwatch: ${german}: its first records are written in another language (the first begins "LOG:  Anweisung: "), and log_line_prefix "${PREFIX}" has no %e:`,
    );
    expect(stderr).toContain('this report may miss them');
    // Through a pipe (nothing of it read ahead): its first MiB, as its scan reads it.
    const piped = await run('bash', ['-c', `cat ${german} | ${process.execPath} ${CLI} replay -c ${config} -`]).catch(
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(piped).toMatchObject({ code: 1 });
    expect((piped as { stderr: string }).stderr).toContain(
      'seqwatch: -: its first records are written in another language (the first begins "LOG:  Anweisung: ")',
    );
  });

  it('replays the other formats too: jsonlog, gzip-compressed', async () => {
    const entry = (time: string, constraint: string, dbname: string) =>
      JSON.stringify({
        timestamp: `2026-11-27 ${time} UTC`,
        dbname,
        pid: 7,
        error_severity: 'ERROR',
        state_code: '23505',
        message: `duplicate key value violates unique constraint "${constraint}"`,
      });
    const json = join(dir, 'postgresql.json.gz');
    writeFileSync(
      json,
      gzipSync(
        [
          entry('10:00:00.000', 'ticket_pkey', db.name),
          JSON.stringify({ error_severity: 'LOG', message: 'checkpoint' }),
          entry('10:00:05.000', 'ticket_pkey', db.name),
        ].join('\n') + '\n',
      ),
    );
    const { stdout } = await run(process.execPath, [CLI, 'replay', '-c', config, '--format', 'postgres-json', json, '--json']);
    const report = JSON.parse(stdout);
    expect(report.constraints).toEqual([expect.objectContaining({ constraint: 'ticket_pkey', errors: 2, table: 'public.ticket' })]);
    // The format read; a jsonlog has no log_line_prefix to report (a field trial's --json gave the config's).
    expect(report).toMatchObject({ format: 'postgres-json', log_line_prefix: null });
  });

  // The field (stop 23): `zcat x.gz | replay -c C /dev/stdin` and `replay <(...)` failed (ESPIPE),
  // and `replay -` looked for a file named "-".
  it('reads standard input (-) and pipes given as a path, plain or gzip-compressed, any format', async () => {
    const piped = (args: string[], input: Buffer) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'replay', '-c', config, ...args, '--json']);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d));
        child.stderr.on('data', (d: Buffer) => (stderr += d));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
        child.stdin.end(input);
      });
    const ticketErrors = (stdout: string) => JSON.parse(stdout).constraints.find((r: { constraint: string }) => r.constraint === 'ticket_pkey')?.errors;
    for (const [name, args, input] of [
      ['-', ['-'], readFileSync(log)],
      ['- gzip', ['-'], gzipSync(readFileSync(log))],
      ['- as app-text (parsed line by line)', ['--format', 'app-text', '-'], readFileSync(log)],
    ] as const) {
      const result = await piped([...args], input);
      expect(result.stderr, name).toBe('');
      expect(result.code, name).toBe(0);
      // app-text reads the message anywhere in a line and knows no database: the statement quoting one and the other database's count too.
      expect(ticketErrors(result.stdout), name).toBe(name.includes('app-text') ? 5 : 3);
    }
    // As a shell gives them: a pipe under a path (/dev/stdin) and a process substitution (/dev/fd/N).
    const cli = `${process.execPath} ${CLI} replay -c ${config} --json`;
    for (const command of [`gzip -c ${log} | ${cli} /dev/stdin`, `${cli} <(gzip -c ${log})`]) {
      const { stdout } = await run('bash', ['-c', command]);
      expect(ticketErrors(stdout), command).toBe(3);
    }
    // A pipe is read after the files (its first time is not known ahead): the footer says so.
    const { stdout: order } = await run('bash', ['-c', `gzip -c ${log} | ${process.execPath} ${CLI} replay -c ${config} /dev/stdin ${log}`], {
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(order).toContain('read oldest first (postgresql.log; then /dev/stdin, whose first time is not known ahead)');
    // A named pipe (mkfifo), among other files, with threads: opened once. (Opened and closed again
    // first, to order the files and choose threads, it lost its writer: replay waited for ever.)
    const fifo = join(dir, 'named.fifo');
    const named = `rm -f ${fifo}; mkfifo ${fifo}; (gzip -c ${log} > ${fifo} &); ${cli} --threads 2 ${fifo} ${log}`;
    const { stdout } = await run('bash', ['-c', named], { timeout: 20_000 });
    expect(ticketErrors(stdout), named).toBe(6);
  });

  // The field (stop 23): an exhausted sequence showed as a constraint "skip: no such index", and
  // counted among the duplicate key errors.
  it('the other sequence errors of the runbook: a row of their own, as the daemon would treat them (an alert a person acts on), not counted as duplicate keys', async () => {
    await db.pool.query(
      `CREATE TABLE small (id serial PRIMARY KEY); ALTER SEQUENCE small_id_seq MAXVALUE 3; INSERT INTO small DEFAULT VALUES; INSERT INTO small DEFAULT VALUES; INSERT INTO small DEFAULT VALUES;`,
    );
    const seqlog = join(dir, 'sequences.log');
    const at = (t: string, text: string) => `2026-11-27 ${t} UTC [41] app@${db.name} ERROR:  ${text}\n`;
    writeFileSync(
      seqlog,
      at('10:00:00.000', 'nextval: reached maximum value of sequence "small_id_seq" (3)') +
        at('10:00:01.000', 'nextval: reached maximum value of sequence "small_id_seq" (3)') +
        at('10:00:02.000', 'permission denied for sequence ticket_id_seq') +
        at('10:00:03.000', 'nextval: reached maximum value of sequence "article_id_seq" (9223372036854775807)') +
        at('10:00:04.000', 'duplicate key value violates unique constraint "ticket_pkey"') +
        // Not confirmed, each for its own reason (a field trial's row said "this, or that").
        at('10:00:05.000', 'relation "ghost_id_seq" does not exist') +
        at('10:00:06.000', 'relation "ticket_id_seq" does not exist'),
    );
    const { stdout } = await run(process.execPath, [CLI, 'replay', '-c', config, seqlog, '--json']);
    const rows = JSON.parse(stdout).constraints as Array<Record<string, unknown>>;
    expect(rows.find((r) => r.constraint === 'small_id_seq')).toMatchObject({
      kind: 'sequence_exhausted',
      errors: 2,
      table: 'public.small',
      sequence: 'public.small_id_seq',
      would: 'alert: sequence exhausted (a person decides: setval cannot fix it)',
      // What the catalog's verification found just now (a field trial's row said "-").
      now: 'EXHAUSTED',
    });
    expect(rows.find((r) => r.constraint === 'ticket_id_seq')).toMatchObject({
      kind: 'sequence_permission_denied',
      errors: 1,
      sequence: 'public.ticket_id_seq',
      would: 'alert: permission denied for the sequence (a person decides: setval cannot fix it)',
    });
    // Far from its limit: what the daemon would not act on either.
    expect(rows.find((r) => r.constraint === 'article_id_seq')).toMatchObject({
      kind: 'sequence_exhausted',
      would: expect.stringMatching(/^skip: not verified: no sequence of that name/),
    });
    expect(rows.find((r) => r.constraint === 'ticket_pkey')).toMatchObject({ kind: 'unique_violation', errors: 1 });
    expect(rows.find((r) => r.constraint === 'ghost_id_seq')).toMatchObject({
      kind: 'sequence_missing',
      would: 'skip: not verified: no table has a column that sequence would feed',
    });
    expect(rows.find((r) => r.constraint === 'ticket_id_seq' && r.kind === 'sequence_missing')).toMatchObject({
      would: 'skip: not verified: a relation of that name exists',
    });
    const { stdout: text } = await run(process.execPath, [CLI, 'replay', '-c', config, seqlog], { env: { ...process.env, NO_COLOR: '1' } });
    expect(text).toMatch(
      /\b1 duplicate key error on 1 constraint in 1 file,.*; 6 other errors \(3 sequence_exhausted, 1 sequence_permission_denied, 2 sequence_missing\)/,
    );
  });

  // The field (stop 23): files given newest first (the help's own example, a shell glob) said
  // FIRST after LAST and counted the checks of a burst that jumped back in time as one.
  it('rotated files given newest first are read oldest first (by their first record), and the report says so', async () => {
    const at = (t: string, pid: number, constraint: string) =>
      `2026-11-27 ${t} UTC [${pid}] app@${db.name} ERROR:  duplicate key value violates unique constraint "${constraint}"\n`;
    const older = join(dir, 'rotated.log.2.gz');
    const middle = join(dir, 'rotated.log.1');
    const newer = join(dir, 'rotated.log');
    writeFileSync(older, gzipSync(at('08:00:00.000', 31, 'ticket_pkey') + at('08:00:00.100', 31, 'ticket_pkey')));
    writeFileSync(middle, at('08:30:00.000', 32, 'ticket_pkey'));
    writeFileSync(newer, at('09:00:00.000', 33, 'ticket_pkey') + at('09:00:00.050', 33, 'ticket_pkey'));
    const { stdout } = await run(process.execPath, [CLI, 'replay', '-c', config, newer, middle, older, '--json']);
    const report = JSON.parse(stdout);
    expect(report.files).toEqual([older, middle, newer]);
    // Three bursts (08:00, 08:30, 09:00): 2 + 1 + 2 checks, as read in order.
    expect(report.constraints[0]).toMatchObject({
      constraint: 'ticket_pkey',
      errors: 5,
      first: '2026-11-27 08:00:00.000 UTC',
      last: '2026-11-27 09:00:00.050 UTC',
      would: 'heal (5 checks)',
    });
    const { stdout: text } = await run(process.execPath, [CLI, 'replay', '-c', config, newer, middle, older], { env: { ...process.env, NO_COLOR: '1' } });
    expect(text).toContain('in 3 files, read oldest first (rotated.log.2.gz, rotated.log.1, rotated.log)');
  });

  // The field (stop 26): a server whose log_timezone is not UTC writes `... CET` (and %n epoch
  // seconds), which Date.parse does not read: every error of a constraint was one burst, "heal (2
  // checks)" where the same errors in UTC made 210. The gaps between the times of one log are what count.
  it('times in a zone Date.parse does not read (CET), and %n epochs: the bursts are told apart still', async () => {
    const cet = join(dir, 'cet.log');
    const at = (t: string, pid: number) => `2026-11-27 ${t} CET [${pid}] app@${db.name} ERROR:  duplicate key value violates unique constraint "ticket_pkey"\n`;
    // Two bursts 5 s apart (the debounce window is 200 ms): 2 checks each.
    writeFileSync(cet, at('08:00:00.000', 31) + at('08:00:00.100', 31) + at('08:00:00.150', 31) + at('08:00:05.000', 32) + at('08:00:05.050', 32));
    const { stdout } = await run(process.execPath, [CLI, 'replay', '-c', config, cet, '--json']);
    expect(JSON.parse(stdout).constraints[0]).toMatchObject({ constraint: 'ticket_pkey', errors: 5, would: 'heal (4 checks)' });
    const epochs = join(dir, 'epochs.log');
    const atEpoch = (seconds: string, pid: number) =>
      `${seconds} [${pid}] app@${db.name} ERROR:  duplicate key value violates unique constraint "ticket_pkey"\n`;
    writeFileSync(epochs, atEpoch('1764230400.000', 31) + atEpoch('1764230400.100', 31) + atEpoch('1764230405.000', 32) + atEpoch('1764230405.050', 32));
    const byEpoch = await run(process.execPath, [CLI, 'replay', '-c', config, '--log-line-prefix', '%n [%p] %q%u@%d ', epochs, '--json']);
    expect(JSON.parse(byEpoch.stdout).constraints[0]).toMatchObject({ constraint: 'ticket_pkey', errors: 4, would: 'heal (4 checks)' });
  });

  // The field (stop 23): `gzip -k` leaves the original beside the archive, and a glob takes both:
  // every error counted twice, nothing said.
  it('a file and its copy (gzip -k, cp) given together: said, as their errors are counted twice, and ends 1', async () => {
    const copy = join(dir, 'postgresql.log.gz');
    writeFileSync(copy, gzipSync(readFileSync(log)));
    const failed = await run(process.execPath, [CLI, 'replay', '-c', config, log, copy, '--json']).catch(
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 1 });
    const { stderr } = failed as { stderr: string };
    expect(stderr).toContain(
      `seqwatch: ${log} and ${copy} begin alike (their first 64 KiB): one is likely a copy of the other (gzip -k keeps the original), its errors counted twice; give only one of them`,
    );
  });

  // The field (stop 23): with a log_line_prefix that was not the log's, replay said "0 duplicate key
  // errors on 0 constraints" and ended 0, its --json knowing better (candidates 293, incidents 0).
  it("a log_line_prefix that is not the log's: says how many error lines it could not read and the first, and ends 1", async () => {
    const failed = await run(process.execPath, [CLI, 'replay', '-c', config, '--log-line-prefix', '%t [%p] ', log, '--json']).catch(
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 1 });
    const { stdout, stderr } = failed as { stdout: string; stderr: string };
    expect(JSON.parse(stdout).scanned).toMatchObject({ incidents: 0, unreadable: 8 });
    expect(stderr).toContain(
      `${log}: 8 line(s) hold a sequence error's text but are no postgres-stderr records with log_line_prefix "%t [%p] ": those errors are not counted; the first begins "2026-11-27 09:00:01.000 UTC [11] app@`,
    );
    expect(stderr).toContain("psql -Atc 'SHOW log_line_prefix'");
    // The log's own prefix: every line read, nothing said, 0.
    const { stderr: quiet } = await run(process.execPath, [CLI, 'replay', '-c', config, log, '--json']);
    expect(quiet).not.toContain('line(s) hold');
  });

  // The field (stop 23): one file it could not read (missing, unreadable, a .gz cut short) among
  // several threw the whole report away, the errors of the others with it.
  it('a file it cannot read among others: said with why, the others still reported, what a cut .gz held before its end counted, and ends 1', async () => {
    const missing = join(dir, 'missing.log');
    const cut = join(dir, 'cut.log.gz');
    const text = [`2026-11-27 09:20:00.000 UTC [21] app@${db.name} ERROR:  duplicate key value violates unique constraint "article_pkey"`];
    for (let i = 0; i < 3000; i++)
      text.push(`2026-11-27 09:20:01.000 UTC [22] app@${db.name} LOG:  duration: ${(i * 7919) % 1000}.${i} ms  statement: SELECT ${i}`);
    const gz = gzipSync(text.join('\n') + '\n');
    writeFileSync(cut, gz.subarray(0, gz.length - 40));
    const failed = await run(process.execPath, [CLI, 'replay', '-c', config, missing, log, cut, '--json']).catch(
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 1 });
    const { stdout, stderr } = failed as { stdout: string; stderr: string };
    const report = JSON.parse(stdout);
    const row = (constraint: string) => report.constraints.find((r: { constraint: string }) => r.constraint === constraint);
    expect(row('ticket_pkey')).toMatchObject({ errors: 3 });
    expect(row('article_pkey')).toMatchObject({ errors: 2 });
    // Read oldest first: the cut .gz (09:20) after the log (09:00), the missing file (no time) last.
    expect(report.unread).toEqual([
      { file: cut, error: expect.stringMatching(/unexpected end of file/), scanned_bytes: expect.any(Number) },
      { file: missing, error: expect.stringMatching(/ENOENT/) },
    ]);
    // A field trial (stop 28): what the cut .gz held was counted in the rows, not in what was
    // scanned ("in 0 files (1 not read), 0.0 MiB scanned").
    const partly = report.unread[0].scanned_bytes as number;
    expect(partly).toBeGreaterThan(100_000);
    expect(report.scanned.bytes).toBe(statSync(log).size + partly);
    expect(stderr).toContain(`${missing}: `);
    expect(stderr).toContain(`${cut}: unexpected end of file after `);
    expect(stderr).toMatch(/ MiB \(decompressed\): what it held up to there is counted, the rest could not be read$/m);
    const { stdout: shown } = await run(process.execPath, [CLI, 'replay', '-c', config, missing, log, cut]).catch((error: { stdout: string }) => error);
    expect(shown).toContain('in 2 files (1 not read, 1 read in part: below)');
  });

  // The field (stop 23): a log the user may not read said EACCES and nothing more.
  it.runIf(isRoot)('a log the user may not read (Debian: root:adm 0640): says who may read it, the other files still reported', () =>
    asServiceUser(async (user, open, cfg) => {
      const shut = join(open, 'postgresql-15-main.log');
      writeFileSync(shut, readFileSync(log));
      chownSync(shut, 0, Number(execFileSync('getent', ['group', 'adm']).toString().split(':')[2]));
      chmodSync(shut, 0o640);
      const readable = join(open, 'copy.log');
      writeFileSync(readable, readFileSync(log));
      const failed = await run(process.execPath, [CLI, 'replay', '-c', cfg, shut, readable, '--json'], { uid: user.uid, gid: user.gid, cwd: '/' }).catch(
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
      expect(failed).toMatchObject({ code: 1 });
      const { stdout, stderr } = failed as { stdout: string; stderr: string };
      expect(JSON.parse(stdout).constraints.find((r: { constraint: string }) => r.constraint === 'ticket_pkey')).toMatchObject({ errors: 3 });
      expect(stderr).toContain(`cannot read ${shut} (EACCES) as user ${user.name}`);
      expect(stderr).toMatch(/group adm/);
      // A file its group may not read either (0600): joining the group would not help, so not advised
      // (a field trial's advice was `usermod -aG root`).
      chmodSync(shut, 0o600);
      const closed = await run(process.execPath, [CLI, 'replay', '-c', cfg, shut, '--json'], { uid: user.uid, gid: user.gid, cwd: '/' }).catch(
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
      expect((closed as { stderr: string }).stderr).toContain(`cannot read ${shut} (EACCES) as user ${user.name}`);
      expect((closed as { stderr: string }).stderr).not.toMatch(/usermod/);
    }),
  );

  // The field (stop 32): `zcat x.gz | sudo -u opr seqwatch replay /dev/stdin` said EACCES (the pipe is
  // root's, mode 0600) and advised `usermod -aG root opr`. The descriptor is the process's already.
  it.runIf(isRoot)("a pipe of another user's shell under a path (/dev/stdin, /dev/fd/N): read from the descriptor it has", () =>
    asServiceUser(async (user, _open, cfg) => {
      const cli = `runuser -u ${user.name} -- ${process.execPath} ${CLI} replay -c ${cfg} --json`;
      for (const command of [`gzip -c ${log} | ${cli} /dev/stdin`, `${cli} /dev/fd/5 5< <(gzip -c ${log})`]) {
        const { stdout } = await run('bash', ['-c', command], { cwd: '/' });
        expect(
          JSON.parse(stdout).constraints.find((r: { constraint: string }) => r.constraint === 'ticket_pkey'),
          command,
        ).toMatchObject({ errors: 3 });
      }
    }),
  );

  // Issue 16 item 11: forged names by the hundred thousand (any database user can RAISE them). Before,
  // 1,000,000 names took 834 MiB and more than 240 s (one record and one catalog query per name).
  it('a flood of distinct forged names: bounded memory, batched lookups, the rest counted', async () => {
    const flood = join(dir, 'flood.log');
    const out: string[] = [];
    for (let i = 0; i < 100_000; i++)
      out.push(`2026-11-27 10:00:00.000 UTC [42] app@${db.name} ERROR:  duplicate key value violates unique constraint "forged_${i}_pkey"\n`);
    out.push(`2026-11-27 10:00:01.000 UTC [43] app@${db.name} ERROR:  duplicate key value violates unique constraint "ticket_pkey"\n`);
    writeFileSync(flood, out.join(''));
    const started = Date.now();
    const { stdout } = await run(process.execPath, [CLI, 'replay', '-c', config, '--json', flood], { maxBuffer: 64 * 1024 * 1024 });
    const seconds = (Date.now() - started) / 1000;
    const report = JSON.parse(stdout) as { untallied_errors: number; constraints: Array<{ constraint: string }> };
    expect(report.untallied_errors).toBe(100_001 - 10_000);
    expect(new Set(report.constraints.map((c) => c.constraint)).size).toBe(10_000);
    expect(seconds).toBeLessThan(60);
  });
});

/*
 * Found by a field trial: replay --format auto on a busy server's jsonlog and on the logging
 * collector's stderr file fell back to app-text part way (wrong counts, no times), and said nothing
 * of it: records whose statement, vxid or line number held 23505, and statements quoting the words,
 * were taken for errors the format could not read. The same server's three files, each read with
 * --format auto and with its format named: the same report, and replay says what auto chose.
 */
describe.runIf((localBinariesMajor() ?? 0) >= 15)('seqwatch replay --format auto on a real server log', () => {
  let server: ThrowawayPostgres | undefined;
  let files: CollectorFiles;
  let config: string;

  beforeAll(async () => {
    ({ server, files } = await startCollectorServer('stderr,csvlog,jsonlog', { logLinePrefix: PREFIX, settings: { log_statement: 'all', lc_messages: 'C' } }));
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-replay-auto-'));
    config = join(dir, 'seqwatch.yaml');
    writeFileSync(
      config,
      stringify({ database: { url: server.url }, sources: [{ path: '/var/log/x.log', log_line_prefix: PREFIX }], audit: { path: join(dir, 'audit.jsonl') } }),
    );
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await client.query(
        "CREATE TABLE users (id bigserial PRIMARY KEY, login text UNIQUE); INSERT INTO users (login) SELECT 'user-' || g FROM generate_series(1, 50) g",
      );
      for (let i = 1; i <= 6; i++) {
        await expect(client.query(`INSERT INTO users (login) VALUES ('user-${i}')`)).rejects.toMatchObject({ code: '23505' });
        // Statements the format reads as records of their own, holding 23505 and the words.
        await client.query('SELECT 23505 AS answer');
        await client.query('SELECT id FROM users WHERE id = 123505');
        await client.query("SELECT login FROM users\n WHERE login <> 'duplicate key value violates unique constraint'\n   AND id <> 123505");
      }
      await client.query("SELECT 'the end'");
    } finally {
      await client.end();
    }
    await waitUntil(
      'the collector wrote all three files',
      async () => [files.stderr, files.csv, files.json].every((file) => existsSync(file) && readFileSync(file, 'utf8').includes('the end')),
      20_000,
    );
  }, 120_000);
  afterAll(async () => {
    await server?.destroy();
  });

  it.each([
    ['stderr', 'postgres-stderr'],
    ['csv', 'postgres-csv'],
    ['json', 'postgres-json'],
  ] as const)('%s: the same report as --format %s, and says which format it chose', async (destination, format) => {
    const file = files[destination];
    const replay = async (as: string) => {
      const { code, stdout, stderr } = await runCli('replay', '-c', config, '--format', as, '--json', file);
      const report = JSON.parse(stdout);
      return {
        code,
        stderr,
        constraints: report.constraints as Array<{ constraint: string; errors: number; first?: string }>,
        read: { format: report.format, log_line_prefix: report.log_line_prefix },
      };
    };
    const [auto, named] = await Promise.all([replay('auto'), replay(format)]);
    // --json says the format auto chose, as naming it does (a field trial's said "auto" and a prefix on a csv).
    expect(auto.read).toEqual(named.read);
    expect(named.constraints).toEqual([expect.objectContaining({ constraint: 'users_login_key', errors: 6, first: expect.stringMatching(/^\d{4}-/) })]);
    expect(auto.constraints).toEqual(named.constraints);
    expect(auto.code).toBe(named.code);
    expect(auto.stderr.split('\n')).toContain(`seqwatch: ${file}: format detected: ${format}`);
    expect(auto.stderr).not.toMatch(/looked like/);
  });
});
