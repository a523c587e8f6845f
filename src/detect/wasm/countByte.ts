import { oneFunctionModule, uleb, WASM } from './multiNeedle.js';

/**
 * How many times `byte` occurs in bytes[start, end): csvlog's quotes, counted over every line the
 * follower passes over (LineSplitter.balancedUntil). A WebAssembly SIMD loop generated for the byte
 * (16 bytes a turn: compare, bitmask, popcount) over the range copied into its memory in 64 KiB
 * pieces (they stay in the L2 cache): 0.05-0.09 ms per MiB against 0.21-0.30 for eight bytes a
 * turn in JavaScript (countByteSwar, measured on 2-128 KiB ranges), the rest of passing a csvlog
 * record over being ~2 ms per MiB. Without WebAssembly SIMD, or for a few bytes: countByteSwar.
 */
export function countByte(bytes: Uint8Array, start: number, end: number, byte: number): number {
  const counter = end - start >= MIN_BYTES ? counterFor(byte) : null;
  if (!counter) return countByteSwar(bytes, start, end, byte);
  let count = 0;
  for (let at = start; at < end; at += PIECE) {
    const length = Math.min(PIECE, end - at);
    counter.heap.set(bytes.subarray(at, at + length), 0);
    const whole = length & ~15;
    count += counter.count(0, whole);
    for (let i = whole; i < length; i++) if (counter.heap[i] === byte) count++;
  }
  return count;
}

/** Whether countByte counts `byte` with WebAssembly SIMD here (else in JavaScript). */
export const countsWithSimd = (byte: number): boolean => counterFor(byte) !== null;

/** Bytes copied in and counted at a time. */
const PIECE = 64 * 1024;
/** Below this the call and the copy cost more than they save. */
const MIN_BYTES = 256;

interface Counter {
  heap: Uint8Array;
  count: (from: number, to: number) => number;
}

/** Per byte: its counter, or null where WebAssembly SIMD is not available. */
const counters = new Map<number, Counter | null>();

function counterFor(byte: number): Counter | null {
  let counter = counters.get(byte);
  if (counter !== undefined) return counter;
  counter = null;
  try {
    // (Where WebAssembly has no SIMD, compiling the module throws.)
    if (WASM) {
      const memory = new WASM.Memory({ initial: PIECE / 65536 });
      const exports = new WASM.Instance(new WASM.Module(countModule(byte)), { env: { memory } }).exports as { count: Counter['count'] };
      counter = { heap: new Uint8Array(memory.buffer), count: exports.count };
    }
  } catch {
    counter = null;
  }
  counters.set(byte, counter);
  return counter;
}

/** count(p, end): the occurrences of `byte` in the 16-byte blocks from p while a whole block fits before `end`. */
function countModule(byte: number): Uint8Array {
  const P = 0;
  const END = 1;
  const N = 2;
  const body = [
    ...[0x02, 0x40, 0x03, 0x40], // block, loop
    ...[0x20, P, 0x41, 16, 0x6a, 0x20, END, 0x4b, 0x0d, 1], // if p + 16 > end: leave the block
    ...[0x20, N],
    ...[0x20, P, 0xfd, 0x00, 0x00, 0x00], // v128.load (align 1, offset 0)
    ...[0xfd, 0x0c, ...new Array<number>(16).fill(byte)], // v128.const: the byte 16 times
    ...[0xfd, ...uleb(0x23)], // i8x16.eq
    ...[0xfd, ...uleb(0x64)], // i8x16.bitmask
    ...[0x69, 0x6a, 0x21, N], // n += popcnt
    ...[0x20, P, 0x41, 16, 0x6a, 0x21, P], // p += 16
    ...[0x0c, 0, 0x0b, 0x0b], // br loop; end; end
    ...[0x20, N, 0x0b], // n
  ];
  return oneFunctionModule('count', [0x01, 0x01, 0x7f, ...body]);
}

/**
 * The same in JavaScript, eight bytes at a time (a csvlog record holds some 30 quotes: an indexOf
 * per quote cost more than the rest of passing a record over): each byte of a word XOR the byte's
 * pattern is zero where it matched, and ((x & 0x7f..) + 0x7f..) | x has the top bit of every
 * non-zero byte set, exactly (no carry crosses a byte). The matches are added up per byte lane (at
 * most 254 a lane before the lanes are summed), not summed word by word.
 */
export function countByteSwar(bytes: Uint8Array, start: number, end: number, byte: number): number {
  let count = 0;
  let at = start;
  while (at < end && ((bytes.byteOffset + at) & 7) !== 0) if (bytes[at++] === byte) count++;
  if (at >= end) return count;
  const words = new Int32Array(bytes.buffer, bytes.byteOffset + at, ((end - at) >> 3) << 1);
  const pattern = byte * 0x01010101;
  for (let i = 0; i < words.length;) {
    const stop = Math.min(words.length, i + 254);
    let lanes = 0;
    for (; i < stop; i += 2) {
      const x = words[i]! ^ pattern;
      const y = words[i + 1]! ^ pattern;
      lanes += ((~(((x & 0x7f7f7f7f) + 0x7f7f7f7f) | x) >>> 7) & 0x01010101) + ((~(((y & 0x7f7f7f7f) + 0x7f7f7f7f) | y) >>> 7) & 0x01010101);
    }
    count += (lanes & 0xff) + ((lanes >>> 8) & 0xff) + ((lanes >>> 16) & 0xff) + (lanes >>> 24);
  }
  for (at += words.length * 4; at < end; at++) if (bytes[at] === byte) count++;
  return count;
}
