import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { Incident } from '../../src/detect/detectIncident.js';
import { SCANNED_FORMATS } from '../../src/detect/scanner.js';
import { scanInParallel, ScanThreads } from '../../src/replay/parallel.js';
import { scanLog } from '../../src/replay/scanLog.js';
import { difference, liveExpected, viaCandidates, viaLive, viaPipeline } from '../helpers/fastPaths.js';
import { draws } from '../helpers/random.js';
import { randomLog, variantOf, type Variant } from '../helpers/randomLog.js';
import { languages } from '../helpers/randomMessages.js';
import { incidentsOf } from '../helpers/scannedSamples.js';

/*
 * "The shared scanner finds exactly what the full parsers find", on random logs. Each seed's log
 * (test/helpers/randomLog.ts: one seed, one log) is read by the format's full parser, every line,
 * then detectIncident: the reference. Every fast path must find exactly the same incidents (every
 * field but the source and the line number):
 * - replay: scanLog on the file (one thread, read ahead: scanFileRange), scanInParallel (2 threads,
 *   pieces of a random size), scanLog on the file gzipped (the stream path, scanStream);
 * - the shared scanner's candidate lines (candidateLines by WebAssembly and by indexOf; the
 *   nextCandidate walk), each read by RecordReader (incidentAt, and incidentByParser alike);
 * - the live path: lines split and passed over with the scanner's candidates at reads of random
 *   sizes (a copy of SourcePipeline's wiring), and the daemon's own SourcePipeline on the file.
 * Where a path differs by design, the comment there says why and what is asserted instead.
 *
 * A longer campaign (~30 s per 100 seeds on a 2-core machine; a failure names its seed, which makes the same log again):
 *   SEQWATCH_FUZZ_SEEDS=1000-1999 npx vitest run --project unit test/replay/differential.unit.test.ts
 */

/**
 * Seeds 1-40 (stderr, csvlog, jsonlog; 34 prefixes; every language of the 11 PostgreSQL 15 catalogs
 * Debian installs; CRLF; verbose; forged records; interleaved lines; stray lines; mutated csvlog
 * and jsonlog), then what they lack: logs over replay's 4 MiB chunk (153 stderr, 99 csvlog) and a
 * mutated stderr log not interleaved (47, 83, 174); and more of what they have one of: %e after %q
 * (62), %l (63, 119), a prefix ending in a colon (67). The coverage test below holds the list to this.
 */
const FIXED_SEEDS = [...Array.from({ length: 40 }, (_, i) => i + 1), 47, 62, 63, 67, 83, 99, 119, 153, 174];

/** SEQWATCH_FUZZ_SEEDS: seeds and ranges (`1000-1999`, `7,83,1000-1099`) instead of the fixed ones. */
function seeds(): number[] {
  const list = process.env.SEQWATCH_FUZZ_SEEDS;
  if (!list) return FIXED_SEEDS;
  return list.split(',').flatMap((part) => {
    const [first, last = first] = part.split('-').map(Number);
    return Array.from({ length: last! - first! + 1 }, (_, i) => first! + i);
  });
}

const englishOnly = languages().length === 1;
if (englishOnly) console.log('differential test: no PostgreSQL message catalog installed (/usr/share/locale/*/LC_MESSAGES/postgres-N.mo): English logs only');

const dir = mkdtempSync(join(tmpdir(), 'seqwatch-differential-'));
const pool = new ScanThreads(1);
afterAll(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

/** What a seed is, in a line (the test's name). */
function title(v: Variant): string {
  const odd: string[] = (['verbose', 'interleave', 'forge', 'stray', 'large'] as const).filter((key) => v[key]);
  if (v.mutate) odd.push(`mutate ${v.mutate}`);
  if (v.crlf !== 'none') odd.push(`crlf ${v.crlf}`);
  return `${v.format} '${v.prefix}' ${v.langs.join(',')} ${odd.join(' ')}`;
}

describe(`the fast paths find what the full parser finds, on random logs${englishOnly ? ' (English only: no PostgreSQL catalogs installed)' : ''}`, () => {
  it.runIf(!process.env.SEQWATCH_FUZZ_SEEDS)('the fixed seeds cover every format and every class of log the generator makes', () => {
    const variants = FIXED_SEEDS.map(variantOf);
    const stderr = (v: Variant) => v.format === 'postgres-stderr';
    const classes: Record<string, (v: Variant) => boolean> = {
      'stderr verbose': (v) => stderr(v) && v.verbose,
      'stderr %l': (v) => stderr(v) && /%-?\d*l/.test(v.prefix),
      'stderr %e after %q': (v) => stderr(v) && /%q.*%-?\d*e/.test(v.prefix),
      'stderr, a prefix ending in a colon': (v) => stderr(v) && v.prefix.endsWith(':'),
      'stderr interleaved': (v) => stderr(v) && v.interleave,
      'stderr over 4 MiB': (v) => stderr(v) && v.large,
      'CRLF everywhere': (v) => v.crlf === 'all',
      'CRLF on some lines': (v) => v.crlf === 'some',
      'stray lines': (v) => v.stray,
    };
    for (const format of SCANNED_FORMATS) {
      classes[`${format} forged`] = (v) => v.format === format && v.forge;
      classes[`${format} mutated`] = (v) => v.format === format && v.mutate > 0 && !v.interleave;
    }
    expect(Object.keys(classes).filter((name) => !variants.some(classes[name]!))).toEqual([]);
    expect(new Set(variants.map((v) => v.prefix)).size).toBeGreaterThan(25);
    // Every installed language (on a machine with other catalogs than the CI image's, at least 9 with English).
    expect(new Set(variants.flatMap((v) => v.langs)).size).toBeGreaterThanOrEqual(Math.min(languages().length, 9));
  });

  it.each(seeds().map((seed) => ({ seed, name: title(variantOf(seed)) })))('seed $seed: $name', async ({ seed }) => {
    const { variant, text } = randomLog(seed);
    const { format, prefix } = variant;
    const string = text.toString('utf8');
    const reference = incidentsOf(format, prefix, string).map(({ incident }) => incident);
    const d = draws(seed ^ 0x5bd1e995);
    /** Soft: every path of the seed is compared; a mismatch is said with the lines it is about. `nothingLost`: extra incidents allowed. */
    const check = (path: string, expected: Incident[], found: Incident[], nothingLost = false) => {
      const { lost, extra } = difference(expected, found);
      if (lost.length === 0 && (nothingLost || extra.length === 0)) return;
      const message = `seed ${seed}, ${path}: ${title(variant)}\n${around(text, [...lost, ...extra])}`;
      expect.soft(nothingLost ? { lost } : { lost, extra }, message).toEqual(nothingLost ? { lost: [] } : { lost: [], extra: [] });
    };

    const plain = join(dir, `${seed}.log`);
    const gz = join(dir, `${seed}.log.gz`);
    writeFileSync(plain, text);
    writeFileSync(gz, gzipSync(text, { level: 1 }));
    try {
      // Replay assumes that a message's lines are written together, as the logging collector writes
      // them (recordAt.ts's furtherLines): another backend's line between an ERROR and its LOCATION
      // or CONTEXT makes it lose or misread that record, which the full parser reads whole (by pid).
      // A known limitation (stop 23), left alone: replay is not held to interleaved logs.
      if (!variant.interleave) {
        const replay = async (file: string) => {
          const found: Incident[] = [];
          await scanLog(file, { format, logLinePrefix: prefix, onIncident: (i) => void found.push(i) });
          return found;
        };
        check('scanLog, one thread', reference, await replay(plain));
        check('scanLog, gzipped (a stream)', reference, await replay(gz));
        const parallel: Incident[] = [];
        const handle = await open(plain, 'r');
        try {
          const pieceBytes = variant.large ? d.int(64 * 1024, 3 * 1024 * 1024) : d.int(200, Math.max(400, Math.floor(text.length / 3)));
          await scanInParallel(handle, text.length, { format, logLinePrefix: prefix, source: plain }, 2, (i) => void parallel.push(i), undefined, pieceBytes, {
            pool,
          });
        } finally {
          await handle.close();
        }
        check('scanInParallel, 2 threads', reference, parallel);

        const candidates = viaCandidates(format, prefix, text);
        expect.soft(viaCandidates(format, prefix, text, { wasm: false }).starts, `seed ${seed}: indexOf passes`).toEqual(candidates.starts);
        // csvlog: the scanner's candidates are a superset by design, the hit's own line as well as
        // the record it may lie inside of; replay frames them by quotes (ChunkScan). Read alone, a
        // line shaped like a record inside a quoted value (a forged one, or one a garbled quote put
        // there) is a record of its own: extra incidents, never fewer.
        const superset = format === 'postgres-csv' && (variant.forge || variant.mutate > 0);
        check('candidateLines + RecordReader.incidentAt', reference, candidates.incidents, superset);
        check('candidateLines + RecordReader.incidentByParser', candidates.incidents, viaCandidates(format, prefix, text, { byParser: true }).incidents);
        // The walk (LineSplitter's) goes on from each candidate's line end: a hit on a TAB line whose
        // record began before there gives that line (nextCandidate's floor), not the record's start.
        // So it returns lines candidateLines does not; it must pass over none of candidateLines'.
        const walk = viaCandidates(format, prefix, text, { walk: true });
        const walked = new Set(walk.starts);
        expect
          .soft(
            candidates.starts.filter((start) => !walked.has(start)),
            `seed ${seed}: candidate lines the walk passed over`,
          )
          .toEqual([]);
        check('nextCandidate walk + RecordReader.incidentAt', reference, walk.incidents, superset);
      }

      // The live path acts on an ERROR line at once (decidedByFirstLine) and again on the whole
      // record when that names something else: liveExpected is the reference with those first-line
      // decisions (by design, see SourcePipeline); equal to it otherwise, interleaved lines too.
      const live = liveExpected(format, prefix, string);
      const mode = d.int(0, 3);
      const sizes = [() => 256 * 1024, () => d.int(1, 4096), () => d.int(1000, 256 * 1024), () => d.int(1, 64)][mode]!;
      check(`live path, reads of ${['256 KiB', '1-4096 bytes', '1000 bytes to 256 KiB', '1-64 bytes'][mode]}`, live, viaLive(format, prefix, text, sizes));
      check('SourcePipeline', live, await viaPipeline(plain, format, prefix, text.length));
    } finally {
      rmSync(plain);
      rmSync(gz);
    }
  });
});

/*
 * Found by this test, not fixed: a line inside a message that is none of its lines as
 * PostgreSQL wrote them (garbled in its marker or its prefix) ends the message for replay
 * (recordAt.ts's furtherLines stops at the first line that is not a secondary line with the same
 * prefix), while the full parser passes over it (an unrecognised line; by pid, one of that backend)
 * and reads the LOCATION or CONTEXT after it. Replay then loses a verbose error, and takes an apply
 * worker's conflict for a unique violation. The generator garbles a stderr line only after its prefix
 * and marker, so that the random logs do not meet this; these are the smallest logs that do. When
 * replay reads on past such a line, the it.fails below fail: make them it().
 */
const PREFIX = '%m [%p] %q%u@%d ';
const head = (line: string) => `2026-11-27 10:01:36.123 UTC [42] ${line}\n`;
const LOCATION = 'app@db LOCATION:  _bt_check_unique, nbtinsert.c:664';
const GARBLED = [
  {
    name: 'a verbose error whose DETAIL marker is garbled (DETIL:): lost',
    lines: ['app@db ERROR:  23505: duplicate key value violates unique constraint "ticket_pkey"', 'app@db DETIL:  Key (id)=(1) already exists.', LOCATION],
  },
  {
    name: "a verbose error whose DETAIL line's prefix is garbled (ap@db): lost",
    lines: ['app@db ERROR:  23505: duplicate key value violates unique constraint "ticket_pkey"', 'ap@db DETAIL:  Key (id)=(1) already exists.', LOCATION],
  },
  {
    name: "an apply worker's conflict whose DETAIL marker is garbled: taken for a unique violation",
    lines: [
      'ERROR:  duplicate key value violates unique constraint "t_pkey"',
      'DETIL:  Key (id)=(1) already exists.',
      'CONTEXT:  processing remote data for replication origin "pg_16389" during message type "INSERT" for replication target relation "public.t" in transaction 740, finished at 0/1A2B3C4',
    ],
  },
].map(({ name, lines }) => ({ name, text: lines.map(head).join('') }));

describe('KNOWN MISMATCH (reported, not fixed): a garbled line inside a message ends it for replay, not for the full parser', () => {
  it.each(GARBLED)('the full parser finds the incident: $name', ({ text }) => {
    expect(incidentsOf('postgres-stderr', PREFIX, text)).toHaveLength(1);
  });

  it.fails.each(GARBLED)('replay finds what the full parser finds: $name', async ({ text }) => {
    const path = join(dir, 'garbled.log');
    writeFileSync(path, text);
    const found: Incident[] = [];
    await scanLog(path, { format: 'postgres-stderr', logLinePrefix: PREFIX, onIncident: (i) => void found.push(i) });
    expect(
      difference(
        incidentsOf('postgres-stderr', PREFIX, text).map(({ incident }) => incident),
        found,
      ),
    ).toEqual({ lost: [], extra: [] });
  });
});

/** The lines at the offsets the mismatches name (the first five). */
function around(text: Buffer, keys: string[]): string {
  const offsets = [...new Set(keys.map((key) => (JSON.parse(key) as Incident).offset!))].slice(0, 5);
  return offsets
    .map((offset) => {
      const lines: string[] = [];
      for (let at = offset, i = 0; i < 6 && at < text.length; i++) {
        const newline = text.indexOf(0x0a, at);
        const end = newline === -1 ? text.length : newline;
        const line = text.toString('utf8', at, end);
        lines.push(`  ${at}: ${JSON.stringify(line.length > 300 ? `${line.slice(0, 300)}…(${line.length})` : line)}`);
        at = end + 1;
      }
      return lines.join('\n');
    })
    .join('\n  --\n');
}
