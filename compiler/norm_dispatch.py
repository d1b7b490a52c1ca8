"""Dispatch flashlift's residual add + norm kernel: the epilogue after a linear layer.

The Slapo tutorial's third step, automatically: after a projection, its bias, the
(inference, identity) dropout, the residual add and the LayerNorm run as few kernels as the
target allows. The bias stays with the GEMM (flashlift's GEMM kernel adds it in its epilogue
on CUDA; IREE's CPU dispatch formation fuses it into the matmul's); this step takes the rest,
the residual add and the norm, as one kernel: `dispatch_norms` finds each LayerNorm and
RMSNorm (LLaMA's) torch-mlir decomposed (passes/norms.py: match_norm from its rsqrt),
absorbs the residual add that produces its input when nothing else reads the sum (a
pre-norm model's sum is also the next residual: the kernel then reads the sum), and
replaces them by one dispatch of

  * CUDA (targets with kernels): compiler/kernels/triton_norm.py, one row per program;
  * CPU (x86-64 with AVX2, as the attention kernel): compiler/kernels/cpu/norm_avx2.c.

Exact up to the variance's accumulation: the kernels compute it in f32 (two passes, centred),
the decomposition in f64 truncated to f32 (they differ by rounding, ~1e-7 relative, far
below f16's 5e-4). One record per norm candidate (an rsqrt generic), in program order:
{"location": the norm's, "path": "flashlift-cpu avx2" | "triton-norm sm_XX" |
"iree-codegen", "reason", "norm": "LayerNorm" | "RMSNorm", "shape": [rows, n], "residual":
bool, "linear": the location of the linear layer whose output is normalised (or ""),
"linear_bias": whether its bias add is on the way}.
"""

from __future__ import annotations

import hashlib
import math

from iree.compiler import ir

from flashlift.compiler.kernel_sites import CODEGEN, NotCovered, build_failure, cuda_kernels_unavailable
from flashlift.compiler.kernel_splice import ModuleSplicer, family_prefix
from flashlift.compiler.kernels import cpu_build, cpu_norm
from flashlift.compiler.kernels.norm_spec import NormSpec
from flashlift.passes import norms
from flashlift.passes.ir import DYNAMIC, collect, producer, shape
from flashlift.passes.matchers import NoMatch, body, is_op_expr


def kernel_path(target) -> str:
    return "flashlift-cpu avx2" if target.kind == "cpu" else f"triton-norm {target.kernel_arch}"


def dispatch_norms(module, target, *, use_kernels: bool = True) -> list[dict]:
    """Replaces every LayerNorm and RMSNorm the target's kernel covers (with its residual add)
    by a kernel dispatch, in place; returns one record per candidate."""
    records = []
    unavailable = _unavailable(target, use_kernels)
    splicer = ModuleSplicer(module)
    for rsqrt in [op for op in collect(module, "linalg.generic") if is_op_expr(body(op), "math.rsqrt")]:
        record = {"location": str(rsqrt.operation.location), "path": CODEGEN, "reason": ""}
        records.append(record)
        try:
            _take(splicer, rsqrt, record, target, unavailable)
        except NoMatch as e:
            record["reason"] = str(e)
        except NotCovered as e:
            record["reason"] = str(e)
        except Exception as e:  # the kernel did not build, or a bug here: the ops stay as written
            record["reason"] = build_failure(e)
    return records


def _take(splicer: ModuleSplicer, rsqrt, record: dict, target, unavailable: str) -> None:
    """The norm of `rsqrt` replaced by the kernel's dispatch, `record` filled in; raises
    NoMatch / NotCovered (why not) before anything is changed."""
    ln = norms.match_norm(rsqrt)
    a, r = _inputs(ln)
    dims = shape(ln.x)
    linear, bias = _linear_location(a)
    if not linear and r is not None:
        linear, bias = _linear_location(r)
    record.update(location=_norm_location(ln), norm="RMSNorm" if ln.kind == "rms" else "LayerNorm",
                  residual=r is not None, linear=linear, linear_bias=bias)
    if any(d == DYNAMIC for d in dims):
        raise NotCovered(f"dynamic shape {ln.x.type}")
    spec = NormSpec(rows=math.prod(dims[:-1]), n=dims[-1], dtype=_dtype(ln.x), out_dtype=_dtype(ln.out),
                    eps=ln.eps, residual=r is not None, weight=ln.weight is not None, bias=ln.bias is not None,
                    kind=ln.kind, weight_rounded=ln.weight_rounded)
    record["shape"] = [spec.rows, spec.n]
    if unavailable:
        raise NotCovered(unavailable)
    _check(ln, spec, target)
    _replace(splicer, ln, a, r, spec, target)
    record["path"] = kernel_path(target)


def _unavailable(target, use_kernels: bool) -> str:
    """Why no norm kernel runs on `target` ("" if one does)."""
    if not use_kernels:
        return "use_kernels=False"
    if target.kind == "cpu":
        from flashlift.compiler.cpu_dispatch import unavailable
        return unavailable(target)
    return cuda_kernels_unavailable(target, "norm kernel")


def _inputs(ln) -> tuple:
    """(a, r): the residual add's operands when the norm's input is that sum and only the
    norm reads it, else (x, None)."""
    pair = norms.residual_add(ln.x)
    ids = [o.operation for o in ln.ops]
    if pair is None or not all(any(u == o for o in ids) for u in [use.owner for use in ln.x.uses]):
        return ln.x, None
    return pair


def _check(ln, spec: NormSpec, target) -> None:
    max_n, multiple = (cpu_norm.MAX_N, cpu_norm.N_MULTIPLE) if target.kind == "cpu" else (_triton_max_n(), 1)
    try:
        spec.check(max_n, multiple)
    except ValueError as e:
        raise NotCovered(str(e)) from None
    for name, v in (("weight", ln.weight), ("bias", ln.bias)):
        if v is not None and _dtype(v) != spec.dtype:
            raise NotCovered(f"{name} in {_dtype(v)}, the input in {spec.dtype}")


def _triton_max_n() -> int:
    from flashlift.compiler.kernels.triton_norm import MAX_N
    return MAX_N


def _replace(splicer: ModuleSplicer, ln, a, r, spec: NormSpec, target) -> None:
    types = {"a": str(a.type)}
    operands = [a]
    for key, value in (("r", r), ("w", ln.weight), ("b", ln.bias)):
        if value is not None:
            types[key] = str(value.type)
            operands.append(value)
    rtype = ln.out.type
    with splicer.module.context, ir.Location.unknown():
        if target.kind == "cpu":
            kernel = cpu_build.build_object("norm", "avx2")
            key = (kernel.digest, spec)
            sym = splicer.executable(f"flashlift_norm_cpu_avx2_{hashlib.sha1(repr(key).encode()).hexdigest()[:10]}",
                                     lambda name: cpu_norm.executable_source(kernel, name, spec))
            helper = splicer.helper((sym, tuple(types.items()), str(rtype)), f"{sym}_call",
                                    lambda name: cpu_norm.dispatch_func(sym, name, types, str(rtype)))
        else:
            from flashlift.compiler.kernel_build import norm_kernel
            kb = norm_kernel(spec, int(target.kernel_arch.replace("sm_", "")))
            helper = splicer.kernel_helper("norm", kb, list(types.values()), str(rtype))
    splicer.replace_with_call(ln.out, producer(ln.out).operation, helper, operands)


def _dtype(value) -> str:
    return str(ir.ShapedType(value.type).element_type)


def _norm_location(ln) -> str:
    """The norm's location: its normalising op's (the module path of the nn.LayerNorm, or of
    the model's RMSNorm module)."""
    return str(ln.ops[0].operation.location)


def _linear_location(value) -> tuple:
    """(location, bias) of the linear layer (a linalg.matmul, or a kernel call replacing one)
    whose result `value` is, through reshapes, its bias add and rounding, and whether a bias
    add was on the way; ("", False) if none."""
    bias = False
    for _ in range(6):
        p = producer(value)
        if p is None:
            return "", False
        name = p.operation.name
        if name == "func.call":  # the GEMM kernel's call; another kernel's (a norm's) is no linear layer
            callee = ir.FlatSymbolRefAttr(p.operation.attributes["callee"]).value
            return (str(p.operation.location), bias) if callee.startswith(family_prefix("gemm")) else ("", False)
        if name == "linalg.matmul":
            return str(p.operation.location), bias
        if name not in ("tensor.expand_shape", "tensor.collapse_shape", "linalg.generic"):
            return "", False
        if name == "linalg.generic" and any(str(m.value).endswith("-> (d1)") for m in p.operation.attributes["indexing_maps"]):
            bias = True  # a [N] row vector broadcast over the rows: the bias add
        value = p.operation.operands[0]
    return "", False
