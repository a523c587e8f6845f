import { bounded, type LinePosition, type ParserCounters, type RecordParser } from './RecordParser.js';

/** CRI lines longer than this (split by the runtime, 16 KiB by default) are reassembled up to here. */
const MAX_CRI_LINE = 1024 * 1024;
/** `2026-12-02T01:02:03.123456789Z` or with an offset (RFC 3339, any fraction). */
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)$/;

/** A CRI log line's parts, or undefined when it is not one. */
export function splitCriLine(line: string): { stream: 'stdout' | 'stderr'; partial: boolean; content: string } | undefined {
  const afterTime = line.indexOf(' ');
  if (afterTime === -1 || afterTime > 40 || !TIME.test(line.slice(0, afterTime))) return undefined;
  const afterStream = line.indexOf(' ', afterTime + 1);
  const stream = line.slice(afterTime + 1, afterStream);
  if (afterStream === -1 || (stream !== 'stdout' && stream !== 'stderr')) return undefined;
  // The tag: P (partial) or F (full), possibly followed by further ':'-separated flags.
  let afterTag = line.indexOf(' ', afterStream + 1);
  if (afterTag === -1) afterTag = line.length;
  const tag = line.slice(afterStream + 1, afterTag).split(':')[0];
  if (tag !== 'P' && tag !== 'F') return undefined;
  return { stream, partial: tag === 'P', content: line.slice(afterTag + 1) };
}

/**
 * Kubernetes' container logs as the kubelet keeps them (/var/log/pods/<pod>/<container>/N.log,
 * written by containerd or CRI-O): `<time> <stdout|stderr> <P|F> <content>` per line of the
 * container's output. A long line is split into P pieces and a last F piece; pieces are joined per
 * stream (stdout and stderr interleave), then the line goes to the format inside, as for docker-json.
 */
export class CriParser implements RecordParser {
  private readonly partial = { stdout: '', stderr: '' };
  private readonly position: { stdout?: LinePosition; stderr?: LinePosition } = {};
  private unrecognised = 0;

  constructor(private readonly inner: RecordParser) {}

  /** The inner format's counters (read afresh: auto's change with its choice), and the lines that were no CRI line. */
  get counters(): ParserCounters {
    return { ...this.inner.counters, unrecognisedLines: this.inner.counters.unrecognisedLines + this.unrecognised };
  }

  push(line: string, position?: LinePosition): void {
    const entry = splitCriLine(line);
    if (!entry) {
      this.unrecognised++;
      return;
    }
    const { stream } = entry;
    if (this.partial[stream] === '') this.position[stream] = position;
    this.partial[stream] += entry.content;
    if (this.partial[stream].length > MAX_CRI_LINE) this.partial[stream] = bounded(this.partial[stream]);
    if (entry.partial) return;
    const whole = this.partial[stream];
    this.partial[stream] = '';
    this.inner.push(whole, this.position[stream]);
  }

  flush(): void {
    this.inner.flush();
  }

  /** Between lines of the output (no P entry of either stream pending) and the parser inside may pass over lines. */
  canPassOver(): boolean {
    return this.partial.stdout === '' && this.partial.stderr === '' && (this.inner.canPassOver?.() ?? false);
  }

  /** The marks of the records inside: CRI writes a line's text as it is. */
  openRecordMarks(): readonly Buffer[] | undefined {
    return this.partial.stdout === '' && this.partial.stderr === '' ? this.inner.openRecordMarks?.() : undefined;
  }

  passedOverLines(lines: number): void {
    this.inner.passedOverLines?.(lines);
  }
}
