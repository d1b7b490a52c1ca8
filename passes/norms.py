"""torch-mlir's LayerNorm and RMSNorm, read back from their decompositions (and the residual
add before them).

`match_layer_norm(rsqrt)` takes the `math.rsqrt` generic of a decomposed
`aten.layer_norm` / `nn.LayerNorm` over the last dim and returns the LayerNorm it computes,
or NoMatch with the reason. torch-mlir writes, for x [..., N] (f16/bf16 inputs extended
to f32 first, x32 = ext(x)):

    mean = sum(x32, -1) / N                                 (f32, keepdim)
    var  = trunc(sum((ext64(x32) - mean64)^2, -1) / N)      mean64 = sum(ext64(x32), -1) / N
           (or the same in f32: sum((x32 - mean)^2, -1) / N)
    y    = (x32 - mean) * rsqrt(var + eps)                  (the rsqrt this starts from)
    [y   = y * ext(weight)[n]]  [y = y + ext(bias)[n]]  [y = trunc(y)]

i.e. y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias, the biased variance, in f32.
`match_rms_norm(rsqrt)` takes the rsqrt of an RMSNorm written out (LLaMA, Mistral, Qwen2,
T5; torch's nn.RMSNorm decomposes the same way):

    ms   = sum(x32^2, -1) / N                               (x32^2: fpowi(x32, 2) or x32 * x32)
    y    = x32 * rsqrt(ms + eps)
    then [y = trunc(y)] [y = y * weight[n]] [y = trunc(y)]

the weight multiplying either in f32 before the rounding, or (LLaMA's `weight *
y.to(input_dtype)`) in the model's type after it (`weight_rounded`). `match_norm(rsqrt)`
reads whichever of the two the rsqrt belongs to.

`residual_add(x)`: x = a + b (one elementwise addf of two tensors of x's shape) when the
sum has no use outside the norm, else None (the sum is then read by whoever else needs it).
Passes read ops through here; the rewrite is the codegen step's (compiler/norm_dispatch.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from iree.compiler import ir

from . import ir as irx
from .matchers import NoMatch, body, broadcast_operand, is_elementwise, is_op_expr, match_reduction, require


@dataclass
class LayerNorm:
    x: ir.Value  # the normalised tensor [..., N], in the model's type (before any ext)
    weight: Optional[ir.Value]  # [N] in its own type, or None
    bias: Optional[ir.Value]  # [N], or None
    eps: float
    out: ir.Value  # the result (the truncation's, where there is one)
    ops: list = field(default_factory=list)  # the decomposition's ops, x's consumers to out
    kind = "layer"
    weight_rounded = False

    @property
    def n(self) -> int:
        return irx.shape(self.x)[-1]


@dataclass
class RMSNorm(LayerNorm):
    """x * rsqrt(mean(x^2) + eps) [* weight]: LayerNorm's fields, bias always None."""
    weight_rounded: bool = False  # the weight multiplies y rounded to x's type, in that type
    kind = "rms"


def _same(a, b) -> bool:
    return a is not None and b is not None and a == b


def _expr_arg(e, n: int) -> bool:
    return e.kind == "arg" and e.value == n


def _unary(op, name: str):
    """The input of an elementwise one-input generic whose body is name(arg0), else None."""
    if not is_elementwise(op) or len(irx.ins(op)) != 1:
        return None
    e = body(op)
    if is_op_expr(e, name) and len(e.args) == 1 and _expr_arg(e.args[0], 0):
        return irx.ins(op)[0]
    return None


def _cast_source(value, name: str) -> ir.Value:
    """The tensor `value` is a `name` (arith.extf / truncf) of, or `value` itself."""
    op = irx.producer(value)
    src = _unary(op, name) if op is not None else None
    return src if src is not None else value


def _const(e) -> Optional[float]:
    """A constant scalar operand, through a precision cast of the constant (torch-mlir's
    truncf of an f64 eps)."""
    while is_op_expr(e, "arith.truncf", "arith.extf") and len(e.args) == 1:
        e = e.args[0]
    return float(e.value) if e.kind == "const" and isinstance(e.value, (int, float)) else None


def _scalar_op(op, name: str):
    """(input, constant) of an elementwise one-input generic computing name(arg0, constant)."""
    require(is_elementwise(op) and len(irx.ins(op)) == 1, "not an elementwise op of one tensor")
    e = body(op)
    require(is_op_expr(e, name) and len(e.args) == 2 and _expr_arg(e.args[0], 0), f"not a {name} by a constant")
    c = _const(e.args[1])
    require(c is not None, f"the {name} is not by a constant")
    return irx.ins(op)[0], c


def _mean(value, n: int, ops: list) -> ir.Value:
    """The tensor `value` = sum(t, -1, keepdim) / n is the mean of (t)."""
    div = irx.producer(value)
    require(div is not None, "the mean is not computed")
    summed, count = _scalar_op(div, "arith.divf")
    require(count == n, f"divides by {count}, not the row length {n}")
    red = match_reduction(summed, "add")
    require(red.dim == len(irx.shape(red.source)) - 1, "the reduction is over another dim than the last")
    ops += [div, red.op]
    return red.source


def _binary_bcast(op, name: str):
    """(full, reduced) for an elementwise name(full [..., N], reduced [..., 1] broadcast)."""
    require(is_elementwise(op) and len(irx.ins(op)) == 2, f"not an elementwise {name} of two tensors")
    e = body(op)
    require(is_op_expr(e, name) and _expr_arg(e.args[0], 0) and _expr_arg(e.args[1], 1), f"not a {name}")
    require(irx.is_identity(irx.indexing_maps(op)[0]), f"the {name} reads its first operand transposed")
    reduced, dim = broadcast_operand(op, 1)
    require(dim == irx.indexing_maps(op)[-1].n_dims - 1, f"the {name} broadcasts along another dim than the last")
    return irx.ins(op)[0], reduced


def _variance(value, x32, n: int, ops: list) -> None:
    """`value` = the biased variance of x32's rows: in f32 from x32, or in f64 from ext(x32)
    truncated back."""
    trunc = irx.producer(value)
    src = _unary(trunc, "arith.truncf") if trunc is not None else None
    if src is not None:
        ops.append(trunc)
        value = src
    squares = _mean(value, n, ops)
    sq = irx.producer(squares)
    require(is_elementwise(sq) and len(irx.ins(sq)) == 2 and irx.ins(sq)[0] == irx.ins(sq)[1],
            "the variance does not square one tensor")
    e = body(sq)
    require(is_op_expr(e, "arith.mulf"), "the variance does not square (mulf) the centred rows")
    ops.append(sq)
    centred, mean = _binary_bcast(irx.producer(irx.ins(sq)[0]), "arith.subf")
    ops.append(irx.producer(irx.ins(sq)[0]))
    rows = _mean(mean, n, ops)
    require(rows == centred, "the variance centres by another tensor's mean")
    if rows != x32:
        ext = irx.producer(rows)
        require(ext is not None and _same(_unary(ext, "arith.extf"), x32), "the variance is of another tensor")
        ops.append(ext)


def _row_vector(op, y, name: str):
    """The [N] operand of an elementwise name(y, vector[n]) or name(vector[n], y) (name a
    commutative mulf / addf; the vector in its own type: through an extf in the body), or None."""
    if not is_elementwise(op) or len(irx.ins(op)) != 2 or y not in list(irx.ins(op)):
        return None
    i = list(irx.ins(op)).index(y)
    maps = irx.indexing_maps(op)
    n_loops = maps[-1].n_dims
    if not irx.is_identity(maps[i]) or irx.map_dims(maps[1 - i]) != [n_loops - 1]:
        return None
    e = body(op)
    if not (is_op_expr(e, name) and len(e.args) == 2):
        return None
    args = [strip_ext(a) for a in e.args]
    return irx.ins(op)[1 - i] if {(a.kind, a.value) for a in args} == {("arg", 0), ("arg", 1)} else None


def strip_ext(e):
    """e through arith.extf casts."""
    while is_op_expr(e, "arith.extf") and len(e.args) == 1:
        e = e.args[0]
    return e


def _only_users(value, ops: list) -> bool:
    ids = [o.operation for o in ops]
    return all(any(u == o for o in ids) for u in irx.users(value))


def _normalising_factor(rsqrt, ops: list) -> tuple:
    """(statistic, eps, mul) of rsqrt(statistic + eps) used once, by `mul` = rows * it (the
    variance of a LayerNorm, the mean of squares of an RMSNorm); rsqrt and the add into ops."""
    stat_eps = _unary(rsqrt, "math.rsqrt")
    require(stat_eps is not None, "not an elementwise rsqrt")
    add = irx.producer(stat_eps)
    require(add is not None, "rsqrt of an argument")
    stat, eps = _scalar_op(add, "arith.addf")
    ops += [rsqrt, add]
    users = irx.users(irx.result(rsqrt))
    require(len(users) == 1, "rsqrt has more than one use")
    mul = users[0].opview
    require(is_elementwise(mul) and len(irx.ins(mul)) == 2 and irx.ins(mul)[1] == irx.result(rsqrt),
            "rsqrt is not used as the normalising factor")
    return stat, eps, mul


def match_layer_norm(rsqrt) -> LayerNorm:
    """The LayerNorm whose rsqrt(var + eps) is `rsqrt` (a linalg.generic), or NoMatch."""
    ops: list = []
    var, eps, mul = _normalising_factor(rsqrt, ops)
    centred, factor = _binary_bcast(mul, "arith.mulf")
    sub = irx.producer(centred)
    require(sub is not None, "the normalised tensor is not centred")
    x32, mean = _binary_bcast(sub, "arith.subf")
    n = irx.shape(x32)[-1]
    ops += [mul, sub]
    require(_mean(mean, n, ops) == x32, "centred by another tensor's mean")
    _variance(var, x32, n, ops)

    y, weight, bias = irx.result(mul), None, None
    for name in ("arith.mulf", "arith.addf"):
        users = irx.users(y)
        if len(users) != 1:
            break
        vec = _row_vector(users[0].opview, y, name)
        if vec is None:
            break
        if name == "arith.mulf":
            weight = vec
        else:
            bias = vec
        ops.append(users[0].opview)
        y = irx.result(users[0].opview)
    users = irx.users(y)
    if len(users) == 1 and _same(_unary(users[0].opview, "arith.truncf"), y):
        ops.append(users[0].opview)
        y = irx.result(users[0].opview)
    x = _cast_source(x32, "arith.extf")
    if x != x32:
        ops.append(irx.producer(x32))
    for v in [irx.result(o) for o in ops if irx.result(o) != y]:
        require(_only_users(v, ops), "a value inside the LayerNorm is used outside it")
    return LayerNorm(x=x, weight=weight, bias=bias, eps=eps, out=y, ops=ops)


def _squares(value, x32, ops: list) -> None:
    """`value` = x32 squared, elementwise: fpowi(x32, 2), x32 * x32 (one operand or two)."""
    sq = irx.producer(value)
    require(sq is not None and is_elementwise(sq), "the mean is not of squares")
    ins, e = list(irx.ins(sq)), body(sq)
    require(all(v == x32 for v in ins), "squares another tensor than the one normalised")
    square = (is_op_expr(e, "math.fpowi", "math.powf") and len(e.args) == 2 and _expr_arg(e.args[0], 0)
              and _const(e.args[1]) == 2.0)
    square = square or (is_op_expr(e, "arith.mulf") and all(a.kind == "arg" for a in e.args))
    require(square, "the mean is not of squares")
    ops.append(sq)


def match_rms_norm(rsqrt) -> RMSNorm:
    """The RMSNorm whose rsqrt(mean(x^2) + eps) is `rsqrt` (a linalg.generic), or NoMatch."""
    ops: list = []
    ms, eps, mul = _normalising_factor(rsqrt, ops)
    x32, _ = _binary_bcast(mul, "arith.mulf")
    ops.append(mul)
    _squares(_mean(ms, irx.shape(x32)[-1], ops), x32, ops)

    y, weight, truncated, weight_rounded = irx.result(mul), None, False, False
    for step in ("trunc", "weight", "trunc"):
        users = irx.users(y)
        if len(users) != 1:
            break
        op = users[0].opview
        if step == "trunc" and _same(_unary(op, "arith.truncf"), y):
            truncated = True
        elif step == "weight" and (vec := _row_vector(op, y, "arith.mulf")) is not None:
            weight, weight_rounded = vec, truncated
        else:
            continue
        ops.append(op)
        y = irx.result(op)
    x = _cast_source(x32, "arith.extf")
    if x != x32:
        ops.append(irx.producer(x32))
    for v in [irx.result(o) for o in ops if irx.result(o) != y]:
        require(_only_users(v, ops), "a value inside the RMSNorm is used outside it")
    return RMSNorm(x=x, weight=weight, bias=None, eps=eps, out=y, ops=ops, weight_rounded=weight_rounded)


def match_norm(rsqrt) -> LayerNorm:
    """The LayerNorm or RMSNorm `rsqrt` belongs to, or NoMatch with the reason of the one it
    is shaped as (rows centred before the rsqrt scales them: a LayerNorm)."""
    try:
        return match_layer_norm(rsqrt)
    except NoMatch as layer:
        if _scales_centred_rows(rsqrt):
            raise NoMatch(f"not a LayerNorm over the last dim: {layer}") from None
    try:
        return match_rms_norm(rsqrt)
    except NoMatch as rms:
        early = str(rms).startswith(("not an elementwise rsqrt", "rsqrt "))
        raise NoMatch(f"not {'a LayerNorm or ' if early else 'an '}RMSNorm over the last dim: {rms}") from None


def _scales_centred_rows(rsqrt) -> bool:
    """rsqrt's one use multiplies a difference (x - mean), as a LayerNorm's does."""
    users = irx.users(irx.result(rsqrt))
    if len(users) != 1 or not irx.ins(users[0].opview):
        return False
    sub = irx.producer(irx.ins(users[0].opview)[0])
    return sub is not None and is_elementwise(sub) and is_op_expr(body(sub), "arith.subf")


def residual_add(x) -> Optional[tuple]:
    """(a, b) when `x` = a + b, an elementwise addf of two tensors of x's shape and type,
    used only by the LayerNorm (its one use, through the extension if any: the caller checks
    the uses); else None."""
    op = irx.producer(x)
    if op is None or not is_elementwise(op) or len(irx.ins(op)) != 2:
        return None
    if not all(irx.is_identity(m) for m in irx.indexing_maps(op)):
        return None
    e = body(op)
    if not (is_op_expr(e, "arith.addf") and {a.value for a in e.args if a.kind == "arg"} == {0, 1}):
        return None
    a, b = irx.ins(op)
    if a.type != x.type or b.type != x.type:
        return None
    return a, b
