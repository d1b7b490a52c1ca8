"""fuse-linears: sibling linear layers that read the same input -> one matmul, split after.

Matches two or more of torch-mlir's linear layers in one block that read the same `X`
(the Q, K and V projections of an attention layer, LLaMA's gate and up projections; a
grouped-query K/V narrower than Q included), each

    Y_i = matmul(ext?(X) [M, K], ext?(transpose(W_i)) [K, N_i]) into fill(0)   W_i constant [N_i, K]
    [Y_i = addf(Y_i, ext?(b_i)[n])]                                          b_i constant [N_i]
    [Y_i = truncf(Y_i)]

(ext: the f16/bf16 -> f32 extension torch-mlir writes around a half-precision linear), all of
the same form, and produces the same chain once over the concatenated weights and biases:

    W = concat(W_1, ..., W_n) [sum N_i, K]      b = concat(b_1, ..., b_n) [sum N_i]
    Y = truncf?(addf?(matmul(ext?(X), ext?(transpose(W))), ext?(b)))      [M, sum N_i]
    Y_i = extract_slice Y[0, offset_i] [M, N_i]

(with reads=attention, only groups whose results only attention ops read, as Q, K and V,
through reshapes and transposes), so the input is read once and one GEMM with its epilogue
runs instead of n (on CUDA
dispatch-gemms then gives it flashlift's GEMM kernel with the bias and the rounding in its
epilogue). The weights and biases are constants (or the importer's parameter handles): IREE
hoists their concatenation into the module's initializer, so it runs once, when the module is
loaded. Exact: every output element is computed by the same ops on the same values.
Appends one SiteRecord per group (kind "linears", outcome "fused"; details: the layers'
locations, which name their module paths, the fused GEMM's [M, K, N] and each layer's N). Leaves alone layers with another input, weights or biases
that are not constants, differing forms, element types or K, and ops with other users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from iree.compiler import ir
from iree.compiler.dialects import linalg

from . import ir as irx
from .linears import elementwise_op, is_bias_add, only_user, unextended
from .records import FUSED, SiteRecord

NAME = "fuse-linears"
SUMMARY = "Fuse linear layers that read the same input into one matmul over their concatenated weights"


@dataclass
class _Linear:
    matmul: object
    x: ir.Value  # the input before any extension
    lhs: ir.Value  # the matmul's left operand (x or ext(x))
    w: ir.Value  # the weight constant [N, K]
    rhs_ext: Optional[object]  # the extension generic after the transpose, if any
    add: Optional[object] = None  # the bias generic
    bias: Optional[ir.Value] = None  # the bias constant [N]
    bias_ext: Optional[object] = None  # its extension generic, if any
    trunc: Optional[object] = None
    out: Optional[ir.Value] = None  # the chain's last value

    def form(self) -> tuple:
        """What must agree within a group."""
        et = lambda v: str(irx.element_type(v))  # noqa: E731
        return (et(self.lhs), et(self.w), self.rhs_ext is not None, self.add is not None,
                self.bias_ext is not None, self.trunc is not None, et(self.out), irx.shape(self.w)[1])


def _cast(value: ir.Value, cast: str):
    """The elementwise linalg.generic producing `value` when it only applies `cast`, else None."""
    op = irx.producer(value)
    return op if op is not None and elementwise_op(op.operation) == cast else None


def _constant(value: ir.Value) -> bool:
    return irx.is_op(irx.producer(value), "arith.constant")


def _linear(op) -> Optional[_Linear]:
    """The matched chain from linalg.matmul `op` (see the module doc), else None."""
    lhs, rhs = irx.ins(op)
    if irx.fill_constant(irx.outs(op)[0]) != 0.0:
        return None
    x = unextended(lhs)
    rhs_ext = _cast(rhs, "arith.extf")
    t = irx.producer(irx.ins(rhs_ext)[0] if rhs_ext is not None else rhs)
    if not irx.is_op(t, "linalg.transpose") or list(t.operation.attributes["permutation"]) != [1, 0]:
        return None
    w = t.operation.operands[0]
    if not _constant(w) or not all(irx.tensor_type(v).has_static_shape for v in (x, w, irx.result(op))):
        return None
    if rhs_ext is not None and irx.num_uses(rhs) != 1:
        return None
    found = _Linear(op, x, lhs, w, rhs_ext, out=irx.result(op))
    add = only_user(found.out)
    # (the accumulator first: the fused add is rebuilt with its operands in that order)
    if add is not None and is_bias_add(add, found.out, irx.shape(w)[0]) and irx.ins(add)[0] == found.out:
        bias = irx.ins(add)[1]
        found.bias_ext = _cast(bias, "arith.extf")
        found.bias = unextended(bias)
        if not _constant(found.bias):
            return None
        found.add, found.out = add, irx.result(add)
    trunc = only_user(found.out)
    if trunc is not None and elementwise_op(trunc) == "arith.truncf":
        found.trunc, found.out = trunc, irx.result(trunc)
    return found


def _groups(module) -> list:
    """Lists of >= 2 linears, in program order, that read one X in one form, in one block."""
    by_input: dict = {}
    for op in irx.collect(module, "linalg.matmul"):
        found = _linear(op)
        if found is not None:
            by_input.setdefault((found.x, found.form()), []).append(found)
    return [g for g in by_input.values() if len(g) > 1 and _placeable(g)]


def _placeable(group: list) -> bool:
    """All in one block, with X's extension and every constant defined before the first
    matmul (the fused chain goes there)."""
    first = group[0].matmul.operation
    if any(f.matmul.operation.block != first.block for f in group):
        return False
    before = set()
    for op in first.block.operations:
        if op.operation == first:
            break
        before.add(op.operation)
    needed = [f.w for f in group] + [f.bias for f in group if f.bias is not None]
    if group[0].lhs != group[0].x:
        needed.append(group[0].lhs)
    return all(irx.producer(v) is not None and irx.producer(v).operation in before for v in needed)


def _concat(values: list, dim_size: list) -> ir.Value:
    t = irx.tensor_type(values[0])
    return ir.Operation.create(
        "tensor.concat", results=[ir.RankedTensorType.get(dim_size, t.element_type)], operands=values,
        attributes={"dim": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 0)}).results[0]


def _empty(shape: list, etype) -> ir.Value:
    return ir.Operation.create("tensor.empty", results=[ir.RankedTensorType.get(shape, etype)]).results[0]


def _regeneric(op, inputs: list, shape: list) -> ir.Value:
    """`op` (an elementwise linalg.generic) again on `inputs`, into a new `shape` tensor."""
    init = _empty(shape, irx.element_type(irx.result(op)))
    iterators = [str(a).split("<")[1].rstrip(">") for a in op.operation.attributes["iterator_types"]]
    return irx.generic(inputs, init, irx.indexing_maps(op), iterators, lambda args: irx.clone_body(op, args))


def _value(built) -> ir.Value:
    """The result of what a dialect builder returned (an op or its value)."""
    if isinstance(built, ir.Value):
        return built
    results = built.results if hasattr(built, "results") else built
    return results[0]


def _fuse(group: list) -> SiteRecord:
    first = group[0]
    m, k = irx.shape(first.lhs)
    widths = [irx.shape(f.w)[0] for f in group]
    total = sum(widths)
    acc_type = irx.element_type(irx.result(first.matmul))
    with ir.InsertionPoint(first.matmul), first.matmul.operation.location:
        wt = _empty([k, total], irx.element_type(first.w))
        rhs = _value(linalg.transpose(_concat([f.w for f in group], [total, k]), outs=[wt], permutation=[1, 0]))
        if first.rhs_ext is not None:
            rhs = _regeneric(first.rhs_ext, [rhs], [k, total])
        acc = _value(linalg.fill(irx.float_constant(0.0, acc_type), outs=[_empty([m, total], acc_type)]))
        out = _value(linalg.matmul(first.lhs, rhs, outs=[acc]))
        if first.add is not None:
            bias = _concat([f.bias for f in group], [total])
            if first.bias_ext is not None:
                bias = _regeneric(first.bias_ext, [bias], [total])
            out = _regeneric(first.add, [out, bias], [m, total])
        if first.trunc is not None:
            out = _regeneric(first.trunc, [out], [m, total])
        offset = 0
        for f, n in zip(group, widths):
            part = ir.Operation.create(
                "tensor.extract_slice", results=[f.out.type], operands=[out],
                attributes={"static_offsets": ir.DenseI64ArrayAttr.get([0, offset]),
                            "static_sizes": ir.DenseI64ArrayAttr.get([m, n]),
                            "static_strides": ir.DenseI64ArrayAttr.get([1, 1]),
                            "operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 0, 0, 0])}).results[0]
            f.out.replace_all_uses_with(part)
            offset += n
    locations = [str(f.matmul.operation.location) for f in group]
    record = SiteRecord(NAME, "linears", locations[0], FUSED,
                        details={"locations": locations, "shape": [m, k, total], "widths": widths})
    irx.erase_dead([op for f in group for op in (f.trunc, f.add, f.matmul) if op is not None])
    return record


READS_THROUGH = ("tensor.expand_shape", "tensor.collapse_shape", "linalg.transpose",
                 "iree_tensor_ext.compute_barrier.start", "util.optimization_barrier")


def _read_by_attention(value: ir.Value) -> bool:
    """Every use of `value` is, through reshapes, transposes and fences, Q, K or V of an
    iree_linalg_ext.attention (which a kernel reads in place, at its columns of the fused
    result: no slice copy)."""
    uses = list(value.uses)
    for use in uses:
        owner = use.owner
        if owner.name == "iree_linalg_ext.attention" and use.operand_number < 3:
            continue
        if owner.name not in READS_THROUGH or not _read_by_attention(owner.results[0]):
            return False
    return bool(uses)


def run(module, results: list, reads: str = "any") -> None:
    """reads=attention: only groups whose every result only the attention reads (Q, K, V of
    one layer; not LLaMA's gate/up, nor Q/K behind rotary embeddings, whose slices would be
    copies)."""
    with module.context:
        for group in _groups(module):
            if reads == "attention" and not all(_read_by_attention(f.out) for f in group):
                continue
            results.append(_fuse(group))
