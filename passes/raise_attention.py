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

This module holds the analysis (`analyze`: one Site per candidate) and the pass; the pieces
are one job each: `scores` (alpha and beta from the score ops), `tracing` (following tensors
through data movement), `attention_builder` (emitting the op), `masks` (the mask encoding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from iree.compiler import ir

from . import ir as irx
from .attention_builder import Builder
from .dims import Atoms
from .matchers import Contraction, NoMatch, body, is_elementwise, require
from .records import LEFT, RAISED, SiteRecord, mark_site
from .scores import MaskTerm, Scale, slope
from .tracing import (find_scores, follow_probabilities, forward_layout, loop_sizes, match_row_guard, narrowing_cast,
                      permutation, trace_operand)

NAME = "raise-attention"
SUMMARY = "Raise matmul + scale + mask + softmax + matmul to iree_linalg_ext.attention"


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










def analyze(softmax) -> Site:
    """The candidate at `softmax` as a Site, or NoMatch with the reason, in four steps:
    the scores from Q.K to the softmax, which dims are the query and key dims, the
    probabilities to P.V, and Q, K and V to their roots."""
    atoms = Atoms()
    dim = int(softmax.operation.attributes["dimension"].value)
    c1, path = find_scores(softmax.operation.operands[0])
    matched = [c1.op, softmax]
    loop_atoms = [atoms.new(s) for s in loop_sizes(c1)]
    layout, scale, mask, value = _follow_scores(c1, path, loop_atoms, atoms, matched)
    guard = match_row_guard(value, softmax, dim)
    require(irx.num_uses(value) == 1 or (guard is not None and irx.num_uses(value) == 2),
            "the softmax input has another use")
    q_side, m_atom, k2_atom, k1_atom = _key_dims(c1, layout, dim, loop_atoms, atoms)
    c2, v_value, v_layout, out_layout, n_atom = _follow_to_pv(softmax, layout, atoms, matched, guard, dim,
                                                              m_atom, k2_atom)
    roots, q_scales = _trace_roots(c1, q_side, loop_atoms, v_value, v_layout, atoms)
    for s in q_scales:
        scale = scale.times(s)

    roles = {"m": m_atom, "n": n_atom, "k1": k1_atom, "k2": k2_atom}
    for role, atom in roles.items():
        require(len(atoms.leaves([atom])) == 1, f"the {role} dim is reshaped inside the attention")
    if mask is not None and mask.is_zero():
        mask = None
    site = Site(softmax, atoms, roots, out_layout, roles, scale, mask, c2, matched, guard=guard is not None)
    site.replaced = c2.op
    narrowed = narrowing_cast(c2.op, out_layout, atoms)
    if narrowed is not None:
        site.replaced, site.out_layout, reshapes = narrowed
        matched.extend(reshapes + [site.replaced])
    _check_roots(site)
    return site


def _follow_scores(c1, path, loop_atoms, atoms, matched):
    """The scores from Q.K along `path` to the softmax: their layout (atoms per dim), the
    scale (alpha) and mask terms (beta) of the elementwise ops, the value the softmax reads."""
    layout = [[loop_atoms[d]] for d in irx.map_dims(c1.maps[2])]
    scale = Scale()
    mask: Optional[MaskTerm] = None
    value = irx.result(c1.op)
    for op, operand in path:
        n = irx.num_uses(value)
        require(n == 1, f"the attention scores have {n} uses")
        if irx.is_op(op, "tensor.collapse_shape", "tensor.expand_shape") or permutation(op) is not None:
            layout = forward_layout(op, layout, atoms)
        else:
            e = body(op)
            scale = scale.times(slope(e, operand, op))
            mask = MaskTerm(op, e, operand, list(layout), mask)
        matched.append(op)
        value = irx.result(op)
    return layout, scale, mask, value


def _key_dims(c1, layout, dim: int, loop_atoms, atoms):
    """The softmax must reduce one of the two free dims of the scores: that one is k2 (the
    keys), the other m (the queries). Returns which operand of Q.K is Q (0 or 1) and the
    m, k2 and k1 atoms."""
    key = atoms.leaves(layout[dim])
    lhs_loop, rhs_loop, red_loop = c1.loop_of("lhs")[0], c1.loop_of("rhs")[0], c1.loop_of("red")[0]
    if key == atoms.leaves([loop_atoms[rhs_loop]]):
        q_side = 0
    elif key == atoms.leaves([loop_atoms[lhs_loop]]):
        q_side = 1
    else:
        raise NoMatch(f"softmax is over dim {dim}, which is not the key dim of Q.K^T")
    m_atom = loop_atoms[lhs_loop if q_side == 0 else rhs_loop]
    k2_atom = loop_atoms[rhs_loop if q_side == 0 else lhs_loop]
    return q_side, m_atom, k2_atom, loop_atoms[red_loop]


def _follow_to_pv(softmax, layout, atoms, matched, guard, dim: int, m_atom, k2_atom):
    """P from the softmax to the second matmul, which must contract exactly k2 and keep m.
    Returns the matmul, V with its layout, the output layout and the new n (value dim) atom."""
    c2, p_index, p_layout = follow_probabilities(irx.result(softmax), layout, atoms, matched, guard)
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
    n_atom = atoms.new(loop_sizes(c2)[v_free])
    c2_atoms[v_free] = [n_atom]
    v_value = c2.rhs if p_index == 0 else c2.lhs
    v_layout = [c2_atoms[d] for d in irx.map_dims(c2.maps[1 if p_index == 0 else 0])]
    out_layout = [c2_atoms[d] for d in irx.map_dims(c2.maps[2])]
    return c2, v_value, v_layout, out_layout, n_atom


def _trace_roots(c1, q_side: int, loop_atoms, v_value, v_layout, atoms):
    """Q, K and V traced to the tensors the attention op reads ("q"/"k"/"v" -> (value,
    layout)), and the scales found on Q or K on the way (they fold into the op's scale; one
    on V is refused). Mixed precisions: the roots are what the matmuls read, not wider."""
    c1_operands = [(c1.lhs, c1.maps[0]), (c1.rhs, c1.maps[1])]
    q_scales: list = []
    v_scales: list = []

    def trace_all(widen: bool) -> dict:
        q_scales.clear()
        v_scales.clear()
        roots = {}
        for name, (operand, amap) in zip(("q", "k"), [c1_operands[q_side], c1_operands[1 - q_side]]):
            op_layout = [[loop_atoms[d]] for d in irx.map_dims(amap)]
            roots[name] = trace_operand(operand, op_layout, atoms, q_scales, widen)
        roots["v"] = trace_operand(v_value, v_layout, atoms, v_scales, widen)
        return roots

    roots = trace_all(widen=True)
    if len({str(irx.element_type(v)) for v, _ in roots.values()}) != 1:
        roots = trace_all(widen=False)
    require(not v_scales or all(s.factors == [] and s.constant == 1.0 for s in v_scales),
            "V is scaled before the second matmul")
    return roots, q_scales


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


# --- the pass -------------------------------------------------------------------------------


def run(module: ir.Module, results: list) -> None:
    """Raises every attention it can; appends one SiteRecord per softmax candidate (a raised
    op carries its record's index as `flashlift.site`).

    Sites are visited once, in program order (a raise only erases its own site's ops).
    """
    for softmax in irx.collect(module, "linalg.softmax"):
        if irx.alive(softmax):
            record = raise_site(softmax, len(results))
            if record is not None:
                results.append(record)


def raise_site(softmax, index: int = 0) -> Optional[SiteRecord]:
    """Raises one candidate (the attention op gets site id `index`), or leaves it exactly as
    written and says why. A failure of the pass itself (an exception, or IR that does not
    verify) is reported on the site and rolled back: it never takes the compile down."""
    loc = irx.location_text(softmax)
    left = lambda reason: SiteRecord(NAME, "attention", loc, LEFT, reason)  # noqa: E731
    try:
        site = analyze(softmax)
    except NoMatch as e:
        return left(str(e)) if _looks_like_attention(softmax) else None
    except Exception as e:  # a bug in the analysis: nothing was changed
        return left(_internal_error(e))
    with ir.InsertionPoint(site.c2.op), site.c2.op.operation.location:
        marker = irx.index_constant(0).owner.operation  # the new ops go between the marker and P.V
    try:
        builder = Builder(site)
        new_value = builder.build()
        irx.verify_slice(new_value, marker)
    except Exception as e:
        irx.erase_between(marker, site.c2.op.operation)
        marker.erase()
        return left(str(e) if isinstance(e, NoMatch) else _internal_error(e))
    marker.erase()
    mark_site(builder.op, index)
    irx.result(site.replaced).replace_all_uses_with(new_value)
    irx.erase_dead(site.matched)
    return SiteRecord(NAME, "attention", loc, RAISED, details=site.info, site=index)


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
