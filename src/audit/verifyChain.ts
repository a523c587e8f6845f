import { createHash } from 'node:crypto';
import type { AuditLine } from './readAuditFiles.js';
import { SealVerifier } from './seal.js';

export interface ChainProblem {
  /** The first record that is not what was written (for `empty`/`end_missing`: the last line read, if any). */
  at?: AuditLine;
  kind: 'altered' | 'inserted' | 'removed' | 'unreadable' | 'empty' | 'start_missing' | 'end_missing' | 'rewritten' | 'unsealed' | 'bad_seal' | 'late_seal';
  detail: string;
}

export interface ChainReport {
  /** Records verified (before the problem, if any). */
  records: number;
  /** Sequence numbers of the first and last record read (records written before numbering have none). */
  first?: number;
  last?: { seq?: number; hash: string };
  /** Records whose seal was checked, and the newest epoch among them. */
  sealed?: { records: number; lastEpoch: number };
  /** Runs of records sealed more than an epoch after their time, each followed by an `audit_unwritable` alert. */
  lateSeals?: Array<{ from?: number; to?: number }>;
  problem?: ChainProblem;
}

export interface VerifyOptions {
  /** Points of the chain recorded outside the file (the daemon's log): each must be there, unchanged. */
  anchors?: Array<{ seq: number; hash: string }>;
  /** The operator's verification key: every record from the first sealed one on must carry a good seal. */
  verificationKey?: { key0: Buffer; start: number; epochSeconds: number };
  /** The oldest records were rotated away on purpose: a chain that starts after #1 is not a problem. */
  allowMissingStart?: boolean;
}

const HASHED = /^(.*),"hash":"([0-9a-f]{64})"(?:,"seal":"([^"]*)")?}$/;

/**
 * Walks the hash chain of audit lines (oldest first). A record whose hash does not match its
 * content was altered; one whose `prev` skips a record, or whose `seq` is not one more than the
 * record's before it, follows a removal; one that the next record steps over was inserted. The
 * chain must begin at record #1 (whose `prev` is empty), must reach every anchor with the anchored
 * hash, and, with a verification key, every record from the first sealed one on must be sealed.
 * The first problem is reported: after it, nothing can be trusted.
 */
export function verifyChain(lines: AuditLine[], options: VerifyOptions = {}): ChainReport {
  const report: ChainReport = { records: 0 };
  if (lines.length === 0) {
    return {
      ...report,
      problem: { kind: 'empty', detail: 'there is no record at all: a daemon that ran writes `started` first, so the log was emptied or never written' },
    };
  }
  const verifier = options.verificationKey ? new SealVerifier(options.verificationKey) : undefined;
  const anchors = new Map((options.anchors ?? []).map((a) => [a.seq, a.hash]));
  let sealing = false;
  let sealedRecords = 0;
  /** A run of late-sealed records still open: it must end with an `audit_unwritable` alert. */
  let late: { at: AuditLine; from?: number; to?: number } | undefined;
  let previous: { hash: string; seq?: number } | undefined;
  let beforePrevious: string | undefined;
  const fail = (problem: ChainProblem): ChainReport => ({
    ...report,
    ...(sealedRecords > 0 ? { sealed: { records: sealedRecords, lastEpoch: verifier!.currentEpoch } } : {}),
    problem,
  });
  for (const entry of lines) {
    const match = HASHED.exec(entry.text);
    if (!match) return fail({ at: entry, kind: 'unreadable', detail: 'not a complete audit record with a hash' });
    const body = `${match[1]}}`;
    const hash = match[2]!;
    const seal = match[3];
    let fields: { prev?: unknown; seq?: unknown };
    try {
      fields = JSON.parse(body) as typeof fields;
    } catch {
      return fail({ at: entry, kind: 'unreadable', detail: 'not valid JSON' });
    }
    const seq = typeof fields.seq === 'number' ? fields.seq : undefined;
    if (createHash('sha256').update(body).digest('hex') !== hash) {
      return fail({ at: entry, kind: 'altered', detail: 'its content does not match its hash' });
    }
    if (!previous) {
      if (seq !== undefined && seq !== 1 && !options.allowMissingStart) {
        return fail({
          at: entry,
          kind: 'start_missing',
          detail: `the chain starts at record #${seq}: records #1 to #${seq - 1} are not here (cut off, or rotated away and deleted: if so, say --allow-missing-start)`,
        });
      }
      if (seq === 1 && fields.prev !== '') return fail({ at: entry, kind: 'altered', detail: 'record #1 claims a record before it' });
      report.first = seq;
    } else if (fields.prev !== previous.hash) {
      // Does it follow the record before the previous one? Then the previous one was slipped in.
      if (beforePrevious !== undefined && fields.prev === beforePrevious) {
        return fail({ at: lines[report.records - 1]!, kind: 'inserted', detail: 'the next record follows the one before it: this one was inserted' });
      }
      const gap = seq !== undefined && previous.seq !== undefined && seq > previous.seq + 1 ? ` (#${previous.seq + 1} to #${seq - 1})` : '';
      return fail({ at: entry, kind: 'removed', detail: `it does not follow the record before it: records before it were removed${gap}` });
    } else if (previous.seq !== undefined && seq !== previous.seq + 1) {
      return fail({ at: entry, kind: 'altered', detail: `its number is #${seq ?? 'none'} after #${previous.seq}` });
    }
    if (seq !== undefined && anchors.has(seq) && anchors.get(seq) !== hash) {
      return fail({
        at: entry,
        kind: 'rewritten',
        detail: `record #${seq} is not the one anchored (hash ${anchors.get(seq)!.slice(0, 16)}…): the chain was rewritten from here or before`,
      });
    }
    if (verifier) {
      if (seal !== undefined) {
        sealing = true;
        const { time, event, reason } = JSON.parse(body) as { time?: string; event?: string; reason?: string };
        const verdict = verifier.check(hash, seal, Date.parse(time ?? ''));
        if (verdict === 'bad' || verdict === 'backwards' || verdict === 'early') {
          const why = {
            bad: 'its seal does not match: not written by the holder of the sealing key at that time',
            backwards: 'its seal is of an earlier epoch than the record before it',
            early: 'its seal is of an epoch before its own time',
          }[verdict];
          return fail({ at: entry, kind: 'bad_seal', detail: why });
        }
        if (verdict === 'late') {
          late ??= { at: entry, ...(seq !== undefined ? { from: seq } : {}) };
          if (seq !== undefined) late.to = seq;
        } else if (late) {
          if (event !== 'alert' || reason !== 'audit_unwritable') {
            return fail({
              at: late.at,
              kind: 'late_seal',
              detail: 'sealed epochs after its time, and no audit_unwritable alert follows: rewritten by whoever held a later key',
            });
          }
          (report.lateSeals ??= []).push({ ...(late.from !== undefined ? { from: late.from } : {}), ...(late.to !== undefined ? { to: late.to } : {}) });
          late = undefined;
        }
        sealedRecords++;
      } else if (sealing) {
        return fail({
          at: entry,
          kind: 'unsealed',
          detail: 'it carries no seal although the records before it do: written without the sealing key (forged, or by a writer that could not read the key)',
        });
      }
    }
    beforePrevious = previous?.hash;
    previous = { hash, ...(seq !== undefined ? { seq } : {}) };
    report.records++;
    report.last = previous;
  }
  if (sealedRecords > 0) report.sealed = { records: sealedRecords, lastEpoch: verifier!.currentEpoch };
  if (late)
    return fail({
      at: late.at,
      kind: 'late_seal',
      detail: 'sealed epochs after its time, and no audit_unwritable alert follows: rewritten by whoever held a later key',
    });
  const lastSeq = previous?.seq ?? 0;
  for (const [seq] of anchors) {
    if (seq > lastSeq) {
      return fail({
        at: lines.at(-1),
        kind: 'end_missing',
        detail: `record #${seq} was anchored, but the chain ends at #${lastSeq}: the newest records were cut off`,
      });
    }
    if (report.first !== undefined && seq < report.first && !options.allowMissingStart) {
      return fail({ at: lines[0], kind: 'start_missing', detail: `record #${seq} was anchored, but the chain starts at #${report.first}` });
    }
  }
  if (verifier && sealedRecords === 0) {
    return fail({
      at: lines[0],
      kind: 'unsealed',
      detail: 'a verification key was given, but no record is sealed (no sealing key next to the audit log: seqwatch audit seal-init)',
    });
  }
  return report;
}
