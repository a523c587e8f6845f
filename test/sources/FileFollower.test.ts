import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, unlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileFollower, isLocalFileSystem, type FileFollowerOptions, type LinePosition } from '../../src/sources/FileFollower.js';
import { waitFor } from '../helpers/daemon.js';

const followers: FileFollower[] = [];
afterEach(async () => {
  await Promise.all(followers.splice(0).map((f) => f.stop()));
});

function dir(): string {
  return mkdtempSync(join(tmpdir(), 'seqwatch-follow-'));
}

async function follow(path: string, options: FileFollowerOptions = {}) {
  const lines: string[] = [];
  const positions: LinePosition[] = [];
  const follower = new FileFollower(
    path,
    {
      onLine: (line, position) => {
        lines.push(line.toString('utf8'));
        positions.push(position);
      },
    },
    { pollIntervalMs: 20, rotatedIdleMs: 200, ...options },
  );
  followers.push(follower);
  await follower.start();
  return { follower, lines, positions };
}

const until = (what: string, lines: string[], count: number) => waitFor(what, () => lines.length >= count, 5_000);

describe('FileFollower', () => {
  it('reads synchronously only on a local file system: a hung NFS or FUSE server must not stop the event loop', () => {
    for (const local of [0xef53 /* ext4 */, 0x58465342 /* xfs */, 0x9123683e /* btrfs */, 0x01021994 /* tmpfs */, 0x794c7630 /* overlayfs */])
      expect(isLocalFileSystem(local)).toBe(true);
    for (const remote of [0x6969 /* NFS */, 0xff534d42 /* CIFS */, 0xfe534d42 /* SMB2 */, 0x65735546 /* FUSE */, 0x00c36400 /* Ceph */, 0x01021997 /* 9p */])
      expect(isLocalFileSystem(remote)).toBe(false);
  });

  it('starts at the end of an existing file, like tail -F', async () => {
    const path = join(dir(), 'a.log');
    writeFileSync(path, 'old 1\nold 2\n');
    const { lines, positions } = await follow(path);
    appendFileSync(path, 'new 1\nnew 2\n');
    await until('two lines', lines, 2);
    expect(lines).toEqual(['new 1', 'new 2']);
    expect(positions[0]).toEqual({ offset: 12, boundary: 'start' });
  });

  it('can start at the beginning, with line numbers', async () => {
    const path = join(dir(), 'a.log');
    writeFileSync(path, 'one\ntwo\n');
    const { lines, positions } = await follow(path, { startAt: 'beginning' });
    await until('two lines', lines, 2);
    expect(positions).toEqual([
      { offset: 0, line: 1, boundary: 'start' },
      { offset: 4, line: 2 },
    ]);
  });

  it('waits for a file that does not exist yet and reads it from its start', async () => {
    const path = join(dir(), 'later.log');
    const { lines } = await follow(path);
    await new Promise((r) => setTimeout(r, 60));
    writeFileSync(path, 'first\nsecond\n');
    await until('two lines', lines, 2);
    expect(lines).toEqual(['first', 'second']);
  });

  it('keeps a line written in two parts whole', async () => {
    const path = join(dir(), 'a.log');
    writeFileSync(path, '');
    const { lines } = await follow(path);
    appendFileSync(path, 'half a ');
    await new Promise((r) => setTimeout(r, 80));
    expect(lines).toEqual([]);
    appendFileSync(path, 'line\r\nnext\n');
    await until('two lines', lines, 2);
    expect(lines).toEqual(['half a line', 'next']);
  });

  it('survives rename-and-create rotation, draining the old file, including lines written to it after the rename', async () => {
    const d = dir();
    const path = join(d, 'pg.log');
    writeFileSync(path, '');
    const { lines, follower } = await follow(path);
    appendFileSync(path, 'a1\na2\n');
    await until('a2', lines, 2);
    renameSync(path, join(d, 'pg.log.1'));
    appendFileSync(join(d, 'pg.log.1'), 'a3 late write to the old file\n');
    writeFileSync(path, 'b1\n');
    appendFileSync(path, 'b2\n');
    await until('b2', lines, 5);
    expect(lines).toEqual(['a1', 'a2', 'a3 late write to the old file', 'b1', 'b2']);
    expect(follower.counters.rotations).toBe(1);
  });

  it('survives copytruncate, even when the file grew past the old position before the next poll', async () => {
    const d = dir();
    const path = join(d, 'pg.log');
    writeFileSync(path, '');
    const { lines, follower } = await follow(path, { pollIntervalMs: 60_000 });
    appendFileSync(path, 'x'.repeat(50) + '\n');
    await until('first', lines, 1);
    copyFileSync(path, join(d, 'pg.log.1'));
    truncateSync(path, 0);
    // More than was read before, so the size alone cannot tell.
    appendFileSync(path, 'after truncate, a longer line than before the rotation happened\n');
    await until('after truncate', lines, 2);
    expect(lines[1]).toBe('after truncate, a longer line than before the rotation happened');
    expect(follower.counters.truncations).toBe(1);
  });

  it('survives delete and recreate', async () => {
    const path = join(dir(), 'pg.log');
    writeFileSync(path, '');
    const { lines } = await follow(path);
    appendFileSync(path, 'before\n');
    await until('before', lines, 1);
    unlinkSync(path);
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(path, 'after\n');
    await until('after', lines, 2);
    expect(lines).toEqual(['before', 'after']);
  });

  it('skips and counts a line over the limit, without losing the next one', async () => {
    const path = join(dir(), 'a.log');
    writeFileSync(path, '');
    const { lines, follower } = await follow(path, { maxLineBytes: 1024 });
    appendFileSync(path, 'y'.repeat(300_000));
    await new Promise((r) => setTimeout(r, 60));
    appendFileSync(path, 'y'.repeat(300_000) + '\nshort\n' + 'z'.repeat(2000) + '\nend\n');
    await until('end', lines, 2);
    expect(lines).toEqual(['short', 'end']);
    expect(follower.counters.oversizedLines).toBe(2);
  });

  it('passes invalid UTF-8 and NUL bytes through as bytes', async () => {
    const path = join(dir(), 'a.log');
    writeFileSync(path, '');
    const received: Buffer[] = [];
    const follower = new FileFollower(path, { onLine: (line) => received.push(Buffer.from(line)) }, { pollIntervalMs: 20 });
    followers.push(follower);
    await follower.start();
    appendFileSync(path, Buffer.from([0xff, 0x00, 0xc3, 0x0a, 0x41, 0x0a]));
    await waitFor('two lines', () => received.length >= 2, 5_000);
    expect(received).toEqual([Buffer.from([0xff, 0x00, 0xc3]), Buffer.from('A')]);
  });

  it('loses nothing across rename rotations under a steady writer (5,000 lines/s, a rotation every 200 ms)', async () => {
    const d = dir();
    const path = join(d, 'busy.log');
    writeFileSync(path, '');
    const { lines } = await follow(path);
    const total = 5000;
    for (let i = 0; i < total; i++) {
      appendFileSync(path, `line ${i}\n`);
      if (i % 1000 === 999) {
        renameSync(path, join(d, `busy.log.${i}`));
        writeFileSync(path, '');
      }
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 10));
    }
    await until('all lines', lines, total);
    expect(lines).toEqual(Array.from({ length: total }, (_, i) => `line ${i}`));
    rmSync(d, { recursive: true, force: true });
  });
});
