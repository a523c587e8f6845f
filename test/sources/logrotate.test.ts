import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileFollower } from '../../src/sources/FileFollower.js';

const logrotate = ['/usr/sbin/logrotate', '/usr/bin/logrotate'].find((p) => existsSync(p));

/**
 * Real logrotate runs on a file written at thousands of lines per second by another process, the
 * way an application appends (open, append, close: after a `create` rotation its next line goes to
 * the new file).
 */
async function rotateUnderWriter(mode: 'create' | 'copytruncate') {
  const dir = mkdtempSync(join(tmpdir(), `seqwatch-logrotate-${mode}-`));
  const log = join(dir, 'app.log');
  writeFileSync(log, '');
  const conf = join(dir, 'logrotate.conf');
  writeFileSync(conf, `${log} {\n  rotate 20\n  ${mode}\n  missingok\n  nocompress\n}\n`);
  const seen: string[] = [];
  const follower = new FileFollower(log, { onLine: (line) => seen.push(line.toString()) }, { rotatedIdleMs: 500 });
  await follower.start();
  const TOTAL = 9000;
  const writer = spawn(process.execPath, [
    '-e',
    `const fs = require('fs'); let i = 0;
     const t = setInterval(() => { for (let k = 0; k < 30 && i < ${TOTAL}; k++) fs.appendFileSync(${JSON.stringify(log)}, 'line ' + (i++) + '\\n');
       if (i >= ${TOTAL}) clearInterval(t); }, 10);`,
  ]);
  const written = new Promise((resolve) => writer.once('exit', resolve));
  for (let r = 0; r < 3; r++) {
    await new Promise((resolve) => setTimeout(resolve, 700));
    execFileSync(logrotate!, ['-f', '-s', join(dir, 'state'), conf]);
  }
  await written;
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  await follower.stop();
  // What the files hold now: every line that logrotate itself kept.
  const onDisk = readdirSync(dir)
    .filter((f) => f.startsWith('app.log'))
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean));
  return { seen, onDisk, total: TOTAL, follower };
}

describe.runIf(logrotate)('real logrotate runs under a writer at ~3,000 lines/s', () => {
  it('create: zero lines lost, zero read twice', async () => {
    const { seen, total, follower } = await rotateUnderWriter('create');
    expect(follower.counters.rotations).toBe(3);
    expect(seen.length).toBe(total);
    expect(new Set(seen).size).toBe(total);
  });

  it('copytruncate: zero read twice, and every line logrotate kept was read', async () => {
    const { seen, onDisk, follower } = await rotateUnderWriter('copytruncate');
    expect(follower.counters.truncations).toBe(3);
    expect(new Set(seen).size).toBe(seen.length);
    const read = new Set(seen);
    expect(onDisk.filter((line) => !read.has(line))).toEqual([]);
  });
});
