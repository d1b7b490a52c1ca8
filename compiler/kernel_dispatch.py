"""Dispatch flashlift's NVIDIA FlashAttention kernel for the attention ops it covers.

Runs on the IREE-bindings module after raising and lowering annotation, for CUDA targets
whose `kernel_arch` is set ("sm_80" or "sm_90"). For each `iree_linalg_ext.attention` it
decides whether the Triton kernel (compiler/kernels/triton_fa.py) computes exactly that op:

  * Q, K, V and O in f16 or bf16, the same type (O may be f32, the kernel's output is then
    extended; every attention flashlift raises from a model that computes in f16 is so;
    where the model truncates that f32 result back, after the row guard or not, the
    kernel's output replaces the truncation instead, `narrowing_consumer`);
  * static shapes, head dim 64 or 128 with k1 == n;
  * layouts the kernel reads as contiguous (B, H, S, D): Q = (batch..., m, k1),
    K = (kv-batch..., k2, k1), V = (kv-batch..., k2, n), O = (batch..., m, n), where the
    kv-batch dims are a prefix of Q's batch dims. The grouped-query form Q (b, g, r, m, k1)
    with K/V (b, g, k2, k1) / (b, g, k2, n) is the kernel's kv head = q head // ratio on
    the same memory;
  * a scale that is an arith.constant, and an identity score region;
  * no mask, or a mask that is causal. The mask operand flashlift materialises is a float
    tensor computed from constants and index comparisons; when its backward slice reads no
    function argument it is evaluated at compile time (the slice is cloned into a
    standalone function, compiled for llvm-cpu and run with IREE's local-task driver; the
    result is cached by the function's text) and classified as none (all zero), causal
    top-left (masked iff j > i), causal bottom-right (masked iff j > i + (K2 - M)), or other.
    Masked means -inf or <= -1e4; every other entry must be exactly 0.
    A mask that is not classified so (typically one computed from function arguments at
    run time) is still covered when it is a key-padding mask: its map is exactly (the
    leading Q batch dim b, k2) -- e.g. BERT's [B, 1, 1, S] additive mask, which flashlift
    materialises as a [B, K2] tensor -- with b the kernel's batch (Q has >= 2 batch dims
    and K/V at least the leading one), or (k2) alone when the kernel's batch is 1, in f32,
    f16 or bf16. The kernel then adds it to the
    scaled scores (an extra read-only binding, see triton_fa.build_ptx's
    key_padding_mask_dtype), no causal part. Likewise a run-time mask over (b, m, k2)
    ([B, M, K2], e.g. LLaMA's causal + padding mask built from the model's inputs) or
    over (m, k2) alone ([M, K2], one mask for every batch entry): the kernel adds
    mask[b, i, j] (build_ptx's mask_dtype) to every key tile. A causal mask that hides
    every key of some query by a finite value (FLOOR: the op's row is uniform) is added
    at run time so, not classified causal.

Rows that see no key. The kernel computes exactly what the op does on every row: a row
whose every key the mask hides by -inf (or that causal bottom-right with Sq > Skv leaves
empty) is NaN (0/0, the op's answer) in the kernel built with empty_rows="nan"; a row
whose every key is FLOOR (a finite value, passes/masks.py) is uniform in both. When the
op's result is read only by raise-attention's row guard (torch's _safe_softmax: 0 on rows
whose every mask entry is -inf, `row_guard`), the guard is dropped and the kernel is built
with empty_rows="zero": the kernel then computes op and guard together, which is exact,
since the rows the guard zeroes are exactly the kernel's empty rows.

The kernel writes O as (B, Sq, H, D) when the op's only use (after the row guard it
absorbs) is the model's transpose back to that layout ((b, h, m, n) -> (b, m, h, n),
possibly after merging the grouped-query head dims): the transpose is then dropped (one
pass over O less).

A covered op is replaced by a call of a private function holding a `flow.dispatch` of the
kernel (an `hal.executable.source` with the PTX or cubin built by `triton_fa.build_ptx`,
one per distinct kernel), on the op's own operands: the bindings are the operand tensors'
dense row-major memory, so no reshape is needed and result types are kept. Everything else
keeps IREE's codegen. Produces one record per attention op, in program order:
{"location": str(op.location), "path": "triton-fa sm_90" | "iree-codegen", "reason": ...}.
"""

from __future__ import annotations

from flashlift.passes import masks

import dataclasses
import hashlib
import math
from typing import Optional

KERNEL_DTYPES = ("f16", "bf16")
HEAD_DIMS = (64, 128)
MAX_MASK_ELEMENTS = 1 << 26  # larger masks are not evaluated at compile time
PTX_VERSION = 84  # `.version 8.4`: JIT-able by CUDA >= 12.4 drivers (Triton's default 8.7 needs R570+)
CODEGEN = "iree-codegen"

# Compile-time mask values, keyed by the text of the standalone function computing them.
_MASK_CACHE: dict = {}
# Built kernels, keyed by build_ptx's arguments.
_KERNEL_CACHE: dict = {}


class NotCovered(Exception):
    """The kernel does not compute this attention op; the message says why."""


@dataclasses.dataclass
class Plan:
    op: object  # the iree_linalg_ext.attention OpView
    location: str
    dtype: str  # "f16" | "bf16"
    batch: int
    heads: int
    kv_heads: int
    sq: int
    skv: int
    head_dim: int
    scale: float
    mask: object = None  # the mask ir.Value, if any
    mask_roles: list = dataclasses.field(default_factory=list)  # per mask dim: "m", "k2" or a Q batch position
    q_batch_sizes: list = dataclasses.field(default_factory=list)
    causal: object = False  # False | "top_left" | "bottom_right"
    key_padding_mask: Optional[str] = None  # element type of a run-time [B, K2] mask operand
    full_mask: Optional[str] = None  # element type of a run-time [B, M, K2] / [M, K2] mask operand
    full_mask_batched: bool = True
    guard: list = dataclasses.field(default_factory=list)  # [select, reduction] of raise-attention's row guard
    narrow: object = None  # the truncf of an f32 result back to the kernel's type, folded into O
    out_transpose: list = dataclasses.field(default_factory=list)  # [collapse_shape?, transpose] folded into O
    in_sources: list = dataclasses.field(default_factory=lambda: [None] * 3)  # Q/K/V read before a transpose
    kv_batch_len: int = 0
    kernel: object = None  # triton_fa.KernelBinary


def kernel_path(kernel_arch: str) -> str:
    return f"triton-fa {kernel_arch}"


def kernel_sites(module, op_name: str, target) -> tuple:
    """(ops named `op_name` in program order, one record each with path "iree-codegen", the
    kernel architecture as an int or None). None, with each record's reason said, when
    `target` has no flashlift kernels or Triton is missing; shared by the kernel rewrites."""
    from flashlift.passes.ir import collect

    ops = collect(module, op_name)
    records = [{"location": str(op.operation.location), "path": CODEGEN, "reason": ""} for op in ops]
    arch = getattr(target, "kernel_arch", "")
    reason = None
    if target.kind != "cuda" or not arch:
        reason = f"no flashlift kernels for target {target.name}"
    else:
        try:
            import triton  # noqa: F401  (kernels are built with it)
        except ImportError as e:
            reason = f"kernels unavailable ({e}); install flashlift[cuda]"
    for r in records:
        r["reason"] = reason or ""
    return ops, records, (None if reason or not ops else int(arch.replace("sm_", "")))


def build_failure(e: Exception) -> str:
    """A record's reason for a kernel that did not build: the error's first line."""
    text = str(e).strip()
    return f"kernel build failed: {text.splitlines()[0][:200] if text else type(e).__name__}"


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

    masked = [i for i, p in enumerate(plans) if p is not None and p.mask is not None]
    if masked:
        from iree.compiler import ir

        small = [i for i in masked if math.prod(ir.RankedTensorType(plans[i].mask.type).shape) <= MAX_MASK_ELEMENTS]
        if evaluate_masks:
            evaluated = dict(zip(small, evaluate_constants([plans[i].mask for i in small], module)))
        else:
            evaluated = {i: "compile-time mask evaluation is off" for i in small}
        values = [evaluated.get(i, "too large to evaluate at compile time") for i in masked]
        for i, value in zip(masked, values):
            try:
                if isinstance(value, str):
                    raise NotCovered(f"mask: {value}")
                plans[i].causal = causal_kind(mask_as_2d(value, plans[i]))
            except NotCovered as e:
                # the kernel adds the mask operand itself at run time
                kpm = key_padding_mask_type(plans[i])
                full = full_mask_type(plans[i]) if kpm is None else None
                if kpm is not None:
                    plans[i].key_padding_mask = kpm
                    plans[i].causal = False
                elif full is not None:
                    plans[i].full_mask, plans[i].full_mask_batched = full
                    plans[i].causal = False
                else:
                    plans[i] = None
                    records[i]["reason"] = str(e)

    for i, plan in enumerate(plans):
        if plan is None:
            continue
        plan.guard = row_guard(plan)  # first: the model's transpose may follow the guard
        plan.narrow = narrowing_consumer(plan)
        plan.out_transpose = seq_major_consumer(plan)
        plan.in_sources = [seq_major_source(plan, i) for i in range(3)]
        try:
            plan.kernel = build_kernel(plan, sm)
        except Exception as e:  # the kernel does not build / fit for this shape
            plans[i] = None
            records[i]["reason"] = build_failure(e)

    rewriter = _Rewriter(module, arch, scratch_bytes=max([p.kernel.scratch_bytes for p in plans if p] + [0]))
    for i, plan in enumerate(plans):
        if plan is not None:
            rewriter.replace(plan)
            records[i]["path"] = kernel_path(arch)
            records[i]["kernel"] = _kernel_summary(plan)
    return records


# --- which ops the kernel covers -----------------------------------------------------------


def analyze(op) -> Plan:
    """The static checks: element types, shapes, layouts, scale, region. Raises NotCovered."""
    from iree.compiler import ir

    from flashlift.compiler.lowering import query_dim, roles_of

    operation = op.operation
    maps = [a.value for a in operation.attributes["indexing_maps"]]
    operands = list(operation.operands)
    if len(maps) not in (5, 6) or len(operands) != len(maps):
        raise NotCovered("unexpected attention op form")
    q, k, v, scale = operands[:4]
    mask = operands[4] if len(maps) == 6 else None
    result = operation.results[0]
    tensors = {"Q": (q, maps[0]), "K": (k, maps[1]), "V": (v, maps[2]), "O": (result, maps[-1])}
    if mask is not None:
        tensors["mask"] = (mask, maps[4])
    dims = {}
    for name, (value, amap) in tensors.items():
        if not isinstance(value.type, ir.RankedTensorType):
            raise NotCovered(f"{name} is not a ranked tensor")
        t = ir.RankedTensorType(value.type)
        if not t.has_static_shape:
            raise NotCovered(f"dynamic shape of {name} ({t})")
        ds = []
        for expr in amap.results:
            if not isinstance(expr, ir.AffineDimExpr):
                raise NotCovered(f"{name} is indexed by {expr}, not a loop dim")
            ds.append(expr.position)
        dims[name] = ds
    elt = {n: str(ir.RankedTensorType(tensors[n][0].type).element_type) for n in ("Q", "K", "V", "O")}
    if elt["Q"] not in KERNEL_DTYPES:
        raise NotCovered(f"element type {elt['Q']} (kernel: f16, bf16)")
    if elt["K"] != elt["Q"] or elt["V"] != elt["Q"]:
        raise NotCovered(f"mixed element types Q {elt['Q']}, K {elt['K']}, V {elt['V']}")
    if elt["O"] not in (elt["Q"], "f32"):
        raise NotCovered(f"result element type {elt['O']} for {elt['Q']} inputs")

    qd, kd, vd, od = dims["Q"], dims["K"], dims["V"], dims["O"]
    r = roles_of(qd, kd, vd, od)
    if not (len(r["k1"]) == len(r["k2"]) == len(r["n"]) == 1) or len(qd) < 2:
        raise NotCovered("the op's maps do not have exactly one k1, k2 and n dim")
    k1, k2, n = r["k1"][0], r["k2"][0], r["n"][0]
    # For the kernel the other m dims (a grouped-query group r) are query batch dims.
    if not r["m"]:
        raise NotCovered("the op's maps have no query dim")
    m = query_dim(qd, r["m"])
    q_batch = qd[:-2]
    kv_batch = kd[:-2]
    if qd[-2:] != [m, k1]:
        raise NotCovered(f"Q layout {_layout(qd, m, n, k1, k2)}: the kernel needs (batch..., m, k1) contiguous")
    if kd[-2:] != [k2, k1]:
        raise NotCovered(f"K layout {_layout(kd, m, n, k1, k2)}: the kernel needs (batch..., k2, k1) contiguous")
    if vd[-2:] != [k2, n]:
        raise NotCovered(f"V layout {_layout(vd, m, n, k1, k2)}: the kernel needs (batch..., k2, n) contiguous")
    if od != q_batch + [m, n]:
        raise NotCovered(f"O layout {_layout(od, m, n, k1, k2)} does not follow Q's (batch..., m, n)")
    if vd[:-2] != kv_batch:
        raise NotCovered("K and V have different batch dims")
    if q_batch[:len(kv_batch)] != kv_batch:
        raise NotCovered("K/V batch dims are not leading batch dims of Q (kv head = q head // ratio)")

    sizes = {}
    for name in ("Q", "K", "V", "O"):
        t = ir.RankedTensorType(tensors[name][0].type)
        for pos, d in enumerate(dims[name]):
            sizes.setdefault(d, t.shape[pos])
    if sizes[k1] != sizes[n]:
        raise NotCovered(f"head dims differ (k1={sizes[k1]}, n={sizes[n]})")
    if sizes[k1] not in HEAD_DIMS:
        raise NotCovered(f"head dim {sizes[k1]} (kernel: 64 or 128)")

    scale_value = _constant_float(scale)
    if scale_value is None:
        raise NotCovered("the scale is not a compile-time constant")

    region = operation.regions[0].blocks[0]
    body = list(region.operations)
    if len(body) != 1 or len(body[0].operands) != 1 or body[0].operands[0] != region.arguments[0]:
        raise NotCovered("the op has a non-identity score region")

    qb = [sizes[d] for d in q_batch]
    kvb = [sizes[d] for d in kv_batch]
    # Kernel indexing: bh = b * H + h, kv index = b * KVH + h // (H // KVH). With Q's batch
    # dims (b, rest...) and K's a prefix of them this is exact on the row-major memory.
    if len(qb) >= 2 and len(kvb) >= 1:
        batch, heads, kv_heads = qb[0], math.prod(qb[1:]), math.prod(kvb[1:])
    else:
        batch, heads, kv_heads = 1, math.prod(qb), math.prod(kvb)

    plan = Plan(op=op, location=str(operation.location), dtype=elt["Q"], batch=batch, heads=heads,
                kv_heads=kv_heads, sq=sizes[m], skv=sizes[k2], head_dim=sizes[k1], scale=scale_value,
                q_batch_sizes=qb, kv_batch_len=len(kvb))
    if mask is not None:
        plan.mask = mask
        roles = mask_roles(dims["mask"], m, k2, q_batch)
        if roles is None:
            raise NotCovered("the mask varies along a dim that is not batch, m or k2")
        plan.mask_roles = roles
        if key_padding_mask_type(plan) is not None or full_mask_type(plan) is not None:
            return plan  # usable at run time whatever its size
        if math.prod(ir.RankedTensorType(mask.type).shape) > MAX_MASK_ELEMENTS:
            raise NotCovered("mask too large to evaluate at compile time")
    return plan


def mask_roles(mask_dims: list, m: int, k2: int, q_batch: list) -> Optional[list]:
    """Per mask dim: "m", "k2" or its position among Q's batch dims; None if the mask varies
    along another loop."""
    roles = []
    for d in mask_dims:
        if d == m:
            roles.append("m")
        elif d == k2:
            roles.append("k2")
        elif d in q_batch:
            roles.append(q_batch.index(d))
        else:
            return None
    return roles


def _layout(ds: list, m: int, n: int, k1: int, k2: int) -> str:
    names = {m: "m", n: "n", k1: "k1", k2: "k2"}
    return "(" + ", ".join(names.get(d, f"b{d}") for d in ds) + ")"


def _constant_float(value) -> Optional[float]:
    from iree.compiler import ir

    owner = value.owner
    if isinstance(owner, ir.Block) or owner.operation.name != "arith.constant":
        return None
    attr = owner.operation.attributes["value"]
    return float(ir.FloatAttr(attr).value) if isinstance(attr, ir.FloatAttr) else None


FENCES = masks.FENCES


def seq_major_source(plan: Plan, index: int):
    """The (B, S, heads, D) tensor operand `index` (Q, K or V) is a transpose of (possibly
    behind a fence, e.g. layout.py's canonical copy), or None. The kernel reads it there
    (in_seq_major) and the copy disappears, so the projection's epilogue can stay fused."""
    from iree.compiler import ir

    value = plan.op.operation.operands[index]
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    if owner.name in FENCES:
        value = owner.operands[0]
        owner = value.owner
        if isinstance(owner, ir.Block):
            return None
    if owner.name != "linalg.transpose" or str(owner.attributes["permutation"]) != "array<i64: 0, 2, 1, 3>":
        return None
    heads = plan.heads if index == 0 else plan.kv_heads
    seq = plan.sq if index == 0 else plan.skv
    if list(ir.RankedTensorType(value.type).shape) != [plan.batch, heads, seq, plan.head_dim]:
        return None  # e.g. a grouped-query Q (b, g, r, m, k1)
    return owner.operands[0]


def seq_major_consumer(plan: Plan) -> list:
    """[tensor.collapse_shape (optional), linalg.transpose] when the op's result is only read
    by the model's transpose back to (B, Sq, H, D): the collapse merges the head batch
    dims (grouped-query (b, g, r, m, n) -> (b, g*r, m, n)) and the transpose swaps heads
    and sequence ([0, 2, 1, 3]). The kernel then writes that layout itself. [] otherwise."""
    from iree.compiler import ir

    result = kernel_result(plan)
    qb = plan.q_batch_sizes
    if len(qb) < 2 or plan.batch != qb[0]:
        return []
    if str(ir.RankedTensorType(result.type).element_type) != plan.dtype:
        return []  # an f32 result is extended first

    def only_user(value):
        uses = list(value.uses)
        return uses[0].owner if len(uses) == 1 and uses[0].operand_number == 0 else None

    chain = []
    user = only_user(result)
    if user is not None and user.name == "tensor.collapse_shape" and len(qb) > 2:
        groups = [[0], list(range(1, len(qb))), [len(qb)], [len(qb) + 1]]
        if str(user.attributes["reassociation"]) != str(groups):
            return []
        chain.append(user)
        user = only_user(user.results[0])
    elif len(qb) != 2:
        return []
    if user is None or user.name != "linalg.transpose" or str(user.attributes["permutation"]) != "array<i64: 0, 2, 1, 3>":
        return []
    t = ir.RankedTensorType(user.results[0].type)
    if list(t.shape) != [plan.batch, plan.sq, plan.heads, plan.head_dim]:
        return []
    return chain + [user]


def kernel_result(plan: Plan, narrowed: bool = True):
    """The value the kernel's output stands for before any transpose folding: the op's
    result, or the row guard's when the kernel absorbs the guard, or (narrowed) the
    truncf of either back to the kernel's type."""
    if narrowed and plan.narrow is not None:
        return plan.narrow.results[0]
    return plan.guard[0].results[0] if plan.guard else plan.op.operation.results[0]


def narrowing_consumer(plan: Plan):
    """The linalg.generic truncating an f32 result to the kernel's element type when that is
    the result's only use (SDPA and upcast softmaxes in f16/bf16 models: the op accumulates
    into f32, the model rounds back), else None. The kernel's f16/bf16 output would be
    extended to f32 and truncated again, an identity: the kernel's output replaces the
    truncation, and a transpose after it can fold into the kernel's O layout."""
    from iree.compiler import ir

    from flashlift.passes import ir as irx
    from flashlift.passes.matchers import body

    value = kernel_result(plan, narrowed=False)
    if str(ir.RankedTensorType(value.type).element_type) != "f32":
        return None
    uses = list(value.uses)
    if len(uses) != 1 or uses[0].owner.name != "linalg.generic":
        return None
    op = uses[0].owner.opview
    if irx.ins(op) != [value] or len(irx.outs(op)) != 1 or any(k != "parallel" for k in irx.iterator_types(op)):
        return None
    if not all(irx.is_identity(m) for m in irx.indexing_maps(op)):
        return None
    out = op.operation.results[0]
    if str(ir.RankedTensorType(out.type).element_type) != plan.dtype:
        return None
    e = body(op)
    if not (e.kind == "op" and e.name == "arith.truncf" and e.args[0].kind == "arg" and e.args[0].value == 0):
        return None
    return op.operation


def row_guard(plan: Plan) -> list:
    """[select, reduction] when the op's result is read only by raise-attention's row guard
    (passes/raise_attention.py, Builder.row_guard: torch's _safe_softmax after the op), else [].

    Exactly this pattern: `rows = all(mask == -inf)` reduced with andi over k2 from an
    all-true init, `mask` the op's own mask operand, into a tensor over the mask's other
    dims; then `select(rows, 0.0, O)` over the op's result O, each row value broadcast
    along the O dims of the same role (batch, m), O the op's result and its only use.
    A kernel built with empty_rows="zero" computes op and guard together: rows the guard
    zeroes are exactly those whose every key is -inf, which see no key in the kernel."""
    from iree.compiler import ir

    from flashlift.passes import ir as irx
    from flashlift.passes.matchers import body, is_op_expr, strip_casts

    if plan.mask is None or not plan.mask_roles or plan.mask_roles.count("k2") != 1:
        return []
    result = plan.op.operation.results[0]
    uses = list(result.uses)
    if len(uses) != 1:
        return []
    select = uses[0].owner
    if select.name != "linalg.generic" or len(select.results) != 1:
        return []
    sel = select.opview
    ins, outs = irx.ins(sel), irx.outs(sel)
    rank = ir.RankedTensorType(result.type).rank
    if len(ins) != 2 or ins[1] != result or len(outs) != 1 or select.results[0].type != result.type:
        return []
    if any(k != "parallel" for k in irx.iterator_types(sel)):
        return []
    maps = irx.indexing_maps(sel)
    if not (maps[0].n_dims == rank and irx.is_identity(maps[1]) and irx.is_identity(maps[2])):
        return []
    # the row tensor's dims are the mask's dims other than k2, each an O dim of the same role
    k2_pos = plan.mask_roles.index("k2")
    row_roles = [r for r in plan.mask_roles if r != "k2"]
    o_dim = {"m": len(plan.q_batch_sizes), **{p: p for p in range(len(plan.q_batch_sizes))}}
    if irx.map_dims(maps[0]) != [o_dim[r] for r in row_roles]:
        return []
    e = body(sel)
    if not is_op_expr(e, "arith.select") or len(e.args) != 3:
        return []
    cond, zero, keep = e.args
    if not (cond.kind == "arg" and cond.value == 0 and keep.kind == "arg" and keep.value == 1):
        return []
    if not (zero.kind == "const" and zero.value == 0.0 and math.copysign(1.0, zero.value) > 0):
        return []
    # rows = all(mask == -inf) over k2
    red = irx.producer(ins[0])
    if not irx.is_op(red, "linalg.generic") or len(red.operation.results) != 1:
        return []
    if irx.ins(red) != [plan.mask] or len(irx.outs(red)) != 1:
        return []
    n = len(plan.mask_roles)
    kinds = irx.iterator_types(red)
    if kinds != ["reduction" if d == k2_pos else "parallel" for d in range(n)]:
        return []
    rmaps = irx.indexing_maps(red)
    if not irx.is_identity(rmaps[0]) or irx.map_dims(rmaps[1]) != [d for d in range(n) if d != k2_pos]:
        return []
    e = body(red)
    if not is_op_expr(e, "arith.andi") or len(e.args) != 2:
        return []
    acc = [a for a in e.args if a.kind == "arg" and a.value == 1]
    cmp = [a for a in e.args if is_op_expr(a, "arith.cmpf")]
    if len(acc) != 1 or len(cmp) != 1:
        return []
    predicate = str(cmp[0].ref.operation.attributes["predicate"]).split(":")[0].strip()
    operands = [strip_casts(a) for a in cmp[0].args]
    if predicate not in ("1", "oeq") or len(operands) != 2:
        return []
    if not any(a.kind == "arg" and a.value == 0 for a in operands) or \
            not any(a.kind == "const" and a.value == float("-inf") for a in operands):
        return []
    if not _all_true(irx.outs(red)[0]):
        return []
    return [select, red.operation]


def _all_true(value) -> bool:
    """An i1 tensor that is all true: a constant splat, a fill, or a generic yielding true."""
    from flashlift.passes import ir as irx
    from flashlift.passes.matchers import body

    from iree.compiler import ir

    def true(v) -> bool:  # `arith.constant true` (a BoolAttr in the bindings) or dense<true>
        op = irx.producer(v)
        if not irx.is_op(op, "arith.constant"):
            return False
        attr = op.operation.attributes["value"]
        if isinstance(attr, ir.DenseElementsAttr):
            if not attr.is_splat:
                return False
            attr = attr.get_splat_value()
        if isinstance(attr, ir.BoolAttr):
            return bool(attr.value)
        return isinstance(attr, ir.IntegerAttr) and attr.value != 0

    if true(value):
        return True
    op = irx.producer(value)
    if irx.is_op(op, "linalg.fill"):
        return true(irx.ins(op)[0])
    if irx.is_op(op, "linalg.generic") and not irx.ins(op):
        e = body(op)
        return e.kind == "capture" and true(e.value) or e.kind == "const" and e.value not in (0, False)
    return False


# --- masks -----------------------------------------------------------------------------------


KPM_DTYPES = ("f32", "f16", "bf16")


def key_padding_mask_type(plan: Plan) -> Optional[str]:
    """The element type of the plan's mask operand if the kernel can add it at run time as a
    key-padding mask: map (b, k2) with b the leading Q batch dim, which is the kernel's batch
    (Q has >= 2 batch dims, K/V share the leading one), shape [B, K2] (a dense row-major
    tensor value), float; else None. With a kernel batch of 1 a mask over k2 alone ([K2],
    what flashlift materialises for a batch of one) is the same memory and is taken too."""
    from iree.compiler import ir

    if plan.mask is None:
        return None
    t = ir.RankedTensorType(plan.mask.type)
    if plan.mask_roles == ["k2"] and plan.batch == 1:
        pass  # [K2] == [1, K2] in memory
    elif plan.mask_roles == [0, "k2"]:
        if len(plan.q_batch_sizes) < 2 or plan.kv_batch_len < 1:
            return None  # the kernel's batch is not Q's leading batch dim
        if list(t.shape) != [plan.batch, plan.skv]:
            return None
    else:
        return None
    elt = str(t.element_type)
    return elt if elt in KPM_DTYPES else None


def full_mask_type(plan: Plan) -> Optional[tuple]:
    """(element type, batched) of the plan's mask operand if the kernel can add it at run
    time per query and key: map (b, m, k2) with b the leading Q batch dim, which is the
    kernel's batch (as for key_padding_mask_type), shape [B, M, K2]; or map (m, k2),
    shape [M, K2], the same for every batch entry (batched False). Float only; else None."""
    from iree.compiler import ir

    if plan.mask is None:
        return None
    t = ir.RankedTensorType(plan.mask.type)
    if plan.mask_roles == [0, "m", "k2"]:
        if len(plan.q_batch_sizes) < 2 or plan.kv_batch_len < 1:
            return None
        if list(t.shape) != [plan.batch, plan.sq, plan.skv]:
            return None
        batched = True
    elif plan.mask_roles == ["m", "k2"] and list(t.shape) == [plan.sq, plan.skv]:
        batched = False
    else:
        return None
    elt = str(t.element_type)
    return (elt, batched) if elt in KPM_DTYPES else None


def mask_as_2d(array, plan: Plan):
    """The [M, K2] mask the op sees (batch dims must not change it), or NotCovered."""
    import numpy as np

    a = np.asarray(array, dtype=np.float32)
    roles = list(plan.mask_roles)
    for axis in reversed(range(len(roles))):
        if isinstance(roles[axis], int):
            first = np.take(a, [0], axis=axis)
            if not np.array_equal(a, np.broadcast_to(first, a.shape)):
                raise NotCovered("the mask differs between batch entries (e.g. a padding mask)")
            a = np.squeeze(first, axis=axis)
            del roles[axis]
    if roles == ["k2", "m"]:
        a = a.T
    elif roles == ["m"]:
        a = a[:, None]
    elif roles == ["k2"]:
        a = a[None, :]
    elif roles == []:
        a = a.reshape(1, 1)
    return np.broadcast_to(a, (plan.sq, plan.skv))


def causal_kind(mask) -> object:
    """Classifies a [M, K2] additive mask: False (no mask), "top_left" (key j hidden from
    query i iff j > i), "bottom_right" (iff j > i + K2 - M); NotCovered for anything else,
    and for a causal mask that hides every key of a row by a finite value (the op's
    softmax is uniform there, the causal kernel's row empty)."""
    import numpy as np

    # (imported here: flashlift.passes imports gemm_dispatch, which imports this module)
    from flashlift.passes.masks import MASKED  # an entry at or below this hides the key

    a = np.asarray(mask)
    hidden = a <= MASKED
    if not np.all(hidden | (a == 0)):
        raise NotCovered("the mask adds values other than 0 and -inf (a bias), not causal")
    if not hidden.any():
        return False
    rows, cols = a.shape
    i = np.arange(rows)[:, None]
    j = np.arange(cols)[None, :]
    kinds = (("top_left", j > i), ("bottom_right", j > i + (cols - rows)))
    for name, expected in kinds:
        if np.array_equal(hidden, expected):
            # A row the mask hides entirely sees no key in the kernel (0 or NaN, what the op
            # gives, and its row guard, where every key is -inf). Hidden by a finite value
            # (FLOOR) the op's row is uniform instead: that is the run-time mask's case.
            empty = hidden.all(axis=1)
            if not np.all(a[empty] == -np.inf):
                raise NotCovered(f"causal {name.replace('_', '-')} mask hides every key from some queries "
                                 "by a finite value (a uniform row, not causal)")
            return name
    raise NotCovered("the mask is not causal (neither top-left nor bottom-right)")


def evaluate_constants(values: list, module) -> list:
    """Each value computed at compile time (a numpy array), or a string saying why not.

    The backward slice of each value is cloned into its own function of a new module, the
    ones not cached are compiled together for llvm-cpu and run with local-task.
    """
    from iree.compiler import ir

    results: list = [None] * len(values)
    funcs: dict = {}  # function text -> [value indices]
    with module.context, ir.Location.unknown():
        for i, value in enumerate(values):
            try:
                ops = _backward_slice(value)
                standalone = _standalone_func(ops, value)
            except NotCovered as e:
                results[i] = str(e)
                continue
            text = standalone.operation.get_asm(enable_debug_info=False)
            if text in _MASK_CACHE:
                results[i] = _MASK_CACHE[text]
            else:
                funcs.setdefault(text, (standalone, []))[1].append(i)
    if funcs:
        texts = list(funcs)
        try:
            arrays = _run_funcs([funcs[t][0] for t in texts])
        except Exception as e:
            reason = f"compile-time evaluation failed: {str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__}"
            arrays = [reason] * len(texts)
        for text, array in zip(texts, arrays):
            if not isinstance(array, str):
                _MASK_CACHE[text] = array
            for i in funcs[text][1]:
                results[i] = array
    return results


_EVALUABLE = ("arith.", "math.", "linalg.", "tensor.", "util.optimization_barrier", "iree_tensor_ext.compute_barrier.")


def _backward_slice(value) -> list:
    """Ops computing `value`, in program order; NotCovered if it reads a function argument."""
    from iree.compiler import ir

    owner = value.owner
    if isinstance(owner, ir.Block):
        raise NotCovered("the mask is a function argument (computed at run time)")
    block = owner.operation.block
    seen: dict = {}
    work = [value]
    while work:
        v = work.pop()
        producer = v.owner
        if isinstance(producer, ir.Block):
            raise NotCovered("the mask is computed from function arguments (at run time)")
        producer = producer.operation
        if producer in seen:
            continue
        if not producer.name.startswith(_EVALUABLE):
            raise NotCovered(f"the mask is computed by {producer.name}")
        if producer.block != block:
            raise NotCovered("the mask is computed in another block")
        seen[producer] = True
        work.extend(_external_operands(producer))
    return [op.operation for op in block.operations if op.operation in seen]


def _external_operands(op) -> list:
    """Operands of `op` and of the ops nested in it that are defined outside `op`."""
    from iree.compiler import ir

    inner: set = set()
    used: list = []

    def visit(o):
        for region in o.regions:
            for b in region.blocks:
                inner.update(b.arguments)
        if o != op:
            inner.update(o.results)
        used.extend(o.operands)
        return ir.WalkResult.ADVANCE

    op.walk(visit)
    out, keep = [], set()
    for v in used:
        if v not in inner and v not in keep:
            keep.add(v)
            out.append(v)
    return out


def _standalone_func(ops: list, value):
    """A new module with `func.func @mask() -> type` made of clones of `ops`."""
    from iree.compiler import ir
    from iree.compiler.dialects import func

    module = ir.Module.create()
    with ir.InsertionPoint(module.body):
        f = func.FuncOp("mask", ir.FunctionType.get([], [value.type]))
        entry = f.add_entry_block()
    mapping: dict = {}
    with ir.InsertionPoint(entry):
        for op in ops:
            clone = op.clone()

            def remap(o):
                for idx, operand in enumerate(list(o.operands)):
                    if operand in mapping:
                        o.operands[idx] = mapping[operand]
                return ir.WalkResult.ADVANCE

            clone.walk(remap)
            for old, new in zip(op.results, clone.results):
                mapping[old] = new
        func.ReturnOp([mapping[value]])
    return module


def _run_funcs(modules: list) -> list:
    """Compiles the @mask functions of `modules` (as @mask_<i>) into one llvm-cpu module
    and runs each."""
    import numpy as np
    import iree.runtime as rt
    from iree.compiler import ir
    from iree.compiler.tools import compile_str

    from flashlift.compiler.targets import parse_target

    with modules[0].context, ir.Location.unknown():
        combined = ir.Module.create()
        for i, m in enumerate(modules):
            f = m.body.operations[0].operation.clone(ip=ir.InsertionPoint(combined.body))
            f.attributes["sym_name"] = ir.StringAttr.get(f"mask_{i}")
        source = combined.operation.get_asm(enable_debug_info=False)
    vmfb = compile_str(source, extra_args=list(parse_target("cpu").flags))
    config = rt.Config("local-task")
    ctx = rt.SystemContext(config=config)
    ctx.add_vm_module(rt.VmModule.copy_buffer(ctx.instance, vmfb))
    out = []
    for i in range(len(modules)):
        out.append(np.array(ctx.modules.module[f"mask_{i}"]().to_host()))
    return out


# --- kernels ---------------------------------------------------------------------------------


def build_kernel(plan: Plan, sm: int):
    """triton_fa.build_ptx for the plan's shape (cached in-process; Triton caches on disk)."""
    from flashlift.compiler.kernels import triton_fa

    key = (plan.batch, plan.heads, plan.kv_heads, plan.sq, plan.skv, plan.head_dim, plan.dtype,
           plan.causal, float(plan.scale), sm, plan.key_padding_mask, plan.full_mask, plan.full_mask_batched,
           bool(plan.out_transpose), tuple(s is not None for s in plan.in_sources), empty_rows(plan))
    if key not in _KERNEL_CACHE:
        _KERNEL_CACHE[key] = triton_fa.build_ptx(
            batch=plan.batch, heads=plan.heads, kv_heads=plan.kv_heads, sq=plan.sq, skv=plan.skv,
            head_dim=plan.head_dim, dtype=plan.dtype, causal=plan.causal or False, scale=plan.scale,
            arch=sm, ptx_version=PTX_VERSION, key_padding_mask_dtype=plan.key_padding_mask,
            mask_dtype=plan.full_mask, mask_batched=plan.full_mask_batched,
            out_seq_major=bool(plan.out_transpose), in_seq_major=tuple(s is not None for s in plan.in_sources),
            empty_rows=empty_rows(plan))
    return _KERNEL_CACHE[key]


def empty_rows(plan: Plan) -> str:
    """What the kernel writes on a query row that sees no key: the op's answer there is
    NaN (0/0); with the row guard folded in (plan.guard), 0."""
    return "zero" if plan.guard else "nan"


def object_kind(sm: int) -> str:
    """sm_90a: the cubin (no JIT at load; it only loads on cc 9.0 anyway). sm_80: the PTX,
    which the driver JIT-compiles for whatever GPU >= 8.0 it runs on."""
    return "cubin" if sm == 90 else "ptx"


def _kernel_summary(plan: Plan) -> dict:
    kb = plan.kernel
    c = kb.config
    return {"name": kb.name, "target": kb.ptx_target, "grid": list(kb.grid), "block": list(kb.block),
            "shared_mem_bytes": kb.shared_mem_bytes, "causal": plan.causal or "none",
            "mask": (f"key-padding [{plan.batch}, {plan.skv}] {plan.key_padding_mask} (run time)"
                     if plan.key_padding_mask else
                     (f"additive [{', '.join(map(str, ([plan.batch] if plan.full_mask_batched else []) + [plan.sq, plan.skv]))}]"
                      f" {plan.full_mask} (run time)") if plan.full_mask else ("causal" if plan.causal else "none")),
            "empty_rows": "0 (row guard folded in)" if plan.guard else "NaN",
            "tile": [c.get("BLOCK_M"), c.get("BLOCK_N"), c.get("num_warps"), c.get("num_stages")],
            "layout": ", ".join(f"{n} {'(B, S, H, D)' if seq else '(B, H, S, D)'}" for n, seq in
                                zip("QKVO", [s is not None for s in plan.in_sources] + [bool(plan.out_transpose)]))}


class ModuleSplicer:
    """Adds kernel executables and their call helpers to a module, each once, under names
    no symbol of the module has (shared by the attention and GEMM kernel rewrites)."""

    def __init__(self, module):
        self.module = module  # an ir.Module or its builtin.module op
        self.body = module.body if hasattr(module, "body") else module.regions[0].blocks[0]
        self.executables: dict = {}  # key -> executable symbol
        self.helpers: dict = {}  # key -> helper function name
        self.taken = _symbols(self.body)

    def _unique(self, base: str) -> str:
        name, i = base, 0
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name

    def executable(self, base: str, text_of) -> str:
        """The symbol of the executable named after `base`; `text_of(symbol)` gives its
        text the first time."""
        return self._once(self.executables, base, base, text_of)

    def helper(self, key, base: str, text_of, uses: str = "") -> str:
        """The name of the helper function for `key` (text_of(name) the first time). `uses`:
        the text of module symbols the helper refers to (already added), for parsing it."""
        return self._once(self.helpers, key, base, text_of, uses)

    def global_(self, key, base: str, text_of) -> str:
        """The name of the module global for `key` (text_of(name) the first time). Globals go
        first in the module: IREE 3.13's conversion to streams fails on a util.global.store
        it meets before the global's declaration ("failed to legalize ... marked illegal")."""
        return self._once(self.helpers, key, base, text_of, first=True)

    def _once(self, table: dict, key, base: str, text_of, uses: str = "", first: bool = False) -> str:
        from iree.compiler import ir

        if key not in table:
            name = table[key] = self._unique(base)
            # `uses` is parsed with the text (so that it verifies) but not added again
            known = len(list(ir.Module.parse("module {\n" + uses + "}\n", self.module.context).body.operations))
            parsed = ir.Module.parse("module {\n" + uses + text_of(name) + "}\n", self.module.context)
            anchor = list(self.body.operations)[0] if first and list(self.body.operations) else None
            for op in list(parsed.body.operations)[known:]:
                op.operation.detach_from_parent()
                if anchor is not None:
                    ir.InsertionPoint(anchor).insert(op.operation)
                else:
                    self.body.append(op.operation)
        return table[key]


class _Rewriter(ModuleSplicer):
    """Replaces attention ops by calls of the kernel's helper functions."""

    def __init__(self, module, arch: str, scratch_bytes: int = 0):
        super().__init__(module)
        self.arch = arch
        # One global scratch buffer for every kernel that needs one (sized for the largest;
        # a kernel uses its prefix): a single allocation of its own, so the allocator's
        # alignment holds (Triton's tensor maps need 128 bytes; globals IREE packs into one
        # slab get only its smaller offset alignment).
        self.scratch_bytes = scratch_bytes

    def replace(self, plan: Plan) -> None:
        from iree.compiler import ir

        with self.module.context, plan.op.operation.location:
            self._replace(plan)

    def _replace(self, plan: Plan) -> None:
        from iree.compiler import ir

        from flashlift.compiler.kernels import iree_dispatch
        from flashlift.passes.ir import erase_dead

        kb = plan.kernel
        kind = object_kind(kb.arch)
        digest = hashlib.sha1(repr(sorted(kb.config.items())).encode() + kind.encode()).hexdigest()[:10]
        sym = self.executable(f"flashlift_fa_sm{kb.arch}_{digest}",
                              lambda name: iree_dispatch.executable_source(kb, name, object_kind=kind,
                                                                           object_label=f"{name}.{kind}"))
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
            scratch = (self.global_("scratch", "flashlift_scratch",
                                    lambda name: iree_dispatch.scratch_global(name, self.scratch_bytes)),
                       self.scratch_bytes)
            uses = iree_dispatch.scratch_global(*scratch)
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
        for i, p in enumerate(producers):  # fences of the copies the kernel reads through
            if p.name in FENCES and p.operands and not list(p.results[0].uses):
                inner = p.operands[0].owner
                p.erase()
                producers[i] = inner.operation if not isinstance(inner, ir.Block) else None
        producers = [p for p in producers if p is not None]
        erase_dead(producers)


def _symbols(body) -> set:
    from iree.compiler import ir

    names = set()
    for op in body.operations:
        if "sym_name" in op.operation.attributes:
            names.add(ir.StringAttr(op.operation.attributes["sym_name"]).value)
    return names
