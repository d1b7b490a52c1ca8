"""The head transpose moved below rotary embeddings, so the attention kernel reads Q and K in place.

LLaMA-style models apply rotary embeddings after `view(B, S, H, D).transpose(1, 2)`: a
linalg.transpose (B, S, H, D) -> (B, H, S, D) of the projection's result, then elementwise
work in (B, H, S, D) (q * cos, the rotated half's two slices, its negation and concat, * sin,
the sum). IREE fuses the transpose into that elementwise dispatch, which then writes Q and K
head-major through a strided pass (LLaMA x4, B=4 S=1024, f16 on an H100: 110 us a call, 6% of
the model). The kernels read (B, S, H, D) in place, but only where the operand is the
transpose itself (attention_fusion.seq_major_source).

`sink_head_transpose(plan, index)` rewrites such a chain, in place, to compute in
(B, S, H, D) and gives the op a fenced transpose of the chain's result instead, which
seq_major_source then reads through: the rotary embedding becomes a plain elementwise pass
over the projection's result, and the transpose is not run at all. It matches, each op
used only inside the chain:

  leaves  linalg.transpose [0, 2, 1, 3] of a (B, S, H, D) tensor (may be used elsewhere too)
  links   linalg.generic: every loop parallel, one result by the identity map, no
          linalg.index, its init not read; chain inputs by the identity map, any other
          input (cos, sin: broadcasts) read through its map with heads and sequence swapped
          tensor.extract_slice, tensor.concat of chain values (static; the head dim's halves)
  end     the operand, or a tensor.expand_shape splitting its heads (a grouped-query Q)

The rewrite is exact whatever happens next (only the loop order of elementwise work moves);
should the kernel not take the op after all, the fenced transpose stays a copy as
canonicalize-layouts' are.
"""

from __future__ import annotations

from iree.compiler import ir

from flashlift.compiler.layout import copy_permuted
from flashlift.passes.ir import erase_dead

SWAP = [0, 2, 1, 3]  # (B, H, S, D) <-> (B, S, H, D): its own inverse


def sink_head_transpose(plan, index: int) -> bool:
    """Rewrites operand `index` (Q 0, K 1, V 2) of plan.op as the module doc says, if it is
    such a chain; True if it did. The IR is untouched otherwise."""
    operand = plan.op.operation.operands[index]
    split = _head_split(operand)
    end = split.operands[0] if split is not None else operand
    chain = _Chain()
    if not chain.collect(end) or not chain.only_used_inside(end):
        return False
    op = plan.op.operation
    with op.location:
        chain.rewrite()
    with op.location, ir.InsertionPoint(op):
        if split is None:
            new = copy_permuted(end, SWAP, op.location)
        else:  # (B, S, H, D) -> (B, S, G, R, D) -> (B, G, R, S, D), the grouped Q seq_major_source reads
            b, s, h, d = ir.RankedTensorType(end.type).shape
            shape = list(ir.RankedTensorType(operand.type).shape)
            grouped = ir.RankedTensorType.get([b, s, shape[1], shape[2], d], ir.RankedTensorType(end.type).element_type)
            expanded = ir.Operation.create(
                "tensor.expand_shape", results=[grouped], operands=[end],
                attributes={"reassociation": ir.Attribute.parse("[[0], [1], [2, 3], [4]]"),
                            "static_output_shape": ir.DenseI64ArrayAttr.get(grouped.shape)}).results[0]
            new = copy_permuted(expanded, [0, 2, 3, 1, 4], op.location)
    op.operands[index] = new
    erase_dead([split] if split is not None else [])
    erase_dead(chain.leaves)
    return True


def _head_split(value):
    """The tensor.expand_shape (B, H, S, D) -> (B, G, R, S, D) that `value` is, or None."""
    owner = value.owner
    if isinstance(owner, ir.Block) or owner.name != "tensor.expand_shape" or len(owner.operands) != 1:
        return None
    if str(owner.attributes["reassociation"]) != "[[0], [1, 2], [3], [4]]" or len(list(owner.results[0].uses)) != 1:
        return None
    return owner


def _static4(value) -> bool:
    try:
        t = ir.RankedTensorType(value.type)
    except ValueError:
        return False
    return t.rank == 4 and t.has_static_shape


class _Chain:
    """The ops from the head transposes to the operand (`collect`), then rewritten."""

    def __init__(self):
        self.links: dict = {}   # link operation -> the operand numbers that are chain values
        self.leaves: list = []  # the transposes
        self.values: set = set()

    def collect(self, value) -> bool:
        """Whether `value` is a chain value; records its producers."""
        if value in self.values:
            return True
        owner = value.owner
        if isinstance(owner, ir.Block) or not _static4(value) or len(owner.results) != 1:
            return False
        op = owner.operation
        if op.name == "linalg.transpose":
            if list(ir.DenseI64ArrayAttr(op.attributes["permutation"])) != SWAP:
                return False
            self.leaves.append(op)
        elif op.name == "linalg.generic":
            chained = self._generic_inputs(op)
            if not chained:
                return False
            self.links[op] = chained
        elif op.name in ("tensor.extract_slice", "tensor.concat"):
            # (a slice with an operand beyond its source has dynamic offsets, sizes or strides)
            if op.name == "tensor.extract_slice" and len(op.operands) != 1:
                return False
            if not all(self.collect(v) for v in op.operands):
                return False
            self.links[op] = set(range(len(op.operands)))
        else:
            return False
        self.values.add(value)
        return True

    def _generic_inputs(self, op) -> set:
        """The inputs of an elementwise generic that are chain values (by the identity map);
        empty if it is not one the rewrite takes."""
        n_in = len(op.operands) - 1
        if n_in < 1 or any(str(t) != "#linalg.iterator_type<parallel>" for t in op.attributes["iterator_types"]):
            return set()
        maps = [a.value for a in op.attributes["indexing_maps"]]
        identity = ir.AffineMap.get_identity(4, op.context)
        if maps[-1] != identity:
            return set()
        body = op.regions[0].blocks[0]
        if list(body.arguments[n_in].uses) or any(o.name == "linalg.index" for o in body.operations):
            return set()
        return {i for i in range(n_in) if maps[i] == identity and self.collect(op.operands[i])}

    def only_used_inside(self, end) -> bool:
        """Every link's result read only by links, but the end's by its one user."""
        for op in self.links:
            result = op.results[0]
            users = [use.owner.operation for use in result.uses]
            if result == end:
                if len(users) != 1:
                    return False
            elif any(u not in self.links for u in users):
                return False
        return bool(self.links)

    def rewrite(self) -> None:
        """Every link computes in (B, S, H, D), in program order: a transpose's result read
        as its source, the other chain values already swapped; a generic's other inputs read
        through their maps composed with the swap, a slice's offsets and sizes and a concat's
        dim swapped."""
        sources = {leaf.results[0]: leaf.operands[0] for leaf in self.leaves}
        block = next(iter(self.links)).block
        for op in [o.operation for o in block.operations if o.operation in self.links]:
            chained = self.links[op]
            for i in chained:
                if op.operands[i] in sources:
                    op.operands[i] = sources[op.operands[i]]
            result = op.results[0]
            t = ir.RankedTensorType(result.type)
            swapped = ir.RankedTensorType.get([t.shape[p] for p in SWAP], t.element_type)
            if op.name == "linalg.generic":
                _swap_generic(op, chained, swapped)
            elif op.name == "tensor.extract_slice":
                for key in ("static_offsets", "static_sizes", "static_strides"):
                    vals = list(ir.DenseI64ArrayAttr(op.attributes[key]))
                    op.attributes[key] = ir.DenseI64ArrayAttr.get([vals[p] for p in SWAP])
            else:
                dim = ir.IntegerAttr(op.attributes["dim"])
                op.attributes["dim"] = ir.IntegerAttr.get(dim.type, SWAP[dim.value])
            result.set_type(swapped)


def _swap_generic(op, chained: set, swapped) -> None:
    n_in = len(op.operands) - 1
    swap = ir.AffineMap.get_permutation(SWAP, op.context)
    maps = [a.value for a in op.attributes["indexing_maps"]]
    maps[:n_in] = [m if i in chained else ir.AffineMap.get(4, 0, [e.compose(swap) for e in m.results], op.context)
                   for i, m in enumerate(maps[:n_in])]
    old = op.operands[n_in]
    with op.location, ir.InsertionPoint(op):
        op.operands[n_in] = ir.Operation.create("tensor.empty", results=[swapped]).results[0]
    if not isinstance(old.owner, ir.Block) and old.owner.name == "tensor.empty" and not list(old.uses):
        old.owner.erase()
    op.attributes["indexing_maps"] = ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps])
