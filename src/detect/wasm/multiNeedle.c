// Single-pass multi-needle search (WebAssembly SIMD128), for seqwatch's byte-level scanner.
//
// Every needle is found by two of its bytes at fixed offsets i < j (chosen by multiNeedle.ts as
// rare together in the log's first bytes): for 16 candidate start positions at a time, the bytes
// at +i and at +j are compared with the needle's two bytes across 16-byte vectors (Wojciech Mula's
// "generic SIMD" strstr), all needles' results ORed. That loop (filter) is generated per needle set
// by multiNeedle.ts; here, a block where some needle's pair matches is looked at position by
// position, each candidate verified whole, and the per-line walk of line_hits. So the data is read
// once, whatever the number of needles, instead of once per needle.
//
// Reads go up to 32 + 64 bytes past `to`: the caller keeps SLACK readable bytes after every area
// it searches (candidates past `to` are never reported).
//
// Build: scripts/build-wasm.sh (clang-14 --target=wasm32 -msimd128 -O3 -nostdlib).

#include <stdint.h>
#include <wasm_simd128.h>

#define MAX_NEEDLES 16
#define MAX_LEN 64
#define MAX_HITS 4096

typedef struct {
  uint32_t len, i, j;
} Needle;

static Needle needles[MAX_NEEDLES];
static uint8_t pool[MAX_NEEDLES][MAX_LEN];
static uint32_t count;
static int32_t found_needle = -1;
static uint32_t hits[MAX_HITS];
static uint32_t resume_at;

/** Where the caller writes needle n's bytes (MAX_LEN of them at most). */
uint8_t *needle_bytes(uint32_t n) { return pool[n]; }

/** Needle n: `len` bytes, filtered by its bytes at offsets i < j < len. */
void set_needle(uint32_t n, uint32_t len, uint32_t i, uint32_t j) {
  needles[n].len = len;
  needles[n].i = i;
  needles[n].j = j;
}

void set_count(uint32_t n) { count = n; }

/** Which needle the last find() found. */
int32_t last_needle(void) { return found_needle; }

/** line_hits(): the hits' offsets, and where to call again when the array was full. */
uint32_t *hits_ptr(void) { return hits; }
uint32_t resume(void) { return resume_at; }

static inline int same(const uint8_t *at, const uint8_t *needle, uint32_t len) {
  for (uint32_t k = 0; k < len; k++)
    if (at[k] != needle[k]) return 0;
  return 1;
}

/** The earliest whole needle starting in d[k, k + 32) and ending by `to`, or -1. */
static int32_t verify_block(const uint8_t *d, uint32_t k, uint32_t to, uint32_t n) {
  uint32_t masks[MAX_NEEDLES];
  uint32_t any = 0;
  for (uint32_t m = 0; m < n; m++) {
    const uint8_t *p = d + k;
    v128_t a = wasm_i8x16_splat(pool[m][needles[m].i]);
    v128_t b = wasm_i8x16_splat(pool[m][needles[m].j]);
    v128_t x0 = wasm_v128_and(wasm_i8x16_eq(wasm_v128_load(p + needles[m].i), a), wasm_i8x16_eq(wasm_v128_load(p + needles[m].j), b));
    v128_t x1 = wasm_v128_and(wasm_i8x16_eq(wasm_v128_load(p + 16 + needles[m].i), a), wasm_i8x16_eq(wasm_v128_load(p + 16 + needles[m].j), b));
    masks[m] = wasm_i8x16_bitmask(x0) | (wasm_i8x16_bitmask(x1) << 16);
    any |= masks[m];
  }
  while (any) {
    uint32_t bit = __builtin_ctz(any);
    uint32_t start = k + bit;
    for (uint32_t m = 0; m < n; m++) {
      if (!(masks[m] >> bit & 1)) continue;
      if (start + needles[m].len <= to && same(d + start, pool[m], needles[m].len)) {
        found_needle = (int32_t)m;
        return (int32_t)start;
      }
    }
    any &= any - 1;
  }
  return -1;
}

// The filter loop, generated for each set of needles by multiNeedle.ts (filterModule): from p on,
// 16 positions at a time, the first block where a needle's two filter bytes match (those of
// verify_block), or -1 when there is none before `end`. Generated rather than compiled here so that
// the needles' bytes and offsets are constants in its code: one instruction a load, no loop over
// the needles, each byte compared once however many needles share it.
__attribute__((import_module("env"), import_name("filter"))) int32_t filter(uint32_t p, uint32_t end);

/** The start of the earliest needle occurrence wholly inside d[from, to) (d: a memory offset), or -1; last_needle() says which. */
int32_t find(uint32_t base, uint32_t from, uint32_t to) {
  const uint8_t *d = (const uint8_t *)base;
  found_needle = -1;
  for (uint32_t k = from; k < to; k += 32) {
    int32_t p = filter(base + k, base + to);
    if (p < 0) return -1;
    k = (uint32_t)p - base;
    // The 32 positions from the filter's block on (no start in them verified: none is a match).
    int32_t at = verify_block(d, k, to, count);
    if (at >= 0) return at;
  }
  return -1;
}

/** The first '\n' in d[from, to), or -1. */
static int32_t newline(const uint8_t *d, uint32_t from, uint32_t to) {
  v128_t nl = wasm_i8x16_splat('\n');
  uint32_t k = from;
  for (; k < to; k += 16) {
    uint32_t mask = wasm_i8x16_bitmask(wasm_i8x16_eq(wasm_v128_load(d + k), nl));
    if (mask) {
      uint32_t at = k + __builtin_ctz(mask);
      return at < to ? (int32_t)at : -1;
    }
  }
  return -1;
}

/**
 * The first occurrence on each line of d[from, to) that holds one, in order, into hits_ptr(); the
 * number found. When MAX_HITS were found, resume() is where to call again (else `to`).
 */
uint32_t line_hits(uint32_t base, uint32_t from, uint32_t to) {
  const uint8_t *d = (const uint8_t *)base;
  uint32_t n = 0;
  uint32_t k = from;
  while (k < to) {
    if (n == MAX_HITS) {
      resume_at = k;
      return n;
    }
    int32_t at = find(base, k, to);
    if (at < 0) break;
    hits[n++] = (uint32_t)at;
    int32_t end = newline(d, (uint32_t)at, to);
    if (end < 0) break;
    k = (uint32_t)end + 1;
  }
  resume_at = to;
  return n;
}

/** How many k < len - q have d[k + p] == a and d[k + q] == b (the sample's count of a filter's matches). */
uint32_t count_pair(uint32_t base, uint32_t len, uint32_t p, uint32_t q, uint32_t a, uint32_t b) {
  const uint8_t *d = (const uint8_t *)base;
  if (len <= q) return 0;
  uint32_t end = len - q;
  uint32_t matches = 0;
  v128_t va = wasm_i8x16_splat((int8_t)a), vb = wasm_i8x16_splat((int8_t)b);
  uint32_t k = 0;
  for (; k + 16 <= end; k += 16) {
    v128_t both = wasm_v128_and(wasm_i8x16_eq(wasm_v128_load(d + k + p), va), wasm_i8x16_eq(wasm_v128_load(d + k + q), vb));
    matches += (uint32_t)__builtin_popcount(wasm_i8x16_bitmask(both));
  }
  for (; k < end; k++) matches += d[k + p] == a && d[k + q] == b;
  return matches;
}
