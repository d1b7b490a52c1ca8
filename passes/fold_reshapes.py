"""fold-reshapes: `tensor.reshape` by a computed shape -> collapse_shape / expand_shape.

torch-mlir lowers a dynamic `view`/`reshape` (and the reshapes inside a 4-D `matmul`) to

    %shape = tensor.from_elements %a, %b, %c : tensor<3xi64>
    %r = tensor.reshape %x(%shape)

with the sizes computed by integer arithmetic. Nothing downstream can see through that: it
is just "some shape". Matches: a reshape whose target sizes are provably products of
consecutive source dims (passes/sizes.py evaluates them; dims shared by the inputs are one
value after unify-dims). Produces: `tensor.collapse_shape` when dims are merged,
`tensor.expand_shape` (target sizes as its output_shape) when they are split, both in turn
when a reshape does both, and a `tensor.cast` where only the type's static sizes changed.
A reshape that cannot be proven to regroup dims is left as it is.
"""

from __future__ import annotations

from typing import Optional

from iree.compiler import ir

from . import ir as irx
from . import sizes as sz
from .unify_dims import symbols

NAME = "fold-reshapes"
SUMMARY = "Turn tensor.reshape with a computed shape into collapse_shape/expand_shape"


def regroup(src: list, dst: list) -> Optional[list]:
    """Groups consecutive dims so that each group's product agrees on both sides:
    [(source dims, target dims)], unit dims joined to a neighbour. None if impossible."""
    groups: list = []
    i = j = 0
    while i < len(src) and j < len(dst):
        si, dj = [i], [j]
        ps, pd = src[i], dst[j]
        i, j = i + 1, j + 1
        while ps != pd:
            if sz.divides(ps, pd) and i < len(src):
                ps = sz.mul(ps, src[i])
                si.append(i)
                i += 1
            elif sz.divides(pd, ps) and j < len(dst):
                pd = sz.mul(pd, dst[j])
                dj.append(j)
                j += 1
            else:
                return None
        groups.append((si, dj))
    rest_src, rest_dst = list(range(i, len(src))), list(range(j, len(dst)))
    if any(src[k] != sz.ONE for k in rest_src) or any(dst[k] != sz.ONE for k in rest_dst):
        return None
    if not groups:
        return None
    groups[-1][0].extend(rest_src)
    groups[-1][1].extend(rest_dst)
    return groups


def _expand(value: ir.Value, groups: list, out_type: ir.RankedTensorType, dims: list, loc) -> ir.Value:
    """`dims`: per target dim, an i64/index value giving its size (used where it is dynamic)."""
    dyn = ir.ShapedType.get_dynamic_size()
    static = [out_type.get_dim_size(k) if not out_type.is_dynamic_dim(k) else dyn for k in range(out_type.rank)]
    operands = []
    for k, size in enumerate(static):
        if size == dyn:
            v = dims[k]
            if not isinstance(v.type, ir.IndexType):
                v = ir.Operation.create("arith.index_cast", results=[ir.IndexType.get()], operands=[v], loc=loc).results[0]
            operands.append(v)
    return ir.Operation.create("tensor.expand_shape", results=[out_type], operands=[value] + operands,
                               attributes={"reassociation": irx.reassociation_attr(groups),
                                           "static_output_shape": ir.DenseI64ArrayAttr.get(static)},
                               loc=loc).results[0]


def _fold(op, sizes: sz.Sizes) -> bool:
    src, shape_value = op.operation.operands
    shape_op = irx.producer(shape_value)
    if not irx.is_op(shape_op, "tensor.from_elements"):
        return False
    elements = list(shape_op.operation.operands)
    out = irx.result(op)
    out_type = irx.tensor_type(out)
    src_sizes = [sizes.dim(src, d) for d in range(len(irx.shape(src)))]
    dst_sizes = [sizes.value(e) if out_type.is_dynamic_dim(k) else sz.const(out_type.get_dim_size(k))
                 for k, e in enumerate(elements)]
    if any(s is None for s in src_sizes + dst_sizes):
        return False
    groups = regroup(src_sizes, dst_sizes)
    if groups is None:
        return False
    loc = op.operation.location
    with ir.InsertionPoint(op.operation), loc:
        value = src
        if any(len(s) > 1 for s, _ in groups):
            value = irx.collapse(value, [s for s, _ in groups], loc)
        if any(len(d) > 1 for _, d in groups):
            value = _expand(value, [d for _, d in groups], out_type, elements, loc)
        if value.type != out.type:
            value = ir.Operation.create("tensor.cast", results=[out.type], operands=[value], loc=loc).results[0]
    out.replace_all_uses_with(value)
    op.operation.erase()
    return True


def run(module, results) -> None:
    for func in irx.collect(module, "func.func"):
        sizes = sz.Sizes(symbols(func.operation))
        for op in irx.collect(func, "tensor.reshape"):
            _fold(op, sizes)
