"""compile_model: the one call that takes a PyTorch model to a compiled, runnable module."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from flashlift.cpu import compiled_for, missing
from flashlift.errors import InputError
from flashlift.parameters import Parameters, table_entry
from flashlift.progress import stage
from flashlift.report import Report, site_from_location
from flashlift.runtime import FORMAT, VERSION, CompiledModel


def import_model(model, example_args: Sequence[Any] = (), *, kwargs: Optional[dict] = None,
                 dynamic_shapes: Optional[Any] = None) -> str:
    """The linalg-on-tensors MLIR of `model(*example_args, **kwargs)` (eval mode), with
    locations that name the PyTorch module path and the source line of each op."""
    from flashlift.compiler.importer import import_model as _import

    return _import(model, example_args, kwargs=kwargs, dynamic_shapes=dynamic_shapes, parameters="inline").text


def compile_model(model, example_args: Sequence[Any] = (), *, kwargs: Optional[dict] = None, target: str = "cpu",
                  raise_attention: bool = True, dynamic_shapes: Optional[Any] = None,
                  use_kernels: bool = True, parameters: str = "archive",
                  fuse_linears: Optional[bool] = None, fuse_norms: bool = True,
                  fuse_activations: bool = True) -> CompiledModel:
    """Import `model`, raise its hand-written attention, compile it with IREE for `target`.

    The model is run with inference semantics: eval mode, every dropout the identity.
    `kwargs` are keyword inputs (`attention_mask=`, `pixel_values=`, ...): tensors become
    inputs of the compiled module, other values (None, bool, int, float, str) are compiled in
    as constants. A model whose forward takes `use_cache` gets use_cache=False unless kwargs
    set it (one forward is compiled, no KV cache is returned; the report notes it).
    The result is called like the model, `compiled(*args, **kwargs)` with tensors of the
    example shapes, and returns what the model returns (tensors, tuples, lists, dicts,
    transformers ModelOutputs, constants among them); `.report` says what was raised
    and, per raised site, the path it compiles to: "iree-codegen", or on CUDA targets
    ("cuda", "cuda:sm_80", "cuda:sm_90") "triton-fa sm_XX" where flashlift's FlashAttention
    kernel covers the op; on those targets `.report.linears` likewise gives each matmul's path
    ("triton-gemm sm_XX": flashlift's GEMM kernel). use_kernels=False: IREE codegen everywhere.
    Linear layers that read one input and whose results the attention kernel reads in place
    (Q/K/V, not gate/up: measured faster on an H100 and, with IREE's data tiling, on a CPU
    without AMX; CPUs with AMX fuse none) run as one GEMM over their concatenated weights (`.report.fused` lists each group);
    fuse_linears=False keeps them apart, True fuses every group (gate/up too) on any target.
    With kernels (CPU with AVX2, CUDA), each LayerNorm and RMSNorm runs as one kernel with the
    residual add before it where only the norm reads the sum (`.report.epilogues`, the
    projection's bias staying in its GEMM); fuse_norms=False leaves them to IREE. On CUDA a GELU
    or LLaMA's SwiGLU after a linear layer runs in the GEMM kernel's epilogue
    (fuse_activations=False leaves it to IREE), as does a residual add of its result where the
    norm kernel does not take it, and each rotary embedding runs as one kernel (`.report.rotary`).
    parameters="archive" (default) keeps the weights out of the module as IREE parameters
    (any size; see flashlift.parameters), "inline" compiles them in as constants.
    """
    from flashlift.compiler import driver
    from flashlift.compiler.importer import check_example_args, check_example_kwargs, import_model as _import
    from flashlift.compiler.targets import parse_target

    if parameters not in PARAMETER_MODES:
        raise InputError(f"parameters={parameters!r}: expected one of {', '.join(map(repr, PARAMETER_MODES))}")
    tgt = parse_target(target)
    args, kwargs = check_example_args(example_args), check_example_kwargs(kwargs)
    imported = _import(model, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes, parameters=parameters)
    with stage(f"passes for {tgt.name}") as step:
        lowered = driver.lower(imported.text, tgt, raise_attention=raise_attention, func_name=imported.func_name,
                               use_kernels=use_kernels, fuse_linears=fuse_linears,
                               fuse_norms=fuse_norms, fuse_activations=fuse_activations, on_pass=step)
    with stage(f"iree-compile for {tgt.name} ({len(lowered.text) >> 10} KiB of IR)"):
        compile_notes: list = []
        vmfb = driver.iree_compile(lowered.text, tgt, keep_f64=_has_f64(lowered.signature), notes=compile_notes)
    report = Report(target=tgt.name, raise_attention=raise_attention,
                    dropouts=[vars(d) for d in imported.dropouts], notes=list(imported.notes) + compile_notes)
    _add_decisions(report, lowered.records)
    report.notes += _dtype_notes(lowered.signature)
    meta = {
        "format": FORMAT, "version": VERSION, "name": type(model).__name__,
        "function": imported.func_name, "target": tgt.name, "driver": tgt.driver,
        "inputs": lowered.signature["inputs"], "outputs": lowered.signature["outputs"],
        "constants": imported.constants, "output_tree": imported.outputs,
        "report": report.to_dict(),
    }
    used = {p.name: imported.parameters[p.name] for p in lowered.parameters}
    if used:
        meta["parameters"] = [table_entry(name, t) for name, t in used.items()]
    if tgt.kind == "cpu":
        meta["cpu"] = compiled_for(vmfb)
    for spec, dims, names in zip(meta["inputs"], imported.input_dims, imported.inputs):
        spec.update(names)
        if any(isinstance(d, str) for d in dims):
            spec["symbols"] = [d if isinstance(d, str) else None for d in dims]
    _check_description(meta, vmfb)
    compiled = CompiledModel(vmfb, meta, parameters=Parameters.from_tensors(used) if used else None)
    if dynamic_shapes is not None and tgt.runs_here and not missing(meta.get("cpu")):
        _verify_dynamic(compiled, model, args, kwargs)
    return compiled


#: compile_model's parameters= choices (see its doc).
PARAMETER_MODES = ("archive", "inline")


def _add_decisions(report: Report, records: list) -> None:
    """The report's sites from the passes' SiteRecords (passes/records.py): each raised
    attention with the path its dispatch record (same site id) chose, the sites left as
    written, the matmuls' paths, the fused groups."""
    paths = {r.site: r for r in records if r.stage == "dispatch-attention" and r.site is not None}
    for r in records:
        if r.stage == "raise-attention" and r.outcome == "raised":
            d = paths.get(r.site)
            details = dict(r.details, kernel=d.details["kernel"]) if d and "kernel" in d.details else r.details
            report.raised.append(site_from_location(r.location, details=details, path=d.outcome if d else "iree-codegen",
                                                    path_reason=d.reason if d else ""))
        elif r.stage == "raise-attention":
            report.rejected.append(site_from_location(r.location, reason=r.reason))
        elif r.kind == "gemm":
            report.linears.append(site_from_location(r.location, path=r.outcome, path_reason=r.reason,
                                                     details={k: r.details[k] for k in ("shape", "kernel") if k in r.details}))
        elif r.kind == "norm":
            report.epilogues.append(site_from_location(
                r.location, path=r.outcome, path_reason=r.reason,
                details={"norm": r.details.get("norm"), "shape": r.details.get("shape"),
                         "residual": r.details.get("residual", False), "linear_bias": r.details.get("linear_bias", False),
                         "linear": site_from_location(r.details["linear"]).module_path if r.details.get("linear") else None}))
        elif r.kind == "rotary":
            report.rotary.append(site_from_location(r.location, path=r.outcome, path_reason=r.reason,
                                                    details={"shape": r.details.get("shape")}))
        elif r.kind == "linears":
            sites = [site_from_location(loc) for loc in r.details["locations"]]
            report.fused.append({"layers": [s.module_path for s in sites], "source": sites[0].source,
                                 "shape": r.details["shape"]})


def _has_f64(signature: dict) -> bool:
    return any(s["dtype"] == "float64" for s in signature["inputs"] + signature["outputs"])


def _dtype_notes(signature: dict) -> list:
    """What the report says about the dtypes the module takes and returns."""
    if not _has_f64(signature):
        return []
    return ["float64: the module takes and returns float64 as the model does (IREE's demotion to float32 is "
            "off); raised attention is computed by IREE 3.13 with float32 accuracy (about 1e-7 relative error)"]


def _check_description(meta: dict, vmfb: bytes) -> None:
    """What save will write must load: the description passes load's checks and describes the
    function iree-compile wrote (a mismatch is a flashlift bug or an IREE flag that changed the
    signature, as f64 demotion did)."""
    from flashlift.description import validate
    from flashlift.errors import CompileError, ModuleFormatError
    from flashlift.runtime import check_module

    try:
        validate(meta, "the compiled module's description")
    except ModuleFormatError as e:
        raise CompileError(str(e)) from None
    check_module(meta, vmfb, f"{meta['name']} compiled for {meta['target']}", CompileError)


def _verify_dynamic(compiled: CompiledModel, model, args, kwargs: Optional[dict] = None) -> None:
    """torch-mlir's dynamic-shape lowerings are less exercised than its static ones (its
    `view` of a product of two dynamic sizes was wrong; compiler/importer.py works around
    it). A wrong answer must never be returned silently: run the compiled module once on
    fresh inputs of the example shapes and compare with PyTorch."""
    from flashlift.errors import CompileError
    from flashlift.reference import reference

    import torch
    import torch.utils._pytree as pytree

    gen = torch.Generator().manual_seed(0)
    fresh = lambda a: torch.randn(a.shape, generator=gen).to(a.dtype) if a.is_floating_point() else a  # noqa: E731
    args = tuple(fresh(a) for a in args)
    kwargs = {k: fresh(v) if isinstance(v, torch.Tensor) else v for k, v in (kwargs or {}).items()}
    constants = compiled.meta.get("constants") or {}
    ref = reference(model, *args, **kwargs, **{k: v for k, v in constants.items() if k not in kwargs})
    out = compiled(*args, **{k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)})
    outs, refs = ([x for x in pytree.tree_leaves(t) if isinstance(x, torch.Tensor)] for t in (out, ref))
    for i, (o, r) in enumerate(zip(outs, refs)):
        err = ((o.float() - r.float()).norm() / r.float().norm().clamp_min(1e-30)).item()
        if not err < 1e-2:
            raise CompileError(
                f"{type(model).__name__} compiled with dynamic shapes gives a different answer than PyTorch on "
                f"inputs of the example shapes (output {i}: relative error {err:.2g}): an op of this model is "
                "lowered wrongly for dynamic shapes. Compile with static shapes (dynamic_shapes=None).")

