"""Dispatch flashlift's CPU FlashAttention kernel for the attention ops it covers.

The CPU target's `dispatch-attention` step (steps.py), after canonicalize-layouts and before
the steps that prepare ops for IREE's codegen (pretranspose-keys, causal-split). For each
`iree_linalg_ext.attention`, in program order, `dispatch_cpu_kernels`:

  1. checks the op is one the kernel (compiler/kernels/cpu/fa_avx2.c) computes exactly:
     attention_coverage.analyze with the CPU kernel's element types (f32, f16, bf16; O the
     same or f32) and head dims (multiples of 16 up to 128), the CUDA kernel's layouts;
  2. decides how the kernel takes its mask (kernel_dispatch.resolve_masks): none or causal
     (top-left or bottom-right, evaluated at compile time and built into the kernel), else read
     at run time as an f32 [B, Skv] key-padding or [B, Sq, Skv] / [Sq, Skv] / [B, H, Sq, Skv] /
     [H, Sq, Skv] additive mask;
  3. reads Q, K, V where the model's projections leave them and writes O where the model's
     transpose back puts it (attention_fusion.seq_major_input / seq_major_consumer: a
     (B, S, heads, D) tensor, or a fused QKV projection's result at each one's columns), so
     neither the transposes nor the slices' copies run;
  4. replaces the op by a call of a private function holding a `flow.dispatch` of the
     kernel's executable (cpu_fa.executable_source: the object and the shim IREE compiles).

Only where the target CPU runs the kernel, x86-64 with AVX2, FMA and F16C (the host when it
has them, or cpu:x86-64-v3 / -v4 / cpu:sapphirerapids), and a C compiler builds it. Which build
of the kernel (`choose_isa`): the best instruction set the target promises (`target_isas`: the
host's flags, or the level's), bf16 inputs on `avx512amx` (bf16 products in AMX tiles) or else
`avx512bf16` (bf16 products, VDPBF16PS) where the CPU has it, a tuning-database entry for the
CPU class and shape overriding. Everything else keeps IREE's
codegen and its record says why. One record per attention op, in program order, as
kernel_dispatch.py's: {"location", "site", "path": "flashlift-cpu <isa>" | "iree-codegen",
"reason", "kernel": {...}}.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import math

from iree.compiler import ir

from flashlift.compiler import tuning
from flashlift.compiler.attention_coverage import analyze
from flashlift.compiler.attention_fusion import kernel_result, row_guard, seq_major_consumer, seq_major_input
from flashlift.compiler.head_transposes import sink_head_transpose
from flashlift.compiler.kernel_dispatch import erase_fences, layout_summary, resolve_masks
from flashlift.compiler.kernel_sites import NotCovered, site_records
from flashlift.compiler.kernel_splice import ModuleSplicer
from flashlift.compiler.kernels import cpu_build, cpu_fa, fa_layouts
from flashlift.cpu import host_arch, host_flags
from flashlift.passes.ir import collect

HEAD_DIMS = range(cpu_fa.HEAD_DIM_MULTIPLE, cpu_fa.MAX_HEAD_DIM + 1, cpu_fa.HEAD_DIM_MULTIPLE)
#: what each x86-64 level (or CPU) promises of the kernel's builds (cpu_build.ISA_CPU_FLAGS), best first
LEVEL_ISAS = {"x86-64-v3": ("avx2",), "x86-64-v4": ("avx512", "avx2"),
              "sapphirerapids": ("avx512amx", "avx512bf16", "avx512", "avx2")}
#: builds for bf16 inputs only (they differ from avx512 in bf16 inputs only)
BF16_ISAS = ("avx512amx", "avx512bf16", "avx512amx_emu")
CAUSAL = {False: 0, "top_left": 1, "bottom_right": 2}


def kernel_path(isa: str) -> str:
    return f"flashlift-cpu {isa}"


def unavailable(target) -> str:
    """Why the CPU kernel cannot run on `target` ("" if it can)."""
    if target.kind != "cpu":
        return f"no flashlift CPU kernel for target {target.name}"
    if target.arch == "host":
        if host_arch() != "x86_64":
            return f"the CPU kernel is x86-64 only (this machine: {host_arch()})"
        missing = [f for f in ("avx2", "fma", "f16c") if f not in (host_flags() or ())]
        return f"this CPU has no {' or '.join(missing)} (the CPU kernel needs AVX2, FMA, F16C)" if missing else ""
    if target.arch not in LEVEL_ISAS:
        return f"target {target.name} does not promise AVX2, FMA and F16C (the CPU kernel needs them: cpu, cpu:x86-64-v3)"
    return ""


_FORCED_ISA: contextvars.ContextVar = contextvars.ContextVar("flashlift_cpu_kernel_isa", default="")


@contextlib.contextmanager
def force_isa(isa: str):
    """Every op a CPU kernel takes inside the block (attention; bf16 linear layers where the
    GEMM has that build) takes the `isa` build, where the target runs it (attn-tune --cpu-kernel
    compiles its candidates so; tests force the emulated and VDPBF16PS builds)."""
    token = _FORCED_ISA.set(isa)
    try:
        yield
    finally:
        _FORCED_ISA.reset(token)


def forced_isa() -> str:
    """The build force_isa set ("" outside it)."""
    return _FORCED_ISA.get()


def target_isas(target) -> list:
    """The kernel builds `target` runs (cpu_build.ISA_CPU_FLAGS), best first ([] if none); a
    forced emulated build first where it runs (force_isa: tests)."""
    if unavailable(target):
        return []
    isas = cpu_build.host_isas() if target.arch == "host" else list(LEVEL_ISAS[target.arch])
    forced = _FORCED_ISA.get()
    return [forced] + isas if forced in cpu_build.EMULATED and cpu_build.runs(forced, isas) else isas


def fits(isa: str, dtype: str) -> bool:
    """Whether the `isa` build is one for `dtype` inputs (BF16_ISAS: bf16 only; the others: any)."""
    return isa not in BF16_ISAS or dtype == "bf16"


def choose_isa(isas: list, dtype: str, tuned: str = "") -> str:
    """The build for an op with `dtype` inputs: a forced (force_isa) or tuned choice the
    target runs, else the best of `isas` for the dtype (avx512amx and avx512bf16 differ from
    avx512 in bf16 inputs only: f32 and f16 inputs take the best other build)."""
    for choice in (_FORCED_ISA.get(), tuned):
        if choice in isas:
            return choice
    best = [isa for isa in isas if fits(isa, dtype)]
    return best[0]


def kernel_shape(plan) -> dict:
    """The tuning database's shape of a planned op (tuning.shape_key)."""
    batched = bool(plan.key_padding_mask or (plan.full_mask and plan.full_mask_batched))
    return {"batch": [plan.batch, plan.heads], "m": plan.sq, "n": plan.head_dim, "k1": plan.head_dim,
            "k2": plan.skv, "elem_type": plan.dtype, "has_mask": bool(plan.causal or plan.key_padding_mask or plan.full_mask),
            "mask_batch_dims": [0] * batched + [1] * bool(plan.full_mask_heads)}


def tuned_isa(family: str, plan) -> str:
    """The build the tuning database records for the op's shape on the `family` of CPUs (the
    best build they run; "" if none)."""
    return tuning.lookup_kernel(kernel_shape(plan), family) or ""


def _build(isas: list, isa: str):
    """The kernel object for `isa`, else for the next build down `isas` that compiles here
    (cpu_build keeps them: each is compiled once per machine); BuildError if none does."""
    errors = []
    for candidate in isas[isas.index(isa):]:
        try:
            return cpu_build.build_object("attention", candidate)
        except cpu_build.BuildError as e:
            errors.append(f"{candidate}: {e}")
    raise cpu_build.BuildError("; ".join(errors))


def dispatch_cpu_kernels(module, target, *, evaluate_masks: bool = True) -> list[dict]:
    """Replaces every attention op the CPU kernel covers by its dispatch (in place); returns
    one record per iree_linalg_ext.attention op."""
    ops = collect(module, "iree_linalg_ext.attention")
    records = site_records(ops)
    reason = unavailable(target) if ops else ""
    if reason:
        for r in records:
            r["reason"] = reason
        return records

    plans: list = [None] * len(ops)
    for i, op in enumerate(ops):
        try:
            plans[i] = analyze(op, cpu_fa.DTYPES, HEAD_DIMS, f"a multiple of {cpu_fa.HEAD_DIM_MULTIPLE} up to "
                                                     f"{cpu_fa.MAX_HEAD_DIM}")
        except NotCovered as e:
            records[i]["reason"] = str(e)
    resolve_masks(module, plans, records, evaluate_masks)
    for i, plan in enumerate(plans):  # a run-time mask: the kernel reads f32 ones
        dtype = plan and (plan.key_padding_mask or plan.full_mask)
        if dtype and dtype != "f32":
            plans[i] = None
            records[i]["reason"] = f"run-time mask in {dtype} (the CPU kernel reads f32 masks)"

    splicer, isas = ModuleSplicer(module), target_isas(target)
    for i, plan in enumerate(plans):
        if plan is None:
            continue
        out_dtype = _element_type(plan.op.operation.results[0])
        try:
            kernel = _build(isas, choose_isa(isas, plan.dtype, tuned_isa(isas[0], plan)))
        except cpu_build.BuildError as e:
            records[i]["reason"] = f"CPU kernel not built: {e}"
            continue
        try:
            _replace(splicer, kernel, plan, out_dtype)
        except Exception as e:  # a bug here: the op is left as written (the call is made last)
            records[i]["reason"] = f"CPU kernel dispatch failed ({type(e).__name__}: {str(e)[:200]})"
            continue
        records[i]["path"] = kernel_path(kernel.isa)
        records[i]["kernel"] = {"name": kernel.symbol(plan.dtype, out_dtype),
                                "block_m": cpu_fa.BLOCK_M, "causal": plan.causal or "none",
                                "mask": ("key-padding (run time)" if plan.key_padding_mask else
                                         "additive per head (run time)" if plan.full_mask_heads else
                                         "additive (run time)" if plan.full_mask else "none"),
                                "empty_rows": "0 (row guard folded in)" if plan.guard else "NaN",
                                "workgroups": list(cpu_fa.workgroups(plan.batch * plan.heads, plan.sq)),
                                "layout": layout_summary(plan)}
    return records


def _mask_kind(plan) -> int:
    """The kernel's mask_kind: 0 none (or causal, built in), 1 [B, Skv] key padding,
    2 [B, Sq, Skv], 3 [Sq, Skv], 4 [B, H, Sq, Skv], 5 [H, Sq, Skv]."""
    if plan.key_padding_mask:
        return 1
    if plan.full_mask and plan.full_mask_heads:
        return 4 if plan.full_mask_batched else 5
    if plan.full_mask:
        return 2 if plan.full_mask_batched else 3
    return 0


def _element_type(value) -> str:
    return str(ir.ShapedType(value.type).element_type)


def _rows(entry, heads: int, head_dim: int) -> tuple:
    """The kernel's (width, col0) of an fa_layouts entry (width 0: head-major)."""
    seq, width, col0 = fa_layouts.rows(entry, heads, head_dim)
    return (width, col0) if seq else (0, 0)


def _replace(splicer: ModuleSplicer, kernel, plan, out_dtype: str) -> None:
    op = plan.op.operation
    with splicer.module.context, op.location:
        # the row guard after the op, and the model's transposes around it, are computed,
        # read and written through by the kernel (attention_fusion)
        plan.guard = row_guard(plan)
        for index in (0, 1):  # Q and K behind rotary embeddings: the head transpose moved to the op
            sink_head_transpose(plan, index)
        plan.in_sources, plan.in_rows = (list(x) for x in zip(*(seq_major_input(plan, i) for i in range(3))))
        plan.out_transpose = seq_major_consumer(plan) if out_dtype == plan.dtype else []
        q, k, v = (src if src is not None else orig for src, orig in zip(plan.in_sources, list(op.operands)[:3]))
        mask = plan.mask if plan.key_padding_mask or plan.full_mask else None
        result = plan.out_transpose[-1].results[0] if plan.out_transpose else kernel_result(plan)
        types = (str(q.type), str(k.type), str(v.type), str(mask.type) if mask is not None else None, str(result.type))
        count = lambda value: math.prod(ir.ShapedType(value.type).shape)  # noqa: E731
        shape = {"batch_heads": plan.batch * plan.heads, "heads": plan.heads,
                 "kv_ratio": plan.heads // plan.kv_heads, "sq": plan.sq, "skv": plan.skv,
                 "head_dim": plan.head_dim, "causal": CAUSAL[plan.causal], "mask_kind": _mask_kind(plan),
                 "mask": count(mask) if mask is not None else 0, "scale": plan.scale,
                 "in_dtype": plan.dtype, "out_dtype": out_dtype,
                 "q": count(q), "k": count(k), "v": count(v), "o": count(result),
                 "empty_zero": bool(plan.guard),
                 "rows": [_rows(e, n, plan.head_dim) for e, n in
                          zip(plan.in_rows + [bool(plan.out_transpose)], (plan.heads, plan.kv_heads, plan.kv_heads, plan.heads))]}
        key = (kernel.digest, tuple(sorted(shape.items())))
        sym = splicer.executable(f"flashlift_fa_cpu_{kernel.isa}_{hashlib.sha1(repr(key).encode()).hexdigest()[:10]}",
                                 lambda name: cpu_fa.executable_source(kernel, name, shape))
        helper = splicer.helper((sym, types), f"{sym}_call", lambda name: cpu_fa.dispatch_func(sym, name, types))
        with ir.InsertionPoint(op):
            call = ir.Operation.create("func.call", results=[result.type],
                                       operands=[q, k, v] + ([mask] if mask is not None else []),
                                       attributes={"callee": ir.FlatSymbolRefAttr.get(helper)})
        result.replace_all_uses_with(call.results[0])
        for absorbed in reversed(plan.guard[:1] + plan.out_transpose):
            absorbed.erase()
        producers = [o.owner.operation for o in op.operands if not isinstance(o.owner, ir.Block)]
        producers += plan.guard[1:]  # the guard's row reduction (maybe shared with other guards)
        op.erase()
        erase_fences(producers)
