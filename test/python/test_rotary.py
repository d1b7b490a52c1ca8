"""flashlift's rotary-embedding kernel (compiler/rotary_dispatch.py, compiler/kernels/triton_rotary.py).

On this machine (no GPU): the kernel's semantics in Triton's interpreter, bit for bit against
torch; which sites of Hugging Face's rotary models (default SDPA attention, padded batch)
take the kernel when compiled for sm_90, and why not where they do not. The rewrite's IR is
checked by test/lit/dispatch-rotary.mlir; the answers on the GPU by the GPU numerics cases
below (test/tools/gpu_numerics.py builds them here, runs them there).
"""

import os
import subprocess
import sys

import pytest
import torch

import flashlift

hf_models = pytest.importorskip("hf_models")
transformers = pytest.importorskip("transformers")
pytest.importorskip("triton")

ROTARY = ("llama", "mistral", "qwen2", "gemma", "phi3")
KERNEL = "triton-rotary sm_90"


def test_rotary_kernel_semantics_in_the_interpreter():
    """tools/kernels/interp_check.py rotary: (B, S, H, D) and (B, H, S, D), tables per batch
    element, one position, a head dim of 80, f16 and f32, f32 tables with an f16 x (the sum
    rounded back to f16 or not): equal to torch bit for bit."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = os.path.join(root, "tools", "kernels", "interp_check.py")  # a developer tool, not in the package
    r = subprocess.run([sys.executable, script, "rotary"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert r.stdout.count("bit for bit ok") == 8 and "FAIL" not in r.stdout, r.stdout


@pytest.mark.parametrize("name", ROTARY)
def test_hf_rotary_models_take_the_kernel_on_cuda(name):
    """Q's and K's embedding in every layer of the model as users hold it (SDPA, left-padded
    batch) take the kernel; the report says so in one line, each site at the model's source
    line (not at the wrapper through which transformers 5 calls apply_rotary_pos_emb)."""
    model, args, kwargs, layers = hf_models.DEFAULT_BUILDERS[name]("f16", True)
    report = flashlift.compile_model(model, args, kwargs=kwargs, target="cuda:sm_90").report
    assert [s.path for s in report.rotary] == [KERNEL] * (2 * layers), str(report)
    assert f"{2 * layers} of {2 * layers} rotary embeddings take flashlift's kernel [{KERNEL}]" in str(report)
    assert all(s.module_path.endswith("self_attn") and os.path.basename(s.source).startswith("modeling_")
               for s in report.rotary), [s.where() for s in report.rotary]


def test_left_to_iree_keeps_every_embedding_with_iree():
    """rotary_dispatch.left_to_iree (bench/models.py's flashlift_no_rotary_kernel): each site
    stays with IREE and the report says why."""
    from flashlift.compiler import rotary_dispatch

    model, args, kwargs, layers = hf_models.DEFAULT_BUILDERS["llama"]("f16", True)
    with rotary_dispatch.left_to_iree():
        report = flashlift.compile_model(model, args, kwargs=kwargs, target="cuda:sm_90").report
    assert [s.path for s in report.rotary] == ["iree-codegen"] * (2 * layers), str(report)
    assert "iree-codegen: left to IREE (rotary_dispatch.left_to_iree)" in str(report)


# --- GPU numerics cases (built by test/tools/gpu_numerics.py, run on the GPU machine) ----------

GPU_CASES = ["rotary_llama_f16", "rotary_positions_bf16", "rotary_d128_f16"]
# the rotary models of test/hf_models.py as users hold them (SDPA, the batch's second sequence
# left-padded by 3), in f16: their logits
GPU_CASES += [f"rotary_hf_{name}_f16" for name in ROTARY]


class Positional(torch.nn.Module):
    """A Hugging Face model called with keyword tensors, taking them positionally (the GPU
    numerics tool calls modules so) and returning the logits."""

    def __init__(self, model, names):
        super().__init__()
        self.model, self.names = model, tuple(names)

    def forward(self, *tensors):
        return self.model(**dict(zip(self.names, tensors)), use_cache=False).logits


class LeftPaddedDecoder(torch.nn.Module):
    """LlamaModel on a left-padded batch, as generate() calls it: position ids from the mask
    (each sequence's first token at 0; the tables then differ per batch element) or, by
    default, none (the model counts positions from 0 for every row)."""

    def __init__(self, model, positions_from_mask: bool):
        super().__init__()
        self.model, self.positions_from_mask = model, positions_from_mask

    def forward(self, hidden, mask):
        positions = (mask.cumsum(-1) - 1).clamp(min=0) if self.positions_from_mask else None
        return self.model(inputs_embeds=hidden, attention_mask=mask, position_ids=positions).last_hidden_state


def gpu_case(case: str):
    """(model, example args, tolerance vs the f32 model, compile_model kwargs): a Hugging Face
    rotary model (rotary_hf_*), or a 2-layer LLaMA
    (hidden 256; 4 heads of 64 and 2 KV heads, or 2 of 128 and 1) on 2 x 96 tokens, the second
    sequence padded by 17 on the left."""
    if case.startswith("rotary_hf_"):
        model, _, kwargs, _ = hf_models.DEFAULT_BUILDERS[case.removeprefix("rotary_hf_").removesuffix("_f16")]("f16", True)
        return Positional(model, kwargs), tuple(kwargs.values()), 1e-2, {}
    torch.manual_seed(0)
    dtype = torch.bfloat16 if case.endswith("bf16") else torch.float16
    hidden, heads = 256, (2 if "d128" in case else 4)
    cfg = transformers.LlamaConfig(hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=heads // 2,
                                   intermediate_size=2 * hidden, num_hidden_layers=2, vocab_size=64,
                                   max_position_embeddings=512, use_cache=False)
    cfg._attn_implementation = "sdpa"
    model = transformers.LlamaModel(cfg)
    model.embed_tokens = None
    mask = torch.ones(2, 96, dtype=torch.int64)
    mask[1, :17] = 0
    module = LeftPaddedDecoder(model, positions_from_mask="positions" in case).eval().to(dtype)
    return module, (torch.randn(2, 96, hidden).to(dtype), mask), (2e-2 if dtype == torch.bfloat16 else 5e-3), {}
