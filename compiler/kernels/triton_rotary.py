"""Triton rotary-embedding kernel for CUDA, AOT-compiled to PTX/cubin for IREE.

Computes a RotarySpec (rotary_spec.py): out = x * cos + rotate_half(x) * sin over rows of
head_dim = 2h elements, each product and the sum rounded to the model's type (the tables'
where they are wider than x: f32 tables times f16 x, OLMo's), the result stored in OUT's. Why a kernel:
IREE 3.13 compiles this elementwise pass with 32-thread workgroups of 4 elements each and
turns rotate_half's concat into a gather (LLaMA x4, B=4 S=1024, f16, H100: 85 us a call for
Q, 0.8 TB/s; bench/results/models-gpu-h100.md); here a program takes BLOCK_R rows and reads
each row's two halves once, as two [BLOCK_R, h] tiles, with the tables' rows for them.

Exact: a product of two f16/bf16 values is exact in f32 and a sum of two is rounded once
more in f32 before the rounding to f16/bf16, which gives the correctly rounded result
(f32 has more than 2p + 2 bits); fp fusion is off so that an f32 model's products are not
contracted into the sum.

PTX entry parameters: (X, COS, SIN, OUT, global_scratch, profile_scratch); grid
(ceil(rows / BLOCK_R), 1, 1).
"""

from __future__ import annotations

import triton
import triton.language as tl

from flashlift.compiler.kernels import aot
from flashlift.compiler.kernels.rotary_spec import RotarySpec

_TL = {"f16": "fp16", "bf16": "bf16", "f32": "fp32"}
BLOCK_BYTES = 16384  # bytes of x a program reads: BLOCK_R = this / (head_dim * element size), a power of two


@triton.jit
def _rounded(v, DT: tl.constexpr):
    return v.to(DT).to(tl.float32)


@triton.jit
def _rotary_kernel(X, COS, SIN, OUT, ROWS: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr,
                   HALF: tl.constexpr, BLOCK_H: tl.constexpr, SEQ_DIM: tl.constexpr,
                   TABLE_BATCH: tl.constexpr, TABLE_SEQ: tl.constexpr, BLOCK_R: tl.constexpr):
    DT: tl.constexpr = COS.dtype.element_ty   # the products' and the sum's type (x's, or the wider tables')
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    # the table row of each x row (b, i1, i2): (b or 0) * TABLE_SEQ + (the sequence index or 0)
    s = (rows // D2) % D1 if SEQ_DIM == 1 else rows % D2
    t = tl.where(TABLE_BATCH > 1, rows // (D1 * D2), 0) * TABLE_SEQ + tl.where(TABLE_SEQ > 1, s, 0)
    cols = tl.arange(0, BLOCK_H)
    inside = (rows[:, None] < ROWS) & (cols[None, :] < HALF)
    lo = rows.to(tl.int64)[:, None] * (2 * HALF) + cols[None, :]
    at = t.to(tl.int64)[:, None] * (2 * HALF) + cols[None, :]
    x1 = tl.load(X + lo, mask=inside, other=0.0).to(tl.float32)
    x2 = tl.load(X + lo + HALF, mask=inside, other=0.0).to(tl.float32)
    c1 = tl.load(COS + at, mask=inside, other=0.0).to(tl.float32)
    c2 = tl.load(COS + at + HALF, mask=inside, other=0.0).to(tl.float32)
    s1 = tl.load(SIN + at, mask=inside, other=0.0).to(tl.float32)
    s2 = tl.load(SIN + at + HALF, mask=inside, other=0.0).to(tl.float32)
    # x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1): each op rounded to the model's type
    out1 = _rounded(x1 * c1, DT) + _rounded(-x2 * s1, DT)
    out2 = _rounded(x2 * c2, DT) + _rounded(x1 * s2, DT)
    # the sum rounded to DT, then (where the model rounds it back to x's type) to OUT's
    tl.store(OUT + lo, out1.to(DT).to(OUT.dtype.element_ty), mask=inside)
    tl.store(OUT + lo + HALF, out2.to(DT).to(OUT.dtype.element_ty), mask=inside)


def constexprs(spec: RotarySpec) -> dict:
    """The kernel's constexpr arguments for `spec`, in signature order."""
    b, d1, d2, d = spec.shape
    half = d // 2
    size = 4 if spec.dtype == "f32" else 2   # (x's bytes a program reads)
    block_r = max(1, min(triton.next_power_of_2(spec.rows), BLOCK_BYTES // (triton.next_power_of_2(d) * size)))
    return dict(ROWS=spec.rows, D1=d1, D2=d2, HALF=half, BLOCK_H=triton.next_power_of_2(half), SEQ_DIM=spec.seq_dim,
                TABLE_BATCH=spec.table_batch, TABLE_SEQ=spec.table_seq, BLOCK_R=block_r)


def grid(spec: RotarySpec) -> tuple:
    return (triton.cdiv(spec.rows, constexprs(spec)["BLOCK_R"]), 1, 1)


NUM_WARPS = 4


def build_rotary(spec: RotarySpec, arch: int, ptx_version=None) -> "aot.KernelBinary":
    """AOT-compiles the kernel for one RotarySpec (ValueError if it does not cover it)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    spec.check()
    t = f"*{_TL[spec.compute_dtype]}"
    consts = constexprs(spec)
    sig = {"X": f"*{_TL[spec.dtype]}", "COS": t, "SIN": t, "OUT": f"*{_TL[spec.result_dtype]}",
           **{k: "constexpr" for k in consts}}
    attrs = {(i,): [["tt.divisibility", 16]] for i in range(4)}  # IREE bindings are 64-byte aligned
    src = ASTSource(fn=_rotary_kernel, signature=sig, constexprs=consts, attrs=attrs)
    opts = dict(num_warps=NUM_WARPS, num_stages=1, enable_fp_fusion=False)
    if ptx_version is not None:
        opts["ptx_version"] = ptx_version
    ck = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=opts)
    return aot.binary(ck, arch, ["x", "cos", "sin", "out"], ["input"] * 3 + ["output"], grid(spec),
                      dict(spec.__dict__, kernel="rotary", num_warps=NUM_WARPS))
