import { execFile, execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { CLI, freePort, startDaemon, waitFor } from '../helpers/daemon.js';

/*
 * Issue 16 item 9 and issue 10 item 8, with real files, real links and a real second user
 * (`nobody`): seqwatch's own files are never written through a link or into a file someone else
 * planted, are created 0640, and a file another user left behind is one clear sentence, not a
 * stack trace. Root only (CI runs as root): only root can act as another user.
 */
const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** Runs the built CLI, as `user` when given; never throws. */
function run(args: string[], user?: string, timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [command, argv] = user ? ['runuser', ['-u', user, '--', process.execPath, CLI, ...args]] : [process.execPath, [CLI, ...args]];
  return new Promise((resolve) => {
    execFile(command, argv, { env: { ...process.env, NO_COLOR: '1' }, timeout: timeoutMs, killSignal: 'SIGTERM' }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

/** A directory owned by `uid` (0755), as a service's own log or state directory is. */
function directoryOf(uid: number, mode = 0o755): string {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-files-'));
  chmodSync(dir, mode);
  chownSync(dir, uid, uid);
  return dir;
}

function configIn(dir: string, db: TestDatabase, extra: Record<string, unknown> = {}): string {
  const path = join(dir, 'seqwatch.yaml');
  writeFileSync(
    path,
    stringify({
      database: { url: db.url },
      sources: [{ path: join(dir, 'app.log'), format: 'app-text' }],
      audit: { path: join(dir, 'log', 'audit.jsonl') },
      state_dir: join(dir, 'state'),
      ...extra,
    }),
  );
  chmodSync(path, 0o644);
  return path;
}

const noStackTrace = (stderr: string) => expect(stderr).not.toMatch(/^\s+at /m);

describe.runIf(asRoot)('the files seqwatch writes', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('files');
    await db.pool.query('CREATE TABLE ticket (id bigserial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 5)');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('never writes through a link planted by the owner of the directory, even as root', async () => {
    const victim = join(mkdtempSync(join(tmpdir(), 'seqwatch-victim-')), 'shadow');
    writeFileSync(victim, 'root:secret\n', { mode: 0o600 });
    // nobody owns the directories and plants links where seqwatch will write.
    const dir = directoryOf(NOBODY);
    for (const sub of ['log', 'state', 'state/checkpoints']) {
      mkdirSync(join(dir, sub));
      chownSync(join(dir, sub), NOBODY, NOBODY);
    }
    const config = configIn(dir, db);
    symlinkSync(victim, join(dir, 'log', 'audit.jsonl'));
    const refused = await run(['run', '-c', config]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`refusing the audit log ${join(dir, 'log', 'audit.jsonl')}: it is a symbolic link`);
    noStackTrace(refused.stderr);
    expect(readFileSync(victim, 'utf8')).toBe('root:secret\n');

    // The audit path is clean now; the health file's and checkpoints' names are planted instead
    // (the old fixed temporary names, and the files themselves).
    execFileSync('rm', [join(dir, 'log', 'audit.jsonl')]);
    for (const name of ['health.json.tmp', 'health.json']) symlinkSync(victim, join(dir, 'state', name));
    writeFileSync(join(dir, 'app.log'), '');
    const daemon = await startDaemon({
      database: { url: db.url },
      sources: [{ path: join(dir, 'app.log'), format: 'app-text', start_at: 'beginning' }],
      audit: { path: join(dir, 'log', 'audit.jsonl') },
      state_dir: join(dir, 'state'),
    });
    await waitFor('the health file', () => !lstatSync(join(dir, 'state', 'health.json')).isSymbolicLink(), 15_000);
    expect(await daemon.stop()).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('root:secret\n');
    expect(daemon.stderr()).toContain('seqwatch runs as root');
    expect(daemon.stderr()).toMatch(/directory .* belongs to uid 65534/);

    // What it created: 0640, regular files.
    const modes = [
      join(dir, 'log', 'audit.jsonl'),
      join(dir, 'state', 'health.json'),
      ...readdirSync(join(dir, 'state', 'checkpoints')).map((f) => join(dir, 'state', 'checkpoints', f)),
    ].map((file) => (statSync(file).mode & 0o777).toString(8));
    expect(modes.length).toBeGreaterThanOrEqual(3);
    expect(new Set(modes)).toEqual(new Set(['640']));
  });

  it('refuses an audit file that is not a regular file of its own: a FIFO, a hard link, a file another user owns', async () => {
    const dir = directoryOf(0);
    const config = configIn(dir, db);
    mkdirSync(join(dir, 'log'));
    const audit = join(dir, 'log', 'audit.jsonl');
    execFileSync('mkfifo', [audit]);
    const fifo = await run(['run', '-c', config]);
    expect(fifo.stderr).toMatch(/refusing the audit log .*: it is not a regular file/);
    execFileSync('rm', [audit]);
    writeFileSync(join(dir, 'other'), '');
    linkSync(join(dir, 'other'), audit);
    expect((await run(['run', '-c', config])).stderr).toMatch(/refusing the audit log .*: it has 2 hard links/);
    execFileSync('rm', [audit]);
    writeFileSync(audit, '', { mode: 0o666 });
    chownSync(audit, NOBODY, NOBODY);
    const foreign = await run(['run', '-c', config]);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/refusing the audit log .*: it belongs to uid 65534, not to root \(uid 0\)/);
    noStackTrace(foreign.stderr);
  });

  it('warns when a directory it writes to is writable by everyone', async () => {
    const dir = directoryOf(0, 0o777);
    chmodSync(dir, 0o777);
    writeFileSync(join(dir, 'app.log'), '');
    const daemon = await startDaemon({
      database: { url: db.url },
      sources: [{ path: join(dir, 'app.log'), format: 'app-text' }],
      audit: { path: join(dir, 'audit.jsonl') },
      state_dir: join(dir, 'state'),
    });
    await daemon.stop();
    expect(daemon.stderr()).toMatch(/the audit log directory .* is writable by every user \(mode 0777\)/);
  });

  // Issue 10 item 8.
  it('a `seqwatch fix` run as root before the first start leaves an audit file the service user can go on with', async () => {
    const dir = directoryOf(NOBODY);
    const config = configIn(dir, db);
    for (const sub of ['log', 'state']) {
      mkdirSync(join(dir, sub));
      chownSync(join(dir, sub), NOBODY, NOBODY);
    }
    writeFileSync(join(dir, 'app.log'), '');
    chownSync(join(dir, 'app.log'), NOBODY, NOBODY);
    const fixed = await run(['fix', '--all', '-c', config]);
    expect(fixed.code).toBe(0);
    const audit = join(dir, 'log', 'audit.jsonl');
    expect(statSync(audit)).toMatchObject({ uid: NOBODY, gid: NOBODY });
    expect(statSync(audit).mode & 0o777).toBe(0o640);
    // The service, as its own unprivileged user, starts and writes on (killed after it has).
    const service = run(['run', '-c', config], 'nobody', 8_000);
    await waitFor('the service started', () => readFileSync(audit, 'utf8').includes('"event":"started"'), 15_000);
    const ended = await service;
    expect(ended.stderr).not.toMatch(/EACCES|permission denied/);
    expect((await run(['audit', 'verify', '-f', audit])).code).toBe(0);
  });

  it('an audit file root left behind: one sentence naming the file and the chown to run, no stack trace', async () => {
    const dir = directoryOf(NOBODY);
    const config = configIn(dir, db);
    mkdirSync(join(dir, 'log'));
    chownSync(join(dir, 'log'), NOBODY, NOBODY);
    const audit = join(dir, 'log', 'audit.jsonl');
    writeFileSync(audit, '', { mode: 0o640 }); // root:root 0640, as an older `seqwatch fix` as root left it
    const started = await run(['run', '-c', config], 'nobody');
    expect(started.code).toBe(1);
    // Its config warnings aside (JSON log lines), the failure is one line.
    expect(
      started.stderr
        .trim()
        .split('\n')
        .filter((line) => !line.startsWith('{')),
    ).toHaveLength(1);
    expect(started.stderr).toContain(
      `seqwatch: cannot open the audit log ${audit}: permission denied for nobody (uid ${NOBODY}): it belongs to uid 0, gid 0, mode 0640;`,
    );
    expect(started.stderr).toContain(`chown ${NOBODY}:${NOBODY} ${audit}`);
    noStackTrace(started.stderr);
    expect(existsSync(join(dir, 'state', 'health.json'))).toBe(false);
  });

  it('a metrics port in use: one sentence naming the port, no stack trace', async () => {
    const port = await freePort();
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      const dir = directoryOf(0);
      const config = configIn(dir, db, { metrics: { listen: `127.0.0.1:${port}` } });
      const started = await run(['run', '-c', config]);
      expect(started.code).toBe(1);
      expect(started.stderr).toContain(`seqwatch: cannot serve metrics on 127.0.0.1:${port}: another program listens there already`);
      noStackTrace(started.stderr);
    } finally {
      squatter.close();
    }
  });
});
