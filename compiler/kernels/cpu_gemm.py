"""flashlift's CPU GEMM for bf16 linear layers: the IREE executable around its object.

The kernel is C with AVX-512 BF16 / AMX intrinsics (cpu/gemm_avx512.c), built by
cpu_build.build_object("gemm", isa); `executable_source` is the executable that calls it once
per workgroup (a WM x WN block of C) for a GemmSpec, `dispatch_func` the function
`(a, wp[, bias]) -> c` of one flow.dispatch of it on the op's own tensor types, `PACKED` how
the weight is laid out for it.
"""

from __future__ import annotations

from flashlift.compiler.kernels.cpu_build import CpuKernel, dispatch_source, shim_source
from flashlift.compiler.kernels.gemm_spec import GemmSpec

WM, WN = 64, 64  # FL_WM, FL_WN: the block of C a workgroup computes
K_MULTIPLE = N_MULTIPLE = 32  # an AMX tile's 32 of K; two 16-column tiles of N
#: W packed in blocks of 32 columns as pairs of K, (N / 32, K / 2, 32, 2): WP[b][p][c] =
#: W[32b + c][2p], W[32b + c][2p + 1] (an AMX B tile's rows, a VDPBF16PS operand; a block's
#: rows together)
PACKED = "(N / 32, K / 2, 32, 2)"


def workgroups(spec: GemmSpec) -> tuple:
    return ((spec.n + WN - 1) // WN, (spec.m + WM - 1) // WM)


def executable_source(kernel: CpuKernel, sym_name: str, spec: GemmSpec) -> str:
    """The kernel's executable for `spec`: four bindings a, wp, bias, c (without a bias, the
    binding takes a again, never read)."""
    a = f"memref<{spec.m * spec.k}x{spec.dtype}>"
    bias = f"memref<{spec.n}x{spec.bias_dtype}>" if spec.bias_dtype else a
    bindings = [a, f"memref<{spec.k * spec.n}x{spec.dtype}>", bias, f"memref<{spec.m * spec.n}x{spec.out_dtype}>"]
    args = [("index", spec.m), ("index", spec.n), ("index", spec.k), ("index", int(spec.bias_dtype is not None))]
    return shim_source(kernel, sym_name, kernel.symbol(spec.dtype, spec.out_dtype), bindings, workgroups(spec), args)


def dispatch_func(sym: str, name: str, types: dict, result: str) -> str:
    """`func.func @name(a, wp[, b]) -> result`: types maps the operands ("a", "wp", "b") to their
    tensor types; without "b" the bias binding takes a."""
    params = [(k, types[k]) for k in ("a", "wp", "b") if k in types]
    operands = [("a", types["a"]), ("wp", types["wp"]), ("b", types["b"]) if "b" in types else ("a", types["a"])]
    return dispatch_source(sym, name, params, operands, result)
