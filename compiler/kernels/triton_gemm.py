"""Triton GEMM kernel for a model's linear layers, AOT-compiled to PTX/cubin for IREE.

    C[M, N] = A[M, K] @ W^T (+ bias[N]), accumulated in f32, rounded once to C's type;
    optionally C = gelu(C) (erf form, GELU=True: the activation a model applies to the rounded
    result, evaluated in f32 and rounded again, as torch evaluates an f16 GELU), or, as the up
    projection of LLaMA's MLP (`silu(gate(x)) * up(x)`, SWIGLU=True), C = silu(G) * C with G
    the gate projection's result [M, N] in C's type: silu(g) = g * (1 / (1 + e^-g)) in f32,
    rounded, times C, rounded (torch's roundings in f16/bf16), so that the gate and up results
    are not read again by a separate elementwise pass; or, as a projection whose rounded
    result the model adds to the residual stream (LLaMA's o_proj and down_proj, RESIDUAL=True),
    C = C + G rounded, G the residual [M, N] in C's type (the sum is what the next layer reads).

W is the weight as nn.Linear stores it, [N, K] (W_NK=True), or [K, N] (W_NK=False, `x @ w`).
A, W: f16 or bf16 (the same); bias: f16, bf16 or f32, added to the f32 accumulator (what
torch-mlir's lowering of an f16 `nn.Linear` computes: extend, matmul, add, truncate);
C: f16, bf16 or f32.

Only needed at build time (imports triton). Every shape is a compile-time constant, so the
PTX entry takes pointers only, in this order (verified against the PTX by `aot.binary`):

    (A, W[, BIAS][, G], C, global_scratch, profile_scratch)

grid = (ceil(M / BLOCK_M) * ceil(N / BLOCK_N), 1, 1): program p computes one C tile; tiles
are visited in groups of GROUP_M tile rows so that neighbouring programs share W tiles in L2.
block = (num_warps * 32, 1, 1). Ragged edges (M, N or K not a multiple of the tile) are
masked. On sm_90 Triton lowers `tl.dot` to wgmma with a num_stages-deep cp.async pipeline.

The Hopper variant (`_gemm_tma_kernel`, configs with TMA=True; sm_90, rows of 16-byte
multiples) loads and stores every tile with TMA on a persistent grid of min(tiles, 132)
programs; same ABI, but global_scratch is real: each program writes its tensor maps there
(aot.KernelBinary.scratch_per_cta bytes each), so the dispatch binds a module global.

Configs: `tuned_configs`: the tuning database's entry for the shape, then the table measured
on an H200 (bench/results/gemm-h200.md) by arch and shape class; `build_gemm(config=...)`
overrides them.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from typing import Optional

import triton
import triton.language as tl

from flashlift.compiler import tuning
from flashlift.compiler.kernels import aot
from flashlift.compiler.kernels.gemm_spec import IN_DTYPES, OUT_DTYPES, GemmSpec  # noqa: F401 (theirs, re-exported)
from flashlift.compiler.kernels.triton_fa_tma import NUM_SMS


@triton.jit
def _tile_coords(tile, tiles_m, tiles_n, GROUP_M: tl.constexpr):
    """C tile number `tile` as (tile row, tile column), visiting GROUP_M tile rows at a time so
    that neighbouring tiles share W tiles in L2."""
    per_group = GROUP_M * tiles_n
    first_m = (tile // per_group) * GROUP_M
    group_rows = min(tiles_m - first_m, GROUP_M)
    return first_m + (tile % per_group) % group_rows, (tile % per_group) // group_rows


@triton.jit
def _round_and_activate(acc, g, OUT: tl.constexpr, GELU: tl.constexpr, SWIGLU: tl.constexpr,
                        RESIDUAL: tl.constexpr):
    """The f32 accumulator (bias added) rounded once to OUT, then the GELU, SwiGLU or residual
    epilogue, each op rounded as torch rounds it in f16/bf16. g: the gate (SWIGLU) or the
    residual tile (RESIDUAL) in f32."""
    c = acc.to(OUT)
    if GELU:  # the model's GELU (erf form) of the rounded result, computed in f32, rounded again
        x = c.to(tl.float32)
        c = (0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))).to(OUT)
    if SWIGLU:  # silu(gate), rounded, times this (up) result, rounded
        silu = (g * (1.0 / (1.0 + tl.exp(-g)))).to(OUT).to(tl.float32)
        c = (silu * c.to(tl.float32)).to(OUT)
    if RESIDUAL:  # the residual stream plus this rounded result, rounded
        c = (c.to(tl.float32) + g).to(OUT)
    return c


@triton.jit
def _gemm_kernel(A, W, BIAS, G, C,
                 M: tl.constexpr, N: tl.constexpr, K: tl.constexpr,
                 W_NK: tl.constexpr, HAS_BIAS: tl.constexpr, GELU: tl.constexpr, SWIGLU: tl.constexpr,
                 RESIDUAL: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 GROUP_M: tl.constexpr):
    pid_m, pid_n = _tile_coords(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    # rows/columns past the edge read a valid row (row % M) and are never stored
    rows = tl.max_contiguous(tl.multiple_of(offs_m % M, BLOCK_M), BLOCK_M)
    cols = tl.max_contiguous(tl.multiple_of(offs_n % N, BLOCK_N), BLOCK_N)
    a_ptrs = A + rows[:, None] * K + offs_k[None, :]
    if W_NK:
        w_ptrs = W + cols[None, :] * K + offs_k[:, None]
        w_step = BLOCK_K
    else:
        w_ptrs = W + offs_k[:, None] * N + cols[None, :]
        w_step = BLOCK_K * N

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kk in range(0, tl.cdiv(K, BLOCK_K)):
        if K % BLOCK_K == 0:
            a = tl.load(a_ptrs)
            w = tl.load(w_ptrs)
        else:
            k_left = K - kk * BLOCK_K
            a = tl.load(a_ptrs, mask=offs_k[None, :] < k_left, other=0.0)
            w = tl.load(w_ptrs, mask=offs_k[:, None] < k_left, other=0.0)
        acc = tl.dot(a, w, acc)
        a_ptrs += BLOCK_K
        w_ptrs += w_step

    if HAS_BIAS:
        acc += tl.load(BIAS + cols).to(tl.float32)[None, :]
    tile = offs_m[:, None] * N + offs_n[None, :]
    even = (M % BLOCK_M == 0) and (N % BLOCK_N == 0)
    inside = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    g = acc
    if SWIGLU or RESIDUAL:
        if even:
            g = tl.load(G + tile).to(tl.float32)
        else:
            g = tl.load(G + tile, mask=inside, other=0.0).to(tl.float32)
    c = _round_and_activate(acc, g, C.dtype.element_ty, GELU, SWIGLU, RESIDUAL)
    if even:
        tl.store(C + tile, c)
    else:
        tl.store(C + tile, c, mask=inside)


@triton.jit
def _gemm_tma_kernel(A, W, BIAS, G, C,
                     M: tl.constexpr, N: tl.constexpr, K: tl.constexpr,
                     W_NK: tl.constexpr, HAS_BIAS: tl.constexpr, GELU: tl.constexpr, SWIGLU: tl.constexpr,
                     RESIDUAL: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                     GROUP_M: tl.constexpr, NUM_PROGS: tl.constexpr,
                     WARP_SPECIALIZE: tl.constexpr, FLATTEN: tl.constexpr):
    """Hopper: the same GEMM and epilogue with TMA loads and stores, on a persistent grid of
    NUM_PROGS programs that each walk C tiles NUM_PROGS apart (the tensor maps are built once
    per program). TMA zero-fills reads past an edge (ragged K needs no mask) and clips stores."""
    OUT: tl.constexpr = C.dtype.element_ty
    desc_a = tl.make_tensor_descriptor(A, shape=[M, K], strides=[K, 1], block_shape=[BLOCK_M, BLOCK_K])
    if W_NK:
        desc_w = tl.make_tensor_descriptor(W, shape=[N, K], strides=[K, 1], block_shape=[BLOCK_N, BLOCK_K])
    else:
        desc_w = tl.make_tensor_descriptor(W, shape=[K, N], strides=[N, 1], block_shape=[BLOCK_K, BLOCK_N])
    desc_c = tl.make_tensor_descriptor(C, shape=[M, N], strides=[N, 1], block_shape=[BLOCK_M, BLOCK_N])
    if SWIGLU or RESIDUAL:
        desc_g = tl.make_tensor_descriptor(G, shape=[M, N], strides=[N, 1], block_shape=[BLOCK_M, BLOCK_N])
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    for tile in tl.range(tl.program_id(0), tiles_m * tiles_n, NUM_PROGS,
                         flatten=FLATTEN, warp_specialize=WARP_SPECIALIZE):
        pid_m, pid_n = _tile_coords(tile, tiles_m, tiles_n, GROUP_M)
        off_m = pid_m * BLOCK_M
        off_n = pid_n * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for kk in range(0, tl.cdiv(K, BLOCK_K)):
            a = desc_a.load([off_m, kk * BLOCK_K])
            if W_NK:
                w = desc_w.load([off_n, kk * BLOCK_K]).T
            else:
                w = desc_w.load([kk * BLOCK_K, off_n])
            acc = tl.dot(a, w, acc)
        if HAS_BIAS:
            cols = (off_n + tl.arange(0, BLOCK_N)) % N  # columns past the edge are never stored
            acc += tl.load(BIAS + cols).to(tl.float32)[None, :]
        g = acc
        if SWIGLU or RESIDUAL:
            g = desc_g.load([off_m, off_n]).to(tl.float32)
        desc_c.store([off_m, off_n], _round_and_activate(acc, g, OUT, GELU, SWIGLU, RESIDUAL))


_TL = {"f16": "fp16", "bf16": "bf16", "f32": "fp32"}
# Tile candidates (BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages); the tuner
# (bench/gemm.py) times each on the GPU. The first is the fallback before tuning.
CANDIDATES = [
    dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
    dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
    dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=4),
    dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=4),
    dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=4),
    dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=5),
    dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=4),
    dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=4),
]
# The Hopper TMA kernel's (TMA=True): the same tiles plus its persistent loop's flattening
# (the K loop of one tile and the next tile's as one pipelined loop) and warp specialisation
# (a producer warp issuing the TMA loads).
_TMA = dict(TMA=True, GROUP_M=8, BLOCK_K=64)
TMA_CANDIDATES = [
    dict(_TMA, BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=3, FLATTEN=True, WARP_SPECIALIZE=False),
    dict(_TMA, BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=4, FLATTEN=False, WARP_SPECIALIZE=False),
    dict(_TMA, BLOCK_M=128, BLOCK_N=256, num_warps=8, num_stages=3, FLATTEN=True, WARP_SPECIALIZE=False),
    dict(_TMA, BLOCK_M=128, BLOCK_N=128, num_warps=4, num_stages=4, FLATTEN=True, WARP_SPECIALIZE=False),
    dict(_TMA, BLOCK_M=64, BLOCK_N=128, num_warps=4, num_stages=4, FLATTEN=True, WARP_SPECIALIZE=False),
    dict(_TMA, BLOCK_M=128, BLOCK_N=128, num_warps=4, num_stages=3, FLATTEN=False, WARP_SPECIALIZE=True),
    dict(_TMA, BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=3, FLATTEN=False, WARP_SPECIALIZE=True),
    dict(_TMA, BLOCK_M=128, BLOCK_N=256, num_warps=8, num_stages=3, FLATTEN=False, WARP_SPECIALIZE=True),
    dict(_TMA, BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=3, FLATTEN=True, WARP_SPECIALIZE=True),
]


# gluon_gemm's kernel (GLUON=True): a loader warp and two consumer warpgroups, persistent; the
# consumers share each C tile (BLOCK_M / 2 rows each) or, PINGPONG, take whole tiles in turn
# (one's epilogue under the other's products). Tuned in per shape (bench/gemm.py --gluon).
_GLUON = dict(GLUON=True, GROUP_M=8, BLOCK_K=64, num_warps=4)
# the knobs that pick the kernel and its schedule: a config that leaves one out means False
_KERNEL_KNOBS = ("TMA", "FLATTEN", "WARP_SPECIALIZE", "GLUON", "PINGPONG")
# the Gluon kernel's knobs with defaults of their own (gluon_gemm.constexprs): a config given
# without one gets its default, not the shape's tuned value
_GLUON_KNOBS = ("CONSUMERS", "CONSUMER_REGS", "LOADER_REGS")
GLUON_CANDIDATES = [
    dict(_GLUON, BLOCK_M=128, BLOCK_N=256, num_stages=3),
    dict(_GLUON, BLOCK_M=128, BLOCK_N=128, num_stages=4),
    dict(_GLUON, BLOCK_M=128, BLOCK_N=128, num_stages=3),
    dict(_GLUON, BLOCK_M=128, BLOCK_N=128, num_stages=5),
    dict(_GLUON, BLOCK_M=256, BLOCK_N=128, num_stages=3),
    dict(_GLUON, BLOCK_M=128, BLOCK_N=128, num_stages=4, PINGPONG=True),
    dict(_GLUON, BLOCK_M=128, BLOCK_N=128, num_stages=5, PINGPONG=True),
    dict(_GLUON, BLOCK_M=128, BLOCK_N=64, num_stages=6, PINGPONG=True),
    dict(_GLUON, BLOCK_M=192, BLOCK_N=128, num_stages=4, CONSUMERS=3),   # N 768: 132 tiles of M 4096
]


def tma_covers(spec: GemmSpec, arch: int, kernel: str = "TMA kernel") -> str:
    """Why the TMA kernel (or another `kernel` reading through tensor maps) cannot take
    `spec` ("" when it can): sm_90 only, and every tensor map's row stride a multiple of 16 bytes."""
    if arch != 90:
        return f"{kernel}: sm_90 only (sm_{arch})"
    out_bytes = {"f16": 2, "bf16": 2, "f32": 4}[spec.out_dtype]
    if spec.k % 8 or (not spec.w_nk and spec.n % 8) or (spec.n * out_bytes) % 16:
        return f"{kernel}: rows of {spec.m}x{spec.n}x{spec.k} not multiples of 16 bytes"
    return ""


# Measured winners on an NVIDIA H200 (bench/gemm.py, bench/results/gemm-h200.md): the config
# with the least total time over BERT's and LLaMA's linear layers of each class; within 3% of
# each shape's own best except BERT's 768x768 projections (128x256 tiles: 15.8 vs 16.2 us).
# sm_80 was not measured: same tiles (they fit its shared memory).
TUNED_CONFIGS: dict = {}
for _arch in (80, 90):
    TUNED_CONFIGS[(_arch, "large")] = CANDIDATES[0]
    TUNED_CONFIGS[(_arch, "small")] = dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=4)


def shape_class(spec: GemmSpec) -> str:
    """'small' when a 128x128 tiling gives fewer tiles than an H100/H200 has SMs (132):
    smaller tiles then keep every SM busy; else 'large'."""
    tiles = triton.cdiv(spec.m, 128) * triton.cdiv(spec.n, 128)
    return "small" if tiles < 132 else "large"


_FORCED: contextvars.ContextVar = contextvars.ContextVar("flashlift_gemm_config", default=None)


@contextlib.contextmanager
def force_config(cfg: dict):
    """Inside the block every GEMM takes `cfg` first (where its kernel covers the shape):
    how a benchmark compiles one candidate config into whole models."""
    token = _FORCED.set(dict(cfg))
    try:
        yield
    finally:
        _FORCED.reset(token)


_NO_GLUON: contextvars.ContextVar = contextvars.ContextVar("flashlift_gemm_no_gluon", default=False)


@contextlib.contextmanager
def without_gluon():
    """Inside the block no GEMM takes a Gluon config (tuned ones give way as a shape Gluon
    does not cover does): how a benchmark measures the Gluon kernel's gain in a whole model."""
    token = _NO_GLUON.set(True)
    try:
        yield
    finally:
        _NO_GLUON.reset(token)


def build_context() -> tuple:
    """What, besides the spec and the arch, decides this context's build (force_config's
    config, without_gluon): kernel_build's cache keeps builds of different contexts apart."""
    forced = _FORCED.get()
    return (tuple(sorted(forced.items())) if forced else None, _NO_GLUON.get())


def tuned_configs(spec: GemmSpec, arch: int) -> list:
    """The configs to build `spec` with, best first: a forced config (force_config), the
    tuning database's entry for the shape (compiler/tuning.py), then the measured winner for
    the shape's class; a TMA or Gluon config the shape does not fit (or, inside without_gluon,
    any Gluon config) gives way to the pointer kernel's first candidate."""
    found = [_FORCED.get(), tuning.lookup_gemm(spec.m, spec.n, spec.k, spec.dtype, arch, epilogue=spec.epilogue),
             TUNED_CONFIGS.get((arch, shape_class(spec)), CANDIDATES[0])]
    configs = []
    for cfg in filter(None, found):
        kernel_refuses = (cfg.get("TMA") and tma_covers(spec, arch)) or \
            (cfg.get("GLUON") and (_NO_GLUON.get() or _gluon_covers(spec, arch)))
        cfg = dict(CANDIDATES[0]) if kernel_refuses else dict(cfg)
        if cfg not in configs:
            configs.append(cfg)
    return configs


def _gluon_covers(spec: GemmSpec, arch: int) -> str:
    from flashlift.compiler.kernels import gluon_gemm

    return gluon_gemm.covers(spec, arch)


def tuned_config(spec: GemmSpec, arch: int) -> dict:
    return tuned_configs(spec, arch)[0]


def _kernel_and_constexprs(spec: GemmSpec, arch: int, cfg: dict):
    """The kernel `cfg` selects and its constexpr arguments, in signature order."""
    consts = dict(M=spec.m, N=spec.n, K=spec.k, W_NK=spec.w_nk, HAS_BIAS=spec.bias_dtype is not None, GELU=spec.gelu,
                  SWIGLU=spec.swiglu, RESIDUAL=spec.residual, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], BLOCK_K=cfg["BLOCK_K"],
                  GROUP_M=cfg["GROUP_M"])
    if not cfg.get("TMA"):
        return _gemm_kernel, consts
    why = tma_covers(spec, arch)
    if why:
        raise ValueError(why)
    consts.update(NUM_PROGS=grid(spec, cfg)[0], WARP_SPECIALIZE=cfg["WARP_SPECIALIZE"], FLATTEN=cfg["FLATTEN"])
    return _gemm_tma_kernel, consts


def launch_args(spec: GemmSpec, arch: int, cfg: dict, a, w, bias, gate, c) -> list:
    """Every argument of a direct launch of compile_gemm's kernel (a benchmark's; IREE passes
    the pointers only), in signature order: the tensors (None where absent), then the constexprs."""
    if cfg.get("GLUON"):
        from flashlift.compiler.kernels import gluon_gemm

        return [a, w, bias, gate, c] + list(gluon_gemm.constexprs(spec, cfg).values())
    return [a, w, bias, gate, c] + list(_kernel_and_constexprs(spec, arch, cfg)[1].values())


def compile_gemm(spec: GemmSpec, arch: int, config: Optional[dict] = None,
                 ptx_version: Optional[int] = None):
    """triton.compile of one GEMM; returns (CompiledKernel, config)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    spec.check()
    cfg = dict(tuned_config(spec, arch))
    if config:  # an override picks the kernel too: the pointer kernel unless it says TMA / GLUON
        cfg = {k: v for k, v in cfg.items() if k not in _GLUON_KNOBS}
        cfg.update({**{knob: False for knob in _KERNEL_KNOBS}, **config})
    if cfg.get("GLUON"):   # gluon_gemm's warp-specialised kernel (sm_90)
        from flashlift.compiler.kernels import gluon_gemm

        opts = dict(num_warps=4, num_stages=cfg["num_stages"])
        if ptx_version is not None:
            opts["ptx_version"] = ptx_version
        return gluon_gemm.compile_kernel(spec, cfg, _TL, opts), cfg
    tdt = _TL[spec.dtype]
    sig = {"A": f"*{tdt}", "W": f"*{tdt}",
           "BIAS": f"*{_TL[spec.bias_dtype]}" if spec.bias_dtype else "constexpr",
           "G": f"*{_TL[spec.out_dtype]}" if spec.reads_g else "constexpr",
           "C": f"*{_TL[spec.out_dtype]}"}
    kernel, consts = _kernel_and_constexprs(spec, arch, cfg)
    for name in consts:
        sig[name] = "constexpr"
    present = {"BIAS": spec.bias_dtype is not None, "G": spec.reads_g}
    consts.update({name: None for name, have in present.items() if not have})
    ptrs = [i for i, name in enumerate(("A", "W", "BIAS", "G", "C")) if present.get(name, True)]
    attrs = {(i,): [["tt.divisibility", 16]] for i in ptrs}  # IREE bindings are 64-byte aligned
    src = ASTSource(fn=kernel, signature=sig, constexprs=consts, attrs=attrs)
    opts = dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    if ptx_version is not None:
        opts["ptx_version"] = ptx_version
    if cfg.get("TMA"):
        opts = aot.tensor_map_options(opts)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=opts), cfg


def grid(spec: GemmSpec, cfg: dict) -> tuple:
    """One program per C tile; the TMA kernel's persistent grid: one per SM at most."""
    tiles = triton.cdiv(spec.m, cfg["BLOCK_M"]) * triton.cdiv(spec.n, cfg["BLOCK_N"])
    return (min(tiles, NUM_SMS) if cfg.get("TMA") or cfg.get("GLUON") else tiles, 1, 1)


def build_gemm(spec: GemmSpec, arch: int, config: Optional[dict] = None,
               ptx_version: Optional[int] = None) -> "aot.KernelBinary":
    """AOT-compiles the GEMM for one static shape (see the module doc for the ABI) with
    `config`, else with the first of tuned_configs that builds (a shape's tuned tile may not
    fit with an epilogue the tuning did not have, e.g. the SwiGLU gate's shared memory)."""
    names = ["a", "w"] + (["bias"] if spec.bias_dtype else []) + (["gate"] if spec.swiglu else []) \
        + (["residual"] if spec.residual else []) + ["c"]
    roles = ["input"] * (len(names) - 1) + ["output"]
    tries = [config] if config is not None else tuned_configs(spec, arch)
    for i, cfg in enumerate(tries):
        try:
            ck, full = compile_gemm(spec, arch, cfg, ptx_version)
            return aot.binary(ck, arch, names, roles, grid(spec, full),
                              dict(full, **dataclasses.asdict(spec), kind="gemm"))
        except Exception:  # noqa: BLE001 (Triton's errors have no common type)
            if i == len(tries) - 1:
                raise
