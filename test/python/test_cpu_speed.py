"""The CPU speed rewrites keep PyTorch's answer: causal-split (compiler/causal_split.py) and
the CPU tile choice (compiler/lowering_cpu.py). Both shape the ops IREE's codegen compiles:
what flashlift's CPU kernel does not take (f16, run-time masks, other CPUs), and every op with
use_kernels=False, which these tests compile with (test_cpu_kernel.py tests the kernel).

Random inputs; tolerance: relative error under 1e-5 in f32 and 2e-3 in f16 against
PyTorch (reference() with f32 softmax, as the models write it). Small shapes (query
lengths of a few 32-row chunks, one not a multiple of 32) keep each compile short.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import flashlift
from flashlift.compiler import driver
from flashlift.compiler.importer import check_example_args, import_model
from flashlift.compiler.lowering_cpu import cpu_attention_attrs
from flashlift.compiler.targets import parse_target
from flashlift.reference import reference
from conftest import rel_err

TOL = {torch.float32: 1e-5, torch.float16: 2e-3}


class Causal(torch.nn.Module):
    """softmax(Q K^T / sqrt(d) + causal) V; `align` "top_left" (key j hidden iff j > i) or
    "bottom_right" (iff j > i + Skv - Sq), `masked_fill` with -inf or an additive float mask."""

    def __init__(self, align="top_left", additive=False):
        super().__init__()
        self.align, self.additive = align, additive

    def forward(self, q, k, v):
        sq, skv = q.shape[-2], k.shape[-2]
        s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        keep = torch.ones(sq, skv, dtype=torch.bool).tril(0 if self.align == "top_left" else skv - sq)
        if self.additive:
            s = s + torch.zeros(sq, skv).masked_fill(~keep, torch.finfo(torch.float32).min).to(s.dtype)
        else:
            s = s.masked_fill(~keep, float("-inf"))
        return torch.matmul(F.softmax(s.float(), dim=-1).to(q.dtype), v)


class Banded(Causal):
    """Near-miss: causal and also hiding keys more than 8 behind (a sliding window)."""

    def forward(self, q, k, v):
        sq, skv = q.shape[-2], k.shape[-2]
        s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        keep = torch.ones(sq, skv, dtype=torch.bool).tril().triu(-8)
        return torch.matmul(F.softmax(s.masked_fill(~keep, float("-inf")).float(), dim=-1).to(q.dtype), v)


def _lowered_text(module, inputs) -> str:
    imported = import_model(module, check_example_args(inputs))
    return driver.lower(imported.text, parse_target("cpu"), func_name=imported.func_name, use_kernels=False).text


def _check(module, inputs, ops: int):
    """Compiles for the CPU, checks the number of attention ops handed to IREE (`ops`: one per
    32-row chunk when split) and the answer."""
    text = _lowered_text(module, inputs)
    assert text.count("iree_linalg_ext.attention") == ops, text
    assert ("tensor.concat" in text) == (ops > 1)
    compiled = flashlift.compile_model(module, inputs, use_kernels=False)
    assert len(compiled.report.raised) == 1, str(compiled.report)
    out, ref = compiled(*inputs), reference(module, *inputs)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert rel_err(out, ref) < TOL[inputs[0].dtype]


def _qkv(b, h, sq, skv, d, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, s, d, generator=g).to(dtype) for s in (sq, skv, skv))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["f32", "f16"])
def test_top_left_square(dtype):
    # 100 queries: chunks of 32, 32 and 36 rows (a 4-row remainder joins the last chunk).
    _check(Causal(), _qkv(1, 2, 100, 100, 16, dtype), ops=3)


def test_top_left_remainder_chunk():
    # 80 queries: chunks of 32, 32 and 16 rows.
    _check(Causal(), _qkv(1, 2, 80, 80, 16, torch.float32, seed=4), ops=3)


def test_bottom_right_more_keys():
    # Sq=64 < Skv=96, the last query sees every key: chunk 0 reads keys [0, 64), chunk 1 all 96.
    _check(Causal("bottom_right", additive=True), _qkv(2, 2, 64, 96, 16, torch.float32, seed=1), ops=2)


def test_top_left_more_keys():
    # Sq=64 < Skv=96 aligned top-left (keys 64..95 hidden from everyone): chunk 0 reads
    # keys [0, 32), chunk 1 [0, 64); the hidden tail is never read.
    _check(Causal("top_left"), _qkv(1, 3, 64, 96, 16, torch.float32, seed=2), ops=2)


def test_near_miss_banded_mask_not_split():
    _check(Banded(), _qkv(1, 2, 64, 64, 16, torch.float32, seed=3), ops=1)


def test_small_query_length_distribution_tile():
    """Query lengths up to 128 take 32 rows per workgroup, longer ones 64 (both clamped
    to m); the vector tiles do not change."""
    attrs = lambda m: cpu_attention_attrs([1, 12], m, 64, m, 64, "f32", k_transposed=True)["compilation_info"]
    assert "distribution = [1, 32, 64, 0, 0]" in attrs(128)
    assert "distribution = [1, 64, 64, 0, 0]" in attrs(256)
    assert "distribution = [1, 16, 64, 0, 0]" in attrs(16)
    assert all("vector_common_parallel = [1, 4, 64, 0, 0]" in attrs(m) for m in (16, 128, 256))
