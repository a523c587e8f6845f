import { AppTextParser } from './AppTextParser.js';
import { CnpgParser, isCnpgEntry } from './CnpgParser.js';
import { CriParser, splitCriLine } from './CriParser.js';
import { CsvlogParser } from './CsvlogParser.js';
import { JsonlogParser, parseObject } from './JsonlogParser.js';
import type { LogRecord } from './LogRecord.js';
import { compileLogLinePrefix } from './logLinePrefix.js';
import { dockerMarks } from './passOver.js';
import { bounded, newCounters, type LinePosition, type ParserCounters, type RecordParser, type RecordSink } from './RecordParser.js';
import { StderrPrefixParser } from './StderrPrefixParser.js';
import { splitSyslogLine, SyslogParser } from './SyslogParser.js';

import type { Format, InnerFormat } from './formatNames.js';

export { FORMATS, INNER_FORMATS, type Format, type InnerFormat } from './formatNames.js';

export interface FormatOptions {
  source: string;
  logLinePrefix: string;
  /** For docker-json and cri: the format of the lines inside. */
  innerFormat?: InnerFormat;
  /** For auto: told which format the first lines showed (and, for a container log, the format inside). */
  onDetected?: (format: Exclude<Format, 'auto'>, inner?: Exclude<Format, 'auto'>) => void;
  /**
   * For auto: told when the format it chose gave no record for lines that hold a duplicate key
   * error (it then chooses again, from those lines on).
   */
  onMisread?: (format: Exclude<Format, 'auto'>, lines: number) => void;
  /** A cheap pre-check on whole lines, for the formats that can use one (postgres-stderr): see StderrPrefixParser. */
  interesting?: (line: string) => boolean;
  /** Told of each record as its first line is read, for the formats whose records span lines (postgres-stderr). */
  onRecordStart?: (record: LogRecord) => unknown;
}

export function createParser(format: Format, options: FormatOptions, onRecord: RecordSink): RecordParser {
  switch (format) {
    case 'postgres-stderr':
      return new StderrPrefixParser(options.logLinePrefix, options.source, onRecord, options.interesting, options.onRecordStart);
    case 'postgres-csv':
      return new CsvlogParser(options.source, onRecord);
    case 'postgres-json':
      return new JsonlogParser(options.source, onRecord);
    case 'syslog':
      return new SyslogParser(options.logLinePrefix, options.source, onRecord);
    case 'app-text':
      return new AppTextParser(options.source, onRecord);
    case 'docker-json':
      return new DockerJsonParser(createParser(options.innerFormat ?? 'postgres-stderr', options, onRecord));
    case 'cri':
      return new CriParser(createParser(options.innerFormat ?? 'postgres-stderr', options, onRecord));
    case 'cnpg-json':
      return new CnpgParser(options.source, onRecord);
    case 'auto':
      return new AutoParser(options, onRecord);
  }
}

/** Docker json-file lines longer than this (split by Docker at 16 KiB) are reassembled up to here. */
const MAX_DOCKER_LINE = 1024 * 1024;

/**
 * Docker's json-file driver: `{"log":"...\n","stream":"stderr","time":"..."}` per line of the
 * container's output. Docker splits long lines into several entries, only the last ending in \n,
 * so entries are joined until the newline, then the line goes to the format inside (a sidecar
 * reading the gotrs-postgres container's log file).
 */
export class DockerJsonParser implements RecordParser {
  private partial = '';
  private position: LinePosition | undefined;
  private unrecognised = 0;

  constructor(private readonly inner: RecordParser) {}

  /** The inner format's counters (read afresh: auto's change with its choice), and the lines that were no entry. */
  get counters(): ParserCounters {
    return { ...this.inner.counters, unrecognisedLines: this.inner.counters.unrecognisedLines + this.unrecognised };
  }

  push(line: string, position?: LinePosition): void {
    const entry = parseObject(line);
    if (!entry || typeof entry.log !== 'string') {
      this.unrecognised++;
      return;
    }
    if (this.partial === '') this.position = position;
    this.partial += entry.log;
    if (this.partial.length > MAX_DOCKER_LINE) this.partial = bounded(this.partial);
    if (!this.partial.endsWith('\n')) return;
    const lines = this.partial.slice(0, -1).split('\n');
    this.partial = '';
    for (const inner of lines) this.inner.push(inner.endsWith('\r') ? inner.slice(0, -1) : inner, this.position);
  }

  flush(): void {
    this.inner.flush();
  }

  /** Between lines of the output (no entry of a split line pending) and the parser inside may pass over lines. */
  canPassOver(): boolean {
    return this.partial === '' && (this.inner.canPassOver?.() ?? false);
  }

  openRecordMarks(): readonly Buffer[] | undefined {
    return this.partial === '' ? dockerMarks(this.inner.openRecordMarks?.()) : undefined;
  }

  passedOverLines(lines: number): void {
    this.inner.passedOverLines?.(lines);
  }
}

/** Lines looked at before settling for app-text. */
const AUTO_LINES = 50;
/**
 * Lines holding a duplicate key error that the chosen format took into no record, with no error it
 * did read after them, before auto says so and chooses again.
 */
const MISREAD_LINES = 3;
/** Lines kept since the choice, to be read again when it was wrong (lose nothing). */
const KEPT_LINES = 500;
const KEPT_CHARS = 4 * 1024 * 1024;
/**
 * Whether a line holds a duplicate key error, in any format: its English words, or its SQLSTATE
 * standing alone (not 23505 inside a longer number or word: an id, 123505).
 */
function holdsError(line: string): boolean {
  if (line.includes('duplicate key')) return true;
  for (let i = line.indexOf('23505'); i !== -1; i = line.indexOf('23505', i + 5)) {
    if (!isWordChar(line.charCodeAt(i - 1)) && !isWordChar(line.charCodeAt(i + 5))) return true;
  }
  return false;
}

/** 0-9, A-Z, a-z (NaN, outside the line: no). */
const isWordChar = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/** Lines a format took into no record (they went unrecognised, or had no record to belong to). */
const unreadLines = (counters: ParserCounters): number => counters.unrecognisedLines + counters.orphanLines;

type Waiting = { line: string; position: LinePosition | undefined };
/** Where a line or record is in its source, to tell which lines come after a record; -1 when unknown. */
const at = (where: LinePosition): number => where.offset ?? where.line ?? -1;

/**
 * `auto`: the format the first lines show. Lines wait until one of them is unmistakable by its
 * whole shape (a PostgreSQL stderr line with the configured prefix, a csvlog record, jsonlog,
 * syslog, Docker json-file, Kubernetes CRI, CloudNativePG); if none is after 50 lines, or when the
 * source goes idle first, it is an application log. A container log's inside is detected the same
 * way. When the chosen format takes lines that hold a duplicate key error into no record, auto says
 * so (onMisread, the misread counter) and chooses again without that format, reading again the
 * lines since its choice or since the last error it did read.
 *
 * A line the format does read, into any record, is no misread whatever it holds (found by a field
 * trial: on a busy server's jsonlog and stderr file, records whose vxid was "5/23505" or line_num
 * 23505, statements with an id 123505 or quoting the words in their TAB lines were counted, and
 * auto fell back to app-text: wrong counts, no times). Each line is counted after the format has
 * read it; an error record the format reads forgives the lines counted before it in the log, not
 * those after it (a stderr record is emitted at its backend's next line, or by the flush below).
 */
export class AutoParser implements RecordParser {
  private chosen:
    | {
        format: Exclude<Format, 'auto'>;
        parser: RecordParser;
        /** Where the lines holding an error it took into no record are (-1: unknown), since the last error it read. */
        unread: number[];
        lastErrorAt: number;
        kept: Waiting[];
        keptChars: number;
      }
    | undefined;
  private waiting: Waiting[] = [];
  private readonly stderr: RegExp;
  private readonly own = newCounters();
  private readonly excluded = new Set<string>();

  constructor(
    private readonly options: FormatOptions,
    private readonly onRecord: RecordSink,
  ) {
    this.stderr = compileLogLinePrefix(options.logLinePrefix);
  }

  get counters(): ParserCounters {
    const inner = this.chosen?.parser.counters;
    if (!inner) return this.own;
    const sum = newCounters();
    for (const key of Object.keys(sum) as Array<keyof ParserCounters>) sum[key] = this.own[key] + inner[key];
    return sum;
  }

  push(line: string, position?: LinePosition): void {
    const chosen = this.chosen;
    if (chosen) {
      this.keep(chosen, line, position);
      // app-text is the last resort, and a container log's inside is checked by the auto inside it.
      const checked = chosen.format !== 'app-text' && chosen.format !== 'docker-json' && chosen.format !== 'cri';
      const unreadBefore = checked ? unreadLines(chosen.parser.counters) : 0;
      chosen.parser.push(line, position);
      // A line the format took into a record (its first line, a field's line, a TAB line, a csvlog
      // line inside a quoted field) is that record's, whatever it holds: only a line it left out
      // can be an error it missed.
      if (!checked || unreadLines(chosen.parser.counters) === unreadBefore || !holdsError(line)) return;
      chosen.unread.push(at(position ?? {}));
      if (chosen.unread.length >= MISREAD_LINES) {
        // Records may still be assembling (stderr keeps one per backend until its next line): emit them first.
        chosen.parser.flush();
        if (chosen.unread.length >= MISREAD_LINES) this.misread(chosen);
      }
      return;
    }
    this.waiting.push({ line, position });
    const format = recognise(line, this.stderr, this.excluded);
    if (format) this.choose(format);
    else if (this.waiting.length >= AUTO_LINES) this.choose('app-text');
  }

  flush(): void {
    if (!this.chosen && this.waiting.length > 0) this.choose('app-text');
    this.chosen?.parser.flush();
  }

  private keep(chosen: NonNullable<AutoParser['chosen']>, line: string, position: LinePosition | undefined): void {
    if (chosen.format === 'app-text' || chosen.format === 'docker-json' || chosen.format === 'cri') return;
    chosen.kept.push({ line, position });
    chosen.keptChars += line.length;
    while (chosen.kept.length > KEPT_LINES || chosen.keptChars > KEPT_CHARS) chosen.keptChars -= chosen.kept.shift()!.line.length;
  }

  private choose(format: Exclude<Format, 'auto'>): void {
    const wrapper = format === 'docker-json' || format === 'cri';
    const options: FormatOptions = wrapper
      ? {
          // A container log wraps any of the others: its inside is detected on its own lines.
          ...this.options,
          innerFormat: 'auto',
          onDetected: (inner) => this.options.onDetected?.(format, inner),
        }
      : this.options;
    const chosen = { format, parser: undefined as unknown as RecordParser, unread: [] as number[], lastErrorAt: -1, kept: [] as Waiting[], keptChars: 0 };
    chosen.parser = createParser(format, options, (record) => {
      if (record.sqlstate === '23505' || record.message.includes('duplicate key')) {
        // An error it read: the lines it missed before it are forgiven, not those after it (where known).
        const where = at(record);
        chosen.unread = where === -1 ? [] : chosen.unread.filter((u) => u !== -1 && u > where);
        chosen.lastErrorAt = Math.max(chosen.lastErrorAt, where);
      }
      this.onRecord(record);
    });
    this.chosen = chosen;
    if (!wrapper) this.options.onDetected?.(format);
    for (const { line, position } of this.waiting.splice(0)) this.push(line, position);
  }

  private misread(chosen: NonNullable<AutoParser['chosen']>): void {
    this.options.onMisread?.(chosen.format, chosen.unread.length);
    for (const key of Object.keys(this.own) as Array<keyof ParserCounters>) this.own[key] += chosen.parser.counters[key];
    this.own.misreadLines += chosen.unread.length;
    this.excluded.add(chosen.format);
    this.chosen = undefined;
    // Not the lines of the errors it did read (where the source says where lines are).
    const again = chosen.kept.filter((w) => at(w.position ?? {}) === -1 || at(w.position ?? {}) > chosen.lastErrorAt);
    for (const { line, position } of again) this.push(line, position);
  }
}

/** csvlog's first columns: time with milliseconds and zone, user, database, pid, host, session id, line number. */
const CSVLOG_SHAPE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [^ ,"]{1,64},(?:"(?:[^"]|"")*")?,(?:"(?:[^"]|"")*")?,\d*,(?:"[^"]*")?,[0-9a-f]+\.[0-9a-f]+,\d+,/;

/** The format one line unmistakably belongs to, if any (not one of `excluded`). */
export function recognise(line: string, stderr: RegExp, excluded: ReadonlySet<string> = new Set()): Exclude<Format, 'auto' | 'app-text'> | undefined {
  const ok = (format: Exclude<Format, 'auto' | 'app-text'>) => (excluded.has(format) ? undefined : format);
  if (line.startsWith('{')) {
    const entry = parseObject(line);
    if (entry && typeof entry.log === 'string' && 'stream' in entry) return ok('docker-json');
    if (entry && typeof entry.error_severity === 'string') return ok('postgres-json');
    if (entry && isCnpgEntry(entry)) return ok('cnpg-json');
    return undefined;
  }
  line = line.slice(0, 4096);
  if (splitCriLine(line)) return ok('cri');
  if (splitSyslogLine(line)) return ok('syslog');
  if (stderr.test(line)) return ok('postgres-stderr');
  if (CSVLOG_SHAPE.test(line)) return ok('postgres-csv');
  return undefined;
}
