"""Triton FlashAttention forward kernel, AOT-compiled to PTX/cubin for IREE.

This module is only needed at *build* time (it imports triton). The result of
`build_ptx` is a `KernelBinary`: the PTX text (and the cubin ptxas made from
it), the kernel's entry name, the launch grid/block, the dynamic shared memory
size and the exact parameter list of the `.entry` (verified against the PTX).

Kernel ABI (every shape is a compile-time constant, so only pointers remain):

    .entry <name>(.param .u64 Q, .param .u64 K, .param .u64 V, .param .u64 O,
                  .param .u64 global_scratch, .param .u64 profile_scratch)

    or, built with key_padding_mask_dtype, (Q, K, V, KPM, O, global_scratch,
    profile_scratch): KPM (B, Skv) contiguous f32/f16/bf16, added to the
    scaled scores of batch b = program_id(1) // H before the softmax
    (HAS_KPM; every key tile then takes the masked loop). Without it KPM is a
    None constexpr and the kernel's code is unchanged.

    or, built with mask_dtype (a run-time additive mask per query and key,
    e.g. LLaMA's causal + padding mask made from the model's inputs), the same
    parameter list with MASK (B, Sq, Skv) contiguous (or (Sq, Skv), the same
    for every batch entry: mask_batched=False) in KPM's place (HAS_MASK).
    Every key tile takes the masked loop (MASK_SKIP: a tile whose mask
    entries are all <= -1e4 for every row of the query tile is skipped; off by
    default, measured slower). Rows whose every key is masked by a finite
    fill get the softmax over all keys, as in torch (with MASK_SKIP, maybe 0).

    Built with out_seq_major (O_SEQ_MAJOR), O is (B, Sq, H, D): the kernel
    writes what a model's `.transpose(1, 2)` of the attention output reads,
    and the transpose dispatch disappears. Likewise in_seq_major reads Q, K
    and/or V as (B, S, heads, D), where the model's projections leave them.

  * Q, O: (B, H,   Sq,  D) contiguous, dtype f16/bf16
  * K, V: (B, KVH, Skv, D) contiguous, same dtype; kv head = q head // (H//KVH)
  * global_scratch / profile_scratch are appended by Triton >= 3.3 to every
    kernel. For this kernel both scratch sizes are 0 (checked in build_ptx),
    so Triton's own launcher would pass NULL and the body never dereferences
    them. From IREE we feed them with a tiny dummy binding (see
    iree_dispatch.py); the pointer value is never used.
  * grid  = (ceil(Sq / BLOCK_M), B * H, 1); program_id(0) = query tile,
    program_id(1) = b * H + h.
  * block = (num_warps * 32, 1, 1)
  * dynamic shared memory = metadata.shared bytes (Triton kernels use only
    dynamic shared memory; > 48 KiB needs cuFuncSetAttribute(
    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), which IREE's CUDA HAL
    does at executable load from the export's `workgroup_local_memory`).

Config: `tuned_config` / TUNED_CONFIGS (measured on an H200, see
bench/results/triton-kernel-h200.md) gives the tile (BLOCK_M, BLOCK_N,
num_warps, num_stages) and the kernel variant flags (FOLD_SCALE, KTRANS,
REVERSE_M, ...; all default off = the original kernel) per (arch, head dim,
causal, dtype, length class); a `config` passed to build_ptx overrides any of
them (partial dicts allowed). REVERSE_M reverses the query-tile order inside
the same grid, so the ABI below is unchanged for every config.

Masking semantics (causal):
  * top-left     : key j visible to query i iff j <= i
  * bottom-right : key j visible to query i iff j <= i + (Skv - Sq)
    (this is torch's CausalVariant.LOWER_RIGHT / flash-attn's causal=True).
  Rows that see no key at all (bottom-right with Sq > Skv, or every key
  masked by -inf) produce 0, or NaN (0/0) when built with empty_rows="nan"
  (EMPTY_ROWS_NAN): the attention op gives NaN there, as PyTorch's plain
  softmax does; torch's _safe_softmax (SDPA) gives 0. A row whose every key is
  masked by a finite value (FLOOR = -2^126, what passes/masks.py clamps masks
  at) sees every key: mask * log2(e) = -1.2e38 is finite, absorbs the score,
  and the row is uniform, as in PyTorch. (An f16 mask cannot hold FLOOR; the
  masks flashlift passes are f32.)
"""

from __future__ import annotations

import inspect
import math
from typing import Optional

import triton
import triton.language as tl

from flashlift.compiler.kernels import aot, triton_fa_tma


# --------------------------------------------------------------------------
# The kernel
# --------------------------------------------------------------------------

@triton.jit
def _exp2_f16(x):
    """2**x for an f16 tensor, two lanes per MUFU op (ex2.approx.f16x2)."""
    return tl.inline_asm_elementwise(
        "ex2.approx.f16x2 $0, $1;", "=r,r", [x], dtype=tl.float16, is_pure=True, pack=2)


@triton.jit
def _online_step(qk, m_i, l_i, acc, v, SM_SCALE_LOG2: tl.constexpr,
                 FOLD_SCALE: tl.constexpr, EXP16: tl.constexpr):
    """One online-softmax update with an unmasked (BLOCK_M, BLOCK_N) tile of
    raw scores qk = q @ k^T and its (BLOCK_N, D) value tile v."""
    if FOLD_SCALE:
        m_ij = tl.maximum(m_i, tl.max(qk, 1) * SM_SCALE_LOG2)
        x = qk * SM_SCALE_LOG2 - m_ij[:, None]
    else:
        qk = qk * SM_SCALE_LOG2
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        x = qk - m_ij[:, None]
    alpha = tl.math.exp2(m_i - m_ij)
    if EXP16:
        p16 = _exp2_f16(x.to(tl.float16))
        l_i = l_i * alpha + tl.sum(p16.to(tl.float32), 1)
        p = p16.to(v.dtype)
    else:
        p32 = tl.math.exp2(x)
        l_i = l_i * alpha + tl.sum(p32, 1)
        p = p32.to(v.dtype)
    acc = acc * alpha[:, None]
    acc = tl.dot(p, v, acc)
    return m_ij, l_i, acc


@triton.jit
def _fa_fwd_kernel(
    Q, K, V, KPM, O,               # KPM: (B, SKV) additive key-padding mask, or None
    SM_SCALE_LOG2: tl.constexpr,   # softmax scale * log2(e)
    H: tl.constexpr, KV_RATIO: tl.constexpr,
    SQ: tl.constexpr, SKV: tl.constexpr, HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr, BOTTOM_RIGHT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    # ---- variants (all optional; the defaults are the original kernel) ----
    FOLD_SCALE: tl.constexpr = False,  # qk*scale - m as one FMA (needs scale > 0)
    EXP16: tl.constexpr = False,       # p = 2**x in packed f16 (ex2.approx.f16x2)
    KTRANS: tl.constexpr = False,      # load K as (BLOCK_N, D) and tl.trans it
    REVERSE_M: tl.constexpr = False,   # causal: longest query tiles first
    WARP_SPEC: tl.constexpr = False,   # tl.range(warp_specialize=True) on the main loop
    PIPE_QK: tl.constexpr = False,     # main loop rotated: q@k of tile j+1 issued before
                                       # the softmax/PV of tile j (async wgmma overlap)
    HAS_KPM: tl.constexpr = False,     # scores[b, :, :, j] += KPM[b, j] (before the softmax)
    HAS_MASK: tl.constexpr = False,    # scores[b, :, i, j] += KPM[b, i, j] (a (B, SQ, SKV) mask)
    MASK_BATCHED: tl.constexpr = True, # HAS_MASK: False = one (SQ, SKV) mask for every batch entry
    MASK_SKIP: tl.constexpr = False,   # HAS_MASK: skip key tiles the mask hides from every row
    O_SEQ_MAJOR: tl.constexpr = False, # O as (B, SQ, H, D) (a model's .transpose(1, 2) folded in)
    Q_SEQ_MAJOR: tl.constexpr = False, # Q as (B, SQ, H, D) (read where the projection left it)
    K_SEQ_MAJOR: tl.constexpr = False, # K as (B, SKV, KVH, D)
    V_SEQ_MAJOR: tl.constexpr = False, # V as (B, SKV, KVH, D)
    EMPTY_ROWS_NAN: tl.constexpr = False,  # a row that sees no key: NaN (0/0, the attention op's
                                       # answer) instead of 0 (the op followed by _safe_softmax's guard)
):
    if REVERSE_M:
        start_m = tl.num_programs(0) - 1 - tl.program_id(0)
    else:
        start_m = tl.program_id(0)
    off_bh = tl.program_id(1)
    off_b = off_bh // H
    off_h = off_bh % H
    off_kvh = off_h // KV_RATIO
    KVH: tl.constexpr = H // KV_RATIO

    # int64 base offsets: B*H*S*D can exceed 2^31 elements.
    q_base = off_bh.to(tl.int64) * (SQ * HEAD_DIM)
    kv_base = (off_b.to(tl.int64) * KVH + off_kvh) * (SKV * HEAD_DIM)
    # Sequence-major operands: (B, S, heads, D), one row of a head every heads * D elements.
    if Q_SEQ_MAJOR:
        q_in = off_b.to(tl.int64) * (SQ * H * HEAD_DIM) + off_h * HEAD_DIM
        Q_ROW: tl.constexpr = H * HEAD_DIM
    else:
        q_in = q_base
        Q_ROW: tl.constexpr = HEAD_DIM
    kv_seq = off_b.to(tl.int64) * (SKV * KVH * HEAD_DIM) + off_kvh * HEAD_DIM
    k_base = kv_seq if K_SEQ_MAJOR else kv_base
    K_ROW: tl.constexpr = KVH * HEAD_DIM if K_SEQ_MAJOR else HEAD_DIM
    v_base = kv_seq if V_SEQ_MAJOR else kv_base
    V_ROW: tl.constexpr = KVH * HEAD_DIM if V_SEQ_MAJOR else HEAD_DIM

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)

    q_ptrs = Q + q_in + offs_m[:, None] * Q_ROW + offs_d[None, :]
    if KTRANS:
        # (BLOCK_N, D) tile, transposed in registers/shared memory by tl.trans
        k_ptrs = K + k_base + offs_n[:, None] * K_ROW + offs_d[None, :]
    else:
        # K is read transposed: (D, BLOCK_N) tile.
        k_ptrs = K + k_base + offs_n[None, :] * K_ROW + offs_d[:, None]
    v_ptrs = V + v_base + offs_n[:, None] * V_ROW + offs_d[None, :]

    if SQ % BLOCK_M == 0:
        q = tl.load(q_ptrs)
    else:
        q = tl.load(q_ptrs, mask=offs_m[:, None] < SQ, other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    # Causal diagonal offset: key j visible to query i iff j <= i + DIAG.
    if BOTTOM_RIGHT:
        DIAG: tl.constexpr = SKV - SQ
    else:
        DIAG: tl.constexpr = 0

    # [0, lo): key tiles that need no mask for any row of this query tile.
    # [lo, hi): key tiles that need the bounds and/or causal mask.
    FULL_N: tl.constexpr = (SKV // BLOCK_N) * BLOCK_N
    if CAUSAL:
        row_lo = start_m * BLOCK_M + DIAG + 1          # keys < row_lo visible to all rows
        row_hi = (start_m + 1) * BLOCK_M + DIAG        # keys < row_hi visible to some row
        lo = tl.minimum(tl.maximum(row_lo, 0) // BLOCK_N * BLOCK_N, FULL_N)
        hi = tl.minimum(tl.maximum(row_hi, 0), SKV)
    else:
        lo = FULL_N
        hi = SKV
    if HAS_KPM:
        # An additive mask can hide any key (even every key of a tile): every tile goes
        # through the masked loop, whose online softmax is safe for -inf scores.
        lo = 0
        kpm_ptrs = KPM + off_b.to(tl.int64) * SKV + offs_n
    if HAS_MASK:
        lo = 0
        if MASK_BATCHED:
            mask_base = off_b.to(tl.int64) * (SQ * SKV)
        else:
            mask_base = 0
        mask_ptrs = KPM + mask_base + offs_m[:, None] * SKV + offs_n[None, :]

    # ---- unmasked tiles ----
    if PIPE_QK and FULL_N > 0 and not HAS_KPM:
        # Rotated loop: the scores of tile j+1 are in flight (async wgmma) while
        # tile j's softmax and P@V run. Tile 0's scores are computed even when
        # lo == 0 (then never used; tile 0 exists since FULL_N > 0).
        if KTRANS:
            k = tl.trans(tl.load(k_ptrs))
        else:
            k = tl.load(k_ptrs)
        qk = tl.dot(q, k)
        for start_n in tl.range(BLOCK_N, lo, BLOCK_N, warp_specialize=WARP_SPEC):
            start_n = tl.multiple_of(start_n, BLOCK_N)
            if KTRANS:
                k = tl.trans(tl.load(k_ptrs + start_n * K_ROW))
            else:
                k = tl.load(k_ptrs + start_n * K_ROW)
            qk_next = tl.dot(q, k)
            v = tl.load(v_ptrs + (start_n - BLOCK_N) * V_ROW)
            m_i, l_i, acc = _online_step(qk, m_i, l_i, acc, v, SM_SCALE_LOG2, FOLD_SCALE, EXP16)
            qk = qk_next
        if lo > 0:
            v = tl.load(v_ptrs + (lo - BLOCK_N) * V_ROW)
            m_i, l_i, acc = _online_step(qk, m_i, l_i, acc, v, SM_SCALE_LOG2, FOLD_SCALE, EXP16)
    else:
        for start_n in tl.range(0, lo, BLOCK_N, warp_specialize=WARP_SPEC):
            start_n = tl.multiple_of(start_n, BLOCK_N)
            if KTRANS:
                k = tl.trans(tl.load(k_ptrs + start_n * K_ROW))
            else:
                k = tl.load(k_ptrs + start_n * K_ROW)
            qk = tl.dot(q, k)
            v = tl.load(v_ptrs + start_n * V_ROW)
            m_i, l_i, acc = _online_step(qk, m_i, l_i, acc, v, SM_SCALE_LOG2, FOLD_SCALE, EXP16)

    # ---- masked tiles (sequence tail and/or causal diagonal band) ----
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        if SKV % BLOCK_N == 0:
            if KTRANS:
                k = tl.trans(tl.load(k_ptrs + start_n * K_ROW))
            else:
                k = tl.load(k_ptrs + start_n * K_ROW)
            v = tl.load(v_ptrs + start_n * V_ROW)
            valid = cols[None, :] < SKV
        else:
            if KTRANS:
                k = tl.trans(tl.load(k_ptrs + start_n * K_ROW, mask=cols[:, None] < SKV, other=0.0))
            else:
                k = tl.load(k_ptrs + start_n * K_ROW, mask=cols[None, :] < SKV, other=0.0)
            v = tl.load(v_ptrs + start_n * V_ROW, mask=cols[:, None] < SKV, other=0.0)
            valid = cols[None, :] < SKV
        if CAUSAL:
            valid = valid & (cols[None, :] <= offs_m[:, None] + DIAG)
        if HAS_MASK:
            if SQ % BLOCK_M == 0 and SKV % BLOCK_N == 0:
                mtile = tl.load(mask_ptrs + start_n).to(tl.float32)
            else:
                mtile = tl.load(mask_ptrs + start_n, mask=(offs_m[:, None] < SQ) & (cols[None, :] < SKV),
                                other=float("-inf")).to(tl.float32)
            if MASK_SKIP:
                # a tile that no row of this query tile sees adds exactly 0 (exp2 of a score
                # 1e4 * log2(e) below the row max underflows in f32): skip its two dots
                seen = tl.max(tl.max(mtile, 1), 0) > -1.0e4
            else:
                seen = True
        else:
            seen = True
        if seen:
            qk = tl.dot(q, k) * SM_SCALE_LOG2
            if HAS_KPM:
                # (s * scale + mask) * log2(e), the kernel's base-2 scores
                if SKV % BLOCK_N == 0:
                    kpm = tl.load(kpm_ptrs + start_n)
                else:
                    kpm = tl.load(kpm_ptrs + start_n, mask=cols < SKV, other=0.0)
                qk = qk + kpm.to(tl.float32)[None, :] * 1.4426950408889634
            if HAS_MASK:
                qk = qk + mtile * 1.4426950408889634
            qk = tl.where(valid, qk, float("-inf"))
            m_ij = tl.maximum(m_i, tl.max(qk, 1))
            # Rows with no visible key so far keep m = -inf; subtract 0 instead so
            # that exp2(-inf - -inf) never produces NaN.
            m_safe = tl.where(m_ij == float("-inf"), 0.0, m_ij)
            alpha = tl.math.exp2(m_i - m_safe)
            if EXP16:
                p16 = _exp2_f16((qk - m_safe[:, None]).to(tl.float16))
                l_i = l_i * alpha + tl.sum(p16.to(tl.float32), 1)
                p = p16.to(v.dtype)
            else:
                p32 = tl.math.exp2(qk - m_safe[:, None])
                l_i = l_i * alpha + tl.sum(p32, 1)
                p = p32.to(v.dtype)
            acc = acc * alpha[:, None]
            acc = tl.dot(p, v, acc)
            m_i = m_ij

    # l_i == 0 exactly on rows that see no key (a seen key's weight is exp2(0) = 1 for the
    # row max): 0/0 = NaN there, or 0. Rows whose keys are all masked by a finite value
    # (FLOOR, passes/masks.py: FLOOR * log2(e) is finite) see every key: uniform.
    if EMPTY_ROWS_NAN:
        acc = acc / l_i[:, None]
    else:
        l_safe = tl.where(l_i == 0.0, 1.0, l_i)
        acc = acc / l_safe[:, None]
    if O_SEQ_MAJOR:
        o_ptrs = (O + off_b.to(tl.int64) * (SQ * H * HEAD_DIM) + off_h * HEAD_DIM
                  + offs_m[:, None] * (H * HEAD_DIM) + offs_d[None, :])
    else:
        o_ptrs = O + q_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    out = acc.to(O.dtype.element_ty)
    if SQ % BLOCK_M == 0:
        tl.store(o_ptrs, out)
    else:
        tl.store(o_ptrs, out, mask=offs_m[:, None] < SQ)


# --------------------------------------------------------------------------
# AOT build
# --------------------------------------------------------------------------

_TL_DTYPE = {"f16": "fp16", "float16": "fp16", "fp16": "fp16",
             "bf16": "bf16", "bfloat16": "bf16"}
# key-padding mask element types (the mask flashlift materialises is f32)
_KPM_DTYPE = {"f32": "fp32", "float32": "fp32", "fp32": "fp32", **_TL_DTYPE}

from flashlift.compiler.kernels.aot import MAX_SHARED_OPTIN, KernelBinary, KernelParam  # noqa: E402,F401


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
TUNED_CONFIGS: dict = {}
for _dt in ("fp16", "bf16"):
    for _cls in ("short", "long"):
        for _causal in (False, True):
            TUNED_CONFIGS[(90, 64, _causal, _dt, _cls)] = _D64_CAUSAL if _causal else _D64
            TUNED_CONFIGS[(90, 128, _causal, _dt, _cls)] = _D128_CAUSAL if _causal else _D128


def tuned_config(head_dim: int, arch: int, *, causal: bool = False, dtype: str = "fp16",
                 sq: int = 0, skv: int = 0) -> dict:
    """Tile config + variant flags for one case (what build_ptx uses when the
    caller passes no config)."""
    d = 64 if head_dim <= 64 else 128
    tdt = _TL_DTYPE.get(str(dtype).replace("torch.", ""), "fp16")
    key = (arch, d, bool(causal), tdt, length_class(sq, skv))
    if key in TUNED_CONFIGS:
        return dict(TUNED_CONFIGS[key])
    return default_config(head_dim, arch)


VARIANT_FLAGS = ("FOLD_SCALE", "EXP16", "KTRANS", "REVERSE_M", "WARP_SPEC", "PIPE_QK", "TMA")

# The tile of triton_fa_tma's kernel: a producer and two consumer warpgroups (4 warps asked,
# Triton adds the rest), 2 stages (3 raced in Triton 3.6). With a run-time mask its tiles
# are TMA loads too, and 128x128 would need 257-320 KiB of shared memory: 128x64.
TMA_TILE = dict(BLOCK_M=128, BLOCK_N=128, num_warps=4, num_stages=2)
TMA_MASK_TILE = dict(TMA_TILE, BLOCK_N=64)


def resolve_config(*, head_dim: int, arch: int, causal: bool = False,
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
    TMA decides. PERSISTENT (a program per SM) applies to the TMA kernel only."""
    cfg = dict(tuned_config(head_dim, arch, causal=causal, dtype=dtype, sq=sq, skv=skv))
    config = config or {}
    cfg.update(config)
    if mask and "TMA" not in config:
        cfg["TMA"] = cfg.get("TMA", False) and mask in cfg.get("TMA_MASKS", ())
    for f in VARIANT_FLAGS:
        cfg[f] = bool(cfg.get(f, False))
    if cfg["TMA"]:
        tile = {k: config.get(k, v) for k, v in (TMA_MASK_TILE if mask else TMA_TILE).items()}
        why = triton_fa_tma.covers(arch=arch, head_dim=head_dim, sq=sq, skv=skv, scale=scale,
                                   block_m=tile["BLOCK_M"], block_n=tile["BLOCK_N"])
        cfg["TMA"] = not why
        if cfg["TMA"]:
            cfg.update(tile)
    # Not with a single query tile per head: Triton 3.6's warp specialisation of the tile
    # loop then fails to compile ("operation destroyed but still has uses").
    cfg["PERSISTENT"] = bool(cfg.get("PERSISTENT", False)) and cfg["TMA"] and sq > cfg["BLOCK_M"]
    if scale <= 0:                 # max(qk) * scale is the row max only for scale > 0
        cfg["FOLD_SCALE"] = False
    if not causal:
        cfg["REVERSE_M"] = False
    if arch < 90:
        cfg["WARP_SPEC"] = False
    return cfg


def compile_kernel(*, batch: int, heads: int, kv_heads: int, sq: int, skv: int,
                   head_dim: int, dtype: str = "f16", causal: bool = False,
                   bottom_right: bool = False, scale: Optional[float] = None,
                   arch: int = 80, config: Optional[dict] = None,
                   ptx_version: Optional[int] = None,
                   key_padding_mask_dtype: Optional[str] = None,
                   mask_dtype: Optional[str] = None, mask_batched: bool = True,
                   out_seq_major: bool = False, in_seq_major: tuple = (False, False, False),
                   empty_rows: str = "zero"):
    """triton.compile of one static shape; returns (CompiledKernel, cfg, consts).
    Shared by build_ptx and tools/kernels/tune_on_gpu.py (which launches the CompiledKernel
    directly: ck[grid](q, k, v, kpm, o, *consts.values()), kpm None without a
    key-padding mask). empty_rows: what a query row that sees no key (every key
    masked by -inf, or causal bottom-right with Sq > Skv) gets: "zero" (what
    the tuning and benchmark tools compare with, a reference whose NaN rows are
    zeroed; also the attention op followed by _safe_softmax's row guard) or
    "nan" (0/0: the attention op's own answer, and PyTorch's plain softmax)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if head_dim not in (64, 128):
        raise ValueError(f"head_dim {head_dim} not supported (64 or 128)")
    if heads % kv_heads:
        raise ValueError("heads must be a multiple of kv_heads")
    if arch not in (80, 90):
        raise ValueError("arch must be 80 or 90")
    tdt = _TL_DTYPE[str(dtype).replace("torch.", "")]
    if scale is None:
        scale = 1.0 / math.sqrt(head_dim)
    if key_padding_mask_dtype is not None and mask_dtype is not None:
        raise ValueError("a key-padding mask or a (B, Sq, Skv) mask, not both")
    if empty_rows not in ("zero", "nan"):
        raise ValueError(f"empty_rows={empty_rows!r} (\"zero\" or \"nan\")")
    any_mask = key_padding_mask_dtype if key_padding_mask_dtype is not None else mask_dtype
    mask = "key_padding" if key_padding_mask_dtype is not None else "full" if mask_dtype is not None else ""
    cfg = resolve_config(head_dim=head_dim, arch=arch, causal=bool(causal), dtype=tdt,
                         sq=sq, skv=skv, scale=float(scale), config=config, mask=mask)
    opts = dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    if cfg.get("maxnreg"):
        opts["maxnreg"] = int(cfg["maxnreg"])
    if ptx_version is not None:
        opts["ptx_version"] = ptx_version
    if cfg["TMA"]:
        ck, consts = triton_fa_tma.compile_kernel(
            tdt=tdt, cfg=cfg, opts=opts, batch=batch, heads=heads, kv_heads=kv_heads, sq=sq, skv=skv,
            head_dim=head_dim, scale=float(scale), causal=bool(causal), bottom_right=bool(bottom_right),
            out_seq_major=out_seq_major, in_seq_major=in_seq_major,
            mask=mask, mask_dtype=_KPM_DTYPE[str(any_mask).replace("torch.", "")] if any_mask is not None else "",
            mask_batched=mask_batched, empty_rows=empty_rows)
        return ck, cfg, consts
    if any_mask is not None:
        kpm_dt = _KPM_DTYPE[str(any_mask).replace("torch.", "")]
        sig = {"Q": f"*{tdt}", "K": f"*{tdt}", "V": f"*{tdt}", "KPM": f"*{kpm_dt}", "O": f"*{tdt}"}
    else:  # KPM is a None constexpr: not a kernel parameter at all
        sig = {"Q": f"*{tdt}", "K": f"*{tdt}", "V": f"*{tdt}", "KPM": "constexpr", "O": f"*{tdt}"}
    consts = dict(
        SM_SCALE_LOG2=float(scale) * 1.4426950408889634,
        H=heads, KV_RATIO=heads // kv_heads, SQ=sq, SKV=skv, HEAD_DIM=head_dim,
        CAUSAL=bool(causal), BOTTOM_RIGHT=bool(causal and bottom_right),
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
    )
    for f in VARIANT_FLAGS:
        if f != "TMA":  # (a choice of kernel, not a flag of this one)
            consts[f] = cfg[f]
    consts["HAS_KPM"] = key_padding_mask_dtype is not None
    consts["HAS_MASK"] = mask_dtype is not None
    consts["MASK_BATCHED"] = bool(mask_batched)
    consts["MASK_SKIP"] = bool(cfg.get("MASK_SKIP", False))
    consts["O_SEQ_MAJOR"] = bool(out_seq_major)
    consts["Q_SEQ_MAJOR"], consts["K_SEQ_MAJOR"], consts["V_SEQ_MAJOR"] = (bool(x) for x in in_seq_major)
    consts["EMPTY_ROWS_NAN"] = empty_rows == "nan"
    for k in consts:
        sig[k] = "constexpr"
    # 16-byte alignment of all base pointers (IREE bindings are at least
    # 64-byte aligned) enables vectorized / async-copy loads. Argument
    # indices: Q 0, K 1, V 2, KPM 3, O 4.
    ptr_args = (0, 1, 2, 3, 4) if any_mask is not None else (0, 1, 2, 4)
    attrs = {(i,): [["tt.divisibility", 16]] for i in ptr_args}
    constexprs = dict(consts)
    if any_mask is None:
        constexprs["KPM"] = None
    src = ASTSource(fn=_fa_fwd_kernel, signature=sig, constexprs=constexprs, attrs=attrs)
    ck = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=opts)
    return ck, cfg, consts


def _smaller_tiles(cfg: dict):
    """Tiles that need less shared memory than cfg's, largest first: fewer pipeline stages
    (down to 2), then the key tile halved (down to 32) with the stages again."""
    block_n = cfg["BLOCK_N"]
    while block_n >= 32:
        for stages in range(cfg["num_stages"] if block_n < cfg["BLOCK_N"] else cfg["num_stages"] - 1, 1, -1):
            yield dict(BLOCK_N=block_n, num_stages=stages)
        block_n //= 2


def build_ptx(**kwargs) -> KernelBinary:
    """AOT-compiles the FA forward kernel for one static shape; takes compile_kernel's
    keyword arguments (an unknown one is a TypeError).

    causal may be False, True / "top_left", or "bottom_right" (equivalently
    causal=True, bottom_right=True). ptx_version: e.g. 84 to emit `.version 8.4`
    (JIT-able by CUDA >= 12.4 drivers); default is what Triton picks (8.7 for
    its bundled ptxas 12.8, which needs an R570+ driver to JIT).
    key_padding_mask_dtype: None (no mask) or the element type ("f32", "f16",
    "bf16") of a (B, Skv) contiguous additive mask added to the scaled scores
    of batch b before the softmax; the kernel then takes it as a pointer
    parameter right after V (q, k, v, key_padding_mask, o, scratch...).
    mask_dtype: None or the element type of a (B, Sq, Skv) contiguous additive
    mask ((Sq, Skv) with mask_batched=False), taken in the same place
    (q, k, v, mask, o, scratch...); config MASK_SKIP=True skips key tiles the
    mask hides from the whole query tile (a data-dependent branch: slower on
    an H200 for LLaMA's causal mask at S=1024, 106 vs 82 us per layer).
    out_seq_major: O is written as (B, Sq, H, D) instead of (B, H, Sq, D).
    in_seq_major: (q, k, v) flags, each read as (B, S, heads, D) instead of
    (B, heads, S, D) (where a model's projection leaves it).
    empty_rows: "zero" (default) or "nan", the output of a query row that sees
    no key (see compile_kernel); the config says which ("empty_rows"), so the
    two variants never share an executable.
    """
    bound = inspect.signature(compile_kernel).bind(**kwargs)
    bound.apply_defaults()
    a = bound.arguments
    if isinstance(a["causal"], str):
        if a["causal"] not in ("top_left", "bottom_right"):
            raise ValueError(f"causal={a['causal']!r}")
        a["bottom_right"] = a["causal"] == "bottom_right"
        a["causal"] = True
    if a["scale"] is None:
        a["scale"] = 1.0 / math.sqrt(a["head_dim"])
    ck, cfg, _ = compile_kernel(**a)
    # The tuned tile can overflow shared memory where a mask adds its own tiles (head dim 128
    # with a (B, Sq, Skv) f32 mask: 352 KiB): then fewer stages, then narrower key tiles.
    for smaller in _smaller_tiles(cfg):
        if ck.metadata.shared <= MAX_SHARED_OPTIN[a["arch"]]:
            break
        ck, cfg, _ = compile_kernel(**{**a, "config": {**(a["config"] or {}), **smaller}})
    kpm_dtype, mask_dtype, in_seq_major = a["key_padding_mask_dtype"], a["mask_dtype"], a["in_seq_major"]
    roles = ["input", "input", "input", "output"]
    names = ["q", "k", "v", "o"]
    if kpm_dtype is not None or mask_dtype is not None:
        roles.insert(3, "input")
        names.insert(3, "key_padding_mask" if mask_dtype is None else "mask")
    grid = triton_fa_tma.grid(cfg, a["batch"], a["heads"], a["sq"])  # (PERSISTENT only with TMA)
    cfg_out = dict(cfg, scale=float(a["scale"]), causal=bool(a["causal"]),
                   bottom_right=bool(a["causal"] and a["bottom_right"]),
                   **{k: a[k] for k in ("batch", "heads", "kv_heads", "sq", "skv", "head_dim")},
                   dtype=_TL_DTYPE[str(a["dtype"]).replace("torch.", "")], empty_rows=a["empty_rows"])
    if kpm_dtype is not None:  # (absent otherwise: configs of mask-free kernels unchanged)
        cfg_out["key_padding_mask"] = _KPM_DTYPE[str(kpm_dtype).replace("torch.", "")]
    if mask_dtype is not None:
        cfg_out["mask"] = _KPM_DTYPE[str(mask_dtype).replace("torch.", "")]
        cfg_out["mask_batched"] = bool(a["mask_batched"])
    else:
        cfg_out.pop("MASK_SKIP", None)
    if a["out_seq_major"]:
        cfg_out["out_layout"] = "bshd"
    if any(in_seq_major):
        cfg_out["in_layout"] = ["bshd" if x else "bhsd" for x in in_seq_major]
    return aot.binary(ck, a["arch"], names, roles, grid, cfg_out)


if __name__ == "__main__":  # quick smoke test: python triton_fa.py
    kb = build_ptx(batch=2, heads=8, kv_heads=2, sq=1000, skv=777, head_dim=64,
                   dtype="f16", causal="bottom_right", arch=90)
    print(kb.name, kb.grid, kb.block, kb.shared_mem_bytes, kb.ptx_target,
          kb.ptx_version, [(p.name, p.ptx_type) for p in kb.params],
          len(kb.ptx), len(kb.cubin or b""))
