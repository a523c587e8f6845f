import { countByte } from '../detect/wasm/countByte.js';

/** Where a line came from: enough for an operator to find it again. */
export interface LinePosition {
  /** Byte offset of the line's first byte in the file it was read from. */
  offset: number;
  /** 1-based line number, when reading started at the beginning (unknown after starting at the end). */
  line?: number;
  /** The first line after a discontinuity: see formats/RecordParser.ts. */
  boundary?: 'start' | 'gap';
}

/**
 * Lets a splitter pass over whole runs of lines that cannot matter without handing them out one by
 * one: while `canSkip()` (nothing is being assembled downstream), the lines before the next one
 * `nextCandidate` names are only counted. The search is the scanner's (src/detect/), over the raw
 * bytes, the way grep -F does.
 */
export interface LineSkipping {
  /**
   * The start of the first line in bytes[from, to) that may begin a record that matters, or -1:
   * everything before `to` may be passed over (`from` and `to` are line starts).
   */
  nextCandidate(bytes: Buffer, from: number, to: number): number;
  /**
   * Records whose fields are quoted and may hold newlines (csvlog: `"`): lines are passed over only
   * up to a line start where the quotes passed over balance, so a record is never entered halfway.
   */
  quote?: number;
  /**
   * Whether lines may be passed over now: true (nothing is being assembled), false (every line is
   * handed out), or the marks of the records still being assembled (stderr: each open record's pid
   * as the prefix prints it): lines holding one are handed out too, the others passed over.
   */
  canSkip(): boolean | readonly Buffer[];
  /** `lines` complete lines were passed over. */
  onSkipped(lines: number): void;
  /**
   * Lines that are a container runtime's entries, each wrapping a line of the log inside (Docker's
   * json-file): whether the entry at `start` holds a line going on with the record before it
   * (inside, a stderr TAB line: handed out after a line handed out, as a TAB line is), and the latest
   * entry start at or before `until` where passing over may stop (never between the entries the
   * runtime split one long line into).
   */
  wrapped?: {
    continues(bytes: Buffer, start: number): boolean;
    /** `end`: where the run stops; `lines`: the entries in bytes[start, end), which it has walked. */
    boundary(bytes: Buffer, start: number, until: number): { end: number; lines: number };
  };
}

const NEWLINE = 0x0a;
const TAB = 0x09;

/**
 * Splits bytes into lines on the newline byte, so a multi-byte character or a NUL never confuses
 * it. A line longer than `maxLineBytes` is skipped (and counted) without losing the next one; a
 * CRLF line comes out clean. Lines are handed out as views of the caller's buffer: decode or copy
 * them before returning.
 */
export class LineSplitter {
  /** Offset of the first byte of the line being assembled. */
  lineStart: number;
  lineNumber: number | undefined;
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** Inside a line that is over the limit: drop bytes up to the next newline. */
  private discarding = false;
  /** What the next line handed out follows: a (re)start of reading, or a dropped line. */
  private boundary: 'start' | 'gap' | undefined = 'start';
  /** The buffer whose open-record marks were last searched, and where each next occurs in it (-1: not again). */
  private marksIn: Buffer | undefined;
  private readonly marksAt = new Map<Buffer, number>();

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: Buffer, position: LinePosition) => void,
    private readonly onOversized: () => void,
    start = 0,
    private readonly skipping?: LineSkipping,
  ) {
    this.lineStart = start;
    this.lineNumber = start === 0 ? 1 : undefined;
    const wrapped = skipping?.wrapped;
    this.continues = wrapped ? (bytes, at) => wrapped.continues(bytes, at) : (bytes, at) => bytes[at] === TAB;
  }

  /** Whether the line at `start` goes on with the record of the line before (see LineSkipping.wrapped). */
  private readonly continues: (bytes: Buffer, start: number) => boolean;

  /**
   * Starts over at `offset` (a truncated file, a resumed one); line numbers only from 0. `boundary`
   * false: the same stream goes on from there (copytruncate's copy is read to catch up).
   */
  reset(offset: number, boundary = true): void {
    if (boundary) this.boundary = 'start';
    this.lineStart = offset;
    this.lineNumber = offset === 0 ? 1 : undefined;
    this.partial = [];
    this.partialBytes = 0;
    this.discarding = false;
  }

  /** Takes the bytes that were read at offset `at`. */
  push(bytes: Buffer, at: number): void {
    let start = 0;
    // The first line of each read is always handed out, so a log_line_prefix that matches nothing
    // still shows; a line right after one handed out that starts with a TAB may continue its record.
    let handedOut = false;
    for (;;) {
      if (this.skipping && handedOut && this.partialBytes === 0 && !this.discarding && !this.continues(bytes, start)) {
        start = this.skipTo(bytes, at, start);
      }
      const newline = bytes.indexOf(NEWLINE, start);
      if (newline === -1) break;
      const piece = bytes.subarray(start, newline);
      if (this.discarding) {
        this.discarding = false;
      } else if (this.partialBytes + piece.length > this.maxLineBytes) {
        this.boundary = 'gap';
        this.onOversized();
      } else if (this.partialBytes > 0) {
        this.partial.push(piece);
        this.emit(Buffer.concat(this.partial));
      } else {
        this.emit(piece);
      }
      this.partial = [];
      this.partialBytes = 0;
      if (this.lineNumber !== undefined) this.lineNumber++;
      start = newline + 1;
      this.lineStart = at + start;
      handedOut = true;
    }
    if (start >= bytes.length || this.discarding) return;
    const rest = bytes.subarray(start);
    if (this.partialBytes + rest.length > this.maxLineBytes) {
      this.boundary = 'gap';
      this.onOversized();
      this.discarding = true;
      this.partial = [];
      this.partialBytes = 0;
      return;
    }
    // The caller's buffer is reused for the next read: keep a copy of the unfinished line.
    this.partial.push(Buffer.from(rest));
    this.partialBytes += rest.length;
  }

  /**
   * Passes over the complete lines from `start` up to the next candidate line (or the last
   * complete line), stopping earlier at a line holding an open record's mark, or where the quotes
   * last balance; returns where handing out resumes.
   */
  private skipTo(bytes: Buffer, at: number, start: number): number {
    const skipping = this.skipping!;
    const allowed = skipping.canSkip();
    if (allowed === false) return start;
    const end = bytes.lastIndexOf(NEWLINE) + 1;
    if (end <= start) return start;
    let until = skipping.nextCandidate(bytes, start, end);
    if (until === -1 || until > end) until = end;
    if (allowed !== true) {
      // Where each mark next occurs, remembered for this buffer: each line handed out asks again.
      if (this.marksIn !== bytes) {
        this.marksIn = bytes;
        this.marksAt.clear();
      }
      for (const mark of allowed) {
        let hit = this.marksAt.get(mark);
        if (hit === undefined || (hit !== -1 && hit < start)) this.marksAt.set(mark, (hit = bytes.indexOf(mark, start)));
        if (hit !== -1 && hit < until) until = bytes.lastIndexOf(NEWLINE, hit) + 1;
      }
    }
    if (skipping.quote !== undefined && until > start) until = balancedUntil(bytes, start, until, skipping.quote);
    let lines = -1;
    if (skipping.wrapped && until > start) ({ end: until, lines } = skipping.wrapped.boundary(bytes, start, until));
    if (until <= start) return start;
    if (lines === -1) {
      lines = 0;
      for (let newline = bytes.indexOf(NEWLINE, start); newline !== -1 && newline < until; newline = bytes.indexOf(NEWLINE, newline + 1)) lines++;
    }
    if (this.lineNumber !== undefined) this.lineNumber += lines;
    this.lineStart = at + until;
    skipping.onSkipped(lines);
    return until;
  }

  /** Hands out the unfinished last line as it is: nobody will finish it now (a rotated file, stdin's end). */
  end(): void {
    if (this.partialBytes > 0 && !this.discarding) this.emit(Buffer.concat(this.partial));
    this.partial = [];
    this.partialBytes = 0;
  }

  private emit(line: Buffer): void {
    const position: LinePosition = { offset: this.lineStart };
    if (this.lineNumber !== undefined) position.line = this.lineNumber;
    if (this.boundary) {
      position.boundary = this.boundary;
      this.boundary = undefined;
    }
    const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
    this.onLine(line.subarray(0, end), position);
  }
}

/**
 * The last line start in bytes[start, until] at which the quotes since `start` (a record's start)
 * balance: `until` itself when they do, else the start of the record that is open at `until`
 * (found walking back over quotes and newlines), else `start`.
 */
export function balancedUntil(bytes: Buffer, start: number, until: number, quote: number): number {
  let odd = (countByte(bytes, start, until, quote) & 1) === 1;
  if (!odd) return until;
  // `odd`: whether the quotes in [start, position) are odd; a newline where they are even ends a record.
  for (let position = until; position > start;) {
    const newline = bytes.lastIndexOf(NEWLINE, position - 1);
    const quoteAt = bytes.lastIndexOf(quote, position - 1);
    if (newline < start && quoteAt < start) break;
    if (newline > quoteAt) {
      if (!odd) return newline + 1;
      position = newline;
    } else {
      odd = !odd;
      position = quoteAt;
    }
  }
  return start;
}
