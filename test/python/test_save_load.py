"""A saved module loads and runs with the IREE runtime alone."""

import os
import subprocess
import sys
import textwrap

import torch

import flashlift
from conftest import runtime_only
from test_foundation import PlainAttention

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_save_then_load_in_a_process_without_the_compiler(tmp_path):
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 4, 16, 8) for _ in range(3))
    compiled = flashlift.compile_model(PlainAttention(), (q, k, v))
    path = tmp_path / "attn.flashlift"
    compiled.save(str(path))
    torch.save((q, k, v, PlainAttention()(q, k, v)), tmp_path / "io.pt")
    script = runtime_only() + textwrap.dedent(f"""
        import torch, flashlift
        q, k, v, ref = torch.load({str(tmp_path / 'io.pt')!r})
        model = flashlift.load({str(path)!r})
        out = model(q, k, v)
        err = ((out - ref).norm() / ref.norm()).item()
        assert err < 1e-5, err
        assert len(model.report.raised) == 1
        assert not any(m.startswith(("iree.compiler", "torch_mlir")) for m in sys.modules)
        print("ok", err)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_saved_model_output_without_transformers_where_it_runs(tmp_path):
    """A module returning a transformers ModelOutput, called by keyword: loaded where
    transformers is importable it returns that class, elsewhere a dict-like OutputDict."""
    import pytest

    pytest.importorskip("transformers")
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    class Pooled(torch.nn.Module):
        def forward(self, pixel_values, attention_mask=None):
            h = pixel_values * attention_mask[..., None]
            return BaseModelOutputWithPooling(last_hidden_state=h, pooler_output=h.mean(1))

    x, m = torch.randn(2, 5, 4), (torch.rand(2, 5) > 0.5).float()
    path = tmp_path / "pooled.flashlift"
    flashlift.compile_model(Pooled(), kwargs={"attention_mask": m, "pixel_values": x}).save(str(path))
    here = flashlift.load(str(path))(pixel_values=x, attention_mask=m)
    assert type(here) is BaseModelOutputWithPooling and torch.allclose(here.pooler_output, (x * m[..., None]).mean(1))
    torch.save((x, m, here.last_hidden_state, here.pooler_output), tmp_path / "io.pt")
    script = runtime_only("transformers") + textwrap.dedent(f"""
        import torch, flashlift
        from flashlift.structure import OutputDict
        x, m, h, p = torch.load({str(tmp_path / 'io.pt')!r})
        out = flashlift.load({str(path)!r})(attention_mask=m, pixel_values=x)
        assert isinstance(out, OutputDict) and out.class_name == "BaseModelOutputWithPooling", type(out)
        assert torch.equal(out.last_hidden_state, h) and torch.equal(out["pooler_output"], p) and out[1] is out.pooler_output
        assert out.attentions is None
        assert not any(n.startswith(("iree.compiler", "torch_mlir", "transformers")) for n in sys.modules)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")
