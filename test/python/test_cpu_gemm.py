"""flashlift's CPU GEMM kernel for bf16 linear layers (compiler/cpu_gemm_dispatch.py).

On CPUs with AMX (cpu:sapphirerapids) bf16 linear layers take the kernel's AMX build; this
machine may have no AMX, so the numerics here run the same kernel's avx512bf16 build
(force_isa), whose vector path is also the AMX build's for the rows past the last whole 32
(test/tools/cpu_numerics.py runs CASES on AMX where it is). Checked against PyTorch in f32:
bf16's error (under BF16_TOL), and no more than 1.25x that of IREE's own code for the same
module (which sums the same bf16 products in f32, in another order: on a 64-element output
one ulp of difference in a rounded intermediate moves the error ~10%).
"""

import pytest
import torch

import flashlift
from conftest import rel_err
from flashlift.compiler import cpu_dispatch, cpu_gemm_dispatch
from flashlift.compiler.targets import parse_target

BF16_TOL = 1e-2


class Linears(torch.nn.Module):
    """Two linear layers (the first with a bias, the second without) and a matmul by a K x N
    weight (`x @ w`), as a model's projections."""

    def __init__(self, k: int, n: int, bias: bool = True):
        super().__init__()
        self.up = torch.nn.Linear(k, n, bias=bias)
        self.down = torch.nn.Linear(n, k, bias=False)
        self.w = torch.nn.Parameter(torch.randn(k, n) / k ** 0.5)

    def forward(self, x):
        return self.down(self.up(x)) + x @ self.w @ self.down.weight.T


#: name -> (module, input shape): rows a multiple of 32 and not (the vector path's tail),
#: one row, widths of one and of several workgroups
CASES = {
    "rows_128": ((256, 512, True), (2, 64, 256)),
    "rows_100": ((256, 512, True), (2, 50, 256)),
    "one_row": ((64, 96, False), (1, 1, 64)),
    "wide": ((128, 1056, True), (3, 40, 128)),
}


def case(name):
    (k, n, bias), shape = CASES[name]
    torch.manual_seed(0)
    module = Linears(k, n, bias).to(torch.bfloat16).eval()
    return module, torch.randn(*shape).to(torch.bfloat16)


def _bf16_build():
    if "avx512bf16" not in cpu_dispatch.target_isas(parse_target("cpu")):
        pytest.skip("this CPU has no AVX-512 BF16")


@pytest.mark.parametrize("isa", ["avx512bf16", "avx512amx_emu"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_matches_pytorch_and_iree(name, isa):
    """Both of the kernel's paths: VDPBF16PS, and the AMX tiles' (emulated in C here) for the
    whole 32s of rows."""
    _bf16_build()
    module, x = case(name)
    with cpu_dispatch.force_isa(isa):
        compiled = flashlift.compile_model(module, (x,))
    assert [s.path for s in compiled.report.linears] == [f"flashlift-cpu {isa}"] * 4, str(compiled.report)
    with torch.no_grad():
        ref = module.float()(x.float())
        module.to(torch.bfloat16)
    out = compiled(x)
    assert out.dtype == torch.bfloat16 and not out.isnan().any()
    err = rel_err(out.float(), ref)
    assert err < BF16_TOL
    iree = flashlift.compile_model(module, (x,))
    assert err < 1.25 * rel_err(iree(x).float(), ref)


def test_only_where_the_cpu_has_amx():
    """Without AMX (and nothing forced) IREE keeps the linear layers and no record is made;
    cpu:sapphirerapids takes the AMX build (compiled here, run by cpu_numerics.py)."""
    module, x = case("rows_100")
    if cpu_gemm_dispatch.ISA not in cpu_dispatch.target_isas(parse_target("cpu")):
        assert flashlift.compile_model(module, (x,)).report.linears == []
    spr = flashlift.compile_model(module, (x,), target="cpu:sapphirerapids")
    assert [s.path for s in spr.report.linears] == ["flashlift-cpu avx512amx"] * 4, str(spr.report)


def test_f32_layers_stay_with_iree():
    _bf16_build()
    module, x = case("rows_128")
    module.float()
    with cpu_dispatch.force_isa("avx512bf16"):
        report = flashlift.compile_model(module, (x.float(),)).report
    assert {s.path for s in report.linears} == {"iree-codegen"}
    assert all("element type f32" in s.path_reason for s in report.linears), str(report)
