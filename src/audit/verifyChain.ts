import { createHash } from 'node:crypto';
import type { AuditLine } from './readAuditFiles.js';

export interface ChainProblem {
  /** The first record that is not what was written. */
  at: AuditLine;
  kind: 'altered' | 'inserted' | 'removed' | 'unreadable';
  detail: string;
}

export interface ChainReport {
  records: number;
  problem?: ChainProblem;
}

const HASHED = /^(.*),"hash":"([0-9a-f]{64})"}$/;

/**
 * Walks the hash chain of audit lines (oldest first). A record whose hash does not match its
 * content was altered; one whose `prev` skips a record follows a removal; one that the next record
 * steps over was inserted. The first problem is reported: after it, nothing can be trusted.
 */
export function verifyChain(lines: AuditLine[]): ChainReport {
  const hashes: string[] = [];
  for (const [i, entry] of lines.entries()) {
    const match = HASHED.exec(entry.text);
    if (!match) return { records: i, problem: { at: entry, kind: 'unreadable', detail: 'not a complete audit record with a hash' } };
    const body = `${match[1]}}`;
    const hash = match[2]!;
    let prev: unknown;
    try {
      prev = (JSON.parse(body) as { prev?: unknown }).prev;
    } catch {
      return { records: i, problem: { at: entry, kind: 'unreadable', detail: 'not valid JSON' } };
    }
    if (createHash('sha256').update(body).digest('hex') !== hash) {
      return { records: i, problem: { at: entry, kind: 'altered', detail: 'its content does not match its hash' } };
    }
    if (i > 0 && prev !== hashes[i - 1]) {
      // Does it follow the record before the previous one? Then the previous one was slipped in.
      if (i > 1 && prev === hashes[i - 2]) {
        return { records: i, problem: { at: lines[i - 1]!, kind: 'inserted', detail: 'the next record follows the one before it: this one was inserted' } };
      }
      return { records: i, problem: { at: entry, kind: 'removed', detail: 'it does not follow the record before it: records before it were removed' } };
    }
    hashes.push(hash);
  }
  return { records: lines.length };
}
