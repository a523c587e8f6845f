import { appendFileSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { duplicateKeyLine, repoRootPath, startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';

/** The stand-in journalctl has started (it follows with --lines=0: entries written before are not new). */
const journalctlStarted = (journal: string) => waitFor('journalctl started', () => existsSync(`${journal}.started`), 20_000);

/*
 * PostgreSQL under systemd, its stderr in the journal. There is no journald here, so a stand-in
 * journalctl (test/helpers/fake-journalctl.mjs) serves entries from a file, as journalctl would.
 */
describe('journald source', () => {
  let db: TestDatabase;
  let dir: string;
  let journal: string;
  let n = 0;
  const daemons: RunningDaemon[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('journal');
    await db.pool.query('CREATE TABLE ticket (id bigserial PRIMARY KEY); CREATE TABLE article (id bigserial PRIMARY KEY);');
    dir = mkdtempSync(join(tmpdir(), 'seqwatch-journal-'));
    journal = join(dir, 'journal.jsonl');
    writeFileSync(journal, '');
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
    await db?.drop();
  });

  const entry = (constraint: string) => {
    n++;
    const message = duplicateKeyLine(constraint, 900 + n).trimEnd();
    appendFileSync(
      journal,
      JSON.stringify({ __CURSOR: `s=abc;i=${n}`, _PID: String(900 + n), PRIORITY: '3', MESSAGE: message, _SYSTEMD_UNIT: 'postgresql@15-main.service' }) + '\n',
    );
  };
  const start = async () => {
    const d = await startDaemon(
      {
        database: { url: db.url },
        sources: [{ journal_unit: 'postgresql@15-main.service', log_line_prefix: '%m [%p] ' }],
        remediation: { debounce_ms: 20, cooldown: 0 },
        state_dir: join(dir, 'state'),
      },
      { SEQWATCH_JOURNALCTL: repoRootPath('test/helpers/fake-journalctl.mjs'), FAKE_JOURNAL: journal },
    );
    daemons.push(d);
    return d;
  };
  const drift = (table: string) =>
    db.pool.query(`INSERT INTO ${table} (id) SELECT (SELECT coalesce(max(id), 0) FROM ${table}) + g FROM generate_series(1, 10) g`);

  it('heals from journal entries, and after a restart resumes at its cursor: nothing lost, nothing twice', async () => {
    const first = await start();
    await journalctlStarted(journal);
    await drift('ticket');
    entry('ticket_pkey');
    await first.waitForAudit('ticket remediated', (r) => r.event === 'remediated' && r.table === 'public.ticket');
    await new Promise((r) => setTimeout(r, 400));
    expect(await first.stop('SIGTERM')).toBe(0);

    await drift('article');
    entry('article_pkey');
    const second = await start();
    await second.waitForAudit('article remediated', (r) => r.event === 'remediated' && r.table === 'public.article');
    await new Promise((r) => setTimeout(r, 400));
    expect(
      second
        .audit()
        .filter((r) => r.event === 'detected')
        .map((r) => r.table),
    ).toEqual(['public.article']);
    expect(first.audit()[0]!.sources).toEqual([{ path: 'journald:postgresql@15-main.service', format: 'postgres-stderr' }]);
  });
});

/*
 * journald cuts a line longer than LineMax= (48K by default) into several entries, each but the last
 * with _LINE_BREAK=line-max. A statement can be built so that the next entry begins like a record.
 */
describe('journald entries cut at LineMax', () => {
  it('are joined: the piece after the cut is never a record of its own', async () => {
    const db = await createTestDatabase('journalcut');
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-journal-'));
    const journal = join(dir, 'journal.jsonl');
    writeFileSync(journal, '');
    let daemon: RunningDaemon | undefined;
    try {
      await db.pool.query(
        'CREATE TABLE ticket (id bigserial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, 9); CREATE TABLE queue (id serial PRIMARY KEY); INSERT INTO queue (id) VALUES (1), (2)',
      );
      daemon = await startDaemon(
        {
          database: { url: db.url },
          sources: [{ journal_unit: 'postgresql@15-main.service', log_line_prefix: '%m [%p] ' }],
          remediation: { debounce_ms: 20 },
          state_dir: join(dir, 'state'),
        },
        { SEQWATCH_JOURNALCTL: repoRootPath('test/helpers/fake-journalctl.mjs'), FAKE_JOURNAL: journal },
      );
      await journalctlStarted(journal);
      const unit = { _SYSTEMD_UNIT: 'postgresql@15-main.service', _PID: '77', PRIORITY: '6' };
      const time = new Date().toISOString().replace('T', ' ').replace('Z', ' UTC');
      const entries = [
        { ...unit, __CURSOR: 'c=1', MESSAGE: `${time} [77] ERROR:  syntax error at or near "x"` },
        { ...unit, __CURSOR: 'c=2', MESSAGE: `${time} [77] STATEMENT:  x ${'y'.repeat(48 * 1024)}`, _LINE_BREAK: 'line-max' },
        { ...unit, __CURSOR: 'c=3', MESSAGE: `${time} [77] ERROR:  duplicate key value violates unique constraint "ticket_pkey"` },
        { ...unit, __CURSOR: 'c=4', MESSAGE: duplicateKeyLine('queue_pkey', 78).trimEnd() },
      ];
      appendFileSync(journal, entries.map((e) => JSON.stringify(e) + '\n').join(''));
      await daemon.waitForAudit('queue remediated', (r) => r.event === 'remediated' && r.table === 'public.queue');
      await new Promise((r) => setTimeout(r, 300));
      expect(daemon.audit().filter((r) => r.table === 'public.ticket')).toEqual([]);
    } finally {
      await daemon?.stop('SIGKILL');
      await db.drop();
    }
  });
});
