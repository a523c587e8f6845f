import type { LineSkipping } from '../sources/LineSplitter.js';
import type { Format } from './createParser.js';
import type { RecordParser } from './RecordParser.js';

/** What finds the lines that may matter in raw bytes: the scanner of src/detect/ (its nextCandidate). */
export interface CandidateFinder {
  /** The start of the first line in bytes[from, to) that may begin a record that matters, or -1. */
  nextCandidate(bytes: Buffer, from: number, to: number): number;
}

/** csvlog's quote: its records are framed by it (a quoted field may hold newlines). */
const CSV_QUOTE = 0x22;

/**
 * How a source of `format` may pass over lines unseen, with `parser` reading it: only between
 * records (or, for stderr, past other backends' lines while records wait for their next line), only
 * up to the next line the scanner names, and for csvlog only where the quotes balance. Undefined
 * for the formats whose parser cannot say when that is safe (wrappers, syslog, application logs).
 */
export function lineSkippingFor(format: Format, parser: RecordParser, candidates: CandidateFinder): LineSkipping | undefined {
  const { canPassOver, passedOverLines } = parser;
  if (!canPassOver || !passedOverLines) return undefined;
  return {
    nextCandidate: (bytes, from, to) => candidates.nextCandidate(bytes, from, to),
    ...(format === 'postgres-csv' ? { quote: CSV_QUOTE } : {}),
    canSkip: () => canPassOver.call(parser) || (parser.openRecordMarks?.() ?? false),
    onSkipped: (lines) => passedOverLines.call(parser, lines),
  };
}
