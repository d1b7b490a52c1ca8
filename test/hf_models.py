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

DTYPES = {"f32": torch.float32, "f16": torch.float16}


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


BUILDERS: Dict[str, Callable] = {
    "bert": build_bert,
    "gpt2": build_gpt2,
    "llama": build_llama,
    "vit": build_vit,
    "t5_encoder": build_t5_encoder,
}
