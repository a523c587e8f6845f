import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { readFileSafely, writeFileAtomically } from '../service/safeFiles.js';

/**
 * Forward-secure sealing of the audit chain, after journald's Forward Secure Sealing: time is cut
 * into epochs (15 minutes by default), each with its own key; the key of epoch e+1 is derived from
 * the key of epoch e by a one-way step, and the writer keeps only the current one (the key file is
 * rewritten, the old key forgotten). Each record carries `seal` = `<epoch>-<HMAC-SHA256(key_epoch,
 * hash)>`. Whoever takes the host at epoch E learns key_E and can seal from E on, but cannot
 * compute an earlier key, so cannot alter, remove or insert records sealed before E without
 * `seqwatch audit verify --verification-key` noticing. The verification key (key_0, the start and
 * the epoch length) is printed once by `seqwatch audit seal-init` and kept by the operator, off
 * the host.
 *
 * What it does not do: it cannot tell that the newest records were cut off (a prefix of a sealed
 * chain is a sealed chain): that is what the anchors in the daemon's own log are for. The old key's
 * bytes may survive on the disk until overwritten (as with journald's): the file is replaced, not
 * shredded.
 */
export const DEFAULT_EPOCH_SECONDS = 15 * 60;

interface KeyState {
  /** Unix seconds when epoch 0 began. */
  start: number;
  epochSeconds: number;
  epoch: number;
  key: Buffer;
}

/** Where the sealing key of an audit log lives: next to it, `.<name>.seal-key`, mode 0600. */
export function sealKeyFileFor(auditPath: string): string {
  return join(dirname(auditPath), `.${basename(auditPath)}.seal-key`);
}

export function nextKey(key: Buffer): Buffer {
  return createHmac('sha256', key).update('seqwatch audit seal: next epoch').digest();
}

function mac(key: Buffer, hash: string): string {
  return createHmac('sha256', key).update(hash).digest('hex');
}

function serialise(state: KeyState): string {
  return JSON.stringify({ start: state.start, epoch_seconds: state.epochSeconds, epoch: state.epoch, key: state.key.toString('hex') }) + '\n';
}

function parseState(text: string): KeyState | undefined {
  try {
    const data = JSON.parse(text) as { start?: unknown; epoch_seconds?: unknown; epoch?: unknown; key?: unknown };
    if (typeof data.start !== 'number' || typeof data.epoch_seconds !== 'number' || typeof data.epoch !== 'number' || typeof data.key !== 'string')
      return undefined;
    if (!/^[0-9a-f]{64}$/.test(data.key) || data.epoch_seconds < 1) return undefined;
    return { start: data.start, epochSeconds: data.epoch_seconds, epoch: data.epoch, key: Buffer.from(data.key, 'hex') };
  } catch {
    return undefined;
  }
}

/** The verification key as the operator keeps it: `<key_0 hex>/<start>/<epoch seconds>`. */
export function formatVerificationKey(key0: Buffer, start: number, epochSeconds: number): string {
  return `${key0.toString('hex')}/${start}/${epochSeconds}`;
}

export function parseVerificationKey(text: string): { key0: Buffer; start: number; epochSeconds: number } | undefined {
  const match = /^([0-9a-f]{64})\/(\d+)\/(\d+)$/.exec(text.trim());
  if (!match) return undefined;
  return { key0: Buffer.from(match[1]!, 'hex'), start: Number(match[2]), epochSeconds: Number(match[3]) };
}

/** Creates a new sealing key for an audit log; returns the verification key (shown once). */
export function initSealing(auditPath: string, epochSeconds = DEFAULT_EPOCH_SECONDS, now = Date.now()): string {
  const key0 = randomBytes(32);
  const start = Math.floor(now / 1000);
  writeFileAtomically(sealKeyFileFor(auditPath), serialise({ start, epochSeconds, epoch: 0, key: key0 }), 'audit sealing key', 0o600);
  return formatVerificationKey(key0, start, epochSeconds);
}

/** Seals records as they are written, when the audit log has a sealing key. */
export class AuditSealer {
  private constructor(
    private readonly file: string,
    private state: KeyState,
  ) {}

  /** The sealer of an audit log, if it has a key file this process may read. */
  static forAuditLog(auditPath: string): AuditSealer | undefined {
    const file = sealKeyFileFor(auditPath);
    let text: string;
    try {
      text = readFileSafely(file);
    } catch {
      return undefined;
    }
    const state = parseState(text);
    return state ? new AuditSealer(file, state) : undefined;
  }

  /** The seal of a record's hash, in the current epoch (the key moved forward first, and the old one forgotten). */
  seal(hash: string, now = Date.now()): string {
    const epoch = Math.max(this.state.epoch, Math.floor((now / 1000 - this.state.start) / this.state.epochSeconds));
    if (epoch > this.state.epoch) {
      let key = this.state.key;
      for (let e = this.state.epoch; e < epoch; e++) key = nextKey(key);
      this.state = { ...this.state, epoch, key };
      try {
        writeFileAtomically(this.file, serialise(this.state), 'audit sealing key', 0o600);
      } catch {
        // Another writer may own the file; the key in memory is the same (derived), sealing goes on.
      }
    }
    return `${epoch}-${mac(this.state.key, hash)}`;
  }
}

/**
 * Checks seals with the verification key, deriving each epoch's key once. A seal's epoch must not
 * be earlier than the epoch of the record's own `time` (less one, for clocks), and is "late" when
 * more than one epoch after it: a record held in memory while the audit log could not be written,
 * or one rewritten by whoever held a later key (see verifyChain).
 */
export class SealVerifier {
  private epoch = 0;
  private key: Buffer;

  constructor(private readonly verificationKey: { key0: Buffer; start: number; epochSeconds: number }) {
    this.key = verificationKey.key0;
  }

  check(hash: string, seal: string, timeMs: number): 'ok' | 'late' | 'bad' | 'backwards' | 'early' {
    const match = /^(\d+)-([0-9a-f]{64})$/.exec(seal);
    if (!match) return 'bad';
    const epoch = Number(match[1]);
    if (epoch < this.epoch) return 'backwards';
    for (; this.epoch < epoch; this.epoch++) this.key = nextKey(this.key);
    const expected = Buffer.from(mac(this.key, hash), 'hex');
    if (!timingSafeEqual(expected, Buffer.from(match[2]!, 'hex'))) return 'bad';
    const timeEpoch = Math.floor((timeMs / 1000 - this.verificationKey.start) / this.verificationKey.epochSeconds);
    if (Number.isNaN(timeEpoch)) return 'bad';
    if (epoch < timeEpoch - 1) return 'early';
    return epoch > timeEpoch + 1 ? 'late' : 'ok';
  }

  get currentEpoch(): number {
    return this.epoch;
  }
}
