// What flashlift's CPU FlashAttention kernels share, whatever their vector ISA (fa_avx2.c,
// fa_avx512.c): where one workgroup's rows of Q, K, V, O and the mask lie, which keys its
// queries see, and the entry points the shim calls (compiler/kernels/cpu_fa.py).
//
// A workgroup is one query block (block_m: FL_BM rows from m0) of one (batch entry, head).
// Q, O: (B, H, Sq, D); K, V: (B, KVH, Skv, D), kv head = head / (H / KVH), each contiguous
// or as sequence rows (rows_at). Each kernel file defines FL_BM and
//     attention(const fl_block*, int in_kind, int out_kind, float scale, size_t empty_zero)
// and then expands FL_ENTRIES(isa).
#ifndef FLASHLIFT_FA_COMMON_H
#define FLASHLIFT_FA_COMMON_H

#include <stddef.h>

#include "shim_abi.h"

enum { F32, F16, BF16 };

static inline int kind_size(int kind) { return kind == F32 ? 4 : 2; }

// 2^f for f in [-0.5, 0.5]: the degree-6 Taylor series of e^(f ln 2) (relative error below
// 2.5e-7 evaluated in f32), by Horner's rule with the ISA's FMA and broadcast; every build's
// exp2 scales it by 2^round(x).
#define FL_EXP2_FRACTION(FMA, SET1, f)                                                            \
  FMA(FMA(FMA(FMA(FMA(FMA(SET1(1.5403530393381606e-4f), f, SET1(1.3333558146428443e-3f)), f,      \
                      SET1(9.6181291076284772e-3f)), f, SET1(5.5504108664821580e-2f)), f,          \
              SET1(2.4022650695910071e-1f)), f, SET1(6.9314718055994531e-1f)), f, SET1(1.0f))

// The same to bf16's needs, one FMA fewer: degree 4, relative error below 2.7e-6 (fitted for
// the smallest largest error), for weights that are rounded to bf16 (2^-9) right after (the
// bf16 products' P): 4-13% of the AMX build's time on a Sapphire Rapids core, error unchanged.
#define FL_EXP2_FRACTION_BF16(FMA, SET1, f)                                                     \
  FMA(FMA(FMA(FMA(SET1(9.560629725e-3f), f, SET1(5.591705814e-2f)), f, SET1(2.402497828e-1f)), f,  \
          SET1(6.931219697e-1f)), f, SET1(9.999991655e-1f))

// Where row s0 of head h of batch entry b of an operand starts (in elements): head-major
// (B, heads, S, D) contiguous when width is 0, else sequence rows of `width` elements with
// the heads from column col0: (b * S + s0) * width + col0 + h * D. Returns the row stride.
static inline long rows_at(long b, long h, long s0, long heads, long seq, long d, long width, long col0, long* start) {
  if (!width) {
    *start = ((b * heads + h) * seq + s0) * d;
    return d;
  }
  *start = (b * seq + s0) * width + col0 + h * d;
  return width;
}

// The first two steps of transposing the n x n block r[0..n) (n = 8 or 16 lanes, the rows): pairs
// of rows unpacked, then 4 x 4 blocks shuffled within the 128-bit lanes, so that u[g + k]'s lane
// L holds column 4L + k of rows g..g+3; the ISA's transpose then moves the lanes across.
#define FL_TRANSPOSE_IN_LANES(UNPACKLO, UNPACKHI, SHUFFLE, r, t, u, n) \
  for (int i = 0; i < (n); i += 2) {                                  \
    t[i] = UNPACKLO(r[i], r[i + 1]);                                  \
    t[i + 1] = UNPACKHI(r[i], r[i + 1]);                              \
  }                                                                   \
  for (int g = 0; g < (n); g += 4) {                                  \
    u[g] = SHUFFLE(t[g], t[g + 2], 0x44);                             \
    u[g + 1] = SHUFFLE(t[g], t[g + 2], 0xEE);                         \
    u[g + 2] = SHUFFLE(t[g + 1], t[g + 3], 0x44);                     \
    u[g + 3] = SHUFFLE(t[g + 1], t[g + 3], 0xEE);                     \
  }

// One workgroup's operands: the first row of each (q, k, v, o: bytes; mask: f32 elements)
// and its row stride in elements; the query block's rows [m0, m0 + rows); the keys it
// visits, [0, end); causal: 0 none, 1 top-left, 2 bottom-right (key j visible to query i
// iff j <= i + diag); mask_kind: 0 none, 1 a [Skv] key-padding row (mask points at the batch
// entry's), 2 rows of Skv (mask points at the block's first query row).
typedef struct {
  const char *q, *k, *v;
  char* o;
  const float* mask;
  long q_ld, k_ld, v_ld, o_ld;
  long m0, diag, end, skv;
  int rows, d, causal, mask_kind;
} fl_block;

// The workgroup (block_m, bh) of the call: mask_kind as the shim passes it (1 [B, Skv],
// 2 [B, Sq, Skv], 3 [Sq, Skv] shared by the batch, 4 [B, H, Sq, Skv]: a row per head and query,
// 5 [H, Sq, Skv] shared by the batch),
// widths/cols per Q, K, V, O (rows_at).
static inline fl_block fl_locate(const char* q, const char* k, const char* v, const float* mask, char* o,
                                 int in_kind, int out_kind, long block_m, long bh, long heads, long kv_ratio,
                                 long sq, long skv, long d, long causal, long mask_kind, const size_t* widths,
                                 const size_t* cols, long bm) {
  fl_block blk;
  const long kv_heads = heads / kv_ratio, b = bh / heads, h = bh % heads, kvh = h / kv_ratio;
  const int in_size = kind_size(in_kind), out_size = kind_size(out_kind);
  long q0, k0, v0, o0;
  blk.m0 = block_m * bm;
  blk.rows = (int)(sq - blk.m0 < bm ? sq - blk.m0 : bm);
  blk.q_ld = rows_at(b, h, blk.m0, heads, sq, d, (long)widths[0], (long)cols[0], &q0);
  blk.k_ld = rows_at(b, kvh, 0, kv_heads, skv, d, (long)widths[1], (long)cols[1], &k0);
  blk.v_ld = rows_at(b, kvh, 0, kv_heads, skv, d, (long)widths[2], (long)cols[2], &v0);
  blk.o_ld = rows_at(b, h, blk.m0, heads, sq, d, (long)widths[3], (long)cols[3], &o0);
  blk.q = q + q0 * in_size;
  blk.k = k + k0 * in_size;
  blk.v = v + v0 * in_size;
  blk.o = o + o0 * out_size;
  blk.mask = mask_kind == 1 ? mask + b * skv
             : mask_kind == 2 ? mask + (b * sq + blk.m0) * skv
             : mask_kind == 3 ? mask + blk.m0 * skv
             : mask_kind == 4 ? mask + (bh * sq + blk.m0) * skv
             : mask_kind == 5 ? mask + (h * sq + blk.m0) * skv : mask;
  blk.mask_kind = mask_kind == 0 ? 0 : mask_kind == 1 ? 1 : 2;
  blk.diag = causal == 2 ? skv - sq : 0;
  blk.end = skv;  // keys < end are seen by some query of the block
  if (causal && blk.m0 + blk.rows + blk.diag < blk.end) blk.end = blk.m0 + blk.rows + blk.diag;
  blk.skv = skv;
  blk.d = (int)d;
  blk.causal = (int)causal;
  return blk;
}

// The entry points: flashlift_attention_<in>_<out>_<isa>, in and out the element types of
// Q, K, V and of O, taking the shim's memrefs (shim_abi.h). The mask binding is an f32 mask
// (mask_kind 1-5), or any binding, never read (mask_kind 0).
#define FL_ENTRY(NAME, IN_T, IN_KIND, OUT_T, OUT_KIND)                                                    \
  void NAME(FL_MEMREF(const IN_T, q), FL_MEMREF(const IN_T, k), FL_MEMREF(const IN_T, v),                  \
            FL_MEMREF(const float, m), FL_MEMREF(OUT_T, o), size_t block_m,                                \
            size_t bh, size_t heads, size_t kv_ratio, size_t sq, size_t skv, size_t d, size_t causal,      \
            size_t mask_kind, float scale, size_t q_w, size_t q_c, size_t k_w, size_t k_c, size_t v_w,    \
            size_t v_c, size_t o_w, size_t o_c, size_t empty_zero) {                                     \
    const size_t widths[4] = {q_w, k_w, v_w, o_w}, cols[4] = {q_c, k_c, v_c, o_c};                       \
    const fl_block blk = fl_locate((const char*)(q + q_off), (const char*)(k + k_off),                    \
                                   (const char*)(v + v_off), m + m_off, (char*)(o + o_off), IN_KIND,       \
                                   OUT_KIND, (long)block_m, (long)bh, (long)heads, (long)kv_ratio,         \
                                   (long)sq, (long)skv, (long)d, (long)causal, (long)mask_kind, widths,    \
                                   cols, FL_BM);                                                           \
    attention(&blk, IN_KIND, OUT_KIND, scale, empty_zero);                                                 \
  }

#define FL_ENTRIES(ISA)                                                                         \
  FL_ENTRY(flashlift_attention_f32_f32_##ISA, float, F32, float, F32)                           \
  FL_ENTRY(flashlift_attention_f16_f16_##ISA, unsigned short, F16, unsigned short, F16)         \
  FL_ENTRY(flashlift_attention_f16_f32_##ISA, unsigned short, F16, float, F32)                  \
  FL_ENTRY(flashlift_attention_bf16_bf16_##ISA, unsigned short, BF16, unsigned short, BF16)     \
  FL_ENTRY(flashlift_attention_bf16_f32_##ISA, unsigned short, BF16, float, F32)

#endif
