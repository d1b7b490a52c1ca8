"""Coverage of the attention kernel: does triton_fa compute exactly this attention op, and if not, why.

`analyze` takes an `iree_linalg_ext.attention` and returns a `Plan` (the kernel's view of
the op: batch, heads, kv heads, Sq, Skv, head dim, scale, mask and its roles) or raises
NotCovered with the reason. The kernel (compiler/kernels/triton_fa.py) covers:

  * Q, K, V and O in f16 or bf16, the same type (O may be f32, the kernel's output is then
    extended; every attention flashlift raises from a model that computes in f16 is so;
    where the model truncates that f32 result back, the kernel's output replaces the
    truncation instead, attention_fusion.narrowing_consumer);
  * static shapes, head dim 64 or 128 with k1 == n;
  * layouts the kernel reads as contiguous (B, H, S, D): Q = (batch..., m, k1),
    K = (kv-batch..., k2, k1), V = (kv-batch..., k2, n), O = (batch..., m, n), where the
    kv-batch dims are a prefix of Q's batch dims. The grouped-query form Q (b, g, r, m, k1)
    with K/V (b, g, k2, k1) / (b, g, k2, n) is the kernel's kv head = q head // ratio on
    the same memory;
  * a scale that is an arith.constant, and an identity score region;
  * no mask, or a mask that varies only along Q's batch dims, m and k2 (`mask_roles`).
    Whether the kernel can take that mask is decided later, from its value
    (attention_masks.py, mask_consteval.py); here only a mask the kernel cannot read at
    run time and that is too large to evaluate at compile time is refused.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from iree.compiler import ir

from flashlift.compiler.attention_masks import full_mask_type, head_mask_type, key_padding_mask_type
from flashlift.compiler.kernel_sites import NotCovered
from flashlift.compiler.mask_consteval import MAX_MASK_ELEMENTS
from flashlift.passes.attention_op import AttentionOp

KERNEL_DTYPES = ("f16", "bf16")
HEAD_DIMS = (64, 128)


@dataclasses.dataclass
class Plan:
    """What analyze found (the first block of fields), then what kernel_dispatch fills in:
    the mask's kind, the neighbouring ops the kernel absorbs (attention_fusion.py), the
    kernel built for it."""

    op: object  # the iree_linalg_ext.attention OpView
    location: str
    dtype: str  # "f16" | "bf16"
    batch: int
    heads: int
    kv_heads: int
    sq: int
    skv: int
    head_dim: int
    scale: float
    mask: object = None  # the mask ir.Value, if any
    mask_roles: list = dataclasses.field(default_factory=list)  # per mask dim: "m", "k2" or a Q batch position
    q_batch_sizes: list = dataclasses.field(default_factory=list)
    causal: object = False  # False | "top_left" | "bottom_right"
    key_padding_mask: Optional[str] = None  # element type of a run-time [B, K2] mask operand
    full_mask: Optional[str] = None  # element type of a run-time [B, M, K2] / [M, K2] mask operand
    full_mask_batched: bool = True
    full_mask_heads: bool = False  # the full mask has a row per head and query: [B, H, M, K2] / [H, M, K2]
    guard: list = dataclasses.field(default_factory=list)  # [select, reduction] of raise-attention's row guard
    narrow: object = None  # the truncf of an f32 result back to the kernel's type, folded into O
    out_transpose: list = dataclasses.field(default_factory=list)  # [collapse_shape?, transpose] folded into O
    in_sources: list = dataclasses.field(default_factory=lambda: [None] * 3)  # Q/K/V read before a transpose
    in_rows: list = dataclasses.field(default_factory=lambda: [False] * 3)  # their fa_layouts entries
    kv_batch_len: int = 0
    kernel: object = None  # triton_fa.KernelBinary


def analyze(op, dtypes: tuple = KERNEL_DTYPES, head_dims=HEAD_DIMS, head_dims_text: str = "64 or 128") -> Plan:
    """The static checks: element types, shapes, layouts, scale, region. Raises NotCovered.
    dtypes, head_dims: what the kernel takes (the CUDA kernel's by default; the CPU
    kernel's are cpu_dispatch.py's)."""
    operation = op.operation
    if len(operation.attributes["indexing_maps"]) not in (5, 6) or len(operation.operands) not in (5, 6):
        raise NotCovered("unexpected attention op form")
    view = AttentionOp.of(op)
    scale, mask = view.values["scale"], view.values.get("mask")
    dims = _static_dims(view)
    dtype = _element_type(view, dtypes)
    m, k1, k2, n, q_batch, kv_batch = _kernel_layout(view, dims)
    sizes = view.sizes
    if sizes[k1] != sizes[n]:
        raise NotCovered(f"head dims differ (k1={sizes[k1]}, n={sizes[n]})")
    if sizes[k1] not in head_dims:
        raise NotCovered(f"head dim {sizes[k1]} (kernel: {head_dims_text})")
    scale_value = _constant_float(scale)
    if scale_value is None:
        raise NotCovered("the scale is not a compile-time constant")
    region = operation.regions[0].blocks[0]
    body = list(region.operations)
    if len(body) != 1 or len(body[0].operands) != 1 or body[0].operands[0] != region.arguments[0]:
        raise NotCovered("the op has a non-identity score region")

    qb = [sizes[d] for d in q_batch]
    kvb = [sizes[d] for d in kv_batch]
    # Kernel indexing: bh = b * H + h, kv index = b * KVH + h // (H // KVH). With Q's batch
    # dims (b, rest...) and K's a prefix of them this is exact on the row-major memory.
    if len(qb) >= 2 and len(kvb) >= 1:
        batch, heads, kv_heads = qb[0], math.prod(qb[1:]), math.prod(kvb[1:])
    else:
        batch, heads, kv_heads = 1, math.prod(qb), math.prod(kvb)
    plan = Plan(op=op, location=str(operation.location), dtype=dtype, batch=batch, heads=heads,
                kv_heads=kv_heads, sq=sizes[m], skv=sizes[k2], head_dim=sizes[k1], scale=scale_value,
                q_batch_sizes=qb, kv_batch_len=len(kvb))
    if mask is not None:
        plan.mask = mask
        plan.mask_roles = mask_roles(dims["mask"], m, k2, q_batch)
        if plan.mask_roles is None:
            raise NotCovered("the mask varies along a dim that is not batch, m or k2")
        if key_padding_mask_type(plan) is None and full_mask_type(plan) is None and head_mask_type(plan) is None \
                and math.prod(ir.RankedTensorType(mask.type).shape) > MAX_MASK_ELEMENTS:
            raise NotCovered("mask too large to evaluate at compile time")  # (a run-time mask: any size)
    return plan


def _static_dims(view: AttentionOp) -> dict:
    """Per operand ("Q", "K", "V", "O", "mask"): the loop dim of each of its dims, for
    ranked, static operands indexed by loop dims only."""
    names = {"Q": "q", "K": "k", "V": "v", "O": "o"}
    if view.values.get("mask") is not None:
        names["mask"] = "mask"
    dims = {}
    for name, key in names.items():
        value = view.values[key]
        if not isinstance(value.type, ir.RankedTensorType):
            raise NotCovered(f"{name} is not a ranked tensor")
        t = ir.RankedTensorType(value.type)
        if not t.has_static_shape:
            raise NotCovered(f"dynamic shape of {name} ({t})")
        if None in view.dims[key]:
            expr = view.maps[{"q": 0, "k": 1, "v": 2, "mask": 4, "o": -1}[key]].results[view.dims[key].index(None)]
            raise NotCovered(f"{name} is indexed by {expr}, not a loop dim")
        dims[name] = view.dims[key]
    return dims


def _element_type(view: AttentionOp, dtypes: tuple) -> str:
    """The kernel's element type: Q's, which K and V share; O in it or in f32."""
    elt = {n: view.element_type(n.lower()) for n in ("Q", "K", "V", "O")}
    if elt["Q"] not in dtypes:
        raise NotCovered(f"element type {elt['Q']} (kernel: {', '.join(dtypes)})")
    if elt["K"] != elt["Q"] or elt["V"] != elt["Q"]:
        raise NotCovered(f"mixed element types Q {elt['Q']}, K {elt['K']}, V {elt['V']}")
    if elt["O"] not in (elt["Q"], "f32"):
        raise NotCovered(f"result element type {elt['O']} for {elt['Q']} inputs")
    return elt["Q"]


def _kernel_layout(view: AttentionOp, dims: dict) -> tuple:
    """The loop dims m, k1, k2, n and Q's and K's batch dims, where the operands are laid out
    as the kernel reads them: Q (batch..., m, k1), K (kv batch..., k2, k1), V (kv batch...,
    k2, n), O (batch..., m, n), K's batch dims leading Q's (the other m dims of a
    grouped-query op, its group, are query batch dims)."""
    qd, kd, vd, od = dims["Q"], dims["K"], dims["V"], dims["O"]
    r = view.roles
    if not (len(r["k1"]) == len(r["k2"]) == len(r["n"]) == 1) or len(qd) < 2:
        raise NotCovered("the op's maps do not have exactly one k1, k2 and n dim")
    k1, k2, n = r["k1"][0], r["k2"][0], r["n"][0]
    if not r["m"]:
        raise NotCovered("the op's maps have no query dim")
    m = view.query_dim()
    q_batch, kv_batch = qd[:-2], kd[:-2]
    if qd[-2:] != [m, k1]:
        raise NotCovered(f"Q layout {_layout(qd, m, n, k1, k2)}: the kernel needs (batch..., m, k1) contiguous")
    if kd[-2:] != [k2, k1]:
        raise NotCovered(f"K layout {_layout(kd, m, n, k1, k2)}: the kernel needs (batch..., k2, k1) contiguous")
    if vd[-2:] != [k2, n]:
        raise NotCovered(f"V layout {_layout(vd, m, n, k1, k2)}: the kernel needs (batch..., k2, n) contiguous")
    if od != q_batch + [m, n]:
        raise NotCovered(f"O layout {_layout(od, m, n, k1, k2)} does not follow Q's (batch..., m, n)")
    if vd[:-2] != kv_batch:
        raise NotCovered("K and V have different batch dims")
    if q_batch[:len(kv_batch)] != kv_batch:
        raise NotCovered("K/V batch dims are not leading batch dims of Q (kv head = q head // ratio)")
    return m, k1, k2, n, q_batch, kv_batch


def mask_roles(mask_dims: list, m: int, k2: int, q_batch: list) -> Optional[list]:
    """Per mask dim: "m", "k2" or its position among Q's batch dims; None if the mask varies
    along another loop."""
    roles = []
    for d in mask_dims:
        if d == m:
            roles.append("m")
        elif d == k2:
            roles.append("k2")
        elif d in q_batch:
            roles.append(q_batch.index(d))
        else:
            return None
    return roles


def _layout(ds: list, m: int, n: int, k1: int, k2: int) -> str:
    names = {m: "m", n: "n", k1: "k1", k2: "k2"}
    return "(" + ", ".join(names.get(d, f"b{d}") for d in ds) + ")"


def _constant_float(value) -> Optional[float]:
    owner = value.owner
    if isinstance(owner, ir.Block) or owner.operation.name != "arith.constant":
        return None
    attr = owner.operation.attributes["value"]
    return float(ir.FloatAttr(attr).value) if isinstance(attr, ir.FloatAttr) else None
