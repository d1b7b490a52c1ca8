"""End to end on the CPU: import, raise, compile, run; the report; raise_attention=False.

Tolerances (relative error ||out - ref|| / ||ref|| against PyTorch eager with dropout as identity):
1e-5 in f32, 2e-3 in f16.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import flashlift
from flashlift.reference import reference
from conftest import rel_err

TOL = {torch.float32: 1e-5, torch.float16: 2e-3}


class PlainAttention(torch.nn.Module):
    def forward(self, q, k, v):
        s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        return torch.matmul(F.softmax(s, dim=-1), v)


def test_seed_attention_raised_and_matches(slapo):
    torch.manual_seed(0)
    model = slapo.Attention(hidden_size=64, n_heads=4)
    x = torch.randn(2, 16, 64)
    compiled = flashlift.compile_model(model, (x,))
    report = compiled.report
    assert [s.module_path for s in report.raised] == ["self_attn"]
    assert report.rejected == []
    assert report.raised[0].source.endswith("slapo_attention.py:52")
    assert {d["module_path"] for d in report.dropouts} == {"self_attn", "proj.dropout"}
    text = str(report)
    assert "raised 1 attention site" in text and "self_attn (slapo_attention.py:52)" in text
    assert rel_err(compiled(x), reference(model, x)) < TOL[torch.float32]
    # fresh inputs of the same shape, not the example ones
    x2 = torch.randn(2, 16, 64)
    assert rel_err(compiled(x2), reference(model, x2)) < TOL[torch.float32]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["f32", "f16"])
@pytest.mark.parametrize("shape", [(2, 4, 16, 32), (8, 16, 32)], ids=["4d", "3d"])
def test_plain_attention(dtype, shape):
    torch.manual_seed(1)
    q, k, v = (torch.randn(*shape, dtype=dtype) for _ in range(3))
    compiled = flashlift.compile_model(PlainAttention(), (q, k, v))
    assert len(compiled.report.raised) == 1
    q, k, v = (torch.randn(*shape, dtype=dtype) for _ in range(3))
    out = compiled(q, k, v)
    assert out.dtype == dtype and out.shape == q.shape
    ref = PlainAttention()(q.float(), k.float(), v.float())
    assert rel_err(out, ref) < TOL[dtype]


def test_raise_attention_false_compiles_as_written():
    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 4, 16, 32) for _ in range(3))
    compiled = flashlift.compile_model(PlainAttention(), (q, k, v), raise_attention=False)
    assert compiled.report.raised == [] and compiled.report.raise_attention is False
    assert "raising disabled" in str(compiled.report)
    assert rel_err(compiled(q, k, v), PlainAttention()(q, k, v)) < TOL[torch.float32]


def test_import_model_has_module_locations(slapo):
    text = flashlift.import_model(slapo.Attention(32, 2), (torch.randn(1, 4, 32),))
    assert "linalg.batch_matmul" in text
    assert 'loc("self_attn"(' in text and "slapo_attention.py" in text


def test_multiple_outputs_and_inputs():
    class Two(torch.nn.Module):
        def forward(self, q, k, v):
            o = PlainAttention()(q, k, v)
            return o, o.sum(-1)

    q, k, v = (torch.randn(2, 8, 16) for _ in range(3))
    out, total = flashlift.compile_model(Two(), (q, k, v))(q, k, v)
    ref = PlainAttention()(q, k, v)
    assert rel_err(out, ref) < 1e-5 and rel_err(total, ref.sum(-1)) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["f32", "f16"])
@pytest.mark.parametrize("seq", [12, 16])
def test_computed_mask_with_partial_key_tile(dtype, seq):
    """A mask computed in the model (T5: position bias + padding) with a key length that is not
    a multiple of the CPU tile: IREE fused the mask producer into the attention dispatch and got
    f16 wrong under our tuned config. The mask operand is now fenced; this must stay right."""

    class BiasedAttention(torch.nn.Module):
        def forward(self, q, k, v, bias, pad):
            s = q @ k.transpose(-1, -2) + (bias + pad)
            return torch.softmax(s.float(), -1).to(q.dtype) @ v

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, seq, 16, dtype=dtype) for _ in range(3))
    bias = torch.randn(1, 4, seq, seq).to(dtype)
    pad = torch.zeros(2, 1, 1, seq, dtype=dtype)
    pad[1, ..., seq - 3:] = -65504.0
    compiled = flashlift.compile_model(BiasedAttention(), (q, k, v, bias, pad))
    assert len(compiled.report.raised) == 1
    ref = BiasedAttention()(q.float(), k.float(), v.float(), bias.float(), pad.float())
    assert rel_err(compiled(q, k, v, bias, pad), ref) < TOL[dtype]


def test_aliased_example_inputs_stay_separate_inputs():
    """torch.export merges arguments that share memory; a model exported with (q, q, q) must still
    read k and v from their own arguments when called with distinct tensors."""
    q = torch.randn(2, 4, 16, 8)
    compiled = flashlift.compile_model(PlainAttention(), (q, q, q[:]))
    q, k, v = (torch.randn(2, 4, 16, 8) for _ in range(3))
    assert rel_err(compiled(q, k, v), PlainAttention()(q, k, v)) < TOL[torch.float32]
