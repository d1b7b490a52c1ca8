"""Compile-time evaluation of a tensor value computed from constants (an attention mask).

The mask operand flashlift materialises is a float tensor computed from constants and index
comparisons. When its backward slice reads no function argument, `evaluate_constants`
computes it: the slice (arith, math, linalg, tensor ops and the fences layout.py puts in,
all in the value's block) is cloned into a standalone `func.func @mask() -> type` of a new
module, the functions not seen before are compiled together for llvm-cpu (as
@mask_0, @mask_1, ...) and run with IREE's local-task driver. The result, a numpy array, is
cached in-process by the function's text. A value it cannot compute gets a string saying
why instead (computed from function arguments, by another op, in another block, or the
evaluation failed). Masks over MAX_MASK_ELEMENTS elements are not evaluated (the callers
check). Used by the attention kernel dispatch (kernel_dispatch.py) and causal-split.
"""

from __future__ import annotations

import iree.runtime as rt
import numpy as np
from iree.compiler import ir
from iree.compiler.dialects import func
from iree.compiler.tools import compile_str

from flashlift.compiler.targets import parse_target
from flashlift.passes.externalize_parameters import parameter_name

MAX_MASK_ELEMENTS = 1 << 26  # larger masks are not evaluated at compile time

# Compile-time mask values, keyed by the text of the standalone function computing them.
_MASK_CACHE: dict = {}

_EVALUABLE = ("arith.", "math.", "linalg.", "tensor.", "util.optimization_barrier", "iree_tensor_ext.compute_barrier.")


class NotConstant(Exception):
    """The value is not computed from constants alone; the message says why."""


def evaluate_constants(values: list, module) -> list:
    """Each value computed at compile time (a numpy array), or a string saying why not.

    The backward slice of each value is cloned into its own function of a new module, the
    ones not cached are compiled together for llvm-cpu and run with local-task.
    """
    results: list = [None] * len(values)
    funcs: dict = {}  # function text -> [value indices]
    with module.context, ir.Location.unknown():
        for i, value in enumerate(values):
            try:
                ops = _backward_slice(value)
                standalone = _standalone_func(ops, value)
            except NotConstant as e:
                results[i] = str(e)
                continue
            text = standalone.operation.get_asm(enable_debug_info=False)
            if text in _MASK_CACHE:
                results[i] = _MASK_CACHE[text]
            else:
                funcs.setdefault(text, (standalone, []))[1].append(i)
    if funcs:
        texts = list(funcs)
        try:
            arrays = _run_funcs([funcs[t][0] for t in texts])
        except Exception as e:
            reason = f"compile-time evaluation failed: {str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__}"
            arrays = [reason] * len(texts)
        for text, array in zip(texts, arrays):
            if not isinstance(array, str):
                _MASK_CACHE[text] = array
            for i in funcs[text][1]:
                results[i] = array
    return results


def _backward_slice(value) -> list:
    """Ops computing `value`, in program order; NotConstant if it reads a function argument."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        raise NotConstant("the mask is a function argument (computed at run time)")
    block = owner.operation.block
    seen: dict = {}
    work = [value]
    while work:
        v = work.pop()
        producer = v.owner
        if isinstance(producer, ir.Block):
            raise NotConstant("the mask is computed from function arguments (at run time)")
        producer = producer.operation
        if producer in seen:
            continue
        if not producer.name.startswith(_EVALUABLE):
            raise NotConstant(f"the mask is computed by {producer.name}")
        if producer.name == "arith.constant" and parameter_name(producer.attributes["value"]) is not None:
            # a weight: a handle without data here, and with_parameters() may swap it
            raise NotConstant("the mask is computed from the model's weights (parameters, read at run time)")
        if producer.block != block:
            raise NotConstant("the mask is computed in another block")
        seen[producer] = True
        work.extend(_external_operands(producer))
    return [op.operation for op in block.operations if op.operation in seen]


def _external_operands(op) -> list:
    """Operands of `op` and of the ops nested in it that are defined outside `op`."""
    inner: set = set()
    used: list = []

    def visit(o):
        for region in o.regions:
            for b in region.blocks:
                inner.update(b.arguments)
        if o != op:
            inner.update(o.results)
        used.extend(o.operands)
        return ir.WalkResult.ADVANCE

    op.walk(visit)
    out, keep = [], set()
    for v in used:
        if v not in inner and v not in keep:
            keep.add(v)
            out.append(v)
    return out


def _standalone_func(ops: list, value):
    """A new module with `func.func @mask() -> type` made of clones of `ops`."""
    module = ir.Module.create()
    with ir.InsertionPoint(module.body):
        f = func.FuncOp("mask", ir.FunctionType.get([], [value.type]))
        entry = f.add_entry_block()
    mapping: dict = {}
    with ir.InsertionPoint(entry):
        for op in ops:
            clone = op.clone()

            def remap(o):
                for idx, operand in enumerate(list(o.operands)):
                    if operand in mapping:
                        o.operands[idx] = mapping[operand]
                return ir.WalkResult.ADVANCE

            clone.walk(remap)
            for old, new in zip(op.results, clone.results):
                mapping[old] = new
        func.ReturnOp([mapping[value]])
    return module


def _run_funcs(modules: list) -> list:
    """Compiles the @mask functions of `modules` (as @mask_<i>) into one llvm-cpu module
    and runs each."""
    with modules[0].context, ir.Location.unknown():
        combined = ir.Module.create()
        for i, m in enumerate(modules):
            f = m.body.operations[0].operation.clone(ip=ir.InsertionPoint(combined.body))
            f.attributes["sym_name"] = ir.StringAttr.get(f"mask_{i}")
        source = combined.operation.get_asm(enable_debug_info=False)
    vmfb = compile_str(source, extra_args=list(parse_target("cpu").flags))
    config = rt.Config("local-task")
    ctx = rt.SystemContext(config=config)
    ctx.add_vm_module(rt.VmModule.copy_buffer(ctx.instance, vmfb))
    out = []
    for i in range(len(modules)):
        out.append(np.array(ctx.modules.module[f"mask_{i}"]().to_host()))
    return out
