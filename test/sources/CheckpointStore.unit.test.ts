import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointStore } from '../../src/sources/CheckpointStore.js';
import type { Position } from '../../src/sources/Follower.js';

// No server: both kinds of position behind one save/load, in the files earlier versions wrote.

describe('CheckpointStore', () => {
  it('keeps a file checkpoint and a journal cursor, each in the format it always had', () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-state-'));
    const store = new CheckpointStore(dir);
    const file: Position = { kind: 'file', checkpoint: { dev: 1, ino: 2, headLength: 3, headHash: 'abc', offset: 42 } };
    const journal: Position = { kind: 'journal', cursor: 's=1;i=2' };
    store.save('/var/log/pg.log', file);
    store.save('journald:postgresql.service', journal);
    const again = new CheckpointStore(dir);
    expect(again.load('/var/log/pg.log')).toEqual(file);
    expect(again.load('journald:postgresql.service')).toEqual(journal);
    expect(again.load('/var/log/other.log')).toBeUndefined();
    const written = readdirSync(join(dir, 'checkpoints')).map((name) => JSON.parse(readFileSync(join(dir, 'checkpoints', name), 'utf8')) as unknown);
    expect(written).toEqual(
      expect.arrayContaining([
        { source: '/var/log/pg.log', dev: 1, ino: 2, headLength: 3, headHash: 'abc', offset: 42 },
        { source: 'journald:postgresql.service', cursor: 's=1;i=2' },
      ]),
    );
  });
});
