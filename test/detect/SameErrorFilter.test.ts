import { describe, expect, it } from 'vitest';
import type { Incident } from '../../src/detect/detectIncident.js';
import { SameErrorFilter } from '../../src/detect/SameErrorFilter.js';

const error = (source: string, fields: Partial<Incident> = {}): Incident => ({
  kind: 'unique_violation',
  constraint: 'ticket_pkey',
  source,
  pid: 4242,
  logTime: '2026-12-02 05:53:48.011 UTC',
  ...fields,
});

describe('SameErrorFilter: one error followed through several destinations counts once', () => {
  it('stderr (%t, no milliseconds), csvlog and jsonlog of one error: counted once', () => {
    const filter = new SameErrorFilter();
    expect(filter.isRepeat(error('pg.log', { logTime: '2026-12-02 05:53:48 UTC' }), 'postgres-stderr')).toBe(false);
    expect(filter.isRepeat(error('pg.csv', { database: 'gotrs' }), 'postgres-csv')).toBe(true);
    expect(filter.isRepeat(error('pg.json', { database: 'gotrs' }), 'postgres-json')).toBe(true);
  });

  it('two errors of one backend within a second, each seen in two destinations: counted twice', () => {
    const filter = new SameErrorFilter();
    const verdicts = ['pg.csv', 'pg.csv', 'pg.json', 'pg.json'].map((source) => filter.isRepeat(error(source), source));
    expect(verdicts).toEqual([false, false, true, true]);
    // Interleaved as two followers read them.
    const other = new SameErrorFilter();
    expect(['pg.csv', 'pg.json', 'pg.json', 'pg.csv'].map((source) => other.isRepeat(error(source), source))).toEqual([false, true, false, true]);
  });

  it("the files of one destination (a glob's rotated csvlog files) hold different errors: each counted", () => {
    const filter = new SameErrorFilter();
    expect(filter.isRepeat(error('postgresql-05.csv'), 'postgres-csv')).toBe(false);
    expect(filter.isRepeat(error('postgresql-06.csv'), 'postgres-csv')).toBe(false);
    expect(filter.isRepeat(error('postgresql-06.json'), 'postgres-json')).toBe(true);
  });

  it('different processes, seconds, names or databases are different errors; no pid or no time: always counted', () => {
    const filter = new SameErrorFilter();
    expect(filter.isRepeat(error('a', { database: 'one' }), 'a')).toBe(false);
    expect(filter.isRepeat(error('b', { database: 'two' }), 'b')).toBe(false);
    expect(filter.isRepeat(error('b', { pid: 1 }), 'b')).toBe(false);
    expect(filter.isRepeat(error('b', { logTime: '2026-12-02 05:53:49.000 UTC' }), 'b')).toBe(false);
    expect(filter.isRepeat(error('b', { constraint: 'article_pkey' }), 'b')).toBe(false);
    const noPid = error('c');
    delete noPid.pid;
    expect(filter.isRepeat(noPid, 'c')).toBe(false);
    expect(filter.isRepeat({ ...noPid, source: 'd' }, 'd')).toBe(false);
  });
});
