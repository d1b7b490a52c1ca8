"""One view of an iree_linalg_ext.attention op, for every pass and codegen step that reads one.

raise-attention builds the op with an indexing map per operand over its loop dims
(attention_builder.py); this module reads such an op back, so that no step decodes the maps
itself: the operands by name, each operand's loop dims, the loop dims by role and their
static sizes. The roles, from the dims Q, K, V and O read:

    k1     the Q.K contraction (head dim): in Q and K, not in O
    k2     the keys: in K and V, not in Q
    m      the queries: in Q and O, not in K (also a grouped-query group dim: see query_dim)
    n      V's head dim: in V and O, not in K
    batch  O's other dims

`AttentionOp.of(op)` never fails. Where a map result is not a plain loop dim, `dims` holds
None there and `plain` is False (the roles are those of the plain dims); `static(...)` says
whether the named tensors have static shapes. Steps that need more (one dim per role, a
canonical layout) check it and say why they leave the op alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from iree.compiler import ir

#: The op's tensors by name: its operands in order, then its result "o".
TENSORS = ("q", "k", "v", "mask", "o")


def map_loop_dims(amap) -> list:
    """Per result of `amap`: the loop dim it reads, or None where it is not a plain loop dim."""
    return [e.position if isinstance(e, ir.AffineDimExpr) else None for e in amap.results]


def roles_of(q: list, k: list, v: list, o: list) -> dict:
    """The loop dims by role (see the module doc) from the dims Q, K, V and O read; also the
    operands' own dims under "q", "k", "v", "o"."""
    m = [d for d in q if d in o and d not in k]
    n = [d for d in v if d in o and d not in k]
    return {"q": q, "k": k, "v": v, "o": o,
            "k1": [d for d in q if d in k and d not in o], "k2": [d for d in k if d in v and d not in q],
            "m": m, "n": n, "batch": [d for d in o if d not in m and d not in n]}


def roles_of_maps(maps: list) -> dict:
    """roles_of for an op's indexing maps (the plain dims of Q, K, V and O)."""
    return roles_of(*[_plain(map_loop_dims(maps[i])) for i in (0, 1, 2, -1)])


def query_dim(q: list, m: list, o: Optional[list] = None, mask: Optional[list] = None) -> int:
    """The query sequence dim among the m dims: IREE also counts a grouped-query group dim r
    (in Q and O, not in K/V) as an m dim. It is the only m dim the mask is indexed by (a
    causal or padding mask never varies along r), else the one before n in O (the P.V
    matmul's rows: raise-attention's O is (batch..., m, n) whatever Q's layout, where Q in
    (B, S, G, R, D) has the group dim before k1), else the one before k1 in Q, else the
    last; the others are query batch dims."""
    if len(m) == 1:
        return m[0]
    in_mask = [d for d in (mask or []) if d in m]
    if len(in_mask) == 1:
        return in_mask[0]
    if o and len(o) >= 2 and o[-2] in m:
        return o[-2]
    return q[-2] if q[-2] in m else m[-1]


@dataclass
class AttentionOp:
    """An attention op read through its maps (see the module doc)."""

    op: object  # the ir.Operation
    maps: list  # its indexing maps: Q, K, V, scale, [mask], O
    values: dict  # "q", "k", "v", "scale", "mask" (where it has one), "init", "o" (the result)
    dims: dict  # per tensor of TENSORS it has: the loop dim of each of its dims, or None
    roles: dict  # role -> loop dims (roles_of)
    sizes: list  # per loop dim: its static size where a tensor gives one, else None

    @classmethod
    def of(cls, op) -> "AttentionOp":
        operation = op.operation if hasattr(op, "operation") else op
        maps = [a.value for a in operation.attributes["indexing_maps"]]
        operands = list(operation.operands)
        names = ["q", "k", "v", "scale"] + (["mask"] if len(operands) == 6 else [])
        values = dict(zip(names, operands))
        values["init"], values["o"] = operands[-1], operation.results[0]
        tensor_maps = dict(zip(["q", "k", "v"], maps[:3]))
        if "mask" in values:
            tensor_maps["mask"] = maps[4]
        tensor_maps["o"] = maps[-1]
        dims = {name: map_loop_dims(amap) for name, amap in tensor_maps.items()}
        sizes: list = [None] * maps[0].n_dims
        for name, ds in dims.items():
            t = values[name].type
            if not isinstance(t, ir.RankedTensorType):
                continue
            t = ir.RankedTensorType(t)
            for pos, d in enumerate(ds):
                if d is not None and sizes[d] is None and not t.is_dynamic_dim(pos):
                    sizes[d] = t.shape[pos]
        roles = roles_of(*[_plain(dims[n]) for n in ("q", "k", "v", "o")])
        return cls(operation, maps, values, dims, roles, sizes)

    @property
    def n_loops(self) -> int:
        return self.maps[0].n_dims

    @property
    def has_mask(self) -> bool:
        return "mask" in self.values

    @property
    def plain(self) -> bool:
        """Every result of every tensor's map is a plain loop dim."""
        return all(d is not None for ds in self.dims.values() for d in ds)

    def static(self, *names: str) -> bool:
        """The named tensors (default: all the op has) are ranked with static shapes."""
        for name in names or [n for n in TENSORS if n in self.values]:
            t = self.values[name].type
            if not (isinstance(t, ir.RankedTensorType) and ir.RankedTensorType(t).has_static_shape):
                return False
        return True

    def one(self, role: str) -> Optional[int]:
        """The role's loop dim where it has exactly one, else None."""
        ds = self.roles[role]
        return ds[0] if len(ds) == 1 else None

    def size(self, role: str) -> Optional[int]:
        """The static size of the role's only loop dim, else None."""
        d = self.one(role)
        return None if d is None else self.sizes[d]

    def query_dim(self) -> Optional[int]:
        """The query sequence dim (query_dim), or None without an m dim."""
        if not self.roles["m"]:
            return None
        r = self.roles
        o = r["o"] if r["o"] and r["o"][-1] in r["n"] else None
        return query_dim(r["q"], r["m"], o, _plain(self.dims.get("mask") or []))

    def element_type(self, name: str) -> str:
        return str(ir.ShapedType(self.values[name].type).element_type)


def _plain(dims: list) -> list:
    return [d for d in dims if d is not None]
