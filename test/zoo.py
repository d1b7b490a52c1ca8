"""Test zoo: small hand-written attention modules (and near-misses).

Plain module, no tests in it.  Each ``Case`` builds a tiny ``nn.Module`` and
random inputs; ``expect_raised`` is how many attention sites the compiler must
raise to ``iree_linalg_ext.attention`` (0 for near-misses that must be left
alone).  Tests compare the compiled result with ``module(*inputs)`` in eval
mode with every dropout the identity (``flashlift.reference.reference``).

Usage::

    from zoo import CASES, instantiate
    for case in CASES:
        for dt in case.dtypes:              # "f32", "f16"
            module, inputs = instantiate(case, dt)   # eval(), cast to dtype
            expected = module(*inputs)      # skip numeric compare if case.stochastic

Conventions
-----------
* ``make_module()`` seeds itself, returns the module in fp32 (not yet eval).
* ``make_inputs(dtype)`` takes ``"f32"``/``"f16"`` or a ``torch.dtype``,
  seeds itself and returns a tuple of tensors.  Float inputs are drawn in fp32
  and cast, so f16 inputs are the rounded f32 ones.  Boolean masks stay bool,
  runtime scalars are 0-d tensors of ``dtype``.
* Shapes: B=2, H=4, S=8 (16 where it matters), D=16, hidden 64.
* Every mask keeps at least one key per query row, so no row is fully masked
  (a fully ``-inf`` row is NaN in eager softmax).
* ``stochastic=True``: the module's output is random even in eval mode (active
  functional dropout); only shapes/dtypes can be compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

B, H, S, D = 2, 4, 8, 16
S_LONG = 16  # for cases where a longer sequence is useful
S_KV = 12  # cross-attention key/value length (!= S)
HIDDEN = 64
KV_HEADS = 2  # GQA: H=4 query heads, 2 key/value heads

DTYPES = {"f32": torch.float32, "f16": torch.float16}

DTypeLike = Union[str, torch.dtype]


def to_dtype(dtype: DTypeLike) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    return DTYPES[dtype]


@dataclass
class Case:
    name: str
    make_module: Callable[[], nn.Module]
    make_inputs: Callable[[DTypeLike], Tuple[torch.Tensor, ...]]
    expect_raised: int
    note: str = ""
    dtypes: Tuple[str, ...] = ("f32", "f16")
    # Output is random even in eval mode (active F.dropout): compare shapes only.
    stochastic: bool = False
    # False where the near-miss has no softmax at all (nothing for the report to name)
    candidate: bool = True


def instantiate(case: Case, dtype: DTypeLike = "f32"):
    """(module in eval mode cast to dtype, inputs) for ``case``."""
    dt = to_dtype(dtype)
    module = case.make_module().eval().to(dt)
    return module, case.make_inputs(dt)


# --------------------------------------------------------------------------
# input builders
# --------------------------------------------------------------------------


def _randn(shape, dt, gen_scale=1.0):
    return (torch.randn(*shape) * gen_scale).to(dt)


def _qkv(shape_q, shape_k=None, shape_v=None, seed=0):
    shape_k = shape_k or shape_q
    shape_v = shape_v or shape_k

    def make(dtype):
        dt = to_dtype(dtype)
        torch.manual_seed(seed)
        return (_randn(shape_q, dt), _randn(shape_k, dt), _randn(shape_v, dt))

    return make


def _with_extra(base, *extra_makers):
    """Append extra inputs (each ``maker(dt)``) after the base q/k/v tuple."""

    def make(dtype):
        dt = to_dtype(dtype)
        ins = base(dt)
        torch.manual_seed(1)
        return ins + tuple(m(dt) for m in extra_makers)

    return make


def _key_keep(b, skv):
    """bool [b, skv], True = attend; key 0 always kept."""
    keep = torch.rand(b, skv) > 0.3
    keep[:, 0] = True
    return keep


def _additive_mask_b11s(dt, b=B, skv=S):
    keep = _key_keep(b, skv)
    return torch.where(keep, 0.0, -1e4)[:, None, None, :].to(dt)


def _additive_mask_bhss(dt):
    keep = torch.rand(B, H, S, S) > 0.3
    keep[..., 0] = True
    return torch.where(keep, 0.0, -1e4).to(dt)


def _bool_masked_b11s(dt):
    """bool [B,1,1,S], True = masked out (masked_fill convention)."""
    return ~_key_keep(B, S)[:, None, None, :]


def _bool_keep_b1ss(dt):
    """bool [B,1,S,S], True = keep (torch.where convention)."""
    keep = torch.rand(B, 1, S, S) > 0.3
    keep[..., 0] = True
    return keep


def _int_padding_mask(dt):
    """int64 [B,S] HF-style attention_mask, 1 = token, 0 = padding."""
    return _key_keep(B, S).to(torch.int64)


BHSD = (B, H, S, D)
BSHD = (B, S, H, D)
QKV_BHSD = _qkv(BHSD)


# --------------------------------------------------------------------------
# generic module wrapper for stateless cases
# --------------------------------------------------------------------------


class FnModule(nn.Module):
    """Module whose forward is a plain function of its tensor inputs."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)

    def extra_repr(self):
        return self.fn.__name__


def _fn(fn):
    def make():
        return FnModule(fn)

    make.__name__ = f"make_{fn.__name__}"
    return make


def _kt(k):
    return k.transpose(-2, -1)


# --------------------------------------------------------------------------
# scale variants
# --------------------------------------------------------------------------


def scale_div_const(q, k, v):
    s = torch.matmul(q, _kt(k)) / 4.0
    return torch.matmul(F.softmax(s, dim=-1), v)


def scale_mul_const(q, k, v):
    s = torch.matmul(q, _kt(k)) * 0.25
    return torch.matmul(F.softmax(s, dim=-1), v)


def scale_on_q(q, k, v):
    q = q * (D ** -0.5)
    s = torch.matmul(q, _kt(k))
    return torch.matmul(F.softmax(s, dim=-1), v)


def scale_on_q_div(q, k, v):
    q = q / math.sqrt(D)
    s = q @ _kt(k)
    return F.softmax(s, dim=-1) @ v


def scale_on_k(q, k, v):
    s = torch.matmul(q, _kt(k / math.sqrt(D)))
    return torch.matmul(F.softmax(s, dim=-1), v)


def scale_sqrt_split(q, k, v):
    # as in SDPA's decomposition / some ViT ports: both sides * d**-0.25
    f = 1.0 / math.sqrt(math.sqrt(q.size(-1)))
    s = torch.matmul(q * f, _kt(k * f))
    return torch.matmul(F.softmax(s, dim=-1), v)


def scale_none(q, k, v):
    s = torch.matmul(q, _kt(k))
    return torch.matmul(F.softmax(s, dim=-1), v)


def scale_from_shape(q, k, v):
    s = torch.matmul(q, _kt(k)) * (1 / math.sqrt(q.size(-1)))
    return torch.matmul(F.softmax(s, dim=-1), v)


def scale_runtime_tensor(q, k, v, scale):
    # scale is a 0-d tensor *input*: not a compile-time constant.
    s = torch.matmul(q, _kt(k)) * scale
    return torch.matmul(F.softmax(s, dim=-1), v)


def _scalar_scale(dt):
    return torch.tensor(1.0 / math.sqrt(D), dtype=dt)


# --------------------------------------------------------------------------
# matmul spellings / layouts
# --------------------------------------------------------------------------


def mm_bmm_3d(q, k, v):
    # q, k, v: (B*H, S, D)
    s = torch.bmm(q, k.transpose(1, 2)) / math.sqrt(q.size(-1))
    return torch.bmm(torch.softmax(s, dim=-1), v)


def mm_baddbmm_zero_bias(q, k, v):
    # (B*H, S, D); beta=0 ignores the bias, alpha carries the scale
    bias = torch.zeros(q.size(0), q.size(1), k.size(1), dtype=q.dtype)
    s = torch.baddbmm(bias, q, k.transpose(1, 2), beta=0.0, alpha=1.0 / math.sqrt(q.size(-1)))
    return torch.bmm(torch.softmax(s, dim=-1), v)


def mm_baddbmm_alibi(q, k, v, alibi):
    # BLOOM style: scores = beta * alibi + alpha * (q @ k^T), alibi (B*H, 1, S)
    s = torch.baddbmm(alibi, q, k.transpose(1, 2), beta=1.0, alpha=1.0 / math.sqrt(q.size(-1)))
    return torch.bmm(torch.softmax(s, dim=-1), v)


def _bloom_alibi(dt):
    slopes = torch.tensor([2.0 ** (-8.0 * (i + 1) / H) for i in range(H)])
    pos = torch.arange(S, dtype=torch.float32)
    # (B, H, 1, S) -> (B*H, 1, S); depends only on key position (BLOOM trick)
    alibi = slopes[None, :, None, None] * pos[None, None, None, :]
    return alibi.expand(B, H, 1, S).reshape(B * H, 1, S).to(dt)


def mm_einsum_bhqd(q, k, v):
    s = torch.einsum("bhqd,bhkd->bhqk", q, k) * (q.size(-1) ** -0.5)
    p = F.softmax(s, dim=-1)
    return torch.einsum("bhqk,bhkd->bhqd", p, v)


def mm_einsum_bqhd(q, k, v):
    # q, k, v: (B, S, H, D); result (B, S, H, D)
    s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.size(-1))
    p = F.softmax(s, dim=-1)
    return torch.einsum("bhqk,bkhd->bqhd", p, v)


def mm_k_permute(q, k, v):
    s = torch.matmul(q, k.permute(0, 1, 3, 2)) / math.sqrt(D)
    return torch.matmul(F.softmax(s, dim=-1), v)


def mm_k_mT(q, k, v):
    s = (q @ k.mT) / math.sqrt(D)
    return F.softmax(s, dim=-1) @ v


def mm_k_input_pretransposed(q, kt, v):
    # K arrives as (B, H, D, S): no transpose in the program at all
    s = torch.matmul(q, kt) / math.sqrt(D)
    return torch.matmul(F.softmax(s, dim=-1), v)


def layout_bshd_permute(q, k, v):
    # (B, S, H, D) in, (B, S, H*D) out, permutes around the core
    q = q.permute(0, 2, 1, 3)
    k = k.permute(0, 2, 1, 3)
    v = v.permute(0, 2, 1, 3)
    s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    o = torch.matmul(F.softmax(s, dim=-1), v)
    o = o.permute(0, 2, 1, 3).contiguous()
    return o.view(o.size(0), o.size(1), -1)


def layout_bshd_transpose(q, k, v):
    # HF style: .transpose(1, 2) in, .transpose(1, 2).reshape out
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    s = torch.matmul(q, k.transpose(2, 3)) * (q.size(-1) ** -0.5)
    o = torch.matmul(F.softmax(s, dim=-1), v)
    return o.transpose(1, 2).reshape(B, S, H * D)


class ProjSelfAttention(nn.Module):
    """Classic BERT-like self-attention with q/k/v/o projections from hidden."""

    def __init__(self, hidden=HIDDEN, heads=H):
        super().__init__()
        torch.manual_seed(0)
        self.heads = heads
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.o = nn.Linear(hidden, hidden)

    def _split(self, x):
        b, s, _ = x.shape
        return x.view(b, s, self.heads, -1).transpose(1, 2)

    def forward(self, x):
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.size(-1))
        o = torch.matmul(s.softmax(dim=-1), v)
        o = o.transpose(1, 2).reshape(x.size(0), x.size(1), -1)
        return self.o(o)


class TwoLayerAttention(nn.Module):
    """Two stacked projected self-attention layers: two sites."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.l1 = ProjSelfAttention()
        self.l2 = ProjSelfAttention()
        self.norm = nn.LayerNorm(HIDDEN)

    def forward(self, x):
        x = self.norm(x + self.l1(x))
        return self.norm(x + self.l2(x))


def _hidden(dtype, s=S):
    dt = to_dtype(dtype)
    torch.manual_seed(0)
    return (_randn((B, s, HIDDEN), dt),)


# --------------------------------------------------------------------------
# masks and biases
# --------------------------------------------------------------------------


def mask_add_b11s(q, k, v, mask):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D) + mask  # mask [B,1,1,S]
    return torch.matmul(F.softmax(s, dim=-1), v)


def mask_add_bhss(q, k, v, mask):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    s = s + mask  # mask [B,H,S,S]
    return torch.matmul(F.softmax(s, dim=-1), v)


def mask_from_int_padding(q, k, v, attention_mask):
    # BERT-style extended mask built inside the model from an int [B,S] input
    ext = attention_mask[:, None, None, :].to(q.dtype)
    ext = (1.0 - ext) * torch.finfo(q.dtype).min
    s = torch.matmul(q, _kt(k)) / math.sqrt(D) + ext
    return torch.matmul(F.softmax(s, dim=-1), v)


def mask_bool_fill_neginf(q, k, v, masked):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    s = s.masked_fill(masked, float("-inf"))  # masked: bool [B,1,1,S], True = drop
    return torch.matmul(F.softmax(s, dim=-1), v)


def mask_bool_fill_finfo_min(q, k, v, masked):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    s = s.masked_fill(masked, torch.finfo(s.dtype).min)
    return torch.matmul(F.softmax(s, dim=-1), v)


def mask_where(q, k, v, keep):
    # GPT-2 style: torch.where(keep, scores, min_value); keep bool [B,1,S,S]
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    min_value = torch.full([], torch.finfo(s.dtype).min, dtype=s.dtype)
    s = torch.where(keep, s, min_value)
    return torch.matmul(F.softmax(s, dim=-1), v)


class CausalTrilBuffer(nn.Module):
    """Causal mask sliced from a registered tril buffer (GPT-2 / nanoGPT)."""

    def __init__(self, max_len=S_LONG, persistent=True):
        super().__init__()
        self.register_buffer(
            "tril", torch.tril(torch.ones(max_len, max_len)).view(1, 1, max_len, max_len),
            persistent=persistent,
        )

    def forward(self, q, k, v):
        t = q.size(-2)
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        s = s.masked_fill(self.tril[:, :, :t, :t] == 0, float("-inf"))
        return F.softmax(s, dim=-1) @ v


def causal_arange(q, k, v):
    t = q.size(-2)
    causal = torch.arange(t)[:, None] >= torch.arange(t)[None, :]
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    s = s.masked_fill(~causal, float("-inf"))
    return torch.matmul(F.softmax(s, dim=-1), v)


def causal_triu_additive(q, k, v):
    # additive causal mask: triu(full(-inf), diagonal=1)
    t = q.size(-2)
    m = torch.triu(torch.full((t, t), float("-inf"), dtype=q.dtype), diagonal=1)
    s = torch.matmul(q, _kt(k)) / math.sqrt(D) + m
    return torch.matmul(F.softmax(s, dim=-1), v)


class RelPosBiasT5(nn.Module):
    """T5-style: learned bias [1,H,S,S] added to unscaled scores."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.bias = nn.Parameter(torch.randn(1, H, S, S))

    def forward(self, q, k, v):
        s = torch.matmul(q, k.transpose(3, 2))  # T5: no 1/sqrt(d)
        s = s + self.bias
        p = F.softmax(s.float(), dim=-1).type_as(s)
        return torch.matmul(p, v)


class Alibi(nn.Module):
    """ALiBi: slopes[h] * (j - i) bias computed in forward, plus causal mask."""

    def __init__(self):
        super().__init__()
        slopes = torch.tensor([2.0 ** (-8.0 * (i + 1) / H) for i in range(H)])
        self.register_buffer("slopes", slopes.view(1, H, 1, 1))

    def forward(self, q, k, v):
        t = q.size(-2)
        pos = torch.arange(t)
        dist = (pos[None, :] - pos[:, None]).to(q.dtype)  # j - i  (<= 0 where causal)
        bias = self.slopes.to(q.dtype) * dist  # [1,H,S,S]
        s = torch.matmul(q, _kt(k)) / math.sqrt(D) + bias
        s = s.masked_fill(dist > 0, float("-inf"))
        return torch.matmul(F.softmax(s, dim=-1), v)


# --------------------------------------------------------------------------
# softmax forms
# --------------------------------------------------------------------------


def softmax_torch(q, k, v):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    return torch.matmul(torch.softmax(s, -1), v)


def softmax_dim3_positive(q, k, v):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    return torch.matmul(F.softmax(s, dim=3), v)


def softmax_llama_upcast(q, k, v):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    p = F.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(p, v)


def softmax_manual_stable(q, k, v):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    e = (s - s.amax(-1, keepdim=True)).exp()
    p = e / e.sum(-1, keepdim=True)
    return torch.matmul(p, v)


def softmax_manual_unstable(q, k, v):
    # no max subtraction: exp(s) / sum exp(s); mathematically softmax
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    e = torch.exp(s)
    return torch.matmul(e / e.sum(dim=-1, keepdim=True), v)


# --------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------


class DropoutModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.1)

    def forward(self, q, k, v):
        s = torch.matmul(q, _kt(k)) / math.sqrt(D)
        return torch.matmul(self.drop(F.softmax(s, dim=-1)), v)


class DropoutFunctionalTrainingFlag(nn.Module):
    def forward(self, q, k, v):
        s = torch.matmul(q, _kt(k)) / math.sqrt(D)
        p = F.dropout(F.softmax(s, dim=-1), 0.1, training=self.training)
        return torch.matmul(p, v)


def dropout_functional_default(q, k, v):
    # F.dropout's training defaults to True: this dropout is ACTIVE in eval()
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    p = F.dropout(F.softmax(s, dim=-1), 0.1)
    return torch.matmul(p, v)


def dropout_p0(q, k, v):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    p = F.dropout(F.softmax(s, dim=-1), p=0.0)  # training=True but p=0
    return torch.matmul(p, v)


# --------------------------------------------------------------------------
# GQA / MQA
# --------------------------------------------------------------------------

N_REP = H // KV_HEADS
QKV_GQA = _qkv((B, H, S, D), (B, KV_HEADS, S, D))
QKV_MQA = _qkv((B, H, S, D), (B, 1, S, D))


def repeat_kv(x, n_rep):
    """LLaMA's repeat_kv: expand + reshape."""
    b, kvh, s, d = x.shape
    if n_rep == 1:
        return x
    x = x[:, :, None, :, :].expand(b, kvh, n_rep, s, d)
    return x.reshape(b, kvh * n_rep, s, d)


def gqa_repeat_kv_expand(q, k, v):
    k, v = repeat_kv(k, N_REP), repeat_kv(v, N_REP)
    s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(D)
    p = F.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(p, v)


def gqa_repeat_interleave(q, k, v):
    k = k.repeat_interleave(N_REP, dim=1)
    v = v.repeat_interleave(N_REP, dim=1)
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    return torch.matmul(F.softmax(s, dim=-1), v)


def mqa_broadcast_matmul(q, k, v):
    # k, v have 1 head; torch.matmul broadcasts it over H
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    return torch.matmul(F.softmax(s, dim=-1), v)


def mqa_expand(q, k, v):
    k = k.expand(-1, H, -1, -1)
    v = v.expand(-1, H, -1, -1)
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    return torch.matmul(F.softmax(s, dim=-1), v)


# --------------------------------------------------------------------------
# cross-attention
# --------------------------------------------------------------------------

QKV_CROSS = _qkv((B, H, S, D), (B, H, S_KV, D))


def cross_attention(q, k, v):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)  # [B,H,S,S_KV]
    return torch.matmul(F.softmax(s, dim=-1), v)


def cross_attention_masked(q, k, v, mask):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D) + mask  # mask [B,1,1,S_KV]
    return torch.matmul(F.softmax(s, dim=-1), v)


class CrossAttentionProj(nn.Module):
    """Decoder-style cross-attention: queries from x, keys/values from memory."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q = nn.Linear(HIDDEN, HIDDEN)
        self.kv = nn.Linear(HIDDEN, 2 * HIDDEN)

    def forward(self, x, memory):
        b, sq, _ = x.shape
        skv = memory.size(1)
        q = self.q(x).view(b, sq, H, -1).transpose(1, 2)
        k, v = self.kv(memory).split(HIDDEN, dim=-1)
        k = k.view(b, skv, H, -1).transpose(1, 2)
        v = v.view(b, skv, H, -1).transpose(1, 2)
        s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        o = s.softmax(-1) @ v
        return o.transpose(1, 2).reshape(b, sq, HIDDEN)


def _cross_hidden(dtype):
    dt = to_dtype(dtype)
    torch.manual_seed(0)
    return (_randn((B, S, HIDDEN), dt), _randn((B, S_KV, HIDDEN), dt))


# --------------------------------------------------------------------------
# near-misses: must NOT be raised
# --------------------------------------------------------------------------


def nm_softmax_dim_m2(q, k, v):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    return torch.matmul(F.softmax(s, dim=-2), v)


def nm_wrong_contraction(q, k, v):
    # p^T @ v: contracts the query axis, not the normalised key axis
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    p = F.softmax(s, dim=-1)
    return p.transpose(-2, -1) @ v


def nm_probs_returned(q, k, v):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    p = F.softmax(s, dim=-1)
    return torch.matmul(p, v), p


def nm_multiplicative_mask(q, k, v, keep01):
    # scores * {0,1} sets masked scores to 0, not -inf: not an additive mask
    s = torch.matmul(q, _kt(k)) / math.sqrt(D) * keep01
    return torch.matmul(F.softmax(s, dim=-1), v)


def nm_post_softmax_mask(q, k, v, keep01):
    # mask applied to the probabilities without renormalising
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    p = F.softmax(s, dim=-1) * keep01
    return torch.matmul(p, v)


def nm_log_softmax(q, k, v):
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    return torch.matmul(F.log_softmax(s, dim=-1), v)


def nm_scores_data_dependent_mask(q, k, v):
    # mask depends on the scores themselves (drop keys more than 1.0 below the
    # row max): the op's mask operand must not depend on Q.K^T, so this cannot
    # be raised.  (torch.median would be nicer but aten.median.dim does not
    # lower in torch-mlir.)
    s = torch.matmul(q, _kt(k)) / math.sqrt(D)
    thr = s.amax(dim=-1, keepdim=True) - 1.0
    s = s.masked_fill(s < thr, float("-inf"))
    return torch.matmul(F.softmax(s, dim=-1), v)


def _keep01_b1ss(dt):
    return _bool_keep_b1ss(dt).to(dt)


class MHA(nn.Module):
    """torch.nn.MultiheadAttention (seq-first; the fast path is not taken)."""

    def __init__(self, need_weights):
        super().__init__()
        torch.manual_seed(0)
        self.mha = nn.MultiheadAttention(HIDDEN, H)
        self.need_weights = need_weights

    def forward(self, x):
        out, w = self.mha(x, x, x, need_weights=self.need_weights)
        return (out, w) if self.need_weights else out


def _seq_first_hidden(dtype):
    dt = to_dtype(dtype)
    torch.manual_seed(0)
    return (_randn((S, B, HIDDEN), dt),)


# --------------------------------------------------------------------------
# the seed: slapo attention tutorial's Attention module
# --------------------------------------------------------------------------


def seed_scaled_dot_product(q, k, v):
    # (bs, head, seq, hs // head)
    d_k = q.shape[-1]
    # seed: torch.sqrt(d_k) -- fails on an int; minimal fix: math.sqrt
    attn_score = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)
    attn_probs = F.softmax(attn_score, dim=-1)
    attn_probs = F.dropout(attn_probs, 0.1)  # training=True by default!
    attn = torch.matmul(attn_probs, v)
    return attn


def _slapo():
    """The seed workload as the project ships it (examples/slapo_attention.py)."""
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "slapo_attention.py")
    spec = importlib.util.spec_from_file_location("slapo_attention", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SLAPO = _slapo()


class SeedSelfAttentionAsWritten(SLAPO.SelfAttention):
    """The seed's SelfAttention with its forward as written (torch.sqrt -> math.sqrt only):
    the results of output.permute/view are discarded, so it returns (bs, head, seq, hs // head)."""

    def forward(self, hidden_states):
        q = self.permute_for_scores(self.q_proj(hidden_states))
        k = self.permute_for_scores(self.k_proj(hidden_states))
        v = self.permute_for_scores(self.v_proj(hidden_states))
        output = seed_scaled_dot_product(q, k, v)
        output.permute(0, 2, 1, 3)
        output.view(output.shape[0], output.shape[1], -1)
        return output


def SeedAttention():
    torch.manual_seed(0)
    return SLAPO.Attention(HIDDEN, H)


def _make_seed_self_attention():
    torch.manual_seed(0)
    return SeedSelfAttentionAsWritten(HIDDEN, H)


# --------------------------------------------------------------------------
# the case list
# --------------------------------------------------------------------------

_MASK_B11S = _with_extra(QKV_BHSD, _additive_mask_b11s)

CASES = [
    # ---- scale ----
    Case("scale_div_const", _fn(scale_div_const), QKV_BHSD, 1, "scores / 4.0"),
    Case("scale_mul_const", _fn(scale_mul_const), QKV_BHSD, 1, "scores * 0.25"),
    Case("scale_on_q", _fn(scale_on_q), QKV_BHSD, 1, "(q * d**-0.5) @ k^T"),
    Case("scale_on_q_div", _fn(scale_on_q_div), QKV_BHSD, 1, "(q / sqrt(d)) @ k^T, @ operator"),
    Case("scale_on_k", _fn(scale_on_k), QKV_BHSD, 1, "q @ (k / sqrt(d))^T: scale applied before the transpose"),
    Case("scale_sqrt_split", _fn(scale_sqrt_split), QKV_BHSD, 1, "(q * d**-0.25) @ (k * d**-0.25)^T"),
    Case("scale_none", _fn(scale_none), QKV_BHSD, 1, "no scale: attention scale = 1"),
    Case("scale_from_shape", _fn(scale_from_shape), QKV_BHSD, 1, "scores * (1 / math.sqrt(q.size(-1)))"),
    Case("scale_runtime_tensor", _fn(scale_runtime_tensor), _with_extra(QKV_BHSD, _scalar_scale), 1,
         "scale is a 0-d tensor input (runtime value, tensor<f32> arg)"),
    # ---- matmul spellings / layouts ----
    Case("mm_matmul_4d", _fn(scale_div_const), QKV_BHSD, 1, "torch.matmul on (B,H,S,D); same fn as scale_div_const"),
    Case("mm_bmm_3d", _fn(mm_bmm_3d), _qkv((B * H, S, D)), 1, "torch.bmm on (B*H,S,D), torch.softmax"),
    Case("mm_baddbmm_zero_bias", _fn(mm_baddbmm_zero_bias), _qkv((B * H, S, D)), 1,
         "baddbmm(zeros, q, k^T, beta=0, alpha=1/sqrt(d)): alpha is the scale"),
    Case("mm_baddbmm_alibi", _fn(mm_baddbmm_alibi),
         _with_extra(_qkv((B * H, S, D)), _bloom_alibi), 1,
         "BLOOM: baddbmm(alibi (B*H,1,S), q, k^T, beta=1, alpha=1/sqrt(d)): bias + scale"),
    Case("mm_einsum_bhqd", _fn(mm_einsum_bhqd), QKV_BHSD, 1, "einsum bhqd,bhkd->bhqk / bhqk,bhkd->bhqd"),
    Case("mm_einsum_bqhd", _fn(mm_einsum_bqhd), _qkv(BSHD), 1,
         "einsum bqhd,bkhd->bhqk / bhqk,bkhd->bqhd on (B,S,H,D)"),
    Case("mm_k_permute", _fn(mm_k_permute), QKV_BHSD, 1, "k.permute(0,1,3,2)"),
    Case("mm_k_mT", _fn(mm_k_mT), QKV_BHSD, 1, "q @ k.mT"),
    Case("mm_k_input_pretransposed", _fn(mm_k_input_pretransposed), _qkv(BHSD, (B, H, D, S), BHSD), 1,
         "K input already (B,H,D,S): no transpose in the program"),
    Case("layout_bshd_permute", _fn(layout_bshd_permute), _qkv(BSHD), 1,
         "(B,S,H,D) inputs, permute in, permute+contiguous+view out"),
    Case("layout_bshd_transpose", _fn(layout_bshd_transpose), _qkv(BSHD), 1,
         "(B,S,H,D) inputs, transpose(1,2) in, transpose+reshape out"),
    Case("proj_self_attention", ProjSelfAttention, _hidden, 1,
         "q/k/v/o Linear projections from hidden 64, view+transpose, Tensor.softmax"),
    Case("two_layer_attention", TwoLayerAttention, _hidden, 2, "two projected self-attention layers"),
    # ---- masks / biases ----
    Case("mask_add_b11s", _fn(mask_add_b11s), _MASK_B11S, 1, "additive float mask input [B,1,1,S]"),
    Case("mask_add_bhss", _fn(mask_add_bhss), _with_extra(QKV_BHSD, _additive_mask_bhss), 1,
         "additive float mask input [B,H,S,S]"),
    Case("mask_from_int_padding", _fn(mask_from_int_padding), _with_extra(QKV_BHSD, _int_padding_mask), 1,
         "int64 [B,S] attention_mask -> (1 - m[:,None,None,:]) * finfo.min inside the model"),
    Case("mask_bool_fill_neginf", _fn(mask_bool_fill_neginf), _with_extra(QKV_BHSD, _bool_masked_b11s), 1,
         "bool [B,1,1,S] input, masked_fill(mask, -inf)"),
    Case("mask_bool_fill_finfo_min", _fn(mask_bool_fill_finfo_min), _with_extra(QKV_BHSD, _bool_masked_b11s), 1,
         "bool [B,1,1,S] input, masked_fill(mask, finfo(dtype).min)"),
    Case("mask_where", _fn(mask_where), _with_extra(QKV_BHSD, _bool_keep_b1ss), 1,
         "bool keep [B,1,S,S] input, torch.where(keep, s, full([], finfo.min))"),
    Case("causal_tril_buffer", CausalTrilBuffer, QKV_BHSD, 1,
         "persistent tril buffer [1,1,16,16] sliced to [:S,:S], masked_fill(==0, -inf)"),
    Case("causal_tril_buffer_nonpersistent", lambda: CausalTrilBuffer(persistent=False), QKV_BHSD, 1,
         "same with a non-persistent buffer: the importers need "
         "compiler.export_fixes.make_buffers_persistent first"),
    Case("causal_arange", _fn(causal_arange), QKV_BHSD, 1,
         "causal = arange(S)[:,None] >= arange(S)[None,:], masked_fill(~causal, -inf)"),
    Case("causal_triu_additive", _fn(causal_triu_additive), QKV_BHSD, 1,
         "additive triu(full(-inf), diagonal=1) [S,S]"),
    Case("rel_pos_bias_t5", RelPosBiasT5, QKV_BHSD, 1,
         "T5: unscaled scores + learned Parameter [1,H,S,S]; softmax(s.float()).type_as(s)"),
    Case("alibi", Alibi, QKV_BHSD, 1, "ALiBi slopes[1,H,1,1] * (j - i) from arange, + causal masked_fill"),
    # ---- softmax forms ----
    Case("softmax_F", _fn(scale_div_const), QKV_BHSD, 1, "F.softmax(s, dim=-1); same fn as scale_div_const"),
    Case("softmax_torch", _fn(softmax_torch), QKV_BHSD, 1, "torch.softmax(s, -1)"),
    Case("softmax_dim3_positive", _fn(softmax_dim3_positive), QKV_BHSD, 1, "F.softmax(s, dim=3) on 4-D"),
    Case("softmax_llama_upcast", _fn(softmax_llama_upcast), QKV_BHSD, 1,
         "F.softmax(s, dim=-1, dtype=float32).to(q.dtype): extf/truncf around softmax in f16"),
    Case("softmax_manual_stable", _fn(softmax_manual_stable), QKV_BHSD, 1,
         "e = (s - s.amax(-1, keepdim=True)).exp(); e / e.sum(-1, keepdim=True)"),
    Case("softmax_manual_unstable", _fn(softmax_manual_unstable), QKV_BHSD, 1,
         "exp(s) / exp(s).sum(-1): no max subtraction (raising it is more stable, same math)"),
    # ---- dropout ----
    Case("dropout_module", DropoutModule, QKV_BHSD, 1, "nn.Dropout(0.1): identity in eval"),
    Case("dropout_functional_training_flag", DropoutFunctionalTrainingFlag, QKV_BHSD, 1,
         "F.dropout(p, 0.1, training=self.training): identity in eval"),
    Case("dropout_functional_default", _fn(dropout_functional_default), QKV_BHSD, 1,
         "F.dropout(p, 0.1): training defaults to True; flashlift compiles for inference and "
         "treats it as the identity (the reference does too, see flashlift.reference)"),
    Case("dropout_p0", _fn(dropout_p0), QKV_BHSD, 1, "F.dropout(p, p=0.0): training=True but a no-op"),
    # ---- GQA / MQA ----
    Case("gqa_repeat_kv_expand", _fn(gqa_repeat_kv_expand), QKV_GQA, 1,
         "LLaMA repeat_kv: [:, :, None].expand(b, kvh, n_rep, s, d).reshape(b, kvh*n_rep, s, d); 4 q / 2 kv heads"),
    Case("gqa_repeat_interleave", _fn(gqa_repeat_interleave), QKV_GQA, 1,
         "k.repeat_interleave(2, dim=1); 4 q / 2 kv heads"),
    Case("mqa_broadcast_matmul", _fn(mqa_broadcast_matmul), QKV_MQA, 1,
         "k, v with 1 head, broadcast by torch.matmul"),
    Case("mqa_expand", _fn(mqa_expand), QKV_MQA, 1, "k.expand(-1, H, -1, -1)"),
    # ---- cross-attention ----
    Case("cross_attention", _fn(cross_attention), QKV_CROSS, 1, "Sq=8, Skv=12"),
    Case("cross_attention_masked", _fn(cross_attention_masked),
         _with_extra(QKV_CROSS, lambda dt: _additive_mask_b11s(dt, B, S_KV)), 1,
         "Sq=8, Skv=12, additive key-padding mask [B,1,1,Skv]"),
    Case("cross_attention_proj", CrossAttentionProj, _cross_hidden, 1,
         "queries from x (B,8,64), keys/values from memory (B,12,64), fused kv Linear + split"),
    # ---- nn.MultiheadAttention ----
    Case("mha_no_weights", lambda: MHA(False), _seq_first_hidden, 1,
         "nn.MultiheadAttention need_weights=False: SDPA decomposition, incl. _safe_softmax "
         "(select(all(s == -inf), 0, softmax)) and scale split sqrt on q and k"),
    Case("nm_mha_need_weights", lambda: MHA(True), _seq_first_hidden, 0,
         "nn.MultiheadAttention need_weights=True: probabilities also returned (head-averaged)"),
    # ---- near-misses: must not be raised ----
    Case("nm_softmax_dim_m2", _fn(nm_softmax_dim_m2), QKV_BHSD, 0, "softmax over the query axis"),
    Case("nm_wrong_contraction", _fn(nm_wrong_contraction), QKV_BHSD, 0,
         "p.transpose(-2,-1) @ v with square S: contracts the query axis"),
    Case("nm_probs_returned", _fn(nm_probs_returned), QKV_BHSD, 0, "returns (out, probs): probs have another use"),
    Case("nm_multiplicative_mask", _fn(nm_multiplicative_mask), _with_extra(QKV_BHSD, _keep01_b1ss), 0,
         "scores * {0,1} mask before softmax: not expressible as the op's additive/boolean mask"),
    Case("nm_post_softmax_mask", _fn(nm_post_softmax_mask), _with_extra(QKV_BHSD, _keep01_b1ss), 0,
         "probabilities * {0,1} after softmax, not renormalised"),
    Case("nm_log_softmax", _fn(nm_log_softmax), QKV_BHSD, 0, "log_softmax instead of softmax", candidate=False),
    Case("nm_scores_data_dependent_mask", _fn(nm_scores_data_dependent_mask), QKV_BHSD, 0,
         "mask computed from the scores (median threshold): mask depends on Q.K^T"),
    # ---- the seed ----
    Case("seed_self_attention", _make_seed_self_attention, _hidden, 1,
         "seed SelfAttention verbatim except torch.sqrt(int) -> math.sqrt; its F.dropout(p, 0.1) "
         "is the identity in inference (see dropout_functional_default)"),
    Case("seed_attention", SeedAttention, _hidden, 1,
         "full seed Attention (hidden 64, 4 heads): sqrt fixed and the discarded "
         "permute/view kept (needed, else Projection's Linear gets head_dim rows)"),
]

CASES_BY_NAME = {c.name: c for c in CASES}
assert len(CASES_BY_NAME) == len(CASES), "duplicate case names"
