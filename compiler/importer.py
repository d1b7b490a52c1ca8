"""Import: a PyTorch nn.Module + example inputs -> linalg-on-tensors MLIR text.

torch.export captures the model (in eval mode) called with the example positional and
keyword inputs, dropout is made the identity (inference semantics, also for `F.dropout(x, p)`
whose default is training=True), then torch-mlir's FX importer lowers it to linalg. Every
op's location is `loc("<module path>"("<file>":<line>:0))`: the PyTorch module that owns it
and the user source line that created it, so the report and diagnostics lead back to the model.

The imported function takes the tensor inputs in torch.export's order (`Imported.inputs`
names each) and returns the tensor outputs only; `Imported.outputs` describes how they nest
in what the model returns (flashlift.structure), constants included. Graph rewrites before
the FX importer (compiler/graph_fixes.py), for what torch-mlir 20261001 rejects or lowers wrongly: views become
reshapes (a view of a tensor that stops being contiguous after decomposition), frozen tensors
in op lists are passed through a copy, and views of dynamic sizes become `prims.collapse`.

Refused before torch-mlir sees them, with an error naming the input or the op: example inputs
with a 0 in a dim (torch-mlir's lowering divides by it: SIGFPE), and ops whose output size
depends on the input values (unbacked sizes such as `x[x > 0]`: torch-mlir lowers them without
bound). torch.export and torch-mlir keep process-wide state while they run, so one import runs
at a time (`IMPORT_LOCK`): `compile_model` may be called from several threads.
"""

from __future__ import annotations

import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from flashlift.compiler.graph_fixes import (collapse_dynamic_views, copy_frozen_list_operands, module_path,
                                            refuse_data_dependent_sizes, remove_dropout, user_frame,
                                            views_as_reshapes)
from flashlift.errors import ImportError_, InputError
from flashlift.progress import stage

#: Held while a model is exported and lowered: torch.export (non-strict) patches torch's
#: module hierarchy and dispatch modes process-wide, so two exports at once fail each other.
IMPORT_LOCK = threading.Lock()


@dataclass
class Imported:
    text: str
    func_name: str
    dropouts: list = field(default_factory=list)
    input_dims: list = field(default_factory=list)  # per input, per dim: size or symbol name
    inputs: list = field(default_factory=list)  # per function input: {"name", "keyword"}
    constants: dict = field(default_factory=dict)  # keyword inputs compiled as constants
    outputs: dict = field(default_factory=dict)  # flashlift.structure tree of the results
    notes: list = field(default_factory=list)  # what the import chose for the user
    parameters: dict = field(default_factory=dict)  # state-dict name -> tensor, left out of the IR


#: Keyword input values that are compiled in as constants (torch.export specialises them).
CONSTANT_KWARG_TYPES = (type(None), bool, int, float, str)


def check_example_kwargs(kwargs) -> dict:
    """Keyword inputs: a dict of name -> tensor (an input of the compiled module) or constant."""
    import torch

    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise InputError(f"kwargs must be a dict of name -> torch.Tensor, got {type(kwargs).__name__}")
    for k, v in kwargs.items():
        if not isinstance(k, str):
            raise InputError(f"kwargs keys must be argument names (str), got {k!r}")
        if not isinstance(v, (torch.Tensor,) + CONSTANT_KWARG_TYPES):
            # (a transformers Cache: the decode step of generation, which flashlift does not compile)
            cache = ("; a KV cache is not an input flashlift compiles: compile the forward without it "
                     "(one forward over the whole sequence, use_cache=False)") if type(v).__name__.endswith("Cache") else ""
            raise InputError(f"kwargs[{k!r}] is a {type(v).__name__}, expected a torch.Tensor or a constant "
                             f"(None, bool, int, float, str){cache}")
        if isinstance(v, torch.Tensor):
            _check_sizes(v, f"kwargs[{k!r}]")
    return dict(kwargs)


def check_example_args(example_args: Sequence[Any]) -> tuple:
    import torch

    if isinstance(example_args, torch.Tensor):
        example_args = (example_args,)
    if not isinstance(example_args, (tuple, list)):
        raise InputError(f"example_args must be a tuple of torch.Tensor, got {type(example_args).__name__}")
    for i, a in enumerate(example_args):
        if not isinstance(a, torch.Tensor):
            raise InputError(f"example_args[{i}] is a {type(a).__name__}, expected a torch.Tensor")
        _check_sizes(a, f"example_args[{i}]")
    return _unaliased(tuple(example_args))


def _check_sizes(t, label: str) -> None:
    """Refuses an example input with a 0 in a dim: torch-mlir's lowering of the ops on it
    divides by that size (the process dies of SIGFPE), and a module of empty tensors computes
    nothing."""
    if 0 in t.shape:
        dim = list(t.shape).index(0)
        raise InputError(f"{label} has size 0 in dim {dim} (shape {list(t.shape)}): flashlift compiles example "
                         "inputs with at least one element along every dim; give inputs of the sizes the model "
                         "will be called with")


def _unaliased(args: tuple) -> tuple:
    """torch.export gives arguments that share memory one placeholder and the other parameters
    go unused, so a model exported with `(q, q, q)` would read q for k and v on every later
    call. Example inputs only carry shapes and dtypes: give each its own storage."""
    seen = set()
    out = []
    for a in args:
        key = a.untyped_storage().data_ptr() if a.numel() else None
        out.append(a.clone() if key in seen else a)
        if key is not None:
            seen.add(key)
    return tuple(out)


def _install_locations(importer) -> None:
    """Makes the FX importer emit loc("module.path"("file":line:0)) for each node."""
    from torch_mlir.extras.fx_importer import ContextCache
    from torch_mlir.ir import Location

    class LocatingCache(ContextCache):
        __slots__ = []

        def get_node_location(self, node):
            file, line = user_frame(node)
            base = Location.file(file, line, 0, context=self._c)
            return Location.name(module_path(node) or "<top>", childLoc=base, context=self._c)

    importer._cc = LocatingCache(importer._c, py_attr_tracker=importer._py_attr_tracker)


def import_model(model, example_args: Sequence[Any], *, kwargs: Optional[dict] = None,
                 dynamic_shapes: Optional[Any] = None, func_name: str = "main",
                 parameters: str = "archive") -> Imported:
    """Exports `model(*example_args, **kwargs)` (in eval mode) and lowers it to linalg-on-tensors.

    parameters="archive": the model's parameters (and floating buffers of at least
    BUFFER_PARAMETER_BYTES) stay out of the IR, as `dense_resource<"flashlift_param.NAME">`
    handles without data (flashlift.compiler.literals), which the externalize-parameters pass
    makes IREE parameters; "inline": every tensor is a constant
    in the IR (its bytes printed in the text)."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    args = check_example_args(example_args)
    kwargs, notes = default_kwargs(model, check_example_kwargs(kwargs))
    with IMPORT_LOCK:
        return _import_locked(model, args, kwargs, notes, dynamic_shapes, func_name, parameters)


def _import_locked(model, args: tuple, kwargs: dict, notes: list, dynamic_shapes, func_name: str,
                   parameters: str) -> Imported:
    """import_model's work, under IMPORT_LOCK."""
    import torch

    tensors = _unaliased(args + tuple(v for v in kwargs.values() if isinstance(v, torch.Tensor)))
    args, kwargs = tensors[:len(args)], _with_tensors(kwargs, tensors[len(args):])
    model.eval()
    name = type(model).__name__
    try:
        with stage(f"torch.export of {name}"):
            ep = _export(model, args, kwargs, dynamic_shapes)
        with stage("torch-mlir import to linalg"):
            return _import_exported(ep, model, notes, func_name, dynamic_shapes, parameters)
    finally:
        _forget_export_proxies()   # (the export and the decompositions' trace leave it filled)


def _import_exported(ep, model, notes: list, func_name: str, dynamic_shapes, parameters: str) -> Imported:
    """import_model's second half: the exported program to linalg on tensors."""
    from torch_mlir import fx
    from torch_mlir import ir as tm_ir
    from torch_mlir.dialects import torch as torch_d
    from torch_mlir.extras.fx_decomp_util import get_decomposition_table
    from torch_mlir.extras.fx_importer import FxImporter

    from flashlift.compiler.literals import LiteralHooks

    name = type(model).__name__
    refuse_data_dependent_sizes(ep, name)
    dropouts = remove_dropout(ep)
    views_as_reshapes(ep)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            ep = ep.run_decompositions(get_decomposition_table())
    except Exception as e:
        raise ImportError_(f"torch-mlir could not decompose {name}'s ops: {_first_line(e)}") from None
    if dynamic_shapes is not None:
        collapse_dynamic_views(ep)
    copy_frozen_list_operands(ep)
    inputs, constants = _user_inputs(ep, model)
    outputs = _tensor_outputs(ep)
    input_dims = _input_dims(ep)
    context = tm_ir.Context()
    torch_d.register_dialect(context)
    hooks = LiteralHooks(ep, external=parameters == "archive")
    # (config_check logs through the root logger, whose implicit basicConfig would then print
    # every library's log records on stderr: the torch dialect is registered just above)
    importer = FxImporter(context=context, hooks=hooks, config_check=False)
    _install_locations(importer)
    errors = _LoweringErrors(context)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = fx.export_and_import(ep, output_type="linalg-on-tensors", fx_importer=importer,
                                          func_name=func_name, decomposition_table={})
    except Exception as e:
        raise ImportError_(f"torch-mlir could not lower {name} to linalg: {errors.first or _first_line(e)}") from None
    finally:
        errors.detach()
    if any(isinstance(d, str) for dims in input_dims for d in dims):
        _annotate_input_dims(module, func_name, input_dims)
    text = module.operation.get_asm(enable_debug_info=True, large_elements_limit=None)
    return Imported(text, func_name, dropouts, input_dims, inputs, constants, outputs, notes, hooks.external)


def _with_tensors(kwargs: dict, tensors: tuple) -> dict:
    """`kwargs` with its tensor values replaced, in order, by `tensors`."""
    import torch

    it = iter(tensors)
    return {k: next(it) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}


def default_kwargs(model, kwargs: dict) -> tuple:
    """Keyword inputs the user left out that flashlift sets, and a note for each. A decoder's
    default use_cache=True returns a KV cache object (DynamicCache) that torch.export cannot
    capture; one forward is compiled, so the cache is left out (use_cache=False)."""
    import inspect

    notes = []
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return kwargs, notes
    config = getattr(model, "config", None)
    if "use_cache" in params and "use_cache" not in kwargs and getattr(config, "use_cache", True) is not False:
        kwargs = dict(kwargs, use_cache=False)
        notes.append("use_cache: the KV cache is not returned (a single forward; use_cache=False was passed)")
    return kwargs, notes


def _export(model, args: tuple, kwargs: dict, dynamic_shapes):
    """torch.export of the model in eval mode, its non-persistent buffers made persistent for
    the importer meanwhile (the user's module is left as it was)."""
    import torch

    from flashlift.compiler.export_fixes import make_buffers_persistent

    name = type(model).__name__
    saved = {sub: set(sub._non_persistent_buffers_set) for sub in model.modules()}
    make_buffers_persistent(model)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecation noise
            return torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as e:  # torch's own message names the op and the shapes
        raise ImportError_(_export_error(name, e)) from None
    finally:
        for sub, names in saved.items():
            sub._non_persistent_buffers_set.update(names)


def _forget_export_proxies() -> None:
    """torch.export (torch 2.13) leaves a module global mapping its trace's fake tensors to FX
    nodes until the next trace, and those nodes keep the model's parameters alive: after
    `del model, compiled` an 8 B model's 16 GB stayed. Cleared after each import, failed or not."""
    from torch.fx.experimental import proxy_tensor

    leftover = getattr(proxy_tensor, "_FAKE_TENSOR_ID_TO_PROXY_MAP_FOR_EXPORT", None)
    if isinstance(leftover, dict):
        leftover.clear()


def _export_error(name: str, e: Exception) -> str:
    text = _first_line(e)
    found = re.match(r"Found <class '([\w.]+)'> in output, which is not a known type", str(e))
    if found:
        kind = found.group(1)
        hint = (" (a KV cache: call the model with use_cache=False)" if "Cache" in kind else "")
        return (f"torch.export failed on {name}: the model returns a {kind.rpartition('.')[2]}{hint}; "
                "flashlift returns tensors in tuples, lists, dicts and transformers ModelOutputs")
    return f"torch.export failed on {name}: {text}"


def _user_inputs(ep, model) -> tuple:
    """Per tensor input of the function, in order: its name (the keyword, or the forward's
    parameter name for a positional input) and whether it is passed by keyword; and the
    keyword inputs torch.export kept as constants. Constant inputs' placeholders (unused) are
    removed: the FX importer would make them function arguments."""
    import inspect

    import torch.utils._pytree as pytree
    from torch.export.graph_signature import ConstantArgument, InputKind

    spec = ep.call_spec.in_spec
    args_tree, kwargs_tree = pytree.tree_unflatten(list(range(spec.num_leaves)), spec)
    try:
        params = [p.name for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = {leaf: (params[i] if i < len(params) else f"args[{i}]", False) for i, leaf in enumerate(args_tree)}
    names.update({leaf: (k, True) for k, leaf in kwargs_tree.items() if isinstance(leaf, int)})
    constants = {k: None for k, leaf in kwargs_tree.items() if leaf is None}  # None has no leaf
    user = [s for s in ep.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]
    inputs = []
    graph = ep.graph_module.graph
    placeholders = {n.name: n for n in graph.nodes if n.op == "placeholder"}
    for i, s in enumerate(user):
        name, keyword = names.get(i, (f"input {i}", False))
        if isinstance(s.arg, ConstantArgument):
            constants[name] = s.arg.value
            node = placeholders.get(s.arg.name)
            if node is not None and not node.users:
                graph.erase_node(node)
            continue
        inputs.append({"name": name, "keyword": keyword})
    ep.graph_module.recompile()
    return inputs, constants


def _tensor_outputs(ep) -> dict:
    """The structure of the model's result (flashlift.structure) over the function's results,
    and the graph's output reduced to its tensors: None, ints and other constants torch.export
    kept in the result stand in the structure instead (anything else is an ImportError_)."""
    import torch
    from torch.export.graph_signature import OutputKind

    from flashlift.structure import constant_leaf, describe

    graph = ep.graph_module.graph
    out_node = next(n for n in graph.nodes if n.op == "output")
    values = list(out_node.args[0])
    specs = ep.graph_signature.output_specs
    kept = [v for v, s in zip(values, specs) if s.kind != OutputKind.USER_OUTPUT]  # (buffer updates come first)
    user = [v for v, s in zip(values, specs) if s.kind == OutputKind.USER_OUTPUT]

    def leaf(i, where):
        value = user[i]
        if isinstance(value, torch.fx.Node) and isinstance(value.meta.get("val"), torch.Tensor):
            kept.append(value)
            return {"tensor": len(kept) - 1}
        if isinstance(value, torch.fx.Node):  # e.g. a size under dynamic shapes (a SymInt)
            raise ImportError_(f"{where} is a {type(value.meta.get('val')).__name__} computed by the model, "
                               "not a tensor or a constant: it cannot be returned by a compiled module")
        return constant_leaf(value, where)

    tree = describe(ep.call_spec.out_spec, leaf)
    out_node.args = (tuple(kept),)
    ep.graph_module.recompile()
    return tree


def _input_dims(ep) -> list:
    """Per tensor user input, per dim: its static size, or the name of its torch.export
    symbol ("s0", or an expression such as "2*s0"). Equal names are equal sizes on every call."""
    from torch.export.graph_signature import InputKind, TensorArgument

    names = {s.arg.name for s in ep.graph_signature.input_specs
             if s.kind == InputKind.USER_INPUT and isinstance(s.arg, TensorArgument)}
    dims = []
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in names:
            val = node.meta.get("val")
            shape = getattr(val, "shape", ())
            dims.append([d if isinstance(d, int) else str(d.node.expr) for d in shape])
    return dims


def _annotate_input_dims(module, func_name: str, input_dims: list) -> None:
    """Records the symbols on the function (`flashlift.input_dims`): the IR alone cannot
    say that q's and k's batch sizes are the same number, and raising needs to know."""
    from torch_mlir import ir as tm_ir

    ctx = module.context

    def dim_attr(d):
        return tm_ir.StringAttr.get(d, ctx) if isinstance(d, str) else tm_ir.IntegerAttr.get(tm_ir.IntegerType.get_signless(64, ctx), d)

    attr = tm_ir.ArrayAttr.get([tm_ir.ArrayAttr.get([dim_attr(d) for d in dims], ctx) for dims in input_dims], ctx)
    for op in module.body.operations:
        if op.operation.name == "func.func" and tm_ir.StringAttr(op.operation.attributes["sym_name"]).value == func_name:
            op.operation.attributes["flashlift.input_dims"] = attr


class _LoweringErrors:
    """The first error torch-mlir's lowering reports, as the op and where the model has it
    ("no lowering for aten.histc at model.layers.0.mlp.experts (moe.py:634)"): its exception
    says only that a pass pipeline failed, and MLIR would print the diagnostic, raw, on stderr."""

    def __init__(self, context):
        from torch_mlir import ir as tm_ir

        self._error = tm_ir.DiagnosticSeverity.ERROR
        self.first: Optional[str] = None
        self._handler = context.attach_diagnostic_handler(self._keep)

    def _keep(self, diagnostic) -> bool:
        if self.first is None and diagnostic.severity == self._error:
            self.first = _describe_lowering_error(str(diagnostic.location), str(diagnostic.message))
        return True   # handled: not printed

    def detach(self) -> None:
        self._handler.detach()


def _describe_lowering_error(loc: str, message: str) -> str:
    """`loc`, `message` of an MLIR error -> "no lowering for <op> at <module path> (<file>:<line>)",
    or the message's first line for an error that names no op."""
    from flashlift.report import site_from_location

    op = re.search(r'name = "torch\.([\w.]+)"', message) or re.search(r"operation '(?:torch\.)?([\w.]+)'", message)
    what = (f"no lowering for {op.group(1)}" if op else message.splitlines()[0][:300])
    return f"{what} at {site_from_location(loc).where()}"


def _first_line(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    lines = [l for l in text.splitlines() if l.strip()]
    return " ".join(lines[:3])[:600]
