import type { MultiNeedleSearch } from './multiNeedle.js';

/** What the scanner's answers are built from besides the search: where a hit's record begins (IncidentScanner.recordStart). */
export interface RecordStarts {
  recordStart(bytes: Buffer, lineStart: number, floor: number): number;
  recordStartAfter(bytes: Buffer, lineStart: number, lastLine: number, lastStart: number): number;
}

const NEWLINE = 0x0a;

/**
 * IncidentScanner's two answers (candidateLines, nextCandidate) from one multi-needle pass, `search`
 * made for the scanner's needles, instead of an indexOf pass per anchor: what the scanner delegates
 * to when WebAssembly SIMD is there (test/detect/wasm/candidates.unit.test.ts holds the answers
 * equal to the scanner's own on every sample).
 */
export class MultiNeedleCandidates {
  /** nextCandidate's memory: the hits of one search of bytes[from, to), line by line, and the next one to give. */
  private memo: { bytes: Buffer; from: number; to: number; hits: number[]; next: number } | undefined;

  constructor(
    readonly search: MultiNeedleSearch,
    private readonly scanner: RecordStarts,
    private readonly csv: boolean,
  ) {}

  /**
   * candidateLines: the first hit on each line, walked back to its record's start within
   * bytes[from, to) (csvlog: the hit's own line as well), ascending, each once.
   */
  candidateLines(bytes: Buffer, from = 0, to = bytes.length): number[] {
    // The region, as candidateLines has it: record starts are not looked for before `from`, nor line shapes past `to`.
    const region = bytes.subarray(from, to);
    const starts: number[] = [];
    let ascending = true;
    const push = (start: number) => {
      if (starts.length > 0 && starts[starts.length - 1]! >= start) ascending = false;
      starts.push(start);
    };
    /** The hit before's line and its record's start. */
    let lastLine = -1;
    let lastStart = -1;
    for (const hit of this.search.lineHits(region)) {
      const lineStart = region.lastIndexOf(NEWLINE, hit) + 1;
      const start = this.scanner.recordStartAfter(region, lineStart, lastLine, lastStart);
      lastLine = lineStart;
      lastStart = start;
      push(from + start);
      if (this.csv && start !== lineStart) push(from + lineStart);
    }
    // Hits on a record's later lines give its start again (and csvlog's walk back may pass a line kept before).
    return ascending ? starts : [...new Set(starts)].sort((a, b) => a - b);
  }

  /**
   * nextCandidate, for a `to` at a line end (what LineSplitter passes: needles are then wholly
   * before `to` or not there). Calls that move forward through the same buffer, from line starts,
   * are answered from one search of it (one call into the module, one copy of the data), as the
   * scanner's own nextCandidate remembers its needles' next places (and, as it does, a call from
   * before the last one's `from` searches anew: a buffer refilled is read from its start again).
   */
  nextCandidate(bytes: Buffer, from: number, to = bytes.length): number {
    let hit: number;
    const memo = this.memo;
    if (memo && memo.bytes === bytes && memo.to === to && from >= memo.from && (from === 0 || bytes[from - 1] === NEWLINE)) {
      // The first hit of each line is known: the first at or after `from` is the first of `from`'s line or a later one.
      while (memo.next < memo.hits.length && memo.hits[memo.next]! < from) memo.next++;
      memo.from = from;
      hit = memo.hits[memo.next] ?? -1;
    } else {
      this.memo = { bytes, from, to, hits: this.search.lineHits(bytes, from, to), next: 0 };
      hit = this.memo.hits[0] ?? -1;
    }
    return hit === -1 ? -1 : this.scanner.recordStart(bytes, bytes.lastIndexOf(NEWLINE, hit) + 1, from);
  }
}
