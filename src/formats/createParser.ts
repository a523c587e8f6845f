import { AppTextParser } from './AppTextParser.js';
import { CSV_RECORD_START, CsvlogParser } from './CsvlogParser.js';
import { JsonlogParser, parseObject } from './JsonlogParser.js';
import { compileLogLinePrefix } from './logLinePrefix.js';
import { bounded, newCounters, type LinePosition, type ParserCounters, type RecordParser, type RecordSink } from './RecordParser.js';
import { StderrPrefixParser } from './StderrPrefixParser.js';
import { splitSyslogLine, SyslogParser } from './SyslogParser.js';

export const FORMATS = ['postgres-stderr', 'postgres-csv', 'postgres-json', 'syslog', 'docker-json', 'app-text', 'auto'] as const;
export type Format = (typeof FORMATS)[number];
/** What a Docker json-file log can wrap. */
export const INNER_FORMATS = ['postgres-stderr', 'postgres-csv', 'postgres-json', 'app-text'] as const;
export type InnerFormat = (typeof INNER_FORMATS)[number];

export interface FormatOptions {
  source: string;
  logLinePrefix: string;
  /** For docker-json: the format of the lines inside. */
  innerFormat?: InnerFormat;
  /** For auto: told once which format the first lines showed. */
  onDetected?: (format: Exclude<Format, 'auto'>) => void;
  /** A cheap pre-check on whole lines, for the formats that can use one (postgres-stderr): see StderrPrefixParser. */
  interesting?: (line: string) => boolean;
}

export function createParser(format: Format, options: FormatOptions, onRecord: RecordSink): RecordParser {
  switch (format) {
    case 'postgres-stderr':
      return new StderrPrefixParser(options.logLinePrefix, options.source, onRecord, options.interesting);
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
  readonly counters: ParserCounters;
  private partial = '';
  private position: LinePosition | undefined;

  constructor(private readonly inner: RecordParser) {
    this.counters = inner.counters;
  }

  push(line: string, position?: LinePosition): void {
    const entry = parseObject(line);
    if (!entry || typeof entry.log !== 'string') {
      this.counters.unrecognisedLines++;
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
}

/** Lines looked at before settling for app-text. */
const AUTO_LINES = 50;

/**
 * `auto`: the format the first lines show. Lines wait until one of them is unmistakable (a
 * PostgreSQL stderr line with the configured prefix, csvlog, jsonlog, syslog, Docker json-file);
 * if none is after 50 lines, or when the source goes idle first, it is an application log.
 */
export class AutoParser implements RecordParser {
  private chosen: RecordParser | undefined;
  private readonly waiting: Array<{ line: string; position: LinePosition | undefined }> = [];
  private readonly stderr: RegExp;
  private readonly own = newCounters();

  constructor(
    private readonly options: FormatOptions,
    private readonly onRecord: RecordSink,
  ) {
    this.stderr = compileLogLinePrefix(options.logLinePrefix);
  }

  get counters(): ParserCounters {
    return this.chosen?.counters ?? this.own;
  }

  push(line: string, position?: LinePosition): void {
    if (this.chosen) {
      this.chosen.push(line, position);
      return;
    }
    this.waiting.push({ line, position });
    const format = recognise(line, this.stderr);
    if (format) this.choose(format);
    else if (this.waiting.length >= AUTO_LINES) this.choose('app-text');
  }

  flush(): void {
    if (!this.chosen && this.waiting.length > 0) this.choose('app-text');
    this.chosen?.flush();
  }

  private choose(format: Exclude<Format, 'auto'>): void {
    let inner: InnerFormat | undefined;
    if (format === 'docker-json') {
      // Docker wraps one of the others: look inside the first entry.
      const first = parseObject(this.waiting.at(-1)!.line);
      const wrapped = typeof first?.log === 'string' ? recognise(first.log.replace(/\n$/, ''), this.stderr) : undefined;
      inner = wrapped && (INNER_FORMATS as readonly string[]).includes(wrapped) ? (wrapped as InnerFormat) : 'postgres-stderr';
    }
    this.chosen = createParser(format, { ...this.options, innerFormat: inner }, this.onRecord);
    this.options.onDetected?.(format);
    for (const { line, position } of this.waiting.splice(0)) this.chosen.push(line, position);
  }
}

/** The format one line unmistakably belongs to, if any. */
export function recognise(line: string, stderr: RegExp): Exclude<Format, 'auto' | 'app-text'> | undefined {
  line = line.slice(0, 4096);
  if (line.startsWith('{')) {
    const entry = parseObject(line);
    if (entry && typeof entry.log === 'string' && 'stream' in entry) return 'docker-json';
    if (entry && typeof entry.error_severity === 'string') return 'postgres-json';
    return undefined;
  }
  if (splitSyslogLine(line)) return 'syslog';
  if (stderr.test(line)) return 'postgres-stderr';
  if (CSV_RECORD_START.test(line)) return 'postgres-csv';
  return undefined;
}
