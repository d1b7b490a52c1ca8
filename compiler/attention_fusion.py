"""What the attention kernel computes besides the op: the ops around it that it absorbs.

Given a covered op's Plan (attention_coverage.py), each function here matches one
neighbour whose work the kernel does itself, so the rewrite (kernel_dispatch.py) drops it:

  * `row_guard`: raise-attention's row guard after the op (torch's _safe_softmax: 0 on rows
    whose every mask entry is -inf). Rows that see no key. The kernel computes exactly what
    the op does on every row: a row whose every key the mask hides by -inf (or that causal
    bottom-right with Sq > Skv leaves empty) is NaN (0/0, the op's answer) in the kernel
    built with empty_rows="nan"; a row whose every key is FLOOR (a finite value,
    passes/masks.py) is uniform in both. When the op's result is read only by the guard,
    the guard is dropped and the kernel is built with empty_rows="zero": it then computes
    op and guard together, which is exact, since the rows the guard zeroes are exactly the
    kernel's empty rows.
  * `narrowing_consumer`: the truncf of the op's f32 result back to f16/bf16 (after the
    guard or not); the kernel's output replaces the truncation.
  * `seq_major_consumer`: the model's transpose of the output back to (B, Sq, H, D), when it
    is the only use ((b, h, m, n) -> (b, m, h, n), possibly after merging the grouped-query
    head dims): the kernel writes O in that layout (one pass over O less).
  * `seq_major_source`: a (B, S, heads, D) tensor transposed into Q, K or V (possibly behind
    a fence, e.g. layout.py's canonical copy): the kernel reads it there and the copy
    disappears. `seq_major_input` goes one step further where that tensor is a column slice
    of a fused QKV projection's [B * S, width] result (fuse-linears' extract_slice, expanded):
    the kernel reads the projection's result at the slice's column offset, so neither the
    slice's copy nor the transpose runs.

`kernel_result` is the value the kernel's output stands for once these are folded in.
"""

from __future__ import annotations

import math

from iree.compiler import ir

from flashlift.compiler.attention_coverage import Plan
from flashlift.passes import ir as irx
from flashlift.passes import masks
from flashlift.passes.matchers import body, is_op_expr, strip_casts

FENCES = masks.FENCES  # the copies' fences the kernel reads through (and the rewrite erases)


def seq_major_source(plan: Plan, index: int):
    """The (B, S, heads, D) tensor operand `index` (Q, K or V) is a transpose of (possibly
    behind a fence, e.g. layout.py's canonical copy), or None; a grouped-query Q
    (B, G, R, S, D) from (B, S, G, R, D), the same memory as (B, S, G*R, D). The kernel reads
    it there (in_seq_major) and the copy disappears, so the projection's epilogue can stay
    fused."""
    value = plan.op.operation.operands[index]
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    if owner.name in FENCES:
        value = owner.operands[0]
        owner = value.owner
        if isinstance(owner, ir.Block):
            return None
    if owner.name != "linalg.transpose":
        return None
    shape = list(ir.RankedTensorType(value.type).shape)  # (B, heads..., S, D): heads (g, r) in a grouped Q
    rank = len(shape)
    moved = [0] + list(range(2, rank - 1)) + [1, rank - 1]  # from (B, S, heads..., D)
    if rank < 4 or list(ir.DenseI64ArrayAttr(owner.attributes["permutation"])) != moved:
        return None
    heads = plan.heads if index == 0 else plan.kv_heads
    seq = plan.sq if index == 0 else plan.skv
    if shape[0] != plan.batch or math.prod(shape[1:-2]) != heads or shape[-2:] != [seq, plan.head_dim]:
        return None
    return owner.operands[0]


def seq_major_input(plan: Plan, index: int) -> tuple:
    """(the value the kernel reads for operand `index`, its fa_layouts entry): the fused
    projection's result and (width, col0); the (B, S, heads, D) source and True; or
    (None, False), the operand itself, head-major."""
    value = seq_major_source(plan, index)
    if value is None:
        return None, False
    fused = fused_columns(value, plan.head_dim)
    return fused if fused is not None else (value, True)


def fused_columns(value, head_dim: int):
    """(source, (width, col0)) when `value` (B, S, heads..., D) is expand_shape
    [[0, 1], [2, ...]] of a static unit-stride column slice [0, col0] [B*S, heads*D] of a
    row-major [B*S, width] tensor; else None. width and col0 multiples of 8 (16-byte rows
    and tile starts for 2-byte elements: what TMA requires)."""
    owner = value.owner
    shape = list(ir.RankedTensorType(value.type).shape)
    groups = [[0, 1], list(range(2, len(shape)))]
    if isinstance(owner, ir.Block) or owner.name != "tensor.expand_shape" \
            or str(owner.attributes["reassociation"]) != str(groups):
        return None
    sliced = owner.operands[0]
    op = sliced.owner
    if isinstance(op, ir.Block) or op.name != "tensor.extract_slice" or len(op.operands) != 1:
        return None  # (dynamic offsets, sizes or strides are operands)
    source = op.operands[0]
    b, s, columns = shape[0], shape[1], math.prod(shape[2:])
    src = ir.RankedTensorType(source.type)
    if src.rank != 2 or not src.has_static_shape or shape[-1] != head_dim:
        return None
    offsets, sizes, strides = (list(ir.DenseI64ArrayAttr(op.attributes[k]))
                               for k in ("static_offsets", "static_sizes", "static_strides"))
    rows, width = src.shape
    if offsets[0] != 0 or sizes != [b * s, columns] or strides != [1, 1] or rows != b * s:
        return None
    if width % 8 or offsets[1] % 8:
        return None
    return source, (width, offsets[1])


def seq_major_consumer(plan: Plan) -> list:
    """[tensor.collapse_shape (optional), linalg.transpose] when the op's result is only read
    by the model's transpose back to (B, Sq, H, D): the collapse merges the head batch
    dims (grouped-query (b, g, r, m, n) -> (b, g*r, m, n)) and the transpose swaps heads
    and sequence ([0, 2, 1, 3]). The kernel then writes that layout itself. [] otherwise."""
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
