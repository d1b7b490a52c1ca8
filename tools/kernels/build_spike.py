"""Build the NVIDIA fast-path spike: Triton FA kernels -> IREE .vmfb files.

Runs on the CPU-only build machine (needs triton + iree-compile, no GPU):

    .venv/bin/python tools/kernels/build_spike.py build/gpu_spike

For every shape config and arch (sm_80, sm_90) it builds
  * <id>_sm<arch>_<tile>_ptx.vmfb   -- PTX object, JIT-compiled by the driver
                                       when IREE loads the executable
  * <id>_sm<arch>_<tile>_cubin.vmfb -- the same kernel as a cubin (default
                                       tile only), loaded as-is
with <tile> = "t0" (default tile config) and "t1" (an alternative tile config;
there is no GPU here to autotune, run_on_gpu.py times both).
Every vmfb is compiled with
    iree-compile --iree-hal-target-backends=cuda --iree-cuda-target=sm_80
and exports `attn(q, k, v) -> o`. manifest.json describes them for
run_on_gpu.py; the .mlir, .ptx and .cubin sources are kept next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import flashlift  # noqa: E402

flashlift.__path__.append(ROOT)  # flashlift.compiler from this checkout without the editable install
from flashlift.compiler.kernels import fa_configs, iree_dispatch, triton_fa  # noqa: E402

# id, batch, heads, kv_heads, sq, skv, head_dim, dtype, causal
CONFIGS = [
    ("b4_h16_s4096_d64_f16", 4, 16, 16, 4096, 4096, 64, "f16", False),
    ("b2_h16_s4096_d128_f16_causal", 2, 16, 16, 4096, 4096, 128, "f16", "top_left"),
    ("b1_h4_sq500_skv1000_d64_bf16_causal_br", 1, 4, 4, 500, 1000, 64, "bf16", "bottom_right"),
    ("b8_h16_s1024_d64_f16", 8, 16, 16, 1024, 1024, 64, "f16", False),
    # extra: grouped-query attention (32 q heads over 8 kv heads), ragged length
    ("b2_h32_kv8_s2000_d128_f16_causal_gqa", 2, 32, 8, 2000, 2000, 128, "f16", "top_left"),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--archs", default="80,90")
    ap.add_argument("--ptx-version", type=int, default=84,
                    help="PTX ISA version to emit (84 = `.version 8.4`, JIT-able by "
                         "CUDA 12.4+ drivers; 0 = Triton's default, 8.7 for ptxas 12.8)")
    ap.add_argument("--only", default=None, help="comma list of config ids")
    ap.add_argument("--no-alt-tiles", action="store_true")
    args = ap.parse_args(argv)

    out = os.path.abspath(args.out_dir)
    os.makedirs(out, exist_ok=True)
    archs = [int(a) for a in args.archs.split(",")]
    only = set(args.only.split(",")) if args.only else None
    entries = []
    t_start = time.time()
    for (cid, b, h, kvh, sq, skv, d, dt, causal) in CONFIGS:
        if only and cid not in only:
            continue
        for arch in archs:
            cands = fa_configs.CANDIDATE_CONFIGS[(arch, 64 if d <= 64 else 128)]
            if args.no_alt_tiles:
                cands = cands[:1]
            for ti, tile in enumerate(cands):
                t0 = time.time()
                kb = triton_fa.build_ptx(
                    batch=b, heads=h, kv_heads=kvh, sq=sq, skv=skv, head_dim=d,
                    dtype=dt, causal=causal, arch=arch, config=tile,
                    ptx_version=args.ptx_version or None)
                base = f"{cid}_sm{arch}_t{ti}"
                with open(os.path.join(out, base + ".ptx"), "w") as f:
                    f.write(kb.ptx)
                with open(os.path.join(out, base + ".cubin"), "wb") as f:
                    f.write(kb.cubin)
                kinds = ["ptx", "cubin"] if ti == 0 else ["ptx"]
                for kind in kinds:
                    name = f"{base}_{kind}"
                    text = iree_dispatch.module_text(kb, object_kind=kind)
                    with open(os.path.join(out, name + ".mlir"), "w") as f:
                        f.write(text)
                    vmfb = os.path.join(out, name + ".vmfb")
                    iree_dispatch.iree_compile(text, vmfb, cuda_target="sm_80")
                    c = kb.config
                    entries.append(dict(
                        id=name, config_id=cid, vmfb=name + ".vmfb", function="attn",
                        arch=arch, ptx_target=kb.ptx_target, ptx_version=kb.ptx_version,
                        object=kind, tile=dict(tile), tile_index=ti,
                        batch=b, heads=h, kv_heads=kvh, sq=sq, skv=skv, head_dim=d,
                        dtype={"fp16": "float16", "bf16": "bfloat16"}[c["dtype"]],
                        causal=bool(c["causal"]), bottom_right=bool(c["bottom_right"]),
                        scale=c["scale"], kernel=kb.name, grid=list(kb.grid),
                        block=list(kb.block), shared_mem_bytes=kb.shared_mem_bytes,
                        regs=kb.n_regs, spill_bytes=kb.n_spills,
                        params=[p.name for p in kb.params],
                        vmfb_bytes=os.path.getsize(vmfb)))
                    print(f"{name:58s} {os.path.getsize(vmfb):>8d} B  grid={kb.grid} "
                          f"block={kb.block[0]} smem={kb.shared_mem_bytes} regs={kb.n_regs} "
                          f"spill={kb.n_spills}  ({time.time() - t0:.1f}s)", flush=True)
    manifest = dict(
        format="flashlift-gpu-spike/1",
        iree_compile_flags=["--iree-hal-target-backends=cuda", "--iree-cuda-target=sm_80"],
        abi=dict(params=["q", "k", "v", "o", "global_scratch(dummy)", "profile_scratch(dummy)"],
                 layout="(B,H,S,D) contiguous; kv head = q head // (H/KVH)",
                 grid="(ceil(Sq/BLOCK_M), B*H, 1)", block="(num_warps*32,1,1)"),
        entries=entries)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = sum(e["vmfb_bytes"] for e in entries)
    print(f"{len(entries)} vmfb, {total / 1e6:.2f} MB total, {time.time() - t_start:.0f}s -> {out}/manifest.json")


if __name__ == "__main__":
    main()
