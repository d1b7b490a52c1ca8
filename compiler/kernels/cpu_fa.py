"""flashlift's CPU FlashAttention kernel: the IREE executable around its object.

The kernel is C with vector intrinsics, one build per instruction set (cpu/fa_avx2.c,
cpu/fa_avx512.c: what it computes, how, and the embedded-ELF rules it keeps; fa_common.h:
the entry points every build has), built by cpu_build.build_object("attention", isa). Both
sources take 32-row query blocks (BLOCK_M), so the grid is the same. IREE links it into the
module's CPU executable: `executable_source` writes an
`hal.executable.source` naming the object and a shim function, compiled by
IREE's llvm-cpu backend, that calls the kernel once per workgroup (x: query block of
BLOCK_M rows, y: batch * head) with the shape as constants. `dispatch_func` wraps a
`flow.dispatch` of it in a private function `(q, k, v) -> o` on the attention op's own
tensor types (and the mask's, where the kernel reads one): a binding is its tensor's dense
row-major memory, so no reshape is needed.
"""

from __future__ import annotations

from flashlift.compiler.kernels.cpu_build import CpuKernel, dispatch_source, shim_source

BLOCK_M = 32  # FL_BM in the source: the query rows of one workgroup
MAX_HEAD_DIM = 128  # FL_DMAX
HEAD_DIM_MULTIPLE = 16
DTYPES = ("f32", "f16", "bf16")  # Q, K, V; O is the same or f32


def workgroups(batch_heads: int, sq: int) -> tuple:
    return ((sq + BLOCK_M - 1) // BLOCK_M, batch_heads, 1)


def executable_source(kernel: CpuKernel, sym_name: str, shape: dict) -> str:
    """`hal.executable.source` with the kernel object and the shim that calls it; shape:
    batch_heads, heads, kv_ratio, sq, skv, head_dim, causal (0 none, 1 top-left,
    2 bottom-right), mask_kind (0 none, 1 [B, Skv] key padding, 2 [B, Sq, Skv], 3 [Sq, Skv],
    4 [B, H, Sq, Skv], 5 [H, Sq, Skv]; an f32 mask), scale, the element types in_dtype (Q, K, V) and out_dtype (O), and the
    element counts q, k, v, mask, o of the five bindings (without a mask the fourth is Q
    again, never read); rows: the (width, col0) of Q, K, V and O (width 0: (B, heads, S, D)
    contiguous, else sequence rows of `width` elements with the heads from column col0);
    empty_zero: a row that sees no key gets 0 (the row guard after the op folded in), not NaN."""
    s = shape
    mem = {n: f"memref<{s[n]}x{s['out_dtype' if n == 'o' else 'in_dtype']}>" for n in ("q", "k", "v", "o")}
    mem["mask"] = f"memref<{s['mask']}xf32>" if s["mask_kind"] else mem["q"]
    bindings = [mem["q"], mem["k"], mem["v"], mem["mask"], mem["o"]]
    args = [("index", s[k]) for k in ("heads", "kv_ratio", "sq", "skv", "head_dim", "causal", "mask_kind")]
    args += [("f32", s["scale"])] + [("index", x) for pair in s["rows"] for x in pair] + [("index", int(s["empty_zero"]))]
    return shim_source(kernel, sym_name, kernel.symbol(s["in_dtype"], s["out_dtype"]), bindings,
                       workgroups(s["batch_heads"], s["sq"])[:2], args)


def dispatch_func(sym: str, name: str, types: tuple) -> str:
    """A private `func.func @name(q, k, v[, mask]) -> o` of one flow.dispatch of `sym`'s export
    (cpu_build.dispatch_source); types: the (q, k, v, mask or None, o) tensor types. Without
    a mask, Q is bound again in the mask's place (never read)."""
    q, k, v, m, o = types
    params = [("q", q), ("k", k), ("v", v)] + ([("m", m)] if m else [])
    return dispatch_source(sym, name, params, params + ([] if m else [("q", q)]), o)
