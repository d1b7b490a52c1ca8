"""The seed workload: the Slapo tutorial's `Attention` module against its hand schedule.

The module (examples/slapo_attention.py, hidden 1024, 16 heads) as written, compiled by
flashlift with its default passes (fuse-linears on the CPU: one QKV GEMM; the residual add +
LayerNorm kernel) and with each of the two fusions on and off, against,
in the same process on the same inputs: torch eager, torch.compile (default; on CUDA also
`reduce-overhead`), and the tutorial's hand schedule written as a torch module
(`HandSchedule`: its FusedQKV linear, SDPA for the core, the bias + dropout + residual +
LayerNorm through torch.compile), since the Slapo library is not installable here. Every
candidate runs the same weights; err: ||out - ref|| / ||ref|| against the module in f32.

    python bench/seed.py all --target cpu                                     # CPU: B=2 S=128
    python bench/seed.py build --target cuda:sm_90 --out build/bench/seed    # here
    python bench/seed.py run --modules build/bench/seed --out-dir $OUT        # GPU machine: B=8 S=512
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "python"), os.path.join(ROOT, "bench"), os.path.join(ROOT, "examples")]

from attention import DTYPES, commit, device_name, flashlift_candidates, load_manifest, measure, write_model_table  # noqa: E402
from slapo_attention import Attention  # noqa: E402

from flashlift.reference import dropout_disabled  # noqa: E402

HIDDEN, HEADS = 1024, 16
SHAPES = {"cpu": (2, 128), "gpu": (8, 512)}  # batch, seq


class HandSchedule(torch.nn.Module):
    """The tutorial's schedule by hand: one QKV linear, SDPA, the dense layer, then bias,
    (inference) dropout, residual and LayerNorm as one torch.compile'd function."""

    def __init__(self, seed: Attention):
        super().__init__()
        sa, proj = seed.self_attn, seed.proj
        self.heads = sa.n_heads
        self.qkv = torch.nn.Linear(HIDDEN, 3 * HIDDEN)
        with torch.no_grad():
            self.qkv.weight.copy_(torch.cat([sa.q_proj.weight, sa.k_proj.weight, sa.v_proj.weight]))
            self.qkv.bias.copy_(torch.cat([sa.q_proj.bias, sa.k_proj.bias, sa.v_proj.bias]))
        self.dense = torch.nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.dense.weight, self.dense_bias, self.ln = proj.dense.weight, proj.dense.bias, proj.layer_norm
        self.epilogue = torch.compile(_bias_residual_layernorm)

    def forward(self, x):
        b, s, _ = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, s, HIDDEN)
        return self.epilogue(self.dense(o), self.dense_bias, x, self.ln.weight, self.ln.bias, self.ln.eps)


def _bias_residual_layernorm(h, bias, residual, weight, ln_bias, eps: float):
    return F.layer_norm(h + bias + residual, (h.shape[-1],), weight, ln_bias, eps)


def seed_model(dtype, device="cpu") -> Attention:
    torch.manual_seed(0)
    return Attention(HIDDEN, HEADS).eval().to(dtype).to(device)


def seed_input(batch: int, seq: int, dtype, device="cpu"):
    return torch.randn(batch, seq, HIDDEN, generator=torch.Generator().manual_seed(1)).to(dtype).to(device)


def build(target: str, out_dir: str, dtype_name: str) -> None:
    import flashlift
    from flashlift.compiler import driver
    from flashlift.compiler.pipeline import pipeline_for

    os.makedirs(out_dir, exist_ok=True)
    dtype = DTYPES[dtype_name]
    batch, seq = SHAPES["cpu" if target.startswith("cpu") else "gpu"]
    x = seed_input(batch, seq, dtype)
    modules = {}
    # flashlift with its defaults, then each fusion's own share: the other three of
    # fuse-linears (one QKV GEMM) x dispatch-norms (residual add + LayerNorm as one kernel)
    default_qkv = "fuse-linears" in pipeline_for(target)
    variants = [("flashlift", None, True)] + [
        (f"flashlift_qkv_{'on' if qkv else 'off'}_norm_{'on' if norm else 'off'}", qkv, norm)
        for qkv in (True, False) for norm in (True, False) if (qkv, norm) != (default_qkv, True)]
    if target.startswith("cpu"):   # the defaults without IREE's data tiling (on since it was measured here)
        variants.append(("flashlift_no_data_tiling", None, True))
    for variant, fuse, norms in variants:
        with driver.without_data_tiling() if variant.endswith("_no_data_tiling") else contextlib.nullcontext():
            compiled = flashlift.compile_model(seed_model(dtype), (x,), target=target, fuse_linears=fuse, fuse_norms=norms)
        path = os.path.join(out_dir, f"seed.{variant}.flashlift")
        compiled.save(path, parameters=False)  # the run builds the same weights from the seed
        modules[variant] = os.path.basename(path)
        print(variant, compiled.report, sep="\n", flush=True)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"target": target, "commit": commit(), "dtype": dtype_name, "batch": batch, "seq": seq,
                   "modules": modules}, f, indent=1)


def run(modules_dir: str, out_dir: str) -> None:
    manifest, device = load_manifest(modules_dir)
    dtype = DTYPES[manifest["dtype"]]
    x = seed_input(manifest["batch"], manifest["seq"], dtype, device)
    model = seed_model(dtype, device)
    # every torch peer runs with inference semantics, as flashlift compiles: the module's
    # F.dropout(p, 0.1) keeps training=True as written, so it is patched to the identity
    with torch.no_grad(), dropout_disabled():
        ref = seed_model(dtype).float().to(device)(x.float())
        cands = flashlift_candidates(modules_dir, manifest["modules"], (x,),
                                     parameters=seed_model(dtype).state_dict())
        hand = HandSchedule(model).to(dtype).to(device).eval()
        compiled = torch.compile(model)
        cands["torch_eager"] = (lambda: model(x), None)
        cands["torch_compile"] = (lambda: compiled(x), None)
        cands["hand_schedule"] = (lambda: hand(x), None)
        if device == "cuda":
            graphs = torch.compile(seed_model(dtype, device), mode="reduce-overhead")
            cands["torch_cudagraphs"] = (lambda: (torch.compiler.cudagraph_mark_step_begin(), graphs(x))[1], None)
        row = {"model": "seed Attention", "shape": f"B={manifest['batch']} S={manifest['seq']} hidden={HIDDEN}",
               "dtype": manifest["dtype"], "ms": {}, "err": {}}
        measure(row, cands, ref, device, "seed")
    write_model_table(
        f"Seed module (Slapo tutorial's Attention): {device_name(device)}",
        [f"flashlift commit: {manifest['commit']} (target `{manifest['target']}`); torch {torch.__version__}",
         "median ms of 30 warm calls per peer, interleaved rounds; flashlift: the module loaded with the model's "
         "state dict as its parameters, its default passes (fuse-linears on the CPU, off on GPUs; the LayerNorm kernel "
         "on both); flashlift_qkv_X_norm_Y: fuse-linears (one QKV GEMM) X, the residual add + LayerNorm kernel Y; hand_schedule: the tutorial's "
         "fused QKV + SDPA + torch.compile'd bias/residual/LayerNorm; err vs the module in f32"],
        [row], os.path.join(out_dir, f"seed-{'gpu' if device == 'cuda' else 'cpu'}.md"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["build", "run", "all"])
    p.add_argument("--target", default="cpu")
    p.add_argument("--dtype", default=None)
    p.add_argument("--out", default=None, help="where build writes the modules")
    p.add_argument("--modules", default=None, help="where run reads them")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "results"))
    a = p.parse_args()
    dtype = a.dtype or ("f32" if a.target.startswith("cpu") else "f16")
    modules = a.modules or a.out or os.path.join(ROOT, "build", "bench", "seed-" + a.target.replace(":", "_"))
    if a.mode in ("build", "all"):
        build(a.target, modules, dtype)
    if a.mode in ("run", "all"):
        run(modules, a.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
