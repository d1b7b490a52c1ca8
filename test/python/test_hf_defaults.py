"""Hugging Face models with their defaults (SDPA attention, default use_cache), called as
users call them, through compile_model on the CPU.

Each model of hf_models.DEFAULT_BUILDERS (tiny random config) is compiled from its keyword
inputs with a padding mask (right padding for encoders, left for decoders); the compiled
module is called with the same keywords and returns the model's own ModelOutput, whose
tensors match PyTorch and the module compiled with raise_attention=False (f32: relative
error under 1e-4, NaN fails). Also: the variant without a padding mask for the text models
whose mask path differs most, f16 for three models, and that every attention layer is
raised (each by its own module path).
"""

import functools

import pytest
import torch

import flashlift
from flashlift.reference import reference
from conftest import rel_err

hf_models = pytest.importorskip("hf_models")
pytest.importorskip("transformers")

TOL = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}
NAMES = sorted(hf_models.DEFAULT_BUILDERS)
UNPADDED = ("bert", "gpt2", "llama", "t5", "clip_text")  # mask=False: no attention_mask at all
F16 = ("bert", "gpt2", "llama")
BF16 = ("llama", "qwen2")   # rotary frequencies cast with the model (compiler/literals.py)
CACHED = ("gpt2", "llama", "mistral", "qwen2", "gemma", "phi3", "falcon_alibi", "whisper", "bart", "t5")  # default use_cache=True
NO_CACHE = ("vit", "clip_vision", "swin", "whisper_encoder", "distilbert")  # forward takes no use_cache


def case(name, dtype="f32", mask=True):
    """(model, args, kwargs, attention layers), built once per (name, dtype, mask)."""
    return _case(name, dtype, mask)


def compiled(name, dtype="f32", mask=True, raise_attention=True):
    """The compiled module, compiled once per combination (each compile takes seconds)."""
    return _compiled(name, dtype, mask, raise_attention)


@functools.lru_cache(maxsize=None)  # (positional keys: lru_cache keys f(x) and f(x, default) apart)
def _case(name, dtype, mask):
    return hf_models.DEFAULT_BUILDERS[name](dtype, mask)


@functools.lru_cache(maxsize=None)
def _compiled(name, dtype, mask, raise_attention):
    model, args, kwargs, _ = case(name, dtype, mask)
    return flashlift.compile_model(model, args, kwargs=kwargs, raise_attention=raise_attention)


def reversed_kwargs(kwargs: dict) -> dict:
    """The same keywords in the opposite order: a call is order-insensitive."""
    return dict(reversed(list(kwargs.items())))


def check_like(out, ref, tol):
    """`out` is `ref`'s class with the same fields, each tensor within `tol` (no NaN)."""
    assert type(out) is type(ref), (type(out), type(ref))
    assert list(out.keys()) == list(ref.keys())
    for key in ref.keys():
        if isinstance(ref[key], torch.Tensor):
            assert out[key].shape == ref[key].shape and out[key].dtype == ref[key].dtype, key
            assert rel_err(out[key], ref[key]) < tol, key


def model_reference(name, dtype="f32", mask=True):
    """PyTorch's answer with the constants the module was compiled with (use_cache=False)."""
    model, args, kwargs, _ = case(name, dtype, mask)
    return reference(model, *args, **kwargs, **compiled(name, dtype, mask).meta["constants"])


@pytest.mark.parametrize("name", NAMES)
def test_default_model_matches_pytorch_and_unraised(name):
    model, args, kwargs, _ = case(name)
    out = compiled(name)(*args, **reversed_kwargs(kwargs))
    check_like(out, model_reference(name), TOL["f32"])
    check_like(out, compiled(name, raise_attention=False)(*args, **kwargs), TOL["f32"])
    assert "past_key_values" not in out.keys()


@pytest.mark.parametrize("name", NAMES)
def test_default_model_reports_the_cache_it_leaves_out(name):
    """Decoders return a KV cache by default: compiled without it, and the report says so."""
    report = compiled(name).report
    noted = any(n.startswith("use_cache: the KV cache is not returned") for n in report.notes)
    if name in CACHED:
        assert noted and "note: use_cache: the KV cache is not returned" in str(report), str(report)
        assert compiled(name).meta["constants"].get("use_cache") is False
    if name in NO_CACHE:
        assert not noted, str(report)


@pytest.mark.parametrize("name", NAMES)
def test_default_model_every_attention_layer_raised(name):
    layers = case(name)[3]
    report = compiled(name).report
    assert len(report.raised) == layers, str(report)
    assert len({s.module_path for s in report.raised}) == layers, str(report)


@pytest.mark.parametrize("name", UNPADDED)
def test_default_model_without_padding_mask(name):
    model, args, kwargs, _ = case(name, mask=False)
    assert "attention_mask" not in kwargs
    check_like(compiled(name, mask=False)(*args, **kwargs), model_reference(name, mask=False), TOL["f32"])


@pytest.mark.parametrize("name,dtype", [(n, "f16") for n in F16] + [(n, "bf16") for n in BF16])
def test_default_model_half(name, dtype):
    model, args, kwargs, _ = case(name, dtype)
    out = compiled(name, dtype)(*args, **kwargs)
    check_like(out, model_reference(name, dtype), TOL[dtype])
    assert all(v.dtype == hf_models.DTYPES[dtype] for v in out.values() if v.is_floating_point())


def test_alibi_model_takes_the_cpu_kernel_with_its_per_head_mask():
    """Falcon with ALiBi: the padded causal mask plus a bias per head reaches the attention as
    a [B, H, S, S] run-time mask, which the CPU kernel reads (mask_kind 4); the answer is
    checked by test_default_model_matches_pytorch_and_unraised."""
    from flashlift.compiler import cpu_dispatch
    from flashlift.compiler.targets import parse_target

    if cpu_dispatch.unavailable(parse_target("cpu")):
        pytest.skip(cpu_dispatch.unavailable(parse_target("cpu")))
    report = compiled("falcon_alibi").report
    assert all(s.path.startswith("flashlift-cpu") for s in report.raised), str(report)
    assert {s.details["kernel"]["mask"] for s in report.raised} == {"additive per head (run time)"}, str(report)


ROTARY = ("gemma", "llama", "mistral", "phi3", "qwen2")


@pytest.mark.parametrize("name", ROTARY)
def test_rotary_model_kernel_reads_q_and_k_in_place(name):
    """Rotary embeddings sit between the model's head transpose and Q, K: the transpose moves
    below them (compiler/head_transposes.py), so the kernel reads Q and K as the projections
    leave them, (B, S, H, D); the answer is checked by
    test_default_model_matches_pytorch_and_unraised."""
    from flashlift.compiler import cpu_dispatch
    from flashlift.compiler.targets import parse_target

    if cpu_dispatch.unavailable(parse_target("cpu")):
        pytest.skip(cpu_dispatch.unavailable(parse_target("cpu")))
    report = compiled(name).report
    assert report.raised and all(s.path.startswith("flashlift-cpu") for s in report.raised), str(report)
    for site in report.raised:
        assert site.details["kernel"]["layout"].startswith("Q (B, S, H, D), K (B, S, H, D)"), str(report)
