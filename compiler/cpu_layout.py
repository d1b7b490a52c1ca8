"""pretranspose-keys (llvm-cpu only): give each attention op K as [batch..., k1, k2].

IREE's CPU attention codegen computes Q.K^T as outer products, which wants the key
sequence contiguous; with K in its natural [batch..., k2, k1] layout every tile step
transposes a K tile in registers. Transposing K once up front (one pass over S*D
elements) is 1.1-1.3x faster end to end (see lowering_cpu.py). IREE folds a plain
transpose back into the op's indexing map, so the transposed K goes through
`util.optimization_barrier`.

Matches: attention ops whose K map is the canonical `(batch..., k2, k1)`.
Produces: `linalg.transpose` + `util.optimization_barrier` feeding K, and the K map
`(batch..., k1, k2)`. lowering.attention_shape then reports `k_transposed`.
"""

from __future__ import annotations


def pretranspose_keys(module) -> int:
    """Rewrites every matching attention op in `module`; returns how many."""
    from iree.compiler import ir
    from iree.compiler.dialects import linalg

    from flashlift.compiler.lowering import attention_shape
    from flashlift.passes.ir import collect

    count = 0
    for op in collect(module, "iree_linalg_ext.attention"):
        shape = attention_shape(op.operation)
        if not shape["canonical"] or shape.get("k_transposed"):
            continue
        maps = [a.value for a in op.operation.attributes["indexing_maps"]]
        k_map = maps[1]
        k = op.operation.operands[1]
        k_type = ir.RankedTensorType(k.type)
        if any(k_type.is_dynamic_dim(i) for i in range(k_type.rank)):
            continue
        rank = k_type.rank
        perm = list(range(rank - 2)) + [rank - 1, rank - 2]
        out_shape = [k_type.shape[p] for p in perm]
        with ir.InsertionPoint(op), op.operation.location:
            init = ir.Operation.create(
                "tensor.empty", results=[ir.RankedTensorType.get(out_shape, k_type.element_type)]).results[0]
            transposed = linalg.transpose(k, outs=[init], permutation=perm)
            barrier = ir.Operation.create("util.optimization_barrier", results=[transposed.type],
                                          operands=[transposed]).results[0]
        op.operation.operands[1] = barrier
        results = list(k_map.results)
        new_k = ir.AffineMap.get(k_map.n_dims, 0, [results[p] for p in perm])
        maps[1] = new_k
        op.operation.attributes["indexing_maps"] = ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps])
        count += 1
    return count
