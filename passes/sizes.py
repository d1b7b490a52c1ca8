"""Symbolic sizes: what an index or integer SSA value equals, as a polynomial over dynamic dims.

torch-mlir spells dynamic shapes as integer arithmetic (`dim * 4`, `-1` inference with
selects, divisions) feeding `tensor.from_elements`. To see that such a shape is `[B*H, S, D]`
the folding passes evaluate it here: a value becomes a polynomial whose variables are the
function's dynamic input dims (`tensor.dim %argN, d`), so `%a * 4` and `4 * %a` compare equal.
Sizes are never negative, which decides torch-mlir's "is this -1?" selects.

Only what is provable is answered; anything else is None and the caller leaves the IR alone.
"""

from __future__ import annotations

from typing import Optional

from iree.compiler import ir

from . import ir as irx

Poly = dict  # {monomial: coefficient}; a monomial is a sorted tuple of variable names
ONE: Poly = {(): 1}


def const(c: int) -> Poly:
    return {(): c} if c else {}


def add(a: Poly, b: Poly, sign: int = 1) -> Poly:
    out = dict(a)
    for m, c in b.items():
        out[m] = out.get(m, 0) + sign * c
    return {m: c for m, c in out.items() if c}


def mul(a: Poly, b: Poly) -> Poly:
    out: Poly = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            m = tuple(sorted(ma + mb))
            out[m] = out.get(m, 0) + ca * cb
    return {m: c for m, c in out.items() if c}


def div(a: Poly, b: Poly) -> Optional[Poly]:
    """a / b when b is a monomial that divides every term of a exactly, else None."""
    if len(b) != 1:
        return None
    (mb, cb), = b.items()
    out: Poly = {}
    for ma, ca in a.items():
        rest = list(ma)
        for v in mb:
            if v not in rest:
                return None
            rest.remove(v)
        if ca % cb:
            return None
        out[tuple(rest)] = ca // cb
    return out


def divides(a: Poly, b: Poly) -> bool:
    return len(a) == 1 and div(b, a) is not None


def nonnegative(a: Poly) -> bool:
    return all(c >= 0 for c in a.values())


def as_int(a: Poly) -> Optional[int]:
    if not a:
        return 0
    return a[()] if list(a) == [()] else None


class Sizes:
    """Evaluates index/integer values and tensor dims of one function to polynomials.

    `symbols` ({(arg number, dim): name}, from the function's flashlift.input_dims) makes
    input dims with the same name the same variable."""

    def __init__(self, symbols: Optional[dict] = None) -> None:
        self._values: dict = {}
        self._symbols = symbols or {}

    def dim(self, tensor: ir.Value, d: int) -> Optional[Poly]:
        """The size of dim `d` of `tensor`."""
        size = irx.shape(tensor)[d]
        if size is not None:
            return const(size)
        if isinstance(tensor, ir.BlockArgument) or isinstance(tensor.owner, ir.Block):
            key = (ir.BlockArgument(tensor).arg_number, d)
            return {(self._symbols.get(key, "%%arg%d[%d]" % key),): 1}
        op = irx.producer(tensor)
        name = irx.op_name(op)
        if name == "tensor.empty":
            dynamic = [i for i in range(d) if irx.shape(tensor)[i] is None]
            return self.value(op.operation.operands[len(dynamic)])
        if name == "tensor.cast":
            return self.dim(op.operation.operands[0], d)
        if name == "tensor.reshape":
            shape = irx.producer(op.operation.operands[1])
            if irx.is_op(shape, "tensor.from_elements"):
                return self.value(shape.operation.operands[d])
            return None
        if name == "tensor.collapse_shape":
            src = op.operation.operands[0]
            total: Optional[Poly] = ONE
            for j in irx.reassociation(op)[d]:
                part = self.dim(src, j)
                total = mul(total, part) if part is not None and total is not None else None
            return total
        if name == "tensor.expand_shape":
            dynamic = [i for i in range(d) if irx.shape(tensor)[i] is None]
            return self.value(op.operation.operands[1 + len(dynamic)])
        if name.startswith(("linalg.", "iree_linalg_ext.")):  # destination-passing: sized by its init
            results, operands = list(op.operation.results), list(op.operation.operands)
            inits = operands[len(operands) - len(results):]
            return self.dim(inits[results.index(tensor)], d)
        return None

    def value(self, v: ir.Value) -> Optional[Poly]:
        if v not in self._values:
            self._values[v] = self._evaluate(v)
        return self._values[v]

    def _evaluate(self, v: ir.Value) -> Optional[Poly]:
        op = irx.producer(v)
        if op is None:
            return None
        name = irx.op_name(op)
        operands = list(op.operation.operands)
        if name == "arith.constant":
            c = irx.constant_value(v)
            return const(int(c)) if isinstance(c, int) else None
        if name in ("arith.index_cast", "arith.index_castui", "arith.extsi", "arith.extui"):
            if isinstance(operands[0].type, ir.IntegerType) and ir.IntegerType(operands[0].type).width == 1:
                truth = self.condition(operands[0])
                return None if truth is None else const(int(truth))
            return self.value(operands[0])
        if name == "tensor.dim":
            d = irx.constant_value(operands[1])
            return self.dim(operands[0], d) if isinstance(d, int) else None
        if name == "affine.apply":
            amap = op.operation.attributes["map"].value
            return self._affine(amap.results[0], operands, amap.n_dims) if len(amap.results) == 1 else None
        if name == "arith.select":
            truth = self.condition(operands[0])
            if truth is not None:
                return self.value(operands[1 if truth else 2])
            a, b = self.value(operands[1]), self.value(operands[2])
            return a if a is not None and a == b else None
        a, b = (self.value(x) for x in operands[:2]) if len(operands) == 2 else (None, None)
        if a is None or b is None:
            return None
        if name == "arith.muli":
            return mul(a, b)
        if name == "arith.addi":
            return add(a, b)
        if name == "arith.subi":
            return add(a, b, -1)
        if name in ("arith.divsi", "arith.divui", "arith.floordivsi", "arith.ceildivsi"):
            return div(a, b)
        return None

    def _affine(self, e, operands: list, n_dims: int) -> Optional[Poly]:
        """An affine expression over `operands` (dims, then symbols)."""
        if isinstance(e, ir.AffineConstantExpr):
            return const(e.value)
        if isinstance(e, ir.AffineDimExpr):
            return self.value(operands[e.position])
        if isinstance(e, ir.AffineSymbolExpr):
            return self.value(operands[n_dims + e.position])
        kinds = ((ir.AffineAddExpr, add), (ir.AffineMulExpr, mul), (ir.AffineFloorDivExpr, div), (ir.AffineCeilDivExpr, div))
        for kind, combine in kinds:
            if isinstance(e, kind):
                a, b = self._affine(e.lhs, operands, n_dims), self._affine(e.rhs, operands, n_dims)
                return combine(a, b) if a is not None and b is not None else None
        return None

    def condition(self, v: ir.Value) -> Optional[bool]:
        """The truth of an i1 value where sizes being non-negative decides it."""
        op = irx.producer(v)
        if irx.is_op(op, "arith.constant"):
            c = irx.constant_value(v)
            return None if c is None else bool(c)
        if not irx.is_op(op, "arith.cmpi"):
            return None
        a, b = (self.value(x) for x in op.operation.operands)
        if a is None or b is None:
            return None
        diff = add(a, b, -1)  # a - b
        code = ir.IntegerAttr(op.operation.attributes["predicate"]).value
        # arith.cmpi predicates: eq 0, ne 1, slt 2, sle 3, sgt 4, sge 5 (unsigned ones: unknown)
        known = as_int(diff)
        if code == 0:
            return True if not diff else (False if known is not None else None)
        if code == 1:
            return False if not diff else (True if known is not None else None)
        if code == 2:  # a < b
            return False if nonnegative(diff) else (known < 0 if known is not None else None)
        if code == 3:  # a <= b
            return True if nonnegative(add({}, diff, -1)) else (known <= 0 if known is not None else None)
        if code == 4:  # a > b
            return False if nonnegative(add({}, diff, -1)) else (known > 0 if known is not None else None)
        if code == 5:  # a >= b
            return True if nonnegative(diff) else (known >= 0 if known is not None else None)
        return None
