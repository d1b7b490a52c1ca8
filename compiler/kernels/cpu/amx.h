// The AMX tile unit as flashlift's CPU kernels use it (Sapphire Rapids and later; built with
// -mamx-tile -mamx-bf16): every tile 16 rows of 64 bytes (16 f32, or 32 bf16 as 16 pairs).
// TILE_LOAD, TILE_STORE, TILE_ZERO, TILE_DPBF16PS, TILE_RELEASE and amx_begin are the
// instructions, or with FL_AMX_EMULATE their definitions in C.
#ifndef FLASHLIFT_AMX_H
#define FLASHLIFT_AMX_H

#include <immintrin.h>

#ifdef FL_AMX_EMULATE
// The tile unit in C (the avx512amx_emu build: the AMX code's addressing checked on CPUs
// without AMX, by the tests): the eight tiles an array on the caller's stack (FL_TILES, declared
// where a function uses tiles), TDPBF16PS as its definition, f32 sums of exact bf16 products.
#define FL_TILES unsigned char fl_tiles[8][16 * 64] __attribute__((aligned(64)))
#define TILE_LOAD(t, base, stride) fl_tile_copy((char*)fl_tiles[t], 64, (const char*)(base), (long)(stride))
#define TILE_STORE(t, base, stride) fl_tile_copy((char*)(base), (long)(stride), (const char*)fl_tiles[t], 64)
#define TILE_ZERO(t) fl_tile_copy((char*)fl_tiles[t], 64, 0, 0)
#define TILE_DPBF16PS(c, a, b) fl_tile_dpbf16ps((float*)fl_tiles[c], fl_tiles[a], fl_tiles[b])
#define TILE_RELEASE()

static inline void fl_tile_copy(char* dst, long dst_stride, const char* src, long src_stride) {
  for (int r = 0; r < 16; ++r)
    for (int x = 0; x < 64; ++x) dst[r * dst_stride + x] = src ? src[r * src_stride + x] : 0;
}

static inline float fl_bf16(const unsigned char* p) {
  union { unsigned int u; float f; } v = {(unsigned int)(p[0] | p[1] << 8) << 16};
  return v.f;
}

// c[m][n] += sum over p of a[m][2p] * b[p][n][0] + a[m][2p + 1] * b[p][n][1]
static inline void fl_tile_dpbf16ps(float* c, const unsigned char* a, const unsigned char* b) {
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      float sum = c[m * 16 + n];
      for (int p = 0; p < 16; ++p)
        sum += fl_bf16(a + m * 64 + p * 4) * fl_bf16(b + p * 64 + n * 4) +
               fl_bf16(a + m * 64 + p * 4 + 2) * fl_bf16(b + p * 64 + n * 4 + 2);
      c[m * 16 + n] = sum;
    }
}

static inline int amx_begin(void) { return 1; }
#else
#define FL_TILES
#define TILE_STORE(t, base, stride) _tile_stored(t, base, (long)(stride))
#define TILE_ZERO(t) _tile_zero(t)
#define TILE_DPBF16PS(c, a, b) _tile_dpbf16ps(c, a, b)
#define TILE_RELEASE() _tile_release()

// GCC's tile load is an asm without a memory operand: TILE_LOAD puts a compiler barrier before
// it, so that the stores that wrote its rows come first.
#define TILE_LOAD(t, base, stride)         \
  do {                                     \
    __asm__ volatile("" ::: "memory");     \
    _tile_loadd(t, base, (long)(stride));  \
  } while (0)

// Asks Linux for the AMX tile state (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), once
// per call: cheap when already granted, and the process may not have asked) and loads the
// tile configuration (palette 1, eight 16 x 64-byte tiles). 0 if the kernel refuses: the
// caller takes its vector path.
static inline int amx_begin(void) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "0"(158L), "D"(0x1023L), "S"(18L) : "rcx", "r11", "memory");
  if (ret != 0) return 0;
  unsigned char cfg[64] __attribute__((aligned(64)));
  _mm512_store_si512(cfg, _mm512_setzero_si512());
  cfg[0] = 1;                          // palette 1
  for (int t = 0; t < 8; ++t) {
    cfg[16 + 2 * t] = 64;              // bytes per row
    cfg[48 + t] = 16;                  // rows
  }
  _tile_loadconfig(cfg);
  return 1;
}
#endif

#endif
