import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parseConfig } from '../../src/config/config.js';
import { SourcePipeline } from '../../src/daemon/SourcePipeline.js';
import { decidedByFirstLine, detectIncident, firstLineDecision, type Incident } from '../../src/detect/detectIncident.js';
import { IncidentScanner, scannerNeedles, type ScannedFormat, type ScannerOptions } from '../../src/detect/scanner.js';
import { createParser } from '../../src/formats/createParser.js';
import type { LogRecord } from '../../src/formats/LogRecord.js';
import { lineSkippingFor } from '../../src/formats/passOver.js';
import { RecordReader } from '../../src/replay/recordAt.js';
import { CheckpointStore } from '../../src/sources/CheckpointStore.js';
import { LineSplitter } from '../../src/sources/LineSplitter.js';
import { MAX_LINE_BYTES } from '../../src/sources/maxLineBytes.js';
import { parseWhole } from './scannedSamples.js';

/*
 * The ways of finding a log's incidents that the differential test (test/replay/differential.unit.test.ts)
 * holds to the full parser, beside replay's own (scanLog, scanInParallel, called there): the scanner's
 * candidate lines read by RecordReader, and the live path.
 */

/**
 * An incident as compared: every field (keys sorted, whatever order a path set them in) but where
 * the reader names it (its source; a line number only the line-by-line readers give).
 */
export const keyOf = (incident: Incident): string => JSON.stringify(sortedKeys({ ...incident, source: undefined, line: undefined }));

const sortedKeys = (value: unknown): unknown =>
  value !== null && typeof value === 'object'
    ? Object.fromEntries(
        Object.entries(value)
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([key, field]) => [key, sortedKeys(field)]),
      )
    : value;

/** What `found` lost of `expected` and what it has that `expected` has not (multisets of keyOf). */
export function difference(expected: Incident[], found: Incident[]): { lost: string[]; extra: string[] } {
  const count = new Map<string, number>();
  for (const key of found.map(keyOf)) count.set(key, (count.get(key) ?? 0) + 1);
  const lost: string[] = [];
  for (const incident of expected) {
    const key = keyOf(incident);
    const n = count.get(key) ?? 0;
    if (n > 0) count.set(key, n - 1);
    else lost.push(key);
  }
  const extra = [...count].flatMap(([key, n]) => Array<string>(n).fill(key));
  return { lost, extra };
}

/**
 * What the live path must take of a log: the full parser's incidents (each record whole), and
 * before each the incident its ERROR line decided alone (decidedByFirstLine), acted on at once, where
 * the whole record names something else or nothing (SourcePipeline does so by design). That is
 * only for a message whose TAB lines go on after the name: a first-line decision that the rest of
 * the record overrules with its message unchanged throws (decidedByFirstLine decided too early).
 */
export function liveExpected(format: ScannedFormat, prefix: string, text: string): Incident[] {
  const early = new Map<LogRecord, { incident: Incident; message: string }>();
  const taken: Incident[] = [];
  const parser = createParser(
    format,
    {
      source: 'log',
      logLinePrefix: prefix,
      onRecordStart: (record) => {
        const incident = decidedByFirstLine(record);
        if (incident) early.set(record, { incident, message: record.message });
        return false;
      },
    },
    (record) => {
      const first = early.get(record);
      const whole = detectIncident(record);
      if (first) taken.push(first.incident);
      if (whole && first?.incident.kind === whole.kind && first.incident.constraint === whole.constraint) return;
      if (first && first.message === record.message)
        throw new Error(
          `the first line at ${record.offset} decided ${keyOf(first.incident)}, the whole record (same message) ${whole ? keyOf(whole) : 'nothing'}`,
        );
      if (whole) taken.push(whole);
    },
  );
  parseWhole(format, prefix, text, parser);
  return taken;
}

/**
 * The scanner's candidate lines of the whole log (candidateLines; `walk`: as a reader passing over
 * lines finds them, nextCandidate from each candidate's line end), each read by
 * RecordReader.incidentAt (`byParser`: by the format's parser alone, incidentByParser).
 */
export function viaCandidates(format: ScannedFormat, prefix: string, bytes: Buffer, how: ScannerOptions & { walk?: boolean; byParser?: boolean } = {}) {
  const scanner = new IncidentScanner(format, prefix, how.wasm === false ? { wasm: false } : {});
  let starts: number[] = [];
  if (!how.walk) starts = scanner.candidateLines(bytes);
  else
    for (let at = scanner.nextCandidate(bytes, 0); at !== -1;) {
      starts.push(at);
      const newline = bytes.indexOf(0x0a, at);
      at = newline === -1 ? -1 : scanner.nextCandidate(bytes, newline + 1);
    }
  const reader = new RecordReader(format, prefix, 'log');
  const incidents = starts.flatMap((start) => {
    const incident = how.byParser ? reader.incidentByParser(bytes, start, bytes.length, start) : reader.incidentAt(bytes, start, bytes.length, start);
    return incident ? [incident] : [];
  });
  return { starts, incidents };
}

/**
 * The live path with reads of `sizes()` bytes into one reused buffer (as FileFollower reads): lines
 * split and passed over by LineSplitter with the scanner's candidates, parsed with the pre-check and
 * the first-line decisions, as SourcePipeline wires them (a copy of its wiring: lineSkipping,
 * onRecordStart, onRecord, with one Map for its slot and bounded Map of decided records;
 * viaPipeline runs the real one, whose reads are always 256 KiB).
 */
export function viaLive(format: ScannedFormat, prefix: string, bytes: Buffer, sizes: () => number): Incident[] {
  const taken: Incident[] = [];
  const needles = scannerNeedles('postgres-stderr', prefix);
  const decided = new Map<LogRecord, { incident: Incident; settled: string | undefined }>();
  const parser = createParser(
    format,
    {
      source: 'log',
      logLinePrefix: prefix,
      interesting: (line) => needles.some((needle) => line.includes(needle)),
      onRecordStart: (record) => {
        const decision = firstLineDecision(record);
        if (!decision) return false;
        const { incident, settled } = decision;
        taken.push(incident);
        decided.set(record, { incident, settled: settled ? record.message : undefined });
        return settled;
      },
    },
    (record) => {
      const early = decided.get(record);
      decided.delete(record);
      if (early !== undefined && early.settled === record.message) return;
      const incident = detectIncident(record);
      if (!incident) return;
      if (early?.incident.kind === incident.kind && early.incident.constraint === incident.constraint) return;
      taken.push(incident);
    },
  );
  const scanner = new IncidentScanner(format, prefix);
  // Made ready from the file's last bytes, as SourcePipeline does (any sample gives the same answers).
  scanner.prepare(bytes.subarray(Math.max(0, bytes.length - 64 * 1024)));
  const splitter = new LineSplitter(
    MAX_LINE_BYTES,
    (line, position) => parser.push(line.toString('utf8'), position),
    () => {},
    0,
    lineSkippingFor(format, parser, scanner),
  );
  const chunk = Buffer.allocUnsafe(256 * 1024);
  for (let at = 0; at < bytes.length;) {
    const n = Math.min(bytes.length - at, sizes(), chunk.length);
    bytes.copy(chunk, 0, at, at + n);
    splitter.push(chunk.subarray(0, n), at);
    at += n;
  }
  parser.flush();
  return taken;
}

const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} } as unknown as Logger;

/** The daemon's own SourcePipeline following the file from its beginning (its FileFollower, scanner, parser), no database: what it routes. */
export async function viaPipeline(path: string, format: ScannedFormat | 'docker-json' | 'cri', prefix: string, size: number): Promise<Incident[]> {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-differential-live-'));
  const yaml = `database: { url: "postgresql://seqwatch@db/gotrs" }\nsources: [{ path: ${JSON.stringify(path)}, format: ${format}, log_line_prefix: ${JSON.stringify(prefix)}, start_at: beginning }]\n`;
  const routed: Incident[] = [];
  const pipeline = new SourcePipeline(parseConfig(yaml, join(dir, 'seqwatch.yaml')).sources[0]!, {
    logger: quiet,
    checkpoints: new CheckpointStore(join(dir, 'state')),
    route: (incident) => {
      routed.push(incident);
      return Promise.resolve();
    },
    isRepeat: () => false,
    backpressure: () => undefined,
    onEnd: () => {},
  });
  try {
    await pipeline.start();
    for (const deadline = Date.now() + 30_000; pipeline.metrics().bytes < size;) {
      if (Date.now() > deadline) throw new Error(`the pipeline read ${pipeline.metrics().bytes} of ${size} bytes in 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    pipeline.flush();
  } finally {
    await pipeline.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return routed;
}
