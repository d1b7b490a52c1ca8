"""A saved module loads and runs with the IREE runtime alone."""

import os
import subprocess
import sys
import textwrap

import torch

import flashlift
from test_foundation import PlainAttention

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_save_then_load_in_a_process_without_the_compiler(tmp_path):
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 4, 16, 8) for _ in range(3))
    compiled = flashlift.compile_model(PlainAttention(), (q, k, v))
    path = tmp_path / "attn.flashlift"
    compiled.save(str(path))
    torch.save((q, k, v, PlainAttention()(q, k, v)), tmp_path / "io.pt")
    script = textwrap.dedent(f"""
        import sys
        class Block:  # any import of the compiler or torch-mlir fails loudly
            def find_spec(self, name, path=None, target=None):
                if name.startswith(("iree.compiler", "torch_mlir")):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
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
