"""The FlashAttention kernel's configuration: which tile and variant flags build a case.

`resolve_config` is the one answer (what triton_fa.build_ptx compiles with): the measured
winner for (arch, head dim, causal, dtype, length class) from TUNED_CONFIGS (H200, Triton
3.6; why each won is written beside it), else `default_config` from CANDIDATE_CONFIGS (sm_80,
not tuned on a GPU), updated with the caller's partial config, then made legal for the case
(flags that do not apply switched off; the TMA kernel of triton_fa_tma.py only where it
covers the shape). `smaller_tiles` gives the fallbacks when a tile overflows shared memory.
The tuning tools (tools/kernels/) read the same tables.
"""

from __future__ import annotations

import functools
from typing import Optional

from flashlift.compiler.kernels import gluon_fa, triton_fa_tma

TL_DTYPE = {"f16": "fp16", "float16": "fp16", "fp16": "fp16",
             "bf16": "bf16", "bfloat16": "bf16"}
# key-padding mask element types (the mask flashlift materialises is f32)
KPM_DTYPE = {"f32": "fp32", "float32": "fp32", "fp32": "fp32", **TL_DTYPE}

def default_config(head_dim: int, arch: int) -> dict:
    """Tile config when TUNED_CONFIGS has no entry (sm_80: not tuned on a GPU;
    every choice has 0 register spills with ptxas 12.8). CANDIDATE_CONFIGS
    lists the alternatives tools/kernels/build_spike.py also builds."""
    return dict(CANDIDATE_CONFIGS[(arch, 64 if head_dim <= 64 else 128)][0])


# (arch, head_dim) -> [default, alternative]; (BLOCK_M, BLOCK_N, warps, stages)
# regs / shared memory (fp16, S=4096, non-causal..causal) from ptxas 12.8:
CANDIDATE_CONFIGS = {
    (80, 64): [dict(BLOCK_M=128, BLOCK_N=64, num_warps=4, num_stages=3),    # 252-255 regs, 48 KiB
               dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=3)],    # 139-168 regs, 40 KiB
    (80, 128): [dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3),   # 202-238 regs, 96 KiB
                dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=2)],  # 203-230 regs, 64 KiB
    # sm_90: tuned on an H200 (see TUNED_CONFIGS, which also sets the variant flags)
    (90, 64): [dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=3),     # 106-128 regs, 56 KiB
               dict(BLOCK_M=128, BLOCK_N=64, num_warps=4, num_stages=3)],   # 188-237 regs, 64 KiB
    (90, 128): [dict(BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=3),  # 202-228 regs, 224 KiB
                dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3)],  # 140-162 regs, 128 KiB
}


def length_class(sq: int, skv: int) -> str:
    """'short' (<= 1024 keys per query tile row on average) or 'long'."""
    return "short" if max(sq, skv) <= 1024 else "long"


# Measured winners on an NVIDIA H200 (sm_90a, Triton 3.6, kernel-only timing vs
# torch SDPA = cuDNN), see bench/results/triton-tuning-h200.json and
# triton-kernel-h200.md; key: (arch, head_dim, causal, dtype, length class).
# Why these: every launch is latency-bound (the wgmma -> softmax -> wgmma chain
# of a warpgroup is serial in Triton 3.6), so what wins is how many warpgroups
# an SM can interleave. d64: 64x64 tiles, 4 warps, 56 KiB smem, ~110-128 regs ->
# 4 CTAs/SM (was 128x128/8 warps, 1 CTA/SM: 0.68-0.74x -> 0.90-0.98x). d128:
# the 64x64/4-warp analogue only fits 2 CTAs/SM and loses; 128x128/8 warps,
# 3 stages (224 KiB smem, 1 CTA/SM) is best by 2-5%.
# Flags: FOLD_SCALE (scale folded into one FMA) gave 5-10% on d64; KTRANS and
# REVERSE_M are within noise (+-3%), kept where they won both sweeps; EXP16
# (packed f16 exp2) lost everywhere (XU pipe use did not drop); PIPE_QK (rotated
# loop) lost: Triton 3.6 waits for the q@k wgmma right away, so nothing overlaps.
# d128 "short" (S <= 1024) was not measured: same choice as "long".
_D64_CAUSAL = dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=3, FOLD_SCALE=True, KTRANS=True)
_D128_CAUSAL = dict(BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=3, REVERSE_M=True)
# Non-causal: the persistent TMA + warp-specialised kernel (triton_fa_tma.py, TMA_TILE, a
# program per SM) where it applies, the pointer tile where it does not. Kernel alone vs
# cuDNN's SDPA (tools/kernels/compare_kernels.py, H200, 2026-11-29), persistent TMA / pointer kernel:
# d128 0.84-0.95x / 0.75-0.86x; d64 0.95-0.98x / 0.91-0.96x; with a run-time (B, Sq, Skv)
# mask 1.05-1.19x / 0.72-0.95x of SDPA-with-that-mask; with a (B, Skv) key-padding mask
# d128 1.14x / 1.00x but d64 1.06x / 1.20x, so TMA_MASKS lists the run-time masks that
# take it. Causal (compare_kernels.py, same run): the pointer kernel, 0.88-0.94x against the
# persistent kernel's 0.73-0.90x (Triton 3.6 masks every tile of a specialised loop).
_D64 = dict(_D64_CAUSAL, TMA=True, PERSISTENT=True, TMA_MASKS=("full",))
_D128 = dict(BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=3, FOLD_SCALE=True, TMA=True, PERSISTENT=True,
             TMA_MASKS=("full", "key_padding"))
# Head dim 128, more than 1024 keys, no run-time mask: gluon_fa's kernel (GLUON_TILE, 3
# stages), the others where it does not cover the case (and for every run-time mask: no
# GLUON_MASKS). Kernel alone vs cuDNN's SDPA, compare_kernels.py on an H100, 2026-12-07
# (bench/results/gluon-kernel-h100.md), Gluon / the kernel it replaces: causal 0.98-1.06x /
# 0.90-0.92x (f16), 0.96-1.02x / 0.85-0.90x (bf16); non-causal 0.92-0.99x / 0.89-0.95x (f16),
# 0.90-1.00x / 0.88-0.93x (bf16). It loses at 1024 keys (8x16x1024: 0.78x / TMA 0.94x: a
# program per 128 query rows, no persistent grid), at head dim 64 (0.57-0.86x: one 384-thread
# CTA per SM) and with run-time masks (0.91-1.06x / TMA 1.14-1.20x).
TUNED_CONFIGS: dict = {}
for _dt in ("fp16", "bf16"):
    for _cls in ("short", "long"):
        for _causal in (False, True):
            TUNED_CONFIGS[(90, 64, _causal, _dt, _cls)] = _D64_CAUSAL if _causal else _D64
            TUNED_CONFIGS[(90, 128, _causal, _dt, _cls)] = dict(_D128_CAUSAL if _causal else _D128,
                                                                GLUON=_cls == "long")


def tuned_config(head_dim: int, arch: int, *, causal: bool = False, dtype: str = "fp16",
                 sq: int = 0, skv: int = 0) -> dict:
    """Tile config + variant flags for one case (what build_ptx uses when the
    caller passes no config)."""
    d = 64 if head_dim <= 64 else 128
    tdt = TL_DTYPE.get(str(dtype).replace("torch.", ""), "fp16")
    key = (arch, d, bool(causal), tdt, length_class(sq, skv))
    if key in TUNED_CONFIGS:
        return dict(TUNED_CONFIGS[key])
    return default_config(head_dim, arch)


VARIANT_FLAGS = ("FOLD_SCALE", "EXP16", "KTRANS", "REVERSE_M", "WARP_SPEC", "PIPE_QK", "TMA", "GLUON")
# the flags that choose a kernel (triton_fa_tma, gluon_fa) rather than vary the pointer kernel
KERNEL_CHOICES = ("TMA", "GLUON")

# The tile of triton_fa_tma's kernel: a producer and two consumer warpgroups (4 warps asked,
# Triton adds the rest), 2 stages (3 raced in Triton 3.6). With a run-time mask its tiles
# are TMA loads too, and 128x128 would need 257-320 KiB of shared memory: 128x64.
TMA_TILE = dict(BLOCK_M=128, BLOCK_N=128, num_warps=4, num_stages=2)
TMA_MASK_TILE = dict(TMA_TILE, BLOCK_N=64)
# The tile of gluon_fa's kernel: 128 query rows for two consumer warpgroups (CONSUMERS=2: a
# partition each; 1: one 8-warp partition), 128-key tiles in a 3-stage ring (2 stages: 2-12%
# slower at head dim 128 on an H100), a loader warp.
# maxnreg 168 over its 12 warps leaves each consumer thread 240 registers.
GLUON_TILE = dict(BLOCK_M=128, BLOCK_N=128, num_warps=4, num_stages=3, CONSUMERS=2, maxnreg=168, PERSISTENT=True)


def resolve_config(*, head_dim: int, arch: int, causal: bool = False, bottom_right: bool = False,
                   dtype: str = "f16", sq: int = 0, skv: int = 0,
                   scale: float = 1.0, mask: str = "", config: Optional[dict] = None) -> dict:
    """The full config (tile + variant flags) build_ptx compiles with: the
    tuned default for this (arch, head_dim, causal, dtype, length class),
    updated with the caller's `config` (which may be partial), then made legal
    (flags that do not apply to this case are switched off). TMA (the kernel of
    triton_fa_tma.py) brings its own tile, TMA_TILE (TMA_MASK_TILE with a run-time
    mask), unless `config` sets one; where that kernel does not apply, the tuned
    pointer-kernel tile stays. mask: "" (none), "key_padding" or "full" (a run-time
    mask, see compile_kernel). A tuned TMA flag holds for cases without a mask; with a
    mask, the tuned TMA_MASKS (the mask kinds that take the TMA kernel) or the caller's
    TMA decides. PERSISTENT (a program per SM) applies to the TMA and Gluon kernels. GLUON (the
    kernel of gluon_fa.py, GLUON_TILE) comes before TMA where gluon_fa.covers the case; with
    a mask, as for TMA, the tuned GLUON_MASKS or the caller's GLUON decides."""
    cfg = dict(tuned_config(head_dim, arch, causal=causal, dtype=dtype, sq=sq, skv=skv))
    config = config or {}
    cfg.update(config)
    for flag in KERNEL_CHOICES:  # with a run-time mask: the tuned <flag>_MASKS, or the caller, decides
        if mask and flag not in config:
            cfg[flag] = cfg.get(flag, False) and mask in cfg.get(f"{flag}_MASKS", ())
    for f in VARIANT_FLAGS:
        cfg[f] = bool(cfg.get(f, False))

    def take(flag: str, tile: dict, covers) -> None:
        """The kernel `flag` chooses, with its tile (the caller's entries first), where it
        covers the case; else the flag off and the tile as it was."""
        tile = {k: config.get(k, v) for k, v in tile.items()}
        cfg[flag] = cfg[flag] and not covers(arch=arch, head_dim=head_dim, sq=sq, skv=skv, scale=scale,
                                             block_m=tile["BLOCK_M"], block_n=tile["BLOCK_N"])
        if cfg[flag]:
            cfg.update(tile)

    take("GLUON", GLUON_TILE, functools.partial(gluon_fa.covers, causal=causal, bottom_right=bottom_right))
    cfg["TMA"] = cfg["TMA"] and not cfg["GLUON"]
    take("TMA", TMA_MASK_TILE if mask else TMA_TILE, triton_fa_tma.covers)
    # Not with a single query tile per head: Triton 3.6's warp specialisation of the tile
    # loop then fails to compile ("operation destroyed but still has uses").
    cfg["PERSISTENT"] = bool(cfg.get("PERSISTENT", False)) and (cfg["TMA"] or cfg["GLUON"]) and sq > cfg["BLOCK_M"]
    if scale <= 0:                 # max(qk) * scale is the row max only for scale > 0
        cfg["FOLD_SCALE"] = False
    if not causal:
        cfg["REVERSE_M"] = False
    if arch < 90:
        cfg["WARP_SPEC"] = False
    return cfg


def smaller_tiles(cfg: dict):
    """Tiles that need less shared memory than cfg's, largest first: fewer pipeline stages
    (down to 2), then the key tile halved (down to 32) with the stages again."""
    block_n = cfg["BLOCK_N"]
    while block_n >= 32:
        for stages in range(cfg["num_stages"] if block_n < cfg["BLOCK_N"] else cfg["num_stages"] - 1, 1, -1):
            yield dict(BLOCK_N=block_n, num_stages=stages)
        block_n //= 2
