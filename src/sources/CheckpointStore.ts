import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readFileSafely, writeFileAtomically } from '../service/safeFiles.js';
import type { Checkpoint, Position } from './Follower.js';

/**
 * Each source's position (a file's checkpoint, a journal's cursor), one small JSON file per source
 * under `state_dir/checkpoints/`, replaced atomically (a new file under a random name, then a rename) so that a crash leaves the old
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

  /** Where the source stopped: a file's checkpoint or a journal's cursor, as saved. */
  load(source: string): Position | undefined {
    try {
      const data = JSON.parse(readFileSafely(this.fileFor(source))) as Partial<Checkpoint> & { source?: string; cursor?: unknown };
      if (data.source !== source) return undefined;
      if (typeof data.cursor === 'string') return { kind: 'journal', cursor: data.cursor };
      if (typeof data.offset !== 'number') return undefined;
      return { kind: 'file', checkpoint: { dev: data.dev!, ino: data.ino!, headLength: data.headLength!, headHash: data.headHash!, offset: data.offset } };
    } catch {
      return undefined;
    }
  }

  /** Writes the position if it changed since the last write. */
  save(source: string, position: Position): void {
    this.write(source, JSON.stringify(position.kind === 'file' ? { source, ...position.checkpoint } : { source, cursor: position.cursor }));
  }

  private write(source: string, text: string): void {
    if (this.saved.get(source) === text) return;
    writeFileAtomically(this.fileFor(source), text + '\n', 'checkpoint');
    this.saved.set(source, text);
  }
}
