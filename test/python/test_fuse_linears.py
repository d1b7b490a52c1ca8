"""fuse-linears end to end: linear layers reading one input compiled as one GEMM give PyTorch's
answer (f32 relative error 1e-5, f16 5e-3) and the unfused module's, are reported by module
path, keep working with swapped weights (the concatenation is computed from the parameters
when the module loads), and layers that do not qualify are left apart."""

import sys
import os

import pytest
import torch

import flashlift
from flashlift.compiler.pipeline import pipeline_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class GroupedQKV(torch.nn.Module):
    """Grouped-query projections (K, V narrower than Q), a SwiGLU MLP, and a layer on another input."""

    def __init__(self, d=32, kv=16, ffn=48):
        super().__init__()
        self.q, self.k, self.v = torch.nn.Linear(d, d), torch.nn.Linear(d, kv), torch.nn.Linear(d, kv)
        self.gate, self.up = torch.nn.Linear(d, ffn, bias=False), torch.nn.Linear(d, ffn, bias=False)
        self.other = torch.nn.Linear(d, kv)

    def forward(self, x, y):
        q, k, v = self.q(x), self.k(x), self.v(x)
        mlp = torch.nn.functional.silu(self.gate(x)) * self.up(x)
        return q, k * v, mlp, self.other(y)


def _rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def _inputs(dtype=torch.float32):
    gen = torch.Generator().manual_seed(1)
    return tuple(torch.randn(2, 6, 32, generator=gen).to(dtype) for _ in range(2))


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float16, 5e-3)])
def test_fused_layers_give_pytorchs_answer(dtype, tol):
    torch.manual_seed(0)
    model = GroupedQKV().eval().to(dtype)
    args = _inputs(dtype)
    fused = flashlift.compile_model(model, args, fuse_linears=True)   # every group (no attention reads them)
    apart = flashlift.compile_model(model, args, fuse_linears=False)
    want, got, unfused = model(*args), fused(*args), apart(*args)
    for w, g, u in zip(want, got, unfused):
        assert not torch.isnan(g).any()
        assert _rel(g, w) < tol and _rel(g, u) < tol
    layers = sorted(tuple(f["layers"]) for f in fused.report.fused)
    assert layers == [("gate", "up"), ("q", "k", "v")], fused.report.fused
    assert apart.report.fused == []
    qkv = next(f for f in fused.report.fused if f["layers"][0] == "q")
    assert qkv["shape"] == [12, 32, 64]  # [M, K, 32 + 16 + 16]
    assert "q, k, v -> one GEMM [12 x 32] x [32 x 64]" in str(fused.report)


def test_swapped_weights_reach_the_fused_gemm(tmp_path):
    torch.manual_seed(0)
    model = GroupedQKV().eval()
    args = _inputs()
    compiled = flashlift.compile_model(model, args, fuse_linears=True)
    tuned = GroupedQKV().eval()
    tuned.load_state_dict({k: v + 0.1 * torch.randn_like(v) for k, v in model.state_dict().items()})
    swapped = compiled.with_parameters(tuned.state_dict())
    for g, w in zip(swapped(*args), tuned(*args)):
        assert _rel(g, w) < 1e-5
    compiled.save(tmp_path / "m.flashlift")
    loaded = flashlift.load(tmp_path / "m.flashlift", parameters=tuned.state_dict())
    for g, w in zip(loaded(*args), tuned(*args)):
        assert _rel(g, w) < 1e-5


def test_the_seed_module_report_shows_the_fused_qkv():
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    from slapo_attention import Attention

    torch.manual_seed(0)
    model = Attention(64, 4).eval()
    x = torch.randn(2, 8, 64)
    compiled = flashlift.compile_model(model, (x,))
    text = str(compiled.report)
    assert "self_attn.{q_proj, k_proj, v_proj} -> one GEMM [16 x 64] x [64 x 192]" in text, text
    assert len(compiled.report.raised) == 1
    from flashlift.reference import reference

    assert _rel(compiled(x), reference(model, x)) < 1e-5


class AttentionAndMLP(torch.nn.Module):
    """Q, K, V projections read only by the attention, and a SwiGLU MLP on the same input."""

    def __init__(self, d=128, heads=2):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (torch.nn.Linear(d, d) for _ in range(3))
        self.gate, self.up = torch.nn.Linear(d, d, bias=False), torch.nn.Linear(d, d, bias=False)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = (p(x).view(b, s, self.heads, -1).transpose(1, 2) for p in (self.q, self.k, self.v))
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, s, d)
        return o + torch.nn.functional.silu(self.gate(x)) * self.up(x)


def test_reads_attention_fuses_only_what_the_attention_reads_in_place():
    """fuse-linears{reads=attention} (CUDA's default): Q, K, V become one GEMM whose result the
    CUDA attention kernel reads at its columns; gate/up (read by the SwiGLU, whose slices would
    be copies) stay two GEMMs. fuse_linears=True (every group) fuses both."""
    pytest.importorskip("triton")
    from iree.compiler import ir

    from flashlift.compiler.importer import import_model
    from flashlift.compiler.pipeline import run_pipeline

    x = torch.randn(2, 64, 128).half()
    text = import_model(AttentionAndMLP().eval().half(), (x,), parameters="archive").text
    only_attention = pipeline_for("cuda:sm_90")  # the CUDA default
    assert "fuse-linears{reads=attention}" in only_attention
    for pipeline, groups in ((only_attention, 1), (pipeline_for("cuda:sm_90", fuse_linears=True), 2)):
        records = [r for r in run_pipeline(ir.Module.parse(text, ir.Context()), pipeline) if hasattr(r, "kind")]
        fused = [r for r in records if r.kind == "linears"]
        assert len(fused) == groups, fused
        (att,) = [r for r in records if r.stage == "dispatch-attention"]
        assert att.outcome == "triton-fa sm_90" and "Q cols 0:128 of [128, 384]" in att.details["kernel"]["layout"], att
