import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, gotrsSchema, gotrsSchemaPath, repoRoot, type TestDatabase } from '../helpers/db.js';
import { CLI, runCli as cli } from '../helpers/daemon.js';

/** The built CLI with extra environment variables. */
function cliWith(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1', ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The --help of every command and subcommand, as `seqwatch --help` and each group's help list them. */
async function everyHelp(): Promise<Array<{ command: string[]; code: number; stdout: string }>> {
  const names = (help: string) =>
    [
      ...help
        .slice(help.indexOf('Commands:'))
        .split('\n\n')[0]!
        .matchAll(/^ {2}(\S+)/gm),
    ]
      .map((m) => m[1]!)
      .filter((name) => name !== 'help');
  const help = async (command: string[]) => ({ command, ...(await cli(...command, '--help')) });
  const top = await help([]);
  const commands = await Promise.all(names(top.stdout).map((name) => help([name])));
  const subcommands = await Promise.all(
    commands.flatMap(({ command, stdout }) => (stdout.includes('Commands:') ? names(stdout).map((sub) => help([...command, sub])) : [])),
  );
  return [top, ...commands, ...subcommands];
}

describe('help texts', () => {
  it('every command has a --help within 80 columns', { timeout: 180_000 }, async () => {
    const helps = await everyHelp();
    // run, health, config, config check, check, fix, audit, audit verify, replay, doctor, and the top level.
    expect(helps.length).toBeGreaterThanOrEqual(11);
    const tooWide: string[] = [];
    for (const { command, code, stdout } of helps) {
      expect(code, `seqwatch ${command.join(' ')} --help`).toBe(0);
      for (const line of stdout.split('\n')) if (line.length > 80) tooWide.push(`seqwatch ${command.join(' ')} --help: ${line.length}: ${line}`);
    }
    expect(tooWide).toEqual([]);
  });

  it('health and config show examples', async () => {
    for (const command of [['health'], ['config'], ['config', 'check']]) {
      const { stdout } = await cli(...command, '--help');
      expect(stdout, `seqwatch ${command.join(' ')} --help`).toMatch(/Examples?:\n {2}seqwatch /);
    }
  });
});

describe('check and fix arguments', () => {
  let db: TestDatabase;
  let config: string;

  beforeAll(async () => {
    db = await createTestDatabase('usage');
    await db.pool.query(`CREATE TABLE ticket (id serial PRIMARY KEY); CREATE TABLE notes (body text)`);
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-usage-'));
    config = join(dir, 'seqwatch.yaml');
    writeFileSync(
      config,
      stringify({ database: { url: db.url }, sources: [{ path: join(dir, 'pg.log') }], audit: { path: join(dir, 'audit.jsonl') }, state_dir: dir }),
    );
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('check --table with a table that does not exist names it and exits 3 (UNKNOWN), not 0', async () => {
    const result = await cli('check', '-c', config, '--table', 'no_such_table');
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('no_such_table');
    expect(result.stderr).toMatch(/no table no_such_table/);
    // A table with no sequence-fed column cannot be checked either: said the same way.
    const plain = await cli('check', '-c', config, '--table', 'ticket', '--table', 'notes', '--json');
    expect(plain.code).toBe(3);
    expect(plain.stderr).toMatch(/notes: no sequence-fed column/);
    // A known table alone is checked as before.
    expect((await cli('check', '-c', config, '--table', 'ticket')).code).toBe(0);
  });

  it('reads the password from a systemd credential under the unit, and says what is missing outside it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-credential-'));
    const path = join(dir, 'seqwatch.yaml');
    writeFileSync(
      path,
      stringify({
        database: { url: db.url, password_credential: 'db_password' },
        sources: [{ path: join(dir, 'pg.log') }],
        audit: { path: join(dir, 'audit.jsonl') },
        state_dir: dir,
      }),
    );
    const outside = await cli('check', '-c', path, '--table', 'ticket');
    expect(outside.code).toBe(3);
    expect(outside.stderr).toContain('database.password_credential db_password: $CREDENTIALS_DIRECTORY is not set');
    const credentials = join(dir, 'credentials');
    mkdirSync(credentials);
    const missing = await cliWith({ CREDENTIALS_DIRECTORY: credentials }, 'check', '-c', path, '--table', 'ticket');
    expect(missing.stderr).toContain(
      `${join(credentials, 'db_password')}: cannot read the credential database.password_credential (LoadCredential=db_password:... in the unit)`,
    );
    writeFileSync(join(credentials, 'db_password'), 'secret\n');
    expect((await cliWith({ CREDENTIALS_DIRECTORY: credentials }, 'check', '-c', path, '--table', 'ticket')).code).toBe(0);
    const summary = await cli('config', 'check', '-c', path);
    expect(summary.stdout).toContain('(password from the credential db_password under systemd)');
  });

  it('fix --all with --table is a usage error (64), before anything is touched', async () => {
    const result = await cli('fix', '--all', '--table', 'ticket', '-c', config);
    expect(result.code).toBe(64);
    expect(result.stderr).toMatch(/--all or --table, not both/);
  });
});

describe('a fresh clone without ../shared', () => {
  it("reads GOTRS's schema from demo/ so the end-to-end heal suite runs", () => {
    // A clone with demo/ and no ../shared beside it.
    const clone = join(mkdtempSync(join(tmpdir(), 'seqwatch-clone-')), 'seqwatch');
    mkdirSync(join(clone, 'demo'), { recursive: true });
    copyFileSync(join(repoRoot, 'demo/gotrs-schema.postgresql.sql'), join(clone, 'demo/gotrs-schema.postgresql.sql'));
    const saved = process.env.SEQWATCH_GOTRS_SCHEMA;
    delete process.env.SEQWATCH_GOTRS_SCHEMA;
    try {
      expect(gotrsSchemaPath(clone)).toBe(join(clone, 'demo/gotrs-schema.postgresql.sql'));
      expect(gotrsSchemaPath(repoRoot)).toMatch(/gotrs-schema\.postgresql\.sql$/);
    } finally {
      if (saved !== undefined) process.env.SEQWATCH_GOTRS_SCHEMA = saved;
    }
    expect(gotrsSchema()).toContain('CREATE TABLE ticket');
  });
});
