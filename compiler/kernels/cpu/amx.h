// The AMX tile unit as flashlift's CPU kernels use it (Sapphire Rapids and later; built with
// -mamx-tile -mamx-bf16): every tile 16 rows of 64 bytes (16 f32, or 32 bf16 as 16 pairs).
#ifndef FLASHLIFT_AMX_H
#define FLASHLIFT_AMX_H

#include <immintrin.h>

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
