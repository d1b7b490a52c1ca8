"""Hopper FlashAttention forward in Gluon: a TMA producer warp, two consumer warpgroups, and
each consumer's next q@k issued before its softmax (FlashAttention-3's schedule, sm_90a only).

Triton 3.6 runs a warpgroup's q@k -> softmax -> p@v chain serially even in triton_fa_tma's
warp-specialised kernel (it waits for each wgmma right after issuing it). Gluon, Triton's
lower-level language, states the schedule instead: layouts, shared memory, mbarriers and
asynchronous wgmma are explicit, so the loop below is the schedule it runs.

  * Partitions (`gl.warp_specialize`): a loader warp (24 registers) issues the TMA loads of
    each consumer's query rows and of each key/value tile into a STAGES-deep ring; two
    consumer warpgroups of BLOCK_M / 2 query rows compute, each its own partition at 240
    registers (CONSUMERS=2; CONSUMERS=1: one 8-warp partition for all rows, 5-8% slower). An
    mbarrier per stage says "K (V) landed" and one says "stage consumed" (by every consumer).
  * Each key tile j, per consumer warpgroup, reads top to bottom as:
        issue s = q @ k_j^T                                   (tensor cores)
        issue o += p_{j-1} @ v_{j-1}                          (tensor cores, queued after it)
        wait for s; softmax of s -> p_j, alpha_j              (overlaps p_{j-1} @ v_{j-1})
        wait for o; o *= alpha_j; give stage j-1 back to the loader
    so the exponentials of tile j run while the tensor cores do tile j-1's second product.
  * Causal: the key tiles wholly below the diagonal take no mask; only the tiles the diagonal
    crosses compare indices. Query tiles are launched longest first.

What it covers (`covers` says why not): sm_90, head dim 64 or 128, Sq a multiple of BLOCK_M
and Skv of BLOCK_N, softmax scale > 0, causal with every query row seeing key 0 (top-left,
or bottom-right with Skv >= Sq) or not, a run-time mask or none (a (B, Skv) key-padding mask,
a (B, Sq, Skv) or (Sq, Skv) one: pointer loads in the consumers, issued under the products); triton_fa's
(B, H, S, D) / (B, S, H, D) layouts (fa_layouts.py), grouped-query. Anything else takes
triton_fa_tma or triton_fa_ptr.

Measured (bench/results/gluon-kernel-h100.md): fastest of the three kernels at head dim 128
beyond 1024 keys without a run-time mask, where fa_configs tunes it in.

ABI: triton_fa's (Q, K, V[, mask], O, global_scratch, profile_scratch); the
tensor maps are built on the device into global_scratch (128 bytes each per CTA), as in
triton_fa_tma.
"""

from __future__ import annotations

import triton
from triton.backends.compiler import GPUTarget
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier, tma, warpgroup_mma,
                                                             warpgroup_mma_wait)

from flashlift.compiler.kernels import aot, triton_fa_tma
from flashlift.compiler.kernels.fa_layouts import layout_consts

LOG2E = gl.constexpr(1.4426950408889634)  # (a constexpr: the kernel reads it)


@gluon.jit
def _operand_desc(ptr, SEQ_MAJOR: gl.constexpr, ROWS: gl.constexpr, ROW_W: gl.constexpr,
                  BLOCK: gl.constexpr, HEAD_DIM: gl.constexpr):
    """The 2-D view of Q, K, V or O a tile is loaded from: (B*heads*S, D) head-major, or
    (B*S, ROW_W) sequence-major (fa_layouts.py)."""
    layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK, HEAD_DIM], ptr.dtype.element_ty)
    if SEQ_MAJOR:
        return tma.make_tensor_descriptor(ptr, shape=[ROWS, ROW_W], strides=[ROW_W, 1],
                                          block_shape=[BLOCK, HEAD_DIM], layout=layout)
    else:
        return tma.make_tensor_descriptor(ptr, shape=[ROWS * ROW_W // HEAD_DIM, HEAD_DIM], strides=[HEAD_DIM, 1],
                                          block_shape=[BLOCK, HEAD_DIM], layout=layout)


@gluon.jit
def _load_partition(desc_q, desc_k, desc_v, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, kv_empty,
                    q_row, q_col, k_row, k_col, v_row, v_col, n_tiles,
                    CONSUMERS: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr):
    """One warp: each consumer's query rows, then key/value tile j into stage j % STAGES once
    every consumer has given that stage back."""
    CM: gl.constexpr = desc_q.block_type.shape[0]
    for c in gl.static_range(CONSUMERS):
        mbarrier.expect(q_bar.index(c), desc_q.block_type.nbytes)
        tma.async_copy_global_to_shared(desc_q, [q_row + c * CM, q_col], q_bar.index(c), q_smem.index(c))
    for j in range(n_tiles):
        s = j % STAGES
        mbarrier.wait(kv_empty.index(s), ((j // STAGES) & 1) ^ 1)  # (a fresh barrier passes phase 1)
        mbarrier.expect(k_ready.index(s), desc_k.block_type.nbytes)
        tma.async_copy_global_to_shared(desc_k, [k_row + j * BLOCK_N, k_col], k_ready.index(s), k_smem.index(s))
        mbarrier.expect(v_ready.index(s), desc_v.block_type.nbytes)
        tma.async_copy_global_to_shared(desc_v, [v_row + j * BLOCK_N, v_col], v_ready.index(s), v_smem.index(s))


@gluon.jit
def _mask_tile(mask_base, j, row0, MASK: gl.constexpr, SKV: gl.constexpr, CM: gl.constexpr,
               BLOCK_N: gl.constexpr, s_layout: gl.constexpr):
    """Key tile j's additive mask in base 2 (times log2 e): a (BLOCK_N,) row of the batch
    entry's key-padding mask, or the (CM, BLOCK_N) block of its (Sq, Skv) mask from query row
    row0; 0 without a mask."""
    cols = j * BLOCK_N + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
    if MASK == "key_padding":
        return gl.load(mask_base + cols).to(gl.float32) * LOG2E
    elif MASK == "full":
        rows = row0 + gl.arange(0, CM, layout=gl.SliceLayout(1, s_layout))
        return gl.load(mask_base + rows[:, None] * SKV + cols[None, :]).to(gl.float32) * LOG2E
    else:
        return 0.0


@gluon.jit
def _softmax_tile(s, bias, j, m_i, l_i, n_full, row0, SM_SCALE_LOG2: gl.constexpr, DIAG: gl.constexpr,
                  CAUSAL: gl.constexpr, MASK: gl.constexpr, BLOCK_N: gl.constexpr, s_layout: gl.constexpr):
    """One online-softmax step over key tile j's raw scores s (rows from row0): returns
    (p, m, l, alpha), the base-2 probabilities, the new row max and sum, and the factor that
    rescales what came before. With CAUSAL, -inf above the diagonal in the tiles it crosses
    (j >= n_full); with a MASK, its tile `bias` (_mask_tile) added to the scaled scores, and a
    row that has seen only -inf keeps m = -inf and subtracts 0 (no -inf - -inf)."""
    if CAUSAL:
        if j >= n_full:
            cols = j * BLOCK_N + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
            rows = row0 + gl.arange(0, s.shape[0], layout=gl.SliceLayout(1, s_layout))
            s = gl.where(cols[None, :] <= rows[:, None] + DIAG, s, float("-inf"))
    if MASK != "":
        if MASK == "key_padding":
            t = s * SM_SCALE_LOG2 + bias[None, :]
        else:
            t = s * SM_SCALE_LOG2 + bias
        m_new = gl.maximum(m_i, gl.max(t, 1))
        m_sub = gl.where(m_new == float("-inf"), 0.0, m_new)
        p = gl.exp2(t - m_sub[:, None])
    else:  # every row saw key 0 in tile 0 (covers()): m is finite from there on
        m_new = gl.maximum(m_i, gl.max(s, 1) * SM_SCALE_LOG2)
        m_sub = m_new
        p = gl.exp2(s * SM_SCALE_LOG2 - m_sub[:, None])
    alpha = gl.exp2(m_i - m_sub)
    return p, m_new, l_i * alpha + gl.sum(p, 1), alpha


@gluon.jit
def _consumer(c, desc_o, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, kv_empty, n_tiles, n_full,
              row0, o_row, o_col, mask_base,
              SM_SCALE_LOG2: gl.constexpr, DIAG: gl.constexpr, CAUSAL: gl.constexpr, MASK: gl.constexpr,
              SKV: gl.constexpr,
              EMPTY_ROWS_NAN: gl.constexpr,
              BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, STAGES: gl.constexpr, WARPS: gl.constexpr):
    """Consumer c: the online softmax of its CM query rows over n_tiles (>= 1) key tiles, then
    its output rows, normalised, out through its query buffer by TMA."""
    CM: gl.constexpr = desc_o.block_type.shape[0]
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[WARPS, 1],
                                                       instr_shape=[16, BLOCK_N, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[WARPS, 1],
                                                       instr_shape=[16, HEAD_DIM, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    row_s: gl.constexpr = gl.SliceLayout(1, s_layout)
    row_o: gl.constexpr = gl.SliceLayout(1, o_layout)
    dtype: gl.constexpr = q_smem.dtype
    q = q_smem.index(c)
    row0 = row0 + c * CM

    mbarrier.wait(q_bar.index(c), 0)
    # key tile 0: scores, row max, first probabilities
    mbarrier.wait(k_ready.index(0), 0)
    s = warpgroup_mma(q, k_smem.index(0).permute((1, 0)), gl.zeros([CM, BLOCK_N], gl.float32, s_layout),
                      use_acc=False)
    bias = _mask_tile(mask_base, 0, row0, MASK, SKV, CM, BLOCK_N, s_layout)
    p, m_i, l_i, alpha = _softmax_tile(s, bias, 0, gl.full([CM], float("-inf"), gl.float32, row_s),
                                       gl.zeros([CM], gl.float32, row_s), n_full, row0,
                                       SM_SCALE_LOG2, DIAG, CAUSAL, MASK, BLOCK_N, s_layout)
    o = gl.zeros([CM, HEAD_DIM], gl.float32, o_layout)

    for j in range(1, n_tiles):
        st = j % STAGES
        prev = (j - 1) % STAGES
        mbarrier.wait(k_ready.index(st), (j // STAGES) & 1)
        s = warpgroup_mma(q, k_smem.index(st).permute((1, 0)), gl.zeros([CM, BLOCK_N], gl.float32, s_layout),
                          use_acc=False, is_async=True)
        mbarrier.wait(v_ready.index(prev), ((j - 1) // STAGES) & 1)
        o = warpgroup_mma(gl.convert_layout(p.to(dtype), p_layout), v_smem.index(prev), o, is_async=True)
        bias = _mask_tile(mask_base, j, row0, MASK, SKV, CM, BLOCK_N, s_layout)   # (loads under the products)
        s = warpgroup_mma_wait(num_outstanding=1, deps=(s, ))     # q @ k_j done; p_{j-1} @ v_{j-1} runs on
        p, m_i, l_i, alpha = _softmax_tile(s, bias, j, m_i, l_i, n_full, row0,
                                           SM_SCALE_LOG2, DIAG, CAUSAL, MASK, BLOCK_N, s_layout)
        o = warpgroup_mma_wait(num_outstanding=0, deps=(o, ))
        mbarrier.arrive(kv_empty.index(prev), count=1)
        o = o * gl.convert_layout(alpha, row_o)[:, None]

    last = (n_tiles - 1) % STAGES
    mbarrier.wait(v_ready.index(last), ((n_tiles - 1) // STAGES) & 1)
    o = warpgroup_mma(gl.convert_layout(p.to(dtype), p_layout), v_smem.index(last), o)
    mbarrier.arrive(kv_empty.index(last), count=1)

    # A row that saw no key (only with a mask) has l = 0: NaN (0/0, the attention op's answer)
    # or 0 (_safe_softmax's guard), as in triton_fa_tma.
    l_o = gl.convert_layout(l_i, row_o)
    if MASK != "":
        if not EMPTY_ROWS_NAN:
            l_o = gl.where(l_o == 0.0, 1.0, l_o)
    o = o / l_o[:, None]
    q.store(o.to(dtype))
    fence_async_shared()
    tma.async_copy_shared_to_global(desc_o, [o_row + c * CM, o_col], q)
    tma.store_wait(0)


@gluon.jit
def _fa_fwd_gluon_kernel(
    Q, K, V, KPM, O,               # KPM: the additive mask MASK names, else None
    SM_SCALE_LOG2: gl.constexpr,   # softmax scale * log2(e), > 0
    B: gl.constexpr, H: gl.constexpr, KV_RATIO: gl.constexpr,
    SQ: gl.constexpr, SKV: gl.constexpr, HEAD_DIM: gl.constexpr,
    CAUSAL: gl.constexpr, BOTTOM_RIGHT: gl.constexpr,
    BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
    CONSUMERS: gl.constexpr,       # 1: one 8-warp partition; 2: two 4-warp partitions, BLOCK_M / 2 rows each
    O_SEQ_MAJOR: gl.constexpr, Q_SEQ_MAJOR: gl.constexpr,
    K_SEQ_MAJOR: gl.constexpr, V_SEQ_MAJOR: gl.constexpr,
    Q_ROW_W: gl.constexpr, K_ROW_W: gl.constexpr, V_ROW_W: gl.constexpr,
    Q_COL0: gl.constexpr, K_COL0: gl.constexpr, V_COL0: gl.constexpr,
    CONSUMER_REGS: gl.constexpr,   # registers per thread of consumer 1 (a worker partition)
    MASK: gl.constexpr,            # "": none; "key_padding": scores[b, :, :, j] += KPM[b, j];
                                   # "full": scores[b, :, i, j] += KPM[b, i, j] (KPM[i, j] unbatched)
    MASK_BATCHED: gl.constexpr,
    EMPTY_ROWS_NAN: gl.constexpr,  # with a MASK: a row that sees no key is NaN (0/0), else 0
):
    KVH: gl.constexpr = H // KV_RATIO
    M_TILES: gl.constexpr = SQ // BLOCK_M
    CM: gl.constexpr = BLOCK_M // CONSUMERS
    WARPS: gl.constexpr = 8 // CONSUMERS
    start_m = M_TILES - 1 - gl.program_id(0)      # longest causal rows first
    off_bh = gl.program_id(1)
    off_b = off_bh // H
    off_h = off_bh % H
    off_kvh = off_h // KV_RATIO

    desc_q = _operand_desc(Q, Q_SEQ_MAJOR, B * SQ, Q_ROW_W if Q_SEQ_MAJOR else H * HEAD_DIM, CM, HEAD_DIM)
    desc_k = _operand_desc(K, K_SEQ_MAJOR, B * SKV, K_ROW_W if K_SEQ_MAJOR else KVH * HEAD_DIM, BLOCK_N, HEAD_DIM)
    desc_v = _operand_desc(V, V_SEQ_MAJOR, B * SKV, V_ROW_W if V_SEQ_MAJOR else KVH * HEAD_DIM, BLOCK_N, HEAD_DIM)
    desc_o = _operand_desc(O, O_SEQ_MAJOR, B * SQ, H * HEAD_DIM, CM, HEAD_DIM)
    q_row = (off_b * SQ if Q_SEQ_MAJOR else off_bh * SQ) + start_m * BLOCK_M
    q_col = Q_COL0 + off_h * HEAD_DIM if Q_SEQ_MAJOR else 0
    k_row = off_b * SKV if K_SEQ_MAJOR else (off_b * KVH + off_kvh) * SKV
    k_col = K_COL0 + off_kvh * HEAD_DIM if K_SEQ_MAJOR else 0
    v_row = off_b * SKV if V_SEQ_MAJOR else (off_b * KVH + off_kvh) * SKV
    v_col = V_COL0 + off_kvh * HEAD_DIM if V_SEQ_MAJOR else 0
    o_row = (off_b * SQ if O_SEQ_MAJOR else off_bh * SQ) + start_m * BLOCK_M
    o_col = off_h * HEAD_DIM if O_SEQ_MAJOR else 0
    # this batch entry's mask (a partition argument cannot be None: Q stands in, unread)
    if MASK == "key_padding":
        mask_base = KPM + off_b * SKV
    elif MASK == "full":
        mask_base = KPM + (off_b.to(gl.int64) * (SQ * SKV) if MASK_BATCHED else 0)
    else:
        mask_base = Q

    # Key tiles [0, n_tiles); the first n_full of them lie wholly below a causal diagonal.
    row0 = start_m * BLOCK_M
    if CAUSAL:
        DIAG: gl.constexpr = SKV - SQ if BOTTOM_RIGHT else 0
        n_tiles = gl.minimum((row0 + BLOCK_M + DIAG + BLOCK_N - 1) // BLOCK_N, SKV // BLOCK_N)
        n_full = (row0 + DIAG + 1) // BLOCK_N
    else:
        DIAG: gl.constexpr = 0
        n_tiles = SKV // BLOCK_N
        n_full = n_tiles

    dtype: gl.constexpr = Q.dtype.element_ty
    q_smem = gl.allocate_shared_memory(dtype, [CONSUMERS, CM, HEAD_DIM], desc_q.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], desc_k.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], desc_v.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [CONSUMERS, 1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    kv_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(CONSUMERS):
        mbarrier.init(q_bar.index(i), count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(k_ready.index(i), count=1)
        mbarrier.init(v_ready.index(i), count=1)
        mbarrier.init(kv_empty.index(i), count=CONSUMERS)   # a stage is free once every consumer is done

    if CONSUMERS == 1:
        gl.warp_specialize([
            (_consumer, (0, desc_o, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, kv_empty, n_tiles, n_full,
                         row0, o_row, o_col, mask_base, SM_SCALE_LOG2, DIAG, CAUSAL, MASK, SKV, EMPTY_ROWS_NAN,
                         BLOCK_N, HEAD_DIM, STAGES, WARPS)),
            (_load_partition, (desc_q, desc_k, desc_v, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, kv_empty,
                               q_row, q_col, k_row, k_col, v_row, v_col, n_tiles, CONSUMERS, BLOCK_N, STAGES)),
        ], [1], [24])
    else:
        gl.warp_specialize([
            (_consumer, (0, desc_o, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, kv_empty, n_tiles, n_full,
                         row0, o_row, o_col, mask_base, SM_SCALE_LOG2, DIAG, CAUSAL, MASK, SKV, EMPTY_ROWS_NAN,
                         BLOCK_N, HEAD_DIM, STAGES, WARPS)),
            (_consumer, (1, desc_o, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, kv_empty, n_tiles, n_full,
                         row0, o_row, o_col, mask_base, SM_SCALE_LOG2, DIAG, CAUSAL, MASK, SKV, EMPTY_ROWS_NAN,
                         BLOCK_N, HEAD_DIM, STAGES, WARPS)),
            (_load_partition, (desc_q, desc_k, desc_v, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, kv_empty,
                               q_row, q_col, k_row, k_col, v_row, v_col, n_tiles, CONSUMERS, BLOCK_N, STAGES)),
        ], [4, 1], [CONSUMER_REGS, 24])


def covers(*, arch: int, head_dim: int, sq: int, skv: int, scale: float, causal: bool = False,
           bottom_right: bool = False, block_m: int = 128, block_n: int = 128) -> str:
    """'' when this kernel computes the case, else why not: triton_fa_tma's tiling rules, and
    every row sees a key."""
    why = triton_fa_tma.covers(arch=arch, head_dim=head_dim, sq=sq, skv=skv, scale=scale, block_m=block_m,
                               block_n=block_n, kernel="Gluon kernel")
    if why:
        return why
    if causal and bottom_right and skv < sq:
        return "bottom-right causal with Sq > Skv (rows that see no key)"
    return ""


def grid(cfg: dict, batch: int, heads: int, sq: int) -> tuple:
    return (triton.cdiv(sq, cfg["BLOCK_M"]), batch * heads, 1)


def compile_kernel(*, tdt: str, cfg: dict, opts: dict, arch: int, batch: int, heads: int, kv_heads: int, sq: int,
                   skv: int, head_dim: int, scale: float, causal: bool, bottom_right: bool,
                   out_seq_major: bool, in_seq_major: tuple, mask: str = "", mask_dtype: str = "",
                   mask_batched: bool = True, empty_rows: str = "zero"):
    """triton.compile of one static shape (cfg: BLOCK_M, BLOCK_N, num_stages, num_warps);
    returns (CompiledKernel, consts). Takes triton_fa_tma.compile_kernel's arguments; a case
    `covers` rejects is a ValueError. mask: "", "key_padding" or "full" (of Triton type mask_dtype);
    empty_rows ("zero" or "nan") matters only with a mask (without one no row is empty)."""
    why = covers(arch=arch, head_dim=head_dim, sq=sq, skv=skv, scale=scale, causal=causal,
                 bottom_right=bottom_right, block_m=cfg["BLOCK_M"], block_n=cfg["BLOCK_N"])
    if why:
        raise ValueError(f"gluon_fa does not cover this case: {why}")
    consts = dict(
        SM_SCALE_LOG2=float(scale) * LOG2E.value,
        B=batch, H=heads, KV_RATIO=heads // kv_heads, SQ=sq, SKV=skv, HEAD_DIM=head_dim,
        CAUSAL=bool(causal), BOTTOM_RIGHT=bool(causal and bottom_right),
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], STAGES=cfg["num_stages"], CONSUMERS=cfg.get("CONSUMERS", 2), CONSUMER_REGS=cfg.get("CONSUMER_REGS", 240),
        O_SEQ_MAJOR=bool(out_seq_major), **layout_consts(in_seq_major, heads, kv_heads, head_dim),
        MASK=mask, MASK_BATCHED=bool(mask_batched), EMPTY_ROWS_NAN=empty_rows == "nan")
    from triton.experimental.gluon._runtime import GluonASTSource
    src = aot.attention_source(_fa_fwd_gluon_kernel, tdt=tdt, consts=consts, mask=mask, mask_dtype=mask_dtype,
                               source=GluonASTSource)
    # the default partition's warps: all eight consumer warps, or consumer 0's four
    opts = {**{k: v for k, v in aot.tensor_map_options(opts).items() if k != "num_stages"},
            "num_warps": 8 // consts["CONSUMERS"]}
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts), consts
