"""The score function of a raise-attention candidate: `S' = alpha * S + beta`.

`slope` reads the elementwise ops between Q.K and the softmax as that affine function of
the scores: alpha (`Scale`: a constant times runtime scalars) becomes the attention op's
scale; beta (`MaskTerm`, one per score op, chained) becomes its mask operand
(attention_builder.MaskBuilder). Anything that is not affine in the scores is a NoMatch
with the reason (a score multiplied by itself, a select with a fill a softmax still sees).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from . import ir as irx
from . import masks
from .matchers import Expr, NoMatch, is_op_expr, require, strip_casts

MASKED = masks.MASKED  # a select() fill at or below this is taken to mean "masked out"


@dataclass
class Scale:
    constant: float = 1.0
    factors: list = field(default_factory=list)  # [(op "mul"|"div", ir.Value scalar)]

    def times(self, other: "Scale") -> "Scale":
        return Scale(self.constant * other.constant, self.factors + other.factors)


def _uniform_scalar(e: Expr, op) -> Scale:
    """A factor that is the same for every score: a constant, a captured scalar, or a
    rank-0 tensor operand of the generic."""
    e = strip_casts(e)
    if e.kind == "const":
        return Scale(float(e.value))
    if e.kind == "capture":
        return Scale(factors=[("mul", e.value)])
    if e.kind == "arg":
        operand = op.operation.operands[e.value]
        amap = irx.indexing_maps(op)[e.value]
        if len(amap.results) == 0 and e.value < len(irx.ins(op)):
            return Scale(factors=[("mul", ("extract", operand))])
    raise NoMatch("the scores are multiplied by something that varies per element")


def scalar_constant(e: Expr, op) -> Optional[float]:
    """The value of a constant scalar: an arith.constant, or a splat constant tensor operand."""
    e = strip_casts(e)
    if e.kind == "const":
        return float(e.value)
    if e.kind == "arg" and e.value < len(irx.ins(op)):
        value = irx.splat_constant(op.operation.operands[e.value])
        return None if value is None else float(value)
    return None


def _invert(s: Scale) -> Scale:
    require(s.constant != 0, "the scores are divided by zero")
    return Scale(1.0 / s.constant, [("div" if k == "mul" else "mul", v) for k, v in s.factors])


def slope(e: Expr, chain: int, op) -> Scale:
    """d(e)/d(chain arg), which must be a uniform scalar: e == alpha * s + beta."""
    if e.kind == "arg" and e.value == chain:
        return Scale()
    require(e.kind == "op", "unexpected score expression")
    n = e.name
    if n in ("arith.extf", "arith.truncf"):
        return slope(e.args[0], chain, op)
    if n == "arith.negf":
        return Scale(-1.0).times(slope(e.args[0], chain, op))
    uses = [a.uses_arg(chain) for a in e.args]
    if n == "arith.mulf":
        require(uses.count(True) == 1, "the scores are multiplied by themselves")
        i = uses.index(True)
        return slope(e.args[i], chain, op).times(_uniform_scalar(e.args[1 - i], op))
    if n == "arith.divf":
        require(uses == [True, False], "the scores are used as a divisor")
        return slope(e.args[0], chain, op).times(_invert(_uniform_scalar(e.args[1], op)))
    if n in ("arith.addf", "arith.subf"):
        require(uses.count(True) == 1, "the scores are added to themselves")
        require(n == "arith.addf" or uses[0], "the scores are subtracted from something")
        return slope(e.args[uses.index(True)], chain, op)
    if n == "arith.select":
        require(not uses[0], "a mask condition depends on the scores")
        require(uses[1] != uses[2], "both branches of a select use the scores")
        other = e.args[2] if uses[1] else e.args[1]
        fill = scalar_constant(other, op)
        require(fill is not None and fill <= MASKED,
                "a select() replaces scores by something other than -inf / a very negative fill")
        return slope(e.args[1] if uses[1] else e.args[2], chain, op)
    raise NoMatch(f"the scores go through {n}, which is not a scale, bias or mask")


# --- beta (the additive mask) as an expression over atoms ----------------------------


@dataclass
class MaskTerm:
    """beta of one score op: its body with the chain arg replaced by the previous beta."""

    op: object  # the score linalg.generic
    expr: Expr
    chain: int
    layout: list  # the op's loops -> atoms (loop d reads layout[d])
    previous: Optional["MaskTerm"]

    def is_zero(self) -> bool:
        return _is_zero(self.expr, self)


def _is_zero(e: Expr, term: Optional[MaskTerm]) -> bool:
    if term is None:
        return True
    if e.kind == "arg" and e.value == term.chain:
        return term.previous is None or term.previous.is_zero()
    if e.kind == "const":
        return float(e.value) == 0.0
    if is_op_expr(e, "arith.extf", "arith.truncf", "arith.negf"):
        return _is_zero(e.args[0], term)
    if is_op_expr(e, "arith.mulf", "arith.divf"):
        return _is_zero(e.args[0], term) or (e.name == "arith.mulf" and _is_zero(e.args[1], term))
    if is_op_expr(e, "arith.addf", "arith.subf"):
        return _is_zero(e.args[0], term) and _is_zero(e.args[1], term)
    return False


def adds_in(term: Optional[MaskTerm]) -> str:
    """The narrowest float type in which a score op of the chain adds or selects its mask
    term (casts alone do not count): the model's rounding happens there."""
    names = []
    while term is not None:
        if not (strip_casts(term.expr).kind == "arg" and strip_casts(term.expr).value == term.chain):
            names.append(masks.float_type_name(chain_type(term)))
        term = term.previous
    return min(names or ["f32"], key=lambda n: masks.MANTISSA_BITS[n])


def chain_type(term: MaskTerm):
    block = term.op.operation.regions[0].blocks[0]
    return block.arguments[term.chain].type
