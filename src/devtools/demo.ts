/**
 * `npm run demo`: the whole story on a throwaway database, in about ten seconds.
 * A PostgreSQL server is started (this machine's binaries, else npm's build that `npm install`
 * brought, else Docker; SEQWATCH_PG_VERSION=13 ... 18 picks the version), GOTRS's schema loaded, tickets
 * imported with explicit ids, then the help desk's next INSERT fails with a duplicate key error;
 * seqwatch (the built CLI, as a child process) sees it in the server log, heals the sequence, and
 * the retried INSERT succeeds. Everything is removed afterwards.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { stringify } from 'yaml';
import { createGotrsDatabase, importTickets, INSERT_TICKET_SQL } from './gotrs.js';
import { startThrowawayPostgres, type ThrowawayPostgres } from './throwawayPostgres.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
const step = (s: string) => process.stdout.write(`\n${bold('==> ' + s)}\n`);
const say = (s: string) => process.stdout.write(`    ${s}\n`);

async function waitForAudit(path: string, match: (r: Record<string, unknown>) => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(path)) {
      const found = readFileSync(path, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find(match);
      if (found) return found;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no matching audit record in ${path} after ${timeoutMs} ms`);
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'seqwatch-demo-'));
  let server: ThrowawayPostgres | undefined;
  let daemon: ReturnType<typeof spawn> | undefined;
  const cleanup = async () => {
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon!.once('exit', r));
    }
    await server?.destroy();
    rmSync(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    step('Starting a throwaway PostgreSQL server');
    server = await startThrowawayPostgres();
    say(`${server.origin}; server log: ${server.logPath}`);

    step("Loading GOTRS's schema and importing 1,000 tickets with explicit ids (as an OTRS migration does)");
    const url = await createGotrsDatabase(server);
    const app = new pg.Client({ connectionString: url, application_name: 'gotrs-backend' });
    await app.connect();
    await importTickets(app, 1000);
    const seq = (await app.query(`SELECT last_value, is_called FROM ticket_id_seq`)).rows[0];
    say(`ticket: MAX(id) = 1000, ticket_id_seq.last_value = ${seq.last_value} (is_called ${seq.is_called}): the sequence is behind`);

    step('Starting seqwatch on the server log');
    const auditPath = join(work, 'audit.jsonl');
    const configPath = join(work, 'seqwatch.yaml');
    writeFileSync(
      configPath,
      stringify({
        database: { url },
        sources: [{ path: server.logPath, format: 'postgres-stderr', log_line_prefix: server.logLinePrefix }],
        remediation: { debounce_ms: 200, dry_run: false },
        // This story is the log's: the watch (on by default) would heal the import before the INSERT
        // fails, as it should. It is shown by docs/watch.md and test/watch.
        watch: { enabled: false },
        audit: { path: auditPath },
        state_dir: join(work, 'state'),
      }),
    );
    say(dim(`seqwatch run -c ${configPath}`));
    daemon = spawn(process.execPath, [join(root, 'dist/cli/main.js'), 'run', '-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    let daemonLog = '';
    daemon.stderr!.on('data', (c: Buffer) => (daemonLog += c.toString()));
    await waitForAudit(auditPath, (r) => r.event === 'started', 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${daemonLog}`);
    });
    say('following');

    step('The help desk creates a ticket');
    say(dim(INSERT_TICKET_SQL.slice(0, 90) + ' ...'));
    const failedAt = Date.now();
    try {
      await app.query(INSERT_TICKET_SQL, ['demo-1']);
      say('unexpectedly succeeded');
    } catch (error) {
      say(`ERROR:  ${(error as Error).message}`);
    }

    const remediated = await waitForAudit(auditPath, (r) => r.event === 'remediated', 10_000);
    say(`seqwatch healed it ${Date.parse(String(remediated.time)) - failedAt} ms after the error`);

    step('The help desk retries');
    const { rows } = await app.query(INSERT_TICKET_SQL, ['demo-1']);
    say(`INSERT 0 1: the new ticket has id ${rows[0].id}`);
    await app.end();

    step('Stopping seqwatch (SIGTERM)');
    daemon.kill('SIGTERM');
    const code = await new Promise((r) => daemon!.once('exit', r));
    say(`exit code ${code}`);

    step('The audit log');
    for (const line of readFileSync(auditPath, 'utf8').split('\n').filter(Boolean)) {
      const r = JSON.parse(line) as Record<string, unknown>;
      say(`${String(r.time).slice(11, 23)}  ${String(r.event).padEnd(10)}  ${r.msg}`);
    }
    say(dim(`one record as written: ${JSON.stringify(remediated)}`));
    step('Cleaning up: stopping the server, removing every file');
  } finally {
    await cleanup();
  }
  say('done');
}

main().catch((error: Error) => {
  process.stderr.write(`demo failed: ${error.message}\n`);
  process.exit(1);
});
