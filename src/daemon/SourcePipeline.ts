import type { Logger } from 'pino';
import type { SourceConfig } from '../config/config.js';
import { detectIncident, firstLineDecision, unreadErrorSample, type Incident } from '../detect/detectIncident.js';
import { holdsStderrNeedle, IncidentScanner } from '../detect/scanner.js';
import { createParser } from '../formats/createParser.js';
import { detectedText, misreadText } from '../formats/formatNames.js';
import { lineSkippingFor } from '../formats/passOver.js';
import type { LogRecord } from '../formats/LogRecord.js';
import type { RecordParser } from '../formats/RecordParser.js';
import type { MetricsSources } from '../metrics/Metrics.js';
import { traceHeal, tracingHeal } from '../metrics/healTrace.js';
import { sourceReadProblem, stuckProblem, unparsedProblem, type HealthProblem } from '../service/health.js';
import type { CheckpointStore } from '../sources/CheckpointStore.js';
import { CheckpointTracker } from '../sources/CheckpointTracker.js';
import { FileFollower } from '../sources/FileFollower.js';
import type { Follower, FollowerHandlers } from '../sources/Follower.js';
import { JournalFollower } from '../sources/JournalFollower.js';
import type { LinePosition, LineSkipping } from '../sources/LineSplitter.js';
import { StreamFollower } from '../sources/StreamFollower.js';
import { tailLines } from '../util/tailLines.js';

/** A follower that has not polled for this long is stuck. */
const STUCK_FOLLOWER_MS = 30_000;
/** A line that held a sequence error's text and was not taken by the format keeps the source unhealthy this long. */
const UNPARSED_MS = 60 * 60_000;
/** English error texts: a line holding one that the format does not take is an error seen and lost. */
/**
 * Records decided by their first line and not yet emitted, at most: a parser holds at most 4,096
 * open records (StderrPrefixParser's MAX_PENDING) and one settled one; past this the oldest
 * decision is dropped (its record, if ever emitted, is then detected whole again and taken if it
 * changed: nothing is lost, at worst an incident is taken twice).
 */
const MAX_DECIDED_EARLY = 8_192;

/**
 * How long the records still being assembled wait, once the source is read to its end, before
 * they are emitted without the lines that may still come. A container runtime writes each line of a
 * message apart (Docker's json-file: a field trial's follower read an apply worker's ERROR, caught
 * up and emitted it as a unique violation, healed by a setval on the subscriber, before the CONTEXT
 * that makes it a replication conflict, a stuck subscription, was written). A session's unique
 * violation is acted on at its first line (decidedByFirstLine): its heal does not wait for this.
 */
const IDLE_FLUSH_MS = 500;

/** What a record's first line decided (decidedByFirstLine), and its message then when the record so far said the same. */
interface EarlyDecision {
  incident: Incident;
  settled: string | undefined;
}

/** What a pipeline needs from the daemon around it. */
export interface PipelineContext {
  logger: Logger;
  checkpoints: CheckpointStore;
  /** To the databases (Databases.route): settles once the incident's outcome is audited. */
  route(incident: Incident): Promise<void>;
  /** One server followed through several destinations: true for the copies of an error already taken. */
  isRepeat(incident: Incident, destination: string): boolean;
  /** A promise while the stages after the sources are full: reading waits for it. */
  backpressure(): Promise<void> | undefined;
  /** The end of standard input is the end of the pipeline: the daemon stops, as after SIGTERM. */
  onEnd(): void;
}

export type SourceMetrics = ReturnType<MetricsSources['sources']>[number];

/** What identifies a source across reloads: the same path read the same way. */
export const sourceKey = (s: SourceConfig): string => JSON.stringify([s.path, s.format, s.log_line_prefix]);

/** Which of a server's log destinations a source reads (stderr, csvlog, jsonlog): its format. */
export function destinationOf(source: SourceConfig): string {
  return source.format === 'docker-json' ? (source.inner_format ?? 'postgres-stderr') : source.format;
}

/**
 * One source, left to right: Follower -> RecordParser -> detectIncident -> route (the databases),
 * with the CheckpointTracker that decides where a restart resumes: each line read opens a record,
 * each flush closes them, each incident holds the checkpoint until its outcome is audited.
 */
export class SourcePipeline {
  readonly key: string;
  private readonly parser: RecordParser;
  private readonly follower: Follower;
  private readonly tracker: CheckpointTracker;
  /** Which of a server's destinations this is (stderr, csvlog, jsonlog): see SameErrorFilter. */
  private readonly destination: string;
  /** Lines holding a sequence error's text that the format did not take (see UNPARSED_MS). */
  private unparsed: { count: number; at: number; sample: string; line?: number } | undefined;
  private lastBytes = 0;
  private lastGrowth = Date.now();
  /**
   * Records whose ERROR line was acted on already (decidedByFirstLine), with what it decided and,
   * when the record so far said the same (settled), its message then; each is let go when its
   * record is emitted (onRecord). A Map, not a WeakMap: a WeakMap in old space took the ephemeron
   * write barrier's slow path on every set (a young record as key) and its entries were GC work:
   * a warm pipeline over the bench's busy stderr log took 1.7-2.2 ms CPU per MiB with it, 1.2 with
   * this (best of 7 rounds, same run). Bounded (MAX_DECIDED_EARLY) for
   * records a parser never emits (a format detected anew drops its parser).
   */
  private readonly decidedEarly = new Map<LogRecord, EarlyDecision>();
  /**
   * The last record decided by its first line, kept out of decidedEarly: a settled record is emitted
   * at its backend's next line, before any other record starts, so one slot serves nearly all of
   * them (the busy mix's unique violations) without a Map's hashing, insertion and deletion each.
   * A record starting while the slot is taken moves the slot's decision to the Map.
   */
  private lastEarly: { record: LogRecord; early: EarlyDecision } | undefined;
  /** The flush of the records still being assembled, due IDLE_FLUSH_MS after the source was read to its end. */
  private idleFlush: NodeJS.Timeout | undefined;
  /** The outcome the last incident taken waits for, and that incident's offset (see take). */
  private lastOutcome: { done: Promise<void>; offset: number } | undefined;

  /** `parent`: for a file found by a glob, the glob source's key. */
  constructor(
    readonly config: SourceConfig,
    private readonly context: PipelineContext,
    readonly parent?: string,
  ) {
    this.key = sourceKey(config);
    this.destination = destinationOf(config);
    const skipping = lineSkipping(config);
    const { logger } = context;
    this.parser = createParser(
      config.format,
      {
        source: config.path,
        logLinePrefix: config.log_line_prefix,
        ...(config.inner_format ? { innerFormat: config.inner_format } : {}),
        onDetected: (format, inner) => logger.info({ source: config.path, format, ...(inner ? { inner_format: inner } : {}) }, detectedText(format, inner)),
        onMisread: (format, lines) => logger.warn({ source: config.path, format, lines }, misreadText(config.path!, format, lines, 'set format in the config')),
        interesting: skipping.interesting,
        // What the ERROR line already decides is acted on at once, not when its DETAIL and STATEMENT
        // lines and the next record's prefix have come (decidedByFirstLine). When the record so far
        // says the same, its later lines cannot change it (a session's: isSession in detectIncident),
        // only its message's TAB lines could: the parser need not read the rest.
        onRecordStart: (record) => {
          const decision = firstLineDecision(record);
          if (!decision) return false;
          const { incident, settled } = decision;
          this.take(incident);
          const previous = this.lastEarly;
          if (previous !== undefined) {
            if (this.decidedEarly.size >= MAX_DECIDED_EARLY) this.decidedEarly.delete(this.decidedEarly.keys().next().value!);
            this.decidedEarly.set(previous.record, previous.early);
          }
          this.lastEarly = { record, early: { incident, settled: settled ? record.message : undefined } };
          return settled;
        },
      },
      (record) => this.onRecord(record),
    );
    this.follower = followerFor(config, this.handlers(), skipping.forFollower(this.parser));
    this.tracker = new CheckpointTracker(context.checkpoints, config.path, this.follower, {
      onSaveError: (error) =>
        logger.warn({ source: config.path, err: error.message }, 'cannot write the checkpoint: a restart would re-read from the last one'),
    });
  }

  /** Follows from the saved position, if there is one of this source's kind. */
  async start(): Promise<void> {
    const resume = this.context.checkpoints.load(this.config.path);
    if (resume)
      this.context.logger.info(
        { source: this.config.path, ...(resume.kind === 'file' ? { offset: resume.checkpoint.offset } : { cursor: resume.cursor }) },
        'resuming from the checkpoint',
      );
    await this.follower.start(resume);
  }

  private onRecord(record: LogRecord): void {
    let early: EarlyDecision | undefined;
    if (this.lastEarly?.record === record) {
      early = this.lastEarly.early;
      this.lastEarly = undefined;
    } else if (this.decidedEarly.size > 0) {
      early = this.decidedEarly.get(record);
      if (early !== undefined) this.decidedEarly.delete(record);
    }
    // Settled, and its message as it was then: nothing else in it can change what it is.
    if (early !== undefined && early.settled === record.message) return;
    const incident = detectIncident(record);
    if (!incident) return;
    // Its first line was acted on already: the rest of the record adds nothing unless it changed what it names.
    if (early?.incident.kind === incident.kind && early.incident.constraint === incident.constraint) return;
    this.take(incident);
  }

  /** An incident to the databases, holding the checkpoint until its outcome is audited. */
  private take(incident: Incident): void {
    if (this.context.isRepeat(incident, this.destination)) return;
    if (tracingHeal()) traceHeal('incident', { offset: incident.offset, constraint: incident.constraint, logTime: incident.logTime });
    const outcome = this.context.route(incident);
    // The same outcome as the last incident's (the databases coalesce the incidents of a name while
    // it is looked up), which came before this one: its hold on the checkpoint covers this one too.
    const last = this.lastOutcome;
    if (last !== undefined && last.done === outcome && incident.offset !== undefined && last.offset <= incident.offset) return;
    const done = this.tracker.openIncident(incident.offset);
    this.lastOutcome = incident.offset !== undefined ? { done: outcome, offset: incident.offset } : undefined;
    void outcome.finally(done);
  }

  private handlers(): FollowerHandlers {
    return {
      onLine: (line: Buffer, position: LinePosition) => {
        this.tracker.lineParsed();
        if (tracingHeal()) traceHeal('read', { offset: position.offset });
        const text = line.toString('utf8');
        const unrecognised = this.parser.counters.unrecognisedLines;
        this.parser.push(text, position);
        if (this.parser.counters.unrecognisedLines !== unrecognised) this.noteUnparsed(text, position);
      },
      onIdle: () => {
        // Not at once: a record's later lines may still be on their way (see IDLE_FLUSH_MS).
        this.idleFlush ??= setTimeout(() => {
          this.idleFlush = undefined;
          this.flush();
          this.tracker.request();
        }, IDLE_FLUSH_MS);
        this.tracker.request();
      },
      onWarning: (message: string) => this.context.logger.warn({ source: this.config.path }, message),
      backpressure: () => this.context.backpressure(),
      onEnd: () => this.context.onEnd(),
    };
  }

  /** Seen and not taken: an error lost to a prefix or format that does not match. Said, not counted only. */
  private noteUnparsed(text: string, position: LinePosition): void {
    // The sample ends with the error's words: the part before them is what did not match the
    // prefix, and what follows may hold row data, which is not for the audit log.
    const sample = unreadErrorSample(text);
    if (sample === undefined) return;
    this.unparsed = { count: (this.unparsed?.count ?? 0) + 1, at: Date.now(), sample, ...(position.line !== undefined ? { line: position.line } : {}) };
  }

  /** Records still being assembled are emitted now (their continuation lines are not waited for). */
  flush(): void {
    this.parser.flush();
    this.tracker.recordsFlushed();
  }

  /** Stops reading; the checkpoint is kept for saveCheckpoint (after the checks under way) or close. */
  stopReading(): Promise<void> {
    return this.follower.stop();
  }

  /** The last checkpoint (at stop, once the checks under way finished, or before those still waiting are given up); then none. */
  saveCheckpoint(): void {
    this.tracker.close();
  }

  /** No longer followed (gone from a glob, idle, or removed by a reload): stops, with a last checkpoint. */
  async close(): Promise<void> {
    clearTimeout(this.idleFlush);
    this.idleFlush = undefined;
    await this.follower.stop();
    this.tracker.close();
  }

  get unfinishedIncidents(): number {
    return this.tracker.unfinishedIncidents;
  }

  /** How long since the source last grew (a glob's files idle for long are closed). */
  idleFor(now: number): number {
    if (this.follower.counters.bytes !== this.lastBytes) {
      this.lastBytes = this.follower.counters.bytes;
      this.lastGrowth = now;
    }
    return now - this.lastGrowth;
  }

  /** `heldBack`: the followers wait on purpose (backpressure), which is not being stuck. */
  problems(now: number, heldBack: boolean): HealthProblem[] {
    const problems: HealthProblem[] = [];
    const silentFor = now - this.follower.lastAliveAt(now);
    if (!heldBack && silentFor >= STUCK_FOLLOWER_MS) problems.push(stuckProblem(this.config.path, silentFor));
    if (readsFile(this.config)) {
      const unreadable = sourceReadProblem(this.config.path, false);
      if (unreadable) problems.push(unreadable);
    }
    if (this.unparsed && now - this.unparsed.at < UNPARSED_MS)
      problems.push(unparsedProblem(this.config, this.unparsed.count, this.unparsed.sample, this.unparsed.line));
    return problems;
  }

  metrics(): SourceMetrics {
    const { parser, follower } = this;
    return {
      source: this.config.path,
      records: parser.counters.records,
      bytes: follower.counters.bytes,
      lagBytes: follower.lagBytes(),
      oddities: {
        oversized: follower.counters.oversizedLines,
        unrecognised: parser.counters.unrecognisedLines,
        orphan: parser.counters.orphanLines,
        misread: parser.counters.misreadLines,
      },
      skipped: parser.counters.skippedLines,
    };
  }
}

const readsFile = (source: SourceConfig): boolean => !source.journal_unit && source.path !== '-';

function followerFor(source: SourceConfig, handlers: FollowerHandlers, skipping: LineSkipping | undefined): Follower {
  if (source.journal_unit) {
    return new JournalFollower(source.path, handlers, {
      unit: source.journal_unit,
      ...(process.env.SEQWATCH_JOURNALCTL ? { command: process.env.SEQWATCH_JOURNALCTL } : {}),
    });
  }
  if (source.path === '-') return new StreamFollower('-', process.stdin, handlers);
  return new FileFollower(source.path, handlers, { startAt: source.start_at, ...(skipping ? { skipping } : {}) });
}

/** A followed file's last bytes (64 KiB at most, whole lines), the scanner's sample; none when it cannot be read. */
function lastBytesOf(path: string): Buffer {
  try {
    return Buffer.from(tailLines(path, 64 * 1024).join('\n'));
  } catch {
    return Buffer.alloc(0);
  }
}

/**
 * Line skipping, the one place it is wired: most of a busy log cannot matter, so lines without an
 * incident's needle are passed over. The parser gets a string pre-check (`interesting`); a file
 * follower gets the scanner's candidate lines, and asks the parser whether it may pass over lines
 * unseen (nothing being assembled, or only records its marks find) and tells it how many it did.
 */
function lineSkipping(source: SourceConfig): { interesting: (line: string) => boolean; forFollower: (parser: RecordParser) => LineSkipping | undefined } {
  return {
    // The scanner's needles (a verbose `FEHLER:  23505: ` message without %e was lost here to a
    // list of English words, before the pre-check was the scanner's).
    interesting: holdsStderrNeedle(source.log_line_prefix),
    // The shared scanner names the lines that may matter; the format frames what may be passed over
    // (formats/passOver.ts: csvlog only whole records, stderr past other backends' lines).
    forFollower: (parser) => {
      // A container runtime's entries carry a stderr log's needles as its lines do (CRI writes the
      // text as it is; none holds a character JSON escapes): the scanner searches them as they are.
      const inside = source.format === 'docker-json' || source.format === 'cri' ? (source.inner_format ?? 'postgres-stderr') : undefined;
      if (inside !== undefined && inside !== 'postgres-stderr') return undefined;
      const scanner = new IncidentScanner(inside ?? source.format, source.log_line_prefix);
      if (!scanner.filters) return undefined;
      // Made ready now, from the file's last bytes, rather than by the first bytes read (see prepare).
      const sample = lastBytesOf(source.path);
      if (sample.length > 0) scanner.prepare(sample);
      return lineSkippingFor(source.format, parser, scanner);
    },
  };
}
