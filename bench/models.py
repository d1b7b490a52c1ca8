"""End-to-end benchmark: transformer stacks with random weights, flashlift against its peers.

Models (Hugging Face transformers, eager attention, built from config, random weights):
  * bert: a BERT-base-sized encoder stack (hidden 768, 12 heads, FFN 3072), padding mask;
  * llama: a LLaMA-style decoder stack (hidden 1024, 16 heads, 4 KV heads, SwiGLU 2816),
    causal, rotary embeddings, grouped-query attention;
  * llama_d128: the same with LLaMA-7B's head dim 128 (hidden 2048, 16 heads, 4 KV heads,
    SwiGLU 5632); its causal + padding mask reaches the attention kernel at run time.
The weights are *inputs* of the compiled function (so modules stay small enough to carry
to the GPU machine, and both sides run the very same weights). Peers on the same inputs:
IREE without raising, torch eager, torch.compile, and the same model with
attn_implementation="sdpa" (what a model that calls SDPA gets). `flashlift_sdpa` is that SDPA
model compiled by flashlift (transformers' default attention, raised from SDPA's
decomposition).

    python bench/models.py build --target cuda:sm_90 --out build/bench/models   # here
    python bench/models.py run --modules build/bench/models --out-dir $OUT       # GPU machine
    python bench/models.py all --target cpu --small                              # CPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from attention import (DTYPES, commit, device_name, flashlift_candidates, load_manifest,  # noqa: E402
                       measure, results_markdown)

SPECS = {
    # name: (config kwargs, batch, seq, layers)
    "bert": ({"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072}, 8, 512, 4),
    "llama": ({"hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 4,
               "intermediate_size": 2816}, 4, 1024, 4),
    "llama_d128": ({"hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 4,
                    "intermediate_size": 5632}, 4, 1024, 4),
}
SMALL = {"bert": (2, 128, 2), "llama": (2, 128, 2), "llama_d128": (2, 128, 2)}


def make_model(name: str, layers: int, attn: str = "eager"):
    import transformers as tf

    kwargs = dict(SPECS[name][0], num_hidden_layers=layers)
    if name == "bert":
        cfg = tf.BertConfig(**kwargs, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        cfg._attn_implementation = attn
        model = tf.BertModel(cfg, add_pooling_layer=False).encoder
    else:
        cfg = tf.LlamaConfig(**kwargs, vocab_size=128, max_position_embeddings=8192, use_cache=False)
        cfg._attn_implementation = attn
        model = tf.LlamaModel(cfg)
        model.embed_tokens = None
    torch.manual_seed(0)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    return model.eval()


class WeightsAsInputs(torch.nn.Module):
    """forward(hidden, mask?, *weights) -> last hidden state, via torch.func.functional_call."""

    def __init__(self, name: str, model):
        super().__init__()
        self.name, self.model = name, model
        self.names = [n for n, _ in model.named_parameters()]

    def forward(self, hidden, mask, *weights):
        params = dict(zip(self.names, weights))
        if self.name == "bert":
            ext = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
            out = torch.func.functional_call(self.model, params, (hidden,), {"attention_mask": ext})
            return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        out = torch.func.functional_call(self.model, params, (), {"inputs_embeds": hidden, "attention_mask": mask})
        return out.last_hidden_state


def inputs_for(name: str, model, batch: int, seq: int, dtype, device="cpu"):
    hidden_size = SPECS[name][0]["hidden_size"]
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(batch, seq, hidden_size, generator=g).to(dtype).to(device)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    if name == "bert":
        mask[batch // 2:, seq * 3 // 4:] = 0  # half the batch is padded
    weights = [p.detach().to(dtype).to(device) for p in model.parameters()]
    return hidden, mask.to(device), weights


def build(target: str, out_dir: str, dtype_name: str, small: bool, names: tuple = ()) -> None:
    import flashlift

    os.makedirs(out_dir, exist_ok=True)
    dtype = DTYPES[dtype_name]
    entries = []
    for name, (_, batch, seq, layers) in SPECS.items():
        if names and name not in names:
            continue
        if small:
            batch, seq, layers = SMALL[name]
        model = make_model(name, layers).to(dtype)
        hidden, mask, weights = inputs_for(name, model, batch, seq, dtype)
        wrapper = WeightsAsInputs(name, model)
        entry = {"name": name, "batch": batch, "seq": seq, "layers": layers, "dtype": dtype_name, "modules": {}}
        # the peer is IREE on its own: no raising and none of flashlift's kernels (attention, GEMM);
        # flashlift_sdpa is the same model with transformers' default attention (SDPA), which
        # must reach the same kernels at the same speed
        sdpa_wrapper = WeightsAsInputs(name, make_model(name, layers, "sdpa").to(dtype))
        for variant, raise_attention, model_of in (("flashlift", True, wrapper), ("iree_unraised", False, wrapper),
                                                   ("flashlift_sdpa", True, sdpa_wrapper)):
            t0 = time.time()
            compiled = flashlift.compile_model(model_of, (hidden, mask, *weights), target=target,
                                               raise_attention=raise_attention, use_kernels=raise_attention)
            path = os.path.join(out_dir, f"{name}.{variant}.flashlift")
            compiled.save(path)
            entry["modules"][variant] = os.path.basename(path)
            print(f"{name} {variant}: {time.time() - t0:.1f}s, raised {len(compiled.report.raised)} "
                  f"of {layers} layers, {os.path.getsize(path) / 1e6:.1f} MB", flush=True)
            if raise_attention:
                print(compiled.report, flush=True)
        entries.append(entry)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"target": target, "commit": commit(), "models": entries}, f, indent=1)


def run(modules_dir: str, out_dir: str, peers: list[str]) -> None:
    manifest, device = load_manifest(modules_dir)
    rows = []
    for e in manifest["models"]:
        dtype = DTYPES[e["dtype"]]
        model = make_model(e["name"], e["layers"]).to(dtype).to(device)
        hidden, mask, weights = inputs_for(e["name"], model, e["batch"], e["seq"], dtype, device)
        wrapper = WeightsAsInputs(e["name"], model)
        with torch.no_grad():
            ref = WeightsAsInputs(e["name"], make_model(e["name"], e["layers"]).to(device))(
                hidden.float(), mask, *[w.float() for w in weights])
        row = {"model": e["name"], "shape": f"B={e['batch']} S={e['seq']} layers={e['layers']}",
               "dtype": e["dtype"], "ms": {}, "err": {}}
        # weights imported once, as a deployed model's parameters would be (zero-copy on CUDA)
        cands = flashlift_candidates(modules_dir, e["modules"], (hidden, mask, *weights), public_call=False)
        with torch.no_grad():
            if "eager" in peers:
                cands["torch_eager"] = (lambda: wrapper(hidden, mask, *weights), None)
            if "compile" in peers:
                compiled_wrapper = torch.compile(wrapper)
                cands["torch_compile"] = (lambda: compiled_wrapper(hidden, mask, *weights), None)
            if "sdpa" in peers:
                sdpa_model = WeightsAsInputs(e["name"], make_model(e["name"], e["layers"], "sdpa").to(dtype).to(device))
                cands["torch_sdpa_model"] = (lambda: sdpa_model(hidden, mask, *weights), None)
            measure(row, cands, ref, device, e["name"])
        rows.append(row)
        print(row, flush=True)
    _write(rows, manifest, device, out_dir)


def _write(rows, manifest, device, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    name = device_name(device)
    text = results_markdown(
        f"End-to-end benchmark: {name}",
        [f"flashlift commit: {manifest.get('commit')} (target `{manifest['target']}`); torch {torch.__version__}",
         "median ms of 30 warm calls per peer, timed in interleaved rounds; weights are inputs, imported once (on CUDA the torch tensors themselves, zero-copy; the result comes back as a CUDA tensor); err vs the f32 model"],
        ["model", "shape", "dtype"], rows, lambda r: [r["model"], r["shape"], r["dtype"]],
        lambda r, p: f"{p} ms" if r is None else (f"{r['ms'][p]:.3f}" if r["ms"].get(p) else "fail"))
    with open(os.path.join(out_dir, f"models-{'gpu' if device == 'cuda' else 'cpu'}.md"), "w") as f:
        f.write(text)
    print(text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["build", "run", "all"])
    p.add_argument("--target", default="cpu")
    p.add_argument("--dtype", default=None)
    p.add_argument("--small", action="store_true", help="small batch/seq/layers (the CPU machine)")
    p.add_argument("--out", default=None)
    p.add_argument("--modules", default=None)
    p.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--peers", default="eager,compile,sdpa")
    p.add_argument("--models", default="", help=f"comma list of {', '.join(SPECS)} (default: all)")
    a = p.parse_args()
    dtype = a.dtype or ("f32" if a.target == "cpu" else "f16")
    modules = a.modules or a.out or os.path.join(ROOT, "build", "bench", "models-" + a.target.replace(":", "_"))
    if a.mode in ("build", "all"):
        build(a.target, modules, dtype, a.small, tuple(filter(None, a.models.split(","))))
    if a.mode in ("run", "all"):
        run(modules, a.out_dir, a.peers.split(","))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
