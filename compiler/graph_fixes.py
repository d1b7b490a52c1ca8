"""Rewrites of the exported FX graph before torch-mlir's FX importer sees it, and where a
node came from (its module path and the user's source line, for locations and messages).

In the order the importer applies them (compiler/importer.py: _import_exported):
- refuse_data_dependent_sizes: an op whose output size depends on the input values is an
  ImportError_ naming the op and its line (torch-mlir would lower it without bound).
- remove_dropout: every dropout becomes the identity (inference semantics), SDPA's dropout_p
  becomes 0; each removal is a RemovedDropout for the report.
- views_as_reshapes: views become reshapes (a view of a tensor that stops being contiguous
  once SDPA is decomposed cannot be re-traced).
- collapse_dynamic_views (dynamic shapes only, after the decomposition): views that merge
  dynamic dims become prims.collapse, which torch-mlir 20261001 lowers right.
- copy_frozen_list_operands: a weight or buffer inside an op's list operand is given a copy,
  which the FX importer accepts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

from flashlift.errors import ImportError_

DROPOUT_OPS = ("aten.dropout.default", "aten.native_dropout.default", "aten.feature_dropout.default",
               "aten.alpha_dropout.default", "aten.feature_alpha_dropout.default")


@dataclass
class RemovedDropout:
    module_path: str
    p: float
    training: bool
    source: str
    how: str = ""  # how the report names it, when not a dropout op ("SDPA dropout_p")


def module_path(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return re.sub(r"^L__self___|^L\['self'\]\.?", "", str(path)).replace("_modules['", "").replace("']", "")


# Frames that are never where the user wrote an op: torch itself, and the wrapper with which the
# Hugging Face `kernels` package stands in for a model's functions (transformers 5 wraps
# apply_rotary_pos_emb so; the trace then ends in the wrapper, not in the function's body)
_NOT_USER = (os.sep + "torch" + os.sep, os.sep + os.path.join("kernels", "_internals") + os.sep)


def user_frame(node) -> tuple[str, int]:
    """Innermost stack frame outside torch and library wrappers: where the user wrote the op."""
    trace = node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line ([0-9]+)', trace)
    user = [f for f in frames if not any(d in f[0] for d in _NOT_USER)]
    f = (user or frames or [("unknown", 0)])[-1]
    return f[0], int(f[1])


SDPA_OPS = ("aten.scaled_dot_product_attention.default",)


def _remove_sdpa_dropout(node) -> Optional[float]:
    """SDPA's `dropout_p` (its 5th argument) applies in any mode: set it to 0, return p."""
    p = node.args[4] if len(node.args) > 4 else node.kwargs.get("dropout_p", 0.0)
    if not isinstance(p, (int, float)) or not p:
        return None
    if len(node.args) > 4:
        node.args = node.args[:4] + (0.0,) + node.args[5:]
    else:
        node.kwargs = dict(node.kwargs, dropout_p=0.0)
    return float(p)


def remove_dropout(ep) -> list:
    removed = []
    graph = ep.graph_module.graph
    for node in list(graph.nodes):
        if node.op == "call_function" and str(node.target) in SDPA_OPS:
            p = _remove_sdpa_dropout(node)
            if p is not None:
                file, line = user_frame(node)
                removed.append(RemovedDropout(module_path(node) or "<top>", p, True, f"{file}:{line}",
                                              how="scaled_dot_product_attention(dropout_p=...)"))
            continue
        if node.op != "call_function" or str(node.target) not in DROPOUT_OPS:
            continue
        p = float(node.args[1]) if len(node.args) > 1 else 0.0
        training = bool(node.args[2]) if len(node.args) > 2 else False
        file, line = user_frame(node)
        removed.append(RemovedDropout(module_path(node) or "<top>", p, training, f"{file}:{line}"))
        if str(node.target) == "aten.native_dropout.default":
            # returns (output, mask): use the input for the output, keep the mask unused
            for user in list(node.users):
                if user.target.__name__ == "getitem" and user.args[1] == 0:
                    user.replace_all_uses_with(node.args[0])
                    graph.erase_node(user)
            if not node.users:
                graph.erase_node(node)
            continue
        node.replace_all_uses_with(node.args[0])
        graph.erase_node(node)
    ep.graph_module.recompile()
    return removed


def refuse_data_dependent_sizes(ep, name: str) -> None:
    """An op whose output size depends on the input values (`x[x > 0]`, `nonzero`, `unique`,
    `.item()` used as a size) gets an unbacked symbol from torch.export (`u0`); torch-mlir
    lowers such graphs without bound (17 GB and counting for `x[x > 0]`). Refused, naming the
    first such op and where the model wrote it."""
    for node in ep.graph.nodes:
        bound = node.meta.get("unbacked_bindings")
        if node.op != "call_function" or not bound:
            continue
        file, line = user_frame(node)
        symbols = ", ".join(sorted(str(s) for s in bound))
        where = f" in {module_path(node)}" if module_path(node) else ""
        raise ImportError_(f"{name}: {node.target} at {file}:{line}{where} gives a size that depends on the input "
                           f"values ({symbols}: boolean-mask indexing, nonzero, unique, .item() as a size, ...); "
                           "flashlift compiles sizes known from the input shapes only: write it with a fixed-size "
                           "op (torch.where, masked_fill, a multiply by the mask)")


VIEW_OPS = ("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default")


def _collapse_groups(src: list, dst: list):
    """For a view from `src` to `dst` sizes (ints or sympy expressions) that only merges
    consecutive dims: the groups of source dims, else None."""
    import sympy

    groups, i = [], 0
    for want in dst:
        group, have = [], sympy.Integer(1)
        while i < len(src) and (not group or sympy.expand(have - want) != 0):
            group.append(i)
            have *= src[i]
            i += 1
        if sympy.expand(have - want) != 0:
            return None
        groups.append(group)
    while i < len(src) and src[i] == 1:  # trailing unit dims join the last group
        groups[-1].append(i)
        i += 1
    return groups if i == len(src) and groups else None


def collapse_dynamic_views(ep) -> None:
    """`x.view(b * s, 64)` with b and s dynamic (every nn.Linear on a (b, s, 64) input) is
    lowered wrongly by torch-mlir 20261001: it collapses as if s were 1, also when spelt
    with -1. Its `prims.collapse` lowering is right (tensor.collapse_shape): views that only
    merge dims, some of them dynamic, are rewritten to that."""
    import sympy
    import torch

    def size(d):
        return sympy.sympify(d.node.expr) if isinstance(d, torch.SymInt) else sympy.Integer(d)

    graph = ep.graph_module.graph
    changed = False
    for node in list(graph.nodes):
        if node.op != "call_function" or str(node.target) not in VIEW_OPS:
            continue
        src_val, out_val = node.args[0].meta.get("val"), node.meta.get("val")
        if src_val is None or out_val is None:
            continue
        groups = _collapse_groups([size(d) for d in src_val.shape], [size(d) for d in out_val.shape])
        if groups is None or not any(len(g) > 1 and any(not isinstance(src_val.shape[k], int) for k in g)
                                     for g in groups):
            continue
        value, fake = node.args[0], src_val
        with graph.inserting_before(node):
            for g in reversed(groups):
                if len(g) < 2:
                    continue
                fake = torch.ops.prims.collapse.default(fake, g[0], g[-1])
                value = graph.call_function(torch.ops.prims.collapse.default, (value, g[0], g[-1]))
                value.meta.update({k: v for k, v in node.meta.items() if k in ("stack_trace", "nn_module_stack")})
                value.meta["val"] = fake
        node.replace_all_uses_with(value)
        graph.erase_node(node)
        changed = True
    if changed:
        graph.eliminate_dead_code()
        ep.graph_module.recompile()


def views_as_reshapes(ep) -> None:
    """torch.export records `x.view(...)` where x was contiguous as exported: after SDPA is
    decomposed to matmuls its result is a permuted tensor (GPT-2's `attn_output` then
    `c_proj`'s `x.view(-1, h)`), and re-tracing the view fails ("Cannot view a tensor with
    shape ... and strides ..."); the model's `.contiguous()` was a no-op when exported and is
    not in the graph. The graph is functional, so a view and a reshape compute the same
    value: every view becomes a reshape, which the decomposition turns back into a view
    where the strides allow it and into a copy and a view where they do not."""
    import torch

    graph = ep.graph_module.graph
    changed = False
    for node in graph.nodes:
        if node.op == "call_function" and node.target is torch.ops.aten.view.default:
            node.target = torch.ops.aten.reshape.default
            changed = True
    if changed:
        ep.graph_module.recompile()


def _frozen_inputs(ep) -> set:
    """Names of the placeholders the FX importer replaces by their tensors (weights, buffers,
    lifted constants)."""
    sig = ep.graph_signature
    return set(sig.inputs_to_parameters) | set(sig.inputs_to_buffers) | set(sig.inputs_to_lifted_tensor_constants)


def copy_frozen_list_operands(ep) -> None:
    """The FX importer replaces weights and buffers by literal tensors, and then refuses an
    op whose list operand holds one ("Heterogeneous lists are not supported: expected vtensor,
    got torch.Tensor"): `table[index]` with a frozen index buffer (Swin's relative position
    bias) is `aten.index.Tensor(table, [index])`. Such list elements are given a copy
    (`aten.clone`) of the tensor, a graph value the importer accepts (IREE folds the copy)."""
    import torch

    frozen = _frozen_inputs(ep)
    graph = ep.graph_module.graph
    copies: dict = {}

    def copied(value, before):
        if not (isinstance(value, torch.fx.Node) and value.op == "placeholder" and value.name in frozen):
            return value
        if value not in copies:
            with graph.inserting_before(before):
                copies[value] = graph.call_function(torch.ops.aten.clone.default, (value,))
            copies[value].meta.update({k: v for k, v in value.meta.items() if k == "val"})
            copies[value].meta.update({k: v for k, v in before.meta.items() if k in ("stack_trace", "nn_module_stack")})
        return copies[value]

    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        args = tuple([copied(v, node) for v in a] if isinstance(a, (list, tuple)) else a for a in node.args)
        if args != node.args:
            node.args = args
    if copies:
        ep.graph_module.recompile()
