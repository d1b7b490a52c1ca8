"""The CPU lowering config's tile lists follow the dispatch's exact dims (lowering.dispatch_roles).

IREE copies the lists verbatim onto the op after dropping unit dims and collapsing dims every
operand reads together; a list of the wrong rank tiles the wrong dims (a shifted list once
tiled k1 and gave LLaMA a wrong softmax). A padding mask over (b, k2) keeps b and h apart;
a grouped-query group r that a [B, M, K2] mask does not read stays apart from m. These are
IREE codegen's configs: compiled with use_kernels=False (flashlift's CPU kernel takes these
f32 ops otherwise).
"""

import math

import pytest
import torch

from flashlift.compiler import driver
from flashlift.compiler.importer import import_model
from flashlift.compiler.targets import parse_target


class Masked(torch.nn.Module):
    def forward(self, q, k, v, mask):
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask, -1) @ v


class GroupedMasked(torch.nn.Module):
    def forward(self, q, k, v, mask):
        b, kvh, s, d = k.shape
        k = k[:, :, None].expand(b, kvh, 2, s, d).reshape(b, kvh * 2, s, d)
        v = v[:, :, None].expand(b, kvh, 2, s, d).reshape(b, kvh * 2, s, d)
        return Masked()(q, k, v, mask)


def _config(model, args) -> str:
    low = driver.lower(import_model(model, args).text, parse_target("cpu"), use_kernels=False)
    [line] = [l for l in low.text.splitlines() if l.startswith("#config")]
    return line


@pytest.mark.parametrize("mask_shape, distribution", [
    ((2, 1, 1, 64), "[1, 1, 32, 16, 0, 0]"),   # (b | h | m, n, k1, k2): b read by the mask, h not
    ((2, 4, 64, 64), "[1, 32, 16, 0, 0]"),     # (b h) collapse: every operand reads both
    ((64, 64), "[1, 32, 16, 0, 0]"),            # (b h): the mask reads neither
])
def test_masked_dispatch_rank(mask_shape, distribution):
    q, k, v = (torch.randn(2, 4, 64, 16) for _ in range(3))
    assert f"distribution = {distribution}" in _config(Masked(), (q, k, v, torch.zeros(mask_shape)))


def test_grouped_query_with_full_mask_keeps_group_apart():
    q = torch.randn(2, 4, 64, 16)
    k, v = torch.randn(2, 2, 64, 16), torch.randn(2, 2, 64, 16)
    # (b | g | r | m, n, k1, k2): the [B, 1, M, K2] mask reads b and m, not g or r (m spans two
    # loops of the op, so its size is taken as unknown: the large-m tile 64)
    assert "distribution = [1, 1, 1, 64, 16, 0, 0]" in _config(GroupedMasked(), (q, k, v, torch.zeros(2, 1, 64, 64)))
