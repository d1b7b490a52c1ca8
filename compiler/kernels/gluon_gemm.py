"""Hopper GEMM in Gluon: a TMA loader warp, two consumer warpgroups, a persistent grid (sm_90a
only). Two schedules, picked per config: the consumers share each C tile (half its rows each;
or three consumers a third each of a 192-row tile, CONSUMERS=3), or (PINGPONG) take whole C
tiles in turn, so one's epilogue runs under the other's products.
Tuned in per shape where it wins (compiler/tuning_db.json, from bench/gemm.py --gluon on an
H100: bench/results/gemm-h100.md): shared tiles on the large-N, large-K GEMMs (LLaMA d128's
1.06-1.20x the pointer / TMA configs, 0.93-0.99x cuBLAS), ping-pong where an epilogue is long
(BERT's up projection with GELU 1.13x) or the shape middling (BERT's fused Q/K/V 1.09x); both
lose where the grid is small (N 768 or 256: few C tiles for 132 SMs).

Same computation, epilogue and ABI as triton_gemm (read its doc first):
    C[M, N] = A[M, K] @ W^T (+ bias[N]) in f32, rounded once to C's type, then GELU,
    silu(G) * C or C + G (the residual) as torch rounds them;
    (A, W[, BIAS][, G], C, global_scratch, profile_scratch).

Why: on the H100 the models' linear layers took 665 us a LLaMA call on triton_gemm's kernels
against cuBLAS's 464 (bench/results/models-gpu-h100.md's profile); Triton 3.6's `tl.dot`
pipeline issues each wgmma and waits for it. Here the schedule is explicit:

  * Partitions (`gl.warp_specialize`, each given the problem as one `_Gemm`): a loader warp
    (24 registers) TMA-loads, for every C tile the program takes and every K step, each
    consumer's BLOCK_M / CONSUMERS rows of A and the tile's BLOCK_N rows of W into a
    STAGES-deep ring (one mbarrier per stage says "landed", one says "free": every consumer
    has read it); the ring runs on across C tiles, so the next tile's first loads go under
    this tile's epilogue.
  * Each consumer warpgroup (240 registers; 160 when three share a tile), per K step: wait for the stage, issue
    acc += A_rows @ W^T asynchronously, wait until at most this one is in flight (the previous
    step's is done), give the previous stage back. Then the epilogue: bias, rounding, GELU or
    SwiGLU (pointer loads), and the rows out through shared memory by TMA.
  * Persistent: min(tiles, 132) programs, program p taking C tiles p, p + 132, ... in
    GROUP_M-row groups (neighbouring programs share W tiles in L2).
  * Ping-pong (`_pingpong_consumer`): consumer c takes the program's tiles c, c + 2, ...; the
    ring holds their K steps in tile order (one A box a stage), so each consumer's products
    start as the other's end. Turn barriers keep that order: a consumer starts tile i once the
    other has waited for all of tile i - 1's steps, without which a parity wait could pass a
    slot two fills early (test_pingpong_consumers_take_turns models the protocol).

Covers (`covers` says why not): sm_90, A and W f16 or bf16 with rows of 16-byte multiples,
W as [N, K] (nn.Linear) or [K, N], C's rows of 16-byte multiples, every epilogue of triton_gemm.
"""

import triton
from triton.backends.compiler import GPUTarget
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier, tma, warpgroup_mma,
                                                             warpgroup_mma_wait)
from triton.language.core import _aggregate as aggregate

from flashlift.compiler.kernels import aot, triton_gemm
from flashlift.compiler.kernels.gluon_fa import next_slot
from flashlift.compiler.kernels.triton_fa_tma import NUM_SMS

SQRT1_2 = gl.constexpr(0.7071067811865476)


@aggregate
class _Gemm:
    """The GEMM as every partition sees it: its shape, tiling, schedule and epilogue
    (constexprs), the bias and gate pointers, and where C tile number t is (`coords`)."""
    M: gl.constexpr
    N: gl.constexpr
    TILES_M: gl.constexpr
    TILES_N: gl.constexpr
    K_STEPS: gl.constexpr
    GROUP_M: gl.constexpr
    NUM_PROGS: gl.constexpr
    CONSUMERS: gl.constexpr
    STAGES: gl.constexpr
    W_NK: gl.constexpr
    HAS_BIAS: gl.constexpr
    GELU: gl.constexpr
    SWIGLU: gl.constexpr
    RESIDUAL: gl.constexpr
    bias: gl.tensor
    gate: gl.tensor

    @gluon.constexpr_function
    def __init__(self, M, N, TILES_M, TILES_N, K_STEPS, GROUP_M, NUM_PROGS, CONSUMERS, STAGES, W_NK, HAS_BIAS, GELU,
                 SWIGLU, RESIDUAL, bias, gate):
        self.M, self.N, self.TILES_M, self.TILES_N = gl.constexpr(M), gl.constexpr(N), gl.constexpr(TILES_M), \
            gl.constexpr(TILES_N)
        self.K_STEPS, self.GROUP_M = gl.constexpr(K_STEPS), gl.constexpr(GROUP_M)
        self.NUM_PROGS = gl.constexpr(NUM_PROGS)
        self.CONSUMERS, self.STAGES, self.W_NK = gl.constexpr(CONSUMERS), gl.constexpr(STAGES), gl.constexpr(W_NK)
        self.HAS_BIAS, self.GELU, self.SWIGLU = gl.constexpr(HAS_BIAS), gl.constexpr(GELU), gl.constexpr(SWIGLU)
        self.RESIDUAL = gl.constexpr(RESIDUAL)
        self.bias, self.gate = bias, gate

    @gluon.jit
    def coords(self, tile):
        """C tile number `tile` as (tile row, tile column), GROUP_M tile rows at a time (the
        order of triton_gemm._tile_coords, which a Gluon kernel cannot call). Program p takes
        tiles p, p + NUM_PROGS, ..."""
        per_group = self.GROUP_M * self.TILES_N
        first_m = (tile // per_group) * self.GROUP_M
        group_rows = gl.minimum(self.TILES_M - first_m, self.GROUP_M)
        return first_m + (tile % per_group) % group_rows, (tile % per_group) // group_rows


@gluon.jit
def _loader(g, desc_a, desc_w, a_smem, w_smem, ready, free, A_BOXES: gl.constexpr):
    """One warp: for every K step of every C tile of this program, in tile order, the tile's
    rows of A (A_BOXES boxes: one per consumer sharing the tile, else one) and of W into the
    ring's next slot once its consumers have freed it."""
    CM: gl.constexpr = desc_a.block_type.shape[0]
    BLOCK_K: gl.constexpr = desc_a.block_type.shape[1]
    BLOCK_N: gl.constexpr = desc_w.block_type.shape[0] if g.W_NK else desc_w.block_type.shape[1]
    st = 0
    ph = 0
    for tile in range(gl.program_id(0), g.TILES_M * g.TILES_N, g.NUM_PROGS):
        pid_m, pid_n = g.coords(tile)
        for kk in range(g.K_STEPS):
            mbarrier.wait(free.index(st), ph ^ 1)   # (a fresh barrier passes phase 1)
            mbarrier.expect(ready.index(st), A_BOXES * desc_a.block_type.nbytes + desc_w.block_type.nbytes)
            for c in gl.static_range(A_BOXES):
                tma.async_copy_global_to_shared(desc_a, [(pid_m * A_BOXES + c) * CM, kk * BLOCK_K], ready.index(st),
                                                a_smem.index(st * A_BOXES + c))
            if g.W_NK:
                tma.async_copy_global_to_shared(desc_w, [pid_n * BLOCK_N, kk * BLOCK_K], ready.index(st),
                                                w_smem.index(st))
            else:
                tma.async_copy_global_to_shared(desc_w, [kk * BLOCK_K, pid_n * BLOCK_N], ready.index(st),
                                                w_smem.index(st))
            st, ph = next_slot(st, ph, g.STAGES)


@gluon.jit
def _epilogue(g, acc, out, desc_c, row0, col0):
    """The f32 tile `acc` of C at (row0, col0) with triton_gemm._round_and_activate's
    roundings, out by TMA through shared memory `out` (once its previous rows have left)."""
    CM: gl.constexpr = desc_c.block_type.shape[0]
    BLOCK_N: gl.constexpr = desc_c.block_type.shape[1]
    OUT: gl.constexpr = out.dtype
    rows = row0 + gl.arange(0, CM, layout=gl.SliceLayout(1, acc.type.layout))
    cols = col0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, acc.type.layout))
    if g.HAS_BIAS:
        acc += gl.load(g.bias + cols % g.N).to(gl.float32)[None, :]   # columns past N are never stored
    res = acc.to(OUT)
    if g.GELU:
        x = res.to(gl.float32)
        res = (0.5 * x * (1.0 + gl.erf(x * SQRT1_2))).to(OUT)
    if g.SWIGLU or g.RESIDUAL:
        inside = (rows[:, None] < g.M) & (cols[None, :] < g.N)
        gate = gl.load(g.gate + rows[:, None] * g.N + cols[None, :], mask=inside, other=0.0).to(gl.float32)
        if g.SWIGLU:
            silu = (gate * (1.0 / (1.0 + gl.exp(-gate)))).to(OUT).to(gl.float32)
            res = (silu * res.to(gl.float32)).to(OUT)
        else:   # the residual stream plus the rounded result, rounded
            res = (res.to(gl.float32) + gate).to(OUT)
    tma.store_wait(0)            # the last tile's rows have left `out`
    out.store(res)
    fence_async_shared()
    tma.async_copy_shared_to_global(desc_c, [row0, col0], out)


@gluon.jit
def _consumer(c, g, desc_c, a_smem, w_smem, c_smem, ready, free, turn, PINGPONG: gl.constexpr):
    """Consumer warpgroup c of g.CONSUMERS (two, or three sharing a tile), as the config's schedule has it."""
    if PINGPONG:
        _pingpong_consumer(c, g, desc_c, a_smem, w_smem, c_smem, ready, free, turn)
    else:
        _shared_tile_consumer(c, g, desc_c, a_smem, w_smem, c_smem, ready, free)


@gluon.jit
def _shared_tile_consumer(c, g, desc_c, a_smem, w_smem, c_smem, ready, free):
    """Consumer c: rows [c * CM, (c + 1) * CM) of each of the program's C tiles, K step by K
    step from the ring, then the epilogue and the rows out by TMA through c_smem[c]."""
    CM: gl.constexpr = desc_c.block_type.shape[0]
    BLOCK_N: gl.constexpr = desc_c.block_type.shape[1]
    STAGES: gl.constexpr = g.STAGES
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                         instr_shape=[16, BLOCK_N, 16])
    st = 0
    ph = 0
    for tile in range(gl.program_id(0), g.TILES_M * g.TILES_N, g.NUM_PROGS):
        pid_m, pid_n = g.coords(tile)
        acc = gl.zeros([CM, BLOCK_N], gl.float32, acc_layout)
        for kk in range(g.K_STEPS):
            # (the previous slot computed, not carried: a `prev = st` in this loop was not loop-carried)
            acc = _k_step(acc, a_smem.index(st * g.CONSUMERS + c), w_smem, ready, free, st, ph,
                          (st + STAGES - 1) % STAGES, kk, g.W_NK)
            st, ph = next_slot(st, ph, STAGES)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc, ))
        mbarrier.arrive(free.index((st + STAGES - 1) % STAGES), count=1)   # the last step's slot
        _epilogue(g, acc, c_smem.index(c), desc_c, (pid_m * g.CONSUMERS + c) * CM, pid_n * BLOCK_N)
    tma.store_wait(0)


@gluon.jit
def _k_step(acc, a, w_smem, ready, free, st, ph, prev, kk, W_NK: gl.constexpr):
    """One K step of a consumer: wait for ring slot st's fill (phase ph), start acc += a @ W
    on the tensor cores, and once the previous step's product is done (kk > 0) give its slot,
    `prev`, back to the loader. Returns the accumulator with this step's product in flight."""
    mbarrier.wait(ready.index(st), ph)
    if W_NK:
        w = w_smem.index(st).permute((1, 0))
    else:
        w = w_smem.index(st)
    acc = warpgroup_mma(a, w, acc, is_async=True)
    acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc, ))   # step kk - 1's product is done
    if kk > 0:
        mbarrier.arrive(free.index(prev), count=1)
    return acc


@gluon.jit
def _pingpong_consumer(c, g, desc_c, a_smem, w_smem, c_smem, ready, free, turn):
    """Consumer c of two taking whole C tiles in turn: the program's tiles c, c + 2, ...
    Their K steps sit in the ring in tile order, so this consumer's products start as the
    other's end and each one's epilogue runs under the other's products. A K step's ring
    slot and phase follow from its place in the program's sequence of steps (n).

    The turn barriers keep the products in tile order: consumer c starts tile i once the
    other has waited for all of tile i - 1's steps (turn[c] completed (i + c) // 2 times).
    Without them a consumer could wait on a slot two fills early, and a parity wait cannot
    tell fill n - 1 from fill n + 1: it would read a slot the loader had not filled yet."""
    BM: gl.constexpr = desc_c.block_type.shape[0]
    BLOCK_N: gl.constexpr = desc_c.block_type.shape[1]
    STAGES: gl.constexpr = g.STAGES
    K_STEPS: gl.constexpr = g.K_STEPS
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                         instr_shape=[16, BLOCK_N, 16])
    pid = gl.program_id(0)
    my_tiles = (g.TILES_M * g.TILES_N - pid + g.NUM_PROGS - 1) // g.NUM_PROGS
    for i in range(c, my_tiles, 2):
        pid_m, pid_n = g.coords(pid + i * g.NUM_PROGS)
        turns = (i + c) // 2   # the other consumer's tiles before tile i
        if turns > 0:
            mbarrier.wait(turn.index(c), (turns - 1) & 1)
        acc = gl.zeros([BM, BLOCK_N], gl.float32, acc_layout)
        for kk in range(K_STEPS):
            n = i * K_STEPS + kk
            acc = _k_step(acc, a_smem.index(n % STAGES), w_smem, ready, free, n % STAGES, (n // STAGES) & 1,
                          (n - 1) % STAGES, kk, g.W_NK)
        mbarrier.arrive(turn.index(1 - c), count=1)   # every step of tile i waited for: the other's turn
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc, ))
        mbarrier.arrive(free.index((i * K_STEPS + K_STEPS - 1) % STAGES), count=1)   # the last step's slot
        _epilogue(g, acc, c_smem.index(c), desc_c, pid_m * BM, pid_n * BLOCK_N)
    tma.store_wait(0)


@gluon.jit
def _gemm_gluon_kernel(A, W, BIAS, G, C,
                       M: gl.constexpr, N: gl.constexpr, K: gl.constexpr,
                       W_NK: gl.constexpr, HAS_BIAS: gl.constexpr, GELU: gl.constexpr, SWIGLU: gl.constexpr,
                       RESIDUAL: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_K: gl.constexpr,
                       GROUP_M: gl.constexpr, STAGES: gl.constexpr, NUM_PROGS: gl.constexpr, PINGPONG: gl.constexpr,
                       CONSUMERS: gl.constexpr, CONSUMER_REGS: gl.constexpr, LOADER_REGS: gl.constexpr):
    A_BOXES: gl.constexpr = 1 if PINGPONG else CONSUMERS   # consumers sharing a C tile's rows
    CM: gl.constexpr = BLOCK_M // A_BOXES
    dtype: gl.constexpr = A.dtype.element_ty
    out_dtype: gl.constexpr = C.dtype.element_ty
    a_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([CM, BLOCK_K], dtype)
    desc_a = tma.make_tensor_descriptor(A, shape=[M, K], strides=[K, 1], block_shape=[CM, BLOCK_K], layout=a_layout)
    if W_NK:
        w_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, BLOCK_K], dtype)
        desc_w = tma.make_tensor_descriptor(W, shape=[N, K], strides=[K, 1], block_shape=[BLOCK_N, BLOCK_K],
                                            layout=w_layout)
        w_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, BLOCK_K], w_layout)
    else:
        w_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_K, BLOCK_N], dtype)
        desc_w = tma.make_tensor_descriptor(W, shape=[K, N], strides=[N, 1], block_shape=[BLOCK_K, BLOCK_N],
                                            layout=w_layout)
        w_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_K, BLOCK_N], w_layout)
    c_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([CM, BLOCK_N], out_dtype)
    desc_c = tma.make_tensor_descriptor(C, shape=[M, N], strides=[N, 1], block_shape=[CM, BLOCK_N], layout=c_layout)
    a_smem = gl.allocate_shared_memory(dtype, [STAGES * A_BOXES, CM, BLOCK_K], a_layout)
    c_smem = gl.allocate_shared_memory(out_dtype, [CONSUMERS, CM, BLOCK_N], c_layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    free = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    turn = gl.allocate_shared_memory(gl.int64, [CONSUMERS, 1], mbarrier.MBarrierLayout())   # (ping-pong)
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(free.index(i), count=A_BOXES)   # a stage is free once every consumer of it read it
    for i in gl.static_range(CONSUMERS):
        mbarrier.init(turn.index(i), count=1)

    TILES_M: gl.constexpr = (M + BLOCK_M - 1) // BLOCK_M
    TILES_N: gl.constexpr = (N + BLOCK_N - 1) // BLOCK_N
    K_STEPS: gl.constexpr = (K + BLOCK_K - 1) // BLOCK_K   # (TMA zero-fills K past the edge)
    # (a partition argument cannot be None: A stands in for an absent bias, C for a gate / residual, unread)
    g = _Gemm(M, N, TILES_M, TILES_N, K_STEPS, GROUP_M, NUM_PROGS, CONSUMERS, STAGES, W_NK, HAS_BIAS, GELU, SWIGLU,
              RESIDUAL, BIAS if HAS_BIAS else A, G if SWIGLU or RESIDUAL else C)
    if CONSUMERS == 3:   # three 64-row slices of a 192-row tile
        gl.warp_specialize([
            (_consumer, (0, g, desc_c, a_smem, w_smem, c_smem, ready, free, turn, PINGPONG)),
            (_consumer, (1, g, desc_c, a_smem, w_smem, c_smem, ready, free, turn, PINGPONG)),
            (_consumer, (2, g, desc_c, a_smem, w_smem, c_smem, ready, free, turn, PINGPONG)),
            (_loader, (g, desc_a, desc_w, a_smem, w_smem, ready, free, A_BOXES)),
        ], [4, 4, 1], [CONSUMER_REGS, CONSUMER_REGS, LOADER_REGS])
    else:
        gl.warp_specialize([
            (_consumer, (0, g, desc_c, a_smem, w_smem, c_smem, ready, free, turn, PINGPONG)),
            (_consumer, (1, g, desc_c, a_smem, w_smem, c_smem, ready, free, turn, PINGPONG)),
            (_loader, (g, desc_a, desc_w, a_smem, w_smem, ready, free, A_BOXES)),
        ], [4, 1], [CONSUMER_REGS, LOADER_REGS])


def covers(spec, arch: int) -> str:
    """Why this kernel cannot take GemmSpec `spec` ("" when it can): the TMA kernel's
    conditions (sm_90, every tensor map's rows multiples of 16 bytes)."""
    return triton_gemm.tma_covers(spec, arch, "Gluon GEMM")


def grid(spec, cfg: dict) -> tuple:
    """min(C tiles, 132) programs."""
    tiles = triton.cdiv(spec.m, cfg["BLOCK_M"]) * triton.cdiv(spec.n, cfg["BLOCK_N"])
    return (min(tiles, NUM_SMS), 1, 1)


def constexprs(spec, cfg: dict) -> dict:
    """The kernel's constexpr arguments for GemmSpec `spec` and `cfg`, in signature order."""
    return dict(M=spec.m, N=spec.n, K=spec.k, W_NK=spec.w_nk, HAS_BIAS=spec.bias_dtype is not None,
                GELU=spec.gelu, SWIGLU=spec.swiglu, RESIDUAL=spec.residual, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
                BLOCK_K=cfg["BLOCK_K"], GROUP_M=cfg["GROUP_M"], STAGES=cfg["num_stages"],
                NUM_PROGS=grid(spec, cfg)[0], PINGPONG=bool(cfg.get("PINGPONG")), CONSUMERS=consumers(cfg),
                CONSUMER_REGS=cfg.get("CONSUMER_REGS", 240 if consumers(cfg) == 2 else 160),
                LOADER_REGS=cfg.get("LOADER_REGS", 24))


def consumers(cfg: dict) -> int:
    """The consumer warpgroups: two, or (CONSUMERS=3, shared tiles only) three, each taking a
    third of a 192-row tile: a tile shape whose boxes stay powers of two (Triton's tensor maps
    need them) for N 768 GEMMs, where 192 x 128 tiles make 132 (one per SM) of M 4096."""
    n = cfg.get("CONSUMERS", 2)
    shared = not cfg.get("PINGPONG")
    if n not in (2, 3) or (n == 3 and not shared) or (shared and cfg["BLOCK_M"] not in (64 * n, 128 * n)):
        raise ValueError(f"Gluon GEMM: {n} consumers with BLOCK_M {cfg['BLOCK_M']}"
                         f"{' and ping-pong' if cfg.get('PINGPONG') else ''} (sharing a tile, each takes 64 or 128 "
                         "rows; ping-pong has two)")
    return n


def compile_kernel(spec, cfg: dict, tdt: dict, opts: dict):
    """triton.compile of one GemmSpec with `cfg` (BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M,
    num_stages); tdt: Triton's name of each dtype. Returns the CompiledKernel; a spec `covers`
    rejects is a ValueError."""
    from triton.experimental.gluon._runtime import GluonASTSource

    why = covers(spec, 90)
    if why:
        raise ValueError(why)
    consts = constexprs(spec, cfg)
    sig = {"A": f"*{tdt[spec.dtype]}", "W": f"*{tdt[spec.dtype]}",
           "BIAS": f"*{tdt[spec.bias_dtype]}" if spec.bias_dtype else "constexpr",
           "G": f"*{tdt[spec.out_dtype]}" if spec.reads_g else "constexpr",
           "C": f"*{tdt[spec.out_dtype]}", **{k: "constexpr" for k in consts}}
    present = {"BIAS": spec.bias_dtype is not None, "G": spec.reads_g}
    values = {**consts, **{name: None for name, have in present.items() if not have}}
    ptrs = [i for i, name in enumerate(("A", "W", "BIAS", "G", "C")) if present.get(name, True)]
    attrs = {(i,): [["tt.divisibility", 16]] for i in ptrs}  # IREE bindings are 64-byte aligned
    src = GluonASTSource(fn=_gemm_gluon_kernel, signature=sig, constexprs=values, attrs=attrs)
    # the default partition's warps: consumer 0's four
    opts = {**{k: v for k, v in aot.tensor_map_options(opts).items() if k != "num_stages"}, "num_warps": 4}
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts)
