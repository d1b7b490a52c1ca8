// flashlift's CPU residual add + LayerNorm or RMSNorm, AVX2 + FMA (+ F16C): FL_ROWS rows per call.
//
// Row i of x (n elements, in f32, f16 or bf16) is a[i] (+ r[i], rounded to the input type:
// the model adds in it), then, all in f32, as torch-mlir's decompositions of the norms over
// the last dim compute them (passes/norms.py):
//     LayerNorm:  mean = sum(x) / n,  var = sum((x - mean)^2) / n   (biased, centred: two passes)
//                 y = ((x - mean) * (1 / sqrt(var + eps))) [* w] [+ b]
//     RMSNorm:    ms = sum(x * x) / n,  y = x * (1 / sqrt(ms + eps)) [* w]
//                 (weight_rounded: y rounded to the input type first, as LLaMA's
//                 `weight * y.to(dtype)`; the product of two such values is exact in f32, so
//                 rounding it once more is the input type's own multiply)
// each product and sum rounded as the decomposition's ops round them (no contraction into
// FMAs), y stored in the output type (round to nearest even). The variance is accumulated in
// f32 (the decomposition's is in f64, truncated: they differ by rounding, ~1e-7 relative).
// The row is kept in a stack buffer between the passes (n <= FL_NMAX, a multiple of 8).
//
// Called by the shim IREE compiles around it (compiler/kernels/cpu_norm.py), once per
// workgroup (x: block of FL_ROWS rows). Embedded-ELF rules as fa_avx2.c's: no libc, no
// globals written, stack only (32 KB).
#include <immintrin.h>
#include <stddef.h>

#include "shim_abi.h"

#define FL_ROWS 8
#define FL_NMAX 8192

enum { F32, F16, BF16 };

static inline __m256 load8(const void* p, long i, int kind) {
  if (kind == F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)((const unsigned short*)p + i)));
  if (kind == BF16) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)((const unsigned short*)p + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  return _mm256_loadu_ps((const float*)p + i);
}

// f32 -> bf16 bits in the low halves of 8 lanes, round to nearest even, NaN kept a NaN
static inline __m256i bf16_bits(__m256 f) {
  __m256i u = _mm256_castps_si256(f);
  __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF))), 16);
  __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(f, f, _CMP_UNORD_Q));
  return _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), nan);
}

static inline void store8(void* p, long i, __m256 f, int kind) {
  if (kind == F16) {
    _mm_storeu_si128((__m128i*)((unsigned short*)p + i), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
  } else if (kind == BF16) {
    __m256i r = bf16_bits(f);
    __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128((__m128i*)((unsigned short*)p + i), packed);
  } else {
    _mm256_storeu_ps((float*)p + i, f);
  }
}

// f rounded to `kind` and back (the model's sum in its own type)
static inline __m256 round_to(__m256 f, int kind) {
  if (kind == F16) return _mm256_cvtph_ps(_mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
  if (kind == BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(bf16_bits(f), 16));
  return f;
}

static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

static inline __attribute__((always_inline)) void norm(
    const char* a, const char* r, const char* w, const char* b, char* y, int in_kind, int out_kind,
    size_t block, size_t rows, size_t n, float eps, size_t has_r, size_t has_w, size_t has_b, size_t rms,
    size_t weight_rounded) {
  float x[FL_NMAX] __attribute__((aligned(32)));
  const long len = (long)n;
  for (size_t i = block * FL_ROWS; i < rows && i < (block + 1) * FL_ROWS; ++i) {
    const long row = (long)i * len;
    __m256 sum = _mm256_setzero_ps();
    for (long c = 0; c < len; c += 8) {
      __m256 v = load8(a, row + c, in_kind);
      if (has_r) v = round_to(_mm256_add_ps(v, load8(r, row + c, in_kind)), in_kind);
      _mm256_store_ps(x + c, v);
      sum = _mm256_add_ps(sum, v);
    }
    // RMSNorm: the mean of squares, around 0
    const __m256 mean = rms ? _mm256_setzero_ps() : _mm256_set1_ps(hsum(sum) / (float)len);
    __m256 squares = _mm256_setzero_ps();
    for (long c = 0; c < len; c += 8) {
      __m256 d = _mm256_sub_ps(_mm256_load_ps(x + c), mean);
      squares = _mm256_add_ps(squares, _mm256_mul_ps(d, d));
    }
    const float var = hsum(squares) / (float)len;
    const __m256 rstd = _mm256_set1_ps(1.0f / _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(var + eps))));
    for (long c = 0; c < len; c += 8) {
      __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_load_ps(x + c), mean), rstd);
      if (weight_rounded) v = round_to(v, in_kind);
      if (has_w) v = _mm256_mul_ps(v, load8(w, c, in_kind));
      if (has_b) v = _mm256_add_ps(v, load8(b, c, in_kind));
      store8(y, row + c, v, out_kind);
    }
  }
}

// The entry points: IN_OUT names the element types of a, r, w, b and of y, taking the shim's
// memrefs (shim_abi.h). A binding the op does not have (has_* 0) is never read.
#define ENTRY(NAME, IN_T, IN_KIND, OUT_T, OUT_KIND)                                                       \
  void NAME(FL_MEMREF(const IN_T, a), FL_MEMREF(const IN_T, r), FL_MEMREF(const IN_T, w),                  \
            FL_MEMREF(const IN_T, b), FL_MEMREF(OUT_T, y), size_t block,                                   \
            size_t rows, size_t n, float eps, size_t has_r, size_t has_w, size_t has_b, size_t rms,     \
            size_t weight_rounded) {                                                                     \
    norm((const char*)(a + a_off), (const char*)(r + r_off), (const char*)(w + w_off),                   \
         (const char*)(b + b_off), (char*)(y + y_off), IN_KIND, OUT_KIND, block, rows, n, eps, has_r,    \
         has_w, has_b, rms, weight_rounded);                                                             \
  }

ENTRY(flashlift_norm_f32_f32_avx2, float, F32, float, F32)
ENTRY(flashlift_norm_f16_f16_avx2, unsigned short, F16, unsigned short, F16)
ENTRY(flashlift_norm_f16_f32_avx2, unsigned short, F16, float, F32)
ENTRY(flashlift_norm_bf16_bf16_avx2, unsigned short, BF16, unsigned short, BF16)
ENTRY(flashlift_norm_bf16_f32_avx2, unsigned short, BF16, float, F32)
