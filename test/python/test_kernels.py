"""flashlift's NVIDIA FlashAttention kernels: build, coverage rules, report, dispatch by IREE.

Everything but the last tests runs without a GPU (Triton and iree-compile only build); the
numerics tests at the end run on a CUDA device and skip cleanly without one.
"""

import contextlib
import math
import os
import subprocess
import sys
from typing import Optional

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

import flashlift  # noqa: E402
from flashlift.compiler import attention_coverage, attention_fusion, driver, kernel_dispatch, mask_consteval  # noqa: E402
from flashlift.compiler.attention_masks import causal_kind  # noqa: E402
from flashlift.compiler.importer import import_model  # noqa: E402
from flashlift.compiler.kernel_build import PTX_VERSION  # noqa: E402
from flashlift.compiler.kernel_sites import NotCovered  # noqa: E402
from flashlift.compiler import kernel_build  # noqa: E402
from flashlift.compiler.kernels import fa_configs, gluon_fa, triton_fa, triton_fa_tma  # noqa: E402
from flashlift.compiler.targets import parse_target  # noqa: E402
from conftest import ROOT, rel_err, tuned_in  # noqa: E402

INTERP_CHECK = os.path.join(ROOT, "tools", "kernels", "interp_check.py")  # a developer tool, not in the package

ENTRY = b"_fa_fwd_kernel"  # the Triton kernel's PTX .entry / cubin symbol


# --- models ------------------------------------------------------------------------------


def attention(q, k, v, bias=None):
    s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if bias is not None:
        s = s + bias
    return torch.matmul(F.softmax(s, dim=-1), v)


class Plain(torch.nn.Module):
    def forward(self, q, k, v):
        return attention(q, k, v)


class Causal(torch.nn.Module):
    """masked_fill with a tril of ones: top-left, or bottom-right with the diagonal shifted."""

    def __init__(self, bottom_right: bool = False, upcast: bool = False):
        super().__init__()
        self.bottom_right, self.upcast = bottom_right, upcast

    def forward(self, q, k, v):
        sq, skv = q.shape[-2], k.shape[-2]
        keep = torch.ones(sq, skv, dtype=torch.bool).tril(diagonal=skv - sq if self.bottom_right else 0)
        s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        s = s.masked_fill(~keep, float("-inf"))
        p = F.softmax(s.float(), dim=-1).to(q.dtype) if self.upcast else F.softmax(s, dim=-1)
        return torch.matmul(p, v)


class Padded(torch.nn.Module):
    def forward(self, q, k, v, pad):  # pad: (B, Skv) additive, a run-time input
        return attention(q, k, v, pad[:, None, None, :])


class BertPadded(torch.nn.Module):
    """BERT's extended attention mask: a [B, 1, 1, S] additive input (0 or a large negative)."""

    def forward(self, q, k, v, mask):
        return attention(q, k, v, mask)


def bert_mask(b, s, fill):
    mask = torch.zeros(b, 1, 1, s, dtype=torch.float16)
    for i in range(b):
        mask[i, ..., s - 16 * (i + 1):] = fill
    return mask


class GroupedQuery(torch.nn.Module):
    """LLaMA's repeat_kv + causal additive mask, softmax in f32."""

    def forward(self, q, k, v):
        b, kvh, s, d = k.shape
        r = q.shape[1] // kvh
        k = k[:, :, None].expand(b, kvh, r, s, d).reshape(b, kvh * r, s, d)
        v = v[:, :, None].expand(b, kvh, r, s, d).reshape(b, kvh * r, s, d)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(d)
        scores = scores + torch.full((s, s), float("-inf")).triu(1)
        return torch.matmul(F.softmax(scores.float(), dim=-1).to(q.dtype), v)


class LlamaMasked(torch.nn.Module):
    """LLaMA's attention: grouped-query K/V repeated, V in (B, S, KVH, D) as its projection
    leaves it, a [B, 1, S, S] additive mask from the inputs (causal + padding), f32 softmax."""

    def forward(self, q, k, v, mask):
        b, kvh, s, d = k.shape
        r = q.shape[1] // kvh
        v = v.transpose(1, 2)
        k = k[:, :, None].expand(b, kvh, r, s, d).reshape(b, kvh * r, s, d)
        v = v[:, :, None].expand(b, kvh, r, s, d).reshape(b, kvh * r, s, d)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(d) + mask
        return torch.matmul(F.softmax(scores.float(), dim=-1).to(q.dtype), v)


def llama_mask(b, s, dtype=torch.float16):
    """Causal plus left padding of 8 * i keys for batch entry i, finfo.min where hidden
    (no row hides every key)."""
    i, j = torch.arange(s)[:, None], torch.arange(s)[None, :]
    hidden = (j > i).expand(b, s, s).clone()
    for n in range(b):
        hidden[n, :, : 8 * n] = True
        hidden[n][hidden[n].all(-1)] = False
    return torch.where(hidden, torch.finfo(dtype).min, 0.0).to(dtype)[:, None]


class NonCausalGroupedQuery(torch.nn.Module):
    """Grouped-query K/V repeated as LLaMA does, no mask (cross-attention style, Skv != Sq)."""

    def forward(self, q, k, v):
        b, kvh, s, d = k.shape
        r = q.shape[1] // kvh
        k = k[:, :, None].expand(b, kvh, r, s, d).reshape(b, kvh * r, s, d)
        v = v[:, :, None].expand(b, kvh, r, s, d).reshape(b, kvh * r, s, d)
        return attention(q, k, v)


class SeqFirst(torch.nn.Module):
    """(B, S, H, D) inputs: Q/K/V are not (batch, S, D) contiguous."""

    def forward(self, q, k, v):
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        return attention(q, k, v).transpose(1, 2)


class Mixed(torch.nn.Module):
    """Two covered sites (causal; padded: a run-time key-padding mask) and two the kernel
    does not cover."""

    def __init__(self):
        super().__init__()
        self.causal, self.d80, self.f32, self.padded = Causal(upcast=True), Plain(), Plain(), Padded()

    def forward(self, q, k, v, q80, q32, pad):
        return (self.causal(q, k, v), self.d80(q80, q80, q80), self.f32(q32, q32, q32),
                self.padded(q, v, k, pad))


def mixed_args():
    h = torch.float16
    return (torch.randn(1, 2, 128, 64, dtype=h), torch.randn(1, 2, 128, 64, dtype=h),
            torch.randn(1, 2, 128, 64, dtype=h), torch.randn(1, 2, 64, 80, dtype=h),
            torch.randn(1, 2, 64, 64), torch.zeros(1, 128, dtype=h))


def lowered(model, args, target="cuda:sm_90", **kw):
    imported = import_model(model, args)
    return driver.lower(imported.text, parse_target(target), func_name=imported.func_name, **kw)


def rand(*shape, dtype=torch.float16):
    return torch.randn(*shape, dtype=dtype)


# --- targets ------------------------------------------------------------------------------


def test_targets_kernel_arch():
    assert parse_target("cuda:sm_90").kernel_arch == "sm_90"
    assert parse_target("cuda:sm_90").flags == ("--iree-hal-target-device=cuda", "--iree-cuda-target=sm_80")
    assert parse_target("cuda").kernel_arch == parse_target("cuda:sm_80").kernel_arch == "sm_80"
    assert parse_target("cuda:sm_86").kernel_arch == ""
    assert parse_target("cpu").kernel_arch == parse_target("rocm").kernel_arch == ""


# --- kernel builds (Triton AOT, no GPU) ----------------------------------------------------


@pytest.mark.parametrize("arch,dtype,head_dim,causal,kv_heads", [
    (80, "f16", 64, "top_left", 4),
    (80, "bf16", 128, False, 2),
    (90, "f16", 128, "bottom_right", 2),
    (90, "bf16", 64, "top_left", 4),
])
def test_build_kernel(arch, dtype, head_dim, causal, kv_heads):
    kb = triton_fa.build_ptx(batch=2, heads=4, kv_heads=kv_heads, sq=96, skv=160, head_dim=head_dim,
                             dtype=dtype, causal=causal, arch=arch, ptx_version=PTX_VERSION)
    assert kb.name == ENTRY.decode()
    assert kb.ptx_target == ("sm_90a" if arch == 90 else "sm_80")
    assert [p.name for p in kb.params] == ["q", "k", "v", "o", "global_scratch", "profile_scratch"]
    assert kb.grid == (math.ceil(96 / kb.config["BLOCK_M"]), 8, 1)
    assert kb.block == (kb.config["num_warps"] * 32, 1, 1)
    assert 0 < kb.shared_mem_bytes <= triton_fa.MAX_SHARED_OPTIN[arch]
    assert kb.cubin and ENTRY in kb.cubin


TMA_ENTRY = b"_fa_fwd_tma_kernel"  # triton_fa_tma's kernel (Hopper: TMA + warp specialisation)


def _build(**kw):
    args = dict(batch=2, heads=4, kv_heads=4, sq=256, skv=384, head_dim=128, dtype="f16", arch=90,
                ptx_version=PTX_VERSION)
    return triton_fa.build_ptx(**{**args, **kw})


def test_tma_kernel_for_head_dim_128_on_sm90():
    kb = _build()
    assert kb.name == TMA_ENTRY.decode() and kb.config["TMA"] and TMA_ENTRY in kb.cubin
    assert [p.name for p in kb.params] == ["q", "k", "v", "o", "global_scratch", "profile_scratch"]
    # persistent: a program per SM, at most one per (query tile, batch x head): 2 x 8 here
    assert kb.config["PERSISTENT"] and kb.grid == (16, 1, 1) and kb.block == (384, 1, 1)  # + a producer warpgroup
    # every CTA writes its tensor maps (4 x 128 B and more) into its own slice of global scratch
    assert kb.scratch_per_cta >= 512 and kb.scratch_bytes == kb.scratch_per_cta * 16
    big = _build(batch=4, heads=16, kv_heads=4, sq=1024, skv=1024)
    assert big.grid == (triton_fa_tma.NUM_SMS, 1, 1) and big.scratch_bytes == big.scratch_per_cta * triton_fa_tma.NUM_SMS
    tiled = _build(config={"PERSISTENT": False})
    assert tiled.name == TMA_ENTRY.decode() and tiled.grid == (2, 8, 1)


@pytest.mark.parametrize("why,kw", [
    ("sm_80", dict(arch=80)),
    ("Sq not a multiple of the tile", dict(sq=200)),
    ("Skv not a multiple of the tile", dict(skv=300)),
    ("key-padding mask at head dim 64 (the 64x64 pointer kernel wins)",
     dict(head_dim=64, key_padding_mask_dtype="f32")),
    ("causal at head dim 64 (tuned: the pointer kernel)", dict(head_dim=64, causal="top_left")),
    ("causal (tuned: the pointer kernel)", dict(causal="top_left")),
    ("softmax scale <= 0", dict(scale=-0.1, config={"TMA": True})),
])
def test_tma_kernel_not_taken(why, kw):
    kb = _build(**kw)
    assert kb.name == ENTRY.decode() and not kb.config["TMA"] and kb.scratch_bytes == 0, why


GLUON_ENTRY = b"_fa_fwd_gluon_kernel"  # gluon_fa's kernel (FlashAttention-3's schedule, in Gluon)
# GPU numerics cases (gpu_case) built with gluon_fa's kernel tuned in (fa_kernel_configs)
GLUON_GPU_CASES = ["gluon_plain_f16", "gluon_causal_bf16", "gluon_causal_d64_f16", "gluon_bottom_right_f16",
                   "gluon_gqa_bf16", "gluon_seq_first_f16", "gluon_llama_masked_d128_f16"]
# mask cases (mask_gpu_case) through gluon_fa's kernel, where it covers them: key padding (a
# finite fill, -inf with NaN rows, SDPA's row guard with zero rows), SDPA's causal, (B, Sq, Skv)
# masks with fully masked rows
GLUON_MASK_GPU_CASES = [f"gluon_{kind}_f16" for kind in ("hand_pad_min", "masked_fill_1e4", "masked_fill_inf",
                                                          "sdpa_bool_pad", "sdpa_causal", "outer_product",
                                                          "sdpa_float_mask")]


@pytest.mark.parametrize("kw", [
    dict(),                                                          # head dim 128, Sq != Skv
    dict(head_dim=64, dtype="bf16"),
    dict(causal="top_left", sq=384, skv=384),
    dict(causal="bottom_right", sq=128, skv=384, head_dim=64),
    dict(kv_heads=2, in_seq_major=(True, True, True), out_seq_major=True),   # GQA, (B, S, H, D) in place
    dict(in_seq_major=((3 * 512, 0), (3 * 512, 512), (3 * 512, 1024))),   # a fused QKV projection's rows
    dict(config={"GLUON": True, "CONSUMERS": 1}),                    # one 8-warp consumer partition
    dict(config={"GLUON": True, "num_stages": 3}),
    dict(key_padding_mask_dtype="f32", head_dim=64),                 # BERT's padding
    dict(key_padding_mask_dtype="f16", sq=384, skv=384),   # (with causal too it spills 64 bytes at head dim 128)
    dict(mask_dtype="f32", kv_heads=2),                              # LLaMA's run-time (B, Sq, Skv) mask
    dict(mask_dtype="f16", mask_batched=False, head_dim=64),         # one (Sq, Skv) mask for all
])
def test_gluon_kernel_builds_for_sm90(kw):
    """The Gluon kernel compiles for sm_90a with every layout and mask-free case it covers: a
    loader warp plus two consumer warpgroups (384 threads), the consumers raised to 240
    registers each (setmaxnreg), its tensor maps in per-CTA global scratch, a persistent grid
    (a program per SM at most) wherever a head has more than one query tile. Spills: none, but
    causal and (B, Sq, Skv) masks spill 8-16 bytes, outside the key-tile loop (nvdisasm: two
    STL before it and two LDL after it, once per query tile)."""
    kb = _build(**{"config": {"GLUON": True}, **kw})
    assert kb.name == GLUON_ENTRY.decode() and kb.config["GLUON"] and not kb.config["TMA"], kb.config
    assert GLUON_ENTRY in kb.cubin and kb.ptx_target == "sm_90a"
    mask = ["key_padding_mask"] if "key_padding_mask_dtype" in kw else ["mask"] if "mask_dtype" in kw else []
    assert [p.name for p in kb.params] == ["q", "k", "v", *mask, "o", "global_scratch", "profile_scratch"]
    spill_bound = 16 if kw.get("causal") or kw.get("mask_dtype") else 0
    assert kb.block == (384, 1, 1) and kb.n_spills <= spill_bound
    assert "setmaxnreg.inc.sync.aligned.u32 \t240" in kb.ptx and "setmaxnreg.dec.sync.aligned.u32 \t24" in kb.ptx
    assert kb.grid == (min(kb.config["sq"] // 128 * 2 * 4, 132), 1, 1) and kb.scratch_per_cta >= 4 * 128
    assert kb.shared_mem_bytes <= triton_fa.MAX_SHARED_OPTIN[90]


@pytest.mark.parametrize("kw,entry", [
    (dict(sq=2048, skv=2048), GLUON_ENTRY),                                  # tuned in: long, no mask
    (dict(sq=2048, skv=2048, causal="top_left", dtype="bf16"), GLUON_ENTRY),
    (dict(sq=2048, skv=2048, mask_dtype="f32"), TMA_ENTRY),                  # run-time masks: TMA
    (dict(sq=2048, skv=2048, key_padding_mask_dtype="f32"), TMA_ENTRY),
    (dict(sq=1024, skv=1024), TMA_ENTRY),                                    # 1024 keys: TMA
    (dict(sq=2048, skv=2048, head_dim=64), TMA_ENTRY),                       # head dim 64: not Gluon
    (dict(sq=2000, skv=2048, causal="top_left"), ENTRY),                     # not covered: the pointer kernel
])
def test_tuned_table_picks_the_gluon_kernel_where_it_won(kw, entry):
    assert _build(**kw).name == entry.decode()


def test_gluon_kernel_overlaps_the_softmax_with_the_next_product():
    """The schedule is in the PTX: per key tile, q @ k and p @ v are issued before the wait for
    one outstanding group (the softmax of tile j runs while p_{j-1} @ v_{j-1} does)."""
    ptx = _build(config={"GLUON": True}).ptx
    assert "wgmma.wait_group.sync.aligned 1;" in ptx
    loop = ptx[ptx.index("wgmma.wait_group.sync.aligned 1;") - 20000:ptx.index("wgmma.wait_group.sync.aligned 1;")]
    assert loop.count("wgmma.commit_group") >= 2


@pytest.mark.parametrize("why,kw", [
    ("sm_80", dict(arch=80)),
    ("Skv not a multiple of 128", dict(skv=320)),
    ("bottom-right causal with Sq > Skv: rows that see no key", dict(causal="bottom_right", sq=384, skv=256)),
    ("softmax scale <= 0", dict(scale=-0.1)),
])
def test_gluon_kernel_not_taken(why, kw):
    kb = _build(**{**kw, "config": {"GLUON": True}})
    assert kb.name != GLUON_ENTRY.decode() and not kb.config["GLUON"], why
    reason = gluon_fa.covers(arch=kw.get("arch", 90), head_dim=128, sq=kw.get("sq", 256), skv=kw.get("skv", 384),
                             scale=kw.get("scale", 0.1), causal="causal" in kw,
                             bottom_right=kw.get("causal") == "bottom_right")
    assert reason, why


@pytest.mark.parametrize("case", GLUON_GPU_CASES + ["mask_" + c for c in GLUON_MASK_GPU_CASES])
def test_gluon_cases_take_the_gluon_kernel(case):
    """Each gluon_* GPU numerics case, as gpu_numerics.py builds it, dispatches gluon_fa's kernel."""
    model, args, _ = mask_gpu_case(case.removeprefix("mask_")) if case.startswith("mask_") else gpu_case(case)
    with fa_kernel_configs(case):
        low = lowered(model, args)
    assert {r.details["kernel"]["name"] for r in low.of("dispatch-attention")} == {GLUON_ENTRY.decode()}
    assert "flashlift_scratch" in low.text   # its tensor maps: the module global of kernel scratch


def test_gluon_kernel_refuses_what_it_does_not_cover():
    with pytest.raises(ValueError, match="does not cover this case: Sq 100 / Skv 128 not multiples"):
        gluon_fa.compile_kernel(tdt="fp16", cfg=dict(fa_configs.GLUON_TILE), opts={}, arch=90, batch=1, heads=1,
                                kv_heads=1, sq=100, skv=128, head_dim=64, scale=0.125, causal=False,
                                bottom_right=False, out_seq_major=False, in_seq_major=(False,) * 3)


def test_head_dim_128_with_a_full_mask_fits_shared_memory():
    """The tuned 128x128 tile with a (B, Sq, Skv) f32 mask's tiles needs 352 KiB: build_ptx
    takes fewer stages / narrower key tiles until it fits (it used to fail to build, and the
    op fell back to IREE's codegen)."""
    kb = _build(sq=256, skv=256, mask_dtype="f32", config={"TMA": False})
    assert kb.name == ENTRY.decode() and [p.name for p in kb.params][3] == "mask"
    assert kb.shared_mem_bytes <= triton_fa.MAX_SHARED_OPTIN[90]
    assert (kb.config["BLOCK_N"], kb.config["num_stages"]) != (128, 3)


def test_tma_kernel_with_masks():
    """With a run-time mask the TMA kernel loads its tiles with TMA too (128x64 key tiles).
    Tuned: a (B, Sq, Skv) mask takes it; a (B, Skv) key-padding mask at head dim 128 only (at
    64 the pointer kernel, unless config={"TMA": True})."""
    assert _build(mask_dtype="f32").name == TMA_ENTRY.decode()
    assert _build(key_padding_mask_dtype="f32").name == TMA_ENTRY.decode()
    assert _build(mask_dtype="f32", head_dim=64).name == TMA_ENTRY.decode()
    assert _build(key_padding_mask_dtype="f32", head_dim=64).name == ENTRY.decode()
    for mask in (dict(mask_dtype="f32"), dict(key_padding_mask_dtype="f32")):
        kb = _build(**mask, config={"TMA": True})
        assert kb.name == TMA_ENTRY.decode() and kb.config["BLOCK_N"] == 64 and kb.scratch_bytes > 0
        assert [p.name for p in kb.params] == ["q", "k", "v", "mask" if "mask_dtype" in mask else "key_padding_mask",
                                               "o", "global_scratch", "profile_scratch"]


def test_tma_kernel_asked_for_where_it_applies():
    """config={"TMA": True} picks it for head dim 64 and causal masks too (for tuning)."""
    kb = _build(head_dim=64, causal="bottom_right", config={"TMA": True})
    assert kb.name == TMA_ENTRY.decode() and (kb.config["BLOCK_M"], kb.config["num_stages"]) == (128, 2)


def test_tma_kernel_scratch_is_a_module_global():
    """The dispatch binds a module global as Triton's global scratch, updated in place (a tied
    result stored back): no per-call allocation, one global per size for every site."""
    from iree.compiler.tools import compile_str

    class Two(torch.nn.Module):
        def forward(self, q, k, v):
            return attention(attention(q, k, v), k, v)

    low = lowered(Two(), tuple(rand(1, 2, 256, 128) for _ in range(3)))
    assert [r.outcome for r in low.of("dispatch-attention")] == ["triton-fa sm_90"] * 2
    assert {r.details["kernel"]["name"] for r in low.of("dispatch-attention")} == {TMA_ENTRY.decode()}
    assert low.text.count("util.global private mutable @flashlift_scratch") == 1
    [line] = [ln for ln in low.text.splitlines() if "flow.dispatch @flashlift_fa_sm90" in ln]
    operands = line[line.index("(") + 1:line.index(")")].split(", ")
    assert len(operands) == 6 and operands[5] == operands[0] and operands[4] != operands[0], line
    assert f"-> ({operands[3]}, {operands[4]})" in line, line
    # bindings: q, k, v read-only; o and the scratch read-write; profile scratch (q) read-only
    assert low.text.count("storage_buffer, ReadOnly") == 4 and low.text.count("storage_buffer>") == 2
    stream = compile_str(low.text, extra_args=list(driver.compile_flags(parse_target("cuda:sm_90"))) +
                         ["--compile-to=stream"]).decode()
    # the global's resource is the dispatch's operand and result: no copy, no transient; the
    # only other execution is the initializer's fill (`execute once`)
    assert "stream.async.copy" not in stream and "stream.async.clone" not in stream
    assert stream.count("stream.cmd.execute on(") == 1 and stream.count("stream.cmd.execute once on(") == 1
    assert stream.count("stream.cmd.dispatch @flashlift_fa_sm90") == 2


def test_llama_d128_mask_takes_the_tma_kernel_with_its_binding_order():
    """LLaMA-7B-like: head dim 128, grouped-query, the run-time causal + padding mask: the TMA
    kernel's parameters are (q, k, v, mask, o, global scratch, profile scratch)."""
    args = (rand(2, 8, 256, 128), rand(2, 2, 256, 128), rand(2, 256, 2, 128), llama_mask(2, 256))
    low = lowered(LlamaMasked(), args)
    [rec] = low.of("dispatch-attention")
    assert rec.details["kernel"]["name"] == TMA_ENTRY.decode() and rec.details["kernel"]["tile"][:2] == [128, 64], rec
    [line] = [ln for ln in low.text.splitlines() if "flow.dispatch @flashlift_fa_sm90" in ln]
    operands = line[line.index("(") + 1:line.index(")")].split(", ")
    assert len(operands) == 7 and operands[6] == operands[0] and "scratch" in operands[5], line
    assert "tensor<2x256x256xf32>, tensor<2x2x4x256x128xf16>, tensor<" in line, line


def test_tma_dispatch_needs_its_scratch():
    from flashlift.compiler.kernels import iree_dispatch

    with pytest.raises(ValueError, match="needs .* bytes of global scratch"):
        iree_dispatch.dispatch_op(_build(), "ex", "%q", "%k", "%v")
    with pytest.raises(ValueError, match="uses no global scratch"):
        iree_dispatch.dispatch_op(_build(arch=80), "ex", "%q", "%k", "%v", scratch=("g", 1 << 20))
    kb = _build()
    with pytest.raises(ValueError, match="needs .* bytes of global scratch"):
        iree_dispatch.dispatch_op(kb, "ex", "%q", "%k", "%v", scratch=("g", kb.scratch_bytes - 1))


def test_tma_kernels_share_one_scratch_global_of_the_largest_size():
    """Sites of different shapes bind one global, sized for the largest (a single allocation,
    so the 128-byte alignment of Triton's tensor maps holds)."""

    class TwoShapes(torch.nn.Module):
        def forward(self, q, k, v, q2):
            return attention(q, k, v), attention(q2, q2, q2)

    args = tuple(rand(1, 2, 256, 128) for _ in range(3)) + (rand(2, 4, 512, 128),)
    low = lowered(TwoShapes(), args)
    assert [r.details["kernel"]["name"] for r in low.of("dispatch-attention")] == [TMA_ENTRY.decode()] * 2
    largest = max(_build(batch=b, heads=h, kv_heads=h, sq=s, skv=s).scratch_bytes for b, h, s in ((1, 2, 256), (2, 4, 512)))
    assert low.text.count("util.global private mutable") == 1
    assert f"util.global private mutable @flashlift_scratch = dense<0> : tensor<{largest}xi8>" in low.text
    assert low.text.count(f"util.global.load @flashlift_scratch : tensor<{largest}xi8>") == 2


# --- mask classification ---------------------------------------------------------------------


def _mask(hidden, fill=float("-inf")):
    return np.where(hidden, fill, 0.0).astype(np.float32)


@pytest.mark.parametrize("sq,skv", [(3, 5), (5, 5), (64, 128)])
def test_classify_top_left(sq, skv):
    i, j = np.arange(sq)[:, None], np.arange(skv)[None, :]
    assert causal_kind(_mask(j > i)) == "top_left"
    assert causal_kind(_mask(j > i, fill=-1e9)) == "top_left"  # a very negative fill counts


@pytest.mark.parametrize("sq,skv", [(3, 5), (64, 128)])
def test_classify_bottom_right(sq, skv):
    i, j = np.arange(sq)[:, None], np.arange(skv)[None, :]
    assert causal_kind(_mask(j > i + (skv - sq))) == "bottom_right"


def test_classify_square_is_top_left():
    i, j = np.arange(4)[:, None], np.arange(4)[None, :]
    assert causal_kind(_mask(j > i)) == "top_left"  # the two coincide for Sq == Skv


def test_classify_none_and_others():
    assert causal_kind(np.zeros((3, 5), np.float32)) is False
    i, j = np.arange(3)[:, None], np.arange(5)[None, :]
    with pytest.raises(NotCovered, match="not causal"):
        causal_kind(_mask(j >= i))  # hides the diagonal too
    with pytest.raises(NotCovered, match="not causal"):
        causal_kind(_mask(j > 3))  # a key padding mask
    with pytest.raises(NotCovered, match="values other than 0"):
        causal_kind(np.full((3, 5), 0.5, np.float32))  # a bias
    with pytest.raises(NotCovered, match="values other than 0"):
        causal_kind(_mask(j > i, fill=-100.0))  # not negative enough to mean "masked"
    # Sq > Skv bottom-right: the first rows see no key at all. With -inf the op's row is NaN
    # (0 after a row guard), what the kernel writes there (empty_rows): causal. With a finite
    # fill (FLOOR) the op's row is uniform, which the causal kernel does not compute.
    i, j = np.arange(5)[:, None], np.arange(3)[None, :]
    assert causal_kind(_mask(j > i - 2)) == "bottom_right"
    with pytest.raises(NotCovered, match="hides every key from some queries by a finite value"):
        causal_kind(_mask(j > i - 2, fill=-(2.0 ** 126)))
    # the empty rows -inf, the other rows' hidden keys FLOOR: causal (those rows see a key)
    assert causal_kind(np.where(j > i - 2, np.where(i < 2, -np.inf, -(2.0 ** 126)), 0.0)) == "bottom_right"


@pytest.mark.parametrize("bottom_right", [False, True], ids=["top_left", "bottom_right"])
def test_causal_mask_evaluated_at_compile_time(bottom_right):
    args = (rand(1, 2, 64, 64), rand(1, 2, 128, 64), rand(1, 2, 128, 64))  # Sq != Skv
    low = lowered(Causal(bottom_right=bottom_right), args)
    [rec] = low.of("dispatch-attention")
    assert rec.outcome == "triton-fa sm_90", rec
    assert rec.details["kernel"]["causal"] == ("bottom_right" if bottom_right else "top_left")
    assert "iree_linalg_ext.attention" not in low.text and "flow.dispatch @flashlift_fa_sm90" in low.text


def test_mask_evaluation_is_cached(monkeypatch):
    args = (rand(1, 2, 32, 64), rand(1, 2, 48, 64), rand(1, 2, 48, 64))
    assert lowered(Causal(bottom_right=True), args).of("dispatch-attention")[0].details["kernel"]["causal"] == "bottom_right"

    def fail(modules):
        raise AssertionError("mask evaluated again")

    monkeypatch.setattr(mask_consteval, "_run_funcs", fail)
    assert lowered(Causal(bottom_right=True), args).of("dispatch-attention")[0].details["kernel"]["causal"] == "bottom_right"


# --- coverage rules on lowered modules -------------------------------------------------------


def test_grouped_query_is_covered():
    low = lowered(GroupedQuery(), (rand(2, 8, 128, 128), rand(2, 2, 128, 128), rand(2, 2, 128, 128)))
    [rec] = low.of("dispatch-attention")
    assert rec.outcome == "triton-fa sm_90", rec
    assert rec.details["kernel"]["causal"] == "top_left"
    assert rec.details["kernel"]["grid"][1] == 16  # B * H query heads


def test_seq_first_layout_is_read_in_place_by_the_kernel():
    """(B, S, H, D) models: compiler/layout.py copies Q/K/V into (B, H, S, D) (and O back) for
    IREE's codegen; the kernel reads and writes (B, S, H, D) itself, so no copy is left."""
    low = lowered(SeqFirst(), tuple(rand(2, 128, 4, 64) for _ in range(3)))
    [rec] = low.of("dispatch-attention")
    assert rec.outcome == "triton-fa sm_90", rec
    assert rec.details["kernel"]["layout"] == "Q (B, S, H, D), K (B, S, H, D), V (B, S, H, D), O (B, S, H, D)"
    assert "linalg.transpose" not in low.text and "compute_barrier" not in low.text


def test_projection_layouts_are_read_in_place():
    """A BERT-style block: Q/K/V as the projections leave them ((B, S, H, D) views, or columns
    of the fused projection), O written in the layout the output projection reads; no
    activation is transposed, so IREE fuses the projections' bias adds into their matmuls."""

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (torch.nn.Linear(256, 256) for _ in range(4))

        def forward(self, x, mask):
            b, s, _ = x.shape
            q, k, v = (p(x).view(b, s, 4, 64).transpose(1, 2) for p in (self.q, self.k, self.v))
            return self.o(attention(q, k, v, mask).transpose(1, 2).reshape(b, s, 256))

    args = (rand(2, 128, 256), bert_mask(2, 128, -65504.0))
    low = lowered(Block().half(), args, fuse_linears=False)
    [rec] = low.of("dispatch-attention")
    assert rec.outcome == "triton-fa sm_90", rec
    assert rec.details["kernel"]["layout"] == "Q (B, S, H, D), K (B, S, H, D), V (B, S, H, D), O (B, S, H, D)"
    assert "permutation = [0, 2, 1, 3]" not in low.text
    # CUDA's default fuses the three projections (fuse-linears{reads=attention}): the kernel
    # reads Q, K and V at their columns of the one GEMM's result
    [rec] = lowered(Block().half(), args).of("dispatch-attention")
    assert rec.details["kernel"]["layout"] == ("Q cols 0:256 of [256, 768], K cols 256:512 of [256, 768], "
                                               "V cols 512:768 of [256, 768], O (B, S, H, D)"), rec


@pytest.mark.parametrize("use_kernels", [True, False], ids=["kernel", "codegen"])
def test_layout_fences_keep_one_command_buffer(use_kernels):
    """The canonical-layout copies and the fences of configured ops are compute barriers, not
    util.optimization_barrier: those survive into the stream program as host waits and split
    the command buffer (BERT on an H200: 1.1 ms of GPU idle per call, 4 layers)."""
    from iree.compiler.tools import compile_str

    low = lowered(SeqFirst(), tuple(rand(2, 128, 4, 64) for _ in range(3)), use_kernels=use_kernels)
    assert low.of("dispatch-attention")[0].outcome == ("triton-fa sm_90" if use_kernels else "iree-codegen")
    assert "util.optimization_barrier" not in low.text
    assert ("iree_tensor_ext.compute_barrier" in low.text) == (not use_kernels)  # the kernel reads through
    stream = compile_str(low.text, extra_args=list(driver.compile_flags(parse_target("cuda:sm_90"))) +
                         ["--compile-to=stream"]).decode()
    # one command buffer per call (the kernel's scratch global adds an initializer, `execute once`)
    assert stream.count("stream.cmd.execute on(") == 1 and "optimization_barrier" not in stream


def test_use_kernels_false_and_other_targets():
    args = tuple(rand(1, 2, 64, 64) for _ in range(3))
    [rec] = lowered(Plain(), args, use_kernels=False).of("dispatch-attention")
    assert (rec.stage, rec.outcome, rec.reason, rec.details, rec.site) == ("dispatch-attention", "iree-codegen", "use_kernels=False", {}, 0)
    assert lowered(Plain(), args, target="cuda:sm_86").of("dispatch-attention") == []
    records = kernel_dispatch.dispatch_kernels(_module_with_attention(args), parse_target("rocm"))
    assert [r["path"] for r in records] == ["iree-codegen"] and "no flashlift kernels" in records[0]["reason"]


def _module_with_attention(args):
    from iree.compiler import ir

    from flashlift.compiler.pipeline import RAISE_PIPELINE, run_pipeline

    module = ir.Module.parse(import_model(Plain(), args).text, ir.Context())
    run_pipeline(module, RAISE_PIPELINE)
    return module


# --- key-padding masks (run-time mask operand) ------------------------------------------------


@pytest.mark.parametrize("target", ["cuda:sm_90", "cuda:sm_80"])
@pytest.mark.parametrize("fill", [-65504.0, float("-inf")], ids=["min_f16", "inf"])
def test_bert_padding_mask_is_covered(target, fill):
    args = (rand(2, 4, 128, 64), rand(2, 4, 128, 64), rand(2, 4, 128, 64), bert_mask(2, 128, fill))
    compiled = flashlift.compile_model(BertPadded(), args, target=target)
    arch = target.split(":")[1]
    [site] = compiled.report.raised
    assert site.path == f"triton-fa {arch}", site.path_reason
    kernel = site.details["kernel"]
    assert kernel["causal"] == "none" and kernel["mask"] == "key-padding [2, 128] f32 (run time)"
    assert ENTRY in compiled.vmfb


def test_padding_mask_dispatch_binding_order():
    args = (rand(2, 4, 128, 64), rand(2, 4, 128, 64), rand(2, 4, 128, 64), bert_mask(2, 128, -65504.0))
    low = lowered(BertPadded(), args)
    [rec] = low.of("dispatch-attention")
    assert rec.outcome == "triton-fa sm_90", rec
    assert "iree_linalg_ext.attention" not in low.text
    # the mask is the 4th dispatch operand: binding 3, before O (binding 4, tied), as the kernel's
    # params; the two scratch pointers are bound to q again (bindings 5 and 6)
    [line] = [ln for ln in low.text.splitlines() if "flow.dispatch @flashlift_fa_sm90" in ln]
    operands = line[line.index("(") + 1:line.index(")")].split(", ")
    assert len(operands) == 7 and operands[5] == operands[6] == operands[0], line
    assert line.endswith(f"-> {operands[4]}") or f"-> {operands[4]} loc" in line, line
    assert "tensor<2x128xf32>, tensor<2x4x128x64xf16>, tensor<2x4x128x64xf16>, tensor<2x4x128x64xf16>)" in line
    assert low.text.count("storage_buffer, ReadOnly") == 6 and low.text.count("storage_buffer>") == 1


def test_padding_mask_not_on_the_leading_batch_dim_falls_back():
    """A [H, S] mask (per head, not per batch entry) is not a key-padding mask."""

    class PerHead(torch.nn.Module):
        def forward(self, q, k, v, m):
            return attention(q, k, v, m[None, :, None, :])

    args = (rand(2, 4, 64, 64), rand(2, 4, 64, 64), rand(2, 4, 64, 64), torch.zeros(4, 64, dtype=torch.float16))
    [rec] = lowered(PerHead(), args).of("dispatch-attention")
    assert rec.outcome == "iree-codegen" and "run time" in rec.reason, rec


def test_llama_runtime_mask_is_covered():
    """LLaMA: grouped-query, V made canonical by layout.py, the causal + padding mask from the
    inputs added at run time (a (B, Sq, Skv) mask operand after V) by the TMA kernel (tuned so
    for head dim 64 too), which also binds its scratch global."""
    args = (rand(2, 8, 128, 64), rand(2, 2, 128, 64), rand(2, 128, 2, 64), llama_mask(2, 128))
    low = lowered(LlamaMasked(), args)
    [rec] = low.of("dispatch-attention")
    assert rec.outcome == "triton-fa sm_90", rec
    assert rec.details["kernel"]["mask"] == "additive [2, 128, 128] f32 (run time)" and rec.details["kernel"]["grid"][1] == 16
    assert rec.details["kernel"]["layout"] == "Q (B, H, S, D), K (B, H, S, D), V (B, S, H, D), O (B, H, S, D)"
    [line] = [ln for ln in low.text.splitlines() if "flow.dispatch @flashlift_fa_sm90" in ln]
    assert "@_fa_fwd_tma_kernel(%arg0, %arg1, %arg2, %arg3, %0, %flashlift_scratch, %arg0)" in line, line
    assert "tensor<2x128x2x64xf16>, tensor<2x128x128xf32>, tensor<2x2x4x128x64xf16>, " in line, line


def test_shared_runtime_mask_is_covered():
    """A run-time [Sq, Skv] mask (the same for every batch entry) is taken too."""

    class Shared(torch.nn.Module):
        def forward(self, q, k, v, m):
            return attention(q, k, v, m)

    args = (rand(2, 4, 64, 64), rand(2, 4, 96, 64), rand(2, 4, 96, 64), torch.zeros(64, 96, dtype=torch.float16))
    [rec] = lowered(Shared(), args).of("dispatch-attention")
    assert rec.outcome == "triton-fa sm_90" and rec.details["kernel"]["mask"] == "additive [64, 96] f32 (run time)", rec


@pytest.mark.parametrize("target", ["cuda:sm_90", "cuda:sm_80"])
def test_per_head_runtime_mask_is_covered(target):
    """ALiBi's mask: a bias per head plus the padding, [B, H, Sq, Skv] from the inputs, is
    read by the kernel at each (batch, head)'s own rows (MASK_BATCHED 2; interp_check.py runs
    it against PyTorch), bound whole as the fourth binding."""

    class PerHead(torch.nn.Module):
        def forward(self, q, k, v, m):
            return attention(q, k, v, m)

    args = (rand(2, 4, 64, 64), rand(2, 4, 96, 64), rand(2, 4, 96, 64), torch.randn(2, 4, 64, 96, dtype=torch.float16))
    low = lowered(PerHead(), args, target=target)
    [rec] = low.of("dispatch-attention")
    assert rec.outcome == f"triton-fa sm_{target[-2:]}", rec
    assert rec.details["kernel"]["mask"] == "additive [2, 4, 64, 96] f32 (run time)", rec
    [line] = [ln for ln in low.text.splitlines() if "flow.dispatch @flashlift_fa_sm" in ln]
    assert "tensor<2x4x64x96xf32>" in line, line


def test_constant_mask_hiding_a_row_takes_the_nan_kernel():
    """Sq > Skv bottom-right causal by masked_fill(-inf) and a plain softmax: the first
    queries see no key, NaN in the op (and PyTorch); the kernel built with empty_rows="nan"."""
    args = (rand(1, 2, 96, 64), rand(1, 2, 64, 64), rand(1, 2, 64, 64))
    [rec] = lowered(Causal(bottom_right=True), args).of("dispatch-attention")
    assert rec.outcome == "triton-fa sm_90", rec
    assert rec.details["kernel"]["causal"] == "bottom_right" and rec.details["kernel"]["empty_rows"] == "NaN", rec


def test_constant_mask_hiding_a_row_by_a_finite_fill_is_added_at_run_time():
    """The same rows hidden by finfo.min: uniform in the op, so not causal for the kernel; the
    [M, K2] mask is added at run time instead (FLOOR * log2(e) is finite there)."""

    class MinFill(torch.nn.Module):
        def forward(self, q, k, v):
            keep = torch.ones(96, 64, dtype=torch.bool).tril(diagonal=64 - 96)
            fill = torch.finfo(torch.float16).min  # an f16 model adds it: s - 65504 == -65504 (FLOOR)
            return attention(q, k, v, torch.zeros(96, 64, dtype=torch.float16).masked_fill(~keep, fill))

    [rec] = lowered(MinFill(), (rand(1, 2, 96, 64), rand(1, 2, 64, 64), rand(1, 2, 64, 64))).of("dispatch-attention")
    assert rec.outcome == "triton-fa sm_90", rec
    assert rec.details["kernel"]["mask"] == "additive [96, 64] f32 (run time)", rec


# --- raise-attention's row guard (torch's _safe_softmax) and the kernel's empty rows ----------


class SdpaBool(torch.nn.Module):
    """F.scaled_dot_product_attention with a boolean key-padding mask: _safe_softmax's guard."""

    def __init__(self, transpose_out: bool = False):
        super().__init__()
        self.transpose_out = transpose_out

    def forward(self, q, k, v, keep):  # keep: (B, S) bool
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        return o.transpose(1, 2) if self.transpose_out else o


class SdpaFloat(torch.nn.Module):
    """SDPA with a float [B, 1, S, S] mask from the inputs: a bias where `keep`, `fill` where
    not (finfo.min by default), -inf on the rows `dead` marks (rows _safe_softmax zeroes)."""

    def __init__(self, fill: Optional[float] = None):
        super().__init__()
        self.fill = fill

    def forward(self, q, k, v, keep, bias, dead):  # keep (B, 1, S, S), bias (B, 1, S, S), dead (B, 1, S, 1)
        fill = torch.finfo(q.dtype).min if self.fill is None else self.fill
        mask = torch.where(keep, bias, fill).masked_fill(dead, float("-inf"))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class SdpaCausal(torch.nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _guard_left(text: str) -> bool:
    return "arith.andi" in text  # the row guard's all(mask == -inf) reduction


@pytest.mark.parametrize("target", ["cuda:sm_90", "cuda:sm_80"])
def test_row_guard_is_folded_into_the_kernel(target):
    """SDPA's _safe_softmax: raise-attention's guard after the op is dropped and the kernel
    writes 0 on the rows that see no key (empty_rows="zero"); no reduction is left."""
    keep = torch.ones(2, 128, dtype=torch.bool)
    args = (rand(2, 4, 128, 64), rand(2, 4, 128, 64), rand(2, 4, 128, 64), keep)
    assert _guard_left(lowered(SdpaBool(), args, use_kernels=False).text)  # (the guard is there)
    low = lowered(SdpaBool(), args, target=target)
    [rec] = low.of("dispatch-attention")
    assert rec.outcome == f"triton-fa {target.split(':')[1]}", rec
    assert rec.details["kernel"]["empty_rows"] == "0 (row guard folded in)" and rec.details["kernel"]["mask"].startswith("key-padding")
    assert not _guard_left(low.text) and "iree_linalg_ext.attention" not in low.text


def test_guard_truncation_and_transpose_fold_into_the_kernel():
    """f16 SDPA: torch's decomposition computes P.V in f32 and truncates after its reshape;
    raise-attention has the op produce f16 itself (tracing.narrowing_cast). The row guard and
    the model's .transpose(1, 2) follow; the kernel computes all of them and writes
    (B, S, H, D) f16 itself."""
    args = (rand(2, 4, 128, 64), rand(2, 4, 128, 64), rand(2, 4, 128, 64), torch.ones(2, 128, dtype=torch.bool))
    unfolded = lowered(SdpaBool(transpose_out=True), args, use_kernels=False).text
    assert "tensor<2x4x128x64xf32>" not in unfolded and "linalg.transpose" in unfolded
    low = lowered(SdpaBool(transpose_out=True), args)
    [rec] = low.of("dispatch-attention")
    assert rec.details["kernel"]["layout"].endswith("O (B, S, H, D)") and rec.details["kernel"]["empty_rows"].startswith("0"), rec
    assert "linalg.transpose" not in low.text and "tensor<2x4x128x64xf32>" not in low.text
    assert "arith.truncf" not in low.text and not _guard_left(low.text)


def test_without_a_guard_the_kernel_gives_nan_rows():
    """A hand-written softmax (no guard): the op's NaN rows, empty_rows="nan"."""
    args = (rand(2, 4, 128, 64), rand(2, 4, 128, 64), rand(2, 4, 128, 64), bert_mask(2, 128, float("-inf")))
    [rec] = lowered(BertPadded(), args).of("dispatch-attention")
    assert rec.outcome == "triton-fa sm_90" and rec.details["kernel"]["empty_rows"] == "NaN", rec


def test_the_two_variants_are_two_executables():
    """Same shape, one site with the guard and one without: two kernels, not one executable."""

    class Both(torch.nn.Module):
        def forward(self, q, k, v, keep, pad):
            return SdpaBool()(q, k, v, keep), attention(q, k, v, pad[:, None, None, :])

    args = (rand(2, 4, 128, 64), rand(2, 4, 128, 64), rand(2, 4, 128, 64), torch.ones(2, 128, dtype=torch.bool),
            torch.zeros(2, 128, dtype=torch.float16))
    low = lowered(Both(), args)
    assert [r.details["kernel"]["empty_rows"] for r in low.of("dispatch-attention")] == ["0 (row guard folded in)", "NaN"], low.of("dispatch-attention")
    assert low.text.count("hal.executable.source private @flashlift_fa_sm90") == 2


def test_row_guard_on_a_full_mask_and_on_a_causal_mask():
    b, s = 2, 128
    args = (rand(b, 4, s, 128), rand(b, 4, s, 128), rand(b, 4, s, 128), torch.ones(b, 1, s, s, dtype=torch.bool),
            rand(b, 1, s, s), torch.zeros(b, 1, s, 1, dtype=torch.bool))
    low = lowered(SdpaFloat(), args)
    [rec] = low.of("dispatch-attention")
    assert rec.outcome == "triton-fa sm_90" and rec.details["kernel"]["mask"] == f"additive [{b}, {s}, {s}] f32 (run time)", rec
    assert rec.details["kernel"]["empty_rows"] == "0 (row guard folded in)" and not _guard_left(low.text)
    low = lowered(SdpaCausal(), tuple(rand(b, 4, s, 64) for _ in range(3)))
    [rec] = low.of("dispatch-attention")
    assert rec.details["kernel"]["causal"] == "top_left" and rec.details["kernel"]["empty_rows"] == "0 (row guard folded in)", rec
    assert not _guard_left(low.text)


def test_row_guard_stays_where_the_kernel_is_not_taken():
    args = (rand(2, 4, 64, 80), rand(2, 4, 64, 80), rand(2, 4, 64, 80), torch.ones(2, 64, dtype=torch.bool))
    low = lowered(SdpaBool(), args)
    [rec] = low.of("dispatch-attention")
    assert rec.outcome == "iree-codegen" and "head dim 80" in rec.reason, rec
    assert _guard_left(low.text)


def test_row_guard_near_misses_keep_the_guard():
    """row_guard recognises only raise-attention's guard: a select writing 1, or one whose
    condition is not the op's own mask, is left in place (and the kernel then gives NaN rows)."""
    from iree.compiler import ir

    from flashlift.compiler.pipeline import RAISE_PIPELINE, run_pipeline

    keep = torch.ones(2, 128, dtype=torch.bool)
    args = (rand(2, 4, 128, 64), rand(2, 4, 128, 64), rand(2, 4, 128, 64), keep)
    text = import_model(SdpaBool(), args).text
    for edit in ("one", "other_mask"):
        module = ir.Module.parse(text, ir.Context())
        run_pipeline(module, RAISE_PIPELINE)
        with module.context, ir.Location.unknown():
            [op] = _ops(module)
            plan = attention_coverage.analyze(op)
            select, red = attention_fusion.row_guard(plan)
            if edit == "one":
                block = select.regions[0].blocks[0]
                sel = list(block.operations)[-2]
                with ir.InsertionPoint(sel):
                    one = ir.Operation.create("arith.constant", results=[sel.results[0].type],
                                              attributes={"value": ir.FloatAttr.get(sel.results[0].type, 1.0)})
                sel.operands[1] = one.results[0]
            else:
                red.operands[0] = ir.Operation.create(
                    "arith.constant", results=[plan.mask.type],
                    attributes={"value": ir.DenseElementsAttr.get_splat(
                        plan.mask.type, ir.FloatAttr.get(ir.F32Type.get(), 0.0))},
                    ip=ir.InsertionPoint(red)).results[0]
            assert attention_fusion.row_guard(plan) == [], edit
            [rec] = kernel_dispatch.dispatch_kernels(module, parse_target("cuda:sm_90"), evaluate_masks=False)
            assert rec["path"] == "triton-fa sm_90" and rec["kernel"]["empty_rows"] == "NaN", (edit, rec)
            assert _guard_left(module.operation.get_asm()), edit


def _ops(module):
    from flashlift.passes.ir import collect

    return collect(module, "iree_linalg_ext.attention")


def test_build_kernel_with_full_mask():
    for arch, batched in ((80, True), (90, False)):
        kb = triton_fa.build_ptx(batch=2, heads=4, kv_heads=2, sq=96, skv=160, head_dim=64, dtype="f16",
                                 arch=arch, ptx_version=PTX_VERSION, mask_dtype="f32",
                                 mask_batched=batched)
        assert [p.name for p in kb.params] == ["q", "k", "v", "mask", "o", "global_scratch", "profile_scratch"]
        assert kb.config["mask"] == "fp32" and kb.config["mask_batched"] == batched and ENTRY in kb.cubin
        from flashlift.compiler.kernels import iree_dispatch

        assert iree_dispatch.mask_type(kb) == ("tensor<2x96x160xf32>" if batched else "tensor<96x160xf32>")


@pytest.mark.parametrize("batched", [True, False], ids=["per_entry", "shared"])
@pytest.mark.parametrize("config", [None, {"TMA": True}, {"GLUON": True}], ids=["tuned", "tma", "gluon"])
def test_build_kernel_with_per_head_mask(config, batched):
    """mask_heads=True: a (B, H, Sq, Skv) mask, or (H, Sq, Skv) for every batch entry
    (mask_batched=False), bound as such (iree_dispatch.mask_type)."""
    from flashlift.compiler.kernels import iree_dispatch

    for arch in ((80, 90) if config is None else (90,)):
        kb = triton_fa.build_ptx(batch=2, heads=4, kv_heads=2, sq=256, skv=256, head_dim=128 if config else 64,
                                 dtype="f16", arch=arch, ptx_version=PTX_VERSION, mask_dtype="f32", mask_heads=True,
                                 mask_batched=batched, config=config)
        assert kb.config["mask_heads"] and kb.config["mask_batched"] == batched
        assert iree_dispatch.mask_type(kb) == ("tensor<2x4x256x256xf32>" if batched else "tensor<4x256x256xf32>")
        assert [p.name for p in kb.params] == ["q", "k", "v", "mask", "o", "global_scratch", "profile_scratch"]
        if config:
            assert kb.config["GLUON" if "GLUON" in config else "TMA"]


def test_build_kernel_with_key_padding_mask():
    for arch in (80, 90):
        kb = triton_fa.build_ptx(batch=2, heads=4, kv_heads=2, sq=96, skv=160, head_dim=64, dtype="f16",
                                 arch=arch, ptx_version=PTX_VERSION,
                                 key_padding_mask_dtype="f32")
        assert [p.name for p in kb.params] == ["q", "k", "v", "key_padding_mask", "o",
                                               "global_scratch", "profile_scratch"]
        assert [p.role for p in kb.params][:5] == ["input"] * 4 + ["output"]
        assert kb.config["key_padding_mask"] == "fp32" and kb.cubin and ENTRY in kb.cubin


def test_kernel_semantics_in_triton_interpreter():
    """tools/kernels/interp_check.py: the kernel under TRITON_INTERPRET=1 (CPU) against torch,
    with and without key-padding masks (~10 s; a subprocess, since the interpreter is chosen when
    the kernel is decorated)."""
    r = subprocess.run([sys.executable, INTERP_CHECK], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert r.stdout.count(" ok") >= 18 and "FAIL" not in r.stdout


def test_tma_kernel_semantics_in_triton_interpreter():
    """interp_check.py tma: triton_fa_tma's kernel (GQA, causal both alignments, rows that see
    no key, sequence-major operands, run-time masks: per batch entry, one for all, per head,
    per head for all) under TRITON_INTERPRET=1 against torch."""
    r = subprocess.run([sys.executable, INTERP_CHECK, "tma"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert r.stdout.count(" ok") == 22 and "FAIL" not in r.stdout  # 11 cases, per-tile and persistent


def test_fused_qkv_columns_in_triton_interpreter():
    """interp_check.py fused: both kernels read Q, K, V at their columns of one fused QKV buffer
    [B * S, width] (fa_layouts.py; none at column 0), grouped-query and causal, against torch."""
    r = subprocess.run([sys.executable, INTERP_CHECK, "fused"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert r.stdout.count(" ok") == 4 and "FAIL" not in r.stdout


def test_empty_and_floor_rows_in_triton_interpreter():
    """interp_check.py empty: both kernels, both empty_rows variants, on rows whose every key
    is -inf (0, or NaN as torch's softmax gives) and rows whose every key is FLOOR (uniform,
    FLOOR * log2(e) is finite), with (B, Skv) and (B, Sq, Skv) masks, causal too."""
    r = subprocess.run([sys.executable, INTERP_CHECK, "empty"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert r.stdout.count(" ok") == 18 and "FAIL" not in r.stdout
    assert r.stdout.count("empty_rows=nan") == r.stdout.count("empty_rows=zero") == 9


def test_build_ptx_empty_rows_variants():
    """empty_rows is in the kernel's config (so the variants get different executables)."""
    for kw in (dict(), dict(config={"TMA": False}), dict(mask_dtype="f32")):
        zero, nan = (_build(**kw, empty_rows=e) for e in ("zero", "nan"))
        assert (zero.config["empty_rows"], nan.config["empty_rows"]) == ("zero", "nan")
        assert zero.cubin != nan.cubin and zero.name == nan.name
    assert _build().config["empty_rows"] == "zero"  # the default: what the tuning tools compare with
    with pytest.raises(ValueError, match="empty_rows"):
        _build(empty_rows="inf")


# --- compile_model end to end (no GPU needed to compile) --------------------------------------


@pytest.mark.parametrize("target", ["cuda:sm_90", "cuda:sm_80"])
def test_compile_model_report_and_vmfb(target):
    torch.manual_seed(0)
    compiled = flashlift.compile_model(Mixed(), mixed_args(), target=target)
    arch = target.split(":")[1]
    assert ENTRY in compiled.vmfb
    sites = {s.module_path: s for s in compiled.report.raised}
    assert set(sites) == {"causal", "d80", "f32", "padded"}
    assert sites["causal"].path == f"triton-fa {arch}" and sites["causal"].path_reason == ""
    assert sites["causal"].details["kernel"]["causal"] == "top_left"
    assert sites["d80"].path == "iree-codegen" and "head dim 80" in sites["d80"].path_reason
    assert sites["f32"].path == "iree-codegen" and "element type f32" in sites["f32"].path_reason
    assert sites["padded"].path == f"triton-fa {arch}" and sites["padded"].path_reason == ""
    assert sites["padded"].details["kernel"]["mask"].startswith("key-padding [1, 128]")
    text = str(compiled.report)
    assert f"[triton-fa {arch}]" in text and "[iree-codegen: head dim 80" in text
    # the report survives save/load
    assert flashlift.CompiledModel(compiled.vmfb, compiled.meta).report.raised[0].path == f"triton-fa {arch}"


def test_cpu_report_path():
    """On the CPU an f32 site takes flashlift's CPU kernel where this machine runs it
    (test_cpu_kernel.py), else IREE's codegen with the reason; with use_kernels=False, codegen."""
    from flashlift.compiler.cpu_dispatch import choose_isa, kernel_path, target_isas, unavailable
    from flashlift.compiler.targets import parse_target

    inputs = tuple(torch.randn(1, 2, 16, 64) for _ in range(3))
    site = flashlift.compile_model(Plain(), inputs).report.raised[0]
    why = unavailable(parse_target("cpu"))
    best = "" if why else kernel_path(choose_isa(target_isas(parse_target("cpu")), "f32"))
    assert (site.path, site.path_reason) == (("iree-codegen", why) if why else (best, ""))
    site = flashlift.compile_model(Plain(), inputs, use_kernels=False).report.raised[0]
    assert (site.path, site.path_reason) == ("iree-codegen", "use_kernels=False")


# --- numerics on a CUDA device (skipped without one) ---------------------------------------------


def _gpu_target():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (torch)")
    target = "cuda:sm_90" if torch.cuda.get_device_capability() == (9, 0) else "cuda:sm_80"
    if torch.cuda.get_device_capability() < (8, 0) or not parse_target(target).device_available():
        pytest.skip("no CUDA device the IREE runtime can use")
    return target


GPU_CASES = ["plain_f16", "causal_bf16", "bottom_right_f16", "gqa_f16", "mixed", "bert_padded_f16",
             "llama_masked_f16", "seq_first_f16",
             # head dim 128, non-causal, lengths multiples of 128: triton_fa_tma's kernel
             "tma_plain_f16", "tma_gqa_bf16", "tma_seq_first_bf16",
             # head dim 128 with LLaMA's run-time mask: the TMA kernel with the mask's tiles
             "llama_masked_d128_f16",
             *GLUON_GPU_CASES]


@contextlib.contextmanager
def fa_kernel_configs(case: str):
    """For a case named `gluon_*`: the tuned table picks gluon_fa's kernel wherever it covers
    the case (run-time masks too), and the in-process kernel cache starts empty; any other
    case: as tuned."""
    if not case.startswith(("gluon_", "attn_gluon_", "mask_gluon_")):
        yield
        return
    with tuned_in(fa_configs.TUNED_CONFIGS, kernel_build._ATTENTION_CACHE, {
            key: dict(cfg, GLUON=True, GLUON_MASKS=("key_padding", "full"))
            for key, cfg in fa_configs.TUNED_CONFIGS.items() if key[0] == 90}):
        yield


def gpu_case(case: str):
    """(model, example args, tolerance vs the f32 model) of a GPU numerics case (also built by
    test/tools/gpu_numerics.py for the GPU machine, which has no IREE compiler)."""
    if case.startswith("gluon_llama_"):          # the same model and inputs, gluon_fa's kernel
        return gpu_case(case.removeprefix("gluon_"))
    torch.manual_seed(0)
    bf = torch.bfloat16
    model, args = {
        "plain_f16": (Plain(), (rand(2, 4, 256, 64), rand(2, 4, 256, 64), rand(2, 4, 256, 64))),
        "causal_bf16": (Causal(upcast=True), tuple(rand(1, 4, 200, 128, dtype=bf) for _ in range(3))),
        "bottom_right_f16": (Causal(bottom_right=True), (rand(1, 2, 100, 64), rand(1, 2, 300, 64), rand(1, 2, 300, 64))),
        "gqa_f16": (GroupedQuery(), (rand(1, 8, 256, 128), rand(1, 2, 256, 128), rand(1, 2, 256, 128))),
        "mixed": (Mixed(), mixed_args()),
        # the mask is re-drawn for the run (random additive values: a per-key bias, which the kernel adds too)
        "bert_padded_f16": (BertPadded(), (rand(2, 4, 200, 64), rand(2, 4, 200, 64), rand(2, 4, 200, 64),
                                           bert_mask(2, 200, -65504.0))),
        "llama_masked_f16": (LlamaMasked(), (rand(2, 8, 192, 64), rand(2, 2, 192, 64), rand(2, 192, 2, 64),
                                             llama_mask(2, 192))),
        "seq_first_f16": (SeqFirst(), tuple(rand(2, 160, 4, 64) for _ in range(3))),
        "tma_plain_f16": (Plain(), tuple(rand(2, 4, 384, 128) for _ in range(3))),
        "tma_gqa_bf16": (NonCausalGroupedQuery(), (rand(1, 8, 256, 128, dtype=bf), rand(1, 2, 512, 128, dtype=bf),
                                                   rand(1, 2, 512, 128, dtype=bf))),
        "tma_seq_first_bf16": (SeqFirst(), tuple(rand(2, 256, 4, 128, dtype=bf) for _ in range(3))),
        "llama_masked_d128_f16": (LlamaMasked(), (rand(2, 8, 256, 128), rand(2, 2, 256, 128), rand(2, 256, 2, 128),
                                                  llama_mask(2, 256))),
        "gluon_plain_f16": (Plain(), (rand(2, 4, 256, 128), rand(2, 4, 384, 128), rand(2, 4, 384, 128))),
        "gluon_causal_bf16": (Causal(upcast=True), tuple(rand(1, 4, 512, 128, dtype=bf) for _ in range(3))),
        "gluon_causal_d64_f16": (Causal(), tuple(rand(2, 4, 384, 64) for _ in range(3))),
        "gluon_bottom_right_f16": (Causal(bottom_right=True), (rand(1, 2, 128, 64), rand(1, 2, 384, 64),
                                                               rand(1, 2, 384, 64))),
        "gluon_gqa_bf16": (NonCausalGroupedQuery(), (rand(1, 8, 256, 128, dtype=bf), rand(1, 2, 512, 128, dtype=bf),
                                                     rand(1, 2, 512, 128, dtype=bf))),
        "gluon_seq_first_f16": (SeqFirst(), tuple(rand(2, 256, 4, 64) for _ in range(3))),
    }[case]
    return model, args, (1e-2 if args[0].dtype == bf else 3e-3)


@pytest.mark.parametrize("case", GPU_CASES)
def test_gpu_numerics(case):
    target = _gpu_target()
    model, args, tol = gpu_case(case)
    with fa_kernel_configs(case):
        compiled = flashlift.compile_model(model, args, target=target)
    assert any(s.path.startswith("triton-fa") for s in compiled.report.raised)
    args = tuple(torch.randn_like(a, dtype=torch.float32).to(a.dtype) if a.is_floating_point() and a.abs().sum() else a
                 for a in args)
    outs = compiled(*args)
    refs = model(*(a.float() for a in args))
    outs, refs = (outs, refs) if isinstance(outs, tuple) else ((outs,), (refs,))
    for out, ref in zip(outs, refs):
        assert rel_err(out, ref) < tol


# --- masks on the CUDA paths, on the GPU (also built by test/tools/gpu_numerics.py) ------------


class HandPadMin(torch.nn.Module):
    """Hugging Face's additive padding mask, made from a bool mask in the model's dtype:
    (1 - keep) * finfo(dtype).min over [B, 1, 1, S]."""

    def forward(self, q, k, v, keep):  # keep: (B, S) bool
        return attention(q, k, v, (1.0 - keep[:, None, None, :].to(q.dtype)) * torch.finfo(q.dtype).min)


class OuterProduct(torch.nn.Module):
    """An encoder's [B, 1, S, S] mask from the outer product of the padding: padding queries
    see no key (a uniform row with finfo.min)."""

    def forward(self, q, k, v, keep):
        both = keep[:, None, :, None] & keep[:, None, None, :]
        return attention(q, k, v, (1.0 - both.to(q.dtype)) * torch.finfo(q.dtype).min)


class Alibi(torch.nn.Module):
    """BLOOM's mask: a slope per head times the key's position where the key is visible
    (causal, not padding), the dtype's min elsewhere: [B, H, S, S] from the inputs, a row per
    head (an all-padding batch entry: uniform rows)."""

    def forward(self, q, k, v, keep):
        s = k.shape[2]
        slopes = 2.0 ** -torch.arange(1, q.shape[1] + 1.0)
        allowed = torch.ones(s, s, dtype=torch.bool).tril()[None, None] & keep[:, None, None, :]
        bias = (slopes[:, None, None] * torch.arange(s, dtype=torch.float32)).to(q.dtype)
        return attention(q, k, v, torch.where(allowed, bias, torch.finfo(q.dtype).min))


class MaskedFill(torch.nn.Module):
    """scores.masked_fill(~keep, fill) and a plain softmax: -1e4 (old BERT: uniform fully masked
    rows) or -inf (NaN rows, as in PyTorch)."""

    def __init__(self, fill: float):
        super().__init__()
        self.fill = fill

    def forward(self, q, k, v, keep):
        s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        s = s.masked_fill(~keep[:, None, None, :], self.fill)
        return torch.matmul(F.softmax(s, dim=-1), v)


def _keep(b, s, left=32):
    """Batch 0 padded on the left (its first `left` keys), batch 1 all padding."""
    keep = torch.ones(b, s, dtype=torch.bool)
    keep[0, :left] = False
    keep[1] = False
    return keep


def _float_mask_inputs(b, s, dtype):
    g = torch.Generator().manual_seed(1)
    keep = torch.rand(b, 1, s, s, generator=g) < 0.8
    keep[0, :, 5:7] = False  # rows whose every key is the fill (finfo.min: f16 -65504 is added in f32)
    dead = torch.zeros(b, 1, s, 1, dtype=torch.bool)
    dead[1, :, 20:30] = True  # rows whose every key is -inf: _safe_softmax's 0
    dead[0, :, 0] = True
    return keep, torch.randn(b, 1, s, s, dtype=dtype), dead


MASK_KINDS = ["hand_pad_min", "outer_product", "masked_fill_1e4", "masked_fill_inf", "sdpa_bool_pad",
              "sdpa_causal", "sdpa_float_mask", "bottom_right_rows", "alibi"]
# (masked_fill(-1e4) in bf16 fills -9984, above raise-attention's MASKED = -1e4: not raised)
MASK_GPU_CASES = [f"{kind}_{dt}" for kind in MASK_KINDS for dt in ("f16", "bf16")
                  if (kind, dt) != ("masked_fill_1e4", "bf16")]
MASK_GPU_CASES += GLUON_MASK_GPU_CASES


def mask_gpu_case(case: str):
    """(model, example args, tolerance vs the f32 model) of a mask case: B=2, H=4, S=128, head
    dim 64 or 128, masks with fully masked rows (the bool/int inputs that make them are kept
    when the floats are re-drawn)."""
    torch.manual_seed(0)
    kind, dt = case.removeprefix("gluon_").rsplit("_", 1)
    dtype = {"f16": torch.float16, "bf16": torch.bfloat16}[dt]
    b, h, s = 2, 4, 128
    qkv = lambda d, sq=s, skv=s: (rand(b, h, sq, d, dtype=dtype), rand(b, h, skv, d, dtype=dtype),  # noqa: E731
                                  rand(b, h, skv, d, dtype=dtype))
    model, args = {
        "hand_pad_min": lambda: (HandPadMin(), qkv(64) + (_keep(b, s),)),            # key padding, pointer kernel
        "outer_product": lambda: (OuterProduct(), qkv(128) + (_keep(b, s),)),        # (B, Sq, Skv), TMA kernel
        "masked_fill_1e4": lambda: (MaskedFill(-1e4), qkv(128) + (_keep(b, s),)),    # key padding, TMA kernel
        "masked_fill_inf": lambda: (MaskedFill(float("-inf")), qkv(64) + (_keep(b, s),)),  # NaN rows
        "sdpa_bool_pad": lambda: (SdpaBool(transpose_out=True), qkv(64) + (_keep(b, s),)),  # the row guard
        "sdpa_causal": lambda: (SdpaCausal(), qkv(128)),
        # a fill the f32 reference holds too: SDPA adds the mask in f32, so finfo(f16).min rows are
        # the scores' softmax (PyTorch's f16 SDPA too), finfo(bf16).min rows uniform (FLOOR)
        "sdpa_float_mask": lambda: (SdpaFloat(fill=float(torch.finfo(dtype).min)), qkv(128)
                                    + _float_mask_inputs(b, s, dtype)),
        "bottom_right_rows": lambda: (Causal(bottom_right=True), qkv(64, sq=2 * s)),  # Sq > Skv: NaN rows
        "alibi": lambda: (Alibi(), qkv(64) + (_keep(b, s),)),                        # (B, H, Sq, Skv) per head
    }[kind]()
    return model, args, (1e-2 if dtype == torch.bfloat16 else 3e-3)


def nan_aware_rel_err(out, ref) -> float:
    """Relative error over the entries where the reference is not NaN; NaN if the output's NaN
    entries are not exactly the reference's."""
    out, ref = out.float(), ref.float()
    nan = torch.isnan(ref)
    if not torch.equal(torch.isnan(out), nan):
        return float("nan")
    return ((out[~nan] - ref[~nan]).norm() / ref[~nan].norm()).item()


@pytest.mark.parametrize("use_kernels", [True, False], ids=["kernel", "codegen"])
@pytest.mark.parametrize("case", MASK_GPU_CASES)
def test_gpu_mask_numerics(case, use_kernels):
    from test_gemm_kernel import fresh_inputs_and_reference

    target = _gpu_target()
    model, args, tol = mask_gpu_case(case)
    compiled = flashlift.compile_model(model, args, target=target, use_kernels=use_kernels)
    assert [s.path.startswith("triton-fa") for s in compiled.report.raised] == [use_kernels]
    fresh, ref = fresh_inputs_and_reference(model, args)
    out = compiled(*fresh)
    assert nan_aware_rel_err(out, ref) < tol
