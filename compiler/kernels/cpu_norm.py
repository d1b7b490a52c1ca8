"""flashlift's CPU residual add + LayerNorm / RMSNorm kernel: the IREE executable around its object.

The kernel is C with AVX2 intrinsics (cpu/norm_avx2.c), built by
cpu_build.build_object("norm"); `executable_source` is the executable that calls it
once per workgroup (a block of ROWS rows) for a NormSpec, `dispatch_func` the function
`(a[, r][, weight][, bias]) -> y` of one flow.dispatch of it on the op's own tensor types.
"""

from __future__ import annotations

from flashlift.compiler.kernels.cpu_build import CpuKernel, dispatch_source, shim_source
from flashlift.compiler.kernels.norm_spec import NormSpec

ROWS = 8  # FL_ROWS: rows per workgroup
MAX_N = 8192  # FL_NMAX
N_MULTIPLE = 8


def workgroups(spec: NormSpec) -> tuple:
    return ((spec.rows + ROWS - 1) // ROWS,)


def executable_source(kernel: CpuKernel, sym_name: str, spec: NormSpec) -> str:
    """The kernel's executable for `spec`: five bindings a, r, weight, bias, y (one the op
    does not have binds a again, never read)."""
    total = spec.rows * spec.n
    a = f"memref<{total}x{spec.dtype}>"
    vec = f"memref<{spec.n}x{spec.dtype}>"
    bindings = [a, a, vec if spec.weight else a, vec if spec.bias else a,
                f"memref<{total}x{spec.out_dtype}>"]
    args = [("index", spec.rows), ("index", spec.n), ("f32", spec.eps),
            ("index", int(spec.residual)), ("index", int(spec.weight)), ("index", int(spec.bias)),
            ("index", int(spec.kind == "rms")), ("index", int(spec.weight_rounded))]
    return shim_source(kernel, sym_name, kernel.symbol(spec.dtype, spec.out_dtype), bindings, workgroups(spec), args)


def dispatch_func(sym: str, name: str, types: dict, result: str) -> str:
    """`func.func @name(a[, r][, w][, b]) -> result`: types maps the operands the op has
    ("a", "r", "w", "b") to their tensor types; a missing one's binding takes a."""
    params = [(k, types[k]) for k in ("a", "r", "w", "b") if k in types]
    operands = [(k, types[k]) if k in types else ("a", types["a"]) for k in ("a", "r", "w", "b")]
    return dispatch_source(sym, name, params, operands, result)
