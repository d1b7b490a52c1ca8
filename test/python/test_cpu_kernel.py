"""flashlift's CPU FlashAttention kernel (compiler/kernels/cpu/fa_avx2.c, fa_avx512.c, dispatched
by compiler/cpu_dispatch.py) computes what the model computes, and is chosen where it applies.
Every build this machine runs is checked (TARGETS: cpu:x86-64-v3 takes the AVX2 build,
cpu:x86-64-v4 the AVX-512 one, `cpu` the best for the dtype: bf16 products where the CPU has
AVX512_BF16, on AMX tiles where it has AMX); the AMX build, for cpu:sapphirerapids, is
compiled everywhere and run where the CPU has AMX.

Random inputs; tolerance: relative error against PyTorch in f64 under 1e-5 for f32 (the kernel
accumulates in f32 with a polynomial exp2 of relative error below 2e-7), 2e-3 for f16 and
1e-2 for bf16 inputs (their own rounding: bf16 keeps 8 bits). NaN must be exactly
where PyTorch has NaN (rows that see no key: the attention op's 0/0). The shapes stress the
kernel's edges: query blocks of 32 rows (Sq 1, 31, 33, 100), key blocks of 48 (Skv 47, 49),
head dims 16 and 128, grouped-query heads, batch 1 with one head, Sq != Skv both ways.
"""

import copy
import math
import struct

import pytest
import torch
import torch.nn.functional as F

import flashlift
from flashlift import cpu
from flashlift.compiler import cpu_dispatch
from flashlift.compiler.kernels import cpu_build
from flashlift.compiler.targets import parse_target
from flashlift.errors import TargetError

pytestmark = pytest.mark.skipif(cpu_dispatch.unavailable(parse_target("cpu")) != "",
                                reason=cpu_dispatch.unavailable(parse_target("cpu")) or "")
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
HOST_ISAS = cpu_build.host_isas()
# a target per kernel build this machine runs
TARGETS = ["cpu:x86-64-v3"] + (["cpu:x86-64-v4"] if "avx512" in HOST_ISAS else [])
DTYPE_NAMES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def expected_path(target: str, dtype=torch.float32) -> str:
    """The report's path of an op in `dtype` compiled for `target` (a tuned choice aside)."""
    isas = cpu_dispatch.target_isas(parse_target(target))
    return cpu_dispatch.kernel_path(cpu_dispatch.choose_isa(isas, DTYPE_NAMES[dtype]))


class Attention(torch.nn.Module):
    """softmax(Q K^T * scale [masked]) V, written by hand; mask: None, "top_left" (key j
    hidden iff j > i), "bottom_right" (iff j > i + Skv - Sq), "pad" (a run-time key mask)."""

    def __init__(self, mask=None, scale=None, groups=1):
        super().__init__()
        self.mask, self.scale, self.groups = mask, scale, groups

    def forward(self, q, k, v, pad=None):
        if self.groups > 1:  # grouped-query: each K/V head serves `groups` query heads
            k, v = k.repeat_interleave(self.groups, dim=1), v.repeat_interleave(self.groups, dim=1)
        sq, skv = q.shape[-2], k.shape[-2]
        s = q @ k.transpose(-2, -1) * (self.scale or 1 / math.sqrt(q.shape[-1]))
        if self.mask in ("top_left", "bottom_right"):
            keep = torch.ones(sq, skv, dtype=torch.bool).tril(0 if self.mask == "top_left" else skv - sq)
            s = s.masked_fill(~keep, float("-inf"))
        if pad is not None:
            s = s + pad[:, None, None, :]
        return torch.softmax(s, dim=-1) @ v


def _run(module, *inputs, **kw):
    """Compiled (for the host unless kw names a target), its output, PyTorch's in f64."""
    compiled = flashlift.compile_model(module, inputs, **kw)
    out = compiled(*inputs)
    with torch.no_grad():
        ref = module(*(t.double() for t in inputs)).float()
    return compiled, out, ref


def _check(out, ref, dtype=torch.float32):
    out = out.float()
    nan = torch.isnan(ref)
    assert torch.equal(torch.isnan(out), nan), "NaN where PyTorch has none, or none where it has"
    err = ((out[~nan] - ref[~nan]).norm() / ref[~nan].norm()).item()
    assert err < TOL[dtype], err


CASES = {
    # name: (q shape, kv length, mask, groups)
    "plain": ((2, 4, 100, 64), 100, None, 1),
    "one_head_few_rows": ((1, 1, 3, 64), 47, None, 1),
    "sq_31_skv_49": ((1, 2, 31, 16), 49, None, 1),
    "d128": ((1, 2, 33, 128), 97, None, 1),
    "gqa": ((1, 8, 64, 32), 64, None, 4),
    "causal": ((2, 2, 100, 64), 100, "top_left", 1),
    "causal_bottom_right_short_queries": ((1, 2, 33, 64), 130, "bottom_right", 1),
    "causal_top_left_long_queries": ((1, 2, 130, 64), 33, "top_left", 1),
    # Sq > Skv, bottom-right: the first 97 query rows see no key (NaN, as in PyTorch)
    "causal_bottom_right_empty_rows": ((1, 2, 130, 64), 33, "bottom_right", 1),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", CASES)
def test_kernel_matches_pytorch(case, target):
    shape, skv, mask, groups = CASES[case]
    torch.manual_seed(0)
    b, h, sq, d = shape
    q = torch.randn(b, h, sq, d)
    k, v = torch.randn(b, h // groups, skv, d), torch.randn(b, h // groups, skv, d)
    compiled, out, ref = _run(Attention(mask, groups=groups), q, k, v, target=target)
    assert [s.path for s in compiled.report.raised] == [expected_path(target)], str(compiled.report)
    _check(out, ref)


@pytest.mark.parametrize("target", TARGETS + ["cpu"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("mask", [None, "top_left"])
def test_half_precision_inputs(dtype, mask, target):
    """f16 and bf16 models: f16 converted to f32 as the kernel reads it; bf16 too, or multiplied
    in bf16 with f32 sums (avx512bf16: the weights P rounded to bf16, as GPU kernels do); the
    result rounded back. Sq = 70, Skv = 75: odd key counts (the bf16 products take keys in pairs),
    head dim 48 (a partial 64-column step of P . V)."""
    torch.manual_seed(4)
    q, k, v = torch.randn(2, 2, 70, 48).to(dtype), torch.randn(2, 2, 75, 48).to(dtype), torch.randn(2, 2, 75, 48).to(dtype)
    compiled, out, ref = _run(Attention(mask), q, k, v, target=target)
    assert [s.path for s in compiled.report.raised] == [expected_path(target, dtype)], str(compiled.report)
    assert out.dtype == dtype
    _check(out, ref, dtype)


def test_large_scores_keep_their_softmax():
    """Scores far below 0 everywhere (a row max of about -2000 in base 2): the online softmax
    must normalise by the row's own max, not by a floor."""
    torch.manual_seed(1)
    q, k, v = torch.randn(1, 2, 40, 16), torch.randn(1, 2, 50, 16), torch.randn(1, 2, 50, 16)
    k = k - 30 * q.mean(dim=(2,), keepdim=True).sign()  # pushes most scores negative
    compiled, out, ref = _run(Attention(scale=40.0), q, k, v)
    assert [s.path for s in compiled.report.raised] == [expected_path("cpu")]
    _check(out, ref)


def test_sdpa_causal_takes_the_kernel():
    """F.scaled_dot_product_attention(is_causal=True), as models call it: raised, then the kernel."""

    class Sdpa(torch.nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 3, 70, 32) for _ in range(3))
    compiled, out, ref = _run(Sdpa(), q, k, v)
    assert [s.path for s in compiled.report.raised] == [expected_path("cpu")], str(compiled.report)
    _check(out, ref)


class Masked(torch.nn.Module):
    """softmax(Q K^T / sqrt(d) + mask) V with a run-time mask: [B, Skv] (BERT's padding, as
    [B, 1, 1, Skv]), [B, Sq, Skv] (LLaMA's causal + padding, as [B, 1, Sq, Skv]) or
    [B, H, Sq, Skv] (ALiBi's per-head bias plus padding: BLOOM, MPT, Falcon)."""

    def forward(self, q, k, v, mask):
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        s = s + (mask[:, None, None, :] if mask.dim() == 2 else mask[:, None] if mask.dim() == 3 else mask)
        return torch.softmax(s, dim=-1) @ v


def run_time_mask_inputs(kind: str, head_dim: int = 32) -> tuple:
    """(q, k, v, mask) of Masked with a `kind` mask ("key_padding": [B, Skv], "full": [B, Sq,
    Skv], "per_head": [B, H, Sq, Skv]) in which some rows see every key at -inf (NaN in
    PyTorch) and some at float32's min (a uniform row in PyTorch); per head, the same query
    row of another head sees its keys."""
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 2, 70, head_dim) for _ in range(3))
    if kind == "key_padding":
        mask = torch.zeros(2, 70)
        mask[0, 60:] = torch.finfo(torch.float32).min
        mask[1, 50:] = float("-inf")
    elif kind == "full":
        mask = torch.randn(2, 70, 70)
        mask[0, 5, :] = float("-inf")
        mask[1, 7, :] = torch.finfo(torch.float32).min
    elif kind == "per_head":
        mask = torch.randn(2, 2, 70, 70) * torch.arange(1, 71.0)   # an ALiBi-like slope per key
        mask[0, 1, 5, :] = float("-inf")
        mask[1, 0, 7, :] = torch.finfo(torch.float32).min
        mask[1, 1, :, 40:] = float("-inf")                         # head 1 of entry 1: padding
    else:  # "per_head_shared": [1, H, Sq, Skv], one per head for the whole batch (Swin's bias)
        mask = torch.randn(1, 2, 70, 70) * 3
        mask[0, 1, 5, :] = float("-inf")
        mask[0, 0, 7, :] = torch.finfo(torch.float32).min
    return q, k, v, mask


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", ["key_padding", "full", "per_head", "per_head_shared"])
def test_run_time_masks(kind, target):
    """A mask from the inputs, read by the kernel: rows whose every key is -inf give NaN (as in
    PyTorch), rows whose every key is at float32's min are uniform (as in PyTorch); a
    per-head mask's NaN row is in its own head only."""
    q, k, v, mask = run_time_mask_inputs(kind)
    compiled, out, ref = _run(Masked(), q, k, v, mask, target=target)
    assert [s.path for s in compiled.report.raised] == [expected_path(target)], str(compiled.report)
    expected = {"key_padding": "key-padding (run time)", "full": "additive (run time)",
                "per_head": "additive per head (run time)", "per_head_shared": "additive per head (run time)"}[kind]
    assert compiled.report.raised[0].details["kernel"]["mask"] == expected
    if kind == "full":
        assert torch.isnan(ref).any() and not torch.isnan(ref[1]).any()
    if kind.startswith("per_head"):
        assert torch.isnan(ref[0, 1, 5]).all() and not torch.isnan(ref[0, 0]).any()
    if kind == "per_head_shared":
        assert torch.isnan(ref[1, 1, 5]).all()
    _check(out, ref)


EMULATED_CASES = ["plain", "one_head_few_rows", "d128", "gqa", "causal", "causal_top_left_long_queries",
                  "causal_bottom_right_empty_rows"]


@pytest.mark.parametrize("case", EMULATED_CASES)
def test_the_amx_code_with_its_tiles_emulated(case):
    """bf16 on the AMX build's code with the tile unit written out in C (avx512amx_emu, amx.h):
    the tiles' addressing, padding of short key tiles and sums, on CPUs without AMX (the real
    build runs in test/tools/cpu_numerics.py on one with AMX). Head dims 32, 64, 128 (the AMX
    path's), Sq and Skv not multiples of 16 or 64, grouped-query, causal, rows that see no
    key."""
    if "avx512bf16" not in cpu_dispatch.target_isas(parse_target("cpu")):
        pytest.skip("this CPU has no AVX-512 BF16 (the emulated build's vector code)")
    torch.manual_seed(0)
    shape, skv, mask, groups = CASES[case]
    b, h, sq, d = shape
    q = torch.randn(b, h, sq, d).to(torch.bfloat16)
    k, v = (torch.randn(b, h // groups, skv, d).to(torch.bfloat16) for _ in range(2))
    with cpu_dispatch.force_isa("avx512amx_emu"):
        compiled, out, ref = _run(Attention(mask, groups=groups), q, k, v)
    assert [s.path for s in compiled.report.raised] == ["flashlift-cpu avx512amx_emu"], str(compiled.report)
    _check(out, ref, torch.bfloat16)


def test_use_kernels_false_keeps_iree_codegen():
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 2, 40, 64) for _ in range(3))
    compiled = flashlift.compile_model(Attention(), (q, k, v), use_kernels=False)
    assert compiled.report.raised[0].path_reason == "use_kernels=False"
    assert "[flashlift-cpu" not in str(compiled.report)


def test_the_path_follows_the_target():
    """The kernel needs AVX2, FMA and F16C: cpu (this host has them) and cpu:x86-64-v3 take it,
    cpu:generic and cpu:x86-64-v2 do not promise them."""
    assert cpu_dispatch.unavailable(parse_target("cpu:x86-64-v3")) == ""
    for level in ("generic", "x86-64-v2"):
        assert "does not promise AVX2" in cpu_dispatch.unavailable(parse_target(f"cpu:{level}"))
    assert "no flashlift CPU kernel" in cpu_dispatch.unavailable(parse_target("cuda"))


def test_the_build_follows_the_cpu():
    """The best build the target promises: v3 the AVX2 one, v4 the AVX-512 one, the host its
    best (bf16 products only for bf16 inputs); a tuned choice the target runs overrides, one
    it does not is ignored."""
    assert cpu_dispatch.target_isas(parse_target("cpu:x86-64-v3")) == ["avx2"]
    assert cpu_dispatch.target_isas(parse_target("cpu:x86-64-v4")) == ["avx512", "avx2"]
    assert cpu_dispatch.target_isas(parse_target("cpu")) == HOST_ISAS
    assert cpu_build.runnable_isas({"avx2", "fma", "f16c"}) == ["avx2"]
    assert cpu_build.runnable_isas({"avx2", "fma"}) == []
    full = cpu_build.ISA_CPU_FLAGS["avx512bf16"]
    assert cpu_build.runnable_isas(full) == ["avx512bf16", "avx512", "avx2"]
    isas = ["avx512bf16", "avx512", "avx2"]
    assert [cpu_dispatch.choose_isa(isas, dt) for dt in ("f32", "f16", "bf16")] == ["avx512", "avx512", "avx512bf16"]
    assert cpu_dispatch.choose_isa(isas, "f32", tuned="avx2") == "avx2"
    assert cpu_dispatch.choose_isa(["avx2"], "bf16", tuned="avx512bf16") == "avx2"
    # Sapphire Rapids (AMX): the AMX build for bf16 inputs only, avx512 for the others
    assert cpu_build.runnable_isas(cpu_build.ISA_CPU_FLAGS["avx512amx"]) == ["avx512amx", *isas]
    spr = cpu_dispatch.target_isas(parse_target("cpu:sapphirerapids"))
    assert spr == ["avx512amx", *isas]
    assert [cpu_dispatch.choose_isa(spr, dt) for dt in ("f32", "f16", "bf16")] == ["avx512", "avx512", "avx512amx"]
    assert cpu_dispatch.choose_isa(spr, "bf16", tuned="avx512bf16") == "avx512bf16"


def elf_symbols(path: str) -> set:
    """The names of the global symbols an x86-64 ELF object defines (its .symtab)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2, "not an ELF64 object"
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = set()
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != 2:  # SHT_SYMTAB
            continue
        strtab = sections[link][4]
        for at in range(offset, offset + size, entsize):
            name, info, _, shndx, _, _ = struct.unpack_from("<IBBHQQ", data, at)
            if info >> 4 == 1 and shndx != 0:  # STB_GLOBAL, defined
                names.add(data[strtab + name:data.index(b"\0", strtab + name)].decode())
    return names


def test_the_amx_build_compiles_here():
    """The avx512amx build (fa_avx512.c with FL_DPBF16 and FL_AMX, -mamx-tile -mamx-bf16)
    compiles on any x86-64 machine, AMX or not, and exports the five entry points."""
    kernel = cpu_build.build_object("attention", "avx512amx")
    want = {kernel.symbol(i, o) for i, o in [("f32", "f32"), ("f16", "f16"), ("f16", "f32"), ("bf16", "bf16"),
                                               ("bf16", "f32")]}
    assert want == {f"flashlift_attention_{io}_avx512amx" for io in
                    ("f32_f32", "f16_f16", "f16_f32", "bf16_bf16", "bf16_f32")}
    assert want <= elf_symbols(kernel.path), sorted(elf_symbols(kernel.path))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_sapphirerapids_modules_take_the_amx_build(dtype, tmp_path):
    """cpu:sapphirerapids, built here whatever the CPU: bf16 attention takes the AMX build, f32
    the AVX-512 one; the module loads and runs only on a CPU with AMX (and the rest of LLVM's
    sapphirerapids features): elsewhere load names what this CPU lacks."""
    torch.manual_seed(7)
    q, k, v = (torch.randn(1, 2, 40, 64).to(dtype) for _ in range(3))
    compiled = flashlift.compile_model(Attention(), (q, k, v), target="cpu:sapphirerapids")
    want = "flashlift-cpu avx512amx" if dtype == torch.bfloat16 else "flashlift-cpu avx512"
    assert [s.path for s in compiled.report.raised] == [want], str(compiled.report)
    assert {"amx-tile", "amx-bf16"} <= set(compiled.meta["cpu"]["features"])
    path = str(tmp_path / "spr.flashlift")
    compiled.save(path)
    lacking = cpu.missing(compiled.meta["cpu"])
    if lacking:
        with pytest.raises(TargetError, match=rf"'sapphirerapids'.*uses {lacking[0]}.*which this machine's CPU lacks"):
            flashlift.load(path)
        return
    out = flashlift.load(path)(q, k, v)
    with torch.no_grad():
        ref = Attention()(*(t.double() for t in (q, k, v))).float()
    _check(out, ref, dtype)


def test_a_tuned_build_is_taken(tmp_path, monkeypatch):
    """A tuning-database entry for the shape on this CPU family picks the build, and the report
    names it: here the AVX2 build for an f32 op on an AVX-512 machine."""
    if "avx512" not in HOST_ISAS:
        pytest.skip("needs a CPU with more than one build of the kernel")
    from flashlift.compiler import tuning
    db = tmp_path / "db.json"
    monkeypatch.setenv("FLASHLIFT_TUNING_DB", str(db))
    shape = tuning.bhsd_shape(1, 2, 40, 32, "f32", False)
    tuning.record(tuning.kernel_key(shape, HOST_ISAS[0]), {"isa": "avx2"}, {"device": "test", "ms": 1.0, "rel_err": 0.0})
    torch.manual_seed(6)
    q, k, v = (torch.randn(1, 2, 40, 32) for _ in range(3))
    compiled, out, ref = _run(Attention(), q, k, v)
    assert [s.path for s in compiled.report.raised] == ["flashlift-cpu avx2"], str(compiled.report)
    _check(out, ref)


class Projected(torch.nn.Module):
    """A self-attention layer as models write it: Q, K, V projections of one input (K/V of
    `kv_heads` heads, grouped-query when fewer than `heads`), viewed as (B, S, heads, D) and
    transposed, the output transposed back and merged; causal or not."""

    def __init__(self, hidden=96, heads=6, kv_heads=6, causal=False):
        super().__init__()
        self.heads, self.kv_heads, self.d, self.causal = heads, kv_heads, hidden // heads, causal
        self.q = torch.nn.Linear(hidden, hidden)
        self.k = torch.nn.Linear(hidden, kv_heads * self.d)
        self.v = torch.nn.Linear(hidden, kv_heads * self.d)

    def forward(self, x):
        b, s, _ = x.shape
        q = self.q(x).view(b, s, self.heads, self.d).transpose(1, 2)
        k = self.k(x).view(b, s, self.kv_heads, self.d).transpose(1, 2)
        v = self.v(x).view(b, s, self.kv_heads, self.d).transpose(1, 2)
        if self.heads != self.kv_heads:  # as Hugging Face's repeat_kv
            k, v = (t.repeat_interleave(self.heads // self.kv_heads, dim=1) for t in (k, v))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return o.transpose(1, 2).reshape(b, s, -1)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused_qkv", "separate"])
@pytest.mark.parametrize("shape", [dict(), dict(heads=8, kv_heads=2, hidden=128, causal=True)], ids=["mha", "gqa_causal"])
def test_kernel_reads_projections_in_place(fuse, shape):
    """Q, K, V read where the projections leave them: with fuse-linears at their columns of the
    one QKV GEMM's result (no slice copy), without it as (B, S, heads, D); O written as the
    model's transpose back has it. S = 40: a partial query block and a partial key block."""
    torch.manual_seed(5)
    module = Projected(**shape).eval()
    x = torch.randn(2, 40, module.q.in_features)
    compiled = flashlift.compile_model(module, (x,), fuse_linears=fuse)
    out = compiled(x)
    with torch.no_grad():
        ref = copy.deepcopy(module).double()(x.double()).float()
    (site,) = compiled.report.raised
    assert site.path == expected_path("cpu"), str(compiled.report)
    width = module.q.out_features + 2 * module.k.out_features
    layout = site.details["kernel"]["layout"]
    if fuse:
        assert layout.startswith(f"Q cols 0:{module.q.out_features} of [80, {width}]"), layout
    else:
        assert layout.startswith("Q (B, S, H, D), K (B, S, H, D), V (B, S, H, D)"), layout
    assert layout.endswith("O (B, S, H, D)"), layout
    _check(out, ref)


def test_a_mask_from_the_weights_is_read_at_run_time(monkeypatch):
    """A learned [Sq, Skv] bias (a parameter) is not evaluated at compile time: the weights
    are handles without data when the mask is classified, and with_parameters() may swap them.
    The kernel adds it at run time; no compile-time evaluation is tried (it used to call
    iree-compile, which failed on the data-less weight)."""
    from flashlift.compiler import mask_consteval

    class LearnedBias(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.randn(40, 48))

        def forward(self, q, k, v):
            s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + self.bias
            return torch.softmax(s, dim=-1) @ v

    evaluated = []
    monkeypatch.setattr(mask_consteval, "_run_funcs", lambda modules: evaluated.append(modules) or [])
    torch.manual_seed(5)
    module = LearnedBias()
    q, k, v = torch.randn(2, 2, 40, 32), torch.randn(2, 2, 48, 32), torch.randn(2, 2, 48, 32)
    compiled, out, ref = _run(module, q, k, v)
    assert [s.path for s in compiled.report.raised] == [expected_path("cpu")], str(compiled.report)
    assert compiled.report.raised[0].details["kernel"]["mask"] == "additive (run time)"
    assert not evaluated, "a mask computed from the weights was evaluated at compile time"
    _check(out, ref)
    with torch.no_grad():   # new weights, the same module: the mask follows them
        module.bias.copy_(torch.randn(40, 48))
        ref2 = module(q, k, v)
    out2 = compiled.with_parameters(module.state_dict())(q, k, v)
    _check(out2, ref2.float())
