"""Building the attention op of a matched raise-attention site (raise_attention.Site).

`Builder` reshapes each root so that each dim is one atom, emits `iree_linalg_ext.attention`
with the indexing maps the atoms give, the scale, and the mask operand `MaskBuilder`
materialises from beta (a `linalg.generic` over only the atoms the mask reads, its values
encoded by masks.encode), then torch's `_safe_softmax` row guard where the model had it,
and the reshape back to the replaced value's dims.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iree.compiler import ir

from . import ir as irx
from . import masks
from .matchers import Expr, is_op_expr, require
from .scores import MaskTerm, adds_in, chain_type, scalar_constant

if TYPE_CHECKING:
    from .raise_attention import Site


class Builder:
    """Emits the attention op and its helpers right before the second matmul."""

    def __init__(self, site: "Site"):
        self.site = site
        self.a = site.atoms
        r = {k: self.a.leaves([v])[0] for k, v in site.roles.items()}
        self.r = r
        self.order = site.info["batch"] + [r["m"], r["n"], r["k1"], r["k2"]]
        self.loc = site.softmax.operation.location
        self.sized_dims: dict = {}  # leaf -> (value, dim) where a root holds that leaf alone
        self.op = None  # the iree_linalg_ext.attention, once built

    def dim_of(self, leaf: int) -> ir.AffineExpr:
        return ir.AffineDimExpr.get(self.order.index(leaf))

    def map_for(self, leaves: list) -> ir.AffineMapAttr:
        amap = ir.AffineMap.get(len(self.order), 0, [self.dim_of(l) for l in leaves])
        return ir.AffineMapAttr.get(amap)

    # Roots: reshape so that each dim is exactly one atom.
    def normalize(self, value: ir.Value, layout: list) -> tuple[ir.Value, list]:
        groups = self.a.resolve(layout)
        if all(len(g) == 1 for g in groups):
            return value, [g[0] for g in groups]
        if any(len(g) == 0 for g in groups):
            value, groups = self._drop_unit_dims(value, groups)
        if all(len(g) == 1 for g in groups):
            return value, [g[0] for g in groups]
        leaves = [leaf for g in groups for leaf in g]
        sizes = [self.size_value(leaf) for leaf in leaves]
        reassoc, i = [], 0
        for g in groups:
            reassoc.append(list(range(i, i + len(g))))
            i += len(g)
        etype = irx.element_type(value)
        dyn = ir.ShapedType.get_dynamic_size()
        static = [s if isinstance(s, int) else dyn for s in sizes]
        out_type = ir.RankedTensorType.get(static, etype)
        op = ir.Operation.create(
            "tensor.expand_shape", results=[out_type], operands=[value] + [s for s in sizes if not isinstance(s, int)],
            attributes={"reassociation": irx.reassociation_attr(reassoc),
                        "static_output_shape": ir.DenseI64ArrayAttr.get(static)}, loc=self.loc)
        return op.results[0], leaves

    def _drop_unit_dims(self, value: ir.Value, groups: list) -> tuple[ir.Value, list]:
        reassoc, kept, pending = [], [], []
        for i, g in enumerate(groups):
            pending.append(i)
            if g:
                reassoc.append(pending)
                kept.append(g)
                pending = []
        require(kept, "an operand has only unit dims")
        if pending:
            reassoc[-1] += pending
        return irx.collapse(value, reassoc, self.loc), kept

    def size_value(self, leaf: int):
        """An index value (or int) for the size of a leaf atom."""
        size = self.a.size(leaf)
        if size is not None:
            return size
        where = self.sized_dims.get(leaf) or self.a.seen_in.get(leaf)
        require(where is not None, "a dynamic dim has no tensor to read its size from")
        value, d = where
        return irx.tensor_dim(value, d)

    def empty(self, leaves: list, etype) -> ir.Value:
        sizes = [self.size_value(l) for l in leaves]
        dyn = ir.ShapedType.get_dynamic_size()
        t = ir.RankedTensorType.get([s if isinstance(s, int) else dyn for s in sizes], etype)
        dynamic = [s for s in sizes if not isinstance(s, int)]
        return ir.Operation.create("tensor.empty", results=[t], operands=dynamic).results[0]

    def scale_value(self, etype) -> ir.Value:
        s = self.site.scale
        value = irx.float_constant(s.constant, etype)
        for kind, factor in s.factors:
            if isinstance(factor, tuple):  # ("extract", rank-0 tensor)
                tensor = factor[1]
                factor = ir.Operation.create("tensor.extract", results=[irx.element_type(tensor)], operands=[tensor]).results[0]
            factor = _cast_float(factor, etype)
            name = "arith.mulf" if kind == "mul" else "arith.divf"
            value = ir.Operation.create(name, results=[etype], operands=[value, factor]).results[0]
        return value

    def row_guard(self, out: ir.Value, mask: ir.Value, mask_leaves: list, out_leaves: list) -> ir.Value:
        """torch's _safe_softmax after the op: O = 0 on rows whose every key the mask hides
        with -inf (the op gives NaN there). Whether a row is so hidden is read from the
        mask operand alone: all(mask == -inf) over k2, a tensor over the mask's other dims."""
        i1 = ir.IntegerType.get_signless(1)
        k2 = self.r["k2"]
        row_leaves = [l for l in mask_leaves if l != k2]
        n = len(mask_leaves)
        true = irx.true_constant()
        init = irx.generic([], self.empty(row_leaves, i1), [ir.AffineMap.get_identity(len(row_leaves))],
                           ["parallel"] * len(row_leaves), lambda args: true)
        neg_inf = irx.float_constant(float("-inf"), ir.F32Type.get())

        def all_hidden(args):
            hidden = irx.cmpf("oeq", args[0], neg_inf)
            return ir.Operation.create("arith.andi", results=[i1], operands=[hidden, args[1]]).results[0]

        rows = irx.generic([mask], init, [ir.AffineMap.get_identity(n), _dims_map(mask_leaves, row_leaves)],
                           ["reduction" if l == k2 else "parallel" for l in mask_leaves], all_hidden)
        etype = irx.element_type(out)
        zero = irx.float_constant(0.0, etype)

        def zero_hidden(args):
            return ir.Operation.create("arith.select", results=[etype], operands=[args[0], zero, args[1]]).results[0]

        ident = ir.AffineMap.get_identity(len(out_leaves))
        return irx.generic([rows, out], self.empty(out_leaves, etype), [_dims_map(out_leaves, row_leaves), ident, ident],
                           ["parallel"] * len(out_leaves), zero_hidden)

    def regroup(self, out: ir.Value, groups: list, target: ir.Type) -> ir.Value:
        """The op's result (one dim per leaf) reshaped to the replaced value's dims: `groups`
        gives each target dim's leaves, consecutive; an empty group is a unit dim that
        torch-mlir folded away (batch 1, one head), re-inserted by an expand_shape."""
        if all(len(g) == 1 for g in groups):
            return out
        kept = [g for g in groups if g]
        if any(len(g) > 1 for g in kept):
            reassoc, i = [], 0
            for g in kept:
                reassoc.append(list(range(i, i + len(g))))
                i += len(g)
            out = irx.collapse(out, reassoc, self.loc)
        if len(kept) == len(groups):
            return out
        reassoc, pending = [], []
        for i, g in enumerate(groups):  # a unit dim joins the next kept dim's group
            pending.append(i)
            if g:
                reassoc.append(pending)
                pending = []
        reassoc[-1] += pending
        dyn = ir.ShapedType.get_dynamic_size()
        shape = list(ir.RankedTensorType(target).shape)
        sizes = [irx.tensor_dim(out, j) for j, group in enumerate(reassoc) for d in group if shape[d] == dyn]
        return ir.Operation.create(
            "tensor.expand_shape", results=[target], operands=[out] + sizes,
            attributes={"reassociation": irx.reassociation_attr(reassoc),
                        "static_output_shape": ir.DenseI64ArrayAttr.get(shape)}, loc=self.loc).results[0]

    def build(self) -> ir.Value:
        site = self.site
        with ir.InsertionPoint(site.c2.op), self.loc:
            operands, maps = [], []
            for name in ("q", "k", "v"):
                value, leaves = self.normalize(*site.roots[name])
                for d, leaf in enumerate(leaves):
                    self.sized_dims.setdefault(leaf, (value, d))
                operands.append(value)
                maps.append(self.map_for(leaves))
            qtype = irx.element_type(operands[0])
            operands.append(self.scale_value(qtype))
            maps.append(ir.AffineMapAttr.get(ir.AffineMap.get(len(self.order), 0, [])))
            if site.mask is not None:
                mask, mask_leaves = MaskBuilder(self).build(site.mask)
                operands.append(mask)
                maps.append(self.map_for(mask_leaves))
                site.info["mask"] = [self.a.size(l) for l in mask_leaves]
            out_leaves = [l for g in self.a.resolve(site.out_layout) for l in g]
            out_etype = irx.element_type(irx.result(site.replaced))
            init = self.empty(out_leaves, out_etype)
            maps.append(self.map_for(out_leaves))
            op = ir.Operation.create(
                "iree_linalg_ext.attention", results=[init.type], operands=operands + [init],
                attributes={"indexing_maps": ir.ArrayAttr.get(maps)}, regions=1, loc=self.loc)
            self.op = op  # the attention op itself (the value built may be a guard after it)
            block = op.regions[0].blocks.append(ir.F32Type.get())
            with ir.InsertionPoint(block):
                ir.Operation.create("iree_linalg_ext.yield", operands=[block.arguments[0]])
            result = op.results[0]
            if site.guard and site.mask is not None:
                result = self.row_guard(result, mask, mask_leaves, out_leaves)
            result = self.regroup(result, self.a.resolve(site.out_layout), irx.result(site.replaced).type)
        site.info.update(
            shape={k: self.a.size(v) for k, v in self.r.items()},
            batch_sizes=[self.a.size(l) for l in site.info["batch"]],
            scale=site.scale.constant if not site.scale.factors else "runtime",
            dtype=str(qtype),
        )
        return result


class MaskBuilder:
    """Materialises beta (the additive mask) as a linalg.generic over the atoms it reads."""

    def __init__(self, builder: Builder):
        self.b = builder
        self.inputs: list = []  # (value, [affine exprs over mask loops])
        self.leaves: list = []

    def _leaves_of(self, term: MaskTerm, loop: int) -> list:
        return self.b.a.leaves(term.layout[loop])

    def _collect(self, e: Expr, term: MaskTerm) -> None:
        if e.kind == "arg" and e.value == term.chain:
            if term.previous is not None:
                self._collect(term.previous.expr, term.previous)
            return
        if e.kind == "arg":
            amap = irx.indexing_maps(term.op)[e.value]
            for d in irx.map_dims(amap):
                require(d != -1, "a mask operand is read through a non-trivial index map")
                if d != "0":
                    self.leaves.extend(self._leaves_of(term, d))
        elif e.kind == "index":
            self.leaves.extend(self._leaves_of(term, e.value))
        for a in e.args:
            self._collect(a, term)

    def build(self, term: MaskTerm) -> tuple[ir.Value, list]:
        self._collect(term.expr, term)
        order = self.b.order
        allowed = set(self.b.site.info["batch"]) | {self.b.r["m"], self.b.r["k2"]}
        require(set(self.leaves) <= allowed, "the mask varies along a dim the attention op cannot express")
        self.leaves = [l for l in order if l in set(self.leaves)]
        ftype = ir.F32Type.get()  # the op adds the mask in f32, its score precision
        init = self.b.empty(self.leaves, ftype)
        n = len(self.leaves)
        self.inputs = []
        self._arg_values = {}
        self._plan_inputs(term.expr, term)
        maps = [ir.AffineMapAttr.get(ir.AffineMap.get(n, 0, exprs)) for _, exprs in self.inputs]
        maps.append(ir.AffineMapAttr.get(ir.AffineMap.get_identity(n)))
        parallel = ir.Attribute.parse("#linalg.iterator_type<parallel>")
        op = ir.Operation.create(
            "linalg.generic", results=[init.type],
            operands=[v for v, _ in self.inputs] + [init],
            attributes={"indexing_maps": ir.ArrayAttr.get(maps),
                        "iterator_types": ir.ArrayAttr.get([parallel] * n),
                        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([len(self.inputs), 1])},
            regions=1)
        arg_types = [irx.element_type(v) if isinstance(v.type, ir.RankedTensorType) else v.type for v, _ in self.inputs]
        block = op.regions[0].blocks.append(*arg_types, ftype)
        self.replaced = []
        with ir.InsertionPoint(block):
            value = self._emit(term.expr, term, block)
            value = masks.encode(_cast_float(value, ftype), self.replaced, adds_in(term))
            ir.Operation.create("linalg.yield", operands=[value])
        return op.results[0], self.leaves

    def _loop_expr(self, term: MaskTerm, loop: int) -> ir.AffineExpr:
        """Affine expr over mask loops for one loop of a score op (linearised if collapsed)."""
        expr = None
        for leaf in self._leaves_of(term, loop):
            d = ir.AffineDimExpr.get(self.leaves.index(leaf))
            expr = d if expr is None else expr * self.b.a.size(leaf) + d
        return expr if expr is not None else ir.AffineConstantExpr.get(0)

    def _plan_inputs(self, e: Expr, term: MaskTerm) -> None:
        if e.kind == "arg" and e.value == term.chain:
            if term.previous is not None:
                self._plan_inputs(term.previous.expr, term.previous)
            return
        if e.kind == "arg":
            key = (id(term), e.value)
            if key not in self._arg_values:
                amap = irx.indexing_maps(term.op)[e.value]
                exprs = [ir.AffineConstantExpr.get(0) if d == "0" else self._loop_expr(term, d) for d in irx.map_dims(amap)]
                self._arg_values[key] = len(self.inputs)
                self.inputs.append((term.op.operation.operands[e.value], exprs))
        for a in e.args:
            self._plan_inputs(a, term)

    def _emit(self, e: Expr, term: MaskTerm, block: ir.Block) -> ir.Value:
        if e.kind == "arg" and e.value == term.chain:
            if term.previous is None:
                return irx.float_constant(0.0, chain_type(term))
            return self._emit(term.previous.expr, term.previous, block)
        if e.kind == "arg":
            return block.arguments[self._arg_values[(id(term), e.value)]]
        if e.kind == "const":
            return e.ref.operation.clone().results[0]
        if e.kind == "capture":
            return e.value
        if e.kind == "index":
            value = None
            for leaf in self.b.a.leaves(term.layout[e.value]):
                idx = ir.Operation.create("linalg.index", results=[ir.IndexType.get()],
                                          attributes={"dim": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), self.leaves.index(leaf))}).results[0]
                if value is None:
                    value = idx
                else:
                    size = irx.index_constant(self.b.a.size(leaf))
                    value = ir.Operation.create("arith.muli", results=[ir.IndexType.get()], operands=[value, size]).results[0]
                    value = ir.Operation.create("arith.addi", results=[ir.IndexType.get()], operands=[value, idx]).results[0]
            return value
        args = [self._emit(a, term, block) for a in e.args]
        clone = e.ref.operation.clone()
        for i, v in enumerate(args):
            clone.operands[i] = v
        if is_op_expr(e, "arith.select") and (e.args[1].uses_arg(term.chain) or e.args[2].uses_arg(term.chain)):
            self._note_replacement(e, term, args[0])
        return clone.results[0]

    def _note_replacement(self, e: Expr, term: MaskTerm, cond: ir.Value) -> None:
        """select(cond, S, fill) replaces the score where it picks a finite fill (-inf is
        exact as an additive mask): the encoding needs to know where (masks.encode)."""
        keeps_true = e.args[1].uses_arg(term.chain)
        fill = scalar_constant(e.args[2] if keeps_true else e.args[1], term.op)
        if fill == float("-inf"):
            return
        if keeps_true:  # the fill is taken where cond is false
            true = irx.true_constant()
            cond = ir.Operation.create("arith.xori", results=[cond.type], operands=[cond, true]).results[0]
        self.replaced.append(cond)


def _dims_map(loops: list, leaves: list) -> ir.AffineMap:
    """The map from loops (one per leaf in `loops`) to a tensor over `leaves`."""
    return ir.AffineMap.get(len(loops), 0, [ir.AffineDimExpr.get(loops.index(l)) for l in leaves])






def _cast_float(value: ir.Value, etype) -> ir.Value:
    src = value.type
    if src == etype:
        return value
    width = lambda t: ir.FloatType(t).width
    name = "arith.extf" if width(src) < width(etype) else "arith.truncf"
    return ir.Operation.create(name, results=[etype], operands=[value]).results[0]
