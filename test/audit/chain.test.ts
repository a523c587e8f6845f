import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog, type AuditAnchor } from '../../src/audit/AuditLog.js';
import { initSealing, sealKeyFileFor } from '../../src/audit/seal.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runCli as cli, startDaemon } from '../helpers/daemon.js';

/*
 * Issue 16 item 10: what `seqwatch audit verify` must notice, done as someone with write access to
 * the audit file would do it: cut the newest records, cut the oldest, empty the file, remove a
 * record and recompute every hash after it.
 */
const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean);
const write = (path: string, text: string[]) => writeFileSync(path, text.map((l) => l + '\n').join(''));

/** An audit log of `n` records, as the daemon writes it; returns its path and the anchors it handed out. */
function auditLog(n: number, seal?: { epochSeconds: number }): { path: string; anchors: AuditAnchor[]; verificationKey?: string; log: AuditLog } {
  const path = join(mkdtempSync(join(tmpdir(), 'seqwatch-chain-')), 'audit.jsonl');
  const verificationKey = seal ? initSealing(path, seal.epochSeconds) : undefined;
  const log = new AuditLog(path);
  const anchors: AuditAnchor[] = [];
  log.onAnchor((a) => anchors.push(a));
  log.write('started', {}, 'following 1 source(s)');
  for (let i = 2; i <= n; i++) log.write('remediated', { table: 'public.ticket', before: String(i), after: String(i * 10) }, `moved ${i}`);
  return { path, anchors, log, ...(verificationKey ? { verificationKey } : {}) };
}

/** What someone without a key can do: recompute seq, prev and hash of every record from `from` on. */
function rehash(text: string[], sealWith?: { key: Buffer; epoch: number }): string[] {
  let prev = '';
  return text.map((line, i) => {
    const record = JSON.parse(line) as Record<string, unknown>;
    delete record.hash;
    delete record.seal;
    record.seq = i + 1;
    delete record.prev;
    const body = JSON.stringify({ ...record, prev });
    const hash = createHash('sha256').update(body).digest('hex');
    prev = hash;
    const seal = sealWith ? `,"seal":"${sealWith.epoch}-${createHmac('sha256', sealWith.key).update(hash).digest('hex')}"` : '';
    return `${body.slice(0, -1)},"hash":"${hash}"${seal}}`;
  });
}

describe('audit verify against someone who can write the audit file', () => {
  it('numbers every record and hands out anchors: the first record, and the last one at close', () => {
    const { path, anchors, log } = auditLog(5);
    log.close();
    const records = lines(path).map((l) => JSON.parse(l) as { seq: number; hash: string });
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(anchors.map((a) => a.seq)).toEqual([1, 5]);
    expect(anchors.at(-1)!.hash).toBe(records.at(-1)!.hash);
  });

  it('the newest records cut off: noticed given an anchor from the daemon log', async () => {
    const { path, anchors, log } = auditLog(10);
    log.close();
    const last = anchors.at(-1)!;
    write(path, lines(path).slice(0, 7));
    const without = await cli('audit', 'verify', '-f', path);
    // Without an anchor a prefix of the chain is a valid chain: verify says where it ends, no more.
    expect(without.stdout).toContain('last record: #7');
    const given = await cli('audit', 'verify', '-f', path, '--anchor', `${last.seq}:${last.hash}`);
    expect(given.code).toBe(1);
    expect(given.stdout).toMatch(/end_missing .*record #10 was anchored, but the chain ends at #7/);
  });

  it('the oldest records cut off: noticed; --allow-missing-start accepts files rotated away on purpose', async () => {
    const { path, log } = auditLog(10);
    log.close();
    write(path, lines(path).slice(3));
    const cut = await cli('audit', 'verify', '-f', path);
    expect(cut.code).toBe(1);
    expect(cut.stdout).toMatch(/:1: start_missing \(#4 .*records #1 to #3 are not here/);
    expect((await cli('audit', 'verify', '-f', path, '--allow-missing-start')).code).toBe(0);
  });

  it('the file emptied: noticed, and the daemon writing on afterwards shows the hole', async () => {
    const { path, log } = auditLog(10);
    truncateSync(path, 0);
    const empty = await cli('audit', 'verify', '-f', path);
    expect(empty.code).toBe(1);
    expect(empty.stdout).toMatch(/^empty: there is no record at all/);
    log.write('in_sync', { table: 'public.ticket' }, 'the daemon goes on');
    log.close();
    expect(JSON.parse(lines(path)[0]!)).toMatchObject({ seq: 11 });
    expect((await cli('audit', 'verify', '-f', path)).stdout).toMatch(/start_missing \(#11 /);
  });

  it('a record removed and every hash after it recomputed: noticed given an anchor, or with the sealing key', async () => {
    const { path, anchors, log } = auditLog(10);
    log.close();
    const text = lines(path);
    text.splice(4, 1);
    write(path, rehash(text));
    // Without a secret and without an anchor, a rewritten chain is a valid chain: the limit, said in --help.
    expect((await cli('audit', 'verify', '-f', path)).code).toBe(0);
    const last = anchors.at(-1)!;
    const anchored = await cli('audit', 'verify', '-f', path, '--anchor', `${last.seq}:${last.hash}`);
    expect(anchored.code).toBe(1);
    expect(anchored.stdout).toMatch(/end_missing/);
    // An anchor the rewrite passed through: the record there is not the one anchored.
    const first = anchors[0]!;
    const middle = JSON.parse(lines(path)[0]!) as { seq: number; hash: string };
    expect(middle.hash).toBe(first.hash);
    const original = lines(path);
    original[0] = original[0]!.replace('following 1 source(s)', 'following 2 source(s)');
    write(path, rehash(original));
    expect((await cli('audit', 'verify', '-f', path, '--anchor', `${first.seq}:${first.hash}`)).stdout).toMatch(/rewritten \(#1 /);
  });

  it('sealed: whoever takes the key file later cannot rewrite earlier epochs, even re-sealing everything', async () => {
    const { path, log, verificationKey } = auditLog(3, { epochSeconds: 1 });
    await new Promise((r) => setTimeout(r, 2_300));
    log.write('in_sync', { table: 'public.queue' }, 'two epochs later');
    log.close();
    const good = await cli('audit', 'verify', '-f', path, '--verification-key', verificationKey!);
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(/4 sealed record\(s\), seals good up to epoch [2-9]/);

    // The attacker: the key file as it is now (the current epoch's key only), a record removed,
    // every hash and seal recomputed with that key.
    const stolen = JSON.parse(readFileSync(sealKeyFileFor(path), 'utf8')) as { epoch: number; key: string };
    const text = lines(path);
    text.splice(1, 1);
    write(path, rehash(text, { key: Buffer.from(stolen.key, 'hex'), epoch: stolen.epoch }));
    expect((await cli('audit', 'verify', '-f', path)).code).toBe(0);
    const caught = await cli('audit', 'verify', '-f', path, '--verification-key', verificationKey!);
    expect(caught.code).toBe(1);
    expect(caught.stdout).toMatch(/:1: late_seal .*no audit_unwritable alert follows/);
    // The key file holds only the current epoch's key, mode 0600.
    expect(stolen.epoch).toBeGreaterThanOrEqual(2);
    expect(readFileSync(sealKeyFileFor(path), 'utf8')).not.toContain(verificationKey!.split('/')[0]!);
  });

  it('a rotation carries number and hash into the next file, also across a restart', async () => {
    const { path, log } = auditLog(4);
    renameSync(path, `${path}.1`);
    log.reopen();
    log.write('in_sync', {}, 'after the rotation');
    log.close();
    renameSync(path, `${path}.2`);
    renameSync(`${path}.1`, `${path}.3`);
    renameSync(`${path}.2`, `${path}.1`);
    renameSync(`${path}.3`, `${path}.2`);
    const restarted = new AuditLog(path); // the current file does not exist: the chain goes on from .1
    restarted.write('started', {}, 'restarted');
    restarted.close();
    expect(JSON.parse(lines(path)[0]!)).toMatchObject({ seq: 6 });
    const all = await cli('audit', 'verify', '-f', `${path}.2`, `${path}.1`, path);
    expect(all.stdout).toMatch(/^ok: 6 records \(#1\.\.#6\) in 3 file/);
    expect(dirname(path)).toBeTruthy();
  });
});

describe('the daemon anchors its chain outside the file', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('anchor');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('logs the anchor of its first record and of its stopped record; verify accepts it', async () => {
    const daemon = await startDaemon({ database: { url: db.url }, sources: [{ path: join(tmpdir(), 'seqwatch-no-such-dir', 'app.log'), format: 'app-text' }] });
    expect(await daemon.stop()).toBe(0);
    const anchors = [...daemon.stderr().matchAll(/"audit_anchor":"(\d+):([0-9a-f]{64})"/g)].map((m) => ({ seq: Number(m[1]), hash: m[2]! }));
    const records = lines(daemon.auditPath).map((l) => JSON.parse(l) as { seq: number; hash: string; event: string });
    expect(anchors[0]).toEqual({ seq: 1, hash: records[0]!.hash });
    expect(anchors.at(-1)).toEqual({ seq: records.at(-1)!.seq, hash: records.at(-1)!.hash });
    expect(records.at(-1)!.event).toBe('stopped');
    const last = anchors.at(-1)!;
    expect((await cli('audit', 'verify', '-f', daemon.auditPath, '--anchor', `${last.seq}:${last.hash}`)).code).toBe(0);
  });
});
