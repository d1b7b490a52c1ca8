"""Masks and fully masked rows through compile_model on the CPU (passes/masks.py).

Each case is raised (one attention site) and must give PyTorch's answer on inputs that
stress the mask semantics: rows whose every key is masked (an all-padding batch element, an
outer-product mask's padded query rows, a hand-made row), with finite fills (finfo.min,
-1e4, -1e9), -inf (NaN in a plain softmax, as in PyTorch; 0 after torch's _safe_softmax,
what SDPA decomposes to), and every F.scaled_dot_product_attention form models use.
Every output is also compared with the same model compiled with raise_attention=False.
Tolerances: relative error 1e-4 (f32), 5e-3 (f16).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.export import Dim

import flashlift
from flashlift.reference import reference

TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 1e-2}
B, H, S, D = 2, 2, 8, 16
MIN = torch.finfo(torch.float32).min


def assert_close(out, ref, dtype, what, tol=None):
    """Same NaN positions (PyTorch's own NaN rows), else relative error under TOL."""
    out, ref = out.float(), ref.float()
    assert torch.equal(out.isnan(), ref.isnan()), f"{what}: NaN where PyTorch has {int(ref.isnan().sum())}"
    keep = ~ref.isnan()
    err = ((out[keep] - ref[keep]).norm() / ref[keep].norm().clamp_min(1e-30)).item()
    assert err < (tol or TOL[dtype]), f"{what}: relative error {err:.3g}"


def check(model, args, dtype=torch.float32, raised=1, dynamic_shapes=None, tol=None):
    compiled = flashlift.compile_model(model, args, dynamic_shapes=dynamic_shapes)
    assert len(compiled.report.raised) == raised, str(compiled.report)
    unraised = flashlift.compile_model(model, args, raise_attention=False, dynamic_shapes=dynamic_shapes)
    out = compiled(*args)
    assert_close(out, reference(model, *args), dtype, "vs PyTorch", tol)
    assert_close(out, unraised(*args), dtype, "vs raise_attention=False", tol)
    return compiled


def qkv(dtype=torch.float32, b=B, h=H, sq=S, skv=S, d=D, kv_heads=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, sq, d, generator=g)
    k = torch.randn(b, kv_heads or h, skv, d, generator=g)
    v = torch.randn(b, kv_heads or h, skv, d, generator=g)
    return tuple(t.to(dtype) for t in (q, k, v))


def key_mask(b=B, s=S):
    """Batch entry 1 is all padding; entry 0 has its last 3 keys padded."""
    keep = torch.ones(b, s, dtype=torch.bool)
    keep[0, s - 3:] = False
    keep[-1, :] = False
    return keep


# --- hand-written attention with a mask ---------------------------------------------------


class Additive(torch.nn.Module):
    """scores + mask, mask [B, 1, 1, S] (or [B, 1, S, S]) of 0 and a fill."""

    def forward(self, q, k, v, mask):
        s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask
        return torch.softmax(s.float(), -1).to(q.dtype) @ v


class MaskedFill(torch.nn.Module):
    def __init__(self, fill):
        super().__init__()
        self.fill = fill

    def forward(self, q, k, v, hide):
        s = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).masked_fill(hide, self.fill)
        return torch.softmax(s, -1) @ v


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_additive_finfo_min_all_padding(dtype):
    """Hugging Face's additive finfo(dtype).min mask with an all-padding batch element:
    PyTorch gives those rows the mean of V (was NaN in every row of the raised op)."""
    fill = torch.finfo(dtype).min
    mask = torch.where(key_mask(), 0.0, fill).to(dtype)[:, None, None, :]
    check(Additive(), qkv(dtype) + (mask,), dtype)


def test_additive_outer_product_mask():
    """An encoder's outer-product mask: padded query rows are fully masked."""
    keep = key_mask()
    mask = torch.where(keep[:, :, None] & keep[:, None, :], 0.0, MIN)[:, None]
    check(Additive(), qkv() + (mask,))


def test_additive_small_fill_is_added():
    """An additive -1e4 shifts a fully masked row, it does not replace it: softmax(S), not
    the uniform row. PyTorch rounds each s - 1e4 to f32's spacing there (2^-10), the op
    rounds s * log2(e) - 1e4 * log2(e) to its own: the rows differ by that rounding
    (measured 6e-4 on the all-padding entry), so the bound is 2e-3, still far below the
    uniform row's distance (checked)."""
    mask = torch.where(key_mask(), 0.0, -1.0e4)[:, None, None, :]
    args = qkv() + (mask,)
    compiled = check(Additive(), args, tol=2e-3)
    q, k, v, _ = args
    uniform = v[-1].mean(-2, keepdim=True).expand_as(v[-1])
    assert (compiled(*args)[-1] - uniform).norm() > 0.1 * uniform.norm()


@pytest.mark.parametrize("fill", [-1.0e4, -1.0e9, MIN])
def test_masked_fill_finite(fill):
    """masked_fill replaces the scores: a fully masked row is uniform in PyTorch."""
    hide = ~key_mask()[:, None, None, :]
    check(MaskedFill(fill), qkv() + (hide,))


def test_masked_fill_bf16():
    """bf16 rounds -1e4 to -9984: still a fill that hides the key."""
    hide = ~key_mask()[:, None, None, :]
    check(MaskedFill(-1.0e4), qkv(torch.bfloat16) + (hide,), torch.bfloat16)


def test_masked_fill_neg_inf_is_nan_as_in_pytorch():
    hide = ~key_mask()[:, None, None, :]
    model = MaskedFill(float("-inf"))
    args = qkv() + (hide,)
    assert reference(model, *args)[-1].isnan().all()  # PyTorch's own answer
    check(model, args)


def test_batch1_single_query_row_masked():
    """Batch 1, one head, Sq != Skv, one query row masked on every key."""
    hide = torch.zeros(1, 1, 3, 5, dtype=torch.bool)
    hide[0, 0, 1, :] = True
    hide[0, 0, 2, 0] = True
    check(MaskedFill(-1.0e9), qkv(b=1, h=2, sq=3, skv=5) + (hide,))


# --- F.scaled_dot_product_attention in the forms models call it ------------------------------


class Sdpa(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, q, k, v, *mask):
        return F.scaled_dot_product_attention(q, k, v, *mask, **self.kwargs)


class SdpaMasked(torch.nn.Module):
    def forward(self, q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _bool_rows():
    m = torch.rand(B, 1, S, S, generator=torch.Generator().manual_seed(1)) > 0.4
    m[0, 0, 3, :] = False  # one fully masked row
    return m


SDPA_CASES = {
    "none": (dict(), qkv),
    "scale": (dict(scale=0.3), qkv),
    "causal": (dict(is_causal=True), qkv),
    "causal_sq_lt_skv": (dict(is_causal=True), lambda: qkv(sq=3, skv=S)),
    "causal_sq_gt_skv": (dict(is_causal=True), lambda: qkv(sq=S, skv=3)),  # top-left: rows see key 0
    "bool_padding_all_pad": (dict(), lambda: qkv() + (key_mask()[:, None, None, :],)),
    "bool_full_masked_row": (dict(), lambda: qkv() + (_bool_rows(),)),
    "bool_2d": (dict(), lambda: qkv() + (torch.rand(S, S, generator=torch.Generator().manual_seed(2)) > 0.3,)),
    "float_finfo_min": (dict(), lambda: qkv() + (torch.where(key_mask(), 0.0, MIN)[:, None, None, :],)),
    "float_neg_inf": (dict(), lambda: qkv() + (torch.where(key_mask(), 0.0, float("-inf"))[:, None, None, :],)),
    "float_bias": (dict(), lambda: qkv() + (torch.randn(B, H, S, S, generator=torch.Generator().manual_seed(3)),)),
    "gqa": (dict(enable_gqa=True), lambda: qkv(h=4, kv_heads=2)),
    "batch1_one_head": (dict(), lambda: qkv(b=1, h=1)),
}


@pytest.mark.parametrize("name", sorted(SDPA_CASES))
def test_sdpa(name):
    kwargs, make = SDPA_CASES[name]
    check(Sdpa(**kwargs), make())


def test_sdpa_f16_padding():
    args = qkv(torch.float16) + (key_mask()[:, None, None, :],)
    check(Sdpa(), args, torch.float16)


def test_sdpa_dropout_is_identity_and_reported():
    compiled = check(Sdpa(dropout_p=0.1), qkv())
    assert [d["p"] for d in compiled.report.dropouts] == [0.1], compiled.report.dropouts
    assert "dropout_p" in str(compiled.report)


def test_sdpa_padding_dynamic_shapes():
    """One compile with dynamic batch and sequence; an all-padding entry at another size."""
    b, s = Dim("b", max=8), Dim("s", max=64)
    model = SdpaMasked()
    example = qkv() + (key_mask()[:, None, None, :],)
    dims = ({0: b, 2: s}, {0: b, 2: s}, {0: b, 2: s}, {0: b, 3: s})
    compiled = flashlift.compile_model(model, example, dynamic_shapes=dims)
    assert len(compiled.report.raised) == 1, str(compiled.report)
    args = qkv(b=3, sq=13, skv=13, seed=4) + (key_mask(3, 13)[:, None, None, :],)
    assert_close(compiled(*args), reference(model, *args), torch.float32, "dynamic")
