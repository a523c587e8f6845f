import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CheckpointTracker, checkpointAllowed } from '../../src/sources/CheckpointTracker.js';
import type { Checkpoint, Position } from '../../src/sources/Follower.js';

// No server, no files: the checkpoint rule and its throttle, against a follower and a store in memory.

const at = (offset: number): Position => ({ kind: 'file', checkpoint: { dev: 1, ino: 2, headLength: 3, headHash: 'h', offset } });
const offsetOf = (position: Position | undefined) => (position?.kind === 'file' ? position.checkpoint.offset : undefined);

function setUp(everyMs = 100) {
  const follower = { where: at(0) as Position | undefined, position: () => follower.where };
  const saved: Position[] = [];
  const store = { save: (key: string, position: Position) => void (key === 'app.log' && saved.push(position)) };
  const tracker = new CheckpointTracker(store, 'app.log', follower, { everyMs });
  return { follower, saved, tracker, last: () => offsetOf(saved.at(-1)) };
}

describe('checkpointAllowed: a checkpoint never passes an open record or an unfinished incident', () => {
  it('moves a file position back to the earliest unfinished incident', () => {
    expect(offsetOf(checkpointAllowed(at(900), { recordOpen: false, incidents: [700, 300, 500] }))).toBe(300);
    expect(offsetOf(checkpointAllowed(at(900), { recordOpen: false, incidents: [] }))).toBe(900);
    // An incident after the position (read, not yet reached by the follower's line start) holds nothing back.
    expect(offsetOf(checkpointAllowed(at(900), { recordOpen: false, incidents: [950] }))).toBe(900);
  });

  it('takes no file position while the parser holds a record being assembled', () => {
    expect(checkpointAllowed(at(900), { recordOpen: true, incidents: [] })).toBeUndefined();
  });

  it("does not change the follower's own checkpoint object", () => {
    const position = at(900);
    checkpointAllowed(position, { recordOpen: false, incidents: [100] });
    expect((position as { checkpoint: Checkpoint }).checkpoint.offset).toBe(900);
  });

  it('takes a journal cursor only when no incident is unfinished (a cursor cannot move back)', () => {
    const cursor: Position = { kind: 'journal', cursor: 's=1;i=2' };
    expect(checkpointAllowed(cursor, { recordOpen: false, incidents: [4] })).toBeUndefined();
    expect(checkpointAllowed(cursor, { recordOpen: false, incidents: [] })).toEqual(cursor);
  });

  it('takes no journal cursor while the parser holds a record: the cursor names the entry it began with', () => {
    // An ERROR entry handed to the parser, its DETAIL not yet: a cursor saved now would resume after it.
    const cursor: Position = { kind: 'journal', cursor: 's=1;i=3' };
    expect(checkpointAllowed(cursor, { recordOpen: true, incidents: [] })).toBeUndefined();
  });

  it('has nothing to save without a position (standard input, a rotated file still draining)', () => {
    expect(checkpointAllowed(undefined, { recordOpen: false, incidents: [] })).toBeUndefined();
  });
});

describe('CheckpointTracker', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('holds the checkpoint at an incident until its outcome is audited, then moves it on', () => {
    const { follower, tracker, last } = setUp();
    follower.where = at(100);
    const done = tracker.openIncident(100);
    follower.where = at(400);
    tracker.saveNow();
    expect(last()).toBe(100);
    expect(tracker.unfinishedIncidents).toBe(1);
    done();
    vi.advanceTimersByTime(100);
    expect(last()).toBe(400);
    expect(tracker.unfinishedIncidents).toBe(0);
  });

  it('an incident without an offset holds a journal cursor back, and no file offset', () => {
    const { follower, saved, tracker } = setUp();
    follower.where = { kind: 'journal', cursor: 'c1' };
    const done = tracker.openIncident(undefined);
    tracker.saveNow();
    expect(saved).toHaveLength(0);
    follower.where = at(400);
    tracker.saveNow();
    expect(offsetOf(saved.at(-1))).toBe(400);
    done();
    expect(tracker.unfinishedIncidents).toBe(0);
  });

  it('closing an incident twice releases it once', () => {
    const { tracker } = setUp();
    const first = tracker.openIncident(10);
    tracker.openIncident(10);
    first();
    first();
    expect(tracker.unfinishedIncidents).toBe(1);
  });

  it('saves nothing while a record is open; the flush lets the next request save', () => {
    const { follower, saved, tracker, last } = setUp();
    follower.where = at(250);
    tracker.lineParsed();
    tracker.request();
    expect(saved).toHaveLength(0);
    tracker.recordsFlushed();
    tracker.request();
    expect(last()).toBe(250);
  });

  it('writes at most once per interval, and the last request is not lost', () => {
    const { follower, saved, tracker, last } = setUp(100);
    for (let offset = 1; offset <= 50; offset++) {
      follower.where = at(offset);
      tracker.request();
      vi.advanceTimersByTime(1);
    }
    // 50 requests over 50 ms: the first at once, the rest wait for one timer.
    expect(saved).toHaveLength(1);
    vi.advanceTimersByTime(100);
    expect(saved).toHaveLength(2);
    expect(last()).toBe(50);
  });

  it('saveNow writes at once and cancels the waiting write', () => {
    const { follower, saved, tracker, last } = setUp(100);
    tracker.request();
    follower.where = at(70);
    tracker.request();
    tracker.saveNow();
    expect(last()).toBe(70);
    vi.advanceTimersByTime(1_000);
    expect(saved).toHaveLength(2);
  });

  it('after close, a late incident or request writes nothing (a new tracker may own the key)', () => {
    const { follower, saved, tracker, last } = setUp(100);
    follower.where = at(30);
    const done = tracker.openIncident(30);
    follower.where = at(90);
    tracker.close();
    expect(last()).toBe(30);
    done();
    tracker.request();
    vi.advanceTimersByTime(1_000);
    expect(saved).toHaveLength(1);
  });

  it('a store that cannot write is reported, and following goes on', () => {
    const errors: string[] = [];
    const tracker = new CheckpointTracker(
      {
        save: () => {
          throw new Error('ENOSPC');
        },
      },
      'app.log',
      { position: () => at(5) },
      { onSaveError: (error) => errors.push(error.message) },
    );
    expect(() => tracker.saveNow()).not.toThrow();
    expect(errors).toEqual(['ENOSPC']);
  });
});

describe('CheckpointTracker and the follower', () => {
  it('does not ask a file follower for its position while a record is open (it costs a hash)', () => {
    let asked = 0;
    let clock = 0;
    // Each request comes long after the last save: only the open record keeps it from saving.
    const tracker = new CheckpointTracker({ save: () => {} }, 'app.log', { position: () => (asked++, at(10)) }, { now: () => (clock += 1_000) });
    tracker.saveNow();
    expect(asked).toBe(1);
    tracker.lineParsed();
    for (let i = 0; i < 100; i++) tracker.openIncident(5)();
    expect(asked).toBe(1);
  });
});
