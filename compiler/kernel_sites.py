"""What flashlift's kernel rewrites share: the sites, their records, and why an op is not taken.

Both rewrites (kernel_dispatch.py for attention, gemm_dispatch.py for linear layers) start
from `kernel_sites`: the ops of one name in program order, one record each,
{"location": str(op.location), "site": its raise-attention site id or None, "path":
"iree-codegen", "reason": ""}, and the kernel
architecture as an int (80, 90), or None when the target has no flashlift kernels or Triton
is missing (every record then says which). An op a rewrite does not take keeps IREE's
codegen: the message of `NotCovered` (the op is not what the kernel computes) or of
`build_failure` (the kernel did not build for it) is its record's reason.
"""

from __future__ import annotations

from flashlift.passes.ir import collect
from flashlift.passes.records import site_of

CODEGEN = "iree-codegen"  # the path of an op left to IREE's codegen


class NotCovered(Exception):
    """The kernel does not compute this op; the message says why."""


def kernel_sites(module, op_name: str, target) -> tuple:
    """(ops named `op_name` in program order, one record each with path "iree-codegen", the
    kernel architecture as an int or None). None, with each record's reason said, when
    `target` has no flashlift kernels or Triton is missing; shared by the kernel rewrites."""
    ops = collect(module, op_name)
    records = site_records(ops)
    reason = cuda_kernels_unavailable(target)
    for r in records:
        r["reason"] = reason
    return ops, records, (None if reason or not ops else int(target.kernel_arch.replace("sm_", "")))


def cuda_kernels_unavailable(target, kernels: str = "kernels") -> str:
    """Why flashlift's Triton `kernels` ("kernels", "norm kernel", ...) do not run on `target`:
    not a CUDA target with kernels, or Triton missing; "" when they do."""
    if target.kind != "cuda" or not getattr(target, "kernel_arch", ""):
        return f"no flashlift {kernels} for target {target.name}"
    try:
        import triton  # noqa: F401  (kernels are built with it; optional: flashlift[cuda])
    except ImportError as e:
        return f"kernels unavailable ({e}); install flashlift[cuda]"
    return ""


def site_records(ops: list) -> list[dict]:
    """One record per op, in order, each on IREE's codegen until a rewrite takes the op."""
    return [{"location": str(op.operation.location), "site": site_of(op), "path": CODEGEN, "reason": ""}
            for op in ops]


def build_failure(e: Exception) -> str:
    """A record's reason for a kernel that did not build: the error's first line."""
    text = str(e).strip()
    return f"kernel build failed: {text.splitlines()[0][:200] if text else type(e).__name__}"
