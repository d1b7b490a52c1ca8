"""Every attention spelling in test/zoo.py through compile_model on the CPU.

Each case: the number of raised sites equals the case's expectation (0 for near-misses, which
must still compile and give PyTorch's answer), and the output matches PyTorch with inference
semantics. Tolerances: relative error under 1e-4 in f32 and 5e-3 in f16.
"""

import pytest
import torch

import flashlift
from flashlift.reference import reference
from conftest import rel_err
from zoo import CASES, instantiate

TOL = {"f32": 1e-4, "f16": 5e-3}
PARAMS = [pytest.param(case, dt, id=f"{case.name}-{dt}") for case in CASES for dt in case.dtypes]


@pytest.mark.parametrize("case,dtype", PARAMS)
def test_zoo_case(case, dtype):
    module, inputs = instantiate(case, dtype)
    compiled = flashlift.compile_model(module, inputs)
    report = compiled.report
    assert len(report.raised) == case.expect_raised, str(report)
    assert all(s.details["dtype"] == dtype for s in report.raised), str(report)
    if case.expect_raised == 0 and case.candidate:
        assert report.rejected, "a near-miss must be reported with its reason:\n" + str(report)
    outs = compiled(*inputs)
    refs = reference(module, *inputs)
    outs, refs = (x if isinstance(x, tuple) else (x,) for x in (outs, refs))
    assert len(outs) == len(refs)
    for out, ref in zip(outs, refs):
        assert out.shape == ref.shape and out.dtype == ref.dtype
        if not case.stochastic:
            assert rel_err(out, ref) < TOL[dtype], str(report)
