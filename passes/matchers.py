"""Declarative matchers over linalg ops, in the spirit of IREE's StructuredOpMatcher.

A `linalg.generic` body is read into an `Expr` tree (what it yields, as a function of its
block arguments, `linalg.index` values and constants), so a pattern reads like the math:
`binary(body, "arith.divf", ARG(0), ARG(1))`. Every matcher returns either a result or a
`NoMatch` carrying the reason, which becomes the report's "why not raised".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from iree.compiler import ir

from . import ir as irx


class NoMatch(Exception):
    """A candidate does not match; the message says why, in words a user can act on."""


def require(condition: bool, reason: str) -> None:
    if not condition:
        raise NoMatch(reason)


# --- generic bodies as expression trees -----------------------------------------------


@dataclass(frozen=True, eq=False)
class Expr:
    kind: str  # "arg" | "const" | "index" | "op" | "capture"
    name: str = ""  # op name for kind == "op"
    args: tuple = ()
    value: object = None  # arg number, constant, loop dim, or captured ir.Value
    ref: object = field(default=None, repr=False)  # the defining op, kept for cloning

    def uses_arg(self, n: int) -> bool:
        if self.kind == "arg":
            return self.value == n
        return any(a.uses_arg(n) for a in self.args)


def _expr_of(value: ir.Value, block: ir.Block) -> Expr:
    owner = value.owner
    if isinstance(owner, ir.Block):
        if owner == block:
            return Expr("arg", value=value.arg_number)
        return Expr("capture", value=value)
    op = owner.opview
    name = op.operation.name
    inside = op.operation.block == block
    if name == "arith.constant":
        constant = irx.constant_value(value)
        if constant is not None:
            return Expr("const", value=constant, ref=op)
    if not inside:
        return Expr("capture", value=value)
    if name == "linalg.index":
        return Expr("index", value=int(op.operation.attributes["dim"].value), ref=op)
    return Expr("op", name=name, args=tuple(_expr_of(v, block) for v in op.operation.operands), ref=op)


def body(op, result_index: int = 0) -> Expr:
    """The expression a linalg.generic yields for result `result_index`."""
    block = op.operation.regions[0].blocks[0]
    terminator = list(block.operations)[-1]
    return _expr_of(terminator.operation.operands[result_index], block)


def is_op_expr(e: Expr, *names: str) -> bool:
    return e.kind == "op" and e.name in names


def strip_casts(e: Expr) -> Expr:
    """Looks through floating-point precision casts (extf / truncf)."""
    while is_op_expr(e, "arith.extf", "arith.truncf"):
        e = e.args[0]
    return e


def binary(e: Expr, name: str, lhs_arg: int, rhs_arg: int, commutative: bool = False) -> bool:
    """e == name(arg lhs_arg, arg rhs_arg), through precision casts on the operands."""
    if not is_op_expr(e, name) or len(e.args) != 2:
        return False
    a, b = (strip_casts(x) for x in e.args)
    direct = a.kind == "arg" and a.value == lhs_arg and b.kind == "arg" and b.value == rhs_arg
    swapped = a.kind == "arg" and a.value == rhs_arg and b.kind == "arg" and b.value == lhs_arg
    return direct or (commutative and swapped)


def is_max_of(e: Expr, in_arg: int, acc_arg: int) -> bool:
    """max(in, acc): maximumf / maxnumf, or select(cmpf ogt/oge(in, acc), in, acc)."""
    if binary(e, "arith.maximumf", in_arg, acc_arg, True) or binary(e, "arith.maxnumf", in_arg, acc_arg, True):
        return True
    if is_op_expr(e, "arith.select") and is_op_expr(e.args[0], "arith.cmpf"):
        cmp = e.args[0]
        pred = str(cmp.ref.operation.attributes["predicate"]).split(":")[0].strip()
        a, b = e.args[1], e.args[2]
        picks_in = a.kind == "arg" and a.value == in_arg and b.kind == "arg" and b.value == acc_arg
        return picks_in and binary(cmp, "arith.cmpf", in_arg, acc_arg) and pred in ("2", "3", "10", "11", "ogt", "oge", "ugt", "uge")
    return False


# --- structured op shapes ------------------------------------------------------------


def is_elementwise(op) -> bool:
    """A linalg.generic with only parallel loops, one result and an identity output map."""
    if not irx.is_op(op, "linalg.generic"):
        return False
    if any(kind != "parallel" for kind in irx.iterator_types(op)):
        return False
    maps = irx.indexing_maps(op)
    return len(irx.outs(op)) == 1 and irx.is_identity(maps[-1])


def copy_like_map(op) -> Optional[ir.AffineMap]:
    """For a generic that only moves data (transpose / broadcast), the input's map."""
    if not is_elementwise(op) or len(irx.ins(op)) != 1:
        return None
    e = body(op)
    if e.kind == "arg" and e.value == 0:
        return irx.indexing_maps(op)[0]
    return None


@dataclass
class Contraction:
    """A matmul-like op: out[p...] += lhs[...] * rhs[...] over exactly one reduction loop."""

    op: object
    lhs: ir.Value
    rhs: ir.Value
    maps: list  # [lhs, rhs, out] affine maps
    roles: list  # per loop: "batch" | "lhs" | "rhs" | "red"

    def loop_of(self, role: str) -> list[int]:
        return [i for i, r in enumerate(self.roles) if r == role]


def _is_contraction_body(op) -> bool:
    e = body(op)
    if not is_op_expr(e, "arith.addf") or len(e.args) != 2:
        return False
    acc, prod = e.args
    if prod.kind == "arg":
        acc, prod = prod, acc
    prod = strip_casts(prod)
    return acc.kind == "arg" and acc.value == 2 and binary(prod, "arith.mulf", 0, 1, True)


def match_contraction(op) -> Contraction:
    """linalg.batch_matmul / linalg.matmul / a contraction linalg.generic, accumulating into zero."""
    require(op is not None, "not computed by an operation")
    name = irx.op_name(op)
    require(name in irx.STRUCTURED, f"computed by {name}, not a matmul")
    require(len(irx.ins(op)) == 2 and len(irx.outs(op)) == 1, f"{name} is not a two-operand contraction")
    if name == "linalg.generic":
        require(_is_contraction_body(op), "the linalg.generic is not a multiply-accumulate")
    maps = irx.indexing_maps(op)
    require(all(m.is_projected_permutation for m in maps), "contraction with non-permutation indexing maps")
    n_loops = maps[0].n_dims
    used = [set(irx.map_dims(m)) for m in maps]
    roles = []
    for d in range(n_loops):
        where = tuple(d in u for u in used)
        role = {(True, True, True): "batch", (True, False, True): "lhs", (False, True, True): "rhs",
                (True, True, False): "red"}.get(where)
        require(role is not None, f"loop d{d} of the matmul is not a batch, row, column or reduction dim")
        roles.append(role)
    for role in ("lhs", "rhs", "red"):
        require(roles.count(role) == 1, f"the matmul has {roles.count(role)} '{role}' dims, expected exactly one")
    init = irx.fill_constant(irx.outs(op)[0])
    require(init == 0, "the matmul accumulates into a non-zero tensor")
    lhs, rhs = irx.ins(op)
    return Contraction(op, lhs, rhs, maps, roles)


@dataclass
class Reduction:
    op: object
    source: ir.Value
    dim: int
    kind: str  # "max" | "add"


def look_through_unit_expand(value: ir.Value, dim: int) -> ir.Value:
    """If `value` only inserts a unit dim at `dim` (keepdim), the tensor before it."""
    op = irx.producer(value)
    if irx.is_op(op, "tensor.expand_shape"):
        groups = irx.reassociation(op)
        if all(len(g) == 1 or (dim in g and len(g) == 2) for g in groups):
            return op.operation.operands[0]
    return value


def match_reduction(value: ir.Value, kind: str) -> Reduction:
    """value = reduce_{kind} over exactly one dim of a tensor (keepdim or not)."""
    op = irx.producer(value)
    require(irx.is_op(op, "linalg.generic"), f"the {kind} is not a linalg reduction")
    iters = irx.iterator_types(op)
    red = [i for i, k in enumerate(iters) if k == "reduction"]
    require(len(red) == 1, f"the {kind} reduces {len(red)} dims")
    dim = red[0]
    maps = irx.indexing_maps(op)
    require(len(irx.ins(op)) == 1 and irx.is_identity(maps[0]), f"the {kind} reads a transposed input")
    out_dims = irx.map_dims(maps[1])
    keep = [d for d in range(len(iters)) if d != dim]
    require(out_dims in (keep, [d if d != dim else "0" for d in range(len(iters))]), f"the {kind} output map is unusual")
    e = body(op, 0)
    n_in = 1
    if kind == "max":
        require(is_max_of(e, 0, n_in), "the reduction is not a max")
        init = irx.fill_constant(irx.outs(op)[0])
        require(init is not None and init <= -1e30, "the max does not start from -inf")
    else:
        require(binary(e, "arith.addf", 0, n_in, True), "the reduction is not a sum")
        require(irx.fill_constant(irx.outs(op)[0]) == 0, "the sum does not start from zero")
    return Reduction(op, irx.ins(op)[0], dim, kind)


def broadcast_operand(op, operand: int) -> tuple[ir.Value, int]:
    """For an elementwise op whose operand is a reduced tensor broadcast back along one dim:
    (the reduced tensor before any keepdim expand, that dim)."""
    maps = irx.indexing_maps(op)
    dims = irx.map_dims(maps[operand])
    n = maps[-1].n_dims
    value = op.operation.operands[operand]
    missing = [d for d in range(n) if d not in dims]
    require(len(missing) == 1, "the operand is not broadcast along exactly one dim")
    dim = missing[0]
    if len(dims) == n:  # keepdim: the broadcast dim is read at constant 0
        require(dims[dim] == "0" and [d for i, d in enumerate(dims) if i != dim] == [d for d in range(n) if d != dim],
                "the broadcast operand is transposed")
        value = look_through_unit_expand(value, dim)
    else:
        require(dims == [d for d in range(n) if d != dim], "the broadcast operand is transposed")
    return value, dim
