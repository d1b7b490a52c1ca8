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
    [%p  = linalg.generic mulf(silu(%gate), %o)]          LLaMA's MLP, %o the up projection:
                                                          silu = truncf(x * sigmoid(x)), x = extf
                                                          of the gate projection's [M, N] result,
                                                          each maybe behind the same expand_shape
    [%r  = linalg.generic addf(%res, %o)]                 a residual add (either order), %res of
                                                          %o's type or behind the same expand_shape
                                                          (LLaMA's o_proj and down_proj: the norm
                                                          kernel reads the sum, and so does the
                                                          next residual add)

and replaces the last value by a call of a function holding one `flow.dispatch` of the kernel
on (A, W[, bias][, gate | residual]) (no extended copies are read). Exact: the kernel adds the
bias to the f32 accumulator and rounds once, as the matched ops do, then applies the epilogue
with the same roundings; each op on the chain has this single use.
Records one entry per linalg.matmul, in program order:
{"location", "path": "triton-gemm sm_XX" | "iree-codegen", "reason", "shape"}.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from typing import Optional

from iree.compiler import ir

from flashlift.compiler.kernel_build import gemm_kernel
from flashlift.compiler.kernel_sites import NotCovered, build_failure, kernel_sites
from flashlift.compiler.kernel_splice import ModuleSplicer
from flashlift.compiler.kernels.gemm_spec import IN_DTYPES, GemmSpec
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
    swiglu: object = None  # (product generic, gate [M, N] value): silu(gate) * the result, as one op
    residual: object = None  # (sum generic, residual [M, N] value): the residual stream + the result
    spec: object = None  # gemm_spec.GemmSpec
    location: str = ""


_RESIDUAL: contextvars.ContextVar = contextvars.ContextVar("flashlift_gemm_residual", default=True)


@contextlib.contextmanager
def without_residual_epilogue():
    """Inside the block no GEMM takes the residual add after it (IREE adds): how a benchmark
    measures the epilogue's gain in a whole model (bench/models.py's flashlift_no_residual_epilogue)."""
    token = _RESIDUAL.set(False)
    try:
        yield
    finally:
        _RESIDUAL.reset(token)


def dispatch_gemms(module, target, activations: bool = True) -> list[dict]:
    """Replaces every linear layer the kernel covers by a kernel dispatch (in place);
    activations=False leaves a GELU or SwiGLU after it to IREE (the bias stays in the kernel)."""
    ops, records, sm = kernel_sites(module, "linalg.matmul", target)
    if sm is None:
        return records
    arch = target.kernel_arch
    # the global scratch (the TMA kernel's tensor maps) every kernel shares: sized for the largest
    # (the builds are cached, so building every kernel here first costs nothing later)
    built = [_kernel_or_reason(op, activations, sm)[0] for op in ops]
    scratch_bytes = max([kb.scratch_bytes for kb in built if kb is not None] + [0])
    splicer = ModuleSplicer(module)
    for op, record in zip(ops, records):
        kb, plan, reason = _kernel_or_reason(op, activations, sm)  # again: an earlier rewrite changed the IR
        if kb is None:
            record["reason"] = reason
            continue
        replace(splicer, plan, kb, scratch_bytes)
        s = plan.spec
        record.update(path=kernel_path(arch), shape=f"{s.m}x{s.n}x{s.k}",
                      kernel={"name": kb.name, "grid": list(kb.grid), "block": list(kb.block),
                              "tile": [kb.config["BLOCK_M"], kb.config["BLOCK_N"], kb.config["BLOCK_K"]],
                              "epilogue": ", ".join(["bias"] * bool(s.bias_dtype) + [f"to {s.out_dtype}"]
                                                    + ["gelu"] * s.gelu + ["silu(gate) *"] * s.swiglu
                                                    + ["+ residual"] * s.residual)})
    return records


def _kernel_or_reason(op, activations: bool, sm: int):
    """(kernel, plan, "") for a matmul the kernel takes, else (None, None, why not)."""
    try:
        plan = analyze(op, activations)
        return gemm_kernel(plan.spec, sm), plan, ""
    except NotCovered as e:
        return None, None, str(e)
    except Exception as e:  # the kernel does not build for this shape
        return None, None, build_failure(e)


# --- matching ---------------------------------------------------------------------------------


def analyze(matmul, activations: bool = True, residual: bool = True) -> GemmPlan:
    """The chain from `matmul` to the value the kernel replaces, or NotCovered (why not);
    with activations=False the chain ends before a GELU or SwiGLU, with residual=False
    before a residual add (the CPU kernel has neither epilogue)."""
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
    gelu = swiglu = summed = None
    if user is not None and elementwise_op(user) == "arith.truncf":
        value = user.results[0]
        chain.append(user)
        if activations:
            gelu = _gelu_user(value)
            swiglu = None if gelu is not None or bias is not None else _swiglu_user(value)
        if gelu is None and swiglu is None and residual and _RESIDUAL.get():
            summed = _residual_user(value, user)
    out_dtype = str(ir.RankedTensorType(value.type).element_type)
    bias_dtype = str(ir.RankedTensorType(bias.type).element_type) if bias is not None else None
    spec = GemmSpec(m, n, k, dtype, out_dtype, bias_dtype, w_nk, gelu=gelu is not None, swiglu=swiglu is not None,
                    residual=summed is not None)
    try:
        spec.check()
    except ValueError as e:
        raise NotCovered(str(e)) from None
    return GemmPlan(a=a, w=w, bias=bias, result=value, chain=chain, gelu=gelu, swiglu=swiglu, residual=summed,
                    spec=spec, location=str(op.location))


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


def _swiglu_user(up):
    """(product, gate) when the rounded up projection `up` [M, N] is read only by
    `silu(gate') * up'` (an f16/bf16 mulf of two identity-mapped operands, either order; up'
    and gate' `up` and the gate projection's [M, N] result `gate` behind the same single-use
    expand_shape, or both 2-D), silu as torch-mlir writes it: truncf(x * sigmoid(x)) of
    x = extf(gate'), sigmoid(x) = 1 / (exp(-x) + 1); else None."""
    expand, value = _through_expand(up)
    prod = only_user(value)
    if prod is None or elementwise_op(prod) != "arith.mulf" or len(prod.operands) != 3:
        return None
    silu16 = [v for v in list(prod.operands)[:2] if v != value]
    if len(silu16) != 1 or not _is_producer(silu16[0], "arith.truncf"):
        return None
    mul = producer(silu16[0]).operation.operands[0]
    if not _is_producer(mul, "arith.mulf"):
        return None
    x, sig = producer(mul).operation.operands[:2]
    if not _is_sigmoid_of(sig, x):
        x, sig = sig, x
    if not (_is_sigmoid_of(sig, x) and _is_producer(x, "arith.extf", uses=2)):  # the sigmoid and the product
        return None
    gate = producer(x).operation.operands[0]
    if expand is not None:
        g_expand = producer(gate)
        if g_expand is None or g_expand.operation.name != "tensor.expand_shape" or \
                str(g_expand.operation.attributes) != str(expand.attributes) or \
                g_expand.operation.results[0].type != expand.results[0].type:
            return None
        gate = g_expand.operation.operands[0]
    if gate.type != up.type:
        return None
    return prod, gate


def _residual_user(value, last):
    """(sum, residual) when the rounded result `value` [M, N] (of op `last`) is read only by
    `residual + value` (an addf of two identity-mapped operands of one type, either order),
    directly or behind its single-use expand_shape (the residual then of the expanded shape:
    the kernel reads it through a collapse_shape back to [M, N]), the residual computed before
    `last` (the kernel's call takes its place) or a reshape of such a value; else None."""
    _, v = _through_expand(value)
    add = only_user(v)
    if add is None or elementwise_op(add) != "arith.addf" or len(add.operands) != 3:
        return None
    other = [x for x in list(add.operands)[:2] if x != v]
    if len(other) != 1 or other[0].type != v.type:
        return None
    r = other[0]
    reshape = producer(r)
    if not _before(r, last) and not (reshape is not None and reshape.operation.name in _RESHAPES
                                     and _before(reshape.operation.operands[0], last)):
        return None
    return add, r


_RESHAPES = ("tensor.collapse_shape", "tensor.expand_shape")


def _before(value, op) -> bool:
    """`value` is available before `op`: a block argument, or computed earlier in op's block."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return True
    return owner.operation.block == op.operation.block and owner.operation.is_before_in_block(op.operation)


def _residual_operand(residual, result, last):
    """`residual` as the kernel reads it, [M, N] like the GEMM's `result`, available before
    `last` (a reshape computed after it is cloned before it): itself, or the collapse_shape
    undoing the expand_shape through which the sum reads `result`."""
    if not _before(residual, last):
        residual = producer(residual).operation.clone(ir.InsertionPoint(last)).results[0]
    if residual.type == result.type:
        return residual
    expand, _ = _through_expand(result)
    return ir.Operation.create("tensor.collapse_shape", results=[result.type], operands=[residual],
                               attributes={"reassociation": expand.attributes["reassociation"]}).results[0]


def _through_expand(value) -> tuple:
    """(expand_shape, its result) when `value`'s one user is a tensor.expand_shape, else (None, value)."""
    user = only_user(value)
    if user is not None and user.name == "tensor.expand_shape":
        return user, user.results[0]
    return None, value


def _is_producer(value, name: str, uses: int = 1) -> bool:
    """`value` comes from an identity-mapped linalg.generic applying `name`, and has `uses` uses."""
    p = producer(value)
    return p is not None and elementwise_op(p.operation) == name and len(list(value.uses)) == uses


def _is_sigmoid_of(value, x) -> bool:
    """`value` = 1 / (exp(-x) + 1), one linalg.generic reading x only (torch-mlir's sigmoid)."""
    p = producer(value)
    if p is None or p.operation.name != "linalg.generic" or list(p.operation.operands)[:-1] != [x]:
        return False
    if not all(is_identity(m.value) for m in p.operation.attributes["indexing_maps"]):
        return False
    ops = list(p.operation.regions[0].blocks[0].operations)
    if [o.name for o in ops] != ["arith.negf", "math.exp", "arith.addf", "arith.divf", "linalg.yield"]:
        return False
    neg, exp, add, div, _ = ops
    arg = p.operation.regions[0].blocks[0].arguments[0]
    one = lambda v: constant_value(v) == 1.0  # noqa: E731
    return (list(neg.operands) == [arg] and list(exp.operands) == [neg.results[0]]
            and exp.results[0] in list(add.operands) and any(one(v) for v in add.operands)
            and one(div.operands[0]) and div.operands[1] == add.results[0])


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


def replace(splicer: ModuleSplicer, plan: GemmPlan, kb, scratch_bytes: int = 0) -> None:
    """The chain's last value -> a call of the kernel's dispatch helper; a kernel that uses
    global scratch gets the module global of scratch_bytes (>= its own need)."""
    last = plan.chain[-1]
    operands = [plan.a, plan.w] + ([plan.bias] if plan.bias is not None else []) \
        + ([plan.swiglu[1]] if plan.swiglu is not None else [])
    if plan.residual is not None:
        with splicer.module.context, last.location, ir.InsertionPoint(last):
            operands.append(_residual_operand(plan.residual[1], plan.result, last))
    with splicer.module.context, ir.Location.unknown():
        scratch, uses = None, ""
        if kb.scratch_bytes:
            scratch, uses = splicer.scratch_buffer("flashlift_gemm_scratch", scratch_bytes)
        helper = splicer.kernel_helper("gemm", kb, [str(v.type) for v in operands], str(plan.result.type), scratch, uses)
    result = splicer.replace_with_call(plan.result, last, helper, operands)
    for applied in (plan.gelu, plan.swiglu and plan.swiglu[0], plan.residual and plan.residual[0]):
        if applied:  # the kernel applied it: its readers read its up/GELU input, the result now
            up = [v for v in list(applied.operands)[:-1] if _through_expand(result)[1] == v]
            applied.results[0].replace_all_uses_with(up[0] if up else applied.operands[0])
            erase_dead([applied])
