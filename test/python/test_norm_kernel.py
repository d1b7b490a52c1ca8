"""flashlift's residual add + LayerNorm / RMSNorm kernel (compiler/norm_dispatch.py; on the CPU
compiler/kernels/cpu/norm_avx2.c) computes what the model computes, and is chosen where it applies.

Random inputs; tolerance: relative error against PyTorch in f64 under 1e-5 for f32 (the
kernel's mean and variance accumulate in f32), 2e-3 for f16 and 1e-2 for bf16 (their own
rounding of the sum and the result). The cases stress what the matcher must get right: the
residual add absorbed only when nothing else reads the sum, a LayerNorm without weight or
bias, rows not a multiple of the kernel's 8-row blocks, constant rows (variance 0), a row
length the kernel does not take (left to IREE, the answer unchanged), a normalisation over
another dim (not a LayerNorm over the last dim: left alone). RMSNorms as LLaMA (the weight
multiplying in the model's type, after the rounding) and torch's nn.RMSNorm write them, after
a residual add only the norm reads (one kernel) or that is also the next residual (pre-norm:
the kernel reads the sum), a zero row (mean of squares 0: y = 0, not NaN), and Gemma's
weight in f32 with bf16 inputs (left to IREE, with the reason).
"""

import copy
import os
import subprocess
import sys

import pytest
import torch

import flashlift
from flashlift.compiler import cpu_dispatch
from flashlift.compiler.targets import parse_target

pytestmark = pytest.mark.skipif(cpu_dispatch.unavailable(parse_target("cpu")) != "",
                                reason=cpu_dispatch.unavailable(parse_target("cpu")) or "")
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
KERNEL = "flashlift-cpu avx2"


class AddNorm(torch.nn.Module):
    """LayerNorm(dense(h) + x) as BERT's output layers write it; `keep_sum`: the sum is also
    returned (a pre-LN residual stream: the add has another use)."""

    def __init__(self, n=64, affine=True, keep_sum=False, eps=1e-5):
        super().__init__()
        self.dense = torch.nn.Linear(n, n)
        self.norm = torch.nn.LayerNorm(n, eps=eps, elementwise_affine=affine)
        self.keep_sum = keep_sum

    def forward(self, h, x):
        s = self.dense(h) + x
        y = self.norm(s)
        return (y, s) if self.keep_sum else y


def _check(module, inputs, dtype=torch.float32):
    module = module.eval().to(dtype)
    inputs = [t.to(dtype) for t in inputs]
    compiled = flashlift.compile_model(module, inputs)
    out = compiled(*inputs)
    with torch.no_grad():
        ref = copy.deepcopy(module).double()(*(t.double() for t in inputs))
    outs, refs = (out, ref) if isinstance(ref, tuple) else ((out,), (ref,))
    for o, r in zip(outs, refs):
        assert not torch.isnan(o).any()
        err = ((o.double() - r).norm() / r.norm()).item()
        assert err < TOL[dtype], err
    return compiled.report


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_residual_add_and_layer_norm_are_one_kernel(dtype):
    torch.manual_seed(0)
    report = _check(AddNorm(), [torch.randn(3, 7, 64), torch.randn(3, 7, 64)], dtype)  # 21 rows: a partial block
    (site,) = report.epilogues
    assert site.path == KERNEL, str(report)
    assert site.module_path == "norm" and site.details["residual"] and site.details["linear"] == "dense", site
    assert "dense (bias in its GEMM) + residual + norm [21 x 64]" in str(report)


def test_a_norm_after_a_norm_names_no_linear_layer():
    """BLOOM's embedding LayerNorm feeds the first block's LayerNorm: both run as the kernel,
    and the second's report line names no linear layer (the first norm's kernel call is not
    one; it was named as one before)."""

    class TwoNorms(torch.nn.Module):
        def __init__(self, n=64):
            super().__init__()
            self.emb_norm, self.norm = torch.nn.LayerNorm(n), torch.nn.LayerNorm(n)

        def forward(self, x):
            return self.norm(self.emb_norm(x))

    torch.manual_seed(2)
    report = _check(TwoNorms(), [torch.randn(2, 8, 64)])
    assert [s.path for s in report.epilogues] == [KERNEL] * 2, str(report)
    assert not any(s.details.get("linear") for s in report.epilogues), str(report)
    assert "  emb_norm [16 x 64]" in str(report) and "  norm [16 x 64]" in str(report), str(report)


def test_on_cuda_the_gemm_kernels_call_is_the_linear_layer():
    """On CUDA the linear layer before the norm is already the GEMM kernel's call (dispatch-gemms
    runs first): the norm's record still names it, as the CPU's names the matmul."""
    from flashlift.compiler import driver
    from flashlift.compiler.targets import parse_target

    module = AddNorm().eval().half()
    imported = flashlift.import_model(module, (torch.randn(4, 64, 64).half(), torch.randn(4, 64, 64).half()))
    [rec] = driver.lower(imported, parse_target("cuda:sm_90")).of("dispatch-norms")
    assert rec.outcome == "triton-norm sm_90" and rec.details["linear"].startswith('loc("dense"'), rec


def test_sum_with_another_use_stays_outside():
    """The sum is a second output: the kernel normalises it, the add itself stays (IREE's)."""
    torch.manual_seed(1)
    report = _check(AddNorm(keep_sum=True), [torch.randn(2, 16, 64), torch.randn(2, 16, 64)])
    (site,) = report.epilogues
    assert site.path == KERNEL and not site.details["residual"], str(report)


def test_without_weight_and_bias_and_constant_rows():
    torch.manual_seed(2)
    h, x = torch.randn(2, 9, 32), torch.randn(2, 9, 32)
    module = AddNorm(n=32, affine=False, eps=1e-3)
    with torch.no_grad():  # dense(h) + x constant along each row of batch entry 0: variance 0
        module.dense.weight.zero_()
        module.dense.bias.zero_()
    x[0] = torch.randn(9, 1).expand(9, 32)
    report = _check(module, [h, x])
    assert [s.path for s in report.epilogues] == [KERNEL], str(report)


def test_row_length_the_kernel_does_not_take():
    """Rows of 36 elements (not a multiple of 8): IREE's codegen, with the reason."""
    torch.manual_seed(3)
    report = _check(AddNorm(n=36), [torch.randn(2, 5, 36), torch.randn(2, 5, 36)])
    (site,) = report.epilogues
    assert site.path == "iree-codegen" and "multiple of 8" in site.path_reason, str(report)


def test_normalisation_over_another_dim_is_left_alone():
    """(x - mean over dim 1) * rsqrt(var over dim 1 + eps): not a LayerNorm over the last dim."""

    class ColumnNorm(torch.nn.Module):
        def forward(self, x):
            mean = x.mean(dim=1, keepdim=True)
            var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
            return (x - mean) * torch.rsqrt(var + 1e-5)

    torch.manual_seed(4)
    report = _check(ColumnNorm(), [torch.randn(2, 24, 16)])
    assert all(s.path == "iree-codegen" for s in report.epilogues), str(report)
    assert all("not a LayerNorm over the last dim" in s.path_reason for s in report.epilogues), str(report)


class LlamaRMSNorm(torch.nn.Module):
    """Hugging Face's LlamaRMSNorm, as written there; `gemma`: Gemma's (the weight as 1 + w,
    multiplying in f32 before the rounding)."""

    def __init__(self, n, eps=1e-6, gemma=False):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n) * 0.1 + (0.0 if gemma else 1.0))
        self.eps, self.gemma = eps, gemma

    def forward(self, x):
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.gemma:
            return (h * (1.0 + self.weight.float())).to(dtype)
        return self.weight * h.to(dtype)


class PreNormBlock(torch.nn.Module):
    """x + o_proj(h), then the norm: `keep_sum` returns the sum too (LLaMA's decoder layers,
    where it is the next residual); `torch_rms`: torch's own nn.RMSNorm."""

    def __init__(self, n=64, keep_sum=False, torch_rms=False, gemma=False):
        super().__init__()
        self.o_proj = torch.nn.Linear(n, n, bias=False)
        self.norm = torch.nn.RMSNorm(n, eps=1e-6) if torch_rms else LlamaRMSNorm(n, gemma=gemma)
        self.keep_sum = keep_sum

    def forward(self, h, x):
        s = x + self.o_proj(h)
        y = self.norm(s)
        return (s, y) if self.keep_sum else y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("keep_sum", [False, True], ids=["sum_in_kernel", "sum_kept"])
def test_rms_norm_after_a_residual_add(dtype, keep_sum):
    torch.manual_seed(6)
    report = _check(PreNormBlock(keep_sum=keep_sum), [torch.randn(3, 7, 64), torch.randn(3, 7, 64)], dtype)
    (site,) = report.epilogues
    assert site.path == KERNEL and site.details["norm"] == "RMSNorm", str(report)
    assert site.details["residual"] == (not keep_sum) and site.module_path == "norm", site
    assert "norm (RMSNorm) [21 x 64]" in str(report) and "(LayerNorm, RMSNorm)" not in str(report)


def test_torch_rms_norm_and_a_zero_row():
    """torch's nn.RMSNorm; a row of zeros normalises to zeros (mean of squares 0, eps > 0)."""
    torch.manual_seed(7)
    h, x = torch.randn(2, 9, 32), torch.randn(2, 9, 32)
    module = PreNormBlock(n=32, torch_rms=True)
    with torch.no_grad():
        module.o_proj.weight.zero_()
    x[1, 3] = 0.0
    report = _check(module, [h, x])
    assert [(s.path, s.details["norm"]) for s in report.epilogues] == [(KERNEL, "RMSNorm")], str(report)


def test_gemma_rms_norm_weight_in_f32_stays_with_iree():
    torch.manual_seed(8)
    report = _check(PreNormBlock(gemma=True), [torch.randn(2, 8, 64), torch.randn(2, 8, 64)], torch.bfloat16)
    (site,) = report.epilogues
    assert site.path == "iree-codegen" and site.path_reason == "weight in f32, the input in bf16", str(report)


def test_triton_norm_kernel_semantics_in_the_interpreter():
    """The CUDA kernel (compiler/kernels/triton_norm.py) under TRITON_INTERPRET=1, on this machine:
    LayerNorm and RMSNorm (LLaMA's weight in f16 after the rounding, the weight in f32, none),
    with and without the residual add, a constant row and a zero row (tools/kernels/interp_check.py norm)."""
    pytest.importorskip("triton")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = os.path.join(root, "tools", "kernels", "interp_check.py")  # a developer tool, not in the package
    r = subprocess.run([sys.executable, script, "norm"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert r.stdout.count(" ok") == 5 and "FAIL" not in r.stdout, r.stdout


def test_use_kernels_false_keeps_iree_codegen():
    torch.manual_seed(5)
    module = AddNorm().eval()
    h, x = torch.randn(2, 8, 64), torch.randn(2, 8, 64)
    compiled = flashlift.compile_model(module, (h, x), use_kernels=False)
    (site,) = compiled.report.epilogues
    assert site.path == "iree-codegen" and site.path_reason == "use_kernels=False"
    with torch.no_grad():
        assert torch.allclose(compiled(h, x), module(h, x), atol=1e-5)


# --- GPU numerics cases (built by test/tools/gpu_numerics.py, run on the GPU machine) ----------

GPU_CASES = ["norm_f16", "norm_bf16", "norm_keep_sum_f16", "norm_no_affine_f16", "rms_norm_f16", "rms_norm_keep_sum_bf16",
             "qkv_fused_f16", "qkv_fused_gqa_causal_bf16"]


def gpu_case(case: str):
    """(model, example args, tolerance vs the f32 model, compile_model kwargs) of a GPU case:
    the norm kernel after flashlift's GEMM (BERT's LayerNorm rows of 768, LLaMA's RMSNorm rows
    of 1024, 2 x 64 tokens), and attention reading a fused QKV GEMM's result at its columns."""
    torch.manual_seed(0)
    dtype = torch.bfloat16 if case.endswith("bf16") else torch.float16
    tol = 2e-2 if dtype == torch.bfloat16 else 5e-3
    if case.startswith("rms_norm"):
        module = PreNormBlock(n=1024, keep_sum="keep_sum" in case)
        args = (torch.randn(2, 64, 1024), torch.randn(2, 64, 1024))
        return module.eval().to(dtype), tuple(t.to(dtype) for t in args), tol, {}
    if case.startswith("norm"):
        module = AddNorm(n=768, affine="no_affine" not in case, keep_sum="keep_sum" in case, eps=1e-12)
        args = (torch.randn(2, 64, 768), torch.randn(2, 64, 768))
        return module.eval().to(dtype), tuple(t.to(dtype) for t in args), tol, {}
    from test_cpu_kernel import Projected
    shape = dict(hidden=512, heads=8, kv_heads=2, causal=True) if "gqa" in case else dict(hidden=512, heads=8, kv_heads=8)
    return Projected(**shape).eval().to(dtype), (torch.randn(2, 256, 512).to(dtype),), tol, {"fuse_linears": True}
