"""unbatch-matmuls: a batch matmul against one broadcast matrix -> one matmul.

Matches

    W' = broadcast(W)                    a linalg.generic copying W [K, N] to every batch
                                          entry: (b, k, n) -> (k, n), nothing else
    C  = linalg.batch_matmul(A, W')      A [B, M, K], C [B, M, N]

and produces

    C  = expand_shape(linalg.matmul(collapse_shape(A) [B*M, K], W) [B*M, N]) [B, M, N]

then moves that expand_shape past the elementwise ops that follow (the cast, the bias, the
residual add, each the only user of the last), rebuilt on the 2-D rows: the linear layer
then ends as torch's 2-D one does, and the GEMM dispatch fuses its epilogue the same way.

which reads W once instead of B times and is the linear-layer form the GEMM kernels and
IREE's matmul codegen take. torch decomposes `nn.Linear` on a 3-D input into this batch form
whenever the input cannot be viewed as 2-D without a copy: Hugging Face's SDPA attention
reshapes the transposed attention output (`.transpose(1, 2).contiguous()` is a no-op once
exported), so every `o_proj` after SDPA arrives as a batch matmul. Leaves anything else
alone (a RHS that varies per batch entry, a broadcast that is not a plain copy).
"""

from __future__ import annotations

from typing import Optional

from iree.compiler import ir
from iree.compiler.dialects import linalg

from . import ir as irx

NAME = "unbatch-matmuls"
SUMMARY = "Rewrite batch_matmul(A, broadcast(W)) as one matmul over A's collapsed batch"


def _broadcast_source(value: ir.Value) -> Optional[ir.Value]:
    """W when `value` is a linalg.generic that copies a 2-D W along a new leading dim."""
    op = irx.producer(value)
    if not irx.is_op(op, "linalg.generic") or len(irx.ins(op)) != 1:
        return None
    if irx.iterator_types(op) != ["parallel"] * 3:
        return None
    in_map, out_map = irx.indexing_maps(op)
    if irx.map_dims(in_map) != [1, 2] or not irx.is_identity(out_map):
        return None
    block = op.operation.regions[0].blocks[0]
    body = list(block.operations)
    if len(body) != 1 or body[0].operation.operands[0] != block.arguments[0]:
        return None
    return irx.ins(op)[0]


def _zero_init(value: ir.Value) -> Optional[float]:
    return irx.fill_constant(value)


def rewrite(op) -> bool:
    """Rewrites one linalg.batch_matmul; False when it is not of the matched form."""
    a, b = irx.ins(op)
    w = _broadcast_source(b)
    init = irx.outs(op)[0]
    fill = _zero_init(init)
    if w is None or fill is None:
        return False
    out_type = irx.tensor_type(irx.result(op))
    loc = op.operation.location
    with ir.InsertionPoint(op), loc:
        flat = irx.collapse(a, [[0, 1], [2]], loc)
        zero = irx.float_constant(float(fill), out_type.element_type)
        acc = linalg.fill(zero, outs=[_rows_empty(flat, irx.shape(w)[1], out_type.element_type)])
        result = _expand_rows(linalg.matmul(flat, w, outs=[acc]), a, out_type)
    irx.result(op).replace_all_uses_with(result)
    irx.erase_dead([op])
    while result is not None:
        result = _sink_expand(result)
    return True


def _rows_empty(rows_of: ir.Value, n: int, etype) -> ir.Value:
    """tensor.empty [rows of `rows_of`, n] of `etype`."""
    rows = irx.shape(rows_of)[0]
    t = ir.RankedTensorType.get([ir.ShapedType.get_dynamic_size() if rows is None else rows, n], etype)
    sizes = [irx.tensor_dim(rows_of, 0)] if rows is None else []
    return ir.Operation.create("tensor.empty", results=[t], operands=sizes).results[0]


def _expand_rows(rows: ir.Value, like: ir.Value, out_type) -> ir.Value:
    """expand_shape [B*M, N] -> [B, M, N] (`out_type`), dynamic B, M read from `like`."""
    batch = [irx.tensor_dim(like, d) for d in (0, 1) if out_type.is_dynamic_dim(d)]
    return ir.Operation.create(
        "tensor.expand_shape", results=[out_type], operands=[rows] + batch,
        attributes={"reassociation": irx.reassociation_attr([[0, 1], [2]]),
                    "static_output_shape": ir.DenseI64ArrayAttr.get(list(out_type.shape))}).results[0]


def _row_map(amap: ir.AffineMap) -> Optional[ir.AffineMap]:
    """A map over (b, m, n) as one over (rows, n): identity -> identity; (n) -> (n); () -> ()."""
    dims = irx.map_dims(amap)
    if dims == [0, 1, 2]:
        return ir.AffineMap.get_identity(2)
    if dims in ([2], []):
        return ir.AffineMap.get(2, 0, [ir.AffineDimExpr.get(1)] * len(dims))
    return None


def _sink_expand(expanded: ir.Value) -> Optional[ir.Value]:
    """Rebuilds the only user of `expanded` (expand_shape [B*M, N] -> [B, M, N]), if it is an
    elementwise generic over (b, m, n), on the rows; returns the new expand_shape or None."""
    if irx.num_uses(expanded) != 1:
        return None
    user = irx.users(expanded)[0].opview
    if not irx.is_op(user, "linalg.generic") or irx.iterator_types(user) != ["parallel"] * 3:
        return None
    maps = irx.indexing_maps(user)
    with user.operation.context:
        row_maps = [_row_map(m) for m in maps]
    if any(m is None for m in row_maps) or irx.map_dims(maps[-1]) != [0, 1, 2]:
        return None
    flat = irx.producer(expanded).operation.operands[0]
    loc = user.operation.location
    with ir.InsertionPoint(user), loc:
        inputs = []
        for value, amap in zip(irx.ins(user), maps):
            if value == expanded:
                inputs.append(flat)
            elif irx.map_dims(amap) == [0, 1, 2]:
                inputs.append(irx.collapse(value, [[0, 1], [2]], loc))
            else:
                inputs.append(value)
        out_type = irx.tensor_type(irx.result(user))
        empty = _rows_empty(flat, out_type.shape[2], out_type.element_type)
        new = irx.generic(inputs, empty, row_maps, ["parallel"] * 2, lambda args: irx.clone_body(user, args))
        result = _expand_rows(new, expanded, out_type)
    irx.result(user).replace_all_uses_with(result)
    irx.erase_dead([user])
    return result


def run(module, results: list) -> None:
    """Rewrites every matched batch matmul, each visited once."""
    for op in irx.collect(module, "linalg.batch_matmul"):
        if irx.alive(op):
            rewrite(op)
