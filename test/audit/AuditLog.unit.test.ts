import { mkdtempSync, readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog, type AuditRecord } from '../../src/audit/AuditLog.js';
import { readAuditLines } from '../../src/audit/readAuditFiles.js';
import { verifyChain } from '../../src/audit/verifyChain.js';

describe('AuditLog records (no server)', () => {
  it('a listener receives the record as written: the same time, and which daemon acted (host, pid)', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'seqwatch-auditlog-')), 'audit.jsonl');
    const audit = new AuditLog(path);
    const heard: AuditRecord[] = [];
    audit.onRecord((record) => heard.push(record));
    audit.write(
      'remediated',
      { table: 'public.ticket', sequence: 'public.ticket_id_seq', before: '1', after: '100', trigger: { source: 'test.log', constraint: 'ticket_pkey' } },
      'moved it',
    );
    audit.write('alert', { reason: 'jump_guard', max_id: null }, 'a "quoted" \\ name');
    audit.close();
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    expect(heard).toHaveLength(2);
    expect(heard[0]).toMatchObject({ host: hostname(), pid: process.pid, event: 'remediated', table: 'public.ticket', msg: 'moved it' });
    heard.forEach((record, i) => {
      const written = JSON.parse(lines[i]!) as AuditRecord & { seq: number; prev: string; hash: string };
      const { seq, prev, hash, ...rest } = written;
      expect(rest).toEqual(record);
      expect(seq).toBe(i + 1);
      expect(typeof prev === 'string' && /^[0-9a-f]{64}$/.test(hash)).toBe(true);
    });
    // The file's layout, as before pino left: time, host, pid, event, the fields, msg, then the chain.
    expect(lines[0]).toMatch(
      new RegExp(
        `^\\{"time":"[^"]+","host":${JSON.stringify(hostname())},"pid":${process.pid},"event":"remediated","table":"public.ticket",.*,"msg":"moved it","seq":1,"prev":"","hash":"[0-9a-f]{64}"\\}$`,
      ),
    );
    expect(verifyChain(readAuditLines([path]))).toMatchObject({ records: 2, last: { seq: 2 } });
    expect(verifyChain(readAuditLines([path])).problem).toBeUndefined();
  });
});
