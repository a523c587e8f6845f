import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, findLocalBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';

const PREFIX = '%m [%p] %q%u@%d ';

/** A log line as the server writes it with PREFIX, for a database and a constraint of our choosing. */
function forged(database: string, constraint: string): string {
  const time = new Date().toISOString().replace('T', ' ').replace('Z', ' UTC');
  return `${time} [31337] app@${database} ERROR:  duplicate key value violates unique constraint "${constraint}"\n`;
}

/** Names meant to break out of a quoted identifier or literal, or to smuggle in a function call. */
const SQL_LOOKING = [
  'ticket_pkey"; DROP TABLE ticket; --',
  "ticket_pkey' OR '1'='1",
  'x"); SELECT pg_sleep(30); --',
  '$1',
  '%I%s%L',
  'ticket_pkey\\',
  'users_pkey/**/UNION/**/SELECT/**/1',
  '"ticket_pkey"',
  'ticket_pkey;DROP SCHEMA public CASCADE',
];

/*
 * A server of its own, with every statement logged (log_statement = all), so that the test can read
 * what seqwatch actually sent. The daemon runs as the least-privileged role of config/seqwatch-role.sql
 * and follows both the server's log and an application log full of forged records.
 */
describe.runIf(findLocalBinaries())('hostile input', () => {
  let server: ThrowawayPostgres;
  let daemon: RunningDaemon | undefined;
  let shop: pg.Client;
  let other: pg.Client;

  const lastValue = async (client: pg.Client, sequence: string) =>
    (await client.query<{ v: string }>(`SELECT last_value::text || ':' || is_called AS v FROM ${sequence}`)).rows[0]!.v;

  beforeAll(async () => {
    server = await startLocalPostgres({ logLinePrefix: PREFIX, settings: { log_statement: 'all' } });
    shop = new pg.Client({ connectionString: await createDatabase(server, 'shop') });
    other = new pg.Client({ connectionString: await createDatabase(server, 'other') });
    await Promise.all([shop.connect(), other.connect()]);
    await shop.query(`
      CREATE TABLE ticket (id serial PRIMARY KEY);
      INSERT INTO ticket (id) SELECT generate_series(1, 100);
      CREATE TABLE users (id serial PRIMARY KEY, login text UNIQUE);
      INSERT INTO users (login) SELECT 'u' || g FROM generate_series(1, 10) g;
      CREATE TABLE secret (id serial PRIMARY KEY);
      INSERT INTO secret (id) SELECT generate_series(1, 50);
      CREATE SCHEMA billing;
      CREATE TABLE billing.invoice (id serial PRIMARY KEY);
      INSERT INTO billing.invoice (id) SELECT generate_series(1, 30);
      CREATE TABLE "Tïcket ""Archiv"" ✓" ("Nr." serial PRIMARY KEY);
      INSERT INTO "Tïcket ""Archiv"" ✓" ("Nr.") SELECT generate_series(1, 40);
      CREATE ROLE seqwatch LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
      GRANT CONNECT ON DATABASE shop TO seqwatch;
      GRANT USAGE ON SCHEMA public, billing TO seqwatch;
      GRANT SELECT ON ALL TABLES IN SCHEMA public, billing TO seqwatch;
      GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public, billing TO seqwatch;`);
    // The same table, behind as well, in a database seqwatch is not configured for.
    await other.query('CREATE TABLE ticket (id serial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 100);');
  });

  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await Promise.all([shop?.end(), other?.end()]);
    await server?.destroy();
  });

  it('builds no statement from log text, and acts only on verified drift inside the policy', async () => {
    const appLog = join(mkdtempSync(join(tmpdir(), 'seqwatch-hostile-')), 'app.log');
    writeFileSync(appLog, '');
    const url = new URL(server.url);
    url.username = 'seqwatch';
    url.pathname = '/shop';
    daemon = await startDaemon({
      database: { url: url.toString() },
      sources: [
        { path: server.logPath!, log_line_prefix: PREFIX },
        { path: appLog, log_line_prefix: PREFIX },
      ],
      remediation: { debounce_ms: 50, cooldown: '0s' },
      policy: { include: ['public.*', 'billing.*'], exclude: ['public.secret', 'billing.invoice'] },
    });
    const before = {
      users: await lastValue(shop, 'users_id_seq'),
      secret: await lastValue(shop, 'secret_id_seq'),
      invoice: await lastValue(shop, 'billing.invoice_id_seq'),
      other: await lastValue(other, 'ticket_id_seq'),
    };

    appendFileSync(
      appLog,
      [
        // Forged: a table whose sequence is fine, tables the policy keeps out, another database.
        forged('shop', 'users_pkey'),
        forged('shop', 'users_login_key'),
        forged('shop', 'secret_pkey'),
        forged('shop', 'invoice_pkey'),
        forged('other', 'ticket_pkey'),
        ...SQL_LOOKING.map((name) => forged('shop', name)),
      ].join(''),
    );
    // Real errors, written by the server itself: an ASCII name and a quoted, Unicode one.
    await expect(shop.query('INSERT INTO ticket DEFAULT VALUES')).rejects.toThrow(/ticket_pkey/);
    await expect(shop.query('INSERT INTO "Tïcket ""Archiv"" ✓" DEFAULT VALUES')).rejects.toThrow(/duplicate key/);

    const d = daemon;
    await d.waitForAudit('ticket healed', (r) => r.event === 'remediated' && r.table === 'public.ticket');
    await d.waitForAudit('the Unicode table healed', (r) => r.event === 'remediated' && r.table === 'public."Tïcket ""Archiv"" ✓"');
    await d.waitForAudit('users found in sync', (r) => r.event === 'in_sync' && r.table === 'public.users');
    await d.waitForAudit('secret kept out', (r) => r.reason === 'excluded_by_policy' && r.table === 'public.secret');
    await d.waitForAudit('invoice kept out', (r) => r.reason === 'excluded_by_policy' && r.table === 'billing.invoice');
    await d.waitForAudit('a genuine duplicate left alone', (r) => r.reason === 'not_sequence_fed' && r.index === 'public.users_login_key');
    for (const name of SQL_LOOKING) await d.waitForAudit(name, (r) => r.reason === 'unknown_constraint' && r.trigger?.constraint === name);

    // The healed tables insert again; nothing else moved; nothing was dropped.
    await shop.query('INSERT INTO ticket DEFAULT VALUES; INSERT INTO "Tïcket ""Archiv"" ✓" DEFAULT VALUES');
    expect(await lastValue(shop, '"Tïcket ""Archiv"" ✓_Nr._seq"')).toBe('41:true');
    expect({
      users: await lastValue(shop, 'users_id_seq'),
      secret: await lastValue(shop, 'secret_id_seq'),
      invoice: await lastValue(shop, 'billing.invoice_id_seq'),
      other: await lastValue(other, 'ticket_id_seq'),
    }).toEqual(before);
    expect((await shop.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname IN ('public', 'billing')")).rows[0].n).toBe(5);
    expect(
      d
        .audit()
        .filter((r) => r.event === 'remediated')
        .map((r) => r.table)
        .sort(),
    ).toEqual(['public."Tïcket ""Archiv"" ✓"', 'public.ticket']);

    // What seqwatch sent: every statement, as the server logged it. No name from a log is part of
    // one; each reached the server only as a bind parameter.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { statements, parameters } = statementsBy(readFileSync(server.logPath!, 'utf8'), 'seqwatch@shop');
    expect(statements.length).toBeGreaterThan(3);
    // ($1 itself is every statement's placeholder.)
    for (const name of [...SQL_LOOKING.filter((n) => n !== '$1'), 'users_pkey', 'secret_pkey', 'invoice_pkey']) {
      for (const statement of statements) expect(statement).not.toContain(name);
    }
    // Identifiers in a statement come from the catalog, quoted by the server (quote_ident, format %I).
    const unicode = statements.filter((s) => s.includes('Tïcket'));
    expect(unicode.length).toBeGreaterThan(0);
    for (const statement of unicode)
      expect(statement.replaceAll('public."Tïcket ""Archiv"" ✓"', '').replaceAll('"Tïcket ""Archiv"" ✓_Nr._seq"', '')).not.toContain('Tïcket');
    // (Names are looked up in batches: the parameter is a text[] literal, with its own quoting.)
    const bare = (text: string) => text.replace(/["'\\]/g, '');
    for (const name of SQL_LOOKING)
      expect(
        parameters.some((p) => bare(p).includes(bare(name))),
        `${name} as a bind parameter`,
      ).toBe(true);
    expect(statements.some((s) => /\b(DROP|pg_sleep|UNION)\b/i.test(s))).toBe(false);
    expect(d.alive()).toBe(true);
  });
});

/**
 * From a server log with PREFIX: the statements one role@database sent (each with its continuation
 * lines) and the DETAIL lines that carry their bind parameters.
 */
function statementsBy(log: string, who: string): { statements: string[]; parameters: string[] } {
  const statements: string[] = [];
  const parameters: string[] = [];
  const recordStart = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ \[\d+\] /;
  let current: string[] | undefined;
  const close = () => {
    if (current) statements.push(current.join('\n'));
    current = undefined;
  };
  for (const line of log.split('\n')) {
    if (!recordStart.test(line)) {
      current?.push(line);
      continue;
    }
    close();
    if (!line.includes(` ${who} `)) continue;
    const statement = /LOG: {2}(?:statement|execute [^:]*): (.*)$/.exec(line);
    if (statement) current = [statement[1]!];
    // "parameters:" up to PostgreSQL 16, "Parameters:" from 17.
    const detail = /DETAIL: {2}[Pp]arameters: (.*)$/.exec(line);
    if (detail) parameters.push(detail[1]!);
  }
  close();
  return { statements, parameters };
}
