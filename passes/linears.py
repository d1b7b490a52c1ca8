"""torch-mlir's linear layer, op by op: the pieces of the chain matmul -> bias add -> truncf
that the passes and codegen steps reading linear layers match (fuse-linears, dispatch-gemms).

Each takes the generic ops as torch-mlir writes them for `nn.Linear`: elementwise
linalg.generics with identity maps whose body applies one scalar op to the block's arguments
(an arith.extf of a half-precision operand, the arith.truncf of the result), and the bias add
of a [N] row vector to the M x N accumulator.
"""

from __future__ import annotations

from typing import Optional

from iree.compiler import ir

from .ir import is_identity, producer


def only_user(value):
    uses = list(value.uses)
    return uses[0].owner if len(uses) == 1 else None


def elementwise_op(op) -> Optional[str]:
    """The one scalar op of an all-parallel, identity-mapped linalg.generic whose body applies
    it to the block's input arguments (in order) and yields it; None for anything else."""
    if op.name != "linalg.generic" or len(op.results) != 1:
        return None
    if not all(is_identity(m.value) for m in op.attributes["indexing_maps"]):
        return None
    return body_op(op, len(op.operands) - 1)


def body_op(op, n_inputs: int, commutative: bool = False) -> Optional[str]:
    block = op.regions[0].blocks[0]
    body = [o for o in block.operations]
    if len(body) != 2 or body[1].name != "linalg.yield" or list(body[1].operands) != [body[0].results[0]]:
        return None
    args = list(block.arguments)[:n_inputs]
    operands = list(body[0].operands)
    if operands != args and not (commutative and operands == args[::-1]):
        return None
    return body[0].name


def is_bias_add(op, value, n: int) -> bool:
    """`op` adds a [N] vector broadcast along rows to the M x N `value`, into f32."""
    if op.name != "linalg.generic" or len(op.operands) != 3 or len(op.results) != 1:
        return False
    if value not in list(op.operands)[:2]:
        return False
    if str(ir.RankedTensorType(op.results[0].type).element_type) != "f32":
        return False
    maps = [str(m.value) for m in op.attributes["indexing_maps"]]
    ident, row = "(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1)"
    pos = list(op.operands).index(value)
    want = [ident, row, ident] if pos == 0 else [row, ident, ident]
    if maps != want:
        return False
    other = op.operands[1 - pos]
    if ir.RankedTensorType(other.type).shape != [n]:
        return False
    return body_op(op, 2, commutative=True) == "arith.addf"


def unextended(value):
    """The f16/bf16 tensor `value` extends to f32 (through an elementwise arith.extf), or
    `value` itself."""
    p = producer(value)
    if p is not None and elementwise_op(p.operation) == "arith.extf":
        return p.operation.operands[0]
    return value
