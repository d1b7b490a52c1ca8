"""The compile driver: linalg text -> raised, configured IR -> iree-compile -> vmfb bytes.

Everything between import and the runtime happens here, in this order:
  1. parse the imported linalg in IREE's MLIR context;
  2. run the target's pipeline (flashlift.compiler.pipeline.pipeline_for: the raising, then
     the codegen steps of compiler/steps.py: layouts, flashlift's kernels where they cover an
     op, the lowering configuration of what is left to IREE), as `attn-opt --pipeline=`;
  3. run iree-compile for the target.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Optional

from iree.compiler import ir
from iree.compiler.tools.binaries import find_tool

from flashlift.compiler.lowering_cpu import CPU_COMPILE_FLAGS, DATA_TILING_FLAG
from flashlift.compiler.pipeline import pipeline_for, run_pipeline
from flashlift.errors import CompileError
from flashlift.module_abi import dtype_name
from flashlift.passes.externalize_parameters import Parameter
from flashlift.passes.records import SiteRecord


@dataclass
class Lowered:
    text: str  # the IR handed to iree-compile
    records: list = field(default_factory=list)  # the passes' SiteRecords (passes/records.py), in order
    signature: dict = field(default_factory=dict)  # {"inputs": [...], "outputs": [...]}
    parameters: list = field(default_factory=list)  # externalize_parameters.Parameter, one per global

    def of(self, stage: str) -> list:
        """The records one pass appended ("raise-attention", "dispatch-gemms", ...)."""
        return [r for r in self.records if r.stage == stage]


def function_signature(module, func_name: str) -> dict:
    for op in module.body.operations:
        if op.operation.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == func_name:
            ftype = ir.FunctionType(ir.TypeAttr(op.attributes["function_type"]).value)
            def spec(t):
                t = ir.RankedTensorType(t)
                shape = [None if t.is_dynamic_dim(i) else t.shape[i] for i in range(t.rank)]
                return {"shape": shape, "dtype": dtype_name(str(t.element_type))}
            return {"inputs": [spec(t) for t in ftype.inputs], "outputs": [spec(t) for t in ftype.results]}
    raise CompileError(f"no function @{func_name} in the imported module")


def lower(text: str, target, *, raise_attention: bool = True, func_name: str = "main",
          use_kernels: bool = True, fuse_linears: Optional[bool] = None, fuse_norms: bool = True,
          fuse_activations: bool = True, on_pass=None) -> Lowered:
    """Steps 1-3: returns the IR text for iree-compile and what the passes decided.

    use_kernels=False keeps IREE's codegen for every attention op (the records then say so).
    """
    ctx = ir.Context()
    try:
        module = ir.Module.parse(text, ctx)
    except ir.MLIRError as e:
        raise CompileError(f"the imported module does not parse: {e}") from None
    results = run_pipeline(module, pipeline_for(target, raise_attention=raise_attention, use_kernels=use_kernels,
                                                    fuse_linears=fuse_linears, fuse_norms=fuse_norms,
                                                    fuse_activations=fuse_activations),
                           on_pass=on_pass)
    parameters = [r for r in results if isinstance(r, Parameter)]
    records = [r for r in results if isinstance(r, SiteRecord)]
    return Lowered(module.operation.get_asm(enable_debug_info=True), records, function_signature(module, func_name),
                   parameters)


#: CUDA modules take a wait and a signal fence after their tensors (IREE's coarse-fences ABI):
#: the runtime then waits for a call's end itself, by polling before it blocks, instead of
#: in IREE's blocking wait, which wakes up 0.1-0.3 ms late after long kernels on the H200
#: machines (bench/results/call-overhead-h200.md; flashlift.runtime._await).
ASYNC_ABI_FLAGS = ("--iree-execution-model=async-external",)


#: iree-compile demotes f64 to f32 by default, also in the function's signature: a float64
#: model's module then took float32. Kept f64 for a model whose signature has float64 (the
#: module takes what the model takes), and only there: the f64 scalars torch-mlir emits in
#: every model (an rsub's 1.0, a LayerNorm's eps) kept as f64 make IREE's CUDA codegen fail
#: ("failed to distribute") on a LayerNorm dispatch.
KEEP_F64_FLAGS = ("--iree-input-demote-f64-to-f32=false",)


_NO_DATA_TILING: contextvars.ContextVar = contextvars.ContextVar("flashlift_no_data_tiling", default=False)


@contextlib.contextmanager
def without_data_tiling():
    """CPU compiles inside this block (this thread) leave out IREE's data tiling
    (DATA_TILING_FLAG): a benchmark's variant, bench/seed.py's flashlift_no_data_tiling."""
    token = _NO_DATA_TILING.set(True)
    try:
        yield
    finally:
        _NO_DATA_TILING.reset(token)


def compile_flags(target, *, async_abi: bool = None, keep_f64: bool = False) -> list:
    """iree-compile flags for `target`; async_abi (default: CUDA targets) compiles the
    function with the coarse-fences ABI; keep_f64 for a model that takes or returns float64."""
    flags = list(target.flags) + (list(KEEP_F64_FLAGS) if keep_f64 else [])
    if target.kind == "cpu":
        flags += [f for f in CPU_COMPILE_FLAGS if not (f == DATA_TILING_FLAG and _NO_DATA_TILING.get())]
    if target.kind == "cuda" if async_abi is None else async_abi:
        flags += ASYNC_ABI_FLAGS
    return flags


def iree_compile(text: str, target, *, async_abi: bool = None, keep_f64: bool = False,
                 notes: Optional[list] = None) -> bytes:
    """Step 4: iree-compile for `target`; a CompileError carries IREE's own diagnostics.

    iree-compile runs as a child that ends with this process (a compile killed by SIGTERM
    or SIGKILL leaves no iree-compile running), in a private temporary folder. A CPU module
    that fails with IREE's data tiling is compiled again without it (a line in `notes` says
    so); the error of that second compile is the one raised."""
    args = ["--iree-input-type=auto", "--iree-vm-bytecode-module-output-format=flatbuffer-binary",
            "--mlir-print-debuginfo", "--mlir-print-op-on-diagnostic=false", *compile_flags(target, async_abi=async_abi, keep_f64=keep_f64)]
    try:
        return _iree_compile(text, target, args)
    except CompileError as e:
        if DATA_TILING_FLAG not in args:
            raise
        vmfb = _iree_compile(text, target, [a for a in args if a != DATA_TILING_FLAG])
        first = next((line.strip() for line in str(e).splitlines() if "error:" in line), "")
        if notes is not None:
            notes.append("IREE's data tiling failed on this module, compiled without it (linear layers "
                         f"slower): {first[:300]}")
        return vmfb


def _iree_compile(text: str, target, args: list) -> bytes:
    with tempfile.TemporaryDirectory(prefix="flashlift-compile-") as tmp:
        source, output = os.path.join(tmp, "module.mlir"), os.path.join(tmp, "module.vmfb")
        with open(source, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            proc = subprocess.run([find_tool("iree-compile"), source, "-o", output, *args], capture_output=True,
                                  text=True, preexec_fn=_end_with_parent)
        except OSError as e:
            raise CompileError(f"iree-compile could not be started: {e}") from None
        if proc.returncode != 0:
            detail = _diagnostics(proc.stderr) or f"exit status {proc.returncode}"
            raise CompileError(f"iree-compile failed for target {target.name}:\n{detail}")
        with open(output, "rb") as f:
            return f.read()


def _parent_death_signal():
    return ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None


_PRCTL = _parent_death_signal()  # looked up here, not in the forked child


def _end_with_parent() -> None:
    """In the child, before exec: the kernel sends it SIGKILL when its parent ends (Linux's
    PR_SET_PDEATHSIG = 1; elsewhere a no-op)."""
    if _PRCTL is not None:
        _PRCTL(1, 9, 0, 0, 0)


def _diagnostics(text: str, limit: int = 40) -> str:
    lines = [l for l in text.splitlines() if "error" in l or "note" in l]
    return "\n".join((lines or text.splitlines())[:limit])
