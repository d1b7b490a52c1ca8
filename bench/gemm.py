"""flashlift's GEMM kernel (compiler/kernels/triton_gemm.py) against cuBLAS on the linear
layers of bench/models.py's stacks, every candidate tile config, same run, same inputs.

Runs on the GPU machine (torch + triton; no IREE needed): each config is compiled exactly as
flashlift builds it for IREE (triton.compile, every shape constexpr) and launched directly;
cuBLAS is torch's F.linear on the same tensors. Time: triton.testing.do_bench (CUDA events,
L2 flushed, median). Every output is checked against an f32 reference. Prints, per shape, the
best config and its speed relative to cuBLAS, and per shape class the config with the least
total time (what TUNED_CONFIGS should hold); writes the table and all timings to --out.

    python bench/gemm.py --out $OUT/gemm-h200.md
    python bench/gemm.py --record-from bench/results/gemm-h200.json   # here: each shape's winner
                                                                      # into compiler/tuning_db.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
from attention import commit  # noqa: E402  (bench/ is the script's directory)

# (model, layer, M, N, K, bias[, epilogue]): bench/models.py's BERT (B=8, S=512) and LLaMA
# (B=4, S=1024). The SwiGLU row is the up projection with silu(gate) * up in its epilogue, the
# GELU row BERT's up projection with GELU in its; their cuBLAS column is F.linear then torch's
# activation (what runs without the epilogue). Rows with an epilogue are not in the class
# totals; --record-from records them under the epilogue's own tuning key.
SHAPES = [
    ("bert", "q/k/v/o proj", 4096, 768, 768, True),
    ("bert", "ffn up", 4096, 3072, 768, True),
    ("bert", "ffn down", 4096, 768, 3072, True),
    ("llama", "q/o proj", 4096, 1024, 1024, False),
    ("llama", "k/v proj", 4096, 256, 1024, False),
    ("llama", "gate/up", 4096, 2816, 1024, False),
    ("llama", "down", 4096, 1024, 2816, False),
    ("llama", "up + SwiGLU epilogue", 4096, 2816, 1024, False, "swiglu"),
    ("bert", "ffn up + GELU epilogue", 4096, 3072, 768, True, "gelu"),
    # what the models run by default on CUDA (fuse-linears{reads=attention}: Q, K, V one GEMM)
    # and bench/models.py's llama_d128 (hidden 2048, 4 KV heads, SwiGLU 5632)
    ("bert", "q+k+v fused", 4096, 2304, 768, True),
    ("llama", "q+k+v fused", 4096, 1536, 1024, False),
    ("llama_d128", "q+k+v fused", 4096, 3072, 2048, False),
    ("llama_d128", "o proj", 4096, 2048, 2048, False),
    ("llama_d128", "gate/up", 4096, 5632, 2048, False),
    ("llama_d128", "down", 4096, 2048, 5632, False),
]


def _tma(cfg: dict) -> str:
    """The TMA (or Gluon) kernel's options of a config, as the table shows them."""
    if cfg.get("GLUON"):
        return ", Gluon" + ", ping-pong" * bool(cfg.get("PINGPONG")) + (f", {cfg['CONSUMERS']} consumers" if "CONSUMERS" in cfg else "")
    if not cfg.get("TMA"):
        return ""
    return ", TMA" + ", flat" * cfg["FLATTEN"] + ", ws" * cfg["WARP_SPECIALIZE"]


def _source_checkout() -> None:
    """flashlift.compiler importable on a source checkout without `pip install` (the GPU
    machine): compiler/ is flashlift.compiler."""
    import flashlift

    if not os.path.isdir(os.path.join(os.path.dirname(flashlift.__file__), "compiler")):
        flashlift.__path__.append(ROOT)


def record_from(path: str) -> int:
    """Each shape's fastest correct config of a run's .json into the tuning database
    (tuning.gemm_key: the kernel takes it for that shape, before the per-class table); a row
    with an epilogue under the epilogue's own key."""
    _source_checkout()
    from flashlift.compiler import tuning

    with open(path) as f:
        run = json.load(f)
    best = {}
    for r in run["runs"]:
        key = tuning.gemm_key(r["m"], r["n"], r["k"], run["dtype"], run["arch"], r.get("epilogue", ""))
        if r["err"] < 1e-2 and (key not in best or r["ms"] < best[key]["ms"]):
            best[key] = r
    for key, r in sorted(best.items()):
        tuning.record(key, {k: v for k, v in r["config"].items() if k in tuning.GEMM_KNOBS},
                      {"device": run["device"], "us": round(r["ms"] * 1e3, 2), "cublas_us": round(r["cublas_ms"] * 1e3, 2),
                       "rel_err": r["err"], "layer": f"{r['model']} {r['layer']}", "source": os.path.basename(path),
                       **({"date": run["date"]} if "date" in run else {})})
        print(f"{key}: {r['config']} ({r['ms'] * 1e3:.1f} us, cuBLAS {r['cublas_ms'] * 1e3:.1f})")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtype", default="f16", choices=["f16", "bf16"])
    p.add_argument("--out", help="markdown results file (a .json with every timing goes next to it)")
    p.add_argument("--gluon", action="store_true",
                   help="time gluon_gemm's configs against each shape's tuned configs (not every candidate)")
    p.add_argument("--gluon-candidates", default="",
                   help="with --gluon: comma list of GLUON_CANDIDATES indexes to time (default: all)")
    p.add_argument("--record-from", help="a run's .json: record each shape's winner in the tuning database")
    a = p.parse_args()
    if a.record_from:
        return record_from(a.record_from)

    import torch
    import torch.nn.functional as F
    import triton

    _source_checkout()
    from flashlift.compiler.kernel_build import PTX_VERSION
    from flashlift.compiler.kernels import triton_gemm as g

    dtype = {"f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    # the TMA kernel's global scratch (its tensor maps), which IREE binds as a module global
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
    arch = torch.cuda.get_device_capability()[0] * 10
    device_name = torch.cuda.get_device_name()
    rows, raw = [], []
    for model, layer, m, n, k, bias, *epilogue in SHAPES:
        swiglu, gelu = epilogue == ["swiglu"], epilogue == ["gelu"]
        spec = g.GemmSpec(m, n, k, a.dtype, a.dtype, a.dtype if bias else None, True, gelu=gelu, swiglu=swiglu)
        torch.manual_seed(0)
        x = torch.randn(m, k, device="cuda", dtype=dtype)
        w = torch.randn(n, k, device="cuda", dtype=dtype) / k ** 0.5
        b = torch.randn(n, device="cuda", dtype=dtype) if bias else None
        gate = torch.randn(m, n, device="cuda", dtype=dtype) * 2 if swiglu else None
        ref = F.linear(x.float(), w.float(), b.float() if bias else None)
        if swiglu:  # as torch rounds it in f16/bf16: silu(gate) rounded, the product rounded
            ref = (F.silu(gate.float()).to(dtype) * ref.to(dtype)).float()
        if gelu:  # GELU (erf) of the rounded result
            ref = F.gelu(ref.to(dtype).float())

        def torch_path():
            y = F.linear(x, w, b)
            return F.silu(gate) * y if swiglu else F.gelu(y) if gelu else y

        flops = 2 * m * n * k
        cublas_ms = triton.testing.do_bench(torch_path)
        cublas_err = ((torch_path().float() - ref).norm() / ref.norm()).item()
        results = []
        if a.gluon:   # the configs flashlift builds the shape with today, and gluon_gemm's
            from flashlift.compiler.kernels import gluon_gemm
            picked = [g.GLUON_CANDIDATES[int(i)] for i in a.gluon_candidates.split(",")] if a.gluon_candidates \
                else g.GLUON_CANDIDATES
            candidates = g.tuned_configs(spec, arch)
            candidates += [c for c in picked if c not in candidates and not gluon_gemm.covers(spec, arch)]
        else:
            candidates = g.CANDIDATES + [c for c in g.TMA_CANDIDATES if not g.tma_covers(spec, arch)]
        for cfg in candidates:
            c = torch.full((m, n), float("nan"), device="cuda", dtype=dtype)
            try:
                ck, full = g.compile_gemm(spec, arch, cfg, PTX_VERSION)   # as kernel_build builds it
                runner = ck[g.grid(spec, full)]
                args = g.launch_args(spec, arch, full, x, w, b, gate, c)
                fn = lambda: runner(*args)  # noqa: E731
                fn()
                torch.cuda.synchronize()
                err = ((c.float() - ref).norm() / ref.norm()).item()
                if not err < 1e-2:  # NaN included: a wrong config is never a winner
                    raise RuntimeError(f"wrong result: relative error {err:.1e}")
                ms = triton.testing.do_bench(fn)
            except Exception as e:  # noqa: BLE001 (e.g. out of shared memory)
                print(f"{layer} {cfg}: {str(e).splitlines()[0][:160]}", flush=True)
                continue
            results.append({"config": cfg, "ms": ms, "err": err})
            raw.append({"model": model, "layer": layer, "m": m, "n": n, "k": k, "class": g.shape_class(spec),
                        "epilogue": spec.epilogue,
                        "config": cfg, "ms": ms, "err": err, "cublas_ms": cublas_ms})
        best = min(results, key=lambda r: r["ms"])
        rows.append((model, layer, m, n, k, bias, g.shape_class(spec), best, cublas_ms, cublas_err, flops))
        kinds = {"pointer": lambda c: not c.get("TMA") and not c.get("GLUON"), "TMA": lambda c: c.get("TMA"),
                 "Gluon": lambda c: c.get("GLUON")}
        by_kernel = {kind: min((r["ms"] for r in results if is_kind(r["config"])), default=float("nan"))
                     for kind, is_kind in kinds.items()}
        print(f"{model} {layer} {m}x{n}x{k}: best {best['ms'] * 1e3:.1f} us {best['config']} "
              f"(err {best['err']:.1e}); cuBLAS {cublas_ms * 1e3:.1f} us; ratio {cublas_ms / best['ms']:.2f}; "
              + ", ".join(f"best {kind} {t * 1e3:.1f} us" for kind, t in by_kernel.items()), flush=True)

    lines = [f"# flashlift GEMM kernel vs cuBLAS: {device_name}", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; commit {commit()}; {a.dtype}; "
             f"torch {torch.__version__}, triton {triton.__version__}, kernels for sm_{arch}",
             "- time: triton.testing.do_bench median (CUDA events, L2 flushed); err = ||out - ref|| / ||ref|| vs f32",
             "- ratio: cuBLAS time / kernel time (> 1: the kernel is faster); an epilogue row's peer is cuBLAS + torch's activation", "",
             "| model | layer | M x N x K | bias | class | best config (BMxBNxBK, warps, stages) | kernel us (TFLOP/s) | cuBLAS us (TFLOP/s) | ratio | err (cuBLAS err) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, layer, m, n, k, bias, cls, best, cub, cub_err, flops in rows:
        c = best["config"]
        lines.append(f"| {model} | {layer} | {m}x{n}x{k} | {'yes' if bias else 'no'} | {cls} | "
                     f"{c['BLOCK_M']}x{c['BLOCK_N']}x{c['BLOCK_K']}, {c['num_warps']}, {c['num_stages']}{_tma(c)} | "
                     f"{best['ms'] * 1e3:.1f} ({flops / best['ms'] / 1e9:.0f}) | {cub * 1e3:.1f} ({flops / cub / 1e9:.0f}) | "
                     f"{cub / best['ms']:.2f} | {best['err']:.1e} ({cub_err:.1e}) |")
    lines += ["", "Per shape class, the config with the least total time over the class's shapes:", ""]
    for cls in sorted({r[6] for r in rows}):
        totals = {}
        plain = [r for r in raw if r["class"] == cls and not r["epilogue"]]
        for r in plain:
            key = json.dumps(r["config"], sort_keys=True)
            totals.setdefault(key, []).append(r["ms"])
        n_shapes = len({(r["m"], r["n"], r["k"]) for r in plain})
        complete = {key: sum(v) for key, v in totals.items() if len(v) == n_shapes}
        best_key = min(complete, key=complete.get)
        lines.append(f"- {cls}: {best_key} (total {complete[best_key] * 1e3:.1f} us over {n_shapes} shapes)")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
        with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
            json.dump({"device": device_name, "dtype": a.dtype, "arch": arch, "commit": commit(),
                       "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}", "runs": raw}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
