"""Dispatch flashlift's NVIDIA FlashAttention kernel for the attention ops it covers.

Runs on the IREE-bindings module after raising and lowering annotation, for CUDA targets
whose `kernel_arch` is set ("sm_80" or "sm_90"; the `dispatch-attention` step of steps.py).
For each `iree_linalg_ext.attention`, in program order, `dispatch_kernels`:

  1. checks the op is one the Triton kernel (compiler/kernels/triton_fa.py) computes
     exactly: attention_coverage.analyze gives its Plan or the reason it is not covered;
  2. decides how the kernel takes the op's mask (attention_masks.py): its value computed
     at compile time (mask_consteval.py) and classified as none or causal (the kernel
     builds the pattern in), else read at run time as a key-padding or a full mask, else
     the op is not covered;
  3. folds in the ops around the op that the kernel computes too (attention_fusion.py):
     the row guard, the truncation of an f32 result, the transposes of Q, K, V and O;
  4. builds the kernel (kernel_build.attention_kernel, one per distinct kernel);
  5. replaces the op (and what it absorbed) by a call of a private function holding a
     `flow.dispatch` of the kernel (an `hal.executable.source` with the PTX or cubin,
     kernel_splice.py), on the op's own operands: the bindings are the operand tensors'
     dense row-major memory, so no reshape is needed and result types are kept.

Everything else keeps IREE's codegen. Produces one record per attention op, in program
order: {"location": str(op.location), "path": "triton-fa sm_90" | "iree-codegen",
"reason": ..., "kernel": {...} (for a dispatched op: name, grid, tile, mask, layouts)}.
"""

from __future__ import annotations

import math

from iree.compiler import ir

from flashlift.compiler.attention_coverage import Plan, analyze
from flashlift.compiler.attention_fusion import (FENCES, kernel_result, narrowing_consumer, row_guard,
                                                 seq_major_consumer, seq_major_input)
from flashlift.compiler.attention_masks import (causal_kind, full_mask_type, head_mask_type, key_padding_mask_type,
                                               mask_as_2d)
from flashlift.compiler.head_transposes import sink_head_transpose
from flashlift.compiler.kernel_build import attention_kernel
from flashlift.compiler.kernel_sites import NotCovered, build_failure, kernel_sites
from flashlift.compiler.kernel_splice import ModuleSplicer
from flashlift.compiler.kernels import iree_dispatch
from flashlift.compiler.mask_consteval import MAX_MASK_ELEMENTS, evaluate_constants
from flashlift.passes.ir import erase_dead


def kernel_path(kernel_arch: str) -> str:
    return f"triton-fa {kernel_arch}"


def dispatch_kernels(module, target, *, evaluate_masks: bool = True) -> list[dict]:
    """Replaces every attention op the kernel covers by a kernel dispatch (in place).

    `target` is a flashlift Target; nothing happens (every op keeps IREE codegen) when its
    `kernel_arch` is empty. Returns one record per iree_linalg_ext.attention op.
    """
    ops, records, sm = kernel_sites(module, "iree_linalg_ext.attention", target)
    if sm is None:
        return records
    arch = target.kernel_arch

    plans: list = [None] * len(ops)
    for i, op in enumerate(ops):
        try:
            plans[i] = analyze(op)
        except NotCovered as e:
            records[i]["reason"] = str(e)

    resolve_masks(module, plans, records, evaluate_masks)

    for i, plan in enumerate(plans):
        if plan is None:
            continue
        plan.guard = row_guard(plan)  # first: the model's transpose may follow the guard
        plan.narrow = narrowing_consumer(plan)
        plan.out_transpose = seq_major_consumer(plan)
        for index in (0, 1):  # Q and K behind rotary embeddings: the head transpose moved to the op
            sink_head_transpose(plan, index)
        plan.in_sources, plan.in_rows = (list(x) for x in zip(*(seq_major_input(plan, i) for i in range(3))))
        try:
            plan.kernel = attention_kernel(plan, sm)
        except Exception as e:  # the kernel does not build / fit for this shape
            plans[i] = None
            records[i]["reason"] = build_failure(e)

    rewriter = AttentionRewriter(module, scratch_bytes=max([p.kernel.scratch_bytes for p in plans if p] + [0]))
    for i, plan in enumerate(plans):
        if plan is not None:
            rewriter.replace(plan)
            records[i]["path"] = kernel_path(arch)
            records[i]["kernel"] = _kernel_summary(plan)
    return records


def resolve_masks(module, plans: list, records: list, evaluate_masks: bool = True) -> None:
    """How each plan's kernel takes its op's mask, in place: the mask's value computed at
    compile time and classified as causal (plan.causal), else read by the kernel
    at run time as a key-padding or a full mask (with a row per head where it has one:
    plan.full_mask_heads), else the plan is dropped (None) and its record says why.
    Shared by the CUDA and the CPU dispatch."""
    masked = [i for i, p in enumerate(plans) if p is not None and p.mask is not None]
    if not masked:
        return
    small = [i for i in masked if math.prod(ir.RankedTensorType(plans[i].mask.type).shape) <= MAX_MASK_ELEMENTS]
    if evaluate_masks:
        evaluated = dict(zip(small, evaluate_constants([plans[i].mask for i in small], module)))
    else:
        evaluated = {i: "compile-time mask evaluation is off" for i in small}
    for i in masked:
        value = evaluated.get(i, "too large to evaluate at compile time")
        try:
            if isinstance(value, str):
                raise NotCovered(f"mask: {value}")
            plans[i].causal = causal_kind(mask_as_2d(value, plans[i].mask_roles, plans[i].sq, plans[i].skv))
        except NotCovered as e:
            # the kernel adds the mask operand itself at run time
            kpm = key_padding_mask_type(plans[i])
            full = full_mask_type(plans[i]) if kpm is None else None
            per_head = head_mask_type(plans[i]) if kpm is None and full is None else None
            if kpm is not None:
                plans[i].key_padding_mask = kpm
                plans[i].causal = False
            elif full is not None:
                plans[i].full_mask, plans[i].full_mask_batched = full
                plans[i].causal = False
            elif per_head is not None:
                (plans[i].full_mask, plans[i].full_mask_batched), plans[i].full_mask_heads = per_head, True
                plans[i].causal = False
            else:
                plans[i] = None
                records[i]["reason"] = str(e)


def _kernel_summary(plan: Plan) -> dict:
    kb = plan.kernel
    c = kb.config
    return {"name": kb.name, "target": kb.ptx_target, "grid": list(kb.grid), "block": list(kb.block),
            "shared_mem_bytes": kb.shared_mem_bytes, "causal": plan.causal or "none",
            "mask": _mask_summary(plan),
            "empty_rows": "0 (row guard folded in)" if plan.guard else "NaN",
            "tile": [c.get("BLOCK_M"), c.get("BLOCK_N"), c.get("num_warps"), c.get("num_stages")],
            "layout": layout_summary(plan)}


def _mask_summary(plan: Plan) -> str:
    """'key-padding [B, K2] f32 (run time)', 'additive [B, H, M, K2] f32 (run time)', 'causal' or 'none'."""
    if plan.key_padding_mask:
        return f"key-padding [{plan.batch}, {plan.skv}] {plan.key_padding_mask} (run time)"
    if plan.full_mask:
        lead = ([plan.batch] if plan.full_mask_batched else []) + ([plan.heads] if plan.full_mask_heads else [])
        return f"additive [{', '.join(map(str, lead + [plan.sq, plan.skv]))}] {plan.full_mask} (run time)"
    return "causal" if plan.causal else "none"


def layout_summary(plan: Plan) -> str:
    """'Q (B, S, H, D), K ..., O (B, H, S, D)'; a fused projection's column: 'Q cols 0:1024 of [4096, 3072]'."""
    def one(name, entry, source):
        if entry is False:
            return f"{name} (B, H, S, D)"
        if entry is True:
            return f"{name} (B, S, H, D)"
        width, col0 = entry
        heads = plan.heads if name == "Q" else plan.kv_heads
        rows = ir.RankedTensorType(source.type).shape[0]
        return f"{name} cols {col0}:{col0 + heads * plan.head_dim} of [{rows}, {width}]"
    return ", ".join([one(n, e, src) for n, e, src in zip("QKV", plan.in_rows, plan.in_sources)]
                     + [f"O {'(B, S, H, D)' if plan.out_transpose else '(B, H, S, D)'}"])


class AttentionRewriter(ModuleSplicer):
    """Replaces attention ops by calls of the kernel's helper functions."""

    def __init__(self, module, scratch_bytes: int = 0):
        super().__init__(module)
        # One global scratch buffer for every kernel that needs one (sized for the largest;
        # a kernel uses its prefix): a single allocation of its own, so the allocator's
        # alignment holds (Triton's tensor maps need 128 bytes; globals IREE packs into one
        # slab get only its smaller offset alignment).
        self.scratch_bytes = scratch_bytes

    def replace(self, plan: Plan) -> None:
        with self.module.context, plan.op.operation.location:
            self._replace(plan)

    def _replace(self, plan: Plan) -> None:
        kb = plan.kernel
        sym = self.kernel_executable("fa", kb)
        operation = plan.op.operation
        originals = list(operation.operands)[:3]
        q, k, v = (src if src is not None else orig for src, orig in zip(plan.in_sources, originals))
        result = kernel_result(plan)  # the op's, or its row guard's (computed by the kernel)
        if plan.out_transpose:  # the kernel writes what the model's transpose produced
            result = plan.out_transpose[-1].results[0]
        rtype = ir.RankedTensorType(result.type)
        otype = ir.RankedTensorType.get(list(rtype.shape), ir.RankedTensorType(q.type).element_type)
        types = (str(q.type), str(k.type), str(v.type), str(otype))
        operands = [q, k, v]
        mtype = None
        if plan.key_padding_mask or plan.full_mask:
            operands.append(plan.mask)
            mtype = str(plan.mask.type)
        scratch, uses = None, ""
        if kb.scratch_bytes:  # the dispatches that share it are ordered by it, as they are anyway
            scratch, uses = self.scratch_buffer("flashlift_scratch", self.scratch_bytes)
        helper = self.helper((sym, types, str(rtype), mtype), f"{sym}_call",
                             lambda name: iree_dispatch.dispatch_func(kb, sym, name, types, result_type=str(rtype),
                                                                      mask_type_=mtype, scratch=scratch), uses)
        with ir.InsertionPoint(operation):
            call = ir.Operation.create("func.call", results=[rtype], operands=operands,
                                       attributes={"callee": ir.FlatSymbolRefAttr.get(helper)})
        result.replace_all_uses_with(call.results[0])
        absorbed = plan.guard[:1] + ([plan.narrow] if plan.narrow is not None else []) + plan.out_transpose
        for op in reversed(absorbed):  # now unused: transpose, collapse, truncation, guard
            op.erase()
        producers = [o.owner.operation for o in operation.operands if not isinstance(o.owner, ir.Block)]
        producers += plan.guard[1:]  # the guard's row reduction (other guards on the same mask may share it)
        operation.erase()
        erase_fences(producers)


def erase_fences(producers: list) -> None:
    """Erases the replaced op's now unused producers: the fences of the copies the kernel
    reads through (which erase_dead leaves, as it leaves every non-tensor op), then what
    only they read."""
    for i, p in enumerate(producers):
        if p.name in FENCES and p.operands and not list(p.results[0].uses):
            inner = p.operands[0].owner
            p.erase()
            producers[i] = inner.operation if not isinstance(inner, ir.Block) else None
    erase_dead([p for p in producers if p is not None])
