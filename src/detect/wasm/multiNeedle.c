// Single-pass multi-needle search (WebAssembly SIMD128), for seqwatch's byte-level scanner.
//
// Every needle is found by two of its bytes at offsets i < j, j - i the same for all needles (chosen
// by multiNeedle.ts as rare together in the log's first bytes). The filter loop, generated per needle
// set by multiNeedle.ts (a Teddy filter: the pairs of all needles looked up at once in nibble
// tables, 16 positions at a time), says where some needle may start; here, those starts are looked
// at position by position (each needle's two bytes compared across 16-byte vectors, Wojciech Mula's
// "generic SIMD" strstr), each candidate verified whole, and the per-line walk of line_hits. So the
// data is read once, whatever the number of needles, instead of once per needle.
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
// 16 positions at a time, at the first block where a needle's two filter bytes (those of
// verify_block) may lie, the first of the 32 needle starts to verify (never before p: up to 16
// before the block, for the needles whose bytes lie that far into them), or -1 when there is none
// before `end`. Generated rather than compiled here so that its tables are constants.
__attribute__((import_module("env"), import_name("filter"))) int32_t filter(uint32_t p, uint32_t end);

/** The start of the earliest needle occurrence wholly inside d[from, to) (d: a memory offset), or -1; last_needle() says which. */
int32_t find(uint32_t base, uint32_t from, uint32_t to) {
  const uint8_t *d = (const uint8_t *)base;
  found_needle = -1;
  for (uint32_t k = from; k < to; k += 32) {
    int32_t p = filter(base + k, base + to);
    if (p < 0) return -1;
    k = (uint32_t)p - base;
    // The 32 starts from where the filter says (no start in them verified: none is a match).
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

/**
 * How many times `byte` occurs in d[from, to) (d: a memory offset): csvlog's quotes in replay's
 * chunks, counted where they were read (countByte.ts copies what is not in a module's memory).
 * Each block's matches are subtracted (a match is -1) into byte counters, added up every 255 blocks.
 */
uint32_t count_byte(uint32_t base, uint32_t from, uint32_t to, uint32_t byte) {
  const uint8_t *d = (const uint8_t *)base;
  v128_t b = wasm_i8x16_splat((int8_t)byte);
  uint32_t n = 0;
  uint32_t k = from;
  while (k < to && to - k >= 16) {
    v128_t counts = wasm_i8x16_splat(0);
    uint32_t blocks = (to - k) / 16;
    if (blocks > 255) blocks = 255;
    for (uint32_t i = 0; i < blocks; i++, k += 16) counts = wasm_i8x16_sub(counts, wasm_i8x16_eq(wasm_v128_load(d + k), b));
    v128_t sums = wasm_u32x4_extadd_pairwise_u16x8(wasm_u16x8_extadd_pairwise_u8x16(counts));
    n += wasm_i32x4_extract_lane(sums, 0) + wasm_i32x4_extract_lane(sums, 1) + wasm_i32x4_extract_lane(sums, 2) + wasm_i32x4_extract_lane(sums, 3);
  }
  for (; k < to; k++) n += d[k] == (uint8_t)byte;
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

// ---------------------------------------------------------------------------------------------
// Replay's repeats (src/replay/recordAt.ts, RecordReader.decideRepeats): a busy log's candidate
// lines are mostly repeats of one error, each a line like one the parser read before (a template)
// but for the digits of its time, its pid and the prefix's fields no record field is read from. For a chunk's candidates, this decides here which ones a
// template stands for, as LineTemplate.matches and RecordReader.furtherLines decide in JavaScript
// (test/replay/recordAt.unit.test.ts holds the two to the parser's answer): that line with no
// further line that detection reads. What is left (no template, or lines that may change the
// record) is read by JavaScript as before. One call a chunk instead of ~10 calls and compares of
// JavaScript a candidate.

#define MAX_TEMPLATES 64
#define TEMPLATE_BYTES 1024
#define MAX_SPANS 8
#define MAX_MARKERS 128
#define MARKER_BYTES 64
#define MAX_STARTS 4096
#define UNDECIDED 0xff

/** What a secondary line's marker does to the record (RecordReader.furtherLines). */
enum { MARKER_KEEP = 0, MARKER_PASS = 1, MARKER_DETAIL = 2 };

typedef struct {
  /** The line's length; its spans [start, end), ascending, whose digits may differ (the time, the pid, ...): how many. */
  uint32_t len, spans;
  /** The bytes of the prefix (before the severity word), which the record's further lines repeat. */
  uint32_t prefix;
  /** A DETAIL line changes the record (a replication conflict's message). */
  uint32_t want_detail;
  /** Its record is no ERROR (a LOG of a statement): no line after it makes a match's an incident. */
  uint32_t ruled_out;
} Template;

static Template templates[MAX_TEMPLATES];
static uint8_t template_pool[MAX_TEMPLATES][TEMPLATE_BYTES];
static uint32_t template_span_pool[MAX_TEMPLATES][2 * MAX_SPANS];
static uint32_t marker_len[MAX_MARKERS], marker_class[MAX_MARKERS];
static uint8_t marker_pool[MAX_MARKERS][MARKER_BYTES];
static uint32_t marker_count;
/** The markers by their first byte, in the order given: the first's index + 1 (0: none), then each one's next. */
static uint8_t marker_first[256];
static uint8_t marker_next[MAX_MARKERS];
static uint32_t starts[MAX_STARTS];
static uint8_t decided[MAX_STARTS];

/** Where the caller writes template t's bytes (TEMPLATE_BYTES at most) and its spans' starts and ends (MAX_SPANS at most), then calls set_template. */
uint8_t *template_bytes(uint32_t t) { return template_pool[t]; }
uint32_t *template_spans(uint32_t t) { return template_span_pool[t]; }

void set_template(uint32_t t, uint32_t len, uint32_t spans, uint32_t prefix, uint32_t want_detail, uint32_t ruled_out) {
  // Spans out of order or past the line would have matches() read outside the line: such a
  // template stands for no line (a length no line has).
  uint32_t from = 0;
  for (uint32_t s = 0; s < spans && s < MAX_SPANS; s++) {
    if (template_span_pool[t][2 * s] < from || template_span_pool[t][2 * s + 1] < template_span_pool[t][2 * s]) len = 0xffffffff;
    from = template_span_pool[t][2 * s + 1];
  }
  if (spans > MAX_SPANS || from > len || len > TEMPLATE_BYTES) len = 0xffffffff;
  templates[t] = (Template){len, spans, prefix, want_detail, ruled_out};
}

/** Where the caller writes marker m's bytes (MARKER_BYTES at most): `DETAIL:  `, `ANWEISUNG:  `, ... */
uint8_t *marker_bytes(uint32_t m) { return marker_pool[m]; }

void set_marker(uint32_t m, uint32_t len, uint32_t cls) {
  marker_len[m] = len;
  marker_class[m] = cls;
}

void set_marker_count(uint32_t n) {
  marker_count = n;
  for (uint32_t b = 0; b < 256; b++) marker_first[b] = 0;
  for (uint32_t m = n; m-- > 0;) {
    marker_next[m] = marker_first[marker_pool[m][0]];
    marker_first[marker_pool[m][0]] = (uint8_t)(m + 1);
  }
}

/** repeats(): the candidates' line starts (in), and for each the template that decides it or UNDECIDED (out). */
uint32_t *starts_ptr(void) { return starts; }
uint8_t *decided_ptr(void) { return decided; }

static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  __builtin_memcpy(&v, p, 8);
  return v;
}

/** Whether a[0, len) and b[0, len) hold the same bytes, 8 at a time. */
static inline int same_bytes(const uint8_t *a, const uint8_t *b, uint32_t len) {
  uint32_t k = 0;
  for (; k + 8 <= len; k += 8)
    if (load64(a + k) != load64(b + k)) return 0;
  for (; k < len; k++)
    if (a[k] != b[k]) return 0;
  return 1;
}

static inline int is_digit(uint8_t c) { return (uint8_t)(c - '0') < 10; }

/** Whether line[from, to) is own[from, to) but for digits in place of digits. */
static inline int digits_alike(const uint8_t *line, const uint8_t *own, uint32_t from, uint32_t to) {
  for (uint32_t k = from; k < to; k++)
    if (line[k] != own[k] && !(is_digit(line[k]) && is_digit(own[k]))) return 0;
  return 1;
}

/** LineTemplate.matches: the template's line but for digits in place of digits in its spans. */
static int matches(const uint8_t *line, uint32_t len, const Template *t, const uint8_t *own, const uint32_t *spans) {
  if (len != t->len) return 0;
  uint32_t from = 0;
  for (uint32_t s = 0; s < t->spans; s++) {
    uint32_t start = spans[2 * s], end = spans[2 * s + 1];
    if (!same_bytes(line + from, own + from, start - from) || !digits_alike(line, own, start, end)) return 0;
    from = end;
  }
  return same_bytes(line + from, own + from, len - from);
}

/** The class of the secondary marker at d[at] (the first listed that is there whole, below `limit`), or -1. */
static int32_t marker_at(const uint8_t *d, uint32_t at, uint32_t limit) {
  if (at >= limit) return -1;
  for (uint32_t next = marker_first[d[at]]; next != 0; next = marker_next[next - 1]) {
    uint32_t m = next - 1;
    if (at + marker_len[m] <= limit && same_bytes(d + at, marker_pool[m], marker_len[m])) return (int32_t)marker_class[m];
  }
  return -1;
}

/**
 * RecordReader.furtherLines, asked only whether it keeps any line: after the line d[start,
 * first_end), the lines that go on with its message (TAB lines, lines with the same `prefix` bytes
 * and a secondary marker), up to `end`; whether one of them is a line detection reads (CONTEXT,
 * LOCATION, DETAIL when `want_detail`, and their TAB lines). `limit`: the bytes there are.
 */
static int keeps_further(const uint8_t *d, uint32_t start, uint32_t first_end, uint32_t end, uint32_t limit, uint32_t prefix, uint32_t want_detail) {
  int passing = 0;
  for (uint32_t at = first_end + 1; at < end;) {
    if (d[at] != '\t') {
      if (at + prefix > limit || !same_bytes(d + start, d + at, prefix)) return 0;
      int32_t cls = marker_at(d, at + prefix, limit);
      if (cls < 0) return 0;
      passing = cls == MARKER_PASS || (cls == MARKER_DETAIL && !want_detail);
    }
    if (!passing) return 1;
    int32_t nl = newline(d, at, end);
    at = (nl < 0 ? end : (uint32_t)nl) + 1;
  }
  return 0;
}

/**
 * For the n candidates starts_ptr()[0, n) of d = memory[base, base + limit) (each the start of a
 * line, its record read no further than `reach` bytes on), decided_ptr()[k]: the template that
 * stands for it, when its line matches one and no further line changes its record (or its record
 * is no ERROR, ruled out by its first line); else UNDECIDED.
 * Returns how many were decided.
 */
uint32_t repeats(uint32_t base, uint32_t n, uint32_t limit, uint32_t reach) {
  const uint8_t *d = (const uint8_t *)base;
  uint32_t found = 0;
  uint32_t last = 0;
  for (uint32_t k = 0; k < n; k++) {
    uint32_t start = starts[k];
    uint32_t end = limit - start < reach ? limit : start + reach;
    int32_t nl = newline(d, start, end);
    uint32_t line_end = nl < 0 ? end : (uint32_t)nl;
    uint32_t len = line_end - start;
    decided[k] = UNDECIDED;
    // The template the candidate before matched first (most are repeats of one error), then the others.
    uint32_t t = last;
    for (uint32_t tried = 0; tried < MAX_TEMPLATES; tried++, t = (t + 1) % MAX_TEMPLATES) {
      if (!matches(d + start, len, &templates[t], template_pool[t], template_span_pool[t])) continue;
      last = t;
      // A LOG of a long statement quoting an error's words is decided by its first line: its
      // further lines are not walked (RecordReader.stderrIncident does the same).
      if (templates[t].ruled_out || !keeps_further(d, start, line_end, end, limit, templates[t].prefix, templates[t].want_detail)) {
        decided[k] = (uint8_t)t;
        found++;
      }
      break;
    }
  }
  return found;
}
