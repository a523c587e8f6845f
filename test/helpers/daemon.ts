import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { AuditRecord } from '../../src/audit/AuditLog.js';
import { repoRoot } from './db.js';

export { freePort } from '../../src/devtools/throwawayPostgres.js';

export const CLI = join(repoRoot, 'dist/cli/main.js');

/** One audit line as read back (the record as AuditLog builds it; its chain fields are read as extra fields). */
export type { AuditRecord };

export function readAudit(path: string): AuditRecord[] {
  if (!existsSync(path)) return [];
  // Records only: a last line without its newline is one the daemon is writing as this reads (a read
  // may see part of a write; CI once failed on such a half line, "Unterminated string in JSON").
  // Any other line that is not JSON still fails the test.
  const lines = readFileSync(path, 'utf8').split('\n').slice(0, -1);
  return lines.filter((line) => line.length > 0).map((line) => JSON.parse(line) as AuditRecord);
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** waitFor with a probe that answers asynchronously (a query, a scrape). */
export async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface RunningDaemon {
  child: ChildProcess;
  dir: string;
  configPath: string;
  auditPath: string;
  stderr: () => string;
  alive: () => boolean;
  audit: () => AuditRecord[];
  waitForAudit(what: string, match: (record: AuditRecord) => boolean, timeoutMs?: number): Promise<AuditRecord>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the built CLI (`seqwatch run`) as a child process with a config made from `config`.
 * With `as`, it runs as that (unprivileged) user and group, with no supplementary groups, as a
 * service user does; its directory (config, state, audit) is handed to that user.
 * The watch (on by default in a real config) is off unless `config.watch` says otherwise: most
 * tests show what the logs make the daemon do, and a watch that healed first would hide it. A
 * test of the defaults passes `watch: {}`.
 */
export async function startDaemon(config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}, as?: { uid: number; gid: number }): Promise<RunningDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-daemon-'));
  // A config may name its own audit file and state_dir (shared by daemons restarted in turn).
  const auditPath = (config.audit as { path?: string } | undefined)?.path ?? join(dir, 'audit.jsonl');
  const configPath = join(dir, 'seqwatch.yaml');
  writeFileSync(configPath, stringify({ audit: { path: auditPath }, state_dir: join(dir, 'state'), watch: { enabled: false }, ...config }));
  if (as) for (const path of [dir, configPath]) chownSync(path, as.uid, as.gid);
  const child = spawn(process.execPath, [CLI, 'run', '-c', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
    ...(as ?? {}),
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const audit = () => readAudit(auditPath);
  const daemon: RunningDaemon = {
    child,
    dir,
    configPath,
    auditPath,
    stderr: () => stderr,
    alive: () => child.exitCode === null && child.signalCode === null,
    audit,
    waitForAudit: (what, match, timeoutMs = 10_000) =>
      waitFor(
        what,
        () => {
          if (child.exitCode !== null || child.signalCode !== null) {
            throw new Error(`daemon exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}:\n${stderr}`);
          }
          return audit().find(match);
        },
        timeoutMs,
      ),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  await daemon.waitForAudit('the started record', (r) => r.event === 'started' && r.pid === child.pid, 20_000);
  return daemon;
}

/** A PostgreSQL stderr line (prefix '%m [%p] ') saying that `constraint` was violated, as an application log might repeat it. */
export function duplicateKeyLine(constraint: string, pid = 4242): string {
  const time = new Date().toISOString().replace('T', ' ').replace('Z', ' UTC');
  return `${time} [${pid}] ERROR:  duplicate key value violates unique constraint "${constraint}"\n`;
}

/** Runs the built CLI to completion (no colour); never throws on a non-zero exit. */
export async function runCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A path inside the repository. */
export const repoRootPath = (path: string): string => join(repoRoot, path);

/** One value of the daemon's /metrics (a metric without labels, or the sum over its labels). */
export async function metricValue(port: number, name: string): Promise<number> {
  const text = await scrape(`http://127.0.0.1:${port}/metrics`);
  let sum = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(match[1]);
  return sum;
}

/**
 * A page of the daemon's metrics server. A connection reset is tried again, twice: fetch reuses a
 * keep-alive socket, which the server may be closing (idle, or its slow-client timeouts running
 * late after a storm held its event loop: seen once in a CI run, the storm test's scrape). A daemon
 * that is gone refuses the connection instead, and that fails at once.
 */
async function scrape(url: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await (await fetch(url)).text();
    } catch (error) {
      if (attempt >= 2 || (error as { cause?: { code?: string } }).cause?.code !== 'ECONNRESET') throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** The resident memory of a process, in MiB (Linux). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) / 1024;
}
