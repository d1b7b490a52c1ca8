"""Dispatch flashlift's CPU GEMM kernel for bf16 linear layers (CPUs with AMX).

IREE 3.13 compiles a bf16 matmul for the CPU with AVX-512 (data tiling, VDPBF16PS at best);
on a Sapphire Rapids the bf16 seed module ran 0.61x torch.compile and 0.77x torch eager
(bench/results/seed-cpu.md), whose linear layers run on oneDNN's AMX kernels. This step, the
CPU target's `dispatch-gemms`, gives them the AMX build of cpu/gemm_avx512.c.

Matches what gemm_dispatch.analyze matches (the CUDA step's chain: matmul of bf16 A and W,
extended to f32, [+ bias], [truncf]), without the GELU / SwiGLU epilogues, where K and N are
multiples of 32 and any bias is bf16. Replaces the chain's last value by a call of one
flow.dispatch of the kernel on (A, WP[, bias]), WP the weight packed in blocks of 32 columns
as pairs of K (cpu_gemm.PACKED): a tensor.expand_shape and a linalg.transpose of W, which IREE hoists into
the module's initialisation when W is a constant or parameter (it is then packed once, at
load, as IREE's data tiling packs its weights). Exact as the CUDA kernel: bf16 products summed
in f32, the bias added to the sum, rounded once.

Only where the target CPU runs the avx512amx build (cpu:sapphirerapids, or the host when it
has AMX); elsewhere IREE's codegen keeps every matmul and no record is made. One record per
linalg.matmul otherwise, in program order: {"location", "path": "flashlift-cpu avx512amx" |
"iree-codegen", "reason", "shape"}.
"""

from __future__ import annotations

import hashlib

from iree.compiler import ir
from iree.compiler.dialects import linalg

from flashlift.compiler import cpu_dispatch
from flashlift.compiler.gemm_dispatch import GemmPlan, analyze
from flashlift.compiler.kernel_sites import CODEGEN, NotCovered, build_failure
from flashlift.compiler.kernel_splice import ModuleSplicer
from flashlift.compiler.kernels import cpu_build, cpu_gemm
from flashlift.passes.ir import collect
from flashlift.passes.linears import unextended

ISA = "avx512amx"


def kernel_path(isa: str = ISA) -> str:
    return f"flashlift-cpu {isa}"


def gemm_isa(target) -> str:
    """The build `target`'s bf16 linear layers take: avx512amx where its CPU has AMX (or a
    build cpu_dispatch.force_isa forced, where the GEMM has it and the target runs it); "" for
    none (IREE's codegen keeps them)."""
    if target.kind != "cpu":
        return ""
    isas = cpu_dispatch.target_isas(target)
    return next((isa for isa in (cpu_dispatch.forced_isa(), ISA)
                 if ("gemm", isa) in cpu_build.SOURCES and cpu_build.runs(isa, isas)), "")


def dispatch_cpu_gemms(module, target, *, use_kernels: bool = True, isa: str = ISA) -> list[dict]:
    """Replaces every bf16 linear layer the kernel covers by a kernel dispatch (in place);
    returns one record per matmul ([] where the target has no AMX). `isa` another build the
    target runs (avx512bf16: the kernel's VDPBF16PS path; avx512amx_emu: its AMX path with the
    tiles in C; the tests run both on CPUs without AMX)."""
    if not use_kernels or target.kind != "cpu" or not cpu_build.runs(isa, cpu_dispatch.target_isas(target)):
        return []
    records = []
    splicer = ModuleSplicer(module)
    for op in collect(module, "linalg.matmul"):
        record = {"location": str(op.operation.location), "path": CODEGEN, "reason": ""}
        records.append(record)
        try:
            plan = _plan(op)
            _replace(splicer, plan, cpu_build.build_object("gemm", isa))
        except NotCovered as e:
            record["reason"] = str(e)
            continue
        except Exception as e:  # the kernel did not build, or a bug here: the layer stays as written
            record["reason"] = build_failure(e)
            continue
        s = plan.spec
        record.update(path=kernel_path(isa), shape=f"{s.m}x{s.n}x{s.k}")
    return records


def _plan(op) -> GemmPlan:
    """The chain the kernel replaces, or NotCovered (why not)."""
    dtype = str(ir.RankedTensorType(unextended(op.operation.operands[0]).type).element_type)
    if dtype != "bf16":
        raise NotCovered(f"element type {dtype} (the CPU GEMM kernel: bf16)")
    plan = analyze(op, activations=False, residual=False)
    s = plan.spec
    if s.k % cpu_gemm.K_MULTIPLE or s.n % cpu_gemm.N_MULTIPLE:
        raise NotCovered(f"K {s.k}, N {s.n}: not multiples of {cpu_gemm.K_MULTIPLE} (the CPU GEMM kernel's tiles)")
    if s.out_dtype not in ("bf16", "f32"):
        raise NotCovered(f"result in {s.out_dtype}")
    if s.bias_dtype not in (None, "bf16"):
        raise NotCovered(f"bias in {s.bias_dtype} (the CPU GEMM kernel: bf16)")
    return plan


def _packed(w, w_nk: bool, loc):
    """W (N x K, or K x N) as (N / 32, K / 2, 32, 2): blocks of 32 columns, pairs of K together
    (cpu_gemm.PACKED), inserted at the current point."""
    t = ir.RankedTensorType(w.type)
    if w_nk:
        n, k = t.shape
        split, perm, groups = [n // 32, 32, k // 2, 2], [0, 2, 1, 3], "[[0, 1], [2, 3]]"
    else:
        k, n = t.shape
        split, perm, groups = [k // 2, 2, n // 32, 32], [2, 0, 3, 1], "[[0, 1], [2, 3]]"
    pieces = ir.Operation.create(
        "tensor.expand_shape", results=[ir.RankedTensorType.get(split, t.element_type)], operands=[w], loc=loc,
        attributes={"reassociation": ir.Attribute.parse(groups), "static_output_shape": ir.DenseI64ArrayAttr.get(split)}
    ).results[0]
    packed = ir.RankedTensorType.get([n // 32, k // 2, 32, 2], t.element_type)
    init = ir.Operation.create("tensor.empty", results=[packed], loc=loc).results[0]
    transposed = linalg.transpose(pieces, outs=[init], permutation=perm)
    return transposed if isinstance(transposed, ir.Value) else transposed.results[0]


def _replace(splicer: ModuleSplicer, plan: GemmPlan, kernel) -> None:
    spec = plan.spec
    rtype = plan.result.type
    last = plan.chain[-1]
    with splicer.module.context, last.location, ir.InsertionPoint(last):
        wp = _packed(plan.w, spec.w_nk, last.location)
    types = {"a": str(plan.a.type), "wp": str(wp.type)}
    operands = [plan.a, wp]
    if plan.bias is not None:
        types["b"] = str(plan.bias.type)
        operands.append(plan.bias)
    with splicer.module.context, ir.Location.unknown():
        key = hashlib.sha1(repr((kernel.digest, spec)).encode()).hexdigest()[:10]
        sym = splicer.executable(f"flashlift_gemm_cpu_{kernel.isa}_{key}",
                                 lambda name: cpu_gemm.executable_source(kernel, name, spec))
        helper = splicer.helper((sym, tuple(types.items()), str(rtype)), f"{sym}_call",
                                lambda name: cpu_gemm.dispatch_func(sym, name, types, str(rtype)))
    splicer.replace_with_call(plan.result, last, helper, operands)
