"""Tiny random Hugging Face transformers models for end-to-end tests.

Each ``build_<model>(dtype)`` returns ``(module, example_inputs, num_attention_layers)``:

* ``module``: an ``nn.Module`` in eval mode whose ``forward`` takes tensors only
  and returns a single tensor (``last_hidden_state``), ready for
  ``torch.export`` / ``torch_mlir.fx.export_and_import``;
* ``example_inputs``: a tuple of tensors (seeded);
* ``num_attention_layers``: how many self-attention sites the model has (each
  must be raised to one ``iree_linalg_ext.attention``).

Models are built from config classes with random weights (no hub access, no
weight downloads), hidden 64, 2 layers, 4 heads, seq 8-17, the *eager*
attention implementation (the hand-written matmul/softmax/matmul path, not
SDPA), ``use_cache=False``.

Several models register non-persistent buffers (BERT ``position_ids`` /
``token_type_ids``, LLaMA rotary ``inv_freq``, ViT none, ...); the importers
need ``compiler.export_fixes.make_buffers_persistent(module)`` before export.
This file does not apply it, so the importer's own call is what is tested.

``BUILDERS`` maps a model name to its builder.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

import torch
import torch.nn as nn

B = 2
S = 12
VOCAB = 100
HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2  # LLaMA grouped-query attention: 4 query heads share 2 kv heads
FFN = 128
INIT_RANGE = 0.1  # larger than HF's 0.02 so attention rows are not ~uniform

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def _dt(dtype):
    return DTYPES[dtype] if isinstance(dtype, str) else dtype


def _eager(config):
    """Force the hand-written (eager) attention path and no KV cache."""
    config._attn_implementation = "eager"
    if hasattr(config, "use_cache"):
        config.use_cache = False
    return config


def _finish(model: nn.Module, dtype) -> nn.Module:
    model = model.eval().to(_dt(dtype))
    impl = getattr(model.config, "_attn_implementation", None)
    assert impl == "eager", f"attention implementation is {impl!r}, not 'eager'"
    return model


def _ids_and_mask(seq=S):
    """input_ids [B,seq] and a right-padded attention_mask [B,seq] (int64)."""
    torch.manual_seed(0)
    ids = torch.randint(1, VOCAB, (B, seq), dtype=torch.int64)
    mask = torch.ones(B, seq, dtype=torch.int64)
    mask[1, seq - 3:] = 0  # second sequence has 3 padding tokens
    return ids, mask


def _text_model(make, dtype):
    """(model, (input_ids, attention_mask), layers): make() under seed 0, cast, eval-ready."""
    torch.manual_seed(0)
    model = _finish(make(), dtype)
    return LastHidden(model, ("input_ids", "attention_mask")), _ids_and_mask(), LAYERS


class LastHidden(nn.Module):
    """forward(*tensors) -> model(**dict(zip(names, tensors))).last_hidden_state"""

    def __init__(self, model: nn.Module, input_names: Tuple[str, ...]):
        super().__init__()
        self.model = model
        self.input_names = tuple(input_names)

    def forward(self, *inputs):
        kwargs = dict(zip(self.input_names, inputs))
        out = self.model(**kwargs, return_dict=True)
        return out.last_hidden_state


# --------------------------------------------------------------------------


def build_bert(dtype="f32"):
    from transformers import BertConfig, BertModel

    cfg = _eager(BertConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, intermediate_size=FFN, max_position_embeddings=32,
        initializer_range=INIT_RANGE, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
    ))
    return _text_model(lambda: BertModel(cfg, add_pooling_layer=False), dtype)


def build_gpt2(dtype="f32"):
    from transformers import GPT2Config, GPT2Model

    cfg = _eager(GPT2Config(
        vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=FFN,
        n_positions=32, initializer_range=INIT_RANGE,
        bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1,  # default 50256 is outside the tiny vocab
    ))
    return _text_model(lambda: GPT2Model(cfg), dtype)


def build_llama(dtype="f32"):
    from transformers import LlamaConfig, LlamaModel

    cfg = _eager(LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=64,
        initializer_range=INIT_RANGE,
    ))
    return _text_model(lambda: LlamaModel(cfg), dtype)


def build_vit(dtype="f32"):
    from transformers import ViTConfig, ViTModel

    cfg = _eager(ViTConfig(
        image_size=16, patch_size=4, num_channels=3, hidden_size=HIDDEN,
        num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN,
        initializer_range=INIT_RANGE,
    ))
    torch.manual_seed(0)
    model = _finish(ViTModel(cfg, add_pooling_layer=False), dtype)
    torch.manual_seed(0)
    pixels = torch.randn(B, 3, 16, 16).to(_dt(dtype))  # 16 patches + CLS = 17 tokens
    return LastHidden(model, ("pixel_values",)), (pixels,), LAYERS


def build_t5_encoder(dtype="f32"):
    from transformers import T5Config, T5EncoderModel

    cfg = _eager(T5Config(
        vocab_size=VOCAB, d_model=HIDDEN, d_kv=HIDDEN // HEADS, d_ff=FFN, num_layers=LAYERS,
        num_heads=HEADS, relative_attention_num_buckets=8, relative_attention_max_distance=16,
        dropout_rate=0.1,
    ))
    return _text_model(lambda: T5EncoderModel(cfg), dtype)


def build_deberta_v2(dtype="f32"):
    """DeBERTa-v2 (eager only): its scale is 1 / sqrt(d * scale_factor) computed by tensor ops
    on constants (fold-scalars makes it a constant, so kernels take the attention)."""
    from transformers import DebertaV2Config, DebertaV2Model

    cfg = _eager(DebertaV2Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=FFN, max_position_embeddings=32, initializer_range=INIT_RANGE))
    return _text_model(lambda: DebertaV2Model(cfg), dtype)


def build_bloom(dtype="f32"):
    """BLOOM (eager only): ALiBi, a bias per head added to the padded causal mask, so the
    attention's mask has a row per head ([B, H, S, S] from the inputs)."""
    from transformers import BloomConfig, BloomModel

    cfg = _eager(BloomConfig(vocab_size=VOCAB, hidden_size=HIDDEN, n_layer=LAYERS, n_head=HEADS,
                             initializer_range=INIT_RANGE))
    return _text_model(lambda: BloomModel(cfg), dtype)


BUILDERS: Dict[str, Callable] = {
    "bert": build_bert,
    "gpt2": build_gpt2,
    "llama": build_llama,
    "vit": build_vit,
    "t5_encoder": build_t5_encoder,
    "deberta_v2": build_deberta_v2,
    "bloom": build_bloom,
}


# --------------------------------------------------------------------------
# Models with their defaults, called as users call them.
#
# ``DEFAULT_BUILDERS[name](dtype="f32", mask=True)`` returns
# ``(model, args, kwargs, num_attention_layers)``: the Hugging Face model itself
# (no wrapper) in eval mode, with its default attention implementation (SDPA in
# transformers 5) and default ``use_cache``; ``args`` positional and ``kwargs``
# keyword inputs (``attention_mask=``, ``pixel_values=``, ``decoder_input_ids=``,
# ...); the model returns its ModelOutput. ``mask=True`` pads the batch's second
# sequence by 3 tokens: on the right for encoders (``attention_mask``), on the left
# for decoders (``mask[1, :3] = 0``, also ``decoder_attention_mask``);
# ``mask=False`` passes no padding mask. ``num_attention_layers`` counts self- and
# cross-attention sites. ``MASKED`` names the builders whose inputs have a padding
# mask (the others ignore ``mask``). Configs: hidden 64 (CLIP/Swin less), 2 layers.

DEC_SEQ = 10  # decoder length of the encoder-decoder models


def _default(config):
    """The config as transformers builds it (SDPA, default use_cache): checked, not set."""
    assert config._attn_implementation in (None, "sdpa"), config._attn_implementation
    return config


def _build(make, dtype):
    torch.manual_seed(0)
    model = make().eval().to(_dt(dtype))
    impl = model.config._attn_implementation
    assert impl == "sdpa", f"attention implementation is {impl!r}, not the default 'sdpa'"
    return model


def _ids(seq=S, low=1, gen_seed=0):
    g = torch.Generator().manual_seed(gen_seed)
    return torch.randint(low, VOCAB, (B, seq), dtype=torch.int64, generator=g)


def _padding(seq=S, left=False):
    mask = torch.ones(B, seq, dtype=torch.int64)
    if left:
        mask[1, :3] = 0
    else:
        mask[1, seq - 3:] = 0
    return mask


def _text_inputs(mask, *, left, low=1):
    """kwargs for a text model: input_ids, and attention_mask when `mask`."""
    kwargs = {"input_ids": _ids(low=low)}
    if mask:
        kwargs["attention_mask"] = _padding(left=left)
    return kwargs


def _pixels(dtype, size=16, channels=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, channels, size, size, generator=g).to(_dt(dtype))


def _decoder_llm(config_cls, model_cls, dtype, mask, **extra):
    cfg = _default(config_cls(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=64,
        initializer_range=INIT_RANGE, **extra))
    return _build(lambda: model_cls(cfg), dtype), (), _text_inputs(mask, left=True), LAYERS


def default_bert(dtype="f32", mask=True):
    from transformers import BertConfig, BertModel

    cfg = _default(BertConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=FFN, max_position_embeddings=32, initializer_range=INIT_RANGE))
    return _build(lambda: BertModel(cfg), dtype), (), _text_inputs(mask, left=False), LAYERS


def default_roberta(dtype="f32", mask=True):
    from transformers import RobertaConfig, RobertaModel

    cfg = _default(RobertaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=FFN, max_position_embeddings=40, initializer_range=INIT_RANGE))
    # ids from 3: RoBERTa numbers positions after its padding token (1)
    return _build(lambda: RobertaModel(cfg), dtype), (), _text_inputs(mask, left=False, low=3), LAYERS


def default_distilbert(dtype="f32", mask=True):
    from transformers import DistilBertConfig, DistilBertModel

    cfg = _default(DistilBertConfig(
        vocab_size=VOCAB, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN,
        max_position_embeddings=32, initializer_range=INIT_RANGE))
    return _build(lambda: DistilBertModel(cfg), dtype), (), _text_inputs(mask, left=False), LAYERS


def default_gpt2(dtype="f32", mask=True):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = _default(GPT2Config(
        vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=FFN, n_positions=32,
        initializer_range=INIT_RANGE, bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1))
    return _build(lambda: GPT2LMHeadModel(cfg), dtype), (), _text_inputs(mask, left=True), LAYERS


def default_llama(dtype="f32", mask=True):
    from transformers import LlamaConfig, LlamaForCausalLM

    return _decoder_llm(LlamaConfig, LlamaForCausalLM, dtype, mask)


def default_mistral(dtype="f32", mask=True):
    from transformers import MistralConfig, MistralForCausalLM

    return _decoder_llm(MistralConfig, MistralForCausalLM, dtype, mask)


def default_qwen2(dtype="f32", mask=True):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return _decoder_llm(Qwen2Config, Qwen2ForCausalLM, dtype, mask)


def default_gemma(dtype="f32", mask=True):
    from transformers import GemmaConfig, GemmaForCausalLM

    return _decoder_llm(GemmaConfig, GemmaForCausalLM, dtype, mask, head_dim=HIDDEN // HEADS)


def default_phi3(dtype="f32", mask=True):
    from transformers import Phi3Config, Phi3ForCausalLM

    return _decoder_llm(Phi3Config, Phi3ForCausalLM, dtype, mask, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def default_falcon_alibi(dtype="f32", mask=True):
    """Falcon with ALiBi (as falcon-rw): a per-head bias added to the padded causal mask, so
    its attention mask differs per head."""
    from transformers import FalconConfig, FalconForCausalLM

    cfg = _default(FalconConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, alibi=True,
        initializer_range=INIT_RANGE))
    return _build(lambda: FalconForCausalLM(cfg), dtype), (), _text_inputs(mask, left=True), LAYERS


def default_vit(dtype="f32", mask=True):
    from transformers import ViTConfig, ViTModel

    cfg = _default(ViTConfig(
        image_size=16, patch_size=4, num_channels=3, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, intermediate_size=FFN, initializer_range=INIT_RANGE))
    return _build(lambda: ViTModel(cfg), dtype), (), {"pixel_values": _pixels(dtype)}, LAYERS


def default_clip_text(dtype="f32", mask=True):
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = _default(CLIPTextConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, max_position_embeddings=32, initializer_range=INIT_RANGE,
        bos_token_id=VOCAB - 2, eos_token_id=VOCAB - 1))
    return _build(lambda: CLIPTextModel(cfg), dtype), (), _text_inputs(mask, left=False), LAYERS


def default_clip_vision(dtype="f32", mask=True):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = _default(CLIPVisionConfig(
        image_size=16, patch_size=4, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, initializer_range=INIT_RANGE))
    return _build(lambda: CLIPVisionModel(cfg), dtype), (), {"pixel_values": _pixels(dtype)}, LAYERS


def _whisper_config():
    from transformers import WhisperConfig

    return _default(WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=16, d_model=HIDDEN, encoder_layers=LAYERS, decoder_layers=LAYERS,
        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN,
        max_source_positions=16, max_target_positions=32, init_std=INIT_RANGE,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1))


def _features(dtype):
    """input_features [B, mel bins, 2 * max_source_positions] (the encoder's convs halve it)."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, 16, 32, generator=g).to(_dt(dtype))


def default_whisper_encoder(dtype="f32", mask=True):
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg = _whisper_config()
    return _build(lambda: WhisperEncoder(cfg), dtype), (), {"input_features": _features(dtype)}, LAYERS


def _decoder_inputs(kwargs, mask):
    """decoder_input_ids [B, DEC_SEQ], and a left-padded decoder_attention_mask when `mask`."""
    kwargs["decoder_input_ids"] = _ids(DEC_SEQ, gen_seed=1)
    if mask:
        kwargs["decoder_attention_mask"] = _padding(DEC_SEQ, left=True)
    return kwargs


def default_whisper(dtype="f32", mask=True):
    from transformers import WhisperModel

    cfg = _whisper_config()
    kwargs = _decoder_inputs({"input_features": _features(dtype)}, mask)
    return _build(lambda: WhisperModel(cfg), dtype), (), kwargs, 3 * LAYERS  # encoder, decoder, cross


def default_bart(dtype="f32", mask=True):
    from transformers import BartConfig, BartModel

    cfg = _default(BartConfig(
        vocab_size=VOCAB, d_model=HIDDEN, encoder_layers=LAYERS, decoder_layers=LAYERS,
        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN,
        max_position_embeddings=32, init_std=INIT_RANGE, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=2, forced_eos_token_id=2))
    kwargs = _decoder_inputs(_text_inputs(mask, left=False, low=3), mask)
    return _build(lambda: BartModel(cfg), dtype), (), kwargs, 3 * LAYERS


def default_t5(dtype="f32", mask=True):
    from transformers import T5Config, T5Model

    cfg = _default(T5Config(
        vocab_size=VOCAB, d_model=HIDDEN, d_kv=HIDDEN // HEADS, d_ff=FFN, num_layers=LAYERS,
        num_decoder_layers=LAYERS, num_heads=HEADS, relative_attention_num_buckets=8,
        relative_attention_max_distance=16, decoder_start_token_id=0))
    kwargs = _decoder_inputs(_text_inputs(mask, left=False), mask)
    return _build(lambda: T5Model(cfg), dtype), (), kwargs, 3 * LAYERS


def default_swin(dtype="f32", mask=True):
    from transformers import SwinConfig, SwinModel

    cfg = _default(SwinConfig(
        image_size=32, patch_size=4, num_channels=3, embed_dim=32, depths=[1, 1], num_heads=[2, 4],
        window_size=4, initializer_range=INIT_RANGE))
    # 8x8 patches in 4x4 windows, then 4x4 patches in one window: one attention site per block
    return _build(lambda: SwinModel(cfg), dtype), (), {"pixel_values": _pixels(dtype, size=32)}, 2


DEFAULT_BUILDERS: Dict[str, Callable] = {
    "bert": default_bert,
    "roberta": default_roberta,
    "distilbert": default_distilbert,
    "gpt2": default_gpt2,
    "llama": default_llama,
    "mistral": default_mistral,
    "qwen2": default_qwen2,
    "gemma": default_gemma,
    "phi3": default_phi3,
    "falcon_alibi": default_falcon_alibi,
    "vit": default_vit,
    "clip_text": default_clip_text,
    "clip_vision": default_clip_vision,
    "whisper_encoder": default_whisper_encoder,
    "whisper": default_whisper,
    "bart": default_bart,
    "t5": default_t5,
    "swin": default_swin,
}

#: Builders whose inputs carry a padding mask when mask=True.
MASKED = ("bert", "roberta", "distilbert", "gpt2", "llama", "mistral", "qwen2", "gemma", "phi3", "falcon_alibi",
          "clip_text", "whisper", "bart", "t5")
