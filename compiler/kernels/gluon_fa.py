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


import triton
from triton.backends.compiler import GPUTarget
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.language.core import _aggregate as aggregate
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


@aggregate
class _Problem:
    """The attention problem as every partition sees it: its shapes and layouts (constexprs),
    the mask's pointer, and which query tiles this program takes (`tile(t)`: where tile t's
    operands are). With NUM_PROGS == TILES a program takes one tile; with fewer (persistent),
    program p takes tiles p, p + NUM_PROGS, ..."""
    B: gl.constexpr
    H: gl.constexpr
    KV_RATIO: gl.constexpr
    SQ: gl.constexpr
    SKV: gl.constexpr
    HEAD_DIM: gl.constexpr
    CAUSAL: gl.constexpr
    DIAG: gl.constexpr
    BLOCK_M: gl.constexpr
    BLOCK_N: gl.constexpr
    CONSUMERS: gl.constexpr
    O_SEQ_MAJOR: gl.constexpr
    Q_SEQ_MAJOR: gl.constexpr
    K_SEQ_MAJOR: gl.constexpr
    V_SEQ_MAJOR: gl.constexpr
    Q_COL0: gl.constexpr
    K_COL0: gl.constexpr
    V_COL0: gl.constexpr
    MASK: gl.constexpr
    MASK_BATCHED: gl.constexpr
    TILES: gl.constexpr
    NUM_PROGS: gl.constexpr
    mask_ptr: gl.tensor

    @gluon.constexpr_function
    def __init__(self, B, H, KV_RATIO, SQ, SKV, HEAD_DIM, CAUSAL, DIAG, BLOCK_M, BLOCK_N, CONSUMERS,
                 O_SEQ_MAJOR, Q_SEQ_MAJOR, K_SEQ_MAJOR, V_SEQ_MAJOR, Q_COL0, K_COL0, V_COL0, MASK, MASK_BATCHED,
                 TILES, NUM_PROGS, mask_ptr):
        self.B, self.H, self.KV_RATIO = gl.constexpr(B), gl.constexpr(H), gl.constexpr(KV_RATIO)
        self.SQ, self.SKV, self.HEAD_DIM = gl.constexpr(SQ), gl.constexpr(SKV), gl.constexpr(HEAD_DIM)
        self.CAUSAL, self.DIAG = gl.constexpr(CAUSAL), gl.constexpr(DIAG)
        self.BLOCK_M, self.BLOCK_N, self.CONSUMERS = gl.constexpr(BLOCK_M), gl.constexpr(BLOCK_N), gl.constexpr(CONSUMERS)
        self.O_SEQ_MAJOR, self.Q_SEQ_MAJOR = gl.constexpr(O_SEQ_MAJOR), gl.constexpr(Q_SEQ_MAJOR)
        self.K_SEQ_MAJOR, self.V_SEQ_MAJOR = gl.constexpr(K_SEQ_MAJOR), gl.constexpr(V_SEQ_MAJOR)
        self.Q_COL0, self.K_COL0, self.V_COL0 = gl.constexpr(Q_COL0), gl.constexpr(K_COL0), gl.constexpr(V_COL0)
        self.MASK, self.MASK_BATCHED = gl.constexpr(MASK), gl.constexpr(MASK_BATCHED)
        self.TILES, self.NUM_PROGS = gl.constexpr(TILES), gl.constexpr(NUM_PROGS)
        self.mask_ptr = mask_ptr

    @gluon.jit
    def tile(self, t):
        """Query tile t: (row0, its first query row; n_tiles, its key tiles, the first n_full of
        them wholly below a causal diagonal; the row and column of its Q, K, V and O tiles in
        their 2-D views; its batch entry's mask). Causal tiles go longest first over every
        head; otherwise a head's query tiles are neighbours (they share its K/V in L2)."""
        M_TILES: gl.constexpr = self.SQ // self.BLOCK_M
        KVH: gl.constexpr = self.H // self.KV_RATIO
        if self.CAUSAL:
            start_m = M_TILES - 1 - t // (self.B * self.H)
            off_bh = t % (self.B * self.H)
        else:
            start_m = t % M_TILES
            off_bh = t // M_TILES
        off_b = off_bh // self.H
        off_h = off_bh % self.H
        off_kvh = off_h // self.KV_RATIO
        row0 = start_m * self.BLOCK_M
        if self.CAUSAL:
            n_tiles = gl.minimum((row0 + self.BLOCK_M + self.DIAG + self.BLOCK_N - 1) // self.BLOCK_N,
                                 self.SKV // self.BLOCK_N)
            n_full = (row0 + self.DIAG + 1) // self.BLOCK_N
        else:
            n_tiles = self.SKV // self.BLOCK_N
            n_full = n_tiles
        q_row = (off_b * self.SQ if self.Q_SEQ_MAJOR else off_bh * self.SQ) + row0
        q_col = self.Q_COL0 + off_h * self.HEAD_DIM if self.Q_SEQ_MAJOR else 0
        k_row = off_b * self.SKV if self.K_SEQ_MAJOR else (off_b * KVH + off_kvh) * self.SKV
        k_col = self.K_COL0 + off_kvh * self.HEAD_DIM if self.K_SEQ_MAJOR else 0
        v_row = off_b * self.SKV if self.V_SEQ_MAJOR else (off_b * KVH + off_kvh) * self.SKV
        v_col = self.V_COL0 + off_kvh * self.HEAD_DIM if self.V_SEQ_MAJOR else 0
        o_row = (off_b * self.SQ if self.O_SEQ_MAJOR else off_bh * self.SQ) + row0
        o_col = off_h * self.HEAD_DIM if self.O_SEQ_MAJOR else 0
        if self.MASK == "key_padding":
            mask_base = self.mask_ptr + off_b * self.SKV
        elif self.MASK == "full":
            # MASK_BATCHED: 0 one mask, 1 one per entry, 2 one per entry and head, 3 one per head
            rows = off_bh if self.MASK_BATCHED == 2 else off_h if self.MASK_BATCHED == 3 else off_b
            mask_base = self.mask_ptr + (rows.to(gl.int64) * (self.SQ * self.SKV) if self.MASK_BATCHED else 0)
        else:
            mask_base = self.mask_ptr
        return row0, n_tiles, n_full, q_row, q_col, k_row, k_col, v_row, v_col, o_row, o_col, mask_base


@gluon.jit
def _load_partition(p, desc_q, desc_k, desc_v, q_smem, k_smem, v_smem, q_bar, q_empty, k_ready, v_ready, kv_empty,
                    STAGES: gl.constexpr):
    """One warp: for each of the program's query tiles, each consumer's query rows once that
    consumer has stored its last output through the buffer, then key/value tile number `it`
    (the ring's slots taken in turn over all the program's tiles) into its slot once every consumer has
    given that stage back."""
    CM: gl.constexpr = desc_q.block_type.shape[0]
    st = 0   # the ring slot of the next key/value tile, and its phase
    ph = 0
    i = 0
    for t in range(gl.program_id(0), p.TILES, p.NUM_PROGS):
        row0, n_tiles, n_full, q_row, q_col, k_row, k_col, v_row, v_col, o_row, o_col, mask_base = p.tile(t)
        for c in gl.static_range(p.CONSUMERS):
            mbarrier.wait(q_empty.index(c), (i & 1) ^ 1)   # (a fresh barrier passes phase 1)
            mbarrier.expect(q_bar.index(c), desc_q.block_type.nbytes)
            tma.async_copy_global_to_shared(desc_q, [q_row + c * CM, q_col], q_bar.index(c), q_smem.index(c))
        for j in range(n_tiles):
            mbarrier.wait(kv_empty.index(st), ph ^ 1)
            mbarrier.expect(k_ready.index(st), desc_k.block_type.nbytes)
            tma.async_copy_global_to_shared(desc_k, [k_row + j * p.BLOCK_N, k_col], k_ready.index(st), k_smem.index(st))
            mbarrier.expect(v_ready.index(st), desc_v.block_type.nbytes)
            tma.async_copy_global_to_shared(desc_v, [v_row + j * p.BLOCK_N, v_col], v_ready.index(st), v_smem.index(st))
            st, ph = next_slot(st, ph, STAGES)
        i += 1


@gluon.jit
def next_slot(st, ph, STAGES: gl.constexpr):
    """The ring slot after `st` and its phase (which flips when the ring wraps)."""
    st = st + 1
    if st == STAGES:
        st = 0
        ph = ph ^ 1
    return st, ph


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
def _consumer(c, p, desc_o, q_smem, k_smem, v_smem, q_bar, q_empty, k_ready, v_ready, kv_empty,
              SM_SCALE_LOG2: gl.constexpr, EMPTY_ROWS_NAN: gl.constexpr, STAGES: gl.constexpr,
              WARPS: gl.constexpr):
    """Consumer c, for each of the program's query tiles: the online softmax of its CM query
    rows over the tile's key tiles (the ring's next slots), then its output rows,
    normalised, out through its query buffer by TMA, which it then gives back to the loader."""
    CM: gl.constexpr = desc_o.block_type.shape[0]
    BLOCK_N: gl.constexpr = p.BLOCK_N
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[WARPS, 1],
                                                       instr_shape=[16, BLOCK_N, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[WARPS, 1],
                                                       instr_shape=[16, p.HEAD_DIM, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    row_s: gl.constexpr = gl.SliceLayout(1, s_layout)
    row_o: gl.constexpr = gl.SliceLayout(1, o_layout)
    dtype: gl.constexpr = q_smem.dtype
    q = q_smem.index(c)
    st = 0   # the ring slot of the tile's first key/value tile, and its phase
    ph = 0
    i = 0
    for t in range(gl.program_id(0), p.TILES, p.NUM_PROGS):
        row0, n_tiles, n_full, q_row, q_col, k_row, k_col, v_row, v_col, o_row, o_col, mask_base = p.tile(t)
        row0 = row0 + c * CM
        mbarrier.wait(q_bar.index(c), i & 1)
        # key tile 0: scores, row max, first probabilities
        mbarrier.wait(k_ready.index(st), ph)
        s = warpgroup_mma(q, k_smem.index(st).permute((1, 0)), gl.zeros([CM, BLOCK_N], gl.float32, s_layout),
                          use_acc=False)
        bias = _mask_tile(mask_base, 0, row0, p.MASK, p.SKV, CM, BLOCK_N, s_layout)
        prob, m_i, l_i, alpha = _softmax_tile(s, bias, 0, gl.full([CM], float("-inf"), gl.float32, row_s),
                                              gl.zeros([CM], gl.float32, row_s), n_full, row0,
                                              SM_SCALE_LOG2, p.DIAG, p.CAUSAL, p.MASK, BLOCK_N, s_layout)
        o = gl.zeros([CM, p.HEAD_DIM], gl.float32, o_layout)
        prev, prev_ph = st, ph

        for j in range(1, n_tiles):
            st, ph = next_slot(prev, prev_ph, STAGES)
            mbarrier.wait(k_ready.index(st), ph)
            s = warpgroup_mma(q, k_smem.index(st).permute((1, 0)), gl.zeros([CM, BLOCK_N], gl.float32, s_layout),
                              use_acc=False, is_async=True)
            mbarrier.wait(v_ready.index(prev), prev_ph)
            o = warpgroup_mma(gl.convert_layout(prob.to(dtype), p_layout), v_smem.index(prev), o, is_async=True)
            bias = _mask_tile(mask_base, j, row0, p.MASK, p.SKV, CM, BLOCK_N, s_layout)   # (loads under the products)
            s = warpgroup_mma_wait(num_outstanding=1, deps=(s, ))     # q @ k_j done; p_{j-1} @ v_{j-1} runs on
            prob, m_i, l_i, alpha = _softmax_tile(s, bias, j, m_i, l_i, n_full, row0,
                                                  SM_SCALE_LOG2, p.DIAG, p.CAUSAL, p.MASK, BLOCK_N, s_layout)
            o = warpgroup_mma_wait(num_outstanding=0, deps=(o, ))
            mbarrier.arrive(kv_empty.index(prev), count=1)
            o = o * gl.convert_layout(alpha, row_o)[:, None]
            prev, prev_ph = st, ph

        mbarrier.wait(v_ready.index(prev), prev_ph)
        o = warpgroup_mma(gl.convert_layout(prob.to(dtype), p_layout), v_smem.index(prev), o)
        mbarrier.arrive(kv_empty.index(prev), count=1)
        st, ph = next_slot(prev, prev_ph, STAGES)

        # A row that saw no key (only with a mask) has l = 0: NaN (0/0, the attention op's answer)
        # or 0 (_safe_softmax's guard), as in triton_fa_tma.
        l_o = gl.convert_layout(l_i, row_o)
        if p.MASK != "":
            if not EMPTY_ROWS_NAN:
                l_o = gl.where(l_o == 0.0, 1.0, l_o)
        o = o / l_o[:, None]
        q.store(o.to(dtype))
        fence_async_shared()
        tma.async_copy_shared_to_global(desc_o, [o_row + c * CM, o_col], q)
        tma.store_wait(0)
        mbarrier.arrive(q_empty.index(c), count=1)   # the loader may bring the next tile's rows
        i += 1


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
    NUM_PROGS: gl.constexpr,       # the grid: every query tile (a program each), or fewer (persistent)
    LOADER_REGS: gl.constexpr,     # registers per thread of the loader warp
):
    KVH: gl.constexpr = H // KV_RATIO
    CM: gl.constexpr = BLOCK_M // CONSUMERS
    WARPS: gl.constexpr = 8 // CONSUMERS
    if CAUSAL:
        DIAG: gl.constexpr = SKV - SQ if BOTTOM_RIGHT else 0
    else:
        DIAG: gl.constexpr = 0
    # this program's tiles; the mask's pointer (a partition argument cannot be None: Q stands in, unread)
    prob = _Problem(B, H, KV_RATIO, SQ, SKV, HEAD_DIM, CAUSAL, DIAG, BLOCK_M, BLOCK_N, CONSUMERS,
                    O_SEQ_MAJOR, Q_SEQ_MAJOR, K_SEQ_MAJOR, V_SEQ_MAJOR, Q_COL0, K_COL0, V_COL0, MASK, MASK_BATCHED,
                    (SQ // BLOCK_M) * B * H, NUM_PROGS, KPM if MASK != "" else Q)

    desc_q = _operand_desc(Q, Q_SEQ_MAJOR, B * SQ, Q_ROW_W if Q_SEQ_MAJOR else H * HEAD_DIM, CM, HEAD_DIM)
    desc_k = _operand_desc(K, K_SEQ_MAJOR, B * SKV, K_ROW_W if K_SEQ_MAJOR else KVH * HEAD_DIM, BLOCK_N, HEAD_DIM)
    desc_v = _operand_desc(V, V_SEQ_MAJOR, B * SKV, V_ROW_W if V_SEQ_MAJOR else KVH * HEAD_DIM, BLOCK_N, HEAD_DIM)
    desc_o = _operand_desc(O, O_SEQ_MAJOR, B * SQ, H * HEAD_DIM, CM, HEAD_DIM)

    dtype: gl.constexpr = Q.dtype.element_ty
    q_smem = gl.allocate_shared_memory(dtype, [CONSUMERS, CM, HEAD_DIM], desc_q.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], desc_k.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], desc_v.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [CONSUMERS, 1], mbarrier.MBarrierLayout())
    q_empty = gl.allocate_shared_memory(gl.int64, [CONSUMERS, 1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    kv_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(CONSUMERS):
        mbarrier.init(q_bar.index(i), count=1)
        mbarrier.init(q_empty.index(i), count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(k_ready.index(i), count=1)
        mbarrier.init(v_ready.index(i), count=1)
        mbarrier.init(kv_empty.index(i), count=CONSUMERS)   # a stage is free once every consumer is done

    if CONSUMERS == 1:
        gl.warp_specialize([
            (_consumer, (0, prob, desc_o, q_smem, k_smem, v_smem, q_bar, q_empty, k_ready, v_ready, kv_empty,
                         SM_SCALE_LOG2, EMPTY_ROWS_NAN, STAGES, WARPS)),
            (_load_partition, (prob, desc_q, desc_k, desc_v, q_smem, k_smem, v_smem, q_bar, q_empty, k_ready,
                               v_ready, kv_empty, STAGES)),
        ], [1], [LOADER_REGS])
    else:
        gl.warp_specialize([
            (_consumer, (0, prob, desc_o, q_smem, k_smem, v_smem, q_bar, q_empty, k_ready, v_ready, kv_empty,
                         SM_SCALE_LOG2, EMPTY_ROWS_NAN, STAGES, WARPS)),
            (_consumer, (1, prob, desc_o, q_smem, k_smem, v_smem, q_bar, q_empty, k_ready, v_ready, kv_empty,
                         SM_SCALE_LOG2, EMPTY_ROWS_NAN, STAGES, WARPS)),
            (_load_partition, (prob, desc_q, desc_k, desc_v, q_smem, k_smem, v_smem, q_bar, q_empty, k_ready,
                               v_ready, kv_empty, STAGES)),
        ], [4, 1], [CONSUMER_REGS, LOADER_REGS])

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
    """A program per query tile of every (batch, head), or with PERSISTENT one per SM at most,
    each looping over its tiles (the tensor maps built once, the next tile's loads under the
    last one's epilogue)."""
    tiles = triton.cdiv(sq, cfg["BLOCK_M"]) * batch * heads
    return (min(tiles, triton_fa_tma.NUM_SMS) if cfg.get("PERSISTENT") else tiles, 1, 1)


def compile_kernel(*, tdt: str, cfg: dict, opts: dict, arch: int, batch: int, heads: int, kv_heads: int, sq: int,
                   skv: int, head_dim: int, scale: float, causal: bool, bottom_right: bool,
                   out_seq_major: bool, in_seq_major: tuple, mask: str = "", mask_dtype: str = "",
                   mask_batched: int = 1, empty_rows: str = "zero"):
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
        MASK=mask, MASK_BATCHED=int(mask_batched), EMPTY_ROWS_NAN=empty_rows == "nan",
        NUM_PROGS=grid(cfg, batch, heads, sq)[0], LOADER_REGS=cfg.get("LOADER_REGS", 24))
    from triton.experimental.gluon._runtime import GluonASTSource
    src = aot.attention_source(_fa_fwd_gluon_kernel, tdt=tdt, consts=consts, mask=mask, mask_dtype=mask_dtype,
                               source=GluonASTSource)
    # the default partition's warps: all eight consumer warps, or consumer 0's four
    opts = {**{k: v for k, v in aot.tensor_map_options(opts).items() if k != "num_stages"},
            "num_warps": 8 // consts["CONSUMERS"]}
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts), consts
