"""Operand layouts of the raised attention ops, chosen for the target's code generators.

raise-attention reads Q, K, V and O where the model keeps them, through the op's indexing
maps (no copies). The tuned lowering configurations and the FlashAttention kernel need
the canonical layout, batch dims leading in one order:
Q (batch.., m, k1), K (batch.., k2, k1), V (batch.., k2, n), O (batch.., m, n).
A model in (B, S, H, D) layout (BERT, LLaMA, ...) otherwise gets IREE's slow default.
Ops that get a lowering config are fenced too (`fence`), so IREE does not fold a
neighbouring transpose or mask producer into the dispatch the config was chosen for.

Fences are IREE's compute barriers (`iree_tensor_ext.compute_barrier.start` before an
operand, `.end` after a result): they stop fusion and transpose propagation across them
like `util.optimization_barrier` does, and dispatch region formation drops them. A
`util.optimization_barrier` instead survives into the stream program as a host-side
await: every one split the command buffer into separately submitted pieces. Measured on
an H200 (bench/results/models-gpu-h200.md), BERT-base x4 layers with 3 fenced copies per
layer: 1.1 ms of GPU idle per call, the raised model 0.87x the unraised one.

canonicalize_layouts: for each attention op whose Q/K/V/O maps are not canonical, copies
the operand into canonical order (linalg.transpose) and the result back. The copies are
fenced: IREE would otherwise fold a transpose straight back into the indexing map. One
pass over each tensor, O(S*D), against O(S^2*D) attention; IREE fuses each copy into the
copied tensor's producer (e.g. the projection's bias add).

pretranspose_keys (llvm-cpu): K as (batch.., k1, k2). IREE's CPU codegen computes Q.K^T as
outer products that want the key sequence contiguous; otherwise every tile step
transposes K in registers. 1.1-1.3x end to end (see lowering_cpu.py).
"""

from __future__ import annotations

import contextlib

from iree.compiler import ir
from iree.compiler.dialects import linalg

from flashlift.compiler.lowering import attention_shape
from flashlift.passes.attention_op import AttentionOp
from flashlift.passes import masks
from flashlift.passes.ir import collect, tensor_dim


def _maps(op) -> list:
    return [a.value for a in op.operation.attributes["indexing_maps"]]


def _set_maps(op, maps) -> None:
    with op.operation.context:
        op.operation.attributes["indexing_maps"] = ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps])


FENCES = masks.FENCES


def barrier(value, kind: str = "start", loc=None):
    """`value` behind a fence inserted at the current point: compute_barrier.start (an
    operand: nothing above moves below it) or .end (a result: nothing below moves above
    it); util.optimization_barrier for a dynamic shape (compute barriers then take the
    dynamic sizes as operands, which nothing here computes)."""
    t = ir.RankedTensorType(value.type)
    name = (f"iree_tensor_ext.compute_barrier.{kind}" if t.has_static_shape else "util.optimization_barrier")
    fenced = ir.Operation.create(name, results=[value.type], operands=[value], loc=loc).results[0]
    if t.has_static_shape:
        return fenced
    # IREE cannot read sizes through the barrier: tie the result to the value's own sizes
    with loc if loc is not None else contextlib.nullcontext():
        dims = [tensor_dim(value, d) for d in range(t.rank) if t.is_dynamic_dim(d)]
    return ir.Operation.create("flow.tensor.tie_shape", results=[value.type], operands=[fenced] + dims, loc=loc).results[0]


def copy_permuted(value, perm: list, loc):
    """compute_barrier.start(linalg.transpose(value, perm)), inserted at the current point."""
    t = ir.RankedTensorType(value.type)
    init = ir.Operation.create(
        "tensor.empty", results=[ir.RankedTensorType.get([t.shape[p] for p in perm], t.element_type)], loc=loc).results[0]
    transposed = linalg.transpose(value, outs=[init], permutation=perm)
    if not isinstance(transposed, ir.Value):  # the builder returns the op when it has one result
        transposed = transposed.results[0] if hasattr(transposed, "results") else transposed[0]
    return barrier(transposed, "start", loc)


def _static(value) -> bool:
    t = ir.RankedTensorType(value.type)
    return not any(t.is_dynamic_dim(i) for i in range(t.rank))


def _fence_mask(op) -> None:
    """A fence (compute_barrier.start) on a computed mask operand. IREE fuses the mask's producer
    into the attention dispatch; with a lowering config and a key length that is not a
    multiple of the tile (f16, k2=12), IREE 3.13's CPU codegen then computes wrong results.
    The mask is materialised anyway (over only the dims it varies along)."""
    if len(op.operation.attributes["indexing_maps"]) != 6:
        return
    mask = op.operation.operands[4]
    owner = mask.owner
    if isinstance(owner, ir.Block) or owner.name in FENCES + ("arith.constant",):
        return
    with ir.InsertionPoint(op), op.operation.location:
        fenced = barrier(mask, "start")
    op.operation.operands[4] = fenced


def fence(op) -> None:
    """Fences an op that carries a lowering config: its mask operand (see _fence_mask) and
    its result (compute_barrier.end). IREE's transpose propagation would fold a
    consumer transpose (a model's `.permute` back to (B, S, H, D)) into the op's output map,
    making the dispatch non-canonical after its lowering config was chosen for the canonical
    one: the config would then tile the wrong dims."""
    _fence_mask(op)
    result = op.operation.results[0]
    uses = [(u.owner, u.operand_number) for u in result.uses]
    if len(uses) == 1 and uses[0][0].name in FENCES:
        return
    with ir.InsertionPoint.after(op), op.operation.location:
        fenced = barrier(result, "end")
    for owner, index in uses:
        owner.operands[index] = fenced


def canonicalize_layouts(module) -> int:
    """Makes Q, K, V and O canonical for every attention op; returns how many were changed."""
    changed = 0
    for op in collect(module, "iree_linalg_ext.attention"):
        view = AttentionOp.of(op)
        maps = view.maps
        q, k, v, o = (view.dims[x] for x in ("q", "k", "v", "o"))
        if None in q + k + v + o:
            continue
        k1, k2, n = view.roles["k1"], view.roles["k2"], view.roles["n"]
        m = [view.query_dim()] if view.roles["m"] else []
        if not all(len(x) == 1 for x in (k1, k2, m, n)):
            continue
        batch = [d for d in o if d not in m + n]
        want = {
            0: [d for d in batch if d in q] + m + k1,
            1: [d for d in batch if d in k] + k2 + k1,
            2: [d for d in batch if d in v] + k2 + n,
        }
        o_want = batch + m + n
        operands = list(op.operation.operands)
        if all(dims == want[i] for i, dims in ((0, q), (1, k), (2, v))) and o == o_want:
            continue
        if not all(_static(operands[i]) for i in (0, 1, 2)) or not _static(op.operation.results[0]):
            continue
        loc = op.operation.location
        n_loops = maps[0].n_dims
        with ir.InsertionPoint(op), loc:
            for i, dims in ((0, q), (1, k), (2, v)):
                if dims != want[i]:
                    perm = [dims.index(d) for d in want[i]]
                    op.operation.operands[i] = copy_permuted(operands[i], perm, loc)
                    maps[i] = ir.AffineMap.get(n_loops, 0, [ir.AffineDimExpr.get(d) for d in want[i]])
            if o != o_want:
                out_init = operands[-1]
                perm = [o.index(d) for d in o_want]
                ot = ir.RankedTensorType(out_init.type)
                new_init = ir.Operation.create(
                    "tensor.empty", results=[ir.RankedTensorType.get([ot.shape[p] for p in perm], ot.element_type)]).results[0]
                op.operation.operands[len(operands) - 1] = new_init
                maps[-1] = ir.AffineMap.get(n_loops, 0, [ir.AffineDimExpr.get(d) for d in o_want])
        _set_maps(op, maps)
        if o != o_want:
            old_result = op.operation.results[0]
            new_type = op.operation.operands[len(operands) - 1].type
            old_type = old_result.type
            old_result.set_type(new_type)
            inverse = [o_want.index(d) for d in o]
            uses = [(u.owner, u.operand_number) for u in old_result.uses]
            with ir.InsertionPoint.after(op), loc:
                back = copy_permuted(old_result, inverse, loc)
            for owner, index in uses:  # every old user now reads the barrier'd transpose back
                owner.operands[index] = back
            assert back.type == old_type
        changed += 1
    return changed


def pretranspose_keys(module) -> int:
    """K as (batch.., k1, k2) for every canonical attention op; returns how many."""
    count = 0
    for op in collect(module, "iree_linalg_ext.attention"):
        shape = attention_shape(op.operation)
        if not shape["canonical"] or shape.get("k_transposed") or not _static(op.operation.operands[1]):
            continue
        maps = _maps(op)
        rank = len(maps[1].results)
        perm = list(range(rank - 2)) + [rank - 1, rank - 2]
        with ir.InsertionPoint(op), op.operation.location:
            op.operation.operands[1] = copy_permuted(op.operation.operands[1], perm, op.operation.location)
        results = list(maps[1].results)
        maps[1] = ir.AffineMap.get(maps[1].n_dims, 0, [results[p] for p in perm])
        _set_maps(op, maps)
        count += 1
    return count
