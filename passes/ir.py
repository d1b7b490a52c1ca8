"""Small helpers over the MLIR Python bindings shipped with iree-base-compiler.

They keep the passes reading like the math: "the producer of this value", "the
indexing maps of this structured op", "the shape of this tensor".
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

from iree.compiler import ir

DYNAMIC = None  # a dimension whose size is not known statically


def producer(value: ir.Value) -> Optional[ir.OpView]:
    """The op that defines `value`, or None for a block argument."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    return owner.opview if hasattr(owner, "opview") else owner


def op_name(op) -> str:
    return op.operation.name


def is_op(op, *names: str) -> bool:
    return op is not None and op_name(op) in names


def users(value: ir.Value) -> list:
    return [use.owner for use in value.uses]


def num_uses(value: ir.Value) -> int:
    return sum(1 for _ in value.uses)


def result(op, index: int = 0) -> ir.Value:
    return op.operation.results[index]


def tensor_type(value: ir.Value) -> ir.RankedTensorType:
    return ir.RankedTensorType(value.type)


def shape(value: ir.Value) -> list:
    """Static shape of a ranked tensor, DYNAMIC where unknown."""
    t = tensor_type(value)
    return [DYNAMIC if t.is_dynamic_dim(i) else t.shape[i] for i in range(t.rank)]


def element_type(value: ir.Value) -> ir.Type:
    return tensor_type(value).element_type


# --- structured (linalg) ops ------------------------------------------------

STRUCTURED = ("linalg.generic", "linalg.batch_matmul", "linalg.matmul")


def ins(op) -> list:
    return list(op.inputs)


def outs(op) -> list:
    return list(op.outputs)


def indexing_maps(op) -> list:
    return [attr.value for attr in op.operation.attributes["indexing_maps"]]


def iterator_types(op) -> list:
    """'parallel' / 'reduction' per loop of a linalg.generic."""
    kinds = []
    for attr in op.operation.attributes["iterator_types"]:
        text = str(attr)
        kinds.append("reduction" if "reduction" in text else "parallel")
    return kinds


def map_dims(amap) -> list:
    """Per result of an affine map: the loop dim it reads, 0 for a constant 0, or -1."""
    dims = []
    for expr in amap.results:
        if isinstance(expr, ir.AffineDimExpr):
            dims.append(expr.position)
        elif isinstance(expr, ir.AffineConstantExpr) and expr.value == 0:
            dims.append("0")
        else:
            dims.append(-1)
    return dims


def is_identity(amap) -> bool:
    return map_dims(amap) == list(range(amap.n_dims))


def reassociation(op) -> list[list[int]]:
    return [[int(i.value) for i in group] for group in op.operation.attributes["reassociation"]]


def constant_value(value: ir.Value):
    """The Python number held by an `arith.constant` scalar, else None."""
    op = producer(value)
    if not is_op(op, "arith.constant"):
        return None
    attr = op.operation.attributes["value"]
    if isinstance(attr, (ir.FloatAttr, ir.IntegerAttr)):
        return attr.value
    if isinstance(attr, ir.DenseElementsAttr) and attr.is_splat:
        splat = attr.get_splat_value()
        if isinstance(splat, (ir.FloatAttr, ir.IntegerAttr)):
            return splat.value
    return None


def fill_constant(value: ir.Value):
    """If `value` is `linalg.fill(c)` of a constant, the constant, else None."""
    op = producer(value)
    if is_op(op, "linalg.fill"):
        return constant_value(ins(op)[0])
    return None


def splat_constant(value: ir.Value):
    """The number every element of `value` holds when it is a constant splat, a
    `linalg.fill` of a constant, or a broadcast (a generic yielding its rank-0 input) of
    one, as torch-mlir emits `zeros_like` with dynamic sizes; else None."""
    c = constant_value(value)
    if c is not None:
        return c
    c = fill_constant(value)
    if c is not None:
        return c
    op = producer(value)
    if is_op(op, "linalg.generic") and len(ins(op)) == 1 and len(indexing_maps(op)[0].results) == 0:
        block = op.operation.regions[0].blocks[0]
        yielded = list(block.operations)[-1].operation.operands[0]
        if yielded == block.arguments[0]:
            return constant_value(ins(op)[0])
    return None


# --- building ops (at the current insertion point and location) ------------------


def index_constant(v: int) -> ir.Value:
    return ir.Operation.create("arith.constant", results=[ir.IndexType.get()],
                               attributes={"value": ir.IntegerAttr.get(ir.IndexType.get(), v)}).results[0]


def float_constant(v: float, etype) -> ir.Value:
    return ir.Operation.create("arith.constant", results=[etype], attributes={"value": ir.FloatAttr.get(etype, v)}).results[0]


def true_constant() -> ir.Value:
    i1 = ir.IntegerType.get_signless(1)
    return ir.Operation.create("arith.constant", results=[i1], attributes={"value": ir.IntegerAttr.get(i1, 1)}).results[0]


CMPF = {"oeq": 1, "ole": 5}  # arith.cmpf predicates by name


def cmpf(predicate: str, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    """`arith.cmpf <predicate>, lhs, rhs` (an i1)."""
    return ir.Operation.create("arith.cmpf", results=[ir.IntegerType.get_signless(1)], operands=[lhs, rhs], attributes={
        "predicate": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), CMPF[predicate])}).results[0]


def tensor_dim(value: ir.Value, d: int) -> ir.Value:
    """`tensor.dim %value, d`: the size of dim d as an index value."""
    return ir.Operation.create("tensor.dim", results=[ir.IndexType.get()], operands=[value, index_constant(d)]).results[0]


def reassociation_attr(groups: list) -> ir.ArrayAttr:
    i64 = ir.IntegerType.get_signless(64)
    return ir.ArrayAttr.get([ir.ArrayAttr.get([ir.IntegerAttr.get(i64, k) for k in g]) for g in groups])


def collapse(value: ir.Value, groups: list, loc=None) -> ir.Value:
    """tensor.collapse_shape of `value` by `groups` (its result type inferred)."""
    t = tensor_type(value)
    dims = shape(value)
    sizes = [ir.ShapedType.get_dynamic_size() if any(dims[k] is None for k in g) else math.prod(dims[k] for k in g)
             for g in groups]
    out = ir.RankedTensorType.get(sizes, t.element_type)
    return ir.Operation.create("tensor.collapse_shape", results=[out], operands=[value],
                               attributes={"reassociation": reassociation_attr(groups)}, loc=loc).results[0]


def generic(inputs: list, init: ir.Value, maps: list, iterators: list, body) -> ir.Value:
    """A linalg.generic of `inputs` (with affine `maps`, the init's last) into `init`;
    `body(args)` emits the region (block arguments: one per input, then the init's) and
    returns the value it yields. `iterators` are "parallel" / "reduction" per loop."""
    types = [ir.Attribute.parse(f"#linalg.iterator_type<{i}>") for i in iterators]
    op = ir.Operation.create(
        "linalg.generic", results=[init.type], operands=list(inputs) + [init],
        attributes={"indexing_maps": ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps]),
                    "iterator_types": ir.ArrayAttr.get(types),
                    "operandSegmentSizes": ir.DenseI32ArrayAttr.get([len(inputs), 1])},
        regions=1)
    arg_types = [element_type(v) if isinstance(v.type, ir.RankedTensorType) else v.type for v in inputs]
    block = op.regions[0].blocks.append(*arg_types, element_type(init))
    with ir.InsertionPoint(block):
        ir.Operation.create("linalg.yield", operands=[body(list(block.arguments))])
    return op.results[0]


def clone_body(op, args: list) -> ir.Value:
    """Clones `op`'s region body at the insertion point, its block arguments replaced by
    `args`; returns what it yields."""
    block = op.operation.regions[0].blocks[0]
    mapping = {block.arguments[i]: a for i, a in enumerate(args)}
    ops = list(block.operations)
    for inner in ops[:-1]:
        clone = inner.operation.clone()
        for i, operand in enumerate(clone.operands):
            for old, new in mapping.items():
                if operand == old:
                    clone.operands[i] = new
        for old, new in zip(inner.operation.results, clone.results):
            mapping[old] = new
    yielded = ops[-1].operation.operands[0]
    return next((new for old, new in mapping.items() if old == yielded), yielded)


def location_text(op) -> str:
    return str(op.operation.location)


PURE_PREFIXES = ("linalg.", "tensor.", "arith.", "math.")


def alive(op) -> bool:
    """Whether an op handle still refers to an op (erasing one invalidates its handle)."""
    try:
        op.operation.name
        return True
    except RuntimeError:
        return False


def erase_dead(ops: Iterable) -> None:
    """Erases the given ops and their transitive producers once nothing uses them.

    Only side-effect-free tensor-level ops are erased, and only those in the backward
    slice of `ops`, so unrelated (even dead) code elsewhere is never touched.
    """
    pure_prefixes = ("linalg.", "tensor.", "arith.", "math.")
    slice_ops: list = []
    worklist = [op.operation for op in ops]
    while worklist:
        op = worklist.pop()
        if any(op == seen for seen in slice_ops):
            continue
        slice_ops.append(op)
        worklist.extend(p.operation for p in (producer(v) for v in op.operands) if p is not None)
    blocks = []
    for op in slice_ops:
        if not any(op.block == b for b in blocks):
            blocks.append(op.block)
    for block in blocks:
        for op in reversed(list(block.operations)):
            op = op.operation
            if not op.name.startswith(pure_prefixes):
                continue
            if any(num_uses(r) for r in op.results):
                continue
            if any(op == s for s in slice_ops):
                op.erase()


def verify_slice(value: ir.Value, stop) -> None:
    """Verifies the ops computing `value` that come after `stop` in its block (the ops a
    rewrite just built); raises ValueError with MLIR's diagnostic if one does not verify."""
    seen, worklist = [], [producer(value)]
    while worklist:
        op = worklist.pop()
        if op is None or op.operation.block != stop.block or not stop.is_before_in_block(op.operation):
            continue
        if any(op.operation == s for s in seen):
            continue
        seen.append(op.operation)
        try:
            op.operation.verify()
        except ir.MLIRError as e:
            raise ValueError(f"built invalid IR: {e}") from None
        worklist.extend(producer(v) for v in op.operation.operands)


def erase_between(first, last) -> None:
    """Erases the ops strictly between `first` and `last` (same block), last to first."""
    between, inside = [], False
    for op in first.block.operations:
        op = op.operation
        if op == last:
            break
        if inside:
            between.append(op)
        inside = inside or op == first
    for op in reversed(between):
        op.erase()


def collect(root, *names: str) -> list:
    """All ops named `names` nested under `root`, in program order."""
    found = []

    def visit(op):
        if op.name in names:
            found.append(op.opview)
        return ir.WalkResult.ADVANCE

    root.operation.walk(visit)
    return found
