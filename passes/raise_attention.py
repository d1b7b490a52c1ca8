"""raise-attention: batch-matmul + [scale] + [mask/bias] + softmax + batch-matmul -> attention.

Matches, anchored at each `linalg.softmax` (run raise-softmax first; the pipeline does):

    S = contract_k1(Q, K)            linalg.batch_matmul / matmul / contraction generic,
                                      Q and K seen through transposes, collapse/expand_shape,
                                      broadcasts (grouped-query repeat_kv) and constant or
                                      runtime-scalar multiplies/divides (scale on Q or K)
    S' = f(S)                        elementwise ops that are `alpha * S + beta`, where alpha
                                      is a product of constants / runtime scalars (the scale)
                                      and beta does not depend on S: additive biases and masks,
                                      `select(cond, S, -inf or <= -1e4)` boolean masks, causal
                                      masks from `linalg.index` comparisons, precision casts
    P = softmax_k2(S')               the softmax must reduce the key dim k2 of S
    O = contract_k2(P, V)            through precision casts and reshapes; V traced like K

Produces one `iree_linalg_ext.attention` whose indexing maps say how Q, K, V and O are laid
out (no transposes or repeats are materialised; multi-dim batches such as (B, H) or
(B, KV-heads, group) are kept), with:
  * the scale operand = alpha (a constant, or arith ops on runtime scalars);
  * beta, when present, as the op's *mask operand*: a float tensor computed by a new
    `linalg.generic` over only the dims it depends on (e.g. [B, K2] for a padding mask,
    [M, K2] for a causal mask), broadcast to the op through its indexing map. IREE adds it
    to the scaled scores before the online softmax; the score region is left as identity.
Leaves the IR untouched, and reports why, when anything does not match exactly (a scores or
probabilities tensor with another use, softmax over a non-key dim, a second matmul that does
not contract the key dim, a score function that is not affine in the scores, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from iree.compiler import ir

from . import ir as irx
from . import masks
from .dims import Atoms
from .matchers import (Contraction, Expr, NoMatch, body, copy_like_map, is_elementwise, is_op_expr, match_contraction,
                       require, strip_casts)

NAME = "raise-attention"
SUMMARY = "Raise matmul + scale + mask + softmax + matmul to iree_linalg_ext.attention"
MASKED = masks.MASKED  # a select() fill at or below this is taken to mean "masked out"


# --- the scale: constant * runtime scalars ----------------------------------------------


@dataclass
class Scale:
    constant: float = 1.0
    factors: list = field(default_factory=list)  # [(op "mul"|"div", ir.Value scalar)]

    def times(self, other: "Scale") -> "Scale":
        return Scale(self.constant * other.constant, self.factors + other.factors)


def _uniform_scalar(e: Expr, op) -> Scale:
    """A factor that is the same for every score: a constant, a captured scalar, or a
    rank-0 tensor operand of the generic."""
    while is_op_expr(e, "arith.extf", "arith.truncf"):
        e = e.args[0]
    if e.kind == "const":
        return Scale(float(e.value))
    if e.kind == "capture":
        return Scale(factors=[("mul", e.value)])
    if e.kind == "arg":
        operand = op.operation.operands[e.value]
        amap = irx.indexing_maps(op)[e.value]
        if len(amap.results) == 0 and e.value < len(irx.ins(op)):
            return Scale(factors=[("mul", ("extract", operand))])
    raise NoMatch("the scores are multiplied by something that varies per element")


def _scalar_constant(e: Expr, op) -> Optional[float]:
    """The value of a constant scalar: an arith.constant, or a splat constant tensor operand."""
    while is_op_expr(e, "arith.extf", "arith.truncf"):
        e = e.args[0]
    if e.kind == "const":
        return float(e.value)
    if e.kind == "arg" and e.value < len(irx.ins(op)):
        value = irx.splat_constant(op.operation.operands[e.value])
        return None if value is None else float(value)
    return None


def _invert(s: Scale) -> Scale:
    require(s.constant != 0, "the scores are divided by zero")
    return Scale(1.0 / s.constant, [("div" if k == "mul" else "mul", v) for k, v in s.factors])


def slope(e: Expr, chain: int, op) -> Scale:
    """d(e)/d(chain arg), which must be a uniform scalar: e == alpha * s + beta."""
    if e.kind == "arg" and e.value == chain:
        return Scale()
    require(e.kind == "op", "unexpected score expression")
    n = e.name
    if n in ("arith.extf", "arith.truncf"):
        return slope(e.args[0], chain, op)
    if n == "arith.negf":
        return Scale(-1.0).times(slope(e.args[0], chain, op))
    uses = [a.uses_arg(chain) for a in e.args]
    if n == "arith.mulf":
        require(uses.count(True) == 1, "the scores are multiplied by themselves")
        i = uses.index(True)
        return slope(e.args[i], chain, op).times(_uniform_scalar(e.args[1 - i], op))
    if n == "arith.divf":
        require(uses == [True, False], "the scores are used as a divisor")
        return slope(e.args[0], chain, op).times(_invert(_uniform_scalar(e.args[1], op)))
    if n in ("arith.addf", "arith.subf"):
        require(uses.count(True) == 1, "the scores are added to themselves")
        require(n == "arith.addf" or uses[0], "the scores are subtracted from something")
        return slope(e.args[uses.index(True)], chain, op)
    if n == "arith.select":
        require(not uses[0], "a mask condition depends on the scores")
        require(uses[1] != uses[2], "both branches of a select use the scores")
        other = e.args[2] if uses[1] else e.args[1]
        fill = _scalar_constant(other, op)
        require(fill is not None and fill <= MASKED,
                "a select() replaces scores by something other than -inf / a very negative fill")
        return slope(e.args[1] if uses[1] else e.args[2], chain, op)
    raise NoMatch(f"the scores go through {n}, which is not a scale, bias or mask")


# --- beta (the additive mask) as an expression over atoms ----------------------------


@dataclass
class MaskTerm:
    """beta of one score op: its body with the chain arg replaced by the previous beta."""

    op: object  # the score linalg.generic
    expr: Expr
    chain: int
    layout: list  # the op's loops -> atoms (loop d reads layout[d])
    previous: Optional["MaskTerm"]

    def is_zero(self) -> bool:
        return _is_zero(self.expr, self)


def _is_zero(e: Expr, term: Optional[MaskTerm]) -> bool:
    if term is None:
        return True
    if e.kind == "arg" and e.value == term.chain:
        return term.previous is None or term.previous.is_zero()
    if e.kind == "const":
        return float(e.value) == 0.0
    if is_op_expr(e, "arith.extf", "arith.truncf", "arith.negf"):
        return _is_zero(e.args[0], term)
    if is_op_expr(e, "arith.mulf", "arith.divf"):
        return _is_zero(e.args[0], term) or (e.name == "arith.mulf" and _is_zero(e.args[1], term))
    if is_op_expr(e, "arith.addf", "arith.subf"):
        return _is_zero(e.args[0], term) and _is_zero(e.args[1], term)
    return False


# --- tracing through data movement -------------------------------------------------


def _scale_generic(op) -> Optional[tuple[ir.Value, Scale]]:
    """x * c or x / c on a whole tensor (identity maps): (x, c)."""
    if not is_elementwise(op):
        return None
    maps = irx.indexing_maps(op)
    e = body(op)
    tensor_args = [i for i, m in enumerate(maps[:-1]) if len(m.results)]
    if len(tensor_args) != 1 or not irx.is_identity(maps[tensor_args[0]]):
        return None
    try:
        s = slope(e, tensor_args[0], op)
    except NoMatch:
        return None
    # Only genuine scalings fold into the scale. A bare precision cast must stay: looking
    # through `truncf` would make the attention read the f32 value before it (f32 attention).
    if not is_op_expr(e, "arith.mulf", "arith.divf"):
        return None
    return op.operation.operands[tensor_args[0]], s


def _widening_cast(op) -> bool:
    """x -> extf(x) on a whole tensor: the matmul reads a widened copy of a narrow tensor."""
    if not is_elementwise(op) or len(irx.ins(op)) != 1 or not irx.is_identity(irx.indexing_maps(op)[0]):
        return False
    e = body(op)
    return is_op_expr(e, "arith.extf") and e.args[0].kind == "arg" and e.args[0].value == 0


def trace_operand(value: ir.Value, layout: list, atoms: Atoms, scale: list, widen: bool = True) -> tuple[ir.Value, list]:
    """Follows an operand back through transposes, reshapes, broadcasts, scalings and (with
    `widen`) widening casts: products of f16 values are exact in f32 and the attention op
    accumulates in f32, so reading the narrow tensor computes the same scores.

    Returns the root value and its layout; multiplies found are appended to `scale`.
    """
    while True:
        atoms.note(value, layout)
        op = irx.producer(value)
        if irx.is_op(op, "linalg.transpose"):
            perm = list(op.operation.attributes["permutation"])
            src = [None] * len(perm)
            for i, p in enumerate(perm):
                src[p] = layout[i]
            value, layout = op.operation.operands[0], src
        elif irx.is_op(op, "tensor.collapse_shape"):
            src_value = op.operation.operands[0]
            src_shape = irx.shape(src_value)
            src = []
            for i, group in enumerate(irx.reassociation(op)):
                parts = atoms.split(layout[i], [src_shape[j] for j in group])
                if parts is None:
                    return value, layout
                src.extend(parts)
            value, layout = src_value, src
        elif irx.is_op(op, "tensor.expand_shape"):
            src = [sum((layout[j] for j in group), []) for group in irx.reassociation(op)]
            value, layout = op.operation.operands[0], src
        elif op is not None and copy_like_map(op) is not None:
            dims = irx.map_dims(copy_like_map(op))
            if -1 in dims:
                return value, layout
            value, layout = irx.ins(op)[0], [[] if d == "0" else layout[d] for d in dims]
        elif op is not None and _scale_generic(op) is not None:
            value, s = _scale_generic(op)
            scale.append(s)
        elif widen and op is not None and _widening_cast(op):
            value = irx.ins(op)[0]
        else:
            return value, layout


def _permutation(op) -> Optional[list]:
    """For a transpose (linalg.transpose or a copy generic with a permutation map): the
    source dim each result dim reads."""
    if irx.is_op(op, "linalg.transpose"):
        return list(op.operation.attributes["permutation"])
    amap = copy_like_map(op) if irx.is_op(op, "linalg.generic") else None
    if amap is not None and amap.is_permutation:
        dims = irx.map_dims(amap)  # source dim p reads loop dims[p]; result dim d is loop d
        return [dims.index(d) for d in range(len(dims))]
    return None


def _forward_layout(op, layout: list, atoms: Atoms) -> list:
    """Layout of a reshape's or transpose's result given its source's layout."""
    perm = _permutation(op)
    if perm is not None:
        return [layout[p] for p in perm]
    groups = irx.reassociation(op)
    if irx.is_op(op, "tensor.collapse_shape"):
        return [sum((layout[j] for j in group), []) for group in groups]
    out_shape = irx.shape(irx.result(op))
    out = [None] * len(out_shape)
    for i, group in enumerate(groups):
        parts = atoms.split(layout[i], [out_shape[j] for j in group])
        require(parts is not None, "a reshape splits a dim in a way that cannot be followed")
        for j, part in zip(group, parts):
            out[j] = part
    return out


def _loop_sizes(c: Contraction) -> list:
    sizes = [None] * c.maps[0].n_dims
    for value, amap in zip([c.lhs, c.rhs, irx.outs(c.op)[0]], c.maps):
        for pos, d in enumerate(irx.map_dims(amap)):
            if isinstance(d, int) and d >= 0 and sizes[d] is None:
                sizes[d] = irx.shape(value)[pos]
    return sizes


# --- the analysis ---------------------------------------------------------------------


@dataclass
class Site:
    softmax: object
    atoms: Atoms
    roots: dict  # "q"/"k"/"v" -> (value, layout)
    out_layout: list
    roles: dict  # "m"/"n"/"k1"/"k2" -> atom
    scale: Scale
    mask: Optional[MaskTerm]
    c2: Contraction
    matched: list
    guard: bool = False  # torch's _safe_softmax: rows whose every score is -inf give 0
    info: dict = field(default_factory=dict)
    replaced: object = None  # the op whose result the attention op replaces (P.V, or its narrowing cast)


def _find_scores(value: ir.Value, depth: int = 0) -> tuple[Contraction, list]:
    """Walks back from the softmax input to the Q.K contraction.

    Returns it and the ops in between, first to last, each with the operand index through
    which the scores flow.
    """
    require(depth < 24, "no matmul found within 24 ops before the softmax")
    op = irx.producer(value)
    require(op is not None, "the softmax input is a function argument, not a matmul")
    if irx.op_name(op) in irx.STRUCTURED and not is_elementwise(op):
        return match_contraction(op), []
    if irx.is_op(op, "tensor.collapse_shape", "tensor.expand_shape") or _permutation(op) is not None:
        c1, path = _find_scores(op.operation.operands[0], depth + 1)
        return c1, path + [(op, 0)]
    require(is_elementwise(op), f"the softmax input comes from {irx.op_name(op) if op else 'an argument'}, not a matmul")
    maps = irx.indexing_maps(op)
    out_shape = irx.shape(irx.result(op))
    last: Optional[NoMatch] = None
    for i, operand in enumerate(irx.ins(op)):
        if irx.is_identity(maps[i]) and irx.shape(operand) == out_shape:
            try:
                c1, path = _find_scores(operand, depth + 1)
                return c1, path + [(op, i)]
            except NoMatch as e:
                last = e
    raise last or NoMatch("the softmax input is not computed from a matmul")


def _follow_probabilities(value: ir.Value, layout: list, atoms: Atoms, matched: list, guard=None) -> tuple[Contraction, int, list]:
    """Walks forward from the softmax to the P.V contraction through casts, reshapes and
    transposes (and the fully-masked-row guard, when `guard` was found)."""
    while True:
        n = irx.num_uses(value)
        require(n == 1, f"the attention probabilities have {n} uses (e.g. they are also returned)")
        user = irx.users(value)[0].opview
        name = irx.op_name(user)
        if name in irx.STRUCTURED and not is_elementwise(user):
            c2 = match_contraction(user)
            idx = [i for i, v in enumerate(irx.ins(user)) if v == value]
            require(len(idx) == 1, "the probabilities are multiplied by themselves")
            return c2, idx[0], layout
        if name in ("tensor.collapse_shape", "tensor.expand_shape") or _permutation(user) is not None:
            layout = _forward_layout(user, layout, atoms)
        elif guard is not None and _is_guard_select(user, value, guard):
            matched.append(guard[0])
        else:
            require(is_elementwise(user) and len(irx.ins(user)) == 1, f"the probabilities go through {name} before the second matmul")
            e = body(user)
            while is_op_expr(e, "arith.extf", "arith.truncf"):
                e = e.args[0]
            require(e.kind == "arg" and e.value == 0, "the probabilities are modified before the second matmul")
        matched.append(user)
        value = irx.result(user)


def _match_row_guard(x: ir.Value, softmax, dim: int):
    """torch's _safe_softmax: besides the softmax, X feeds `all(X == -inf)` over the softmax
    dim, used to zero fully masked rows. Returns (cmp op, reduction op) or None."""
    others = [u.opview for u in irx.users(x) if u != softmax.operation]
    if len(others) != 1 or not is_elementwise(others[0]) or len(irx.ins(others[0])) != 1:
        return None
    cmp = others[0]
    e = body(cmp)
    if not is_op_expr(e, "arith.cmpf") or "oeq" not in str(e.ref.operation.attributes["predicate"]) and \
            str(e.ref.operation.attributes["predicate"]).split(":")[0].strip() != "1":
        return None
    lhs, rhs = e.args
    while is_op_expr(lhs, "arith.extf", "arith.truncf"):
        lhs = lhs.args[0]
    if not (lhs.kind == "arg" and lhs.value == 0 and rhs.kind == "const" and rhs.value == float("-inf")):
        return None
    if irx.num_uses(irx.result(cmp)) != 1:
        return None
    red = irx.users(irx.result(cmp))[0].opview
    if not irx.is_op(red, "linalg.generic") or irx.iterator_types(red).count("reduction") != 1:
        return None
    if irx.iterator_types(red).index("reduction") != dim or not is_op_expr(body(red), "arith.andi"):
        return None
    return cmp, red


def _is_guard_select(op, p: ir.Value, guard) -> bool:
    """select(row_all_masked, 0, P) with the guard's reduction as the condition."""
    if not is_elementwise(op) or len(irx.ins(op)) != 3:
        return False
    e = body(op)
    if not is_op_expr(e, "arith.select"):
        return False
    c, zero, keep = e.args
    if not (c.kind == "arg" and keep.kind == "arg" and irx.ins(op)[keep.value] == p):
        return False
    cond = irx.ins(op)[c.value]
    cond_op = irx.producer(cond)
    if irx.is_op(cond_op, "tensor.expand_shape"):
        cond_op = irx.producer(cond_op.operation.operands[0])
    if cond_op is None or cond_op.operation != guard[1].operation:
        return False
    return _scalar_constant(zero, op) == 0.0


def analyze(softmax) -> Site:
    atoms = Atoms()
    x = softmax.operation.operands[0]
    dim = int(softmax.operation.attributes["dimension"].value)
    c1, path = _find_scores(x)
    matched = [c1.op, softmax]

    # Loops of Q.K -> atoms; follow the scores forward to the softmax.
    loop_atoms = [atoms.new(s) for s in _loop_sizes(c1)]
    layout = [[loop_atoms[d]] for d in irx.map_dims(c1.maps[2])]
    scale = Scale()
    mask: Optional[MaskTerm] = None
    value = irx.result(c1.op)
    for op, operand in path:
        n = irx.num_uses(value)
        require(n == 1, f"the attention scores have {n} uses")
        if irx.is_op(op, "tensor.collapse_shape", "tensor.expand_shape") or _permutation(op) is not None:
            layout = _forward_layout(op, layout, atoms)
        else:
            e = body(op)
            scale = scale.times(slope(e, operand, op))
            mask = MaskTerm(op, e, operand, list(layout), mask)
        matched.append(op)
        value = irx.result(op)
    guard = _match_row_guard(value, softmax, dim)
    require(irx.num_uses(value) == 1 or (guard is not None and irx.num_uses(value) == 2),
            "the softmax input has another use")

    # The softmax must reduce one of the two free dims of the scores: that one is k2.
    key = atoms.leaves(layout[dim])
    lhs_loop, rhs_loop, red_loop = c1.loop_of("lhs")[0], c1.loop_of("rhs")[0], c1.loop_of("red")[0]
    if key == atoms.leaves([loop_atoms[rhs_loop]]):
        q_side, k_side = 0, 1
    elif key == atoms.leaves([loop_atoms[lhs_loop]]):
        q_side, k_side = 1, 0
    else:
        raise NoMatch(f"softmax is over dim {dim}, which is not the key dim of Q.K^T")
    m_atom = loop_atoms[lhs_loop if q_side == 0 else rhs_loop]
    k2_atom, k1_atom = loop_atoms[rhs_loop if q_side == 0 else lhs_loop], loop_atoms[red_loop]

    # Follow P to the second matmul, which must contract exactly k2.
    c2, p_index, p_layout = _follow_probabilities(irx.result(softmax), layout, atoms, matched, guard)
    matched.append(c2.op)
    c2_atoms: list = [None] * c2.maps[0].n_dims
    for pos, d in enumerate(irx.map_dims(c2.maps[p_index])):
        require(isinstance(d, int) and d >= 0, "the second matmul reads the probabilities at a constant")
        c2_atoms[d] = p_layout[pos]
    red2 = c2.loop_of("red")[0]
    require(atoms.leaves(c2_atoms[red2]) == atoms.leaves([k2_atom]),
            f"softmax is over dim {dim} of the scores, but the second matmul contracts another dim")
    p_free = c2.loop_of("lhs" if p_index == 0 else "rhs")[0]
    require(atoms.leaves(c2_atoms[p_free]) == atoms.leaves([m_atom]),
            "the second matmul does not keep the query dim of the probabilities")
    v_free = c2.loop_of("rhs" if p_index == 0 else "lhs")[0]
    n_atom = atoms.new(_loop_sizes(c2)[v_free])
    c2_atoms[v_free] = [n_atom]
    v_value = c2.rhs if p_index == 0 else c2.lhs
    v_map = c2.maps[1 if p_index == 0 else 0]
    v_layout = [c2_atoms[d] for d in irx.map_dims(v_map)]
    out_layout = [c2_atoms[d] for d in irx.map_dims(c2.maps[2])]

    # Trace Q, K, V to their roots (scales on Q or K fold into the scale).
    q_scales: list = []
    c1_operands = [(c1.lhs, c1.maps[0]), (c1.rhs, c1.maps[1])]
    def trace_all(widen: bool) -> dict:
        q_scales.clear()
        v_scales.clear()
        roots = {}
        for key_name, (operand, amap) in zip(("q", "k"), [c1_operands[q_side], c1_operands[k_side]]):
            op_layout = [[loop_atoms[d]] for d in irx.map_dims(amap)]
            roots[key_name] = trace_operand(operand, op_layout, atoms, q_scales, widen)
        roots["v"] = trace_operand(v_value, v_layout, atoms, v_scales, widen)
        return roots

    v_scales: list = []
    roots = trace_all(widen=True)
    if len({str(irx.element_type(v)) for v, _ in roots.values()}) != 1:
        roots = trace_all(widen=False)  # mixed precisions: read what the matmuls read
    require(not v_scales or all(s.factors == [] and s.constant == 1.0 for s in v_scales),
            "V is scaled before the second matmul")
    for s in q_scales:
        scale = scale.times(s)

    roles = {"m": m_atom, "n": n_atom, "k1": k1_atom, "k2": k2_atom}
    for role, atom in roles.items():
        require(len(atoms.leaves([atom])) == 1, f"the {role} dim is reshaped inside the attention")
    if mask is not None and mask.is_zero():
        mask = None
    site = Site(softmax, atoms, roots, out_layout, roles, scale, mask, c2, matched, guard=guard is not None)
    site.replaced = _narrowing_cast(c2.op) or c2.op
    if site.replaced is not c2.op:
        matched.append(site.replaced)
    _check_roots(site)
    return site


def _narrowing_cast(op):
    """P.V accumulated in f32 then truncated to f16/bf16 by its only user: the attention op
    can produce the narrow type directly (it accumulates in f32 itself), saving a pass over O."""
    value = irx.result(op)
    if irx.num_uses(value) != 1:
        return None
    user = irx.users(value)[0].opview
    if not is_elementwise(user) or len(irx.ins(user)) != 1 or not irx.is_identity(irx.indexing_maps(user)[0]):
        return None
    e = body(user)
    if is_op_expr(e, "arith.truncf") and e.args[0].kind == "arg" and e.args[0].value == 0:
        return user
    return None


def _check_roots(site: Site) -> None:
    for name, (value, _) in site.roots.items():
        etype = irx.element_type(value)
        require(isinstance(etype, ir.FloatType), f"{name.upper()} is {etype}, not a float tensor (the attention op reads floats)")
    a = site.atoms
    r = {k: a.leaves([v])[0] for k, v in site.roles.items()}
    out = [leaf for group in a.resolve(site.out_layout) for leaf in group]
    batch = [leaf for leaf in out if leaf not in (r["m"], r["n"])]
    require(r["m"] in out and r["n"] in out, "the output does not have the query and value dims")
    allowed = {"q": {r["m"], r["k1"]}, "k": {r["k2"], r["k1"]}, "v": {r["k2"], r["n"]}}
    for name, (value, layout) in site.roots.items():
        leaves = [leaf for group in a.resolve(layout) for leaf in group]
        require(len(set(leaves)) == len(leaves), f"{name.upper()} reads one dim twice")
        require(allowed[name] <= set(leaves), f"{name.upper()} does not have its two attention dims")
        extra = set(leaves) - allowed[name] - set(batch)
        require(not extra, f"{name.upper()} has a dim that is not a batch dim of the output")
    site.info["batch"] = batch


# --- building the attention op -----------------------------------------------------------


class Builder:
    """Emits the attention op and its helpers right before the second matmul."""

    def __init__(self, site: Site):
        self.site = site
        self.a = site.atoms
        r = {k: self.a.leaves([v])[0] for k, v in site.roles.items()}
        self.r = r
        self.order = site.info["batch"] + [r["m"], r["n"], r["k1"], r["k2"]]
        self.loc = site.softmax.operation.location
        self.sized_dims: dict = {}  # leaf -> (value, dim) where a root holds that leaf alone

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
        true = ir.Operation.create("arith.constant", results=[i1], attributes={"value": ir.IntegerAttr.get(i1, 1)}).results[0]
        init = irx.generic([], self.empty(row_leaves, i1), [ir.AffineMap.get_identity(len(row_leaves))],
                           ["parallel"] * len(row_leaves), lambda args: true)
        neg_inf = irx.float_constant(float("-inf"), ir.F32Type.get())

        def all_hidden(args):
            hidden = ir.Operation.create("arith.cmpf", results=[i1], operands=[args[0], neg_inf], attributes={
                "predicate": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 1)}).results[0]  # oeq
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
            value = masks.encode(_cast_float(value, ftype), self.replaced, _adds_in(term))
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
                return irx.float_constant(0.0, _chain_type(term))
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
        fill = _scalar_constant(e.args[2] if keeps_true else e.args[1], term.op)
        if fill == float("-inf"):
            return
        if keeps_true:  # the fill is taken where cond is false
            true = ir.Operation.create("arith.constant", results=[cond.type],
                                       attributes={"value": ir.IntegerAttr.get(cond.type, 1)}).results[0]
            cond = ir.Operation.create("arith.xori", results=[cond.type], operands=[cond, true]).results[0]
        self.replaced.append(cond)


def _dims_map(loops: list, leaves: list) -> ir.AffineMap:
    """The map from loops (one per leaf in `loops`) to a tensor over `leaves`."""
    return ir.AffineMap.get(len(loops), 0, [ir.AffineDimExpr.get(loops.index(l)) for l in leaves])


def _adds_in(term: Optional[MaskTerm]) -> str:
    """The narrowest float type in which a score op of the chain adds or selects its mask
    term (casts alone do not count): the model's rounding happens there."""
    names = []
    while term is not None:
        if not (strip_casts(term.expr).kind == "arg" and strip_casts(term.expr).value == term.chain):
            names.append(masks.float_type_name(_chain_type(term)))
        term = term.previous
    return min(names or ["f32"], key=lambda n: masks.MANTISSA_BITS[n])


def _chain_type(term: MaskTerm):
    block = term.op.operation.regions[0].blocks[0]
    return block.arguments[term.chain].type


def _cast_float(value: ir.Value, etype) -> ir.Value:
    src = value.type
    if src == etype:
        return value
    width = lambda t: ir.FloatType(t).width
    name = "arith.extf" if width(src) < width(etype) else "arith.truncf"
    return ir.Operation.create(name, results=[etype], operands=[value]).results[0]


# --- the pass -------------------------------------------------------------------------------


@dataclass
class Outcome:
    raised: bool
    location: str
    reason: str = ""
    info: dict = field(default_factory=dict)


def run(module: ir.Module, ctx) -> list[Outcome]:
    """Raises every attention it can; returns one Outcome per softmax candidate.

    Sites are visited once, in program order (a raise only erases its own site's ops).
    """
    outcomes = []
    for softmax in irx.collect(module, "linalg.softmax"):
        if irx.alive(softmax):
            outcome = raise_site(softmax)
            if outcome is not None:
                outcomes.append(outcome)
    return outcomes


def raise_site(softmax) -> Optional[Outcome]:
    """Raises one candidate, or leaves it exactly as written and says why. A failure of the
    pass itself (an exception, or IR that does not verify) is reported on the site and
    rolled back: it never takes the compile down."""
    loc = irx.location_text(softmax)
    try:
        site = analyze(softmax)
    except NoMatch as e:
        return Outcome(False, loc, str(e)) if _looks_like_attention(softmax) else None
    except Exception as e:  # a bug in the analysis: nothing was changed
        return Outcome(False, loc, _internal_error(e))
    with ir.InsertionPoint(site.c2.op), site.c2.op.operation.location:
        marker = irx.index_constant(0).owner.operation  # the new ops go between the marker and P.V
    try:
        new_value = Builder(site).build()
        irx.verify_slice(new_value, marker)
    except Exception as e:
        irx.erase_between(marker, site.c2.op.operation)
        marker.erase()
        return Outcome(False, loc, str(e) if isinstance(e, NoMatch) else _internal_error(e))
    marker.erase()
    irx.result(site.replaced).replace_all_uses_with(new_value)
    irx.erase_dead(site.matched)
    return Outcome(True, loc, info=site.info)


def _internal_error(e: Exception) -> str:
    text = str(e).strip().splitlines()
    detail = text[0][:200] if text else ""
    return f"raise-attention failed on this site ({type(e).__name__}: {detail}); it is left as written"


def _looks_like_attention(softmax) -> bool:
    """A softmax is an attention candidate when a matmul is near its input or output."""
    def near(value, forward, depth):
        if depth > 6:
            return False
        nxt = irx.users(value) if forward else [irx.producer(value)]
        for op in nxt:
            if op is None:
                continue
            op = op.opview if hasattr(op, "opview") else op
            if irx.op_name(op) in irx.STRUCTURED and not is_elementwise(op):
                return True
            if irx.op_name(op).startswith(("linalg.", "tensor.")):
                vals = list(op.operation.results)[:1] if forward else list(op.operation.operands)[:1]
                if any(near(v, forward, depth + 1) for v in vals):
                    return True
        return False
    return near(softmax.operation.operands[0], False, 0) or near(irx.result(softmax), True, 0)
