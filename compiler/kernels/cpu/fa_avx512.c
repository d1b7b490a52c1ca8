// flashlift's CPU FlashAttention forward, AVX-512 (F, BW, DQ, VL): one (query block, head)
// per call. Q, K, V in f32, f16 or bf16, O in their type or f32; every sum in f32.
// Built twice (compiler/kernels/cpu_build.py): isa avx512, and avx512bf16 with FL_DPBF16 and
// -mavx512bf16, whose bf16 entry points multiply in bf16 (VDPBF16PS: pairs of bf16 products
// summed into f32 lanes, twice the f32 FMA rate), the way bf16 attention runs on GPUs.
//
// The same algorithm as fa_avx2.c (read it first), 16 lanes a vector: scores transposed,
// keys x queries (st[j][i]), so that the online softmax runs down the columns; base-2 scores;
// exp2 as a polynomial scaled by VSCALEFPS (exactly 0 at or below -150: hidden keys, -inf,
// and keys at flashlift's -2^126 mask floor weigh 0); the same causal block
// skipping, run-time masks and empty-row answers. Where the operands lie, and the entry
// points: fa_common.h. Per key block of FL_BN keys:
//   1. st = K_blk . Q^T: 8 keys x 32 queries a step, 16 accumulators. f32: Q^T scaled by
//      scale * log2(e) once, half-precision K converted into a buffer per block. bf16 with
//      FL_DPBF16: Q^T as pairs of dims (qt2[p][i] = Q[i][2p], Q[i][2p+1]) read as one 32-bit
//      lane, each key's pair of dims broadcast straight from K, the scale applied to the sums;
//   2. the online-softmax update, 16 queries a vector. With FL_DPBF16 the weights are rounded
//      to bf16 (the sum l adds the rounded ones, the weights P.V multiplies) and stored as
//      pairs of keys, pp[p][i] = P[i][2p], P[i][2p+1];
//   3. acc += P . V_blk: 4 queries x 64 columns a step, 16 accumulators. With FL_DPBF16 the
//      V block is first interleaved into pairs of rows (v2[p][c] = V[2p][c], V[2p+1][c]).
//
// With FL_AMX as well (isa avx512amx, -mamx-tile -mamx-bf16: Sapphire Rapids and later), the
// bf16 entry points run both products on the AMX tile unit (TDPBF16PS: a 16 x 16 f32 tile +=
// 16 x 32 bf16 times 32 x 16 bf16), in the same layouts: st^T = K_blk . Q^T with K's rows as
// the A tile straight from memory and qt2 as the B tile; acc += P . V_blk with P as the A tile
// (pp transposed as 32-bit pairs of keys) and v2 as the B tile. The softmax, masks and
// rounding are the FL_DPBF16 path's, so the two builds differ only in the products' summation
// order. Head dims that are not a multiple of 32, or a process the kernel may not give AMX
// state (amx_begin), take the FL_DPBF16 path.
//
// Embedded-ELF rules (IREE links this object into its executable): no libc, no globals
// written, no thread-local storage; stack only (at most 80 KB, the AMX build; IREE's worker stacks are 128 KB).
#include <immintrin.h>
#include <stddef.h>

#include "fa_common.h"
#ifdef FL_AMX
#include "amx.h"
#endif

#define FL_BM 32   // queries per block (2 vectors of 16)
#define FL_DMAX 128
#ifndef FL_BN      // (the block shape is set here; tools/kernels/cpu_fa_bench.py -D tries others)
#define FL_BN 64   // keys per block
#endif
#ifndef FL_KS
#define FL_KS 8    // keys per step of the scores
#endif
#ifndef FL_RS
#define FL_RS 4    // queries per step of P . V
#endif

typedef unsigned int u32_unaligned __attribute__((may_alias, aligned(2)));

static inline __attribute__((always_inline)) __m512 exp2_ps_as(__m512 x, int bf16) {
  // 2^x = 2^n * 2^f, n = round(x), f in [-0.5, 0.5] (FL_EXP2_FRACTION, or its degree-4 form
  // where the result is rounded to bf16 next), times 2^n by VSCALEFPS; x clamped at -160, where
  // 2^x rounds to exactly 0 (hidden keys, -inf, weigh 0)
  x = _mm512_max_ps(x, _mm512_set1_ps(-160.0f));
  __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_sub_ps(x, n);
  return _mm512_scalef_ps(bf16 ? FL_EXP2_FRACTION_BF16(_mm512_fmadd_ps, _mm512_set1_ps, f)
                               : FL_EXP2_FRACTION(_mm512_fmadd_ps, _mm512_set1_ps, f), n);
}
static inline __m512 exp2_ps(__m512 x) { return exp2_ps_as(x, 0); }

// 16 elements of kind `kind` at src as f32
static inline __m512 load16(const void* src, int kind) {
  if (kind == F16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)src));
  if (kind == BF16)
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)src)), 16));
  return _mm512_loadu_ps(src);
}

// 16 f32 as bf16 bits, rounded to nearest even (a NaN stays a NaN)
static inline __m256i bf16_bits(__m512 f) {
#ifdef FL_DPBF16
  return (__m256i)_mm512_cvtneps_pbh(f);
#else
  __m512i u = _mm512_castps_si512(f);
  __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  return _mm512_cvtepi32_epi16(r);
#endif
}

// n (a multiple of 16) f32 at src stored as `kind` at dst
static inline void store_row(const float* src, void* dst, int n, int kind, __m512 scale) {
  for (int x = 0; x < n; x += 16) {
    __m512 f = _mm512_mul_ps(scale, _mm512_load_ps(src + x));
    if (kind == F16)
      _mm256_storeu_si256((__m256i*)((unsigned short*)dst + x), _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    else if (kind == BF16)
      _mm256_storeu_si256((__m256i*)((unsigned short*)dst + x), bf16_bits(f));
    else
      _mm512_storeu_ps((float*)dst + x, f);
  }
}

// st[j][0:FL_BM] = sum_d k[j][d] * qt[d][0:FL_BM] (f32; key j's row at k + j * ld), R keys a step
static inline __attribute__((always_inline)) void scores_step(const float* k, long ld, int d_len, const float* qt,
                                                              float* st, int R) {
  __m512 a[FL_KS][2];
  for (int x = 0; x < R; ++x) a[x][0] = a[x][1] = _mm512_setzero_ps();
  for (int d = 0; d < d_len; ++d) {
    __m512 q0 = _mm512_load_ps(qt + d * FL_BM), q1 = _mm512_load_ps(qt + d * FL_BM + 16);
    for (int x = 0; x < R; ++x) {
      __m512 kv = _mm512_set1_ps(k[x * ld + d]);
      a[x][0] = _mm512_fmadd_ps(kv, q0, a[x][0]);
      a[x][1] = _mm512_fmadd_ps(kv, q1, a[x][1]);
    }
  }
  for (int x = 0; x < R; ++x) {
    _mm512_store_ps(st + x * FL_BM, a[x][0]);
    _mm512_store_ps(st + x * FL_BM + 16, a[x][1]);
  }
}

static inline void scores(const float* k, long ld, int d_len, const float* qt, float* st, int keys) {
  int j = 0;
  for (; j + FL_KS <= keys; j += FL_KS) scores_step(k + j * ld, ld, d_len, qt, st + j * FL_BM, FL_KS);
  for (; j < keys; ++j) scores_step(k + j * ld, ld, d_len, qt, st + j * FL_BM, 1);
}

#ifdef FL_DPBF16
// As scores_step, in bf16: qt2[p][i] holds dims 2p, 2p + 1 of query i; k the bf16 rows of K;
// the sums scaled by qscale (base-2 scores)
static inline __attribute__((always_inline)) void scores_step_bf16(const unsigned short* k, long ld, int d_len,
                                                                   const unsigned int* qt2, float* st, int R,
                                                                   __m512 qscale) {
  __m512 a[FL_KS][2];
  for (int x = 0; x < R; ++x) a[x][0] = a[x][1] = _mm512_setzero_ps();
  for (int p = 0; p < d_len / 2; ++p) {
    __m512bh q0 = (__m512bh)_mm512_load_si512(qt2 + p * FL_BM), q1 = (__m512bh)_mm512_load_si512(qt2 + p * FL_BM + 16);
    for (int x = 0; x < R; ++x) {
      __m512bh kv = (__m512bh)_mm512_set1_epi32((int)*(const u32_unaligned*)(k + x * ld + 2 * p));
      a[x][0] = _mm512_dpbf16_ps(a[x][0], kv, q0);
      a[x][1] = _mm512_dpbf16_ps(a[x][1], kv, q1);
    }
  }
  for (int x = 0; x < R; ++x) {
    _mm512_store_ps(st + x * FL_BM, _mm512_mul_ps(qscale, a[x][0]));
    _mm512_store_ps(st + x * FL_BM + 16, _mm512_mul_ps(qscale, a[x][1]));
  }
}

static inline void scores_bf16(const unsigned short* k, long ld, int d_len, const unsigned int* qt2, float* st,
                               int keys, __m512 qscale) {
  int j = 0;
  for (; j + FL_KS <= keys; j += FL_KS) scores_step_bf16(k + j * ld, ld, d_len, qt2, st + j * FL_BM, FL_KS, qscale);
  for (; j < keys; ++j) scores_step_bf16(k + j * ld, ld, d_len, qt2, st + j * FL_BM, 1, qscale);
}

// Pairs of V rows, interleaved: v2[p][c] = V[2p][c] | V[2p + 1][c] << 16 (a missing odd row: 0)
static inline void pair_rows(const unsigned short* v, long ld, int keys, int d_len, unsigned int* v2) {
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                              23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int j = 0; j < keys; j += 2)
    for (int c = 0; c < d_len; c += 16) {
      __m256i lo = _mm256_loadu_si256((const __m256i*)(v + j * ld + c));
      __m256i hi = j + 1 < keys ? _mm256_loadu_si256((const __m256i*)(v + (j + 1) * ld + c)) : _mm256_setzero_si256();
      __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
      _mm512_store_si512(v2 + (j / 2) * FL_DMAX + c, _mm512_permutexvar_epi16(interleave, both));
    }
}
#endif

// acc[i + r][c:c + 16 NV] += sum_j P[i + r][j] * v[j][c:c + 16 NV] for r < FL_RS. f32: pt[j][i]
// holds P[i][j], v[j] is at v + j * ld. bf16 (pairs): pt holds pp[p][i] (two bf16 of keys 2p,
// 2p + 1), v the paired rows v2[p] (pair_rows).
static inline __attribute__((always_inline)) void pv_step(const float* pt, const void* v, long ld, float* acc, int i,
                                                          int c, int keys, int NV, int pairs) {
  __m512 a[FL_RS][4];
  for (int r = 0; r < FL_RS; ++r)
    for (int x = 0; x < NV; ++x) a[r][x] = _mm512_load_ps(acc + (i + r) * FL_DMAX + c + 16 * x);
  if (!pairs) {
    for (int j = 0; j < keys; ++j) {
      const float* vj = (const float*)v + j * ld + c;
      __m512 vv[4];
      for (int x = 0; x < NV; ++x) vv[x] = _mm512_loadu_ps(vj + 16 * x);
      for (int r = 0; r < FL_RS; ++r) {
        __m512 p = _mm512_set1_ps(pt[j * FL_BM + i + r]);
        for (int x = 0; x < NV; ++x) a[r][x] = _mm512_fmadd_ps(p, vv[x], a[r][x]);
      }
    }
  }
#ifdef FL_DPBF16
  else {
    for (int j = 0; j < (keys + 1) / 2; ++j) {
      const unsigned int* vj = (const unsigned int*)v + j * FL_DMAX + c;
      __m512bh vv[4];
      for (int x = 0; x < NV; ++x) vv[x] = (__m512bh)_mm512_load_si512(vj + 16 * x);
      for (int r = 0; r < FL_RS; ++r) {
        __m512bh p = (__m512bh)_mm512_set1_epi32(((const int*)pt)[j * FL_BM + i + r]);
        for (int x = 0; x < NV; ++x) a[r][x] = _mm512_dpbf16_ps(a[r][x], p, vv[x]);
      }
    }
  }
#endif
  for (int r = 0; r < FL_RS; ++r)
    for (int x = 0; x < NV; ++x) _mm512_store_ps(acc + (i + r) * FL_DMAX + c + 16 * x, a[r][x]);
}

static inline __attribute__((always_inline)) void accumulate(const float* pt, const void* v, long ld, int d_len,
                                                             float* acc, int rows, int keys, int pairs) {
  for (int c = 0; c < d_len; c += 64) {
    const int nv = d_len - c >= 64 ? 4 : (d_len - c) / 16;
    for (int i = 0; i < rows; i += FL_RS) {
      if (nv == 4) pv_step(pt, v, ld, acc, i, c, keys, 4, pairs);
      else if (nv == 3) pv_step(pt, v, ld, acc, i, c, keys, 3, pairs);
      else if (nv == 2) pv_step(pt, v, ld, acc, i, c, keys, 2, pairs);
      else pv_step(pt, v, ld, acc, i, c, keys, 1, pairs);
    }
  }
}

// The online-softmax update of queries c..c+15 with the block's scores st[0:keys][c:c+16]
// (hidden keys, causal past i + diag, masked first). The weights replace the scores in st
// (f32), or are written to pp as bf16 pairs of keys (pairs: FL_DPBF16's P . V).
static inline void softmax_update(float* st, unsigned int* pp, int keys, int c, long first_key, long last_seen,
                                  int masked, float* m, float* l, float* acc, int d_len, int rescale, int pairs) {
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  const __m512i seen = _mm512_add_epi32(_mm512_set1_epi32((int)last_seen),
                                        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  __m512 m_old = _mm512_load_ps(m + c), mx = m_old;
  for (int j = 0; j < keys; ++j) {
    __m512 s = _mm512_load_ps(st + j * FL_BM + c);
    if (masked) {
      s = _mm512_mask_mov_ps(s, _mm512_cmpgt_epi32_mask(_mm512_set1_epi32((int)(first_key + j)), seen), neg_inf);
      _mm512_store_ps(st + j * FL_BM + c, s);
    }
    mx = _mm512_max_ps(mx, s);
  }
  // rows that have seen no key keep m = -inf: subtract 0 there (no -inf - -inf)
  const __m512 m_sub = _mm512_mask_mov_ps(mx, _mm512_cmp_ps_mask(mx, neg_inf, _CMP_EQ_OQ), _mm512_setzero_ps());
  const __m512 alpha = exp2_ps(_mm512_sub_ps(m_old, m_sub));
  __m512 sum = _mm512_setzero_ps();
  if (!pairs) {
    for (int j = 0; j < keys; ++j) {
      __m512 p = exp2_ps(_mm512_sub_ps(_mm512_load_ps(st + j * FL_BM + c), m_sub));
      _mm512_store_ps(st + j * FL_BM + c, p);
      sum = _mm512_add_ps(sum, p);
    }
  }
#ifdef FL_DPBF16
  else {
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int j = 0; j < keys; j += 2) {
      __m512 p0 = exp2_ps_as(_mm512_sub_ps(_mm512_load_ps(st + j * FL_BM + c), m_sub), 1);
      __m512 p1 = j + 1 < keys ? exp2_ps_as(_mm512_sub_ps(_mm512_load_ps(st + (j + 1) * FL_BM + c), m_sub), 1)
                               : _mm512_setzero_ps();
      __m512i pair = _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(p1, p0));
      _mm512_store_si512(pp + (j / 2) * FL_BM + c, pair);
      sum = _mm512_add_ps(sum, _mm512_castsi512_ps(_mm512_slli_epi32(pair, 16)));  // the weights as rounded
      sum = _mm512_add_ps(sum, _mm512_castsi512_ps(_mm512_and_si512(pair, _mm512_set1_epi32((int)0xFFFF0000u))));
    }
  }
#endif
  _mm512_store_ps(l + c, _mm512_fmadd_ps(_mm512_load_ps(l + c), alpha, sum));
  _mm512_store_ps(m + c, mx);
  unsigned changed = rescale ? _mm512_cmp_ps_mask(alpha, _mm512_set1_ps(1.0f), _CMP_NEQ_UQ) : 0;
  float al[16] __attribute__((aligned(64)));
  _mm512_store_ps(al, alpha);
  for (; changed; changed &= changed - 1) {
    int i = __builtin_ctz(changed);
    __m512 a = _mm512_set1_ps(al[i]);
    float* row = acc + (c + i) * FL_DMAX;
    for (int d = 0; d < d_len; d += 16) _mm512_store_ps(row + d, _mm512_mul_ps(a, _mm512_load_ps(row + d)));
  }
}

// r[i] (row i of a 16 x 16 block) -> r[c] (its column c): unpack pairs of rows, shuffle 4 x 4
// blocks within the 128-bit lanes, then the lanes across the four rows of vectors
static inline void transpose16(__m512* r) {
  __m512 t[16], u[16];
  FL_TRANSPOSE_IN_LANES(_mm512_unpacklo_ps, _mm512_unpackhi_ps, _mm512_shuffle_ps, r, t, u, 16)
  for (int k = 0; k < 4; ++k) {
    __m512 v0 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88), v1 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88);
    __m512 v2 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xDD), v3 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xDD);
    r[k] = _mm512_shuffle_f32x4(v0, v1, 0x88);
    r[k + 8] = _mm512_shuffle_f32x4(v0, v1, 0xDD);
    r[k + 4] = _mm512_shuffle_f32x4(v2, v3, 0x88);
    r[k + 12] = _mm512_shuffle_f32x4(v2, v3, 0xDD);
  }
}

// The block's Q^T: qt[x][i] = qscale * Q[i][x] (x < d_len; queries past `rows` 0), 16 queries
// x 16 dims a step, transposed in registers. pairs (FL_DPBF16's bf16 products): the 32-bit
// lanes of Q's rows, two dims each, unscaled (qt2[p][i] = Q[i][2p], Q[i][2p + 1]).
static inline void transpose_q(const char* q, long q_ld, int in_kind, int rows, int d_len, float* qt, float qscale,
                               int pairs) {
  const int in_size = kind_size(in_kind), width = pairs ? d_len / 2 : d_len;  // lanes per row
  const __m512 scale = _mm512_set1_ps(qscale);
  for (int c = 0; c < FL_BM; c += 16)
    for (int x = 0; x < width; x += 16) {
      const int n = width - x < 16 ? width - x : 16;
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        const char* row = q + (long)(c + i) * q_ld * in_size;
        r[i] = c + i >= rows ? _mm512_setzero_ps()
               : pairs       ? _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), (const float*)row + x)
                             : load16(row + x * in_size, in_kind);
      }
      transpose16(r);
      for (int y = 0; y < n; ++y) _mm512_store_ps(qt + (x + y) * FL_BM + c, pairs ? r[y] : _mm512_mul_ps(r[y], scale));
    }
}

// Adds a run-time additive mask (f32, in base 2) to the block's scores st[0:keys][0:rows]:
// mask_kind 1: a key-padding row mask[j], 2: mask rows mask[i][j] (row stride skv), read 16
// queries x 16 keys at a time and transposed to the scores' keys x queries.
static inline void add_mask(float* st, const float* mask, int mask_kind, long skv, int rows, int keys) {
  const __m512 log2e = _mm512_set1_ps(1.4426950408889634f);
  if (mask_kind == 1) {
    for (int j = 0; j < keys; ++j) {
      __m512 add = _mm512_mul_ps(_mm512_set1_ps(mask[j]), log2e);
      for (int c = 0; c < FL_BM; c += 16) _mm512_store_ps(st + j * FL_BM + c, _mm512_add_ps(add, _mm512_load_ps(st + j * FL_BM + c)));
    }
    return;
  }
  for (int c = 0; c < FL_BM; c += 16)
    for (int j = 0; j < keys; j += 16) {
      const int n = keys - j < 16 ? keys - j : 16;
      const __mmask16 in_block = (__mmask16)((1u << n) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = c + i < rows ? _mm512_maskz_loadu_ps(in_block, mask + (c + i) * skv + j) : _mm512_setzero_ps();
      transpose16(r);
      for (int x = 0; x < n; ++x) {
        float* s = st + (j + x) * FL_BM + c;
        _mm512_store_ps(s, _mm512_add_ps(_mm512_load_ps(s), _mm512_mul_ps(r[x], log2e)));
      }
    }
}

#ifdef FL_AMX
#if FL_BN != 64
#error "the AMX products take 64-key blocks (two 32-key A tiles per 16 queries)"
#endif
// Tiles: 0, 1 the f32 results (C); 2-5 the A operands; 6, 7 the B operands (amx.h's TILE_*
// and amx_begin: the instructions, or in the avx512amx_emu build their definitions in C).
// As scores_bf16 on AMX tiles: st[j][0:FL_BM] = qscale * sum_d k[j][d] * Q[0:FL_BM][d] for
// the block's keys j (rows of the last 16-key tile past `keys`: garbage, never read); K's rows
// are the A tiles (16 keys x 32 dims), qt2's (16 pairs of dims x 16 queries) the B tiles. A
// last tile of fewer than 16 keys is read from kpad, its rows copied with zero rows after them
// (no read past K).
static inline void scores_amx(const unsigned short* k, long ld, int d_len, const unsigned int* qt2, float* st,
                              int keys, unsigned short* kpad, __m512 qscale) {
  FL_TILES;
  for (int j = 0; j < keys; j += 16) {
    const char* a = (const char*)(k + j * ld);
    long stride = ld * 2;
    if (keys - j < 16) {
      for (int r = 0; r < 16; ++r)
        for (int x = 0; x < d_len; x += 32)
          _mm512_store_si512(kpad + r * FL_DMAX + x,
                             j + r < keys ? _mm512_loadu_si512(k + (j + r) * ld + x) : _mm512_setzero_si512());
      a = (const char*)kpad;
      stride = FL_DMAX * 2;
    }
    TILE_ZERO(0);
    TILE_ZERO(1);
    for (int x = 0; x < d_len; x += 32) {
      TILE_LOAD(2, a + x * 2, stride);
      TILE_LOAD(6, qt2 + (x / 2) * FL_BM, FL_BM * 4);
      TILE_LOAD(7, qt2 + (x / 2) * FL_BM + 16, FL_BM * 4);
      TILE_DPBF16PS(0, 2, 6);
      TILE_DPBF16PS(1, 2, 7);
    }
    TILE_STORE(0, st + j * FL_BM, FL_BM * 4);
    TILE_STORE(1, st + j * FL_BM + 16, FL_BM * 4);
  }
  for (int x = 0; x < keys * FL_BM; x += 16) _mm512_store_ps(st + x, _mm512_mul_ps(qscale, _mm512_load_ps(st + x)));
}

// acc[0:FL_BM][0:d_len] += P . V_blk: pp (pairs of keys x queries, softmax_update's) transposed
// into pa (queries x pairs: P's rows as bf16) for the A tiles, v2 (pair_rows' paired V rows) the
// B tiles, acc loaded, accumulated and stored 2 x 16 queries x 16 columns at a time. pp and v2
// rows from (keys + 1) / 2 to the next multiple of 16 are zeroed first (0 weights, 0 values).
static inline void accumulate_amx(unsigned int* pp, unsigned int* v2, float* acc, int d_len, int keys,
                                  unsigned int* pa) {
  FL_TILES;
  const int pairs = (keys + 1) / 2, padded = (pairs + 15) / 16 * 16;
  for (int p = pairs; p < padded; ++p) {
    for (int i = 0; i < FL_BM; i += 16) _mm512_store_si512(pp + p * FL_BM + i, _mm512_setzero_si512());
    for (int c = 0; c < d_len; c += 16) _mm512_store_si512(v2 + p * FL_DMAX + c, _mm512_setzero_si512());
  }
  for (int p0 = 0; p0 < padded; p0 += 16)
    for (int i0 = 0; i0 < FL_BM; i0 += 16) {
      __m512 r[16];
      for (int x = 0; x < 16; ++x) r[x] = _mm512_load_ps((const float*)pp + (p0 + x) * FL_BM + i0);
      transpose16(r);
      for (int x = 0; x < 16; ++x) _mm512_store_ps((float*)pa + (i0 + x) * (FL_BN / 2) + p0, r[x]);
    }
  const long a_ld = FL_BN / 2 * 4;       // bytes per row of pa
  TILE_LOAD(2, pa, a_ld);                // queries 0-15, keys 0-31
  TILE_LOAD(4, pa + 16 * (FL_BN / 2), a_ld);   // queries 16-31
  if (padded > 16) {                     // keys 32-63
    TILE_LOAD(3, pa + 16, a_ld);
    TILE_LOAD(5, pa + 16 * (FL_BN / 2) + 16, a_ld);
  }
  for (int c = 0; c < d_len; c += 16) {
    TILE_LOAD(0, acc + c, FL_DMAX * 4);
    TILE_LOAD(1, acc + 16 * FL_DMAX + c, FL_DMAX * 4);
    TILE_LOAD(6, v2 + c, FL_DMAX * 4);
    TILE_DPBF16PS(0, 2, 6);
    TILE_DPBF16PS(1, 4, 6);
    if (padded > 16) {
      TILE_LOAD(7, v2 + 16 * FL_DMAX + c, FL_DMAX * 4);
      TILE_DPBF16PS(0, 3, 7);
      TILE_DPBF16PS(1, 5, 7);
    }
    TILE_STORE(0, acc + c, FL_DMAX * 4);
    TILE_STORE(1, acc + 16 * FL_DMAX + c, FL_DMAX * 4);
  }
}
#endif

// K or V rows [j0, j0 + keys) as f32 rows of ld floats: the operand itself (f32), or
// converted into buf (rows of d_len)
static inline const float* kv_rows(const char* p, long ld, long j0, int keys, int d_len, int in_kind, float* buf,
                                   long* ld_out) {
  if (in_kind == F32) {
    *ld_out = ld;
    return (const float*)p + j0 * ld;
  }
  for (int j = 0; j < keys; ++j)
    for (int x = 0; x < d_len; x += 16)
      _mm512_store_ps(buf + j * d_len + x, load16((const unsigned short*)p + (j0 + j) * ld + x, in_kind));
  *ld_out = d_len;
  return buf;
}

static inline __attribute__((always_inline)) void attention(const fl_block* blk, int in_kind, int out_kind, float scale,
                                                            size_t empty_zero) {
#ifdef FL_DPBF16
  const int pairs = in_kind == BF16;  // bf16 products (VDPBF16PS)
#else
  const int pairs = 0;
#endif
  float qt[pairs ? FL_DMAX / 2 * FL_BM : FL_DMAX * FL_BM] __attribute__((aligned(64)));  // Q^T, or qt2
  float st[FL_BN * FL_BM] __attribute__((aligned(64)));
  float acc[FL_BM * FL_DMAX] __attribute__((aligned(64)));
  float kv_block[in_kind == F32 ? 16 : FL_BN * FL_DMAX] __attribute__((aligned(64)));  // K, V as f32, or v2
  unsigned int pp[pairs ? FL_BN / 2 * FL_BM : 16] __attribute__((aligned(64)));
  float m[FL_BM] __attribute__((aligned(64))), l[FL_BM] __attribute__((aligned(64)));
  const int d_len = blk->d, rows = blk->rows, in_size = kind_size(in_kind), out_size = kind_size(out_kind);
  const long m0 = blk->m0;
  const float qscale = scale * 1.4426950408889634f;  // base-2 scores
#ifdef FL_AMX
  unsigned int pa[pairs ? FL_BM * FL_BN / 2 : 16] __attribute__((aligned(64)));  // P as bf16 rows (A tiles)
  unsigned short kpad[pairs ? 16 * FL_DMAX : 32] __attribute__((aligned(64)));  // a short last key tile
  const int amx = pairs && d_len % 32 == 0 && amx_begin();
  // V's paired rows, two blocks: block j's in vbuf[j % 2], paired while block j - 1 is computed
  // (an AMX tile load of rows the vector unit has just stored waits for them: 10-20% of the
  // kernel's time on a Sapphire Rapids core when V was paired right before its product)
  unsigned int* vbuf[2] = {(unsigned int*)kv_block, (unsigned int*)kv_block + FL_BN / 2 * FL_DMAX};
  if (amx) pair_rows((const unsigned short*)blk->v, blk->v_ld, (int)(blk->end < FL_BN ? blk->end : FL_BN), d_len, vbuf[0]);
#endif
  transpose_q(blk->q, blk->q_ld, in_kind, rows, d_len, qt, qscale, pairs);
  for (int i = 0; i < FL_BM; ++i) {
    for (int x = 0; x < d_len; x += 16) _mm512_store_ps(acc + i * FL_DMAX + x, _mm512_setzero_ps());
    m[i] = -__builtin_inff();
    l[i] = 0.0f;
  }
  for (long j0 = 0; j0 < blk->end; j0 += FL_BN) {
    const int keys = (int)(blk->end - j0 < FL_BN ? blk->end - j0 : FL_BN);
    long ld;
#ifdef FL_DPBF16
    if (pairs) {
#ifdef FL_AMX
      if (amx) {
        const long next = j0 + FL_BN;
        if (next < blk->end)
          pair_rows((const unsigned short*)blk->v + next * blk->v_ld, blk->v_ld,
                    (int)(blk->end - next < FL_BN ? blk->end - next : FL_BN), d_len, vbuf[(next / FL_BN) & 1]);
        scores_amx((const unsigned short*)blk->k + j0 * blk->k_ld, blk->k_ld, d_len, (const unsigned int*)qt, st,
                   keys, kpad, _mm512_set1_ps(qscale));
      } else
#endif
      scores_bf16((const unsigned short*)blk->k + j0 * blk->k_ld, blk->k_ld, d_len, (const unsigned int*)qt, st, keys,
                  _mm512_set1_ps(qscale));
    } else
#endif
    {
      const float* kb = kv_rows(blk->k, blk->k_ld, j0, keys, d_len, in_kind, kv_block, &ld);
      scores(kb, ld, d_len, qt, st, keys);
    }
    if (blk->mask_kind) add_mask(st, blk->mask + j0, blk->mask_kind, blk->skv, rows, keys);
    const int masked = blk->causal && j0 + keys - 1 > m0 + blk->diag;  // the block crosses the diagonal
    for (int c = 0; c < FL_BM; c += 16)
      softmax_update(st, pp, keys, c, j0, m0 + c + blk->diag, masked, m, l, acc, d_len, j0 > 0, pairs);
#ifdef FL_DPBF16
    if (pairs) {
#ifdef FL_AMX
      if (amx) {
        accumulate_amx(pp, vbuf[(j0 / FL_BN) & 1], acc, d_len, keys, pa);
        continue;
      }
#endif
      pair_rows((const unsigned short*)blk->v + j0 * blk->v_ld, blk->v_ld, keys, d_len, (unsigned int*)kv_block);
      accumulate((const float*)pp, kv_block, 0, d_len, acc, rows, keys, 1);
      continue;
    }
#endif
    const float* vb = kv_rows(blk->v, blk->v_ld, j0, keys, d_len, in_kind, kv_block, &ld);
    accumulate(st, vb, ld, d_len, acc, rows, keys, 0);
  }
#ifdef FL_AMX
  if (amx) TILE_RELEASE();
#endif
  for (int i = 0; i < rows; ++i) {
    // l = 0: no key seen, 0 * inf = NaN (the op's answer), or 0 with the row guard folded in
    const __m512 inv = _mm512_set1_ps(l[i] == 0.0f && empty_zero ? 0.0f : 1.0f / l[i]);
    store_row(acc + i * FL_DMAX, blk->o + (long)i * blk->o_ld * out_size, d_len, out_kind, inv);
  }
}

#if defined(FL_AMX_EMULATE)
FL_ENTRIES(avx512amx_emu)
#elif defined(FL_AMX)
FL_ENTRIES(avx512amx)
#elif defined(FL_DPBF16)
FL_ENTRIES(avx512bf16)
#else
FL_ENTRIES(avx512)
#endif
