import { MULTI_NEEDLE_WASM } from './multiNeedleWasm.js';

/**
 * A search for up to 16 needles (byte strings of 2 to 64 bytes) in one pass over the data, in
 * WebAssembly SIMD128: each needle filtered by two bytes of it, 1 to 3 apart, that are rare
 * together in the log, all needles at once, 16 positions at a time (a Teddy filter generated for
 * the needle set, filterModule), candidates then verified whole (multiNeedle.c). The byte-level
 * scanner's alternative to one native indexOf pass per needle (MultiNeedleCandidates,
 * candidates.ts; measured by bench/needles.mjs).
 *
 * The data is searched where it lies when it is inside the module's memory (`buffers`: read into
 * them), and copied in, in pieces of 16 KiB doubling to 256 KiB, when it is not. Without
 * WebAssembly SIMD (or with `simd: false`) the same answers come from Buffer.indexOf, needle by needle.
 */
export interface MultiNeedleSearch {
  /** Whether the WebAssembly path is used (false: the indexOf fallback). */
  readonly simd: boolean;
  readonly needles: readonly Buffer[];
  /**
   * Buffers inside the module's memory, of the sizes asked for at creation: data read into them is
   * searched without a copy. They stay valid as long as the searcher (its memory never grows).
   */
  readonly buffers: readonly Buffer[];
  /** Which needle (index into `needles`) the last find() found, -1 when none. */
  readonly needle: number;
  /** The start of the earliest needle occurrence lying wholly in bytes[from, to), or -1. */
  find(bytes: Buffer, from?: number, to?: number): number;
  /**
   * The start of the first needle occurrence on each line (a line ends at '\n') of bytes[from, to)
   * that holds one, ascending; `from` may be inside a line. Occurrences must lie wholly in the range.
   */
  lineHits(bytes: Buffer, from?: number, to?: number): number[];
  /**
   * The WebAssembly instance and its memory, once a search has made it (undefined before, and for
   * the indexOf fallback): replay's repeats are decided in it too (multiNeedle.c's repeats, used by
   * src/replay/recordAt.ts), on data read into `buffers`.
   */
  readonly instance?: { readonly exports: SearchExports; readonly memory: ArrayBuffer } | undefined;
}

export interface MultiNeedleOptions {
  /** Data like what will be searched (the log's first bytes): the filter bytes are chosen rare in it. Default: the first data searched. */
  sample?: Uint8Array;
  /** Sizes of the buffers to create inside the module's memory (for reading data into). */
  buffers?: number[];
  /** false: use the indexOf fallback (for tests and measurements). */
  simd?: boolean;
}

export const MAX_NEEDLES = 16;
export const MIN_NEEDLE = 2;
export const MAX_NEEDLE = 64;
/** Bytes the module may read past the end of what it searches (blocks of 32 positions, at needle offsets < 64). */
const SLACK = 128;
/** Bytes copied into the module at a time when the data is not inside it: they stay in the processor's L2 cache while searched. */
const PIECE = 256 * 1024;
/** The first piece of a search (then 2x, 4x, ... up to PIECE). */
const FIRST_PIECE = 16 * 1024;
const PAGE = 65536;
/** The pages multiNeedle.c's data and stack take (its --initial-memory in scripts/build-wasm.sh). */
const OWN_PAGES = 3;
/** Room for the filter's constants: four nibble tables of 16 bytes (filterModule). */
const TABLE = 64;
const NEWLINE = 0x0a;

/** The little of the WebAssembly API used here (its types come with TypeScript's DOM library, which this project does not load). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: unknown };
  Memory: new (limits: { initial: number }) => WasmMemory;
}
type WasmMemory = { readonly buffer: ArrayBuffer };
type WasmModule = { readonly kind?: 'WebAssembly.Module' };
export const WASM = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

/** The C module's exports (multiNeedle.c). */
export interface SearchExports {
  needle_bytes(n: number): number;
  set_needle(n: number, length: number, i: number, j: number): void;
  set_count(n: number): void;
  last_needle(): number;
  find(base: number, from: number, to: number): number;
  line_hits(base: number, from: number, to: number): number;
  hits_ptr(): number;
  resume(): number;
  count_pair(base: number, length: number, p: number, q: number, a: number, b: number): number;
  count_byte(base: number, from: number, to: number, byte: number): number;
  template_bytes(t: number): number;
  template_spans(t: number): number;
  set_template(t: number, length: number, spans: number, prefix: number, wantDetail: number, ruledOut: number): void;
  marker_bytes(m: number): number;
  set_marker(m: number, length: number, cls: number): void;
  set_marker_count(n: number): void;
  starts_ptr(): number;
  decided_ptr(): number;
  repeats(base: number, n: number, limit: number, reach: number): number;
}
type Exports = SearchExports;

let compiled: WasmModule | null | undefined;

/**
 * The compiled module, or null where WebAssembly or its SIMD is not available (compiling it then
 * throws: WebAssembly.validate first would decode it twice, ~4 ms of every start). Compiled once,
 * synchronously (~4 KiB).
 */
function wasmModule(): WasmModule | null {
  if (compiled !== undefined) return compiled;
  try {
    compiled = WASM ? new WASM.Module(Buffer.from(MULTI_NEEDLE_WASM, 'base64')) : null;
  } catch {
    compiled = null;
  }
  return compiled;
}

/** Whether the WebAssembly SIMD path is available here. */
export function wasmSimdAvailable(): boolean {
  return wasmModule() !== null;
}

/**
 * A searcher for `needles` (one per source or replayed file, not shared between threads). Making
 * it compiles nothing new (~5 ms, its memory); its first search chooses the filter bytes and
 * compiles the filter loop (~20 ms on the 2-core bench machine, then ~1.2 ms per 4 MiB).
 */
export function createMultiNeedleSearch(needles: ReadonlyArray<string | Uint8Array>, options: MultiNeedleOptions = {}): MultiNeedleSearch {
  const bytes = needles.map((n) => (typeof n === 'string' ? Buffer.from(n) : Buffer.from(n)));
  if (bytes.length > MAX_NEEDLES) throw new Error(`multi-needle search: at most ${MAX_NEEDLES} needles (${bytes.length} given)`);
  for (const n of bytes) {
    if (n.length < MIN_NEEDLE || n.length > MAX_NEEDLE)
      throw new Error(`multi-needle search: a needle has ${MIN_NEEDLE} to ${MAX_NEEDLE} bytes (${JSON.stringify(n.toString('latin1'))})`);
  }
  const module = options.simd === false ? null : wasmModule();
  return module && bytes.length > 0 ? new WasmSearch(module, bytes, options.sample, options.buffers ?? []) : new IndexOfSearch(bytes, options.buffers ?? []);
}

class WasmSearch implements MultiNeedleSearch {
  readonly simd = true;
  readonly buffers: Buffer[];
  private readonly memory: WasmMemory;
  private readonly bytes: ArrayBuffer;
  private readonly table: number;
  private readonly scratch: number;
  private readonly longest: number;
  /** The searching instance, made on the first search (its filter chosen from that data, unless a sample was given). */
  private made: Exports | undefined;

  constructor(
    private readonly module: WasmModule,
    readonly needles: readonly Buffer[],
    private readonly sample: Uint8Array | undefined,
    sizes: number[],
  ) {
    // The memory, made at its final size (it never grows: the buffers handed out are never
    // detached): the module's own pages, the filter's table, a scratch piece for data copied in,
    // then the buffers, each followed by SLACK bytes.
    this.table = OWN_PAGES * PAGE;
    this.scratch = this.table + TABLE;
    let top = align(this.scratch + PIECE + MAX_NEEDLE + SLACK);
    const starts = sizes.map((size) => {
      const start = top;
      top = align(top + size + SLACK);
      return start;
    });
    this.memory = new WASM!.Memory({ initial: Math.ceil(top / PAGE) });
    this.bytes = this.memory.buffer;
    this.buffers = starts.map((start, i) => Buffer.from(this.bytes, start, sizes[i]!));
    this.longest = Math.max(...needles.map((n) => n.length));
  }

  get needle(): number {
    return this.made?.last_needle() ?? -1;
  }

  get instance(): { exports: Exports; memory: ArrayBuffer } | undefined {
    return this.made && { exports: this.made, memory: this.bytes };
  }

  /** The searching instance, its filter generated for pairs counted in the sample (or `first`, the data of the first search). */
  private exports(first: Buffer): Exports {
    if (this.made) return this.made;
    const { memory, module, needles } = this;
    const sample = Buffer.concat([Buffer.from(PRIOR), (this.sample ?? first).subarray(0, SAMPLE_BYTES)]);
    // The pairs are counted by the C module's count_pair, in an instance of its own (sharing the
    // memory): the instance that searches imports the filter generated from them.
    const counter = new WASM!.Instance(module, { env: { memory, filter: () => -1 } }).exports as Exports;
    new Uint8Array(this.bytes, this.scratch, sample.length).set(sample);
    const filtered = filterBytes(needles, (p, q, a, b) => counter.count_pair(this.scratch, sample.length, p, q, a, b));
    const generated = filterModule(needles, filtered, this.table);
    new Uint8Array(this.bytes, this.table, generated.tables.length).set(generated.tables);
    const filter = new WASM!.Instance(new WASM!.Module(generated.module), { env: { memory } }).exports as { filter: unknown };
    const made = new WASM!.Instance(module, { env: { memory, filter: filter.filter } }).exports as Exports;
    const heap = new Uint8Array(this.bytes);
    needles.forEach((needle, n) => {
      heap.set(needle, made.needle_bytes(n));
      // Verified by the same two bytes (multiNeedle.c's verify_block: a needle start is looked at
      // where they match, then compared whole).
      made.set_needle(n, needle.length, filtered.anchors[n]!, filtered.anchors[n]! + filtered.distance);
    });
    made.set_count(needles.length);
    this.made = made;
    return made;
  }

  /** Where bytes[0] is in the module's memory, when it is there with SLACK readable bytes after `to`; else -1. */
  private baseOf(bytes: Buffer, to: number): number {
    return bytes.buffer === this.bytes && bytes.byteOffset + to + SLACK <= this.bytes.byteLength ? bytes.byteOffset : -1;
  }

  /**
   * The pieces data not in the module's memory is copied in by: from `from`, each with the longest
   * needle's length - 1 more bytes so that every start in it is verified whole. The first are small
   * (a search that stops at an early hit copies little), then they double up to PIECE.
   */
  private *pieces(bytes: Buffer, from: number, to: number): Generator<{ start: number; end: number; limit: number }> {
    for (let start = from, size = FIRST_PIECE; start < to; size = Math.min(PIECE, 2 * size)) {
      const end = Math.min(to, start + size + this.longest - 1);
      new Uint8Array(this.bytes, this.scratch, end - start).set(bytes.subarray(start, end));
      const limit = Math.min(to, start + size);
      const next: number = yield { start, end, limit };
      start = next ?? limit;
    }
  }

  find(bytes: Buffer, from = 0, to = bytes.length): number {
    ({ from, to } = range(bytes, from, to));
    const exports = this.exports(bytes.subarray(from, to));
    const base = this.baseOf(bytes, to);
    if (base !== -1) return exports.find(base, from, to);
    for (const { start, end } of this.pieces(bytes, from, to)) {
      // The earliest in the piece is the earliest: every start before the piece's was searched.
      const at = exports.find(this.scratch, 0, end - start);
      if (at !== -1) return start + at;
    }
    return -1;
  }

  lineHits(bytes: Buffer, from = 0, to = bytes.length): number[] {
    ({ from, to } = range(bytes, from, to));
    const exports = this.exports(bytes.subarray(from, to));
    const hits: number[] = [];
    const base = this.baseOf(bytes, to);
    if (base !== -1) {
      collect(exports, this.bytes, base, from, to, 0, to, hits);
      return hits;
    }
    const pieces = this.pieces(bytes, from, to);
    for (let piece = pieces.next(); !piece.done;) {
      const { start, end, limit } = piece.value;
      const before = hits.length;
      // Starts at or after `limit` are the next piece's (its first line may then be searched from inside).
      collect(exports, this.bytes, this.scratch, 0, end - start, start, limit, hits);
      if (hits.length === before) {
        piece = pieces.next(limit);
        continue;
      }
      // The next piece starts after the last hit's line.
      const lineEnd = bytes.indexOf(NEWLINE, hits[hits.length - 1]!);
      piece = pieces.next(lineEnd === -1 || lineEnd >= to ? to : Math.max(limit, lineEnd + 1));
    }
    return hits;
  }
}

/** line_hits over memory[base + from, base + to), the hits (plus `shift`) below `limit` appended to `hits`. */
function collect(exports: Exports, memory: ArrayBuffer, base: number, from: number, to: number, shift: number, limit: number, hits: number[]): void {
  for (let at = from; at < to;) {
    const n = exports.line_hits(base, at, to);
    const found = new Uint32Array(memory, exports.hits_ptr(), n);
    for (let k = 0; k < n; k++) {
      const hit = found[k]! + shift;
      if (hit >= limit) return;
      hits.push(hit);
    }
    at = exports.resume();
  }
}

/** The same answers by Buffer.indexOf, needle by needle: where WebAssembly SIMD is not available. */
class IndexOfSearch implements MultiNeedleSearch {
  readonly simd = false;
  readonly buffers: Buffer[];
  needle = -1;

  constructor(
    readonly needles: readonly Buffer[],
    sizes: number[],
  ) {
    this.buffers = sizes.map((size) => Buffer.alloc(size));
  }

  find(bytes: Buffer, from = 0, to = bytes.length): number {
    ({ from, to } = range(bytes, from, to));
    const within = bytes.subarray(0, to);
    return this.earliest(this.needles.map((needle) => within.indexOf(needle, from)));
  }

  lineHits(bytes: Buffer, from = 0, to = bytes.length): number[] {
    ({ from, to } = range(bytes, from, to));
    const within = bytes.subarray(0, to);
    // Where each needle occurs next (searched again only once passed): a line's search does not
    // run each needle over the rest of the data again.
    const next = this.needles.map((needle) => within.indexOf(needle, from));
    const hits: number[] = [];
    for (let at = this.earliest(next); at !== -1;) {
      hits.push(at);
      const lineEnd = within.indexOf(NEWLINE, at);
      if (lineEnd === -1) break;
      this.needles.forEach((needle, n) => {
        if (next[n] !== -1 && next[n]! <= lineEnd) next[n] = within.indexOf(needle, lineEnd + 1);
      });
      at = this.earliest(next);
    }
    return hits;
  }

  /** The smallest of the needles' next places (-1: none), noting which needle (the first listed on a tie). */
  private earliest(places: number[]): number {
    let best = -1;
    this.needle = -1;
    places.forEach((at, n) => {
      if (at !== -1 && (best === -1 || at < best)) {
        best = at;
        this.needle = n;
      }
    });
    return best;
  }
}

function range(bytes: Buffer, from: number, to: number): { from: number; to: number } {
  to = Math.min(Math.max(0, to), bytes.length);
  return { from: Math.min(Math.max(0, from), to), to };
}

const align = (at: number) => Math.ceil(at / 64) * 64;

/** Bytes of the sample that the filter bytes are chosen by. */
const SAMPLE_BYTES = 16 * 1024;

/** A typical server log's bytes, for when there is no sample or a short one: statements, as most of a busy log is. */
const PRIOR =
  '2026-11-27 10:00:00.123 UTC [4242] app@app LOG:  duration: 0.042 ms  execute <unnamed>: SELECT id, name, created_at FROM users WHERE id = $1 AND valid = 1\n' +
  '2026-11-27 10:00:00.124 UTC [4243] app@app LOG:  statement: UPDATE ticket SET change_time = current_timestamp, queue_id = 3 WHERE id = 12345\n' +
  '2026-11-27 10:00:00.125 UTC,"app","app",4244,"10.0.0.7:51234",6750a1b2.1094,7,"SELECT",2026-11-27 10:00:00 UTC,3/7,0,LOG,00000,"duration: 0.5 ms",,,,,,,,,"psql","client backend",,0\n' +
  '{"timestamp":"2026-11-27 10:00:00.126 UTC","user":"app","dbname":"app","pid":4245,"error_severity":"LOG","state_code":"00000","message":"duration: 0.7 ms"}\n';

/**
 * How far into a needle its filter bytes may begin (its anchor). The filter reports a block of 16
 * anchor positions as the start of the 32 needle starts multiNeedle.c verifies: from the largest
 * anchor before the block, so that they hold every start whose anchor is in the block or in the
 * positions up to the next block the filter looks at (the 32nd start after the reported one).
 */
const MAX_ANCHOR = 16;
/** The filter's buckets: a bit of a byte per needle group (the tables hold 8 bits). */
const BUCKETS = 8;

/** The distances between a needle's two filter bytes tried (the same for all needles: one load each). */
const MAX_DISTANCE = 3;

/** Where each needle's two filter bytes lie: needle[o] and needle[o + distance], o = anchors[n]. */
interface FilterBytes {
  distance: number;
  anchors: number[];
}

/**
 * For each needle, the offset o <= MAX_ANCHOR of its two filter bytes: the pair least often found
 * in the sample, the first such; and their distance, the same for every needle (one load at p and
 * one at p + distance serve them all: the filter's lanes are anchor positions, not needle starts),
 * the one whose pairs are found least in all (1 to MAX_DISTANCE, as the shortest needle allows).
 */
function filterBytes(needles: readonly Buffer[], countPair: (p: number, q: number, a: number, b: number) => number): FilterBytes {
  const shortest = Math.min(...needles.map((needle) => needle.length));
  let best: (FilterBytes & { matches: number }) | undefined;
  for (let distance = 1; distance <= Math.min(MAX_DISTANCE, shortest - 1); distance++) {
    let total = 0;
    const anchors = needles.map((needle) => {
      let anchor = 0;
      let fewest = Infinity;
      for (let o = 0; o <= Math.min(MAX_ANCHOR, needle.length - 1 - distance); o++) {
        const matches = countPair(o, o + distance, needle[o]!, needle[o + distance]!);
        if (matches < fewest) [anchor, fewest] = [o, matches];
      }
      total += fewest;
      return anchor;
    });
    if (!best || total < best.matches) best = { distance, anchors, matches: total };
  }
  return { distance: best!.distance, anchors: best!.anchors };
}

/**
 * The needles' filter pairs (needle[o], needle[o + distance]) in at most BUCKETS groups, as bit masks of
 * needle indexes: one group a distinct pair while they fit, else the groups whose pairs share a
 * byte merged first (a group's pairs are matched as any of its first bytes' nibbles with any of
 * its second bytes': bytes shared add fewer false blocks, which the verification then rejects).
 */
function filterBuckets(needles: readonly Buffer[], { distance, anchors }: FilterBytes): Array<Array<[number, number]>> {
  const groups: Array<Array<[number, number]>> = [];
  const seen = new Set<number>();
  needles.forEach((needle, n) => {
    const pair: [number, number] = [needle[anchors[n]!]!, needle[anchors[n]! + distance]!];
    const key = pair[0] * 256 + pair[1];
    if (!seen.has(key)) groups.push([pair]);
    seen.add(key);
  });
  while (groups.length > BUCKETS) {
    let merge: [number, number] = [0, 1];
    let bestShared = -1;
    for (let a = 0; a < groups.length; a++) {
      for (let b = a + 1; b < groups.length; b++) {
        const shared = groups[a]!.some(([x0, x1]) => groups[b]!.some(([y0, y1]) => Number(x0 === y0) + Number(x1 === y1) > 0)) ? 1 : 0;
        if (shared > bestShared) [merge, bestShared] = [[a, b], shared];
      }
    }
    groups[merge[0]]!.push(...groups[merge[1]]!);
    groups.splice(merge[1], 1);
  }
  return groups;
}

/**
 * The filter loop as a WebAssembly module of its own (a Teddy filter, as in Hyperscan and Rust's
 * aho-corasick): it imports the memory (env.memory) and exports filter(p, end). From p on, 16
 * positions at a time, it looks each byte and the byte `distance` after it up in nibble tables (i8x16.swizzle:
 * a bit per bucket for the byte's low and high four bits), and returns at the first block where
 * some position holds a bucket's pair: where its needles may start, from MAX_ANCHOR (the largest
 * anchor used) before the block, but not before the p it was called with; -1 when none before
 * `end`. Two loads and four table lookups a block, whatever the number of needles (the pairwise
 * compares it replaced took two each: 4.1 GB/s on the replay bench's log, this 5.8; bench/needles.mjs).
 * The tables (64 bytes: low and high nibbles of the first byte, then of the second) are written at
 * `table` by the caller (`tables`).
 */
function filterModule(needles: readonly Buffer[], filtered: FilterBytes, table: number): { module: Uint8Array; tables: Uint8Array } {
  const tables = new Uint8Array(64);
  filterBuckets(needles, filtered).forEach((group, bucket) => {
    for (const pair of group) {
      pair.forEach((byte, q) => {
        tables[32 * q + (byte & 15)]! |= 1 << bucket;
        tables[32 * q + 16 + (byte >> 4)]! |= 1 << bucket;
      });
    }
  });
  const back = Math.max(...filtered.anchors);
  const P = 0;
  const END = 1;
  const FIRST = 2;
  const NIBBLE = 3;
  const BYTES = 4;
  const body: number[] = [];
  const simd = (op: number) => body.push(0xfd, ...uleb(op));
  const tableAt = (offset: number) => {
    body.push(0x41, ...sleb(table + offset));
    simd(0x00); // v128.load, aligned
    body.push(0x04, 0x00);
  };
  body.push(0x20, P, 0x21, FIRST); // first = p
  body.push(0x41, 0x0f);
  simd(0x0f); // i8x16.splat 0x0f
  body.push(0x21, NIBBLE);
  body.push(0x03, 0x40); // loop
  body.push(0x20, P, 0x20, END, 0x4f, 0x04, 0x40, 0x41, 0x7f, 0x0f, 0x0b); // if p >= end: return -1
  for (let q = 0; q < 2; q++) {
    body.push(0x20, P);
    simd(0x00); // v128.load offset=0, then distance
    body.push(0x00, q * filtered.distance, 0x21, BYTES);
    tableAt(32 * q);
    body.push(0x20, BYTES, 0x20, NIBBLE);
    simd(0x4e); // v128.and: the low nibbles
    simd(0x0e); // i8x16.swizzle
    tableAt(32 * q + 16);
    body.push(0x20, BYTES, 0x41, 4);
    simd(0x8d); // i16x8.shr_u 4
    body.push(0x20, NIBBLE);
    simd(0x4e); // v128.and: the high nibbles
    simd(0x0e); // i8x16.swizzle
    simd(0x4e); // v128.and: the buckets both nibbles of this byte are in
    if (q > 0) simd(0x4e); // v128.and: and of the byte before
  }
  simd(0x53); // v128.any_true
  // if: return max(p - back, first)
  body.push(0x04, 0x40, 0x20, FIRST, 0x20, P, 0x41, ...sleb(back), 0x6b, 0x22, P, 0x20, P, 0x20, FIRST, 0x49, 0x1b, 0x0f, 0x0b);
  body.push(0x20, P, 0x41, 16, 0x6a, 0x21, P); // p += 16
  body.push(0x0c, 0x00, 0x0b); // br loop; end
  body.push(0x41, 0x7f, 0x0b); // -1; end
  // Locals: first (i32), then nibble and bytes (v128).
  return { module: oneFunctionModule('filter', [0x02, 0x01, 0x7f, 0x02, 0x7b, ...body]), tables };
}

/**
 * A WebAssembly module that imports its memory (env.memory) and exports one function `name` of
 * type (i32, i32) -> i32, whose `code` is its local declarations then its body: the shape of the
 * loops generated here (the filter) and in countByte.ts.
 */
export function oneFunctionModule(name: string, code: number[]): Uint8Array {
  const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];
  const text = (value: string) => [...uleb(value.length), ...Buffer.from(value)];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f]), // (i32, i32) -> i32
    ...section(2, [0x01, ...text('env'), ...text('memory'), 0x02, 0x00, 0x00]),
    ...section(3, [0x01, 0x00]),
    ...section(7, [0x01, ...text(name), 0x00, 0x00]),
    ...section(10, [0x01, ...uleb(code.length), ...code]),
  ]);
}

export function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    if ((value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}
