"""Attach the lowering configuration chosen for the target to each attention op.

The per-target choice lives in lowering_cpu.py / lowering_gpu.py (heuristics) and
tuning_db.json (measured winners, see tuning.py); this module reads each op's shape from its operands and indexing maps
and sets the attributes they return.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Optional

from iree.compiler import ir

from flashlift.compiler import tuning
from flashlift.compiler.lowering_cpu import cpu_attention_attrs
from flashlift.compiler.lowering_gpu import gpu_attention_attrs
from flashlift.compiler.tuning import CPU_KNOBS, GPU_KNOBS
from flashlift.errors import InputError
from flashlift.passes.attention_op import AttentionOp, map_loop_dims, roles_of_maps
from flashlift.passes.ir import collect, float_constant, tensor_dim

# What `override` set for the current context: {"knobs": dict | None, "use_db": bool}.
_OVERRIDE: contextvars.ContextVar = contextvars.ContextVar("flashlift_lowering_override", default=None)


@contextlib.contextmanager
def override(knobs: Optional[dict] = None, *, use_db: bool = True):
    """Force the lowering knobs of every attention op compiled inside the block::

        with lowering.override({"m_vec": 8, "k2_vec": 16}):        # CPU
            flashlift.compile_model(model, args)
        with lowering.override({"m_tile": 64, "k2_tile": 32, "num_subgroups": 4}):
            flashlift.compile_model(model, args, target="cuda")
        with lowering.override(use_db=False) as seen:              # the heuristic alone
            ...
        seen  # [{"shape": attention_shape(op), "attrs": {...}}] for each op annotated inside

    Knobs are the keyword overrides of ``cpu_attention_attrs`` / ``gpu_attention_attrs``;
    forced knobs bypass the tuning database, and knobs the heuristic cannot honour for a
    shape give ``{}`` (IREE's default) rather than the heuristic, so a candidate is never
    silently replaced by another one. ``{"iree_default": True}`` forces IREE's own default.
    """
    seen: list = []
    token = _OVERRIDE.set({"knobs": None if knobs is None else dict(knobs), "use_db": use_db, "seen": seen})
    try:
        yield seen
    finally:
        _OVERRIDE.reset(token)


def dispatch_roles(maps: list, sizes: list) -> list:
    """The role of each dim of the attention op as IREE's codegen sees it, after its dispatch
    formation drops unit dims and collapses dims that every operand reads together:
    consecutive loops read by the same operands, adjacent and in order in each of them,
    become one dim. Roles: "batch", "m_outer" (a query dim before the query sequence, e.g. a
    grouped-query group a mask does not read), "m", "n", "k1", "k2". A lowering config's
    tile lists have one entry per element; they are attached to the op as emitted and IREE
    copies them verbatim, so this rank must be exact (a shifted list tiles k1 and computes a
    wrong softmax)."""
    r = roles_of_maps(maps)
    operand_dims = [[d for d in map_loop_dims(m) if d is not None] for m in maps if len(m.results)]
    role_of = {}
    for role in ("batch", "m", "n", "k1", "k2"):
        for d in r[role]:
            role_of[d] = role
    groups: list = []
    for d in range(maps[0].n_dims):
        if sizes[d] == 1:
            continue
        readers = tuple(i for i, ds in enumerate(operand_dims) if d in ds)
        last = groups[-1] if groups else None
        if (last is not None and last["readers"] == readers and role_of.get(d) == last["role"]
                and all(operand_dims[i].index(d) == operand_dims[i].index(last["dims"][-1]) + 1 for i in readers)):
            last["dims"].append(d)
        else:
            groups.append({"readers": readers, "role": role_of.get(d), "dims": [d]})
    out = [g["role"] for g in groups]
    m_groups = [i for i, role in enumerate(out) if role == "m"]
    for i in m_groups[:-1]:
        out[i] = "m_outer"
    return out


def attention_shape(op) -> dict:
    """{"batch": [...], "m", "n", "k1", "k2", "elem_type", "has_mask"} of an attention op."""
    view = AttentionOp.of(op)
    sizes, r = view.sizes, view.roles
    q, k, v, o, k1, k2, m, n, batch = (r[x] for x in ("q", "k", "v", "o", "k1", "k2", "m", "n", "batch"))
    one = lambda ds: sizes[ds[0]] if len(ds) == 1 else None
    mask_batch = [batch.index(d) for d in view.dims["mask"] if d in batch] if view.has_mask else []
    canonical = (q == batch + m + k1 and k[: len(batch)] == batch and k[len(batch):] in (k2 + k1, k1 + k2)
                 and v == batch + k2 + n and o == batch + m + n)
    return {
        "dispatch_roles": dispatch_roles(view.maps, sizes),
        "canonical": canonical,  # Q, K, V, O
        "k_transposed": k[len(batch):] == k1 + k2,
        "batch": [sizes[d] for d in batch], "m": one(m), "n": one(n), "k1": one(k1), "k2": one(k2),
        "elem_type": view.element_type("q"),
        "has_mask": view.has_mask,
        "mask_batch_dims": mask_batch,
    }


def configs_for(shape: dict, target, knobs: Optional[dict] = None, *, use_db: bool = True) -> dict:
    """Attribute name -> attribute text for one attention op on `target` ({} = IREE default).

    Order: forced `knobs` (or those of an enclosing `override`), else the tuning database
    (compiler/tuning_db.json) entry for the shape's class, else the heuristics. A database
    entry whose knobs do not fit this exact shape falls back to the heuristics.
    """
    forced = _OVERRIDE.get()
    if knobs is None and forced is not None:
        knobs, use_db = forced["knobs"], forced["use_db"]
    dynamic = None in (shape["m"], shape["n"], shape["k1"], shape["k2"]) or None in shape["batch"]
    if dynamic and target.kind != "cpu":
        return {}  # dynamic shapes on GPUs: IREE's own heuristics
    if not shape["canonical"]:
        # The configs' tile lists index the dispatch's dims after IREE collapses the batch
        # dims, which it only does when every operand has them leading, in the same order
        # (compiler/layout.py makes them so). Elsewhere a config would tile the wrong dims:
        # keep IREE's (slower, correct) default. A mask that reads only some batch dims
        # splits them: the CPU configs take the exact dispatch dims (dispatch_roles), the
        # GPU ones count batch runs (lowering_gpu.effective_batch_rank).
        return {}
    if knobs is not None:
        return {} if knobs.get("iree_default") else _heuristic(shape, target, knobs)
    if use_db and not dynamic and target.kind in ("cpu", "cuda", "rocm"):
        tuned = tuning.lookup(shape, target)
        if tuned:
            attrs = _heuristic(shape, target, tuned)
            if attrs:
                return attrs
    return _heuristic(shape, target, {})


def _heuristic(shape: dict, target, knobs: dict) -> dict:
    allowed = CPU_KNOBS if target.kind == "cpu" else GPU_KNOBS
    unknown = sorted(set(knobs) - set(allowed))
    if unknown:
        raise InputError(f"unknown lowering knob(s) {', '.join(unknown)} for target {target.name}; "
                         f"known: {', '.join(allowed)}")
    if target.kind == "cpu":
        return cpu_attention_attrs(shape["batch"], shape["m"], shape["k1"], shape["k2"], shape["n"], shape["elem_type"],
                                   k_transposed=bool(shape.get("k_transposed")),
                                   dispatch_roles=shape.get("dispatch_roles"), **knobs)
    if target.kind in ("cuda", "rocm"):
        return gpu_attention_attrs(target.arch, shape["batch"], shape["m"], shape["k1"], shape["k2"], shape["n"],
                                   shape["elem_type"], shape["has_mask"], mask_batch_dims=shape["mask_batch_dims"],
                                   **knobs)
    return {}


def annotate(module, target) -> list:
    """Sets the chosen attributes on every iree_linalg_ext.attention; returns what was set."""
    chosen = []
    for op in collect(module, "iree_linalg_ext.attention"):
        shape = attention_shape(op.operation)
        attrs = configs_for(shape, target)
        state = _OVERRIDE.get()
        if state is not None:
            state["seen"].append({"shape": shape, "attrs": attrs})
        for name, text in attrs.items():
            op.operation.attributes[name] = ir.Attribute.parse(text, module.context)
        if attrs:  # keep IREE from folding a transpose or mask producer into this dispatch
            from flashlift.compiler.layout import fence  # here: layout imports this module (a cycle)

            with module.context:
                fence(op)
        chosen.append(attrs)
    return chosen


def mask_dynamic_keys(module) -> int:
    """Gives every mask-less attention op with a dynamic key length a zero mask over k2.

    IREE 3.13's GPU codegen pads a dynamic key dim to its tile only through the mask
    ("Padding OnlineAttention without existing mask is not yet supported"); without one it
    falls back to a pipeline that computed wrong results on an H200. The zero mask ([k2],
    f32) changes nothing in the math and lets the padded keys be masked out."""
    count = 0
    for op in collect(module, "iree_linalg_ext.attention"):
        view = AttentionOp.of(op)
        if view.has_mask:
            continue
        k, k2 = view.values["k"], view.one("k2")
        if k2 is None or not ir.RankedTensorType(k.type).is_dynamic_dim(view.dims["k"].index(k2)):
            continue
        if len(op.operation.regions[0].blocks[0].operations) != 1:  # a score region of its own
            continue
        maps = view.maps
        with ir.InsertionPoint(op), op.operation.location:
            size = tensor_dim(k, view.dims["k"].index(k2))
            f32 = ir.F32Type.get()
            mtype = ir.RankedTensorType.get([ir.ShapedType.get_dynamic_size()], f32)
            empty = ir.Operation.create("tensor.empty", results=[mtype], operands=[size]).results[0]
            zero = float_constant(0.0, f32)
            mask = ir.Operation.create("linalg.fill", results=[mtype], operands=[zero, empty],
                                       attributes={"operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 1])},
                                       regions=1)
            block = mask.regions[0].blocks.append(f32, f32)
            with ir.InsertionPoint(block):
                ir.Operation.create("linalg.yield", operands=[block.arguments[0]])
        operands = list(op.operation.operands)
        with op.operation.location:
            new_maps = maps[:4] + [ir.AffineMap.get(view.n_loops, 0, [ir.AffineDimExpr.get(k2)])] + maps[4:]
        attrs = {name: op.operation.attributes[name] for name in op.operation.attributes}
        attrs["indexing_maps"] = ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in new_maps])
        with ir.InsertionPoint(op), op.operation.location:
            new = ir.Operation.create("iree_linalg_ext.attention", results=[r.type for r in op.operation.results],
                                      operands=operands[:4] + [mask.results[0]] + operands[4:], attributes=attrs, regions=1)
        with op.operation.location:
            block = new.regions[0].blocks.append(ir.F32Type.get())  # the score region raise-attention builds
        with ir.InsertionPoint(block), op.operation.location:
            ir.Operation.create("iree_linalg_ext.yield", operands=[block.arguments[0]])
        op.operation.results[0].replace_all_uses_with(new.results[0])
        op.operation.erase()
        count += 1
    return count
