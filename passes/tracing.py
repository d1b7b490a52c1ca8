"""Following a raise-attention candidate's tensors through data movement.

Backwards from the softmax to the Q.K contraction (`find_scores`), from Q, K and V to their
roots through transposes, reshapes, broadcasts, scalings and widening casts
(`trace_operand`), and forwards from the softmax to the P.V contraction through casts,
reshapes and torch's `_safe_softmax` guard (`follow_probabilities`). Layouts are lists of
atom groups (dims.Atoms), so a reshape or transpose is a relabelling, never materialised.
"""

from __future__ import annotations

from typing import Optional

from iree.compiler import ir

from . import ir as irx
from .dims import Atoms
from .matchers import Contraction, NoMatch, body, copy_like_map, is_elementwise, is_op_expr, match_contraction, require, strip_casts
from .scores import Scale, scalar_constant, slope


def _scale_generic(op) -> Optional[tuple[ir.Value, Scale]]:
    """x * c or x / c on a whole tensor (identity maps): (x, c)."""
    if not is_elementwise(op):
        return None
    maps = irx.indexing_maps(op)
    e = body(op)
    tensor_args = [i for i, m in enumerate(maps[:-1]) if len(m.results)]
    if len(tensor_args) != 1 or not irx.is_identity(maps[tensor_args[0]]):
        return None
    try:
        s = slope(e, tensor_args[0], op)
    except NoMatch:
        return None
    # Only genuine scalings fold into the scale. A bare precision cast must stay: looking
    # through `truncf` would make the attention read the f32 value before it (f32 attention).
    if not is_op_expr(e, "arith.mulf", "arith.divf"):
        return None
    return op.operation.operands[tensor_args[0]], s


def _widening_cast(op) -> bool:
    """x -> extf(x) on a whole tensor: the matmul reads a widened copy of a narrow tensor."""
    if not is_elementwise(op) or len(irx.ins(op)) != 1 or not irx.is_identity(irx.indexing_maps(op)[0]):
        return False
    e = body(op)
    return is_op_expr(e, "arith.extf") and e.args[0].kind == "arg" and e.args[0].value == 0


def trace_operand(value: ir.Value, layout: list, atoms: Atoms, scale: list, widen: bool = True) -> tuple[ir.Value, list]:
    """Follows an operand back through transposes, reshapes, broadcasts, scalings and (with
    `widen`) widening casts: products of f16 values are exact in f32 and the attention op
    accumulates in f32, so reading the narrow tensor computes the same scores.

    Returns the root value and its layout; multiplies found are appended to `scale`.
    """
    while True:
        atoms.note(value, layout)
        op = irx.producer(value)
        if irx.is_op(op, "linalg.transpose"):
            perm = list(op.operation.attributes["permutation"])
            src = [None] * len(perm)
            for i, p in enumerate(perm):
                src[p] = layout[i]
            value, layout = op.operation.operands[0], src
        elif irx.is_op(op, "tensor.collapse_shape"):
            src_value = op.operation.operands[0]
            src_shape = irx.shape(src_value)
            src = []
            for i, group in enumerate(irx.reassociation(op)):
                parts = atoms.split(layout[i], [src_shape[j] for j in group])
                if parts is None:
                    return value, layout
                src.extend(parts)
            value, layout = src_value, src
        elif irx.is_op(op, "tensor.expand_shape"):
            src = [sum((layout[j] for j in group), []) for group in irx.reassociation(op)]
            value, layout = op.operation.operands[0], src
        elif op is not None and copy_like_map(op) is not None:
            dims = irx.map_dims(copy_like_map(op))
            if -1 in dims:
                return value, layout
            value, layout = irx.ins(op)[0], [[] if d == "0" else layout[d] for d in dims]
        elif op is not None and _scale_generic(op) is not None:
            value, s = _scale_generic(op)
            scale.append(s)
        elif widen and op is not None and _widening_cast(op):
            value = irx.ins(op)[0]
        else:
            return value, layout


def permutation(op) -> Optional[list]:
    """For a transpose (linalg.transpose or a copy generic with a permutation map): the
    source dim each result dim reads."""
    if irx.is_op(op, "linalg.transpose"):
        return list(op.operation.attributes["permutation"])
    amap = copy_like_map(op) if irx.is_op(op, "linalg.generic") else None
    if amap is not None and amap.is_permutation:
        dims = irx.map_dims(amap)  # source dim p reads loop dims[p]; result dim d is loop d
        return [dims.index(d) for d in range(len(dims))]
    return None


def forward_layout(op, layout: list, atoms: Atoms) -> list:
    """Layout of a reshape's or transpose's result given its source's layout."""
    perm = permutation(op)
    if perm is not None:
        return [layout[p] for p in perm]
    groups = irx.reassociation(op)
    if irx.is_op(op, "tensor.collapse_shape"):
        return [sum((layout[j] for j in group), []) for group in groups]
    out_shape = irx.shape(irx.result(op))
    out = [None] * len(out_shape)
    for i, group in enumerate(groups):
        parts = atoms.split(layout[i], [out_shape[j] for j in group])
        require(parts is not None, "a reshape splits a dim in a way that cannot be followed")
        for j, part in zip(group, parts):
            out[j] = part
    return out


def loop_sizes(c: Contraction) -> list:
    sizes = [None] * c.maps[0].n_dims
    for value, amap in zip([c.lhs, c.rhs, irx.outs(c.op)[0]], c.maps):
        for pos, d in enumerate(irx.map_dims(amap)):
            if isinstance(d, int) and d >= 0 and sizes[d] is None:
                sizes[d] = irx.shape(value)[pos]
    return sizes


def find_scores(value: ir.Value, depth: int = 0) -> tuple[Contraction, list]:
    """Walks back from the softmax input to the Q.K contraction.

    Returns it and the ops in between, first to last, each with the operand index through
    which the scores flow.
    """
    require(depth < 24, "no matmul found within 24 ops before the softmax")
    op = irx.producer(value)
    require(op is not None, "the softmax input is a function argument, not a matmul")
    if irx.op_name(op) in irx.STRUCTURED and not is_elementwise(op):
        return match_contraction(op), []
    if irx.is_op(op, "tensor.collapse_shape", "tensor.expand_shape") or permutation(op) is not None:
        c1, path = find_scores(op.operation.operands[0], depth + 1)
        return c1, path + [(op, 0)]
    require(is_elementwise(op), f"the softmax input comes from {irx.op_name(op) if op else 'an argument'}, not a matmul")
    maps = irx.indexing_maps(op)
    out_shape = irx.shape(irx.result(op))
    last: Optional[NoMatch] = None
    for i, operand in enumerate(irx.ins(op)):
        if irx.is_identity(maps[i]) and irx.shape(operand) == out_shape:
            try:
                c1, path = find_scores(operand, depth + 1)
                return c1, path + [(op, i)]
            except NoMatch as e:
                last = e
    raise last or NoMatch("the softmax input is not computed from a matmul")


def follow_probabilities(value: ir.Value, layout: list, atoms: Atoms, matched: list, guard=None) -> tuple[Contraction, int, list]:
    """Walks forward from the softmax to the P.V contraction through casts, reshapes and
    transposes (and the fully-masked-row guard, when `guard` was found)."""
    while True:
        n = irx.num_uses(value)
        require(n == 1, f"the attention probabilities have {n} uses (e.g. they are also returned)")
        user = irx.users(value)[0].opview
        name = irx.op_name(user)
        if name in irx.STRUCTURED and not is_elementwise(user):
            c2 = match_contraction(user)
            idx = [i for i, v in enumerate(irx.ins(user)) if v == value]
            require(len(idx) == 1, "the probabilities are multiplied by themselves")
            return c2, idx[0], layout
        if name in ("tensor.collapse_shape", "tensor.expand_shape") or permutation(user) is not None:
            layout = forward_layout(user, layout, atoms)
        elif guard is not None and is_guard_select(user, value, guard):
            matched.append(guard[0])
        else:
            require(is_elementwise(user) and len(irx.ins(user)) == 1, f"the probabilities go through {name} before the second matmul")
            e = body(user)
            e = strip_casts(e)
            require(e.kind == "arg" and e.value == 0, "the probabilities are modified before the second matmul")
        matched.append(user)
        value = irx.result(user)


def match_row_guard(x: ir.Value, softmax, dim: int):
    """torch's _safe_softmax: besides the softmax, X feeds `all(X == -inf)` over the softmax
    dim, used to zero fully masked rows. Returns (cmp op, reduction op) or None."""
    others = [u.opview for u in irx.users(x) if u != softmax.operation]
    if len(others) != 1 or not is_elementwise(others[0]) or len(irx.ins(others[0])) != 1:
        return None
    cmp = others[0]
    e = body(cmp)
    if not is_op_expr(e, "arith.cmpf") or "oeq" not in str(e.ref.operation.attributes["predicate"]) and \
            str(e.ref.operation.attributes["predicate"]).split(":")[0].strip() != "1":
        return None
    lhs, rhs = e.args
    lhs = strip_casts(lhs)
    if not (lhs.kind == "arg" and lhs.value == 0 and rhs.kind == "const" and rhs.value == float("-inf")):
        return None
    if irx.num_uses(irx.result(cmp)) != 1:
        return None
    red = irx.users(irx.result(cmp))[0].opview
    if not irx.is_op(red, "linalg.generic") or irx.iterator_types(red).count("reduction") != 1:
        return None
    if irx.iterator_types(red).index("reduction") != dim or not is_op_expr(body(red), "arith.andi"):
        return None
    return cmp, red


def is_guard_select(op, p: ir.Value, guard) -> bool:
    """select(row_all_masked, 0, P) with the guard's reduction as the condition."""
    if not is_elementwise(op) or len(irx.ins(op)) != 3:
        return False
    e = body(op)
    if not is_op_expr(e, "arith.select"):
        return False
    c, zero, keep = e.args
    if not (c.kind == "arg" and keep.kind == "arg" and irx.ins(op)[keep.value] == p):
        return False
    cond = irx.ins(op)[c.value]
    cond_op = irx.producer(cond)
    if irx.is_op(cond_op, "tensor.expand_shape"):
        cond_op = irx.producer(cond_op.operation.operands[0])
    if cond_op is None or cond_op.operation != guard[1].operation:
        return False
    return scalar_constant(zero, op) == 0.0


def narrowing_cast(op, layout: list, atoms: Atoms) -> Optional[tuple]:
    """P.V accumulated in f32 then truncated to f16/bf16, directly or after reshapes (torch's
    SDPA decomposition computes in f32 and narrows after its expand_shape back to (B, H, ..)):
    the attention op can produce the narrow type itself (it accumulates in f32), saving a pass
    over O. Returns (the truncation, its layout, the reshapes passed) or None."""
    value, reshapes = irx.result(op), []
    while irx.num_uses(value) == 1:
        user = irx.users(value)[0].opview
        if irx.is_op(user, "tensor.collapse_shape", "tensor.expand_shape"):
            try:
                layout = forward_layout(user, layout, atoms)
            except NoMatch:
                return None
            reshapes.append(user)
            value = irx.result(user)
            continue
        if not is_elementwise(user) or len(irx.ins(user)) != 1 or not irx.is_identity(irx.indexing_maps(user)[0]):
            return None
        e = body(user)
        if is_op_expr(e, "arith.truncf") and e.args[0].kind == "arg" and e.args[0].value == 0:
            return user, layout, reshapes
        return None
    return None
