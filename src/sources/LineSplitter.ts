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
 * one: while `canSkip()` (nothing is being assembled downstream), the lines before the next
 * occurrence of any needle are only counted. The needles are searched in the raw bytes, the way
 * grep -F does.
 */
export interface LineSkipping {
  needles: Buffer[];
  canSkip(): boolean;
  /** `lines` complete lines were passed over. */
  onSkipped(lines: number): void;
}

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

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: Buffer, position: LinePosition) => void,
    private readonly onOversized: () => void,
    start = 0,
    private readonly skipping?: LineSkipping,
  ) {
    this.lineStart = start;
    this.lineNumber = start === 0 ? 1 : undefined;
  }

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
    // Where each needle next occurs in `bytes` (-1: not again); the first line is always handed out,
    // so a log_line_prefix that matches nothing still shows.
    const next = this.skipping?.needles.map((needle) => bytes.indexOf(needle));
    let handedOut = false;
    for (;;) {
      if (next && handedOut && this.partialBytes === 0 && !this.discarding && this.skipping!.canSkip()) {
        start = this.skipTo(bytes, at, start, next);
      }
      const newline = bytes.indexOf(0x0a, start);
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
   * Passes over the complete lines from `start` up to the line holding the next needle (or the
   * last complete line); returns where handing out resumes.
   */
  private skipTo(bytes: Buffer, at: number, start: number, next: number[]): number {
    let hit = -1;
    next.forEach((position, i) => {
      if (position !== -1 && position < start) next[i] = position = bytes.indexOf(this.skipping!.needles[i]!, start);
      if (position !== -1 && (hit === -1 || position < hit)) hit = position;
    });
    const until = hit === -1 ? bytes.lastIndexOf(0x0a) + 1 : bytes.lastIndexOf(0x0a, hit) + 1;
    if (until <= start) return start;
    let lines = 0;
    for (let newline = bytes.indexOf(0x0a, start); newline !== -1 && newline < until; newline = bytes.indexOf(0x0a, newline + 1)) lines++;
    if (this.lineNumber !== undefined) this.lineNumber += lines;
    this.lineStart = at + until;
    this.skipping!.onSkipped(lines);
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
