"""Hopper FlashAttention forward: TMA tensor descriptors, warp specialisation and a persistent
grid (sm_90a only).

The pointer-load kernel of triton_fa.py runs each warpgroup's q@k -> softmax -> p@v chain
serially (Triton 3.6 cannot overlap it). This kernel loads every tile with TMA
(`tl.make_tensor_descriptor`) and lets Triton split a loop into a producer warpgroup (TMA
loads) and two consumer warpgroups (`tl.range(..., warp_specialize=True)`, BLOCK_M=128, 4
warps), as cuDNN and FlashAttention-3 do. With PERSISTENT (tuned on) the grid is one program
per SM looping over the query tiles, and that tile loop is the specialised one: the tensor
maps are built once per program and the next tile's loads overlap the last one's epilogue.
Kernel alone on an H200 (bench/results/triton-kernel-h200.md, section 5): 0.95-0.98x of
cuDNN at head dim 64, 0.84-0.95x at 128, 1.05-1.19x with a run-time mask; triton_fa's
tuned table picks it for non-causal cases.

What it covers (`covers` says why not): sm_90, head dim 64 or 128, Sq a multiple of BLOCK_M
and Skv of BLOCK_N (a 2-D descriptor tile never straddles two heads), softmax scale > 0; no
mask, causal (either alignment), a (B, Skv) key-padding or a (B, Sq, Skv) / (Sq, Skv)
additive mask; any of the (B, H, S, D) / (B, S, H, D) layouts of triton_fa; grouped-query.

ABI: the same pointer parameters as triton_fa's kernel, (Q, K, V[, mask], O, global_scratch,
profile_scratch), but global_scratch is real: each CTA writes its tensor maps (128 bytes
each) there (Triton puts CTA i's at global_scratch + i * metadata.global_scratch_size, i the
linear block index), so the dispatch binds a buffer of grid size x that many bytes (see
iree_dispatch: a module global, no per-call allocation). 3-stage pipelines with warp
specialisation returned NaN in the spike (a race in Triton 3.6's generated code): 2 stages.
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget

from flashlift.compiler.kernels import aot
from flashlift.compiler.kernels.fa_layouts import layout_consts, mask_slab

# SMs of an H100 SXM / H200: the persistent kernel's program count. On a GPU with fewer SMs
# (H100 PCIe: 114) the extra programs wait for a free SM: correct, a little slower.
NUM_SMS = 132


@triton.jit
def _fa_fwd_tma_kernel(
    Q, K, V, KPM, O,               # KPM: an additive mask (see HAS_KPM / HAS_MASK), or None
    SM_SCALE_LOG2: tl.constexpr,   # softmax scale * log2(e), > 0
    B: tl.constexpr, H: tl.constexpr, KV_RATIO: tl.constexpr,
    SQ: tl.constexpr, SKV: tl.constexpr, HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr, BOTTOM_RIGHT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    O_SEQ_MAJOR: tl.constexpr, Q_SEQ_MAJOR: tl.constexpr,
    K_SEQ_MAJOR: tl.constexpr, V_SEQ_MAJOR: tl.constexpr,
    Q_ROW_W: tl.constexpr, K_ROW_W: tl.constexpr, V_ROW_W: tl.constexpr,  # sequence-major rows
    Q_COL0: tl.constexpr, K_COL0: tl.constexpr, V_COL0: tl.constexpr,     # (fa_layouts.py)
    HAS_KPM: tl.constexpr = False,      # scores[b, :, :, j] += KPM[b, j] ((B, SKV) mask)
    HAS_MASK: tl.constexpr = False,     # scores[b, :, i, j] += KPM[b, i, j] ((B, SQ, SKV) mask)
    MASK_BATCHED: tl.constexpr = 1,     # HAS_MASK: 0 one (SQ, SKV) for all, 1 (B, SQ, SKV), 2 (B, H, SQ, SKV), 3 (H, SQ, SKV)
    PERSISTENT: tl.constexpr = False,   # grid (NUM_PROGS,): each program loops over query tiles
    NUM_PROGS: tl.constexpr = 1,
    EMPTY_ROWS_NAN: tl.constexpr = False,  # a row that sees no key: NaN (0/0), else 0
):
    KVH: tl.constexpr = H // KV_RATIO
    # Each operand as a 2-D (rows, columns) view: (B*heads*S, D) head-major, or (B*S, ROW_W)
    # sequence-major, where a head's tile sits at column COL0 + head*D.
    if Q_SEQ_MAJOR:
        desc_q = tl.make_tensor_descriptor(Q, shape=[B * SQ, Q_ROW_W], strides=[Q_ROW_W, 1],
                                           block_shape=[BLOCK_M, HEAD_DIM])
    else:
        desc_q = tl.make_tensor_descriptor(Q, shape=[B * H * SQ, HEAD_DIM], strides=[HEAD_DIM, 1],
                                           block_shape=[BLOCK_M, HEAD_DIM])
    if O_SEQ_MAJOR:
        desc_o = tl.make_tensor_descriptor(O, shape=[B * SQ, H * HEAD_DIM], strides=[H * HEAD_DIM, 1],
                                           block_shape=[BLOCK_M, HEAD_DIM])
    else:
        desc_o = tl.make_tensor_descriptor(O, shape=[B * H * SQ, HEAD_DIM], strides=[HEAD_DIM, 1],
                                           block_shape=[BLOCK_M, HEAD_DIM])
    if K_SEQ_MAJOR:
        desc_k = tl.make_tensor_descriptor(K, shape=[B * SKV, K_ROW_W], strides=[K_ROW_W, 1],
                                           block_shape=[BLOCK_N, HEAD_DIM])
    else:
        desc_k = tl.make_tensor_descriptor(K, shape=[B * KVH * SKV, HEAD_DIM], strides=[HEAD_DIM, 1],
                                           block_shape=[BLOCK_N, HEAD_DIM])
    if V_SEQ_MAJOR:
        desc_v = tl.make_tensor_descriptor(V, shape=[B * SKV, V_ROW_W], strides=[V_ROW_W, 1],
                                           block_shape=[BLOCK_N, HEAD_DIM])
    else:
        desc_v = tl.make_tensor_descriptor(V, shape=[B * KVH * SKV, HEAD_DIM], strides=[HEAD_DIM, 1],
                                           block_shape=[BLOCK_N, HEAD_DIM])
    # The masks are TMA tiles too: a pointer load in the loop makes Triton 3.6's warp
    # specialisation fail to compile.
    desc_mask = KPM
    if HAS_KPM:
        desc_mask = tl.make_tensor_descriptor(KPM, shape=[B, SKV], strides=[SKV, 1], block_shape=[1, BLOCK_N])
    if HAS_MASK:
        MASK_ROWS: tl.constexpr = (B * H * SQ if MASK_BATCHED == 2 else H * SQ if MASK_BATCHED == 3 else B * SQ) \
            if MASK_BATCHED else SQ
        desc_mask = tl.make_tensor_descriptor(KPM, shape=[MASK_ROWS, SKV], strides=[SKV, 1],
                                              block_shape=[BLOCK_M, BLOCK_N])

    if PERSISTENT:
        # One program per SM, query tiles in order (a head's tiles run side by side and share
        # its K/V in L2): the tensor maps are built once per program, and one tile's epilogue
        # overlaps the next tile's loads. The tile loop is the specialised one.
        M_TILES: tl.constexpr = SQ // BLOCK_M
        for tile in tl.range(tl.program_id(0), B * H * M_TILES, NUM_PROGS, warp_specialize=True):
            _attend_tile(desc_q, desc_k, desc_v, desc_o, desc_mask, tile % M_TILES, tile // M_TILES,
                         SM_SCALE_LOG2, H, KV_RATIO, SQ, SKV, HEAD_DIM, CAUSAL, BOTTOM_RIGHT, BLOCK_M, BLOCK_N,
                         O_SEQ_MAJOR, Q_SEQ_MAJOR, K_SEQ_MAJOR, V_SEQ_MAJOR, Q_COL0, K_COL0, V_COL0, HAS_KPM, HAS_MASK, MASK_BATCHED,
                         O.dtype.element_ty, False, EMPTY_ROWS_NAN)
    else:
        _attend_tile(desc_q, desc_k, desc_v, desc_o, desc_mask, tl.program_id(0), tl.program_id(1),
                     SM_SCALE_LOG2, H, KV_RATIO, SQ, SKV, HEAD_DIM, CAUSAL, BOTTOM_RIGHT, BLOCK_M, BLOCK_N,
                     O_SEQ_MAJOR, Q_SEQ_MAJOR, K_SEQ_MAJOR, V_SEQ_MAJOR, Q_COL0, K_COL0, V_COL0, HAS_KPM, HAS_MASK, MASK_BATCHED,
                     O.dtype.element_ty, True, EMPTY_ROWS_NAN)


@triton.jit
def _attend_tile(desc_q, desc_k, desc_v, desc_o, desc_mask, start_m, off_bh,
                 SM_SCALE_LOG2: tl.constexpr, H: tl.constexpr, KV_RATIO: tl.constexpr,
                 SQ: tl.constexpr, SKV: tl.constexpr, HEAD_DIM: tl.constexpr,
                 CAUSAL: tl.constexpr, BOTTOM_RIGHT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 O_SEQ_MAJOR: tl.constexpr, Q_SEQ_MAJOR: tl.constexpr, K_SEQ_MAJOR: tl.constexpr,
                 V_SEQ_MAJOR: tl.constexpr, Q_COL0: tl.constexpr, K_COL0: tl.constexpr, V_COL0: tl.constexpr,
                 HAS_KPM: tl.constexpr, HAS_MASK: tl.constexpr,
                 MASK_BATCHED: tl.constexpr, OUT_DTYPE: tl.constexpr, KEY_LOOP_WS: tl.constexpr,
                 EMPTY_ROWS_NAN: tl.constexpr):
    """Query tile start_m of (batch, head) off_bh: the online softmax over its key tiles.
    Longer than ~60 lines on purpose: one row/column offset per operand, then one loop kept
    whole, since Triton 3.6's warp specialisation of it breaks on what a split would add
    (see the comment above the loop)."""
    off_b = off_bh // H
    off_h = off_bh % H
    KVH: tl.constexpr = H // KV_RATIO
    off_kvh = off_h // KV_RATIO
    q_row = (off_b * SQ if Q_SEQ_MAJOR else off_bh * SQ) + start_m * BLOCK_M
    q_col = Q_COL0 + off_h * HEAD_DIM if Q_SEQ_MAJOR else 0
    o_row = (off_b * SQ if O_SEQ_MAJOR else off_bh * SQ) + start_m * BLOCK_M
    o_col = off_h * HEAD_DIM if O_SEQ_MAJOR else 0
    k_row = off_b * SKV if K_SEQ_MAJOR else (off_b * KVH + off_kvh) * SKV
    k_col = K_COL0 + off_kvh * HEAD_DIM if K_SEQ_MAJOR else 0
    v_row = off_b * SKV if V_SEQ_MAJOR else (off_b * KVH + off_kvh) * SKV
    v_col = V_COL0 + off_kvh * HEAD_DIM if V_SEQ_MAJOR else 0
    if HAS_MASK:
        mask_row = (mask_slab(off_b, off_h, off_bh, MASK_BATCHED) * SQ + start_m * BLOCK_M).to(tl.int32)
    MASKED: tl.constexpr = CAUSAL or HAS_KPM or HAS_MASK

    q = desc_q.load([q_row, q_col])
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    # Key tiles [0, hi): all of them, or up to the causal diagonal. One loop: Triton 3.6
    # cannot compile a second loop after a warp-specialised one, and a dot outside the loop
    # (the diagonal tile as a straight-line step, before or after it) turns specialisation
    # off (128 threads, 244-460 bytes of spills), and so does an `if` in the loop that masks
    # only the tiles the diagonal crosses (128 threads, 1292 bytes of spills at head dim 128,
    # ptxas 12.8, 2026-11-29). So with a causal mask every tile takes the mask, a compare
    # and a select per score: 0.81-0.87x of cuDNN where the pointer kernel
    # reaches 0.88-0.91x (tools/kernels/compare_kernels.py, H200), hence tuned off for causal.
    if CAUSAL:
        if BOTTOM_RIGHT:
            DIAG: tl.constexpr = SKV - SQ
        else:
            DIAG: tl.constexpr = 0
        hi = tl.minimum(tl.maximum((start_m + 1) * BLOCK_M + DIAG, 0), SKV)
    else:
        DIAG: tl.constexpr = 0
        hi = SKV
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)

    for start_n in tl.range(0, hi, BLOCK_N, warp_specialize=KEY_LOOP_WS):
        k = desc_k.load([k_row + start_n, k_col]).T
        qk = tl.dot(q, k)
        if MASKED:
            qk = qk * SM_SCALE_LOG2
            if HAS_KPM:  # (s * scale + mask) * log2(e), the kernel's base-2 scores
                qk = qk + desc_mask.load([off_b, start_n]).to(tl.float32) * 1.4426950408889634
            if HAS_MASK:
                qk = qk + desc_mask.load([mask_row, start_n]).to(tl.float32) * 1.4426950408889634
            if CAUSAL:
                qk = tl.where((start_n + offs_n)[None, :] <= offs_m[:, None] + DIAG, qk, float("-inf"))
            m_ij = tl.maximum(m_i, tl.max(qk, 1))
            # a row that has seen no key yet keeps m = -inf: subtract 0 then (no -inf - -inf)
            m_sub = tl.where(m_ij == float("-inf"), 0.0, m_ij)
            p = tl.math.exp2(qk - m_sub[:, None])
        else:
            m_ij = tl.maximum(m_i, tl.max(qk, 1) * SM_SCALE_LOG2)
            m_sub = m_ij
            p = tl.math.exp2(qk * SM_SCALE_LOG2 - m_sub[:, None])
        alpha = tl.math.exp2(m_i - m_sub)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        v = desc_v.load([v_row + start_n, v_col])
        acc = tl.dot(p.to(v.dtype), v, acc)
        m_i = m_ij

    # rows that see no key (bottom-right with Sq > Skv, a -inf mask) have l_i == 0: NaN (0/0,
    # the attention op's answer) or 0 (the op and _safe_softmax's guard)
    if EMPTY_ROWS_NAN:
        acc = acc / l_i[:, None]
    else:
        l_safe = tl.where(l_i == 0.0, 1.0, l_i)
        acc = acc / l_safe[:, None]
    desc_o.store([o_row, o_col], acc.to(OUT_DTYPE))


def covers(*, arch: int, head_dim: int, sq: int, skv: int, scale: float,
           block_m: int = 128, block_n: int = 128, kernel: str = "TMA kernel") -> str:
    """'' when this kernel computes the case, else why not (gluon_fa's kernel, tiled by TMA
    the same way, shares these rules: `kernel` names it)."""
    if arch != 90:
        return f"{kernel} is sm_90 only"
    if head_dim not in (64, 128):
        return f"head dim {head_dim}"
    if sq % block_m or skv % block_n:
        return f"Sq {sq} / Skv {skv} not multiples of the {block_m}x{block_n} tile"
    if scale <= 0:
        return "softmax scale <= 0"
    return ""


def grid(cfg: dict, batch: int, heads: int, sq: int) -> tuple:
    """The launch grid of this kernel and of triton_fa's: a program per query tile and
    (batch, head), or with PERSISTENT one per SM (at most one per tile)."""
    tiles = triton.cdiv(sq, cfg["BLOCK_M"])
    if cfg.get("PERSISTENT"):
        return (min(NUM_SMS, tiles * batch * heads), 1, 1)
    return (tiles, batch * heads, 1)


def compile_kernel(*, tdt: str, cfg: dict, opts: dict, arch: int, batch: int, heads: int, kv_heads: int, sq: int,
                   skv: int, head_dim: int, scale: float, causal: bool, bottom_right: bool,
                   out_seq_major: bool, in_seq_major: tuple, mask: str = "", mask_dtype: str = "",
                   mask_batched: int = 1, empty_rows: str = "zero"):
    """triton.compile of one static shape (cfg: BLOCK_M, BLOCK_N; opts: triton.compile's
    options, num_warps and num_stages among them); returns (CompiledKernel, consts).
    mask: "" (KPM is None), "key_padding" ((B, Skv)) or "full" ((B, Sq, Skv); (Sq, Skv) with
    mask_batched=0, (B, H, Sq, Skv) with 2, (H, Sq, Skv) with 3), of Triton type mask_dtype ("fp32", "fp16", "bf16"). empty_rows:
    "zero" or "nan", what a row that sees no key gets (see triton_fa.compile_kernel).
    arch: 90 (the only one covers() admits)."""
    consts = dict(
        SM_SCALE_LOG2=float(scale) * 1.4426950408889634,
        B=batch, H=heads, KV_RATIO=heads // kv_heads, SQ=sq, SKV=skv, HEAD_DIM=head_dim,
        CAUSAL=bool(causal), BOTTOM_RIGHT=bool(causal and bottom_right),
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], O_SEQ_MAJOR=bool(out_seq_major),
        **layout_consts(in_seq_major, heads, kv_heads, head_dim), HAS_KPM=mask == "key_padding", HAS_MASK=mask == "full", MASK_BATCHED=int(mask_batched),
        PERSISTENT=bool(cfg.get("PERSISTENT", False)),
        NUM_PROGS=grid(cfg, batch, heads, sq)[0] if cfg.get("PERSISTENT") else 1,
        EMPTY_ROWS_NAN=empty_rows == "nan")
    src = aot.attention_source(_fa_fwd_tma_kernel, tdt=tdt, consts=consts, mask=mask, mask_dtype=mask_dtype)
    opts = aot.tensor_map_options(opts)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts), consts
