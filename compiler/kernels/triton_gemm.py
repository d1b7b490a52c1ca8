"""Triton GEMM kernel for a model's linear layers, AOT-compiled to PTX/cubin for IREE.

    C[M, N] = A[M, K] @ W^T (+ bias[N]), accumulated in f32, rounded once to C's type;
    optionally C = gelu(C) (erf form, GELU=True: the activation a model applies to the rounded
    result, evaluated in f32 and rounded again, as torch evaluates an f16 GELU), or, as the up
    projection of LLaMA's MLP (`silu(gate(x)) * up(x)`, SWIGLU=True), C = silu(G) * C with G
    the gate projection's result [M, N] in C's type: silu(g) = g * (1 / (1 + e^-g)) in f32,
    rounded, times C, rounded (torch's roundings in f16/bf16), so that the gate and up results
    are not read again by a separate elementwise pass.

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

Configs: `tuned_config` (measured on an H200, bench/results/gemm-h200.md) by arch and
shape class; `build_gemm(config=...)` overrides any of them.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import triton
import triton.language as tl

from flashlift.compiler.kernels import aot


@triton.jit
def _gemm_kernel(A, W, BIAS, G, C,
                 M: tl.constexpr, N: tl.constexpr, K: tl.constexpr,
                 W_NK: tl.constexpr, HAS_BIAS: tl.constexpr, GELU: tl.constexpr, SWIGLU: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 GROUP_M: tl.constexpr):
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = min(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_rows
    pid_n = (pid % per_group) // group_rows

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
    c = acc.to(C.dtype.element_ty)
    if GELU:  # the model's GELU (erf form) of the rounded result, computed in f32, rounded again
        x = c.to(tl.float32)
        c = (0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))).to(C.dtype.element_ty)
    tile = offs_m[:, None] * N + offs_n[None, :]
    inside = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    if SWIGLU:  # silu(gate), rounded, times this (up) result, rounded: each op as torch rounds it
        if (M % BLOCK_M == 0) and (N % BLOCK_N == 0):
            g = tl.load(G + tile).to(tl.float32)
        else:
            g = tl.load(G + tile, mask=inside, other=0.0).to(tl.float32)
        silu = (g * (1.0 / (1.0 + tl.exp(-g)))).to(C.dtype.element_ty).to(tl.float32)
        c = (silu * c.to(tl.float32)).to(C.dtype.element_ty)
    if (M % BLOCK_M == 0) and (N % BLOCK_N == 0):
        tl.store(C + tile, c)
    else:
        tl.store(C + tile, c, mask=inside)


_TL = {"f16": "fp16", "bf16": "bf16", "f32": "fp32"}
IN_DTYPES = ("f16", "bf16")
OUT_DTYPES = ("f16", "bf16", "f32")


@dataclasses.dataclass(frozen=True)
class GemmSpec:
    """One GEMM the kernel is built for (everything the PTX depends on but the tile)."""
    m: int
    n: int
    k: int
    dtype: str = "f16"  # A and W
    out_dtype: str = "f16"
    bias_dtype: Optional[str] = None  # None: no bias operand
    w_nk: bool = True  # W stored [N, K] (nn.Linear) or [K, N]
    gelu: bool = False  # apply GELU (erf form) to the rounded result
    swiglu: bool = False  # C = silu(G) * C, G the gate projection's [M, N] result (an operand)

    def check(self) -> None:
        if self.dtype not in IN_DTYPES:
            raise ValueError(f"GEMM input type {self.dtype} (kernel: f16, bf16)")
        if self.out_dtype not in OUT_DTYPES:
            raise ValueError(f"GEMM output type {self.out_dtype} (kernel: f16, bf16, f32)")
        if self.bias_dtype is not None and self.bias_dtype not in OUT_DTYPES:
            raise ValueError(f"bias type {self.bias_dtype}")
        if (self.gelu or self.swiglu) and self.out_dtype == "f32":
            raise ValueError("GELU / SwiGLU epilogue on an f16/bf16 result only")
        if self.gelu and self.swiglu:
            raise ValueError("GELU and SwiGLU epilogues together")
        if min(self.m, self.n, self.k) < 1:
            raise ValueError(f"empty GEMM {self.m}x{self.n}x{self.k}")


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


def tuned_config(spec: GemmSpec, arch: int) -> dict:
    return dict(TUNED_CONFIGS.get((arch, shape_class(spec)), CANDIDATES[0]))


def compile_gemm(spec: GemmSpec, arch: int, config: Optional[dict] = None,
                 ptx_version: Optional[int] = None):
    """triton.compile of one GEMM; returns (CompiledKernel, config)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    spec.check()
    cfg = dict(tuned_config(spec, arch))
    cfg.update(config or {})
    tdt = _TL[spec.dtype]
    sig = {"A": f"*{tdt}", "W": f"*{tdt}",
           "BIAS": f"*{_TL[spec.bias_dtype]}" if spec.bias_dtype else "constexpr",
           "G": f"*{_TL[spec.out_dtype]}" if spec.swiglu else "constexpr",
           "C": f"*{_TL[spec.out_dtype]}"}
    consts = dict(M=spec.m, N=spec.n, K=spec.k, W_NK=spec.w_nk, HAS_BIAS=spec.bias_dtype is not None, GELU=spec.gelu,
                  SWIGLU=spec.swiglu, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], BLOCK_K=cfg["BLOCK_K"],
                  GROUP_M=cfg["GROUP_M"])
    for name in consts:
        sig[name] = "constexpr"
    present = {"BIAS": spec.bias_dtype is not None, "G": spec.swiglu}
    consts.update({name: None for name, have in present.items() if not have})
    ptrs = [i for i, name in enumerate(("A", "W", "BIAS", "G", "C")) if present.get(name, True)]
    attrs = {(i,): [["tt.divisibility", 16]] for i in ptrs}  # IREE bindings are 64-byte aligned
    src = ASTSource(fn=_gemm_kernel, signature=sig, constexprs=consts, attrs=attrs)
    opts = dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    if ptx_version is not None:
        opts["ptx_version"] = ptx_version
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=opts), cfg


def grid(spec: GemmSpec, cfg: dict) -> tuple:
    return (triton.cdiv(spec.m, cfg["BLOCK_M"]) * triton.cdiv(spec.n, cfg["BLOCK_N"]), 1, 1)


def build_gemm(spec: GemmSpec, arch: int, config: Optional[dict] = None,
               ptx_version: Optional[int] = None) -> "aot.KernelBinary":
    """AOT-compiles the GEMM for one static shape (see the module doc for the ABI)."""
    ck, cfg = compile_gemm(spec, arch, config, ptx_version)
    names = ["a", "w"] + (["bias"] if spec.bias_dtype else []) + (["gate"] if spec.swiglu else []) + ["c"]
    roles = ["input"] * (len(names) - 1) + ["output"]
    return aot.binary(ck, arch, names, roles, grid(spec, cfg),
                      dict(cfg, **dataclasses.asdict(spec), kind="gemm"))
