"""fold-broadcasts: a dynamic-shape broadcast to the source's own shape is the source.

torch-mlir broadcasts a dynamic-shape `matmul` operand to the batch shape with a gather:

    %b = linalg.generic {indexing_maps = [identity], iterator_types = [parallel...]}
           outs(%empty) {
      %i = linalg.index 0 ...
      %j = arith.select (%dim_i == 1), 0, %i     // size-1 dims broadcast
      %x = tensor.extract %src[%j, ...]
      linalg.yield %x
    }

Matches: such a generic (no inputs), where every index is either `linalg.index d` or that
select on the source's own size of dim d, with equal output and source sizes there (then
every index reads itself: a size-1 dim has only index 0), or the constant 0 on a source dim
of static size 1 (a real broadcast, as `k[:, :, None].expand(...)` in repeat_kv makes).
Produces: the source itself (through a `tensor.cast` if only the static type differs) when
nothing broadcasts; else a `linalg.generic` reading the source through an indexing map with
0 for the broadcast dims, the form torch-mlir emits for static shapes.
Broadcasts of dynamic sizes, or reads through anything else, are left alone.
"""

from __future__ import annotations

from typing import Optional

from iree.compiler import ir

from . import ir as irx
from . import sizes as sz
from .unify_dims import symbols

NAME = "fold-broadcasts"
SUMMARY = "Turn torch-mlir's gather-style broadcasts into the tensor itself or an indexing-map broadcast"


def _loop_index(value: ir.Value) -> Optional[int]:
    op = irx.producer(value)
    if irx.is_op(op, "linalg.index"):
        return ir.IntegerAttr(op.operation.attributes["dim"]).value
    return None


def _reads_own_index(index: ir.Value, src: ir.Value, d: int, sizes: sz.Sizes) -> bool:
    """`index` is loop d, or `select(size == 1, 0, loop d)` with size the source's dim d."""
    if _loop_index(index) == d:
        return True
    op = irx.producer(index)
    if not irx.is_op(op, "arith.select"):
        return False
    cond, zero, loop = op.operation.operands
    cmp = irx.producer(cond)
    if _loop_index(loop) != d or irx.constant_value(zero) != 0 or not irx.is_op(cmp, "arith.cmpi"):
        return False
    if ir.IntegerAttr(cmp.operation.attributes["predicate"]).value != 0:  # eq
        return False
    lhs, rhs = (sizes.value(v) for v in cmp.operation.operands)
    own = sizes.dim(src, d)
    return own is not None and ((lhs, rhs) == (own, sz.ONE) or (lhs, rhs) == (sz.ONE, own))


def _defined_in(value: ir.Value, block) -> bool:
    if isinstance(value, ir.BlockArgument):
        return ir.BlockArgument(value).owner == block
    return value.owner.operation.block == block


def _read_dims(op, sizes: sz.Sizes) -> Optional[tuple]:
    """(source, per dim: "own" or "broadcast") if the generic is a copy of a source that
    only broadcasts static size-1 dims (read at index 0), else None."""
    if not irx.is_op(op, "linalg.generic") or irx.ins(op) or len(irx.outs(op)) != 1:
        return None
    if not irx.is_identity(irx.indexing_maps(op)[0]) or "reduction" in irx.iterator_types(op):
        return None
    block = op.operation.regions[0].blocks[0]
    yield_op = list(block.operations)[-1]
    extract = irx.producer(yield_op.operands[0])
    if not irx.is_op(extract, "tensor.extract"):
        return None
    src, *indices = extract.operation.operands
    if _defined_in(src, block):
        return None
    out = irx.outs(op)[0]
    rank = len(irx.shape(out))
    if len(indices) != rank or len(irx.shape(src)) != rank:
        return None
    kinds = []
    for d, index in enumerate(indices):
        if irx.shape(src)[d] == 1 and irx.constant_value(index) == 0:
            kinds.append("broadcast")
        elif _reads_own_index(index, src, d, sizes) and sizes.dim(out, d) is not None \
                and sizes.dim(out, d) == sizes.dim(src, d):
            kinds.append("own")
        else:
            return None
    return src, kinds


def _as_broadcast_generic(op, src: ir.Value, kinds: list) -> ir.Value:
    """linalg.generic ins(src) reading 0 for the broadcast dims: the form static shapes get."""
    out = irx.result(op)
    rank = len(kinds)
    exprs = [ir.AffineConstantExpr.get(0) if k == "broadcast" else ir.AffineDimExpr.get(d) for d, k in enumerate(kinds)]
    maps = [ir.AffineMap.get(rank, 0, exprs), ir.AffineMap.get_identity(rank)]
    parallel = ir.Attribute.parse("#linalg.iterator_type<parallel>")
    new = ir.Operation.create(
        "linalg.generic", results=[out.type], operands=[src, irx.outs(op)[0]],
        attributes={"indexing_maps": ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps]),
                    "iterator_types": ir.ArrayAttr.get([parallel] * rank),
                    "operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 1])},
        regions=1)
    etype = irx.element_type(src)
    block = new.regions[0].blocks.append(etype, irx.element_type(out))
    with ir.InsertionPoint(block):
        ir.Operation.create("linalg.yield", operands=[block.arguments[0]])
    return new.results[0]


def run(module, results) -> None:
    for func in irx.collect(module, "func.func"):
        sizes = sz.Sizes(symbols(func.operation))
        for op in irx.collect(func, "linalg.generic"):
            read = _read_dims(op, sizes)
            if read is None:
                continue
            src, kinds = read
            out = irx.result(op)
            with ir.InsertionPoint(op.operation), op.operation.location:
                if "broadcast" in kinds:
                    value = _as_broadcast_generic(op, src, kinds)
                elif src.type != out.type:
                    value = ir.Operation.create("tensor.cast", results=[out.type], operands=[src]).results[0]
                else:
                    value = src
            out.replace_all_uses_with(value)
            op.operation.erase()
