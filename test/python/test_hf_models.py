"""Real models (tiny random Hugging Face configs, eager attention) through compile_model on the CPU.

Every attention layer is raised (the report's count equals the number of layers, each named
by its PyTorch module path) and taken by the CPU kernel where this CPU runs it, and the
output matches PyTorch: relative error under 1e-4 in f32 and 5e-3 in f16.
"""

import pytest
import torch

import flashlift
from flashlift.compiler import cpu_dispatch
from flashlift.compiler.targets import parse_target
from flashlift.reference import reference
from conftest import rel_err

hf_models = pytest.importorskip("hf_models")
TOL = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}


@pytest.mark.parametrize("dtype", ["f32", "f16"])
@pytest.mark.parametrize("name", sorted(hf_models.BUILDERS))
def test_hf_model(name, dtype):
    check_model(name, dtype)


@pytest.mark.parametrize("name", ["deberta_v2", "llama"])
def test_hf_model_bf16(name):
    """bf16, where two models once failed to compile: DeBERTa-v2's scale (bf16 scalar
    arithmetic IREE hoisted to the host until fold-scalars learned bf16) and LLaMA's rotary
    frequencies (a bf16 buffer IREE's folding broke as a dense_resource, see literals.py)."""
    check_model(name, "bf16")


def check_model(name, dtype):
    model, inputs, layers = hf_models.BUILDERS[name](dtype)
    compiled = flashlift.compile_model(model, inputs)
    report = compiled.report
    assert len(report.raised) == layers, str(report)
    paths = [s.module_path for s in report.raised]
    assert len(set(paths)) == layers and all(p and p != "<top>" for p in paths), str(report)
    # the op computes in the model's precision (not on an f32 value from before a cast)
    assert all(s.details["dtype"] == dtype for s in report.raised), str(report)
    assert rel_err(compiled(*inputs), reference(model, *inputs)) < TOL[dtype], str(report)
    # and flashlift's CPU kernel takes each (where this CPU runs it): its masks as the models
    # make them (BLOOM's and T5's with a row per head), DeBERTa's scale once folded to a constant
    if not cpu_dispatch.unavailable(parse_target("cpu")):
        assert all(s.path.startswith("flashlift-cpu") for s in report.raised), str(report)
