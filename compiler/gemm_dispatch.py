"""Dispatch flashlift's GEMM kernel for a model's linear layers (CUDA targets with kernels).

IREE 3.13 compiles matmuls for NVIDIA with sm_80 mma.sync code; on an H200 that is 3-4x
slower than cuBLAS on BERT's and LLaMA's projections (bench/results/models-gpu-h200.md).
Once attention runs as FlashAttention, those matmuls are most of a model's time. This pass
gives them the Triton GEMM kernel (compiler/kernels/triton_gemm.py, wgmma on sm_90).

Matches what torch-mlir makes of an f16/bf16 `nn.Linear` (or `x @ w`):

    %acc = linalg.fill 0.0 -> tensor<M x N x f32>
    %mm  = linalg.matmul ins(A', B') outs(%acc)          A' = A or extf(A), A: M x K f16|bf16
                                                          B' = transpose(W) or W, maybe extended,
                                                               W: N x K (nn.Linear) or K x N
    [%b  = linalg.generic addf(%mm, bias'[n])]            bias' = bias or extf(bias)
    [%o  = linalg.generic truncf(%b)]                     to f16|bf16
    [%g  = linalg.generic gelu(%o)]                       torch-mlir's erf GELU, maybe behind
                                                          a tensor.expand_shape of %o

and replaces the last value by a call of a function holding one `flow.dispatch` of the kernel
on (A, W[, bias]) (no extended copies are read). Exact: the kernel adds the bias to the f32
accumulator and rounds once, as the matched ops do; each op on the chain has this single use.
Records one entry per linalg.matmul, in program order:
{"location", "path": "triton-gemm sm_XX" | "iree-codegen", "reason", "shape"}.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from iree.compiler import ir

from flashlift.compiler.kernel_build import gemm_kernel
from flashlift.compiler.kernel_sites import NotCovered, build_failure, kernel_sites
from flashlift.compiler.kernel_splice import ModuleSplicer
from flashlift.compiler.kernels import iree_dispatch
from flashlift.passes.ir import constant_value, erase_dead, fill_constant, is_identity, producer
from flashlift.passes.linears import elementwise_op, is_bias_add, only_user, unextended


def kernel_path(kernel_arch: str) -> str:
    return f"triton-gemm {kernel_arch}"


@dataclasses.dataclass
class GemmPlan:
    a: object  # ir.Value, M x K
    w: object  # ir.Value, N x K (w_nk) or K x N
    bias: Optional[object]  # ir.Value [N] or None
    result: object  # the value the kernel's C replaces
    chain: list  # ops from the matmul to the result's producer (erased after the rewrite)
    gelu: object = None  # the GELU generic applied to the result (maybe through an expand_shape)
    spec: object = None  # triton_gemm.GemmSpec
    location: str = ""


def dispatch_gemms(module, target) -> list[dict]:
    """Replaces every linear layer the kernel covers by a kernel dispatch (in place)."""
    ops, records, sm = kernel_sites(module, "linalg.matmul", target)
    if sm is None:
        return records
    arch = target.kernel_arch
    splicer = ModuleSplicer(module)
    for op, record in zip(ops, records):
        try:
            plan = analyze(op)
            kb = gemm_kernel(plan.spec, sm)
        except NotCovered as e:
            record["reason"] = str(e)
            continue
        except Exception as e:  # the kernel does not build for this shape
            record["reason"] = build_failure(e)
            continue
        replace(splicer, plan, kb)
        s = plan.spec
        record.update(path=kernel_path(arch), shape=f"{s.m}x{s.n}x{s.k}",
                      kernel={"name": kb.name, "grid": list(kb.grid), "block": list(kb.block),
                              "tile": [kb.config["BLOCK_M"], kb.config["BLOCK_N"], kb.config["BLOCK_K"]],
                              "epilogue": ", ".join(["bias"] * bool(s.bias_dtype) + [f"to {s.out_dtype}"]
                                                    + ["gelu"] * s.gelu)})
    return records


# --- matching ---------------------------------------------------------------------------------


def analyze(matmul) -> GemmPlan:
    """The chain from `matmul` to the value the kernel replaces, or NotCovered (why not)."""
    # here: triton_gemm needs Triton, optional (kernel_sites found it before any op is analyzed)
    from flashlift.compiler.kernels.triton_gemm import IN_DTYPES, GemmSpec

    op = matmul.operation
    if "indexing_maps" in op.attributes and str(op.attributes["indexing_maps"]) != _DEFAULT_MAPS:
        raise NotCovered("matmul with non-default indexing maps")
    a_in, b_in, init = op.operands
    acc = ir.RankedTensorType(op.results[0].type)
    if not acc.has_static_shape:
        raise NotCovered(f"dynamic shape {acc}")
    if str(acc.element_type) != "f32":
        raise NotCovered(f"accumulates in {acc.element_type} (kernel: f32)")
    fill = producer(init)
    if fill is None or fill.operation.name != "linalg.fill" or fill_constant(init) != 0.0:
        raise NotCovered("the accumulator does not start at zero")
    a = unextended(a_in)
    w, w_nk = _weight(b_in)
    dtype = str(ir.RankedTensorType(a.type).element_type)
    if dtype not in IN_DTYPES:
        raise NotCovered(f"element type {dtype} (kernel: f16, bf16)")
    if str(ir.RankedTensorType(w.type).element_type) != dtype:
        raise NotCovered("A and W have different element types")
    m, n = acc.shape
    k = ir.RankedTensorType(a.type).shape[1]

    chain = [op]
    value, bias = op.results[0], None
    user = only_user(value)
    if user is not None and is_bias_add(user, value, n):
        bias_in = [v for v in user.operands[:2] if v != value][0]
        bias = unextended(bias_in)
        value = user.results[0]
        chain.append(user)
        user = only_user(value)
    gelu = None
    if user is not None and elementwise_op(user) == "arith.truncf":
        value = user.results[0]
        chain.append(user)
        gelu = _gelu_user(value)
    out_dtype = str(ir.RankedTensorType(value.type).element_type)
    bias_dtype = str(ir.RankedTensorType(bias.type).element_type) if bias is not None else None
    spec = GemmSpec(m, n, k, dtype, out_dtype, bias_dtype, w_nk, gelu=gelu is not None)
    try:
        spec.check()
    except ValueError as e:
        raise NotCovered(str(e)) from None
    return GemmPlan(a=a, w=w, bias=bias, result=value, chain=chain, gelu=gelu, spec=spec, location=str(op.location))


_DEFAULT_MAPS = ("[affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, "
                 "affine_map<(d0, d1, d2) -> (d0, d1)>]")


def _gelu_user(value):
    """The erf-GELU linalg.generic that is the single user of `value` (or of its single-use
    tensor.expand_shape), or None. The body must be torch-mlir's lowering of `F.gelu(x)`:
    y = x * ((erf(x / sqrt(2)) + 1) * 0.5), the commutative operands in either order."""
    user = only_user(value)
    if user is not None and user.name == "tensor.expand_shape":
        user = only_user(user.results[0])
    if user is None or user.name != "linalg.generic" or len(user.operands) != 2:
        return None
    if not all(is_identity(m.value) for m in user.attributes["indexing_maps"]):
        return None
    if ir.RankedTensorType(user.operands[0].type).element_type != ir.RankedTensorType(user.results[0].type).element_type:
        return None
    block = user.regions[0].blocks[0]
    x = block.arguments[0]
    ops = list(block.operations)
    if len(ops) != 7 or ops[-1].name != "linalg.yield":
        return None
    sqrt, div, erf, add, half, mul, _ = ops
    const = lambda v, want: (lambda c: c is not None and abs(float(c) - want) < 1e-6)(constant_value(v))  # noqa: E731

    def binary(op, name, a, b_test):
        """op is `name` of `a` and a value passing b_test, in either order."""
        if op.name != name:
            return False
        l, r = op.operands
        return (l == a and b_test(r)) or (r == a and b_test(l))

    return user if (
        sqrt.name == "math.sqrt" and const(sqrt.operands[0], 2.0)
        and div.name == "arith.divf" and list(div.operands) == [x, sqrt.results[0]]
        and erf.name == "math.erf" and list(erf.operands) == [div.results[0]]
        and binary(add, "arith.addf", erf.results[0], lambda v: const(v, 1.0))
        and binary(half, "arith.mulf", add.results[0], lambda v: const(v, 0.5))
        and binary(mul, "arith.mulf", x, lambda v: v == half.results[0])
        and list(ops[-1].operands) == [mul.results[0]]) else None


def _weight(value) -> tuple:
    """(W, w_nk) for the matmul's right operand: transpose(W) of an N x K W (nn.Linear),
    possibly extended before or after the transpose, or a K x N W itself."""
    v = unextended(value)
    p = producer(v)
    if p is not None and p.operation.name == "linalg.transpose":
        if str(p.operation.attributes["permutation"]) != "array<i64: 1, 0>":
            raise NotCovered("the weight's transpose is not [1, 0]")
        return unextended(p.operation.operands[0]), True
    return v, False


# --- rewriting --------------------------------------------------------------------------------


def replace(splicer: ModuleSplicer, plan: GemmPlan, kb) -> None:
    operands = [plan.a, plan.w] + ([plan.bias] if plan.bias is not None else [])
    types = [str(v.type) for v in operands]
    rtype = plan.result.type
    last = plan.chain[-1]
    with splicer.module.context, ir.Location.unknown():
        sym = splicer.kernel_executable("gemm", kb)
        helper = splicer.helper((sym, tuple(types), str(rtype)), f"{sym}_call",
                                lambda name: iree_dispatch.kernel_func(kb, sym, name, types, str(rtype)))
    with splicer.module.context, last.location, ir.InsertionPoint(last):
        call = ir.Operation.create("func.call", results=[rtype], operands=operands,
                                   attributes={"callee": ir.FlatSymbolRefAttr.get(helper)})
    plan.result.replace_all_uses_with(call.results[0])
    erase_dead([last])
    if plan.gelu is not None:  # the kernel applied it: readers of the GELU read its input now
        plan.gelu.results[0].replace_all_uses_with(plan.gelu.operands[0])
        erase_dead([plan.gelu])
