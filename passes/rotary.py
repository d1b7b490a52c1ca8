"""Rotary position embeddings as torch-mlir writes them, read back from their ops.

`match_rotary(concat)` starts from the concat of a `rotate_half` (LLaMA, Mistral, Qwen2,
Gemma, Phi-3: `apply_rotary_pos_emb`) and returns the embedding it belongs to, or NoMatch
with the reason. For x of rank 4 with an even last dim D = 2h, torch-mlir writes

    rot = concat(-x[..., h:], x[..., :h], dim=-1)          tensor.extract_slice x 2, negf, concat
    out = x * cos + rot * sin                               three elementwise linalg.generics

each generic all-parallel over x's shape, one op on two block arguments (mulf, mulf, addf;
either operand order) in x's element type, or in the tables' wider one with x (and its
rotated half) extended in the products' bodies and the sum maybe rounded back to x's type
by a truncf generic (OLMo's f32 tables: torch promotes the f16 x), each operand read by the
identity map but cos and sin, which are read through broadcasts: projections of the loops (a dim or the
constant 0 per table dim) that read D along the last loop and vary along the batch (loop
0), the sequence (loop 1 or 2) and never the other of loops 1 and 2 (the heads). In
(B, S, H, D), the layout after the head transpose sinks below the embedding
(compiler/head_transposes.py), the sequence is loop 1; in (B, H, S, D) it is loop 2 (tables
of one position, a decode step's, vary along neither).

Per element this is, in the model's type with each op rounded:
out[.., j] = x[.., j] * cos[j] + (-x[.., j + h]) * sin[j] for j < h, and
x[.., j] * cos[j] + x[.., j - h] * sin[j] for j >= h: what compiler/kernels/triton_rotary.py
computes. Passes read ops through here; the rewrite is the codegen step's
(compiler/rotary_dispatch.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from iree.compiler import ir

from . import ir as irx
from .linears import elementwise_op
from .matchers import NoMatch, body, is_elementwise, is_op_expr, require


@dataclass
class Rotary:
    x: ir.Value  # the rotated tensor, rank 4, static, last dim even
    tables: tuple  # ((cos, its indexing map), (sin, its map)): read through the generics' maps
    out: ir.Value  # the sum's result: x's type
    seq_dim: Optional[int]  # the loop the tables vary along besides batch and D: 1, 2 or None
    batched: bool  # whether the tables vary along loop 0
    ops: list = field(default_factory=list)  # the chain's ops, the slices to the sum (or its rounding)

    @property
    def shape(self) -> list:
        return irx.shape(self.x)


def rotate_half_source(concat) -> ir.Value:
    """x, where `concat` is concat(-x[..., h:], x[..., :h]) along the last dim of a rank-4
    static x; NoMatch otherwise (it is not a rotate_half)."""
    require(irx.is_op(concat, "tensor.concat") and len(concat.operation.operands) == 2, "not a two-part concat")
    result = concat.operation.results[0]
    require(irx.tensor_type(result).rank == 4 and irx.tensor_type(result).has_static_shape, "not a static rank-4 concat")
    require(ir.IntegerAttr(concat.operation.attributes["dim"]).value == 3, "not a concat along the last dim")
    neg, lo = concat.operation.operands
    negf = irx.producer(neg)
    require(_applies(negf, "arith.negf", 1), "its first part is not a negation")
    hi = irx.ins(negf)[0]
    x = _slice_of(lo, 0)
    require(x is not None and _slice_of(hi, irx.shape(lo)[3]) == x, "its parts are not x's two halves")
    require(irx.shape(x)[3] == 2 * irx.shape(lo)[3], "its parts are not x's two halves")
    return x


def match_rotary(concat) -> Rotary:
    """The rotary embedding whose rotate_half is `concat` (the module doc's form)."""
    x = rotate_half_source(concat)
    rot = concat.operation.results[0]
    mul_sin = _only_user(rot, "the rotated half")
    require(_applies(mul_sin, "arith.mulf", 2, widens=True), "rotate_half(x) is not multiplied elementwise by a table")
    add = _only_user(mul_sin.operation.results[0], "rotate_half(x) * sin")
    require(_applies(add, "arith.addf", 2), "rotate_half(x) * sin is not added elementwise to x * cos")
    (mul_cos,) = [irx.producer(v) for v in irx.ins(add) if v != mul_sin.operation.results[0]] or [None]
    require(_applies(mul_cos, "arith.mulf", 2, widens=True), "the other term of the sum is not x times a table")
    require(irx.num_uses(mul_cos.operation.results[0]) == 1, "x * cos is read outside the embedding")
    compute = irx.element_type(add.operation.results[0])
    require(all(irx.element_type(op.operation.results[0]) == compute for op in (mul_sin, mul_cos)),
            "the products and the sum differ in type")
    sin = _table(mul_sin, rot, "sin")
    cos = _table(mul_cos, x, "cos")
    end = add
    rounding = irx.users(add.operation.results[0])
    if compute != irx.element_type(x) and len(rounding) == 1 and elementwise_op(rounding[0].operation) == "arith.truncf" \
            and irx.element_type(rounding[0].operation.results[0]) == irx.element_type(x):
        end = rounding[0]  # the model's `.to(x.dtype)` of the sum
    size = irx.shape(x)
    # the loops each table varies along (a loop of one iteration does not count: a single
    # head's, or a decode step's one position, may be read as a dim or as 0 alike)
    loops = [{d for d in irx.map_dims(m) if d != "0" and size[d] > 1} | {3} for _, m in (cos, sin)]
    used = set().union(*loops)
    require(not {1, 2} <= used, "cos / sin vary along both loops 1 and 2 (one must be the heads)")
    ops = [irx.producer(v) for v in irx.ins(irx.producer(concat.operation.operands[0]))]
    ops += [irx.producer(concat.operation.operands[1]), irx.producer(concat.operation.operands[0]), concat,
            mul_sin, mul_cos, add] + ([end] if end is not add else [])
    seq_dim = 2 if 2 in used else 1 if 1 in used else None
    return Rotary(x, (cos, sin), end.operation.results[0], seq_dim, 0 in used, ops)


def _applies(op, name: str, n_in: int, widens: bool = False) -> bool:
    """`op` is an elementwise linalg.generic of `n_in` inputs yielding name(its inputs),
    nothing else, each input of its result's element type or (widens) extended to it by an
    arith.extf in the body."""
    if op is None or not is_elementwise(op) or len(irx.ins(op)) != n_in:
        return False
    e = body(op)
    if not is_op_expr(e, name) or len(e.args) != n_in:
        return False
    args = [a.args[0] if widens and is_op_expr(a, "arith.extf") else a for a in e.args]
    if sorted(a.value for a in args if a.kind == "arg") != list(range(n_in)):
        return False
    result = irx.element_type(op.operation.results[0])
    return all(irx.element_type(v) == result or widens for v in irx.ins(op))


def _slice_of(value, offset: int):
    """x where `value` = x[..., offset:offset + n] (unit strides, whole along dims 0-2), else None."""
    op = irx.producer(value)
    if not irx.is_op(op, "tensor.extract_slice") or len(op.operation.operands) != 1:
        return None
    x = op.operation.operands[0]
    offsets = list(ir.DenseI64ArrayAttr(op.operation.attributes["static_offsets"]))
    sizes = list(ir.DenseI64ArrayAttr(op.operation.attributes["static_sizes"]))
    strides = list(ir.DenseI64ArrayAttr(op.operation.attributes["static_strides"]))
    if offsets != [0, 0, 0, offset] or strides != [1] * 4 or sizes[:3] != irx.shape(x)[:3]:
        return None
    return x


def _only_user(value, what: str):
    users = irx.users(value)
    require(len(users) == 1, f"{what} is read {len(users)} times (the embedding's ops must have one user)")
    return users[0]


def _table(op, operand, name: str) -> tuple:
    """(the table `op` multiplies `operand` by, its map): `operand` by the identity map, the
    table by a broadcast (a dim or 0 per table dim, loop 3 last)."""
    a, b = irx.ins(op)
    maps = irx.indexing_maps(op)
    require(operand in (a, b) and a != b, f"the product is not of the embedding's operand and {name}")
    i = 0 if a == operand else 1
    require(irx.is_identity(maps[i]), f"the embedding's operand is read transposed in the product with {name}")
    table, amap = (b, maps[1]) if i == 0 else (a, maps[0])
    require(irx.element_type(table) == irx.element_type(op.operation.results[0]),
            f"{name} is not of the product's type (a table extended in the product)")
    dims = irx.map_dims(amap)
    require(all(d == "0" or d >= 0 for d in dims), f"{name} is read through a computed index")
    require(dims and dims[-1] == 3 and dims.count(3) == 1, f"{name} is not indexed by the head dim last")
    used = [d for d in dims if d != "0"]
    require(len(used) == len(set(used)) and used == sorted(used), f"{name} is read transposed")
    require(all(irx.shape(table)[k] == 1 for k, d in enumerate(dims) if d == "0"), f"{name} is read at a fixed index")
    return table, amap
