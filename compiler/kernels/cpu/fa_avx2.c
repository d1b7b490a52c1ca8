// flashlift's CPU FlashAttention forward, AVX2 + FMA (+ F16C): one (query block, head) per call.
// Q, K, V in f32, f16 or bf16, O in their type or f32; every product and sum in f32.
//
// Called by the shim IREE compiles around it (compiler/kernels/cpu_fa.py), once per workgroup
// (x: query block, y: batch * head), from IREE's task system, which spreads workgroups over
// its worker threads; where the operands lie: fa_common.h (Q, O: (B, H, Sq, D); K, V:
// (B, KVH, Skv, D), each contiguous or as sequence rows: a (B, S, heads, D) tensor, or its
// columns of a fused QKV projection's [B * S, width] result). D a multiple of 16, at most FL_DMAX.
// Half-precision inputs are converted to f32 as they are read: Q once, each K and V block
// into one buffer.
//
// Scores are computed transposed, keys x queries (st[j][i]), so that the online softmax runs
// down the columns: every max, exp and sum is a vertical op over 8 queries, none horizontal.
// Each key block of FL_BN keys: st = K_blk . Q^T (6 keys x 16 queries a step, 12
// accumulators), the masked online-softmax update per 8 queries, then acc += P . V_blk
// (6 queries x 16 columns a step: 12 accumulators, enough to cover the FMA latency).
// Scores are base 2 (Q is scaled by scale * log2(e) once), exp2 a degree-6 polynomial with
// the exponent built in the float's bits; it is exactly 0 at or below -126.5, so -inf scores
// (hidden keys) weigh 0. A row that sees no key ends with l = 0 and its output is 0 / 0 =
// NaN, as the attention op defines it (0 where the shim says the row guard after the op is
// folded in: empty_zero, attention_fusion.row_guard). Causal (1: top-left, 2: bottom-right, key j visible
// to query i iff j <= i + diag): key blocks past a query block's last visible key are not
// visited, only blocks that cross the diagonal are masked. A run-time additive mask (f32:
// [B, Skv] key padding, [B, Sq, Skv] or [Sq, Skv]) is added to each block's scores; a row
// every key of which is masked by a finite value (the -2^126 floor flashlift clamps masks at)
// sees every key, uniformly, as in PyTorch.
//
// Embedded-ELF rules (IREE links this object into its executable): no libc, no globals
// written, no thread-local storage; stack only (about 64 KB with half-precision inputs, under
// IREE's 128 KB worker stacks).
#include <immintrin.h>
#include <stddef.h>

#include "fa_common.h"

#define FL_BM 32   // queries per block (4 vectors of 8)
#define FL_BN 48   // keys per block (8 steps of 6)
#define FL_DMAX 128

static inline __m256 exp2_ps(__m256 x) {
  // 2^x = 2^n * 2^f, n = round(x), f in [-0.5, 0.5] (FL_EXP2_FRACTION); n <= -127 gives a
  // zero exponent field: exactly 0
  x = _mm256_max_ps(x, _mm256_set1_ps(-127.0f));
  __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 f = _mm256_sub_ps(x, n);
  __m256 p = FL_EXP2_FRACTION(_mm256_fmadd_ps, _mm256_set1_ps, f);
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// st[j][0:FL_BM] = sum_d k[j][d] * qt[d][0:FL_BM] for j < keys (key j's row at k + j * ld)
static inline void scores(const float* k, long ld, int d_len, const float* qt, float* st, int keys) {
  int j = 0;
  for (; j + 6 <= keys; j += 6)
    for (int c = 0; c < FL_BM; c += 16) {
      __m256 a[6][2];
      for (int x = 0; x < 6; ++x) a[x][0] = a[x][1] = _mm256_setzero_ps();
      const float* kj = k + j * ld;
      for (int d = 0; d < d_len; ++d) {
        __m256 q0 = _mm256_load_ps(qt + d * FL_BM + c), q1 = _mm256_load_ps(qt + d * FL_BM + c + 8);
        for (int x = 0; x < 6; ++x) {
          __m256 kv = _mm256_broadcast_ss(kj + x * ld + d);
          a[x][0] = _mm256_fmadd_ps(kv, q0, a[x][0]);
          a[x][1] = _mm256_fmadd_ps(kv, q1, a[x][1]);
        }
      }
      for (int x = 0; x < 6; ++x) {
        _mm256_store_ps(st + (j + x) * FL_BM + c, a[x][0]);
        _mm256_store_ps(st + (j + x) * FL_BM + c + 8, a[x][1]);
      }
    }
  for (; j < keys; ++j)
    for (int c = 0; c < FL_BM; c += 8) {
      __m256 a = _mm256_setzero_ps();
      for (int d = 0; d < d_len; ++d)
        a = _mm256_fmadd_ps(_mm256_broadcast_ss(k + j * ld + d), _mm256_load_ps(qt + d * FL_BM + c), a);
      _mm256_store_ps(st + j * FL_BM + c, a);
    }
}

// acc[i][c:c+16] += sum_j pt[j][i] * v[j][c:c+16] for R queries from i (v[j] at v + j * ld)
#define PV_STEP(R)                                                                             \
  {                                                                                            \
    __m256 a[R][2];                                                                            \
    for (int r = 0; r < R; ++r)                                                                \
      for (int x = 0; x < 2; ++x) a[r][x] = _mm256_load_ps(acc + (i + r) * FL_DMAX + c + 8 * x); \
    for (int j = 0; j < keys; ++j) {                                                           \
      const float* vj = v + j * ld + c;                                                        \
      __m256 v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8);                           \
      for (int r = 0; r < R; ++r) {                                                            \
        __m256 p = _mm256_broadcast_ss(pt + j * FL_BM + i + r);                                \
        a[r][0] = _mm256_fmadd_ps(p, v0, a[r][0]);                                             \
        a[r][1] = _mm256_fmadd_ps(p, v1, a[r][1]);                                             \
      }                                                                                        \
    }                                                                                          \
    for (int r = 0; r < R; ++r)                                                                \
      for (int x = 0; x < 2; ++x) _mm256_store_ps(acc + (i + r) * FL_DMAX + c + 8 * x, a[r][x]); \
  }

static inline void accumulate(const float* pt, const float* v, long ld, int d_len, float* acc, int rows, int keys) {
  for (int c = 0; c < d_len; c += 16) {
    int i = 0;
    for (; i + 6 <= rows; i += 6) PV_STEP(6)
    for (; i < rows; i += 2) PV_STEP(2)
  }
}

// The online-softmax update of queries c..c+7 with the block's scores st[0:keys][c:c+8]
// (replaced by their weights p); hidden keys (causal, past i + diag) are masked first.
static inline void softmax_update(float* st, int keys, int c, long first_key, long last_seen, int masked,
                                  float* m, float* l, float* acc, int d_len, int rescale) {
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  __m256i seen = _mm256_add_epi32(_mm256_set1_epi32((int)last_seen), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256 m_old = _mm256_load_ps(m + c), mx = m_old;
  for (int j = 0; j < keys; ++j) {
    __m256 s = _mm256_load_ps(st + j * FL_BM + c);
    if (masked) {
      __m256 hide = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(first_key + j)), seen));
      s = _mm256_blendv_ps(s, neg_inf, hide);
      _mm256_store_ps(st + j * FL_BM + c, s);
    }
    mx = _mm256_max_ps(mx, s);
  }
  // rows that have seen no key keep m = -inf: subtract 0 there (no -inf - -inf)
  __m256 m_sub = _mm256_blendv_ps(mx, _mm256_setzero_ps(), _mm256_cmp_ps(mx, neg_inf, _CMP_EQ_OQ));
  __m256 alpha = exp2_ps(_mm256_sub_ps(m_old, m_sub)), sum = _mm256_setzero_ps();
  for (int j = 0; j < keys; ++j) {
    __m256 p = exp2_ps(_mm256_sub_ps(_mm256_load_ps(st + j * FL_BM + c), m_sub));
    _mm256_store_ps(st + j * FL_BM + c, p);
    sum = _mm256_add_ps(sum, p);
  }
  _mm256_store_ps(l + c, _mm256_fmadd_ps(_mm256_load_ps(l + c), alpha, sum));
  _mm256_store_ps(m + c, mx);
  int changed = rescale ? _mm256_movemask_ps(_mm256_cmp_ps(alpha, _mm256_set1_ps(1.0f), _CMP_NEQ_UQ)) : 0;
  float al[8] __attribute__((aligned(32)));
  _mm256_store_ps(al, alpha);
  for (; changed; changed &= changed - 1) {
    int i = __builtin_ctz(changed);
    __m256 a = _mm256_set1_ps(al[i]);
    float* row = acc + (c + i) * FL_DMAX;
    for (int d = 0; d < d_len; d += 8) _mm256_store_ps(row + d, _mm256_mul_ps(a, _mm256_load_ps(row + d)));
  }
}

// 8 elements of kind `kind` at src as f32
static inline __m256 load8(const void* src, int kind) {
  if (kind == F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)src));
  if (kind == BF16)
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)src)), 16));
  return _mm256_loadu_ps((const float*)src);
}

// n (a multiple of 8) elements of kind `kind` at src as f32 at dst
static inline void to_f32(const void* src, float* dst, int n, int kind) {
  for (int x = 0; x < n; x += 8) _mm256_store_ps(dst + x, load8((const char*)src + x * kind_size(kind), kind));
}

// n (a multiple of 8) f32 at src stored as `kind` at dst, rounded to nearest even
static inline void from_f32(const float* src, void* dst, int n, int kind) {
  for (int x = 0; x < n; x += 8) {
    __m256 f = _mm256_loadu_ps(src + x);
    if (kind == F16) {
      _mm_storeu_si128((__m128i*)((unsigned short*)dst + x), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    } else if (kind == BF16) {
      __m256i u = _mm256_castps_si256(f);
      __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
      __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF))), 16);
      __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(f, f, _CMP_UNORD_Q));
      r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), nan);
      __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
      _mm_storeu_si128((__m128i*)((unsigned short*)dst + x), packed);
    } else {
      _mm256_storeu_ps((float*)dst + x, f);
    }
  }
}

// r[i] (row i of an 8 x 8 block) -> r[c] (its column c)
static inline void transpose8(__m256* r) {
  __m256 t[8], u[8];
  FL_TRANSPOSE_IN_LANES(_mm256_unpacklo_ps, _mm256_unpackhi_ps, _mm256_shuffle_ps, r, t, u, 8)
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x20);
    r[k + 4] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x31);
  }
}

// The block's Q^T: qt[x][i] = qscale * Q[i][x] (x < d_len; queries past `rows` 0), 8 queries
// x 8 dims a step, transposed in registers.
static inline void transpose_q(const char* q, long q_ld, int in_kind, int rows, int d_len, float* qt, float qscale) {
  const int in_size = kind_size(in_kind);
  const __m256 scale = _mm256_set1_ps(qscale);
  for (int c = 0; c < FL_BM; c += 8)
    for (int x = 0; x < d_len; x += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i)
        r[i] = c + i < rows ? load8(q + ((long)(c + i) * q_ld + x) * in_size, in_kind) : _mm256_setzero_ps();
      transpose8(r);
      for (int y = 0; y < 8; ++y) _mm256_store_ps(qt + (x + y) * FL_BM + c, _mm256_mul_ps(r[y], scale));
    }
}

// Adds a run-time additive mask (f32, in base 2) to the block's scores st[0:keys][0:rows]:
// mask_kind 1: a key-padding row mask[j] (the batch entry's [Skv] row), 2: mask rows
// mask[i][j] (the query block's first row of a [Sq, Skv] mask, row stride skv), read 8
// queries x 8 keys at a time and transposed to the scores' keys x queries.
static inline void add_mask(float* st, const float* mask, int mask_kind, long skv, int rows, int keys) {
  const __m256 log2e = _mm256_set1_ps(1.4426950408889634f);
  if (mask_kind == 1) {
    for (int j = 0; j < keys; ++j) {
      __m256 add = _mm256_mul_ps(_mm256_set1_ps(mask[j]), log2e);
      for (int c = 0; c < FL_BM; c += 8) _mm256_store_ps(st + j * FL_BM + c, _mm256_add_ps(add, _mm256_load_ps(st + j * FL_BM + c)));
    }
    return;
  }
  for (int c = 0; c < FL_BM; c += 8)
    for (int j = 0; j < keys; j += 8) {
      const int n = keys - j < 8 ? keys - j : 8;
      const __m256i in_block = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      __m256 r[8];
      for (int i = 0; i < 8; ++i)
        r[i] = c + i < rows ? _mm256_maskload_ps(mask + (c + i) * skv + j, in_block) : _mm256_setzero_ps();
      transpose8(r);
      for (int x = 0; x < n; ++x) {
        float* s = st + (j + x) * FL_BM + c;
        _mm256_store_ps(s, _mm256_add_ps(_mm256_load_ps(s), _mm256_mul_ps(r[x], log2e)));
      }
    }
}

// K or V rows [j0, j0 + keys) as f32 rows of ld floats: the operand itself (f32), or
// converted into buf (rows of d_len)
static inline const float* kv_rows(const char* p, long ld, long j0, int keys, int d_len, int in_kind, float* buf,
                                   long* ld_out) {
  const int in_size = kind_size(in_kind);
  if (in_kind == F32) {
    *ld_out = ld;
    return (const float*)(p + j0 * ld * in_size);
  }
  for (int j = 0; j < keys; ++j) to_f32(p + (j0 + j) * ld * in_size, buf + j * d_len, d_len, in_kind);
  *ld_out = d_len;
  return buf;
}

static inline __attribute__((always_inline)) void attention(const fl_block* blk, int in_kind, int out_kind, float scale,
                                                            size_t empty_zero) {
  float qt[FL_DMAX * FL_BM] __attribute__((aligned(32)));
  float st[FL_BN * FL_BM] __attribute__((aligned(32)));
  float acc[FL_BM * FL_DMAX] __attribute__((aligned(32)));
  float kv_block[in_kind == F32 ? 8 : FL_BN * FL_DMAX] __attribute__((aligned(32)));  // K or V as f32
  float m[FL_BM] __attribute__((aligned(32))), l[FL_BM] __attribute__((aligned(32)));
  const int d_len = blk->d, rows = blk->rows, in_size = kind_size(in_kind), out_size = kind_size(out_kind);
  const long m0 = blk->m0;
  const float qscale = scale * 1.4426950408889634f;  // base-2 scores
  transpose_q(blk->q, blk->q_ld, in_kind, rows, d_len, qt, qscale);
  for (int i = 0; i < FL_BM; ++i) {
    for (int x = 0; x < d_len; x += 8) _mm256_store_ps(acc + i * FL_DMAX + x, _mm256_setzero_ps());
    m[i] = -__builtin_inff();
    l[i] = 0.0f;
  }
  for (long j0 = 0; j0 < blk->end; j0 += FL_BN) {
    const int keys = (int)(blk->end - j0 < FL_BN ? blk->end - j0 : FL_BN);
    long ld;
    const float* kb = kv_rows(blk->k, blk->k_ld, j0, keys, d_len, in_kind, kv_block, &ld);
    scores(kb, ld, d_len, qt, st, keys);
    if (blk->mask_kind) add_mask(st, blk->mask + j0, blk->mask_kind, blk->skv, rows, keys);
    const int masked = blk->causal && j0 + keys - 1 > m0 + blk->diag;  // the block crosses the diagonal
    for (int c = 0; c < FL_BM; c += 8)
      softmax_update(st, keys, c, j0, m0 + c + blk->diag, masked, m, l, acc, d_len, j0 > 0);
    const float* vb = kv_rows(blk->v, blk->v_ld, j0, keys, d_len, in_kind, kv_block, &ld);
    accumulate(st, vb, ld, d_len, acc, rows, keys);
  }
  for (int i = 0; i < rows; ++i) {
    float row[FL_DMAX] __attribute__((aligned(32)));
    // l = 0: no key seen, 0 * inf = NaN (the op's answer), or 0 with the row guard folded in
    __m256 inv = _mm256_set1_ps(l[i] == 0.0f && empty_zero ? 0.0f : 1.0f / l[i]);
    for (int x = 0; x < d_len; x += 8) _mm256_store_ps(row + x, _mm256_mul_ps(inv, _mm256_load_ps(acc + i * FL_DMAX + x)));
    from_f32(row, blk->o + (long)i * blk->o_ld * out_size, d_len, out_kind);
  }
}

FL_ENTRIES(avx2)
