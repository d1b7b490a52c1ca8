"""The pointer-load FlashAttention forward kernel (any sm_80+ GPU), and its triton.compile.

One program computes one (BLOCK_M, D) query tile of one head: it loads the query tile once,
walks the key tiles in two loops and writes the normalised output tile. The first loop takes
the key tiles no row of the query tile needs a mask for (`_unmasked_tiles`: raw scores, the
online-softmax step `_online_step`); the second the tiles of the sequence tail, the causal
diagonal band, or every tile when an additive mask is given (`_masked_tiles`: scores
masked to -inf, a step that is safe for rows that have seen no key yet). The ABI, the
variants and the masking semantics are triton_fa.py's (its module doc); triton_fa.py picks
this kernel or triton_fa_tma.py's and compiles through `compile_kernel` here.
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget

from flashlift.compiler.kernels import aot
from flashlift.compiler.kernels.fa_configs import KERNEL_CHOICES, VARIANT_FLAGS
from flashlift.compiler.kernels.fa_layouts import layout_consts, mask_slab

LOG2E = tl.constexpr(1.4426950408889634)  # (a constexpr: the kernel reads it)


@triton.jit
def _exp2_f16(x):
    """2**x for an f16 tensor, two lanes per MUFU op (ex2.approx.f16x2)."""
    return tl.inline_asm_elementwise(
        "ex2.approx.f16x2 $0, $1;", "=r,r", [x], dtype=tl.float16, is_pure=True, pack=2)


@triton.jit
def _accumulate(x, alpha, l_i, acc, v, EXP16: tl.constexpr):
    """p = 2**x (x: the base-2 scores less the new row max); the row sums and the output
    accumulator rescaled by alpha = 2**(m_old - m_new), then p @ v added."""
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
    return l_i, acc


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
    l_i, acc = _accumulate(x, alpha, l_i, acc, v, EXP16)
    return m_ij, l_i, acc


@triton.jit
def _masked_step(qk, m_i, l_i, acc, v, EXP16: tl.constexpr):
    """The online-softmax update with a tile of base-2 scores qk in which hidden keys are
    -inf. A row with no visible key so far keeps m = -inf; 0 is subtracted instead, so that
    exp2(-inf - -inf) never produces NaN."""
    m_ij = tl.maximum(m_i, tl.max(qk, 1))
    m_safe = tl.where(m_ij == float("-inf"), 0.0, m_ij)
    alpha = tl.math.exp2(m_i - m_safe)
    l_i, acc = _accumulate(qk - m_safe[:, None], alpha, l_i, acc, v, EXP16)
    return m_ij, l_i, acc


@triton.jit
def _load_k(ptrs, cols, SKV: tl.constexpr, KTRANS: tl.constexpr, TAIL: tl.constexpr):
    """The key tile as a (D, BLOCK_N) operand of q @ k; TAIL: keys past SKV read as 0."""
    if TAIL:
        if KTRANS:
            k = tl.trans(tl.load(ptrs, mask=cols[:, None] < SKV, other=0.0))
        else:
            k = tl.load(ptrs, mask=cols[None, :] < SKV, other=0.0)
    else:
        if KTRANS:
            k = tl.trans(tl.load(ptrs))
        else:
            k = tl.load(ptrs)
    return k


@triton.jit
def _unmasked_tiles(q, k_ptrs, v_ptrs, m_i, l_i, acc, lo, offs_n,
                    K_ROW: tl.constexpr, V_ROW: tl.constexpr, SM_SCALE_LOG2: tl.constexpr,
                    SKV: tl.constexpr, BLOCK_N: tl.constexpr, FULL_N: tl.constexpr,
                    FOLD_SCALE: tl.constexpr, EXP16: tl.constexpr, KTRANS: tl.constexpr,
                    WARP_SPEC: tl.constexpr, PIPE_QK: tl.constexpr, HAS_KPM: tl.constexpr):
    """Key tiles [0, lo): every key visible to every row of the query tile."""
    if PIPE_QK and FULL_N > 0 and not HAS_KPM:
        # Rotated loop: the scores of tile j+1 are in flight (async wgmma) while
        # tile j's softmax and P@V run. Tile 0's scores are computed even when
        # lo == 0 (then never used; tile 0 exists since FULL_N > 0).
        qk = tl.dot(q, _load_k(k_ptrs, offs_n, SKV, KTRANS, False))
        for start_n in tl.range(BLOCK_N, lo, BLOCK_N, warp_specialize=WARP_SPEC):
            start_n = tl.multiple_of(start_n, BLOCK_N)
            qk_next = tl.dot(q, _load_k(k_ptrs + start_n * K_ROW, offs_n, SKV, KTRANS, False))
            v = tl.load(v_ptrs + (start_n - BLOCK_N) * V_ROW)
            m_i, l_i, acc = _online_step(qk, m_i, l_i, acc, v, SM_SCALE_LOG2, FOLD_SCALE, EXP16)
            qk = qk_next
        if lo > 0:
            v = tl.load(v_ptrs + (lo - BLOCK_N) * V_ROW)
            m_i, l_i, acc = _online_step(qk, m_i, l_i, acc, v, SM_SCALE_LOG2, FOLD_SCALE, EXP16)
    else:
        for start_n in tl.range(0, lo, BLOCK_N, warp_specialize=WARP_SPEC):
            start_n = tl.multiple_of(start_n, BLOCK_N)
            qk = tl.dot(q, _load_k(k_ptrs + start_n * K_ROW, offs_n, SKV, KTRANS, False))
            v = tl.load(v_ptrs + start_n * V_ROW)
            m_i, l_i, acc = _online_step(qk, m_i, l_i, acc, v, SM_SCALE_LOG2, FOLD_SCALE, EXP16)
    return m_i, l_i, acc


@triton.jit
def _masked_tiles(q, k_ptrs, v_ptrs, kpm_ptrs, mask_ptrs, m_i, l_i, acc, lo, hi, offs_m, offs_n,
                  DIAG: tl.constexpr, K_ROW: tl.constexpr, V_ROW: tl.constexpr, SM_SCALE_LOG2: tl.constexpr,
                  SQ: tl.constexpr, SKV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  CAUSAL: tl.constexpr, KTRANS: tl.constexpr, EXP16: tl.constexpr,
                  HAS_KPM: tl.constexpr, HAS_MASK: tl.constexpr, MASK_SKIP: tl.constexpr):
    """Key tiles [lo, hi): the sequence tail, the causal diagonal band, and every tile of
    an additive mask (kpm_ptrs: the (B, SKV) row of this batch entry; mask_ptrs: this query
    tile's rows of the (SQ, SKV) mask)."""
    TAIL: tl.constexpr = SKV % BLOCK_N != 0
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        k = _load_k(k_ptrs + start_n * K_ROW, cols, SKV, KTRANS, TAIL)
        if TAIL:
            v = tl.load(v_ptrs + start_n * V_ROW, mask=cols[:, None] < SKV, other=0.0)
        else:
            v = tl.load(v_ptrs + start_n * V_ROW)
        valid = cols[None, :] < SKV
        if CAUSAL:
            valid = valid & (cols[None, :] <= offs_m[:, None] + DIAG)
        seen = True
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
        if seen:
            qk = tl.dot(q, k) * SM_SCALE_LOG2
            if HAS_KPM:  # (s * scale + mask) * log2(e), the kernel's base-2 scores
                if TAIL:
                    kpm = tl.load(kpm_ptrs + start_n, mask=cols < SKV, other=0.0)
                else:
                    kpm = tl.load(kpm_ptrs + start_n)
                qk = qk + kpm.to(tl.float32)[None, :] * LOG2E
            if HAS_MASK:
                qk = qk + mtile * LOG2E
            m_i, l_i, acc = _masked_step(tl.where(valid, qk, float("-inf")), m_i, l_i, acc, v, EXP16)
    return m_i, l_i, acc


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
    MASK_BATCHED: tl.constexpr = 1,    # HAS_MASK: 0 one (SQ, SKV) for all, 1 (B, SQ, SKV), 2 (B, H, SQ, SKV), 3 (H, SQ, SKV)
    MASK_SKIP: tl.constexpr = False,   # HAS_MASK: skip key tiles the mask hides from every row
    O_SEQ_MAJOR: tl.constexpr = False, # O as (B, SQ, H, D) (a model's .transpose(1, 2) folded in)
    Q_SEQ_MAJOR: tl.constexpr = False, # Q as sequence rows (read where the projection left it):
    K_SEQ_MAJOR: tl.constexpr = False, # row s of batch b at (b*S + s)*ROW_W + COL0, head h at
    V_SEQ_MAJOR: tl.constexpr = False, # + h*D (fa_layouts.py; (B, S, heads, D): ROW_W heads*D)
    Q_ROW_W: tl.constexpr = 0, K_ROW_W: tl.constexpr = 0, V_ROW_W: tl.constexpr = 0,
    Q_COL0: tl.constexpr = 0, K_COL0: tl.constexpr = 0, V_COL0: tl.constexpr = 0,
    EMPTY_ROWS_NAN: tl.constexpr = False,  # a row that sees no key: NaN (0/0, the attention op's
                                       # answer) instead of 0 (the op followed by _safe_softmax's guard)
):
    """One program: query tile program_id(0) (reversed with REVERSE_M) of (batch, head)
    program_id(1). Reads top to bottom: where each operand's rows lie, the key ranges, the two
    loops, the normalised store. Longer than ~60 lines because each line of its set-up is one
    of the ABI's constexpr variants; the loops are the helpers above."""
    if REVERSE_M:
        start_m = tl.num_programs(0) - 1 - tl.program_id(0)
    else:
        start_m = tl.program_id(0)
    off_bh = tl.program_id(1)
    off_b = off_bh // H
    off_h = off_bh % H
    off_kvh = off_h // KV_RATIO
    KVH: tl.constexpr = H // KV_RATIO

    # int64 base offsets: B*H*S*D can exceed 2^31 elements. Sequence-major operands: one row
    # of a head every ROW_W elements, from column COL0 + head * D.
    q_base = off_bh.to(tl.int64) * (SQ * HEAD_DIM)
    kv_base = (off_b.to(tl.int64) * KVH + off_kvh) * (SKV * HEAD_DIM)
    k_seq = off_b.to(tl.int64) * (SKV * K_ROW_W) + K_COL0 + off_kvh * HEAD_DIM
    v_seq = off_b.to(tl.int64) * (SKV * V_ROW_W) + V_COL0 + off_kvh * HEAD_DIM
    if Q_SEQ_MAJOR:
        q_in = off_b.to(tl.int64) * (SQ * Q_ROW_W) + Q_COL0 + off_h * HEAD_DIM
    else:
        q_in = q_base
    Q_ROW: tl.constexpr = Q_ROW_W if Q_SEQ_MAJOR else HEAD_DIM
    K_ROW: tl.constexpr = K_ROW_W if K_SEQ_MAJOR else HEAD_DIM
    V_ROW: tl.constexpr = V_ROW_W if V_SEQ_MAJOR else HEAD_DIM

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    q_ptrs = Q + q_in + offs_m[:, None] * Q_ROW + offs_d[None, :]
    if KTRANS:  # a (BLOCK_N, D) tile, transposed by tl.trans; else K read as a (D, BLOCK_N) tile
        k_ptrs = K + (k_seq if K_SEQ_MAJOR else kv_base) + offs_n[:, None] * K_ROW + offs_d[None, :]
    else:
        k_ptrs = K + (k_seq if K_SEQ_MAJOR else kv_base) + offs_n[None, :] * K_ROW + offs_d[:, None]
    v_ptrs = V + (v_seq if V_SEQ_MAJOR else kv_base) + offs_n[:, None] * V_ROW + offs_d[None, :]
    if SQ % BLOCK_M == 0:
        q = tl.load(q_ptrs)
    else:
        q = tl.load(q_ptrs, mask=offs_m[:, None] < SQ, other=0.0)

    # Key tiles [0, lo) need no mask for any row of this tile, [lo, hi) the bounds and/or
    # causal mask (key j visible to query i iff j <= i + DIAG), or, with an additive mask
    # (which can hide any key), every tile.
    DIAG: tl.constexpr = SKV - SQ if BOTTOM_RIGHT else 0
    FULL_N: tl.constexpr = (SKV // BLOCK_N) * BLOCK_N
    if CAUSAL:
        row_lo = start_m * BLOCK_M + DIAG + 1          # keys < row_lo visible to all rows
        row_hi = (start_m + 1) * BLOCK_M + DIAG        # keys < row_hi visible to some row
        lo = tl.minimum(tl.maximum(row_lo, 0) // BLOCK_N * BLOCK_N, FULL_N)
        hi = tl.minimum(tl.maximum(row_hi, 0), SKV)
    else:
        lo = FULL_N
        hi = SKV
    kpm_ptrs = KPM + off_b.to(tl.int64) * SKV + offs_n if HAS_KPM else KPM
    mask_ptrs = KPM + mask_slab(off_b, off_h, off_bh, MASK_BATCHED) * (SQ * SKV) \
        + offs_m[:, None] * SKV + offs_n[None, :] if HAS_MASK else KPM
    if HAS_KPM or HAS_MASK:
        lo = 0

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    m_i, l_i, acc = _unmasked_tiles(q, k_ptrs, v_ptrs, m_i, l_i, acc, lo, offs_n, K_ROW, V_ROW, SM_SCALE_LOG2,
                                    SKV, BLOCK_N, FULL_N, FOLD_SCALE, EXP16, KTRANS, WARP_SPEC, PIPE_QK, HAS_KPM)
    m_i, l_i, acc = _masked_tiles(q, k_ptrs, v_ptrs, kpm_ptrs, mask_ptrs, m_i, l_i, acc, lo, hi, offs_m, offs_n,
                                  DIAG, K_ROW, V_ROW, SM_SCALE_LOG2, SQ, SKV, BLOCK_M, BLOCK_N,
                                  CAUSAL, KTRANS, EXP16, HAS_KPM, HAS_MASK, MASK_SKIP)

    # l_i == 0 exactly on rows that see no key (a seen key's weight is exp2(0) = 1 for the
    # row max): 0/0 = NaN there, or 0. Rows whose keys are all masked by a finite value
    # (FLOOR, passes/masks.py: FLOOR * log2(e) is finite) see every key: uniform.
    if EMPTY_ROWS_NAN:
        acc = acc / l_i[:, None]
    else:
        acc = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    if O_SEQ_MAJOR:
        o_ptrs = (O + off_b.to(tl.int64) * (SQ * H * HEAD_DIM) + off_h * HEAD_DIM
                  + offs_m[:, None] * (H * HEAD_DIM) + offs_d[None, :])
    else:
        o_ptrs = O + q_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    if SQ % BLOCK_M == 0:
        tl.store(o_ptrs, acc.to(O.dtype.element_ty))
    else:
        tl.store(o_ptrs, acc.to(O.dtype.element_ty), mask=offs_m[:, None] < SQ)


def compile_kernel(*, tdt: str, cfg: dict, opts: dict, arch: int, batch: int, heads: int, kv_heads: int,
                   sq: int, skv: int, head_dim: int, scale: float, causal: bool, bottom_right: bool,
                   out_seq_major: bool, in_seq_major: tuple, mask: str = "", mask_dtype: str = "",
                   mask_batched: int = 1, empty_rows: str = "zero"):
    """triton.compile of one static shape with triton_fa_tma.compile_kernel's arguments
    (cfg: the tile and the variant flags, fa_configs.resolve_config's); returns
    (CompiledKernel, consts). Without a mask KPM is a None constexpr, not a parameter."""
    consts = dict(
        SM_SCALE_LOG2=float(scale) * LOG2E.value,
        H=heads, KV_RATIO=heads // kv_heads, SQ=sq, SKV=skv, HEAD_DIM=head_dim,
        CAUSAL=bool(causal), BOTTOM_RIGHT=bool(causal and bottom_right),
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
        **{f: cfg[f] for f in VARIANT_FLAGS if f not in KERNEL_CHOICES},
        HAS_KPM=mask == "key_padding", HAS_MASK=mask == "full", MASK_BATCHED=int(mask_batched),
        MASK_SKIP=bool(cfg.get("MASK_SKIP", False)), O_SEQ_MAJOR=bool(out_seq_major),
        **layout_consts(in_seq_major, heads, kv_heads, head_dim), EMPTY_ROWS_NAN=empty_rows == "nan")
    src = aot.attention_source(_fa_fwd_kernel, tdt=tdt, consts=consts, mask=mask, mask_dtype=mask_dtype)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=opts), consts
