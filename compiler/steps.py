"""flashlift's codegen steps as registered passes (each `run(module_op, results, **options)`).

The raising passes (passes/) decide *what* is computed; these decide *how* for a target:
layouts the lowering configs and kernels expect, flashlift's kernels where they cover an op,
and the lowering configuration of the ops left to IREE. compiler/pipeline.py lists them per
target. Steps that decide something per site append one `SiteRecord` (passes/records.py)
each to `results`.
"""

from __future__ import annotations

from flashlift.compiler import cpu_gemm_dispatch, gemm_dispatch, layout, lowering, norm_dispatch, rotary_dispatch
from flashlift.compiler.causal_split import split_causal
from flashlift.compiler.cpu_dispatch import dispatch_cpu_kernels
from flashlift.compiler.kernel_dispatch import dispatch_kernels
from flashlift.compiler.kernel_sites import CODEGEN
from flashlift.compiler.targets import parse_target
from flashlift.errors import InputError
from flashlift.passes.ir import collect
from flashlift.passes.records import SiteRecord, site_of


def _records(stage: str, kind: str, dicts: list) -> list:
    """A dispatch rewrite's records ({"location", "site", "path", "reason", details...}) as SiteRecords."""
    own = ("location", "site", "path", "reason")
    return [SiteRecord(stage, kind, d["location"], d["path"], d.get("reason", ""),
                       {k: v for k, v in d.items() if k not in own}, d.get("site")) for d in dicts]


def _switch(name: str, value: str) -> bool:
    """An on/off pass option as a bool; anything else is an InputError naming the option."""
    if value not in ("on", "off"):
        raise InputError(f"pass option {name}={value}: expected on or off")
    return value == "on"


def canonicalize_layouts(module, results: list) -> None:
    """Q, K, V and O of every attention op with its batch dims leading, in one order."""
    with module.context:
        layout.canonicalize_layouts(module)


def pretranspose_keys(module, results: list) -> None:
    """CPU: K as (batch.., k1, k2), what the CPU configs are tuned for."""
    with module.context:
        layout.pretranspose_keys(module)


def dispatch_attention(module, results: list, target: str = "", arch: str = "sm_90", kernels: str = "on") -> None:
    """CUDA and CPU: attention ops flashlift's FlashAttention kernel for the target covers
    become its dispatches; kernels=off keeps IREE's codegen for all (and records say so)."""
    if not _switch("kernels", kernels):
        results.extend(SiteRecord("dispatch-attention", "attention", str(op.operation.location), CODEGEN,
                                  "use_kernels=False", site=site_of(op))
                       for op in collect(module, "iree_linalg_ext.attention"))
        return
    t = parse_target(target or f"cuda:{arch}")
    dispatch = dispatch_cpu_kernels if t.kind == "cpu" else dispatch_kernels
    results.extend(_records("dispatch-attention", "attention", dispatch(module, t)))


def dispatch_gemms(module, results: list, target: str = "", arch: str = "sm_90", activations: str = "on",
                   kernels: str = "on", isa: str = cpu_gemm_dispatch.ISA) -> None:
    """CUDA: f16/bf16 linear layers flashlift's GEMM kernel covers become its dispatches, with a
    GELU or SwiGLU after them in the kernel's epilogue (activations=off: left to IREE). CPU with
    AMX: bf16 linear layers become the CPU GEMM kernel's (`isa`: another build the target runs)."""
    t = parse_target(target or f"cuda:{arch}")
    if t.kind == "cpu":
        records = cpu_gemm_dispatch.dispatch_cpu_gemms(module, t, use_kernels=_switch("kernels", kernels), isa=isa)
    else:
        records = gemm_dispatch.dispatch_gemms(module, t, _switch("activations", activations))
    results.extend(_records("dispatch-gemms", "gemm", records))


def dispatch_norms(module, results: list, target: str = "cpu", kernels: str = "on") -> None:
    """CPU, CUDA: each LayerNorm (with the residual add before it) -> flashlift's kernel."""
    records = norm_dispatch.dispatch_norms(module, parse_target(target), use_kernels=_switch("kernels", kernels))
    results.extend(_records("dispatch-norms", "norm", records))


def dispatch_rotary(module, results: list, target: str = "cuda:sm_90", kernels: str = "on") -> None:
    """CUDA: each rotary embedding (x * cos + rotate_half(x) * sin) -> flashlift's kernel."""
    records = rotary_dispatch.dispatch_rotary(module, parse_target(target), use_kernels=_switch("kernels", kernels))
    results.extend(_records("dispatch-rotary", "rotary", records))


def mask_dynamic_keys(module, results: list) -> None:
    """GPU: a zero [k2] mask on mask-less ops with a dynamic key length (IREE pads through it)."""
    with module.context:
        lowering.mask_dynamic_keys(module)


def annotate_lowering(module, results: list, target: str = "cpu") -> None:
    """The lowering configuration (tuning database, then heuristics) of each attention op left
    to IREE's codegen; runs last, after the kernels took theirs."""
    lowering.annotate(module, parse_target(target))


def causal_split(module, results: list) -> None:
    """CPU: a causal op known at compile time becomes one op per query chunk."""
    split_causal(module)


STEPS = {
    "canonicalize-layouts": ("Make attention operands' batch dims leading and ordered", canonicalize_layouts),
    "pretranspose-keys": ("CPU: pre-transpose K to (batch, k1, k2) for the CPU configs", pretranspose_keys),
    "causal-split": ("CPU: split causal attention into query chunks (no masked key blocks)", causal_split),
    "dispatch-attention": ("CUDA, CPU: attention -> flashlift's FlashAttention kernel where it covers the op",
                           dispatch_attention),
    "dispatch-norms": ("CPU, CUDA: residual add + LayerNorm -> flashlift's LayerNorm kernel", dispatch_norms),
    "dispatch-gemms": ("CUDA, CPU with AMX: linear layers -> flashlift's GEMM kernel where it covers them", dispatch_gemms),
    "dispatch-rotary": ("CUDA: rotary embeddings -> flashlift's rotary kernel", dispatch_rotary),
    "mask-dynamic-keys": ("GPU: zero mask over a dynamic key length (IREE pads through it)", mask_dynamic_keys),
    "annotate-lowering": ("Attach the chosen lowering config to each attention op left to IREE", annotate_lowering),
}
