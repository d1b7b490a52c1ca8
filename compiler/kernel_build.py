"""Building flashlift's Triton kernels for a covered op, once per distinct kernel.

`attention_kernel(plan, sm)` runs triton_fa.build_ptx for an attention Plan (shape, dtype,
causal kind, run-time mask kinds, the layouts and the empty-row answer the rewrite folded
in); `gemm_kernel(spec, sm)` runs triton_gemm.build_gemm for a GemmSpec, `norm_kernel`
triton_norm.build_norm for a NormSpec, `rotary_kernel` triton_rotary.build_rotary for a
RotarySpec. Each returns an aot.KernelBinary (PTX and cubin, grid, block, shared memory,
parameters), cached in-process by the build's arguments (Triton also caches its compiles on
disk). All build PTX
`.version` PTX_VERSION. A build error propagates: the caller records it
(kernel_sites.build_failure) and the op keeps IREE's codegen.
"""

from __future__ import annotations

try:  # Triton is optional (flashlift[cuda]): without it kernel_sites keeps every op on IREE's
    # codegen and nothing here is called
    from flashlift.compiler.kernels import triton_fa, triton_gemm, triton_norm, triton_rotary
except ImportError:
    triton_fa = triton_gemm = triton_norm = triton_rotary = None

PTX_VERSION = 84  # `.version 8.4`: JIT-able by CUDA >= 12.4 drivers (Triton's default 8.7 needs R570+)

# Built kernels, keyed by build_ptx's / build_gemm's arguments.
_ATTENTION_CACHE: dict = {}
_GEMM_CACHE: dict = {}
_NORM_CACHE: dict = {}
_ROTARY_CACHE: dict = {}


def attention_kernel(plan, sm: int):
    """triton_fa.build_ptx for the attention Plan's shape (cached in-process; Triton caches on disk)."""
    key = (plan.batch, plan.heads, plan.kv_heads, plan.sq, plan.skv, plan.head_dim, plan.dtype,
           plan.causal, float(plan.scale), sm, plan.key_padding_mask, plan.full_mask, plan.full_mask_batched,
           plan.full_mask_heads,
           bool(plan.out_transpose), tuple(plan.in_rows), empty_rows(plan))
    if key not in _ATTENTION_CACHE:
        _ATTENTION_CACHE[key] = triton_fa.build_ptx(
            batch=plan.batch, heads=plan.heads, kv_heads=plan.kv_heads, sq=plan.sq, skv=plan.skv,
            head_dim=plan.head_dim, dtype=plan.dtype, causal=plan.causal or False, scale=plan.scale,
            arch=sm, ptx_version=PTX_VERSION, key_padding_mask_dtype=plan.key_padding_mask,
            mask_dtype=plan.full_mask, mask_batched=plan.full_mask_batched, mask_heads=plan.full_mask_heads,
            out_seq_major=bool(plan.out_transpose), in_seq_major=tuple(plan.in_rows),
            empty_rows=empty_rows(plan))
    return _ATTENTION_CACHE[key]


def empty_rows(plan) -> str:
    """What the kernel writes on a query row that sees no key: the op's answer there is
    NaN (0/0); with the row guard folded in (plan.guard), 0."""
    return "zero" if plan.guard else "nan"


def gemm_kernel(spec, sm: int):
    """triton_gemm.build_gemm for a GemmSpec (cached in-process)."""
    key = (spec, sm, triton_gemm.build_context())
    if key not in _GEMM_CACHE:
        _GEMM_CACHE[key] = triton_gemm.build_gemm(spec, sm, ptx_version=PTX_VERSION)
    return _GEMM_CACHE[key]


def norm_kernel(spec, sm: int):
    """triton_norm.build_norm for a NormSpec (cached in-process)."""
    key = (spec, sm)
    if key not in _NORM_CACHE:
        _NORM_CACHE[key] = triton_norm.build_norm(spec, sm, ptx_version=PTX_VERSION)
    return _NORM_CACHE[key]


def rotary_kernel(spec, sm: int):
    """triton_rotary.build_rotary for a RotarySpec (cached in-process)."""
    key = (spec, sm)
    if key not in _ROTARY_CACHE:
        _ROTARY_CACHE[key] = triton_rotary.build_rotary(spec, sm, ptx_version=PTX_VERSION)
    return _ROTARY_CACHE[key]
