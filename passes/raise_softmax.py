"""raise-softmax: recognise a decomposed softmax and replace it by `linalg.softmax`.

Matches, over one dim `d` of a tensor X (any rank, any float type):

    M = max_d(X)                       (linalg.generic reduction; the argmax output
                                        torch-mlir adds may be present if unused)
    E = exp(X - broadcast_d(M))        (subf and exp: separate generics, or one)
    Z = sum_d(E)
    Y = E / broadcast_d(Z)

which is what torch-mlir emits for `F.softmax` / `torch.softmax`, and what a hand-written
stable softmax (`(x - x.amax(-1, keepdim=True)).exp()` / sum) lowers to. Also matched:
the same without the max subtraction (`exp(x) / sum(exp(x))`); softmax is that function
too and is the numerically safer way to compute it.

Produces: `Y = linalg.softmax dimension(d) ins(X) outs(init of Y)`.
Leaves alone anything where an intermediate (the max, E or Z) has another use.
"""

from __future__ import annotations

from iree.compiler import ir

from . import ir as irx
from .matchers import NoMatch, body, binary, broadcast_operand, is_elementwise, is_op_expr, match_reduction, require

NAME = "raise-softmax"
SUMMARY = "Raise decomposed softmax (max, sub, exp, sum, div) to linalg.softmax"


def _match_exp(value: ir.Value):
    """E = exp(A) elementwise; returns (exp op, A) where A may itself be X - max."""
    op = irx.producer(value)
    require(is_elementwise(op), "the numerator is not an elementwise exp")
    e = body(op)
    require(is_op_expr(e, "math.exp"), "the numerator is not exp(...)")
    inner = e.args[0]
    if inner.kind == "arg":  # exp in its own generic
        return op, [op], op.operation.operands[inner.value]
    # exp(in0 - in1) fused into one generic
    require(binary(inner, "arith.subf", 0, 1), "the numerator is not exp(x - max)")
    return op, [op], None


def match_softmax(div_op):
    """Returns (X, dim, matched ops) for the division op that ends a decomposed softmax."""
    require(is_elementwise(div_op) and len(irx.ins(div_op)) == 2, "not an elementwise division")
    require(binary(body(div_op), "arith.divf", 0, 1), "not x / y")
    maps = irx.indexing_maps(div_op)
    require(irx.is_identity(maps[0]), "the numerator is transposed")
    numerator = irx.ins(div_op)[0]
    total, dim = broadcast_operand(div_op, 1)
    sum_red = match_reduction(total, "add")
    require(sum_red.dim == dim and sum_red.source == numerator, "the denominator is not the sum of the numerator")
    exp_op, matched, exp_input = _match_exp(numerator)
    matched += [div_op, sum_red.op]
    sub_op = irx.producer(exp_input) if exp_input is not None else exp_op
    x = exp_input
    if sub_op is not None and is_elementwise(sub_op) and len(irx.ins(sub_op)) == 2 and (
        exp_input is None or binary(body(sub_op), "arith.subf", 0, 1)
    ):
        require(irx.is_identity(irx.indexing_maps(sub_op)[0]), "x - max reads x transposed")
        x = irx.ins(sub_op)[0]
        max_value, max_dim = broadcast_operand(sub_op, 1)
        max_red = match_reduction(max_value, "max")
        require(max_red.dim == dim and max_red.source == x, "the subtracted max is not max(x) over the softmax dim")
        if sub_op != exp_op:
            matched.append(sub_op)
        matched.append(max_red.op)
        if irx.num_uses(max_value) != 1:
            raise NoMatch("the row max has another use")
        for extra in max_red.op.operation.results[1:]:
            require(irx.num_uses(extra) == 0, "the argmax of the row max is used")
    require(x is not None, "exp(...) does not read the softmax input")
    # E feeds the sum and the division only; Z only the division.
    require(irx.num_uses(numerator) == 2, "exp(x - max) has another use")
    require(irx.num_uses(irx.result(sum_red.op)) == 1, "the row sum has another use")
    return x, dim, matched


def _create_softmax(x: ir.Value, dim: int, init: ir.Value, loc) -> ir.Value:
    op = ir.Operation.create(
        "linalg.softmax",
        results=[init.type],
        operands=[x, init],
        attributes={"dimension": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), dim)},
        loc=loc,
    )
    return op.results[0]


def _rewrite(op) -> None:
    """Raises the decomposed softmax that `op` (its final division) ends, if it is one."""
    if not is_elementwise(op) or not is_op_expr(body(op), "arith.divf"):
        return
    try:
        x, dim, matched = match_softmax(op)
    except NoMatch:
        return
    loc = op.operation.location
    with ir.InsertionPoint(op), loc:
        y = _create_softmax(x, dim, irx.outs(op)[0], loc)
    irx.result(op).replace_all_uses_with(y)
    irx.erase_dead(matched)


def run(module: ir.Module, ctx) -> None:
    """Rewrites every decomposed softmax in `module`, visiting each generic once in program
    order; a rewrite erases only its own softmax's ops, whose handles are then skipped."""
    for op in irx.collect(module, "linalg.generic"):
        if irx.alive(op):
            _rewrite(op)
