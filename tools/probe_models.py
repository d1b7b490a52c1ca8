"""Hugging Face model families as their users hold them, through compile_model on the CPU.

Each family is built from its config class with random weights (tiny: hidden 64, 2 layers, 4
heads), its default attention (SDPA where the family has it), called with input_ids and a
left-padded attention_mask (one batch element with 3 padding tokens), like test_hf_defaults.py
but for the families the test suite does not hold (the suite's time is bounded; these take
6-10 s each). Per family: how many attention sites were raised and on which path, the
output's relative error against PyTorch and against the same model compiled with
raise_attention=False, NaN. A family fails when an output has NaN, when it is further from
PyTorch than 1e-4 (f32) and than the unraised build is, or when compile_model raises; the
exit status is 1 if any family fails.

    .venv/bin/python tools/probe_models.py                 # every family, f32
    .venv/bin/python tools/probe_models.py mistral_window bloom
    .venv/bin/python tools/probe_models.py --dtype bf16     # the model in bf16 (tolerance 2e-2)
    .venv/bin/python tools/probe_models.py --target cuda:sm_90 --dtype f16
                                       # compile only (this machine runs no GPU code): per family the
                                       # paths its attention, rotary embeddings and GEMM epilogues take

In f16 / bf16 the errors are against PyTorch running the model in f32. With --target other than
the CPU a family fails only when compile_model raises.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "python"), os.path.join(ROOT, "test")]

import torch  # noqa: E402
import transformers as tf  # noqa: E402

import flashlift  # noqa: E402
import hf_models as H  # noqa: E402  (the suite's sizes and inputs)

TOL = {"f32": 1e-4, "f16": 5e-3, "bf16": 2e-2}
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def _decoder(config: str, model: str, **extra):
    """A decoder LM from the standard config names (grouped-query where it takes kv heads)."""
    cfg = getattr(tf, config)(vocab_size=H.VOCAB, hidden_size=H.HIDDEN, intermediate_size=H.FFN,
                              num_hidden_layers=H.LAYERS, num_attention_heads=H.HEADS,
                              max_position_embeddings=64, initializer_range=H.INIT_RANGE, **extra)
    return getattr(tf, model)(cfg)


def _gqa(config: str, model: str, **extra):
    return _decoder(config, model, num_key_value_heads=H.KV_HEADS, **extra)


def _gpt(config: str, model: str, **extra):
    """GPT-2-style names (n_embd, n_layer, n_head, n_positions)."""
    cfg = getattr(tf, config)(vocab_size=H.VOCAB, n_embd=H.HIDDEN, n_layer=H.LAYERS, n_head=H.HEADS,
                              n_positions=64, **extra)
    return getattr(tf, model)(cfg)


#: family -> builder; the model is built under seed 0
FAMILIES = {
    "gemma3": lambda: _gqa("Gemma3TextConfig", "Gemma3ForCausalLM", head_dim=16),
    "gemma3_window": lambda: _gqa("Gemma3TextConfig", "Gemma3ForCausalLM", head_dim=16, sliding_window=4),
    "mistral_window": lambda: _gqa("MistralConfig", "MistralForCausalLM", sliding_window=4),
    "qwen2_window": lambda: _gqa("Qwen2Config", "Qwen2ForCausalLM", use_sliding_window=True, sliding_window=4,
                                 max_window_layers=0),
    "qwen3": lambda: _gqa("Qwen3Config", "Qwen3ForCausalLM", head_dim=16),
    "granite": lambda: _gqa("GraniteConfig", "GraniteForCausalLM", attention_multiplier=0.3),
    "olmo": lambda: _gqa("OlmoConfig", "OlmoForCausalLM"),
    "olmo2": lambda: _gqa("Olmo2Config", "Olmo2ForCausalLM"),
    "starcoder2": lambda: _gqa("Starcoder2Config", "Starcoder2ForCausalLM"),
    "cohere": lambda: _gqa("CohereConfig", "CohereForCausalLM"),
    "stablelm": lambda: _gqa("StableLmConfig", "StableLmForCausalLM"),
    "llama_rope_scaling": lambda: _gqa("LlamaConfig", "LlamaForCausalLM", rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16}),
    "phi": lambda: _decoder("PhiConfig", "PhiForCausalLM"),
    "falcon": lambda: tf.FalconForCausalLM(tf.FalconConfig(vocab_size=H.VOCAB, hidden_size=H.HIDDEN,
                                                           num_hidden_layers=H.LAYERS, num_attention_heads=H.HEADS)),
    "gpt_neox": lambda: _decoder("GPTNeoXConfig", "GPTNeoXForCausalLM"),
    "opt": lambda: tf.OPTForCausalLM(tf.OPTConfig(vocab_size=H.VOCAB, hidden_size=H.HIDDEN, num_hidden_layers=H.LAYERS,
                                                  num_attention_heads=H.HEADS, ffn_dim=H.FFN, word_embed_proj_dim=H.HIDDEN,
                                                  max_position_embeddings=64)),
    "gptj": lambda: _gpt("GPTJConfig", "GPTJForCausalLM", rotary_dim=8),
    "gpt_bigcode": lambda: _gpt("GPTBigCodeConfig", "GPTBigCodeForCausalLM", multi_query=True),
    "codegen": lambda: _gpt("CodeGenConfig", "CodeGenForCausalLM", rotary_dim=8, n_ctx=64),
    "bloom": lambda: tf.BloomForCausalLM(tf.BloomConfig(vocab_size=H.VOCAB, hidden_size=H.HIDDEN, n_layer=H.LAYERS,
                                                        n_head=H.HEADS)),
    "mpt": lambda: tf.MptForCausalLM(tf.MptConfig(vocab_size=H.VOCAB, d_model=H.HIDDEN, n_layers=H.LAYERS,
                                                  n_heads=H.HEADS, max_seq_len=64)),
    "electra": lambda: tf.ElectraModel(tf.ElectraConfig(vocab_size=H.VOCAB, embedding_size=H.HIDDEN, hidden_size=H.HIDDEN,
                                                        num_hidden_layers=H.LAYERS, num_attention_heads=H.HEADS,
                                                        intermediate_size=H.FFN)),
    "modernbert": lambda: tf.ModernBertModel(tf.ModernBertConfig(vocab_size=H.VOCAB, hidden_size=H.HIDDEN,
                                                                 num_hidden_layers=H.LAYERS, num_attention_heads=H.HEADS,
                                                                 intermediate_size=H.FFN, pad_token_id=0)),
    "deberta_v2": lambda: tf.DebertaV2Model(tf.DebertaV2Config(vocab_size=H.VOCAB, hidden_size=H.HIDDEN,
                                                               num_hidden_layers=H.LAYERS, num_attention_heads=H.HEADS,
                                                               intermediate_size=H.FFN)),
    "mbart": lambda: tf.MBartModel(tf.MBartConfig(vocab_size=H.VOCAB, d_model=H.HIDDEN, encoder_layers=1, decoder_layers=1,
                                                  encoder_attention_heads=H.HEADS, decoder_attention_heads=H.HEADS,
                                                  encoder_ffn_dim=H.FFN, decoder_ffn_dim=H.FFN,
                                                  max_position_embeddings=64)),
}


def inputs(family: str) -> dict:
    kwargs = {"input_ids": H._ids(), "attention_mask": H._padding(left=True)}
    if family == "mbart":
        kwargs["decoder_input_ids"] = H._ids(seq=7, gen_seed=1)
    return kwargs


def first(out) -> torch.Tensor:
    for name in ("logits", "last_hidden_state"):
        if getattr(out, name, None) is not None:
            return getattr(out, name)
    return out[0]


def rel_err(a, b) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def probe(family: str, dtype: str) -> tuple:
    """(row, failed) for one family."""
    torch.manual_seed(0)
    model = FAMILIES[family]().eval()
    kwargs = inputs(family)
    with torch.no_grad():
        ref = first(model(**kwargs))   # (f32)
    model = model.to(DTYPES[dtype])
    raised = flashlift.compile_model(model, (), kwargs=kwargs)
    unraised = flashlift.compile_model(model, (), kwargs=kwargs, raise_attention=False)
    out, plain = first(raised(**kwargs)), first(unraised(**kwargs))
    err, err_plain = rel_err(out, ref), rel_err(plain, ref)
    nan = bool(torch.isnan(out).any() or torch.isnan(plain).any())
    paths = ", ".join(sorted({s.path for s in raised.report.raised})) or "-"
    left = "; ".join(f"{s.module_path}: {s.reason}" for s in raised.report.rejected[:2])
    failed = nan or (err > TOL[dtype] and err > 2 * err_plain)
    row = (f"| {family} | {len(raised.report.raised)} | {paths} | {err:.1e} | {err_plain:.1e} | "
           f"{rel_err(out, plain):.1e} | {'NaN' if nan else 'no'} | {'FAIL' if failed else 'ok'} | {left} |")
    return row, failed


def compiled_paths(family: str, dtype: str, target: str) -> str:
    """A row of what compile_model for `target` chose per site (compile only): the attention
    paths, the rotary embeddings' (with the reason where IREE keeps one), the GEMMs' epilogues."""
    from collections import Counter

    torch.manual_seed(0)
    model = FAMILIES[family]().eval().to(DTYPES[dtype])
    report = flashlift.compile_model(model, (), kwargs=inputs(family), target=target).report
    count = lambda items: "; ".join(f"{n} x {k}" for k, n in Counter(items).items()) or "-"  # noqa: E731
    rotary = count(s.path + (f" ({s.path_reason})" if s.path_reason else "") for s in report.rotary)
    epilogues = count(s.details.get("kernel", {}).get("epilogue", s.path) for s in report.linears)
    return f"| {family} | {len(report.raised)} | {count(s.path for s in report.raised)} | {rotary} | {epilogues} | ok |"


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("families", nargs="*", help="default: every family")
    p.add_argument("--dtype", default="f32", choices=list(DTYPES))
    p.add_argument("--target", default="cpu", help="another target: compile only, print each site's path")
    a = p.parse_args()
    names = a.families or list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        print(f"unknown families {unknown}; known: {', '.join(FAMILIES)}", file=sys.stderr)
        return 2
    if a.target == "cpu":
        print("| family | raised | path | err vs PyTorch | unraised err | vs unraised | NaN | result | left as written |")
        print("|---|---|---|---|---|---|---|---|---|")
    else:
        print("| family | raised | attention paths | rotary embeddings | GEMM epilogues | result |")
        print("|---|---|---|---|---|---|")
    failures = 0
    for family in names:
        try:
            row, failed = probe(family, a.dtype) if a.target == "cpu" else (compiled_paths(family, a.dtype, a.target), False)
        except Exception as e:  # noqa: BLE001 (a family that does not compile is a failure, reported)
            row, failed = f"| {family} | | | | | | | FAIL | {type(e).__name__}: {str(e).splitlines()[0][:200]} |", True
        failures += failed
        print(row, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
