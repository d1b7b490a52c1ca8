// flashlift's CPU GEMM for bf16 linear layers: C = A . W^T (+ bias), products of bf16 pairs
// summed in f32, the bias added to the f32 sum, C rounded once (bf16, to nearest even) or f32.
// Built (compiler/kernels/cpu_build.py) as avx512bf16 (VDPBF16PS, 16 lanes of bf16 pairs a
// vector) and avx512amx with FL_AMX (TDPBF16PS on tiles; Sapphire Rapids and later), which
// also takes the vector path for the rows past the last whole 32 (and where the kernel may not
// have AMX state); avx512amx_emu is the AMX build with its tile unit in C (amx.h), which the
// tests run on CPUs without AMX.
//
//   A   M x K bf16, row-major (the layer's input)
//   WP  W packed as pairs of K in blocks of 32 columns: WP[b][p][c] = W[32b + c][2p] |
//       W[32b + c][2p + 1] << 16, (N / 32) x (K / 2) x 32 32-bit lanes: 16 of a row are an AMX
//       B tile's row and a VDPBF16PS operand as they are, and a block's K / 2 rows lie
//       together, 128 bytes apart (rows of all N columns would cross a page every row or two).
//       The packing is a transpose of W (compiler/cpu_gemm_dispatch.py emits it; IREE hoists it
//       out of the call for a constant weight)
//   bias [N] bf16 or none; C M x N, bf16 or f32
//
// One call per workgroup: (x, y) = (block of FL_WN columns, block of FL_WM rows). K and N are
// multiples of 32. Each 32 x 32 block of C is computed whole over K, then stored.
// Embedded-ELF rules as fa_avx2.c's: no libc, no globals written, stack only (8 KB).
#include <immintrin.h>
#include <stddef.h>

#include "shim_abi.h"
#ifdef FL_AMX
#include "amx.h"
#endif

#define FL_WM 64  // rows of C a workgroup
#define FL_WN 64  // columns of C a workgroup

typedef unsigned int u32_unaligned __attribute__((may_alias, aligned(2)));

// c[0:rows][0:32] of the block (row stride 32) + bias, stored at out (row stride n)
static inline void store_block(const float* c, int rows, const unsigned short* bias, void* out, long n, int out_bf16) {
  __m512 b[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int x = 0; bias && x < 2; ++x)
    b[x] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(bias + 16 * x))), 16));
  for (int r = 0; r < rows; ++r)
    for (int x = 0; x < 2; ++x) {
      __m512 v = _mm512_add_ps(_mm512_load_ps(c + r * 32 + 16 * x), b[x]);
      if (out_bf16)
        _mm256_storeu_si256((__m256i*)((unsigned short*)out + r * n + 16 * x), (__m256i)_mm512_cvtneps_pbh(v));
      else
        _mm512_storeu_ps((float*)out + r * n + 16 * x, v);
    }
}

// c[0:R][0:32] = A[0:R] . W^T for one block of 32 columns (wp: the block's packed rows), R rows
// (a constant where it is inlined: the accumulators stay in registers)
static inline __attribute__((always_inline)) void rows_dpbf16(const unsigned short* a, long k, const unsigned int* wp,
                                                              float* c, const int R) {
  __m512 acc[8][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (long p = 0; p < k / 2; ++p) {
    __m512bh w0 = (__m512bh)_mm512_load_si512(wp + p * 32), w1 = (__m512bh)_mm512_load_si512(wp + p * 32 + 16);
    for (int r = 0; r < R; ++r) {
      __m512bh x = (__m512bh)_mm512_set1_epi32((int)*(const u32_unaligned*)(a + r * k + 2 * p));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, w0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, w1);
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm512_store_ps(c + r * 32, acc[r][0]);
    _mm512_store_ps(c + r * 32 + 16, acc[r][1]);
  }
}

// c[0:rows][0:32] = A[0:rows] . W^T for 32 columns, rows <= 32: 8 rows x 32 columns a step
// (VDPBF16PS, 16 accumulators), then the rows left one at a time
static void block_dpbf16(const unsigned short* a, long k, const unsigned int* wp, float* c, int rows) {
  int r0 = 0;
  for (; r0 + 8 <= rows; r0 += 8) rows_dpbf16(a + r0 * k, k, wp, c + r0 * 32, 8);
  for (; r0 < rows; ++r0) rows_dpbf16(a + r0 * k, k, wp, c + r0 * 32, 1);
}

#ifdef FL_AMX
// As block_dpbf16 for 32 whole rows on tiles: C tiles 0-3 (rows 0-15 / 16-31 x columns 0-15 /
// 16-31), A tiles 4, 5 (16 rows x 32 of K, straight from A), B tiles 6, 7 (16 pairs of K x 16
// columns, straight from the block's packed rows)
static void block_amx(const unsigned short* a, long k, const unsigned int* wp, float* c) {
  FL_TILES;
  TILE_ZERO(0);
  TILE_ZERO(1);
  TILE_ZERO(2);
  TILE_ZERO(3);
  for (long x = 0; x < k; x += 32) {
    TILE_LOAD(4, a + x, k * 2);
    TILE_LOAD(5, a + 16 * k + x, k * 2);
    TILE_LOAD(6, wp + (x / 2) * 32, 32 * 4);
    TILE_LOAD(7, wp + (x / 2) * 32 + 16, 32 * 4);
    TILE_DPBF16PS(0, 4, 6);
    TILE_DPBF16PS(1, 4, 7);
    TILE_DPBF16PS(2, 5, 6);
    TILE_DPBF16PS(3, 5, 7);
  }
  TILE_STORE(0, c, 32 * 4);
  TILE_STORE(1, c + 16, 32 * 4);
  TILE_STORE(2, c + 16 * 32, 32 * 4);
  TILE_STORE(3, c + 16 * 32 + 16, 32 * 4);
}
#endif

static inline void gemm(const unsigned short* a, const unsigned int* wp, const unsigned short* bias, void* out,
                        int out_bf16, size_t wx, size_t wy, long m, long n, long k) {
  float c[32 * 32] __attribute__((aligned(64)));
  const long m0 = (long)wy * FL_WM, n0 = (long)wx * FL_WN;
  const long m1 = m0 + FL_WM < m ? m0 + FL_WM : m, n1 = n0 + FL_WN < n ? n0 + FL_WN : n;
#ifdef FL_AMX
  const int amx = amx_begin();
#else
  const int amx = 0;
#endif
  const long size = out_bf16 ? 2 : 4;
  for (long i = m0; i < m1; i += 32)
    for (long j = n0; j < n1; j += 32) {
      const int rows = m1 - i < 32 ? (int)(m1 - i) : 32;
#ifdef FL_AMX
      if (amx && rows == 32)
        block_amx(a + i * k, k, wp + (j / 32) * (k / 2) * 32, c);
      else
#endif
        block_dpbf16(a + i * k, k, wp + (j / 32) * (k / 2) * 32, c, rows);
      store_block(c, rows, bias ? bias + j : 0, (char*)out + (i * n + j) * size, n, out_bf16);
    }
#ifdef FL_AMX
  if (amx) TILE_RELEASE();
#endif
}

// The entry points: flashlift_gemm_bf16_<out>_<isa>, taking the shim's memrefs (shim_abi.h);
// without a bias, its binding is A's, never read.
#define FL_GEMM_ENTRY(NAME, OUT_T, OUT_BF16)                                                          \
  void NAME(FL_MEMREF(const unsigned short, a), FL_MEMREF(const unsigned short, wp),                \
            FL_MEMREF(const unsigned short, bias), FL_MEMREF(OUT_T, c), size_t wx, size_t wy,         \
            size_t m, size_t n, size_t k, size_t has_bias) {                                          \
    gemm(a + a_off, (const unsigned int*)(wp + wp_off), has_bias ? bias + bias_off : 0, c + c_off,    \
         OUT_BF16, wx, wy, (long)m, (long)n, (long)k);                                                \
  }

#if defined(FL_AMX_EMULATE)
FL_GEMM_ENTRY(flashlift_gemm_bf16_bf16_avx512amx_emu, unsigned short, 1)
FL_GEMM_ENTRY(flashlift_gemm_bf16_f32_avx512amx_emu, float, 0)
#elif defined(FL_AMX)
FL_GEMM_ENTRY(flashlift_gemm_bf16_bf16_avx512amx, unsigned short, 1)
FL_GEMM_ENTRY(flashlift_gemm_bf16_f32_avx512amx, float, 0)
#else
FL_GEMM_ENTRY(flashlift_gemm_bf16_bf16_avx512bf16, unsigned short, 1)
FL_GEMM_ENTRY(flashlift_gemm_bf16_f32_avx512bf16, float, 0)
#endif
