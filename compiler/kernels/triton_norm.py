"""Triton residual add + LayerNorm / RMSNorm kernel for CUDA, AOT-compiled to PTX/cubin for IREE.

Computes a NormSpec (norm_spec.py): x = a [+ r] rounded to the input type, then
y = (x - mean) / sqrt(var + eps) [* weight] [+ bias] (LayerNorm) or x / sqrt(mean(x^2) + eps)
[* weight] (RMSNorm; WEIGHT_ROUNDED: y rounded to the input type before the weight) in f32,
stored in the output type.
Why a kernel after the GEMM rather than in its epilogue: a LayerNorm reduces over the whole
output row (n = 1024 in BERT-base and the seed), while a GEMM tile covers 64-256 columns of
it; a tile as wide as the row (64 x 1024 f32 accumulators, 256 KB) does not fit one CTA's
registers, and a split row needs a reduction across CTAs. One program here reads a whole
row (BLOCK_N = n rounded up to a power of two) once from memory, keeps it in registers for
the two passes (mean, then the centred variance) and writes it once: the three IREE
dispatches it replaces read and write the row 4-6 times and compute the variance in f64.

PTX entry parameters: (A, [R,] [W,] [B,] Y, global_scratch, profile_scratch); grid
(rows, 1, 1), one row per program.
"""

from __future__ import annotations

import triton
import triton.language as tl

from flashlift.compiler.kernels import aot
from flashlift.compiler.kernels.norm_spec import NormSpec

MAX_N = 16384
_TL = {"f16": "fp16", "bf16": "bf16", "f32": "fp32"}


@triton.jit
def _norm_kernel(A, R, W, B, Y, N: tl.constexpr, BLOCK_N: tl.constexpr, EPS: tl.constexpr,
                 HAS_R: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr, RMS: tl.constexpr,
                 WEIGHT_ROUNDED: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * N
    cols = tl.arange(0, BLOCK_N)
    inside = cols < N
    x = tl.load(A + row + cols, mask=inside, other=0.0).to(tl.float32)
    if HAS_R:  # the model's sum, in its own type
        r = tl.load(R + row + cols, mask=inside, other=0.0).to(tl.float32)
        x = (x + r).to(A.dtype.element_ty).to(tl.float32)
    if RMS:  # around 0: the mean of squares
        centred = x
    else:
        centred = tl.where(inside, x - tl.sum(x, axis=0) / N, 0.0)
    var = tl.sum(centred * centred, axis=0) / N
    y = centred * (1.0 / tl.sqrt_rn(var + EPS))
    if WEIGHT_ROUNDED:  # LLaMA's weight * y.to(dtype): the product in dtype
        y = y.to(A.dtype.element_ty).to(tl.float32)
    if HAS_W:
        y = y * tl.load(W + cols, mask=inside, other=0.0).to(tl.float32)
    if HAS_B:
        y = y + tl.load(B + cols, mask=inside, other=0.0).to(tl.float32)
    tl.store(Y + row + cols, y.to(Y.dtype.element_ty), mask=inside)


def num_warps(n: int) -> int:
    """4 warps to 2048 elements a row, then one more warp per 512 (16 at most)."""
    return max(4, min(16, triton.next_power_of_2(n) // 512))


def build_norm(spec: NormSpec, arch: int, ptx_version=None) -> "aot.KernelBinary":
    """AOT-compiles the kernel for one NormSpec (ValueError if it does not cover it)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    spec.check(MAX_N)
    t, o = _TL[spec.dtype], _TL[spec.out_dtype]
    present = {"A": True, "R": spec.residual, "W": spec.weight, "B": spec.bias}
    sig = {name: (f"*{t}" if have else "constexpr") for name, have in present.items()}
    sig["Y"] = f"*{o}"
    consts = dict(N=spec.n, BLOCK_N=triton.next_power_of_2(spec.n), EPS=float(spec.eps),
                  HAS_R=spec.residual, HAS_W=spec.weight, HAS_B=spec.bias, RMS=spec.kind == "rms",
                  WEIGHT_ROUNDED=spec.weight_rounded)
    sig.update({k: "constexpr" for k in consts})
    consts.update({name: None for name, have in present.items() if not have})
    ptrs = [i for i, name in enumerate(["A", "R", "W", "B", "Y"]) if name == "Y" or present[name]]
    attrs = {(i,): [["tt.divisibility", 16]] for i in ptrs}  # IREE bindings are 64-byte aligned
    src = ASTSource(fn=_norm_kernel, signature=sig, constexprs=consts, attrs=attrs)
    opts = dict(num_warps=num_warps(spec.n), num_stages=1)
    if ptx_version is not None:
        opts["ptx_version"] = ptx_version
    ck = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=opts)
    names = [n for n, have in (("a", True), ("r", spec.residual), ("weight", spec.weight), ("bias", spec.bias)) if have]
    roles = ["input"] * len(names) + ["output"]
    return aot.binary(ck, arch, names + ["y"], roles, (spec.rows, 1, 1),
                      dict(spec.__dict__, kernel="norm", num_warps=opts["num_warps"]))
