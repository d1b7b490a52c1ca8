"""The FA kernels side by side on a GPU: triton_fa's pointer kernel, triton_fa_tma's
TMA + warp-specialised kernel (a program per tile, and persistent: a program per SM) and
gluon_fa's kernel (two consumer partitions, or one 8-warp partition; 3 or 2 stages), each exactly as
build_ptx compiles it, against torch SDPA. A kernel that does not cover a case shows "-".

Needs a CUDA GPU with torch and Triton 3.6 (the GPU machine; no IREE):

    PYTHONPATH=$PWD/python:$PWD python3 tools/kernels/compare_kernels.py [--json FILE]
    # under Nsight Compute: each kernel of case 0, f16, launched 3 times, no timing
    ncu --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats \
        python3 tools/kernels/compare_kernels.py --cases 0 --dtypes f16 --ncu

Kernel alone: Triton launches of triton_fa.compile_kernel's CompiledKernel with the tile
build_ptx settles on (global scratch from torch through triton.set_allocator), triton.testing.do_bench medians (L2 flushed), the
two kernels and SDPA timed in turn; rel. error vs SDPA in f32 on the same inputs, output
poisoned with NaN first. Decides which kernel tuned_config should pick for which case.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CASES = [  # B, H, S, D, causal, run-time mask ("" | "kpm": (B, S) key padding | "full": (B, S, S) f32)
    (2, 16, 4096, 128, False, ""), (2, 16, 4096, 128, True, ""), (1, 32, 8192, 128, False, ""),
    (1, 32, 8192, 128, True, ""), (8, 16, 1024, 128, False, ""), (4, 16, 4096, 64, False, ""),
    (4, 16, 4096, 64, True, ""),
    # LLaMA-7B-like attention with the causal + padding mask built from the inputs, BERT-like padding
    (4, 32, 1024, 128, False, "full"), (2, 32, 2048, 128, False, "full"), (8, 16, 1024, 128, False, "kpm"),
    # head dim 64: bench/attention.py's short shapes, BERT-base's padding, LLaMA-style D=64 masks
    (16, 12, 512, 64, False, ""), (8, 16, 1024, 64, False, ""), (8, 12, 512, 64, False, "kpm"),
    (4, 16, 1024, 64, False, "full")]


# The kernels compared: build_ptx's config for each (its tile and flags fill in the rest).
KINDS = {"pointer": {"TMA": False, "GLUON": False}, "tma": {"TMA": True, "GLUON": False},
         "tma_persistent": {"TMA": True, "PERSISTENT": True, "GLUON": False},
         "gluon": {"GLUON": True}, "gluon_1p": {"GLUON": True, "CONSUMERS": 1},
         "gluon_s2": {"GLUON": True, "num_stages": 2}, "gluon_n64": {"GLUON": True, "BLOCK_N": 64},
         "gluon_np": {"GLUON": True, "PERSISTENT": False}}


def make_mask(kind: str, b: int, s: int, device: str):
    """(the kernel's mask, SDPA's attn_mask in f32): LLaMA's causal + left padding of 64 * i
    keys for batch entry i (finfo.min where hidden), or a (B, S) key-padding mask (-inf)."""
    import torch

    if kind == "full":
        i, j = torch.arange(s, device=device)[:, None], torch.arange(s, device=device)[None, :]
        hidden = (j > i).expand(b, s, s).clone()
        for n in range(b):
            hidden[n, :, : 64 * n] = True
            hidden[n][hidden[n].all(-1)] = False
        mask = torch.where(hidden, torch.finfo(torch.float32).min, 0.0)
        return mask, mask[:, None]
    kpm = torch.zeros(b, s, device=device)
    for n in range(b):
        kpm[n, s - 32 * (n + 1):] = float("-inf")
    return kpm, kpm[:, None, None, :]


def main() -> int:
    import torch
    import torch.nn.functional as F
    import triton

    import flashlift

    flashlift.__path__.append(ROOT)  # flashlift.compiler without the editable install
    from flashlift.compiler.kernels import triton_fa

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=None)
    p.add_argument("--cases", default=None, help="comma list of indices into CASES (default: all)")
    p.add_argument("--dtypes", default="f16,bf16")
    p.add_argument("--ncu", action="store_true", help="launch each kernel 3 times, untimed (for a profiler)")
    p.add_argument("--kinds", default="pointer,tma,tma_persistent,gluon",
                   help=f"comma list of {', '.join(KINDS)}")
    args = p.parse_args()
    cases = [CASES[int(i)] for i in args.cases.split(",")] if args.cases else CASES
    dtypes = [{"f16": torch.float16, "bf16": torch.bfloat16}[d] for d in args.dtypes.split(",")]
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
    def bench(fn):
        if args.ncu:
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
            return float("nan")
        return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")

    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {triton.__version__}")
    kinds = [(k, KINDS[k]) for k in args.kinds.split(",")]
    print("| shape (B,H,S,D) | dtype | causal | mask | SDPA us | "
          + " | ".join(f"{k} us (x SDPA)" for k, _ in kinds) + " | rel. errors | tiles |")
    print("|---|---|---|---|---|" + "---|" * len(kinds) + "---|---|")
    rows = []
    for b, h, s, d, causal, mask_kind in cases:
        for dt in dtypes:
            torch.manual_seed(0)
            q, k, v = (torch.randn(b, h, s, d, dtype=dt, device="cuda") for _ in range(3))
            mask, attn_mask = make_mask(mask_kind, b, s, "cuda") if mask_kind else (None, None)
            ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask,
                                                 is_causal=causal)
            sdpa_mask = attn_mask.to(dt) if mask_kind else None
            sdpa = bench(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask, is_causal=causal))
            row = dict(shape=[b, h, s, d], dtype=str(dt)[6:], causal=causal, mask=mask_kind, sdpa_us=sdpa * 1e3)
            cells, errs, tiles = [], [], []
            for kind, config in kinds:
                build = dict(batch=b, heads=h, kv_heads=h, sq=s, skv=s, head_dim=d, causal=causal,
                             dtype="bf16" if dt == torch.bfloat16 else "f16", arch=90,
                             key_padding_mask_dtype="f32" if mask_kind == "kpm" else None,
                             mask_dtype="f32" if mask_kind == "full" else None)
                kb = triton_fa.build_ptx(**build, config=config)
                cfg = kb.config
                if any(cfg.get(f) != want for f, want in config.items() if f in ("TMA", "GLUON")):
                    cells.append("-")   # this kernel does not cover the case (build_ptx fell back)
                    continue
                ck, _, consts = triton_fa.compile_kernel(
                    **build, config={**config, **{x: cfg[x] for x in ("BLOCK_M", "BLOCK_N", "num_warps", "num_stages")}})
                row[f"{kind}_tile"] = f"m{cfg['BLOCK_M']}n{cfg['BLOCK_N']}w{cfg['num_warps']}s{cfg['num_stages']}"
                o = torch.full_like(q, float("nan"))
                operands = (q, k, v, mask, o)
                launch = ck[kb.grid]
                fn = lambda: launch(*operands, *consts.values())  # noqa: E731
                fn()
                torch.cuda.synchronize()
                err = ((o.float() - ref).norm() / ref.norm()).item()
                row[f"{kind}_us"], row[f"{kind}_err"] = bench(fn) * 1e3, err
                cells.append(f"{row[f'{kind}_us']:.0f} ({row['sdpa_us'] / row[f'{kind}_us']:.2f})")
                errs.append(f"{kind} {err:.1e}")
                tiles.append(f"{kind} {row[f'{kind}_tile']}")
            rows.append(row)
            print(f"| {b},{h},{s},{d} | {row['dtype']} | {'yes' if causal else 'no'} | {mask_kind or '-'} | "
                  f"{row['sdpa_us']:.0f} | " + " | ".join(cells) + f" | {', '.join(errs)} | {', '.join(tiles)} |",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
