"""What the compiled module takes and returns is what the model takes and returns: float64
stays float64 (IREE demoted it to float32 in the module while the description said
float64), non-tensor results come back as the constants they were, and results that are
neither are refused by name."""

import pytest
import torch

import flashlift
from flashlift.errors import ImportError_


class F64Attention(torch.nn.Module):
    def forward(self, q, k, v):
        scores = q @ k.transpose(-1, -2) / 4.0
        return torch.softmax(scores, -1) @ v, q * 3 + 1


def test_float64_model_takes_and_returns_float64(tmp_path):
    q, k, v = (torch.randn(2, 2, 16, 8, dtype=torch.float64) for _ in range(3))
    compiled = flashlift.compile_model(F64Attention(), (q, k, v))
    assert [s["dtype"] for s in compiled.meta["inputs"] + compiled.meta["outputs"]] == ["float64"] * 5
    assert any("float64" in note for note in compiled.report.notes)
    compiled.save(str(tmp_path / "f64.flashlift"))
    attn, affine = flashlift.load(str(tmp_path / "f64.flashlift"))(q, k, v)
    ref_attn, ref_affine = F64Attention()(q, k, v)
    assert attn.dtype == affine.dtype == torch.float64
    assert (affine - ref_affine).abs().max().item() < 1e-13  # computed in float64 (was float32: ~1e-7)
    assert ((attn - ref_attn).norm() / ref_attn.norm()).item() < 1e-6  # IREE's attention: f32 accuracy


class TensorAndInt(torch.nn.Module):
    def forward(self, x):
        return x * 2, 3


class Nothing(torch.nn.Module):
    def forward(self, x):
        return None


def test_a_tensor_and_an_int_come_back_as_they_were(tmp_path):
    x = torch.randn(2, 3)
    compiled = flashlift.compile_model(TensorAndInt(), (x,))
    compiled.save(str(tmp_path / "m.flashlift"))
    for model in (compiled, flashlift.load(str(tmp_path / "m.flashlift"))):
        out, three = model(x)
        assert torch.equal(out, x * 2) and three == 3 and type(three) is int


def test_a_model_returning_none_returns_none(tmp_path):
    x = torch.randn(2, 3)
    compiled = flashlift.compile_model(Nothing(), (x,))
    assert compiled.meta["outputs"] == []
    compiled.save(str(tmp_path / "none.flashlift"))
    assert compiled(x) is None and flashlift.load(str(tmp_path / "none.flashlift"))(x) is None


@pytest.mark.parametrize("result, kind", [(lambda x: x.dtype, "dtype"), (lambda x: {1, 2}, "set")])
def test_results_that_are_neither_tensors_nor_constants_are_refused_by_kind(result, kind):
    class Odd(torch.nn.Module):
        def forward(self, x):
            return x * 2, result(x)

    with pytest.raises(ImportError_, match=rf"Odd: the model returns a {kind}; flashlift returns tensors in tuples"):
        flashlift.compile_model(Odd(), (torch.randn(2, 3),))
