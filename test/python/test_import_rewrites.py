"""The importer's graph rewrites for what torch-mlir 20261001 rejects: each model below fails to
import without its rewrite (compiler/importer.py) and matches PyTorch with it."""

import pytest
import torch
import torch.nn.functional as F

import flashlift
from conftest import rel_err


class ViewAfterSdpa(torch.nn.Module):
    """SDPA, heads merged with `.contiguous()`, then `.view` (GPT-2's Conv1D does this): the
    exported view is of a tensor that is permuted once SDPA is decomposed."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(32, 32)

    def forward(self, q, k, v):
        b, h, n, d = q.shape
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, h * d).contiguous()
        return self.proj(o.view(-1, h * d))


class FrozenIndex(torch.nn.Module):
    """`table[index]` with a buffer index (Swin's relative position bias)."""

    def __init__(self, persistent):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(7, 2))
        self.register_buffer("index", torch.arange(4)[:, None] - torch.arange(4)[None, :] + 3, persistent=persistent)

    def forward(self, x):
        return x + self.table[self.index].permute(2, 0, 1)


@pytest.mark.parametrize("model, shapes", [
    (ViewAfterSdpa(), [(2, 4, 8, 8)] * 3),
    (FrozenIndex(persistent=False), [(2, 4, 4)]),
    (FrozenIndex(persistent=True), [(2, 4, 4)]),
], ids=["view-after-sdpa", "frozen-index", "frozen-index-persistent"])
def test_importer_rewrites_what_torch_mlir_rejects(model, shapes):
    torch.manual_seed(0)
    args = tuple(torch.randn(s) for s in shapes)
    assert rel_err(flashlift.compile_model(model, args)(*args), model(*args)) < 1e-5
