"""causal-split (llvm-cpu): causal attention computes only the key blocks it can see.

IREE's attention op reads an additive mask and computes every (query, key) pair, also
the pairs a causal mask hides: half of the work of a causal op is thrown away. This
pass cuts the query rows of a causal op into chunks of CHUNK rows; chunk i (rows
[r0, r1)) attends only to the keys [0, min(K2, r1 + off)) its rows can see, where
off = 0 for a top-left causal mask (key j hidden from query i iff j > i) and K2 - M for
a bottom-right one (iff j > i + K2 - M). Each chunk is its own static attention op on
slices of Q, K, V and the mask (the mask slice is zero left of the diagonal block); the
results are joined with tensor.concat along the query dim. With n chunks the work is
(n + 1) / 2n of the whole (about 56% for 8 chunks).

Matches: an iree_linalg_ext.attention with a mask whose value is known at compile time
and is causal, with static shapes, every operand indexed by plain loop dims, and a query
length over CHUNK. The mask is evaluated and classified as for the attention kernel
(mask_consteval.evaluate_constants: the mask's backward slice compiled and run with IREE;
attention_masks.mask_as_2d and causal_kind: exactly 0 or <= -1e4 in the causal pattern, no
query row without a key; attention_coverage.mask_roles).
Left alone: masks read from function arguments, biases, padding masks, masks that differ
between batch entries, masks that hide every key from some query, dynamic shapes.

Runs on the CPU target only (driver.lower, after layout.pretranspose_keys: the key slices
are then slices of the one transposed K). The lowering configuration is chosen per chunk
afterwards (lowering.annotate).
"""

from __future__ import annotations

import math

from iree.compiler import ir

from flashlift.compiler.attention_coverage import mask_roles as mask_roles_of
from flashlift.compiler.attention_masks import causal_kind, mask_as_2d
from flashlift.compiler.kernel_sites import NotCovered
from flashlift.compiler.mask_consteval import MAX_MASK_ELEMENTS, evaluate_constants
from flashlift.passes import ir as irx
from flashlift.passes.attention_op import AttentionOp


# Query rows per chunk: a multiple of the CPU configs' key step (32), so every chunk's key
# length is one too. Swept 32/64/128 on the 2-core znver4 (f32, D=64, S = 128..1024, process
# CPU time of iree-benchmark-module): 32 was best or within noise of the best everywhere
# (S=512: 6.6-7.8 ms with 32, 6.1-8.4 with 64, 7.2-8.8 with 128, 9.2-13 unsplit;
# S=128: 0.7-0.8 ms with 32, 0.8-1.2 with 64, 1.3-2.0 unsplit).
CHUNK = 32
# A remainder of fewer query rows than this joins the chunk before it (a 1-row op would
# take IREE's default lowering, lowering_cpu gives no config for m < 2).
MIN_TAIL = 8


def _candidate(op, chunk: int):
    """(mask roles, M, K2, loop dims of each operand's map, m dim, k2 dim) for an op this
    pass may split, else None."""
    view = AttentionOp.of(op)
    if not view.has_mask:
        return None  # no mask
    if not view.plain or not view.static():
        return None
    r = view.roles
    if not all(len(r[x]) == 1 for x in ("m", "k2", "k1", "n")):
        return None
    m, k2 = r["m"][0], r["k2"][0]
    sizes = view.sizes
    dims = [view.dims["q"], view.dims["k"], view.dims["v"], [], view.dims["mask"], view.dims["o"]]
    mask_dims = dims[4]
    if m not in mask_dims or k2 not in mask_dims:
        return None  # a mask that does not vary along both queries and keys is not causal
    q_batch = [d for d in r["q"] if d not in (m, r["k1"][0])]
    mask_roles = mask_roles_of(mask_dims, m, k2, q_batch)
    if mask_roles is None:
        return None
    if sizes[m] <= chunk:
        return None
    return mask_roles, sizes[m], sizes[k2], dims, m, k2


def _key_ends(kind: str, M: int, K2: int, chunk: int) -> list:
    """(r0, r1, keys) per chunk: the keys [0, keys) rows [r0, r1) of the causal mask see."""
    off = 0 if kind == "top_left" else K2 - M
    starts = list(range(0, M, chunk))
    if len(starts) > 1 and M - starts[-1] < MIN_TAIL:
        starts.pop()
    ends = starts[1:] + [M]
    return [(r0, r1, max(1, min(K2, r1 + off))) for r0, r1 in zip(starts, ends)]


def _slice(value, amap_dims: list, bounds: dict, loc):
    """tensor.extract_slice of `value` keeping, along each loop dim in `bounds`, [lo, hi)."""
    t = ir.RankedTensorType(value.type)
    offsets = [bounds[d][0] if d in bounds else 0 for d in amap_dims]
    sizes = [bounds[d][1] - bounds[d][0] if d in bounds else t.shape[p] for p, d in enumerate(amap_dims)]
    if offsets == [0] * t.rank and sizes == list(t.shape):
        return value
    attrs = {
        "static_offsets": ir.DenseI64ArrayAttr.get(offsets),
        "static_sizes": ir.DenseI64ArrayAttr.get(sizes),
        "static_strides": ir.DenseI64ArrayAttr.get([1] * t.rank),
        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 0, 0, 0]),
    }
    rtype = ir.RankedTensorType.get(sizes, t.element_type)
    return ir.Operation.create("tensor.extract_slice", results=[rtype], operands=[value], attributes=attrs,
                               loc=loc).results[0]


def _split(op, kind: str, dims: list, m: int, k2: int, M: int, K2: int, chunk: int) -> bool:
    operation = op.operation
    ends = _key_ends(kind, M, K2, chunk)
    if all(keys == K2 for _, _, keys in ends):
        return False  # every chunk sees every key: nothing to skip
    loc = operation.location
    operands = list(operation.operands)
    out = operation.results[0]
    out_t = ir.RankedTensorType(out.type)
    o_dims = dims[-1]
    pieces = []
    with ir.InsertionPoint(operation), loc:
        for r0, r1, keys in ends:
            bounds = {m: (r0, r1), k2: (0, keys)}
            new_operands = [_slice(operands[i], dims[i], bounds, loc) for i in (0, 1, 2)]
            new_operands.append(operands[3])
            new_operands.append(_slice(operands[4], dims[4], bounds, loc))
            shape = [r1 - r0 if d == m else out_t.shape[p] for p, d in enumerate(o_dims)]
            ctype = ir.RankedTensorType.get(shape, out_t.element_type)
            new_operands.append(ir.Operation.create("tensor.empty", results=[ctype], loc=loc).results[0])
            clone = operation.clone(ip=ir.InsertionPoint(operation))
            for i, v in enumerate(new_operands):
                clone.operands[i] = v
            clone.results[0].set_type(ctype)
            pieces.append(clone.results[0])
        joined = ir.Operation.create(
            "tensor.concat", results=[out.type], operands=pieces,
            attributes={"dim": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), o_dims.index(m))},
            loc=loc).results[0]
    out.replace_all_uses_with(joined)
    init = operands[-1].owner
    operation.erase()
    if not isinstance(init, ir.Block) and init.name == "tensor.empty" and irx.num_uses(init.results[0]) == 0:
        init.erase()
    return True


def split_causal(module, chunk: int = 0) -> int:
    """Splits every causal attention op under `module` (see the module doc) into query
    chunks of `chunk` rows (0: CHUNK); returns how many ops were split."""
    chunk = chunk or CHUNK

    found = []
    for op in irx.collect(module, "iree_linalg_ext.attention"):
        c = _candidate(op, chunk)
        if c is not None:
            found.append((op, c))
    if not found:
        return 0
    found = [(op, c) for op, c in found
             if math.prod(ir.RankedTensorType(op.operation.operands[4].type).shape) <= MAX_MASK_ELEMENTS]
    values = evaluate_constants([op.operation.operands[4] for op, _ in found], module) if found else []
    count = 0
    for (op, (mask_roles, M, K2, dims, m, k2)), value in zip(found, values):
        if isinstance(value, str) or value is None:
            continue
        try:
            kind = causal_kind(mask_as_2d(value, mask_roles, M, K2))
        except NotCovered:
            continue
        if not kind:
            continue
        with op.operation.context:
            count += _split(op, kind, dims, m, k2, M, K2, chunk)
    return count
