import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readFileSafely, writeFileAtomically } from '../service/safeFiles.js';
import type { Checkpoint } from './FileFollower.js';

/**
 * Each file source's checkpoint, one small JSON file per source under `state_dir/checkpoints/`,
 * replaced atomically (a new file under a random name, then a rename) so that a crash leaves the old
 * one or the new one, never half of one; never read or written through a symbolic link (safeFiles).
 */
export class CheckpointStore {
  private readonly dir: string;
  private readonly saved = new Map<string, string>();

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'checkpoints');
  }

  private fileFor(source: string): string {
    return join(this.dir, `${createHash('sha256').update(source).digest('hex').slice(0, 24)}.json`);
  }

  load(source: string): Checkpoint | undefined {
    try {
      const data = JSON.parse(readFileSafely(this.fileFor(source))) as Checkpoint & { source?: string };
      if (data.source !== source || typeof data.offset !== 'number') return undefined;
      return { dev: data.dev, ino: data.ino, headLength: data.headLength, headHash: data.headHash, offset: data.offset };
    } catch {
      return undefined;
    }
  }

  /** A journal source's cursor. */
  loadCursor(source: string): string | undefined {
    try {
      const data = JSON.parse(readFileSafely(this.fileFor(source))) as { source?: string; cursor?: unknown };
      return data.source === source && typeof data.cursor === 'string' ? data.cursor : undefined;
    } catch {
      return undefined;
    }
  }

  saveCursor(source: string, cursor: string): void {
    this.write(source, JSON.stringify({ source, cursor }));
  }

  /** Writes the checkpoint if it changed since the last write. */
  save(source: string, checkpoint: Checkpoint): void {
    this.write(source, JSON.stringify({ source, ...checkpoint }));
  }

  private write(source: string, text: string): void {
    if (this.saved.get(source) === text) return;
    writeFileAtomically(this.fileFor(source), text + '\n', 'checkpoint');
    this.saved.set(source, text);
  }
}
