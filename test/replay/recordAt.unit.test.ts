import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Incident } from '../../src/detect/detectIncident.js';
import { IncidentScanner } from '../../src/detect/scanner.js';
import { wasmSimdAvailable } from '../../src/detect/wasm/multiNeedle.js';
import { RecordReader, REPEATS_BATCH, UNDECIDED } from '../../src/replay/recordAt.js';
import { LogTimes } from '../../src/replay/logTimes.js';
import { ScanThreads, scanInParallel } from '../../src/replay/parallel.js';
import { keeping, scanFileRange, ScanTools, type Found } from '../../src/replay/scanRange.js';
import { keyOf } from '../helpers/fastPaths.js';
import { mutate, SEEDS } from '../helpers/fuzzCorpus.js';
import { random } from '../helpers/random.js';
import { catalogSamples } from '../helpers/scannedSamples.js';

/**
 * Replay's stderr fast path (RecordReader.incidentAt: a line like one read before is decided as that
 * one was; the others read by StderrPrefixParser.recordOfLine) against the record read through the
 * parser (incidentByParser): the same incident, field for field, at every line start of a log,
 * read in the file's order as replay reads it (so the templates are those replay would have).
 */
function differences(prefix: string, text: string, starts: 'every line' | 'candidates' = 'every line'): string[] {
  const bytes = Buffer.from(text);
  const fast = new RecordReader('postgres-stderr', prefix, 'sample');
  const full = new RecordReader('postgres-stderr', prefix, 'sample');
  const offsets: number[] = [];
  if (starts === 'candidates') offsets.push(...new IncidentScanner('postgres-stderr', prefix).candidateLines(bytes));
  else for (let at = 0; at < bytes.length; at = bytes.indexOf(0x0a, at) + 1 || bytes.length) offsets.push(at);
  const out: string[] = [];
  let compared = 0;
  for (const at of offsets) {
    const mine: Incident | undefined = fast.incidentAt(bytes, at, bytes.length, at);
    const theirs = full.incidentByParser(bytes, at, bytes.length, at);
    if (theirs) compared++;
    try {
      expect(mine).toStrictEqual(theirs);
      expect(mine && Object.keys(mine)).toEqual(theirs && Object.keys(theirs));
    } catch {
      out.push(`${at}: ${JSON.stringify(bytes.toString('utf8', at, bytes.indexOf(0x0a, at)))} fast ${JSON.stringify(mine)} parser ${JSON.stringify(theirs)}`);
    }
  }
  if (compared === 0) out.push('no incident at all: nothing compared');
  templatesUsed = (fast as unknown as { used: number }).used;
  return out;
}

/** Templates of the last differences() call that stood for at least one line (the fast path was taken). */
let templatesUsed = 0;
/** Runs of repeats (more than one hit) the last scanDifferences() call's scan handed out, with one thread and with two. */
let runs = 0;
let runsOfTwo = 0;

const dir = mkdtempSync(join(tmpdir(), 'seqwatch-recordat-'));
const pool = new ScanThreads(1);
afterAll(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The same comparison for replay's scan of a file (scanFileRange: a chunk read into the search's
 * WebAssembly memory, its candidates decided REPEATS_BATCH at a time by multiNeedle.c's repeats,
 * the others by incidentAt), against the parser's record at every candidate line. Returns the
 * differences and how many candidates the module decided.
 */
async function scanDifferences(prefix: string, text: string): Promise<{ out: string[]; decided: number }> {
  runs = 0;
  const bytes = Buffer.from(text);
  const path = join(dir, 'repeats.log');
  writeFileSync(path, bytes);
  const tools = new ScanTools({ format: 'postgres-stderr', logLinePrefix: prefix, source: 'sample' });
  let decided = 0;
  const decide = tools.reader.decideRepeats.bind(tools.reader);
  tools.reader.decideRepeats = (...args) => {
    const slots = decide(...args);
    if (slots) for (const slot of slots) if (slot !== UNDECIDED) decided++;
    return slots;
  };
  const found: Incident[] = [];
  /** The same scan handing runs of repeats out as such (RepeatRun), as replay's tally takes them. */
  const withRuns: Found[] = [];
  const parallel: Found[] = [];
  const handle = await open(path);
  try {
    await scanFileRange(handle, 0, bytes.length, tools, (incident) => void found.push(incident));
    await scanFileRange(handle, 0, bytes.length, new ScanTools(tools.scan), keeping(withRuns, true));
    // Two threads (this one and a worker, which posts its runs), in pieces of 64 KiB.
    await scanInParallel(handle, bytes.length, { ...tools.scan, source: path }, 2, keeping(parallel, true), undefined, 64 * 1024, { pool });
  } finally {
    await handle.close();
  }
  const full = new RecordReader('postgres-stderr', prefix, 'sample');
  const expected = new IncidentScanner('postgres-stderr', prefix)
    .candidateLines(bytes)
    .map((at) => full.incidentByParser(bytes, at, bytes.length, at))
    .filter((incident) => incident !== undefined);
  const out: string[] = [];
  for (let k = 0; k < Math.max(found.length, expected.length); k++) {
    const [mine, theirs] = [found[k], expected[k]];
    try {
      expect(mine).toStrictEqual(theirs);
      expect(mine && Object.keys(mine)).toEqual(theirs && Object.keys(theirs));
    } catch {
      const at = theirs?.offset ?? mine?.offset ?? 0;
      out.push(`${at}: ${JSON.stringify(bytes.toString('utf8', at, bytes.indexOf(0x0a, at)))} scan ${JSON.stringify(mine)} parser ${JSON.stringify(theirs)}`);
      if (out.length > 5) break;
    }
  }
  if (expected.length === 0) out.push('no incident at all: nothing compared');
  // Each run stands for as many incidents found one by one: the first, then the same but for their
  // offset, pid and time (the epoch of each, the last one's time).
  const times = new LogTimes();
  const epochOf = (incident: Incident | undefined) => (incident?.logTime ? times.gapEpochOf(incident.logTime) : NaN);
  /** What a run's hits have in common: all but their offset, pid and time (and the name of the file read). */
  const unlike = (incident: Incident) => ({ ...incident, offset: undefined, pid: undefined, logTime: undefined, source: undefined });
  let k = 0;
  for (const item of withRuns) {
    if (!('epochs' in item)) {
      if (keyOf(item) !== keyOf(found[k]!)) out.push(`without runs ${JSON.stringify(found[k])}, with ${JSON.stringify(item)}`);
      k++;
      continue;
    }
    const { first, count, epochs, lastTime } = item;
    runs++;
    if (keyOf(first) !== keyOf(found[k]!)) out.push(`a run's first ${JSON.stringify(first)}, without runs ${JSON.stringify(found[k])}`);
    for (let j = 1; j <= count; j++) {
      const one = found[k + j];
      if (!one || JSON.stringify(unlike(one)) !== JSON.stringify(unlike(first)) || !Object.is(epochOf(one), epochs[j - 1]))
        out.push(`a run of ${JSON.stringify(first)}: its hit ${j} (epoch ${epochs[j - 1]}) is ${JSON.stringify(one)} without runs`);
    }
    if (lastTime !== found[k + count]?.logTime) out.push(`a run's last time ${lastTime}, without runs ${found[k + count]?.logTime}`);
    k += 1 + count;
  }
  if (k !== found.length) out.push(`with runs ${k} incidents, without ${found.length}`);
  // Two threads' runs (cut where pieces and chunks end) stand for the same errors at the same times.
  const row = (incident: Incident, epoch: number) => JSON.stringify({ ...unlike(incident), epoch });
  const flat = (items: Found[]) =>
    items.flatMap((item) =>
      'epochs' in item
        ? [row(item.first, epochOf(item.first)), ...Array.from(item.epochs.subarray(0, item.count), (epoch) => row(item.first, epoch))]
        : [row(item, epochOf(item))],
    );
  const [two, one] = [flat(parallel), flat(found)];
  runsOfTwo = parallel.filter((item) => 'epochs' in item).length;
  if (JSON.stringify(two) !== JSON.stringify(one)) out.push(`two threads ${two.length} errors, one ${one.length}: ${two.find((row, i) => row !== one[i])}`);
  return { out, decided };
}

const clock = (next: () => number) => {
  const two = (n: number) => String(Math.floor(n)).padStart(2, '0');
  return `2026-11-${two(1 + next() * 28)} ${two(next() * 24)}:${two(next() * 60)}:${two(next() * 60)}.${String(Math.floor(next() * 1000)).padStart(3, '0')}`;
};

/**
 * Lines that differ from one another in every way that a template must (or must not) stand for:
 * digits of the time and the pid (and their lengths), users and databases, SQLSTATEs under %e,
 * DEBUG1..5 right after a field, records whose DETAIL, CONTEXT or LOCATION changes them, TAB
 * lines, CR line ends, non-ASCII and invalid bytes, replication conflicts, and the mutations of
 * the fuzz corpus.
 */
function variedLog(seed: number, prefix: (time: string, pid: string, user: string, code: string) => string): string {
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const messages = [
    'ERROR:  duplicate key value violates unique constraint "users_login_key"',
    'ERROR:  duplicate key value violates unique constraint "ticket_pkey"',
    'ERROR:  duplicate key value violates unique constraint "ключ_pkey"',
    'ERROR:  nextval: reached maximum value of sequence "valid_id_seq" (32767)',
    'ERROR:  relation "ticket_history_id_seq" does not exist',
    'ERROR:  permission denied for sequence article_id_seq',
    'ERROR:  setval: value 40000 is out of bounds for sequence "valid_id_seq" (1..32767)',
    'ERROR:  23505: duplicate key value violates unique constraint "users_login_key"',
    'ERROR:  conflict detected on relation "public.t": conflict=insert_exists',
    'FEHLER:  doppelter Schlüsselwert verletzt Unique-Constraint »users_login_key«',
    "LOG:  statement: SELECT nextval('users_id_seq')",
    // log_statement = 'all': a statement that quotes an error's words (its record is no ERROR,
    // decided by its first line: RecordReader and multiNeedle.c's repeats skip its further lines).
    'LOG:  statement: SELECT count(*) FROM app_log WHERE message LIKE \'%duplicate key value violates unique constraint "users_login_key"%\'',
    'DEBUG1:  sequence "a_seq" reached 10',
    'WARNING:  duplicate key value violates unique constraint "users_login_key"',
    // The repeated error but for one of its last bytes (a template's line is compared 4 bytes at a
    // time, then byte by byte: whatever the alignment, one of these differs in that last part).
    'ERROR:  duplicate key value violates unique constraint "users_login_kez"',
    'ERROR:  duplicate key value violates unique constraint "users_login_kxy"',
    'ERROR:  duplicate key value violates unique constraint "users_login_wey"',
    'ERROR:  duplicate key value violates unique constraint "users_login_key\'',
  ];
  const after = [
    'DETAIL:  Key (login)=(agent7) already exists.',
    'STATEMENT:  INSERT INTO users (login) VALUES ($1)',
    'CONTEXT:  processing remote data for replication origin "pg_16394" during message type "INSERT" in transaction 748, finished at 0/177C240',
    'LOCATION:  _bt_check_unique, nbtinsert.c:664',
    'DETAIL:  Key (id)=(1) already exists.',
    'HINT:  nothing',
  ];
  const lines: string[] = [];
  for (let i = 0; i < 3000; i++) {
    const time = next() < 0.9 ? clock(next) : '2026-11-27 00:00:00.005';
    const pid = String(next() < 0.8 ? 1000 + Math.floor(next() * 9000) : Math.floor(next() * 100_000));
    // Half of them the repeats of one error by one user (a busy log's), the others anything.
    const repeat = next() < 0.5;
    const user = repeat ? 'gotrs' : pick(['gotrs', 'app', 'DEBUG', 'gö']);
    const code = repeat ? '23505' : pick(['23505', '42P01', '2200H', '00000', '23502']);
    const head = prefix(time, pid, user, code);
    let line = head + (repeat ? messages[0]! : pick(messages));
    if (next() < 0.05) line = mutate(line, next);
    if (next() < 0.03) line += '\r';
    if (next() < 0.02) line = line.replace('gotrs', 'go\u00fftrs');
    lines.push(line);
    // Most records go on with lines of the same prefix; some with another backend's, some with TAB lines.
    for (let more = Math.floor(next() * 3); more > 0; more--)
      lines.push(
        next() < 0.85
          ? head + pick(after)
          : next() < 0.5
            ? pick(['\tAND x = 1', '\tAND message NOT LIKE \'%duplicate key value violates unique constraint "ticket_pkey"%\''])
            : prefix(time, '9', user, code) + pick(after),
      );
  }
  return lines.join('\n') + '\n';
}

describe("replay's stderr fast path says what the parser says", () => {
  it('on every sample of every family and language (stderr variants)', () => {
    for (const sample of catalogSamples().filter((s) => s.format === 'postgres-stderr')) {
      expect(differences(sample.prefix, sample.text), sample.name).toEqual([]);
    }
  });

  it('on the fuzz corpus', () => {
    const next = random(0x5eed);
    const lines = Array.from({ length: 6000 }, () =>
      next() < 0.5 ? mutate(SEEDS[Math.floor(next() * SEEDS.length)]!, next) : SEEDS[Math.floor(next() * SEEDS.length)]!,
    );
    expect(differences('%m [%p] %q%u@%d ', lines.join('\n') + '\n')).toEqual([]);
  });

  const prefixes: Array<[string, (time: string, pid: string, user: string, code: string) => string]> = [
    ['%m [%p] %q%u@%d ', (t, p, u) => `${t} UTC [${p}] ${u}@gotrs `],
    ['%m [%p] %e %q%u@%d ', (t, p, u, c) => `${t} UTC [${p}] ${c} ${u}@gotrs `],
    ['%t [%p]: [%l-1] user=%u,db=%d ', (t, p, u) => `${t.slice(0, 19)} UTC [${p}]: [1-1] user=${u},db=gotrs `],
    ['%m %p %u ', (t, p, u) => `${t} ${p} ${u} `],
    // The pid right before the severity word, and a user named DEBUG right before the pid.
    ['%m %u%p ', (t, p, u) => `${t} ${u}${p} `],
    ['%p', (_t, p) => p],
    // A one-digit pid right after `xDEBUG` where the severity word may begin: `xDEBUG7:  ERROR` is an
    // ERROR of pid 7, `xDEBUG3:  ERROR` a DEBUG3 message (no template may stand for the other).
    ['%a%q%p:  ', (_t, p, u) => `x${u}${p.slice(-1)}:  `],
    // A digit in the prefix's own text: no templates.
    ['pg15 %m [%p] ', (t, p) => `pg15 ${t} UTC [${p}] `],
    ['%n [%p] ', (t, p) => `${Date.parse(t.replace(' ', 'T') + 'Z') / 1000} [${p}] `],
    // Fields no record field is read from, whose digits a template lets differ as the time's: Amazon
    // RDS's default prefix (%r: the client's address and port), and the others (a session id, a
    // transaction id, a virtual one, a query id, a host name, a session's start).
    ['%t:%r:%u@%d:[%p]:', (t, p, u) => `${t.slice(0, 19)} UTC:10.0.${p.length}.7(${p.padStart(5, '4')}):${u}@gotrs:[${p}]:`],
    [
      '%m %c %x %v %Q %h %s [%p] %q%u@%d ',
      (t, p, u) => `${t} UTC 6756a1b2.${p}a ${t.slice(-3)} 3/${p} -${p}9 host${p.slice(-1)}.lan 2026-11-27 00:00:0${p.slice(-1)} UTC [${p}] ${u}@gotrs `,
    ],
    // A transaction id right after a user named DEBUG, where the severity word may begin (as %p above).
    ['%u%x:  ', (_t, p, u) => `${u}${p.slice(-1)}:  `],
    // A field that prints nothing (%v of a process without a virtual transaction) where the pid begins.
    ['%m %v%p ', (t, p) => `${t} UTC ${p} `],
  ];
  it("a translated server's repeated error (not ASCII: FEHLER:  doppelter Schlüsselwert …) is decided by a template too", () => {
    const next = random(11);
    const lines: string[] = [];
    for (let i = 0; i < 400; i++) {
      const head = `${clock(next)} UTC [${1000 + Math.floor(next() * 9000)}] 23505 gotrs@götrs `;
      lines.push(`${head}FEHLER:  doppelter Schlüsselwert verletzt Unique-Constraint »users_login_key«`);
      lines.push(`${head}DETAIL:  Schlüssel »(login)=(agent${i})« existiert bereits.`);
      lines.push(`${head}ANWEISUNG:  INSERT INTO users (login) VALUES ($1)`);
    }
    const text = lines.join('\n') + '\n';
    expect(differences('%m [%p] %e %q%u@%d ', text)).toEqual([]);
    expect(templatesUsed).toBeGreaterThan(0);
  });

  it.runIf(wasmSimdAvailable())("a translated server's repeats are decided by multiNeedle.c's repeats as by the parser", async () => {
    const next = random(12);
    const lines: string[] = [];
    for (let i = 0; i < 3 * REPEATS_BATCH; i++) {
      const head = `${clock(next)} UTC [${1000 + Math.floor(next() * 9000)}] 23505 gotrs@götrs `;
      lines.push(`${head}FEHLER:  doppelter Schlüsselwert verletzt Unique-Constraint »users_login_key«`);
      lines.push(`${head}DETAIL:  Schlüssel »(login)=(agent${i})« existiert bereits.`);
      if (i % 7 === 0) lines.push(`${head}ZUSAMMENHANG:  SQL-Funktion »f« Anweisung 1`);
      lines.push(`${head}ANWEISUNG:  INSERT INTO users (login) VALUES ($1)`);
    }
    const { out, decided } = await scanDifferences('%m [%p] %e %q%u@%d ', lines.join('\n') + '\n');
    expect(out).toEqual([]);
    expect(decided).toBeGreaterThan(REPEATS_BATCH);
    expect(runs).toBeGreaterThan(100);
    expect(runsOfTwo).toBeGreaterThan(100);
  });

  it.runIf(wasmSimdAvailable())(
    "many constraints whose names differ in digits (t1_k_key .. t20_k_key), batch after batch: each hit counted under its own (the module's slots change between batches)",
    async () => {
      // Found by a field trial on a real server's log: templates of names that differ in digits
      // share a shape, so more than the module's 16 are first used in each batch and its slots are
      // filled anew between batches; a run open across that counted the next batch's hits of
      // another constraint as its own.
      const next = random(26);
      const lines: string[] = [];
      for (let i = 0; i < 6 * REPEATS_BATCH; i++) {
        const pid = String(next() < 0.5 ? 9000 + Math.floor(next() * 999) : 10_000 + Math.floor(next() * 999));
        const head = `${clock(next)} UTC [${pid}] postgres@trial `;
        // Bursts of one constraint, as an application retrying, then another.
        const table = 1 + (Math.floor(i / (1 + Math.floor(next() * 40))) % 20);
        lines.push(`${head}ERROR:  duplicate key value violates unique constraint "t${table}_k_key"`);
        lines.push(`${head}DETAIL:  Key (k)=(${i}) already exists.`);
        lines.push(`${head}STATEMENT:  INSERT INTO t${table} (k) VALUES (${i})`);
      }
      const { out, decided } = await scanDifferences('%m [%p] %q%u@%d ', lines.join('\n') + '\n');
      expect(out).toEqual([]);
      // Each name's lines are decided by the module once its template has stood for one (20 names,
      // two pid lengths: 40 templates of a few shapes), not only the lines of the few it held. (The
      // first batch's lines make the templates: the module has them from the second batch on.)
      expect(decided / (5 * REPEATS_BATCH)).toBeGreaterThan(0.95);
      expect(runs).toBeGreaterThan(100);
    },
  );

  it.runIf(wasmSimdAvailable())(
    "an application's pooled connections (%r: each its own port) hitting one constraint in turn: every connection's lines decided by the module",
    async () => {
      // The lines of a pool's connections differ in the digits of their port as well as of their
      // time and pid: a template each, of one shape, and a burst of errors takes them in any order.
      const next = random(27);
      const pool = Array.from({ length: 12 }, (_, k) => ({ pid: 20_000 + k * 37, port: 40_000 + Math.floor(next() * 20_000) }));
      const lines: string[] = [];
      for (let i = 0; i < 4 * REPEATS_BATCH; i++) {
        const { pid, port } = pool[Math.floor(next() * pool.length)]!;
        const head = `${clock(next)} UTC [${pid}] 10.0.0.7(${port}) gotrs@gotrs `;
        lines.push(`${head}ERROR:  duplicate key value violates unique constraint "users_login_key"`);
        lines.push(`${head}DETAIL:  Key (login)=(user${i % 50}) already exists.`);
        lines.push(`${head}STATEMENT:  INSERT INTO users (login) VALUES ($1)`);
      }
      const { out, decided } = await scanDifferences('%m [%p] %r %q%u@%d ', lines.join('\n') + '\n');
      expect(out).toEqual([]);
      expect(decided / (3 * REPEATS_BATCH)).toBeGreaterThan(0.95);
      // One template stands for them all (the port's digits, as the pid's, may differ): each batch
      // after the first is one run.
      expect(runs).toBeGreaterThanOrEqual(3);
    },
  );

  for (const [prefix, head] of prefixes) {
    it(`on lines that differ in their digits, fields and what follows them: ${JSON.stringify(prefix)}`, () => {
      const text = variedLog(prefix.length * 7919, head);
      expect(differences(prefix, text)).toEqual([]);
      expect(differences(prefix, text, 'candidates')).toEqual([]);
      // Templates stood for lines, except where the prefix rules them out (a digit in its text, %l).
      const templated = !/[0-9]|%l/.test(prefix.replace(/%-?\d*[a-zA-Z%]/g, (escape) => (escape.endsWith('l') ? '%l' : '')));
      if (templated) expect(templatesUsed, prefix).toBeGreaterThan(0);
    });

    it.runIf(wasmSimdAvailable())(`replay's scan, repeats decided by multiNeedle.c's repeats, on the same lines: ${JSON.stringify(prefix)}`, async () => {
      // Three logs' worth, so that several batches follow the first (whose lines made the templates).
      const text = [1, 2, 3].map((k) => variedLog(prefix.length * 7919 + k, head)).join('');
      const { out, decided } = await scanDifferences(prefix, text);
      expect(out).toEqual([]);
      const templated = !/[0-9]|%l/.test(prefix.replace(/%-?\d*[a-zA-Z%]/g, (escape) => (escape.endsWith('l') ? '%l' : '')));
      if (templated) expect(decided, prefix).toBeGreaterThan(0);
      else expect(decided, prefix).toBe(0);
    });
  }
});
