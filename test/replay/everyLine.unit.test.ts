import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { Incident } from '../../src/detect/detectIncident.js';
import type { Format } from '../../src/formats/formatNames.js';
import { scanLog } from '../../src/replay/scanLog.js';
import { randomLog, variantOf } from '../helpers/randomLog.js';
import { liveExpected, viaPipeline } from '../helpers/fastPaths.js';
import { incidentsOf } from '../helpers/scannedSamples.js';

/*
 * replay over the formats read line by line (a container's log: Docker's json-file, Kubernetes'
 * CRI): the stderr parser inside passes over the lines without a needle and does not keep open a
 * record its ERROR line decided, as in the daemon. It must find what the full parser finds in the
 * log inside, every line read (the random logs of the differential test, stderr ones, wrapped as
 * the container runtimes write them). (auto is not held to it here: on these logs' odd prefixes
 * it takes some for application logs, by design, before this pre-check as after.)
 */
const dir = mkdtempSync(join(tmpdir(), 'seqwatch-every-line-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What an incident is, whatever wraps its lines (their offsets and line numbers are the wrapper's). */
const what = (incidents: Incident[]) =>
  incidents
    .map(({ kind, constraint, logTime, pid, database, sqlstate, replication }) =>
      JSON.stringify({ kind, constraint, logTime, pid, database, sqlstate, replication }),
    )
    .sort();

/**
 * Docker's json-file: an entry a line, a line longer than `max` characters split into entries only
 * the last of which ends in \n; `attrs` as `--log-opt labels=...` adds them, between stream and time.
 */
function dockerJson(lines: string[], max: number, attrs?: Record<string, string>, encode = goString): string {
  const out: string[] = [];
  lines.forEach((line, i) => {
    const time = new Date(Date.UTC(2026, 11, 3, 10) + i).toISOString();
    for (let at = 0; at === 0 || at < line.length; at += max) {
      const last = at + max >= line.length;
      const log = encode(line.slice(at, at + max) + (last ? '\n' : ''));
      out.push(`{"log":${log},"stream":"stderr",${attrs ? `"attrs":${JSON.stringify(attrs)},` : ''}"time":"${time}"}`);
    }
  });
  return out.join('\n') + '\n';
}

/**
 * A string as Docker writes it (moby's ffjsonWriteJSONBytesAsString): \n and \r short, every other
 * control character as \u00XX (a TAB too), and <, > and & as \u003c, \u003e and \u0026.
 */
function goString(text: string): string {
  // eslint-disable-next-line no-control-regex -- the control characters are what Go escapes
  const escaped = text.replace(/["\\\u0000-\u001f<>&]/g, (c) => {
    if (c === '"' || c === '\\') return `\\${c}`;
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  return `"${escaped}"`;
}

/** Kubernetes' CRI: `<time> <stream> <P|F> <text>`, a line longer than `max` characters in P pieces and a last F one. */
function cri(lines: string[], max: number): string {
  const out: string[] = [];
  lines.forEach((line, i) => {
    const time = new Date(Date.UTC(2026, 11, 3, 10) + i).toISOString().replace('Z', '123456Z');
    for (let at = 0; at === 0 || at < line.length; at += max) out.push(`${time} stderr ${at + max >= line.length ? 'F' : 'P'} ${line.slice(at, at + max)}`);
  });
  return out.join('\n') + '\n';
}

/** The first seeds of the random logs that are stderr ones, small enough for a unit test. */
const SEEDS = Array.from({ length: 200 }, (_, i) => i + 1)
  .filter((seed) => {
    const variant = variantOf(seed);
    return variant.format === 'postgres-stderr' && !variant.large;
  })
  .slice(0, 14);

describe('replay of container logs (read line by line) finds what the full parser finds inside them', () => {
  it.each(SEEDS)('seed %i: docker json-file, CRI, gzip-compressed', async (seed) => {
    const { variant, text } = randomLog(seed);
    const inner = text.toString('utf8');
    // (Some seeds' logs hold none the parser reads, their prefix unlike their lines: nothing may be found then either.)
    const expected = what(incidentsOf('postgres-stderr', variant.prefix, inner).map(({ incident }) => incident));
    const lines = inner.split('\n');
    if (lines.at(-1) === '') lines.pop();
    const cases: Array<{ name: string; format: Format; content: string | Buffer }> = [
      { name: 'docker-json', format: 'docker-json', content: dockerJson(lines, 16 * 1024) },
      { name: 'docker-json, lines split at 100 characters', format: 'docker-json', content: dockerJson(lines, 100) },
      { name: 'docker-json with attrs, split at 100', format: 'docker-json', content: dockerJson(lines, 100, { tag: 'gotrs-postgres', stream: 'x\n' }) },
      {
        name: 'docker-json as JSON.stringify writes it (TAB as \\t), split at 100',
        format: 'docker-json',
        content: dockerJson(lines, 100, undefined, JSON.stringify),
      },
      { name: 'cri, lines split at 100 characters', format: 'cri', content: cri(lines, 100) },
      { name: 'docker-json, gzip-compressed', format: 'docker-json', content: gzipSync(dockerJson(lines, 16 * 1024)) },
    ];
    for (const { name, format, content } of cases) {
      const file = join(dir, `${seed}.log`);
      writeFileSync(file, content);
      const found: Incident[] = [];
      await scanLog(file, { format, logLinePrefix: variant.prefix, innerFormat: 'postgres-stderr', onIncident: (i) => void found.push(i) });
      expect.soft(what(found), `seed ${seed}, replay, ${name}`).toEqual(expected);
    }
    // The daemon's follower passes over the entries the same way: what its parser inside
    // finds, with the first-line decisions it acts on at once (liveExpected).
    const live = what(liveExpected('postgres-stderr', variant.prefix, inner));
    for (const [format, max] of [
      ['docker-json', 16 * 1024],
      ['docker-json', 100],
      ['cri', 100],
    ] as const) {
      const file = join(dir, `${seed}-live.log`);
      const content = format === 'cri' ? cri(lines, max) : dockerJson(lines, max);
      writeFileSync(file, content);
      expect
        .soft(what(await viaPipeline(file, format, variant.prefix, Buffer.byteLength(content))), `seed ${seed}, the daemon, ${format} split at ${max}`)
        .toEqual(live);
    }
  });
});

describe('replay with --format auto', () => {
  // Found by a field trial: replay's line-by-line path told auto's choice to no one (the daemon logs it).
  it('tells which format auto chose, and when it chose again', async () => {
    const dup = 'duplicate key value violates unique constraint "ticket_pkey"';
    const file = join(dir, 'auto.log');
    // A Go service whose lines begin like PostgreSQL's: taken for the server's stderr, whose parser reads none of its errors.
    writeFileSync(
      file,
      [
        '2026-12-02 06:00:00.123 UTC [4242] LOG:  worker started',
        ...[1, 2, 3, 4].map((n) => `2026-12-02 06:00:0${n}.123 UTC [4242] ERROR: create ticket: pq: ${dup}`),
      ].join('\n') + '\n',
    );
    const told: string[] = [];
    const found: Incident[] = [];
    await scanLog(file, {
      format: 'auto',
      logLinePrefix: '%m [%p] ',
      onIncident: (incident) => void found.push(incident),
      onDetected: (format, inner) => told.push(`detected ${format}${inner ? `/${inner}` : ''}`),
      onMisread: (format, lines) => told.push(`misread ${format} ${lines}`),
    });
    expect(told).toEqual(['detected postgres-stderr', 'misread postgres-stderr 3', 'detected app-text']);
    expect(found).toHaveLength(4);
  });
});
