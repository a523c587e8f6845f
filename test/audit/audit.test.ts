import { createHash } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/AuditLog.js';
import { auditFiles, readAuditLines } from '../../src/audit/readAuditFiles.js';
import { verifyChain } from '../../src/audit/verifyChain.js';
import { parseWhen } from '../../src/cli/commands/audit.js';
import { CLI, runCli as cli } from '../helpers/daemon.js';

/** An audit log with a few decisions, as the daemon and `fix` write them. */
function sampleLog(records = 6): string {
  const path = join(mkdtempSync(join(tmpdir(), 'seqwatch-audit-')), 'audit.jsonl');
  const audit = new AuditLog(path);
  audit.write('started', {}, 'following 1 source(s)');
  for (let i = 1; i < records; i++) {
    const table = i % 2 ? 'public.ticket' : '"Billing"."Invoice Lines"';
    audit.write(
      'remediated',
      { table, sequence: `${table}_seq`, column: 'id', before: String(i), after: String(i * 100), max_id: String(i * 100) },
      `moved ${i}`,
    );
  }
  audit.close();
  return path;
}

const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean);

describe('the audit hash chain', () => {
  it('chains every record to the one before, across restarts, writers and rotations', () => {
    const path = sampleLog(3);
    const second = new AuditLog(path); // a restart: continues from the file's last record
    second.write('started', {}, 'again');
    const other = new AuditLog(path); // `seqwatch fix` while the daemon runs
    other.write('in_sync', { table: 'public.queue' }, 'fix');
    second.write('alert', { table: 'public.valid', reason: 'sequence_exhausted' }, 'daemon again');
    renameSync(path, `${path}.1`);
    second.reopen();
    second.write('remediated', { table: 'public.ticket', before: '1', after: '2' }, 'after rotation');
    second.close();
    other.close();
    const files = auditFiles(path);
    expect(files).toEqual([`${path}.1`, path]);
    expect(verifyChain(readAuditLines(files))).toMatchObject({ records: 7, first: 1, last: { seq: 7 } });
    expect(verifyChain(readAuditLines(files)).problem).toBeUndefined();
  });

  it('names an edited record', () => {
    const path = sampleLog();
    const text = lines(path);
    text[3] = text[3]!.replace('"after":"300"', '"after":"3"');
    writeFileSync(path, text.join('\n') + '\n');
    expect(verifyChain(readAuditLines([path])).problem).toMatchObject({ kind: 'altered', at: { line: 4 } });
  });

  it('names where a record was deleted', () => {
    const path = sampleLog();
    const text = lines(path);
    text.splice(2, 1);
    writeFileSync(path, text.join('\n') + '\n');
    expect(verifyChain(readAuditLines([path])).problem).toMatchObject({ kind: 'removed', at: { line: 3 } });
  });

  it('names an inserted record, even one with a correctly computed hash', () => {
    const path = sampleLog();
    const text = lines(path);
    const prev = /"hash":"([0-9a-f]{64})"/.exec(text[1]!)![1];
    const body = `{"time":"2026-11-27T03:00:00.000Z","event":"remediated","table":"public.ticket","before":"1","after":"99","msg":"forged","seq":3,"prev":"${prev}"}`;
    const forged = `${body.slice(0, -1)},"hash":"${createHash('sha256').update(body).digest('hex')}"}`;
    text.splice(2, 0, forged);
    writeFileSync(path, text.join('\n') + '\n');
    expect(verifyChain(readAuditLines([path])).problem).toMatchObject({ kind: 'inserted', at: { line: 3 } });
  });

  it('seqwatch audit verify: exit 0 when intact, 1 naming file and line when not', async () => {
    const path = sampleLog();
    expect(await cli('audit', 'verify', '-f', path)).toMatchObject({ code: 0, stdout: expect.stringContaining('ok: 6 records') });
    const text = lines(path);
    text[4] = text[4]!.replace('moved 4', 'moved 5');
    writeFileSync(path, text.join('\n') + '\n');
    const broken = await cli('audit', 'verify', '-f', path);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`${path}:5: altered (`);
  });
});

describe('seqwatch audit', () => {
  it('read by a pipe that closes early (seqwatch audit | head -1): no stack trace, its own exit code', async () => {
    const path = sampleLog(3000);
    for (const args of [
      ['audit', '-f', path],
      ['audit', '-f', path, '--json'],
    ]) {
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      // As head -1 does: the first bytes read, then the pipe closed under the writer.
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      child.stdout.destroy();
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(stderr, args.join(' ')).toBe('');
      expect(code, args.join(' ')).toBe(0);
    }
  });

  it('reviews rotated and gzip-compressed files as one log, with filters and a per-table summary', async () => {
    const path = sampleLog(5);
    renameSync(path, `${path}.1`);
    writeFileSync(`${path}.2.gz`, gzipSync(readFileSync(`${path}.1`)));
    // .2.gz is the oldest: the same records as .1 here, which is enough to see both are read.
    const again = new AuditLog(path);
    again.write('alert', { table: 'public.valid', reason: 'sequence_exhausted' }, 'needs a person');
    again.close();

    const all = await cli('audit', '-f', `${path}.2.gz`, `${path}.1`, path);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^TIME \(UTC\)\s+EVENT\s+TABLE\s+CHANGE\s+WHAT AND WHY$/m);
    expect(all.stdout).toMatch(/remediated\s+public\.ticket\s+1 -> 100\s+moved 1/);
    expect(all.stdout).toMatch(/alert\s+public\.valid\s+sequence_exhausted\s+needs a person/);
    expect(all.stdout).toMatch(/^public\.ticket\s+4\s+0\s+0\s+0\s+\S+ \S+ 3 -> 300$/m);
    expect(all.stdout).toContain('11 records from 3 file(s)');

    const filtered = await cli('audit', '-f', `${path}.1`, path, '--table', 'Billing.Invoice Lines', '--event', 'remediated', '--json');
    const records = filtered.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(records.slice(0, -1).map((r: { table: string }) => r.table)).toEqual(['"Billing"."Invoice Lines"', '"Billing"."Invoice Lines"']);
    expect(records.at(-1).summary.events).toEqual({ remediated: 2 });

    expect((await cli('audit', '-f', path, '--since', '1h')).stdout).toContain('needs a person');
    expect((await cli('audit', '-f', path, '--until', '2000-01-01')).stdout).toContain('0 records');
    expect((await cli('audit', '-f', path, '--since', 'yesterday-ish')).code).toBe(64);
  });

  it('understands relative and absolute times', () => {
    const now = Date.parse('2026-11-27T12:00:00Z');
    expect(parseWhen('2h', now)).toBe(Date.parse('2026-11-27T10:00:00Z'));
    expect(parseWhen('7d', now)).toBe(Date.parse('2026-11-20T12:00:00Z'));
    expect(parseWhen('2026-11-27T03:00:00Z', now)).toBe(Date.parse('2026-11-27T03:00:00Z'));
  });
});

/** A real file system of `kib` KiB (tmpfs), for a disk that really fills; root only. */
function smallFileSystem(kib: number): { dir: string; fill(): void; free(): void; unmount(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-audit-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k,mode=0755`, 'tmpfs', dir]);
  const filler = join(dir, 'filler');
  return {
    dir,
    fill: () => {
      try {
        writeFileSync(filler, Buffer.alloc(kib * 1024));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      }
    },
    free: () => rmSync(filler, { force: true }),
    unmount: () => execFileSync('umount', ['-l', dir]),
  };
}

describe.runIf(process.getuid?.() === 0)('an audit log that cannot be written (a real full file system)', () => {
  it('holds records in order, tells its listeners, and writes them with an alert once it can', () => {
    const disk = smallFileSystem(256);
    try {
      const path = join(disk.dir, 'audit.jsonl');
      const audit = new AuditLog(path, 3);
      const trouble: boolean[] = [];
      audit.onTrouble((state) => trouble.push(state.writable));
      audit.write('started', {}, 'first');
      // logrotate moves the file away, and the disk fills: the new file gets no block at all.
      renameSync(path, `${path}.1`);
      disk.fill();
      audit.reopen();
      for (let i = 1; i <= 5; i++) audit.write('remediated', { table: 'public.ticket', after: String(i) }, `fix ${i}`);
      expect(audit.writeState).toMatchObject({ writable: false, held: 3, lost: 2 });
      expect(audit.writeState.error).toMatch(/ENOSPC/);
      expect(trouble).toEqual([false]);
      expect(audit.retry()).toBe(false);

      disk.free();
      expect(audit.retry()).toBe(true);
      expect(audit.writeState).toMatchObject({ writable: true, held: 0 });
      expect(trouble).toEqual([false, true]);
      const records = lines(path).map((line) => JSON.parse(line) as { event: string; after?: string; reason?: string; lost?: number });
      expect(records.map((r) => r.after ?? r.reason ?? r.event)).toEqual(['1', '2', '3', 'audit_unwritable']);
      expect(records.at(-1)).toMatchObject({ event: 'alert', lost: 2 });
      // The chain went on from the rotated file into the new one.
      const report = verifyChain(readAuditLines([`${path}.1`, path]));
      expect(report).toMatchObject({ records: 5, first: 1, last: { seq: 5 } });
      expect(report.problem).toBeUndefined();
      audit.close();
    } finally {
      disk.unmount();
    }
  });
});
