import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { CLI } from '../helpers/daemon.js';

const run = promisify(execFile);

async function doctor(config: string): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run(process.execPath, [CLI, 'doctor', '-c', config], { env: { ...process.env, NO_COLOR: '1' } });
    return { code: 0, stdout };
  } catch (error) {
    const e = error as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

describe('seqwatch doctor', () => {
  let db: TestDatabase;
  let dir: string;
  const role = `doc_${Math.random().toString(36).slice(2, 8)}`;
  const { logPath, logLinePrefix } = inject('pg');

  beforeAll(async () => {
    db = await createTestDatabase('doctor');
    await db.pool.query(`CREATE TABLE ticket (id bigserial PRIMARY KEY); CREATE TABLE article (id bigserial PRIMARY KEY);
                         CREATE ROLE ${role} LOGIN;
                         GRANT SELECT ON ticket, article TO ${role};
                         GRANT SELECT, UPDATE ON SEQUENCE ticket_id_seq TO ${role};
                         GRANT SELECT ON SEQUENCE article_id_seq TO ${role};`);
    dir = mkdtempSync(join(tmpdir(), 'seqwatch-doctor-'));
  });
  afterAll(async () => {
    await db.pool.query(`DROP OWNED BY ${role}`).catch(() => {});
    await db?.drop();
    const { default: pg } = await import('pg');
    const admin = new pg.Client({ connectionString: inject('pg').url });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });

  function config(user: string, sources: Array<Record<string, string>>): string {
    const url = new URL(db.url);
    url.username = user;
    const path = join(dir, `${user}-${sources.length}-${Math.random()}.yaml`);
    writeFileSync(path, stringify({ database: { url: url.toString() }, sources, audit: { path: join(dir, 'audit.jsonl') }, state_dir: join(dir, 'state') }));
    return path;
  }

  it('names each missing privilege with the GRANT that fixes it, and exits 1', async () => {
    const result = await doctor(config(role, [{ path: join(dir, 'later.log') }]));
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`${role} is not a superuser`);
    expect(result.stdout).toContain(`cannot read and set 1 sequence(s)`);
    expect(result.stdout).toContain(`GRANT SELECT, UPDATE ON SEQUENCE public.article_id_seq TO ${role};`);
    expect(result.stdout).toContain('does not exist yet');
    // Where it writes: the audit log and the state directory, with the room left there.
    expect(result.stdout).toMatch(new RegExp(`ok +audit log ${join(dir, 'audit.jsonl')} is writable, \\d+ [MG]iB free`));
    expect(result.stdout).toMatch(/ok +state directory .* is writable/);
  });

  it('names a log_line_prefix that does not match the server, and an unreadable source', async () => {
    const unreadable = join(dir, 'secret.log');
    writeFileSync(unreadable, 'x\n');
    chmodSync(unreadable, 0o000);
    const result = await doctor(config('postgres', [{ path: unreadable, log_line_prefix: '%t ' }]));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/the config's log_line_prefix "%t " is not the server's/);
    expect(result.stdout).toContain(`in the config: log_line_prefix: '${logLinePrefix}'`);
    expect(result.stdout).toContain('postgres is a superuser');
    if (process.getuid?.() !== 0) expect(result.stdout).toContain('is not readable by this user');
  });

  it("a config's prefix with %e where the server's has none: the fix is on the server (the config's %e would otherwise be dropped)", async () => {
    const withSqlstate = logLinePrefix.replace('%q', '%e %q');
    const result = await doctor(config('postgres', [{ path: join(dir, 'later.log'), log_line_prefix: withSqlstate }]));
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`ALTER SYSTEM SET log_line_prefix = '${withSqlstate}'; SELECT pg_reload_conf();`);
    expect(result.stdout).not.toContain(`in the config: log_line_prefix: '${logLinePrefix}'`);
  });

  it.runIf(logPath)('finds nothing to fix when the role, the settings and the server log are right', async () => {
    await db.pool.query(`GRANT UPDATE ON SEQUENCE article_id_seq TO ${role}`);
    const result = await doctor(config(role, [{ path: logPath, log_line_prefix: logLinePrefix }]));
    expect(result.stdout).toMatch(/of its last \d+ lines match its log_line_prefix/);
    expect(result.stdout).toContain('nothing to fix');
    expect(result.code).toBe(0);
  });

  it('warns of a key whose MAX is a full scan and of a DEFAULT the trust rule refuses, naming the index to create', async () => {
    const other = await createTestDatabase('doctorcols');
    try {
      await other.pool.query(`CREATE TABLE line (tenant int, id serial, PRIMARY KEY (tenant, id));
                              CREATE SEQUENCE invoice_n_seq;
                              CREATE TABLE invoice (n bigint PRIMARY KEY DEFAULT nextval('invoice_n_seq') * 100 + 7);`);
      const path = join(dir, `cols-${Math.random()}.yaml`);
      writeFileSync(
        path,
        stringify({
          database: { url: other.url },
          sources: [{ path: join(dir, 'later.log') }],
          audit: { path: join(dir, 'audit.jsonl') },
          state_dir: join(dir, 'state'),
        }),
      );
      const result = await doctor(path);
      expect(result.stdout).toMatch(/warn +public\.line\.id: no index leads with it, so each check reads the whole table/);
      expect(result.stdout).toContain('CREATE INDEX CONCURRENTLY ON public.line (id);');
      expect(result.stdout).toMatch(/warn +public\.invoice\.n is never healed: its DEFAULT uses public\.invoice_n_seq, in an expression/);
    } finally {
      await other.drop();
    }
  });
});
