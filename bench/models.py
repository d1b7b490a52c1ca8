"""End-to-end benchmark: transformer stacks with random weights, flashlift against its peers.

Models (Hugging Face transformers, eager attention, built from config, random weights):
  * bert: a BERT-base-sized encoder stack (hidden 768, 12 heads, FFN 3072), padding mask;
  * llama: a LLaMA-style decoder stack (hidden 1024, 16 heads, 4 KV heads, SwiGLU 2816),
    causal, rotary embeddings, grouped-query attention;
  * llama_d128: the same with LLaMA-7B's head dim 128 (hidden 2048, 16 heads, 4 KV heads,
    SwiGLU 5632); its causal + padding mask reaches the attention kernel at run time;
  * bloom: BLOOM-560m's width (hidden 1024, 16 heads), ALiBi: a bias per head on the padded
    causal mask, which reaches the kernel as a [B, H, S, S] run-time mask (eager attention,
    BLOOM's only one; half the batch left-padded).
Every candidate is the model as users hold it (its own parameters, called directly with the
hidden states and the padding mask). flashlift's modules hold no weights (they are IREE
parameters, saved apart with `save(parameters=False)` so that modules stay small enough to
carry); the GPU machine builds the same model from the same seed and loads each module with
that model's state dict, so every candidate runs the very same weights.
Candidates: flashlift on the eager-attention model; `flashlift_sdpa`, flashlift on the model with
transformers' default attention (SDPA, raised from its decomposition); `iree_unraised`, IREE
alone. The torch peers are the SDPA model under every configuration a user would pick: eager,
torch.compile default, `max-autotune-no-cudagraphs` and `reduce-overhead` (CUDA graphs, the strongest).

    python bench/models.py build --target cuda:sm_90 --out build/bench/models   # here
    python bench/models.py run --modules build/bench/models --out-dir $OUT       # GPU machine
    python bench/models.py run ... --iree-flags=--cuda_use_streams=false --tag -graphs  # IREE's CUDA graphs
    python bench/models.py all --target cpu --small                              # CPU machine
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from attention import (DTYPES, commit, device_name, flashlift_candidates, load_manifest,  # noqa: E402
                       measure, write_model_table)

SPECS = {
    # name: (config kwargs, batch, seq, layers)
    "bert": ({"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072}, 8, 512, 4),
    "llama": ({"hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 4,
               "intermediate_size": 2816}, 4, 1024, 4),
    "llama_d128": ({"hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 4,
                    "intermediate_size": 5632}, 4, 1024, 4),
    # BLOOM-560m's width: ALiBi, so the attention's mask has a row per head
    "bloom": ({"hidden_size": 1024, "num_attention_heads": 16}, 4, 1024, 4),
}
SMALL = {"bert": (2, 128, 2), "llama": (2, 128, 2), "llama_d128": (2, 128, 2), "bloom": (2, 128, 2)}


def make_model(name: str, layers: int, attn: str = "eager"):
    import transformers as tf

    kwargs = dict(SPECS[name][0], num_hidden_layers=layers)
    if name == "bert":
        cfg = tf.BertConfig(**kwargs, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        cfg._attn_implementation = attn
        model = tf.BertModel(cfg, add_pooling_layer=False).encoder
    elif name == "bloom":  # (its attention is eager only: no SDPA path in transformers)
        model = tf.BloomModel(tf.BloomConfig(**kwargs, vocab_size=128, use_cache=False))
        model.word_embeddings = None
    else:
        cfg = tf.LlamaConfig(**kwargs, vocab_size=128, max_position_embeddings=8192, use_cache=False)
        cfg._attn_implementation = attn
        model = tf.LlamaModel(cfg)
        model.embed_tokens = None
    torch.manual_seed(0)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    return model.eval()


def inputs_for(name: str, batch: int, seq: int, dtype, device="cpu"):
    """The hidden states [B, S, hidden] and the padding mask [B, S] (int64, 1 = a token)."""
    hidden_size = SPECS[name][0]["hidden_size"]
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(batch, seq, hidden_size, generator=g).to(dtype).to(device)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    if name == "bert":
        mask[batch // 2:, seq * 3 // 4:] = 0  # half the batch is padded
    if name == "bloom":
        mask[batch // 2:, :seq // 4] = 0  # half the batch is padded on the left, as decoders pad
    return hidden, mask.to(device)


def user_model(name: str, layers: int, dtype, attn: str = "eager", device: str = "cpu"):
    """The model as its users hold it, in `dtype` on `device` (the same weights on every call)."""
    return AsUsersHold(name, make_model(name, layers, attn).to(dtype)).to(device).eval()


def _variant_context(variant: str):
    """The context a variant is compiled in: flashlift_no_gluon_gemm keeps every GEMM off the
    Gluon kernel (triton_gemm.without_gluon), so a run shows the Gluon GEMM's gain;
    flashlift_no_rotary_kernel leaves rotary embeddings to IREE (rotary_dispatch.left_to_iree),
    flashlift_no_residual_epilogue the residual adds after GEMMs
    (gemm_dispatch.without_residual_epilogue); else none."""
    contexts = {"flashlift_no_gluon_gemm": ("flashlift.compiler.kernels.triton_gemm", "without_gluon"),
                "flashlift_no_rotary_kernel": ("flashlift.compiler.rotary_dispatch", "left_to_iree"),
                "flashlift_no_residual_epilogue": ("flashlift.compiler.gemm_dispatch", "without_residual_epilogue")}
    if variant not in contexts:
        return contextlib.nullcontext()
    module, name = contexts[variant]   # (imported here: the build runs where flashlift is installed)
    return getattr(importlib.import_module(module), name)()


def build(target: str, out_dir: str, dtype_name: str, small: bool, names: tuple = (), only: tuple = ()) -> None:
    import flashlift

    os.makedirs(out_dir, exist_ok=True)
    dtype = DTYPES[dtype_name]
    entries = []
    for name, (_, batch, seq, layers) in SPECS.items():
        if names and name not in names:
            continue
        if small:
            batch, seq, layers = SMALL[name]
        hidden, mask = inputs_for(name, batch, seq, dtype)
        entry = {"name": name, "batch": batch, "seq": seq, "layers": layers, "dtype": dtype_name, "modules": {}}
        # the peer is IREE on its own: no raising and none of flashlift's kernels (attention, GEMM);
        # flashlift_sdpa is the same model with transformers' default attention (SDPA), which
        # must reach the same kernels at the same speed
        # flashlift and flashlift_sdpa: fuse-linears as the target runs it by default (the CPU: every
        # group; GPUs: Q/K/V the attention kernel reads in place), the norm kernel (LayerNorm,
        # RMSNorm); flashlift_unfused (CPU) turns fuse-linears off, flashlift_fused (GPUs) fuses every group,
        # flashlift_no_norm_kernel leaves the residual add + norm to IREE
        # flashlift_no_activation_epilogue (GPUs) leaves GELU / SwiGLU to IREE, not the GEMM kernel's epilogue;
        # flashlift_no_gluon_gemm (GPUs) builds no GEMM on the Gluon kernel (the tuned pointer / TMA configs)
        # flashlift_no_rotary_kernel (GPUs, rotary models) leaves the rotary embeddings to IREE,
        # flashlift_no_residual_epilogue (GPUs, LLaMA) the residual adds after o_proj / down_proj
        flipped = ("flashlift_unfused", True, "eager", False, True) if target == "cpu" else \
            ("flashlift_fused", True, "eager", True, True)
        variants = [("flashlift", True, "eager", None, True), ("iree_unraised", False, "eager", False, False),
                    ("flashlift_sdpa", True, "sdpa", None, True), flipped,
                    ("flashlift_no_norm_kernel", True, "eager", None, False)]
        if target != "cpu":
            variants.append(("flashlift_no_activation_epilogue", True, "eager", None, True))
            variants.append(("flashlift_no_gluon_gemm", True, "eager", None, True))
            if name.startswith("llama"):
                variants.append(("flashlift_no_rotary_kernel", True, "eager", None, True))
                variants.append(("flashlift_no_residual_epilogue", True, "eager", None, True))
        for variant, raise_attention, attn, fuse, norms in variants:
            if (only and variant not in only) or (name == "bloom" and attn == "sdpa"):  # (BLOOM: eager only)
                continue
            t0 = time.time()
            with _variant_context(variant):
                compiled = flashlift.compile_model(user_model(name, layers, dtype, attn), (hidden, mask), target=target,
                                                   raise_attention=raise_attention, use_kernels=raise_attention,
                                                   fuse_linears=fuse, fuse_norms=norms,
                                                   fuse_activations=variant != "flashlift_no_activation_epilogue")
            path = os.path.join(out_dir, f"{name}.{variant}.flashlift")
            compiled.save(path, parameters=False)  # the run builds the same weights from the seed
            entry["modules"][variant] = os.path.basename(path)
            print(f"{name} {variant}: {time.time() - t0:.1f}s, raised {len(compiled.report.raised)} "
                  f"of {layers} layers, {os.path.getsize(path) / 1e6:.1f} MB", flush=True)
            if raise_attention:
                print(compiled.report, flush=True)
        entries.append(entry)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"target": target, "commit": commit(), "models": entries}, f, indent=1)


class AsUsersHold(torch.nn.Module):
    """forward(hidden, mask) -> last hidden state: the model with its own parameters, called
    as its users call it. (The earlier WeightsAsInputs wrapper passed the weights as inputs
    through functional_call, which inflated torch's times: BERT's SDPA model 6.09 ms through
    it, 2.19 ms called directly, at d325afe.)"""

    def __init__(self, name: str, model):
        super().__init__()
        self.name, self.model = name, model

    def forward(self, hidden, mask):
        if self.name == "bert":
            ext = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
            return self.model(hidden, attention_mask=ext)[0]
        return self.model(inputs_embeds=hidden, attention_mask=mask).last_hidden_state


# peer -> torch.compile mode (None: eager); the strongest configuration a user would pick is
# reduce-overhead (CUDA graphs), which only CUDA has
TORCH_PEERS = {"eager": None, "compile": "default", "max_autotune": "max-autotune-no-cudagraphs",
               "cudagraphs": "reduce-overhead"}


def torch_peers(name: str, layers: int, dtype, device: str, hidden, mask, peers: list[str]) -> dict:
    """peer -> (run, None) for the SDPA model as users hold it, under each torch mode asked for."""
    user = user_model(name, layers, dtype, "sdpa", device)
    cands = {}
    for peer in peers:
        if peer not in TORCH_PEERS or (peer == "cudagraphs" and device != "cuda"):
            continue
        mode = TORCH_PEERS[peer]
        if mode is None:
            cands["torch_eager"] = (lambda: user(hidden, mask), None)
            continue
        torch._dynamo.reset()
        fn = torch.compile(user, mode=mode)
        if peer == "cudagraphs":
            # a new step per call, as a serving loop marks it: the graph's outputs are reused
            cands["torch_" + peer] = (lambda f=fn: (torch.compiler.cudagraph_mark_step_begin(), f(hidden, mask))[1], None)
        else:
            cands["torch_" + peer] = (lambda f=fn: f(hidden, mask), None)
    return cands


def run(modules_dir: str, out_dir: str, peers: list[str], names: tuple = (), tag: str = "", rounds: int = 6) -> None:
    manifest, device = load_manifest(modules_dir)
    rows = []
    for e in manifest["models"]:
        if names and e["name"] not in names:
            continue
        dtype = DTYPES[e["dtype"]]
        hidden, mask = inputs_for(e["name"], e["batch"], e["seq"], dtype, device)
        weights = user_model(e["name"], e["layers"], dtype).state_dict()  # the build's weights, from the seed
        with torch.no_grad():  # the reference: the same (rounded) weights in f32
            ref = user_model(e["name"], e["layers"], dtype).float().to(device)(hidden.float(), mask)
        row = {"model": e["name"], "shape": f"B={e['batch']} S={e['seq']} layers={e['layers']}",
               "dtype": e["dtype"], "ms": {}, "err": {}}
        # each module loaded with the model's weights as its parameters, called as users call it
        cands = flashlift_candidates(modules_dir, e["modules"], (hidden, mask), parameters=weights)
        with torch.no_grad():
            cands.update(torch_peers(e["name"], e["layers"], dtype, device, hidden, mask, peers))
            measure(row, cands, ref, device, e["name"], rounds=rounds)
        rows.append(row)
        print(row, flush=True)
    _write(rows, manifest, device, out_dir, tag, rounds)


def _write(rows, manifest, device, out_dir, tag="", rounds=6):
    os.makedirs(out_dir, exist_ok=True)
    name = device_name(device)
    write_model_table(
        f"End-to-end benchmark: {name}",
        [f"flashlift commit: {manifest.get('commit')} (target `{manifest['target']}`); torch {torch.__version__}",
         f"median ms of {rounds * 5} warm calls per peer, timed in {rounds} interleaved rounds of 5; every candidate is the model with its own weights, called directly on the inputs (flashlift: the module loaded with the model's state dict as its IREE parameters; on CUDA the inputs are the torch tensors, zero-copy, and the result comes back as a CUDA tensor); torch peers: the SDPA model; err vs the model in f32",
         f"IREE runtime flags: {os.environ.get('FLASHLIFT_IREE_FLAGS') or 'defaults'}"],
        rows, os.path.join(out_dir, f"models-{'gpu' if device == 'cuda' else 'cpu'}{tag}.md"))
    # every candidate's time and error (the table shows flashlift's error only)
    with open(os.path.join(out_dir, f"models-{'gpu' if device == 'cuda' else 'cpu'}{tag}.json"), "w") as f:
        json.dump({"device": name, "manifest_commit": manifest.get("commit"), "rows": rows}, f, indent=1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["build", "run", "all"])
    p.add_argument("--target", default="cpu")
    p.add_argument("--dtype", default=None)
    p.add_argument("--small", action="store_true", help="small batch/seq/layers (the CPU machine)")
    p.add_argument("--out", default=None)
    p.add_argument("--modules", default=None)
    p.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--peers", default=",".join(TORCH_PEERS), help=f"comma list of {', '.join(TORCH_PEERS)}")
    p.add_argument("--iree-flags", default="", help="IREE runtime flags, e.g. --cuda_use_streams=false")
    p.add_argument("--tag", default="", help="suffix of the results file name")
    p.add_argument("--models", default="", help=f"comma list of {', '.join(SPECS)} (default: all)")
    p.add_argument("--variants", default="", help="build: comma list of flashlift's variants (default: all)")
    p.add_argument("--rounds", type=int, default=6,
                   help="interleaved rounds of 5 calls per candidate (on the H100, 6 rounds left a +-10%% "
                        "spread from run to run: models-gpu-h100.md)")
    a = p.parse_args()
    dtype = a.dtype or ("f32" if a.target == "cpu" else "f16")
    modules = a.modules or a.out or os.path.join(ROOT, "build", "bench", "models-" + a.target.replace(":", "_"))
    if a.mode in ("build", "all"):
        build(a.target, modules, dtype, a.small, tuple(filter(None, a.models.split(","))),
              tuple(filter(None, a.variants.split(","))))
    if a.mode in ("run", "all"):
        if a.iree_flags:
            import iree.runtime as rt

            rt.flags.parse_flags(*a.iree_flags.split())
            os.environ["FLASHLIFT_IREE_FLAGS"] = a.iree_flags
        run(modules, a.out_dir, a.peers.split(","), tuple(filter(None, a.models.split(","))), a.tag, a.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
