"""Dispatch flashlift's rotary-embedding kernel (CUDA targets with kernels).

LLaMA-style models rotate Q and K by their positions before attention:
`x * cos + rotate_half(x) * sin` (passes/rotary.py reads it back from torch-mlir's slices,
negation, concat and three elementwise ops). IREE 3.13 compiles that pass over Q at 0.8 TB/s
on an H100 (32-thread workgroups, rotate_half's concat as a gather: 85 us of LLaMA x4's
1.6 ms a call, bench/results/models-gpu-h100.md); compiler/kernels/triton_rotary.py reads
each row's halves once at memory speed.

`dispatch_rotary(module, target)` replaces each embedding by one dispatch of the kernel on
(x, cos, sin), the tables first gathered into [table batch, table positions, head dim]
(a broadcast generic per distinct table, which IREE fuses into the tables' producer: they
are computed once for all layers). Exact: the kernel rounds each product and the sum as
the ops do. Runs after dispatch-attention, which moves the head transpose below the
embedding (compiler/head_transposes.py), so x is usually the projection's result as it
leaves the GEMM. One record per rotate_half (a concat of -x[..., h:] and x[..., :h]), in
program order: {"location", "path": "triton-rotary sm_XX" | "iree-codegen", "reason",
"shape": x's shape}.
"""

from __future__ import annotations

import contextlib
import contextvars

from iree.compiler import ir

from flashlift.compiler.kernel_sites import CODEGEN, NotCovered, build_failure, cuda_kernels_unavailable
from flashlift.compiler.kernel_splice import ModuleSplicer
from flashlift.compiler.kernels.rotary_spec import RotarySpec
from flashlift.passes import rotary
from flashlift.passes.ir import collect, element_type, generic, shape
from flashlift.passes.matchers import NoMatch


def kernel_path(target) -> str:
    return f"triton-rotary {target.kernel_arch}"


def dispatch_rotary(module, target, *, use_kernels: bool = True) -> list[dict]:
    """Replaces every rotary embedding the kernel covers by its dispatch, in place; returns
    one record per rotate_half."""
    records = []
    unavailable = _unavailable(target, use_kernels)
    splicer = ModuleSplicer(module)
    tables: dict = {}  # (table, map, batch, positions) -> the gathered [batch, positions, D] table
    for concat in collect(module, "tensor.concat"):
        try:
            x = rotary.rotate_half_source(concat)
        except NoMatch:
            continue  # not a rotate_half: no candidate
        record = {"location": str(concat.operation.location), "path": CODEGEN, "reason": "", "shape": shape(x)}
        records.append(record)
        try:
            if unavailable:
                raise NotCovered(unavailable)
            _take(splicer, rotary.match_rotary(concat), target, tables)
            record["path"] = kernel_path(target)
        except (NoMatch, NotCovered) as e:
            record["reason"] = str(e)
        except Exception as e:  # the kernel did not build, or a bug here: the ops stay as written
            record["reason"] = build_failure(e)
    return records


_OFF: contextvars.ContextVar = contextvars.ContextVar("flashlift_rotary_off", default=False)


@contextlib.contextmanager
def left_to_iree():
    """Inside the block no rotary embedding takes the kernel: how a benchmark measures the
    kernel's gain in a whole model (bench/models.py's flashlift_no_rotary_kernel)."""
    token = _OFF.set(True)
    try:
        yield
    finally:
        _OFF.reset(token)


def _unavailable(target, use_kernels: bool) -> str:
    """Why no rotary kernel runs on `target` ("" if one does)."""
    if not use_kernels:
        return "use_kernels=False"
    if _OFF.get():
        return "left to IREE (rotary_dispatch.left_to_iree)"
    return cuda_kernels_unavailable(target, "rotary kernel")


def spec_of(rot) -> RotarySpec:
    """The kernel's RotarySpec for a matched embedding (NotCovered if the kernel does not take it)."""
    dims = tuple(rot.shape)
    seq_dim = rot.seq_dim or 1
    spec = RotarySpec(dims, str(element_type(rot.x)), seq_dim, dims[0] if rot.batched else 1,
                      dims[seq_dim] if rot.seq_dim else 1, table_dtype=str(element_type(rot.tables[0][0])),
                      out_dtype=str(element_type(rot.out)))
    try:
        spec.check()
    except ValueError as e:
        raise NotCovered(str(e)) from None
    return spec


def _take(splicer: ModuleSplicer, rot, target, tables: dict) -> None:
    from flashlift.compiler.kernel_build import rotary_kernel

    spec = spec_of(rot)
    kb = rotary_kernel(spec, int(target.kernel_arch.replace("sm_", "")))  # before any change: it may fail
    last = rot.ops[-1].operation
    with splicer.module.context, last.location, ir.InsertionPoint(last):
        cos, sin = (_gathered(table, amap, spec, tables) for table, amap in rot.tables)
    operands = [rot.x, cos, sin]
    with splicer.module.context, ir.Location.unknown():
        helper = splicer.kernel_helper("rotary", kb, [str(v.type) for v in operands], str(rot.out.type))
    splicer.replace_with_call(rot.out, last, helper, operands)


def _gathered(table, amap, spec: RotarySpec, tables: dict):
    """`table` as the kernel reads it, [table_batch, table_seq, D]: a broadcast generic reading
    it through `amap` with loop 0 -> the table's batch (or 0), the sequence loop -> its
    positions (or 0), the heads' loop -> 0 (amap reads it only where it has one iteration) and
    loop 3 -> D. One per distinct (table, map) of the module: every layer shares its cos and sin."""
    key = (table, str(amap), spec.table_batch, spec.table_seq, spec.seq_dim)
    if key in tables:
        return tables[key]
    ctx = amap.context
    e = [ir.AffineDimExpr.get(i, ctx) for i in range(3)]
    zero = ir.AffineConstantExpr.get(0, ctx)
    loops = [e[0] if spec.table_batch > 1 else zero, zero, zero, e[2]]
    loops[spec.seq_dim] = e[1] if spec.table_seq > 1 else zero
    sub = ir.AffineMap.get(3, 0, loops, ctx)
    reads = ir.AffineMap.get(3, 0, [r.compose(sub) for r in amap.results], ctx)
    out_type = ir.RankedTensorType.get([spec.table_batch, spec.table_seq, spec.shape[3]],
                                       ir.ShapedType(table.type).element_type)
    init = ir.Operation.create("tensor.empty", results=[out_type]).results[0]
    gathered = generic([table], init, [reads, ir.AffineMap.get_identity(3, ctx)], ["parallel"] * 3, lambda args: args[0])
    tables[key] = gathered
    return tables[key]
