"""The pass pipeline, defined in one place.

`pipeline_for(target)` is what compile_model runs between import and iree-compile (the
raising, `RAISE_PIPELINE`, then the codegen steps of compiler/steps.py for that target). `build_pass_manager`
turns a textual pipeline (as `--pass-pipeline=` takes it) into an MLIR PassManager where
flashlift's Python passes run as real passes next to any pass the IREE bindings register.
"""

from __future__ import annotations

import inspect
from typing import Optional

from iree.compiler import ir
from iree.compiler.passmanager import PassManager

from flashlift.errors import InputError
from flashlift import passes
from flashlift.compiler import cpu_dispatch, cpu_gemm_dispatch, steps
from flashlift.compiler.targets import parse_target

#: Every pass attn-opt and the pipelines know: the raising passes, then the codegen steps.
REGISTRY = {**passes.REGISTRY, **steps.STEPS}

#: The raising, for every target, one element per reason:
#:   unify-dims       equal dynamic sizes read from one value (torch.export's symbols)
#:   fold-reshapes    torch-mlir's reshapes by computed shapes -> collapse/expand_shape
#:   fold-broadcasts  gather-style broadcasts of a tensor to its own shape removed
#:   fold-scalars     rank-0 computations on constants folded (DeBERTa's 1 / sqrt(d) scale:
#:                    the attention's scale a constant after canonicalize, as kernels need)
#:   raise-attention  matmul + mask + softmax + matmul -> iree_linalg_ext.attention
#:   unbatch-matmuls  after raising (it would unbatch a Q.K^T against a shared K): a linear
#:                    layer torch decomposed into a batch matmul becomes one matmul again
#:   canonicalize,cse the dead and duplicate ops the rewrites leave
RAISING = ["unify-dims", "fold-reshapes", "fold-broadcasts", "fold-scalars", "raise-attention", "unbatch-matmuls",
           "canonicalize", "cse"]
RAISE_PIPELINE = "builtin.module(" + ",".join(RAISING) + ")"


def pipeline_for(target, *, raise_attention: bool = True, use_kernels: bool = True,
                 fuse_linears: Optional[bool] = None, fuse_norms: bool = True,
                 fuse_activations: bool = True) -> str:
    """The whole pipeline compile_model runs for `target` (a Target or its spec) before
    iree-compile, as `attn-opt --pipeline=<target>` runs it. fuse_linears None: where it
    measured faster (CPUs without AMX, and CUDA with kernels: the groups the attention kernel
    reads in place; none on CPUs with AMX); True/False: every group / none, on any target.
    fuse_norms: the LayerNorm / RMSNorm kernel where the target has one (False: IREE's).
    fuse_activations: a GELU or SwiGLU after a linear layer in the GEMM kernel's epilogue
    (False: IREE's). One element per step, in order:"""
    t = parse_target(target) if isinstance(target, str) else target
    spec = f"{{target={t.name}}}"
    elements = list(RAISING) if raise_attention else []
    fuse = "fuse-linears" if fuse_linears else None
    if fuse_linears is None and t.kind == "cpu" and "avx512amx" in cpu_dispatch.target_isas(t):
        # Sapphire Rapids (AMX; the GPU machine's 16-core host): the seed with Q/K/V apart ran
        # faster in every run, bf16 0.84x / 0.89x / 0.84x the fused build's time and f32 0.97x /
        # 0.93x (seed-cpu.md); on the 2-core Zen 4 machine fusing them was 1.02-1.04x faster
        fuse = None
    elif fuse_linears is None and (t.kind == "cpu" or (t.kernel_arch and use_kernels)):
        # Only the groups the attention kernel reads in place, at their columns of the fused
        # result (BERT's Q/K/V, the seed's). CUDA: on an H100 BERT x4 0.93-0.98x the time in
        # 10 of 10 runs and the seed 0.89-0.94x in 3 of 3 (models-gpu-h100.md, seed-gpu-h100.md);
        # not LLaMA's gate/up, which would lose the SwiGLU epilogue, nor Q/K behind rotary
        # embeddings, whose slices would be copies (all groups: 1.15x its time). (An H200
        # measured the seed fused 0.90-0.93x as fast in 3 of 4 runs at 6c9c0b7.) CPU, with
        # IREE's data tiling: every group cost LLaMA 8% (IREE then runs SwiGLU as its own pass
        # over the fused gate/up result) and left flashlift 0.96-0.97x IREE alone; these groups
        # only: 1.01-1.04x IREE alone, BERT 1.02x its unfused build (models-cpu.md).
        fuse = "fuse-linears{reads=attention}"
    if raise_attention and fuse:
        # after unbatch-matmuls (every linear layer is a 2-D matmul then), before the clean-up:
        # linear layers reading one input (Q/K/V, gate/up) become one GEMM with its epilogue
        elements.insert(elements.index("unbatch-matmuls") + 1, fuse)
    if raise_attention and t.raise_attention:
        # the configs and kernels read Q, K, V, O with their batch dims leading, in one order
        elements.append("canonicalize-layouts")
        if t.kind == "cpu":
            # flashlift's CPU kernel takes the ops it covers (docs/cpu-kernel.md), before the
            # steps that shape the rest for IREE's codegen
            elements.append(f"dispatch-attention{{target={t.name} kernels={'on' if use_kernels else 'off'}}}")
            # the residual add + LayerNorm or RMSNorm after a projection as one kernel (its bias stays
            # in the GEMM's dispatch, where IREE fuses it)
            if fuse_norms:
                elements.append(f"dispatch-norms{{target={t.name} kernels={'on' if use_kernels else 'off'}}}")
            gemm_isa = cpu_gemm_dispatch.gemm_isa(t) if use_kernels else ""
            if gemm_isa:
                # bf16 linear layers on AMX tiles, which IREE's CPU codegen does not use (after the
                # norms, as on CUDA: the projection's bias stays in its GEMM)
                elements.append(f"dispatch-gemms{{target={t.name} isa={gemm_isa}}}")
            elements.append("pretranspose-keys")  # the CPU tiles are tuned for K as (b, k1, k2)
            elements.append("causal-split")       # causal ops known at compile time: no masked blocks
    if t.kernel_arch:
        # flashlift's kernels take the ops they cover; the rest stays with IREE's codegen
        elements.append(f"dispatch-attention{{target={t.name} kernels={'on' if use_kernels else 'off'}}}")
        if use_kernels:
            # before the GEMMs: the residual add + LayerNorm or RMSNorm after a projection as one kernel,
            # the projection's bias then stays in the GEMM kernel's epilogue
            if fuse_norms:
                elements.append(f"dispatch-norms{spec}")
            # a GELU / SwiGLU after a GEMM in its epilogue: the activation's pass over the result is not run
            elements.append(f"dispatch-gemms{{target={t.name}{'' if fuse_activations else ' activations=off'}}}")
            # after dispatch-attention, which moved the head transpose below them: rotary embeddings
            # of Q and K at memory speed, reading the projections' results in place
            elements.append(f"dispatch-rotary{spec}")
    if t.kind in ("cuda", "rocm"):
        elements.append("mask-dynamic-keys")  # IREE's GPU codegen pads a dynamic k2 only through a mask
    elements.append(f"annotate-lowering{spec}")  # only ops left to IREE get a config
    elements.append("drop-site-ids")  # the records are written: IREE gets none of flashlift's attributes
    elements.append("externalize-parameters")  # last: every step before sees weights as constants
    return "builtin.module(" + ",".join(elements) + ")"


def split_top_level(text: str) -> list[str]:
    """'a,b(c,d),e' -> ['a', 'b(c,d)', 'e']; an InputError for unbalanced brackets or an
    empty element ('a,,b')."""
    parts, stack, start = [], [], 0
    pairs = {")": "(", "}": "{"}
    for i, ch in enumerate(text):
        if ch in "({":
            stack.append(ch)
        elif ch in ")}":
            if not stack or stack.pop() != pairs[ch]:
                raise InputError(f"pipeline '{text}': unbalanced '{ch}' at offset {i}")
        elif ch == "," and not stack:
            parts.append(text[start:i].strip())
            start = i + 1
    if stack:
        raise InputError(f"pipeline '{text}': '{stack[-1]}' is never closed")
    tail = text[start:].strip()
    if tail or parts:
        parts.append(tail)
    if any(not p for p in parts):
        raise InputError(f"pipeline '{text}' has an empty element")
    return parts


def pipeline_elements(pipeline: str) -> list[str]:
    """Strips an outer `builtin.module(...)` and returns the top-level pass elements."""
    text = pipeline.strip()
    if text.startswith("builtin.module(") and text.endswith(")"):
        text = text[len("builtin.module("):-1]
    elif text.startswith("any(") and text.endswith(")"):
        text = text[len("any("):-1]
    return split_top_level(text)


def build_pass_manager(ctx: ir.Context, elements: list[str], results: list, print_ir_after_all: bool = False,
                       on_pass=None) -> PassManager:
    """`on_pass(i, n, name)`, if given, is called as flashlift's pass `i` of the n elements starts."""
    if print_ir_after_all:
        ctx.enable_multithreading(False)  # MLIR's IR printing requires it
    pm = PassManager("builtin.module", context=ctx)
    for i, element in enumerate(elements):
        name = element.split("{")[0].strip()
        if name in REGISTRY:
            _, run = REGISTRY[name]
            announce = (lambda i=i, name=name: on_pass(i, len(elements), name)) if on_pass else None
            pm.add(_as_pass(run, results, pass_options(element), announce), name=name, argument=name)
        else:
            try:
                pm.add(element)
            except ValueError as e:
                known = ", ".join(sorted(REGISTRY))
                detail = str(e).splitlines()[0] if str(e) else "not a registered pass"
                raise InputError(f"unknown pass or bad pipeline element '{element}' ({detail}); flashlift passes: {known}") from None
    if print_ir_after_all:
        pm.enable_ir_printing(print_after_all=True, print_module_scope=True)
    return pm


def pass_options(element: str) -> dict:
    """`name{a=1 b=x}` -> {"a": "1", "b": "x"} (MLIR's textual pass-option syntax)."""
    if "{" not in element:
        return {}
    body = element[element.index("{") + 1:element.rindex("}")]
    options = {}
    for item in body.split():
        key, eq, value = item.partition("=")
        if not eq:
            raise InputError(f"pass option '{item}' in '{element}' is not key=value")
        options[key] = value
    return options


def _as_pass(run, results, options: dict, announce=None):
    accepted = inspect.signature(run).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    for key in options:
        if key not in accepted and not takes_any:
            raise InputError(f"pass option '{key}' is not known to this pass")

    def pass_fn(op, pass_):
        if announce:
            announce()
        run(op, results, **options)

    return pass_fn


def run_pipeline(module: ir.Module, pipeline: str = RAISE_PIPELINE, print_ir_after_all: bool = False,
                 on_pass=None) -> list:
    """Runs `pipeline` on `module` in place; returns what the passes appended to their one
    results list (SiteRecords, externalize-parameters' Parameters)."""
    results: list = []
    pm = build_pass_manager(module.context, pipeline_elements(pipeline), results, print_ir_after_all, on_pass)
    pm.run(module.operation)
    return results
