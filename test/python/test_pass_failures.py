"""A pass that fails on a site leaves it as written and reports it; the compile goes on.

Failures are injected into raise-attention (an exception in the analysis, one while
building, and a rewrite that builds IR which does not verify): each compile must succeed,
report the site with the failure, and still match PyTorch (the unraised path).
"""

import math

import pytest
import torch

import flashlift
from flashlift.passes import ir as irx
from flashlift.passes import attention_builder, raise_attention
from flashlift.reference import reference
from conftest import rel_err


class Attention(torch.nn.Module):
    def forward(self, q, k, v, mask):
        s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask
        return torch.softmax(s, -1) @ v


def _args():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 8, 16, generator=g) for _ in range(3))
    return q, k, v, torch.zeros(2, 1, 1, 8)


def _invalid_collapse(self, out, groups, target):
    """What raise-attention once built for batch 1 with one head: an empty reassociation."""
    import iree.compiler.ir as ir

    t = ir.RankedTensorType(out.type)
    return ir.Operation.create("tensor.collapse_shape", results=[ir.RankedTensorType.get([1] + list(t.shape), t.element_type)],
                               operands=[out], attributes={"reassociation": irx.reassociation_attr([[]] + [[i] for i in range(t.rank)])}).results[0]


def _boom(*args, **kwargs):
    raise RuntimeError("injected failure")


@pytest.mark.parametrize("where, expected", [
    ("analyze", "RuntimeError: injected failure"),
    ("build", "RuntimeError: injected failure"),
    ("invalid_ir", "built invalid IR"),
])
def test_injected_failure_leaves_site_as_written(monkeypatch, where, expected):
    if where == "analyze":
        monkeypatch.setattr(raise_attention, "analyze", _boom)
    elif where == "build":
        monkeypatch.setattr(attention_builder.MaskBuilder, "build", _boom)
    else:
        monkeypatch.setattr(attention_builder.Builder, "regroup", _invalid_collapse)
    model, args = Attention(), _args()
    compiled = flashlift.compile_model(model, args)
    report = compiled.report
    assert not report.raised and len(report.rejected) == 1, str(report)
    reason = report.rejected[0].reason
    assert "raise-attention failed on this site" in reason and expected in reason and "left as written" in reason, reason
    assert rel_err(compiled(*args), reference(model, *args)) < 1e-5
