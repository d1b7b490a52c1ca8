"""`attn-opt --pipeline=<target>` runs exactly what compile_model runs before iree-compile.

For each target the IR attn-opt prints for the imported module equals, character for
character, the IR driver.lower hands to iree-compile (the raising, layouts, flashlift's
kernels where they cover an op, the lowering configs), and the pipeline lists each step.
"""

import math
import os
import subprocess
import sys
import tempfile

import pytest
import torch

from flashlift.compiler import driver
from flashlift.compiler.importer import import_model
from flashlift.compiler.pipeline import pipeline_for
from flashlift.compiler.targets import parse_target


class Block(torch.nn.Module):
    """A masked attention and a linear layer: every step of every target has work."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(64, 64)

    def forward(self, q, k, v, mask):
        s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask
        o = torch.softmax(s.float(), -1).to(q.dtype) @ v
        return self.proj(o.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1))


@pytest.mark.parametrize("target", ["cpu", "cuda:sm_90", "cuda", "rocm", "vulkan"])
def test_attn_opt_pipeline_reproduces_compile_model(target):
    dtype = torch.float32 if target == "cpu" else torch.float16
    q, k, v = (torch.randn(2, 1, 128, 64).to(dtype) for _ in range(3))
    mask = torch.zeros(2, 1, 1, 128).to(dtype)
    model = Block().to(dtype)
    text = import_model(model, (q, k, v, mask)).text
    lowered = driver.lower(text, parse_target(target)).text
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.mlir")
        with open(src, "w") as f:
            f.write(text)
        attn_opt = os.path.join(os.path.dirname(sys.executable), "attn-opt")
        out = subprocess.run([attn_opt, src, f"--pipeline={target}", "--mlir-print-debuginfo"],
                             capture_output=True, text=True, check=True).stdout
    assert out == lowered
    assert "iree_linalg_ext.attention" in lowered or "flow.dispatch @flashlift_fa" in lowered
    assert "flashlift.site" not in lowered  # the records' site ids stay with flashlift


def test_pipelines_list_their_steps():
    assert pipeline_for("cpu").endswith("canonicalize-layouts,dispatch-attention{target=cpu kernels=on},"
                                        "dispatch-norms{target=cpu kernels=on},pretranspose-keys,"
                                        "causal-split,annotate-lowering{target=cpu},drop-site-ids,externalize-parameters)")
    sm90 = pipeline_for("cuda:sm_90")
    assert ("dispatch-attention{target=cuda:sm_90 kernels=on},dispatch-norms{target=cuda:sm_90},"
            "dispatch-gemms{target=cuda:sm_90},dispatch-rotary{target=cuda:sm_90}") in sm90
    assert "kernels=off" in pipeline_for("cuda:sm_90", use_kernels=False)
    assert "raise-attention" not in pipeline_for("cpu", raise_attention=False)
    assert "canonicalize-layouts" not in pipeline_for("vulkan")  # raised, then decomposed by IREE for SPIR-V
    # fuse-linears: every group on the CPU, on CUDA with kernels only what the attention kernel
    # reads in place, none where IREE's codegen reads the slices (copies); either way on request
    assert "fuse-linears{reads=attention}," in pipeline_for("cpu") and "fuse-linears{reads=attention}," in sm90
    assert "fuse-linears," in pipeline_for("cpu", fuse_linears=True)
    assert "fuse-linears" not in pipeline_for("cuda:sm_90", use_kernels=False)
    assert "fuse-linears" not in pipeline_for("rocm") and "fuse-linears" not in pipeline_for("cuda:sm_86")
    assert "fuse-linears," in pipeline_for("cuda:sm_90", fuse_linears=True)
    assert "fuse-linears" not in pipeline_for("cpu", fuse_linears=False)
    # a CPU with AMX (measured on Sapphire Rapids: Q/K/V apart faster) fuses none by default
    assert "fuse-linears" not in pipeline_for("cpu:sapphirerapids")
    assert "fuse-linears," in pipeline_for("cpu:sapphirerapids", fuse_linears=True)
    assert "fuse-linears" not in pipeline_for("cuda:sm_90", fuse_linears=False)
    # the GELU / SwiGLU epilogues of the GEMM kernel: on unless asked off
    assert "dispatch-gemms{target=cuda:sm_90 activations=off}" in pipeline_for("cuda:sm_90", fuse_activations=False)


def test_dispatch_records_name_the_raise_record_they_came_from():
    """On CUDA the raised op's dispatch record carries the raise record's index (its site id),
    so the report joins them by number, not by location text."""
    q, k, v = (torch.randn(2, 1, 128, 64).half() for _ in range(3))
    mask = torch.zeros(2, 1, 1, 128).half()
    lowered = driver.lower(import_model(Block().half(), (q, k, v, mask)).text, parse_target("cuda:sm_90"))
    raised = [r.site for r in lowered.of("raise-attention") if r.outcome == "raised"]
    dispatched = lowered.of("dispatch-attention")
    assert raised == [0] and [r.site for r in dispatched] == raised
