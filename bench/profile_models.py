"""Per-dispatch GPU profile of the end-to-end stacks (bench/models.py modules).

Runs every module of a models.py build (and torch eager / torch.compile on the same inputs)
for a few warm calls under torch.profiler, whose CUPTI tracing records every kernel of the
process (the IREE runtime's dispatches and flashlift's Triton kernel as well as torch's),
then prints per model, side by side for each candidate: the GPU time per call of every
kernel, the kernel sum, the GPU span (first kernel start to last kernel end) and the wall
time of a call (the span minus the sum is GPU idle time inside a call).

    # GPU machine (torch + the IREE runtime wheel):
    python bench/profile_models.py run --modules build/bench/models-cuda_sm_90 --trace $OUT/trace.json
    python bench/profile_models.py report --trace $OUT/trace.json > $OUT/profile.md
"""

from __future__ import annotations

import argparse
import collections
import os
import json
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "bench"))


def run(modules_dir: str, iters: int, peers: list, models: list, trace: str, plain: bool = False) -> None:
    """Runs each candidate `iters` times under torch.profiler (CUPTI records every kernel of
    the process, the IREE runtime's launches too) and writes the chrome trace to `trace`."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from attention import DTYPES, flashlift_candidates, load_manifest
    from models import inputs_for, torch_peers, user_model

    from flashlift.reference import dropout_disabled

    manifest, device = load_manifest(modules_dir)
    work = [] if "models" in manifest else _seed_work(modules_dir, manifest, device)
    for e in manifest.get("models", []):
        if models and e["name"] not in models:
            continue
        dtype = DTYPES[e["dtype"]]
        hidden, mask = inputs_for(e["name"], e["batch"], e["seq"], dtype, device)
        weights = user_model(e["name"], e["layers"], dtype).state_dict()
        cands = {k: fn for k, (fn, _) in flashlift_candidates(modules_dir, e["modules"], (hidden, mask),
                                                              parameters=weights).items()}
        with torch.no_grad():
            cands.update({k: fn for k, (fn, _) in torch_peers(e["name"], e["layers"], dtype, device, hidden, mask,
                                                              peers).items()})
        for name, fn in cands.items():
            with torch.no_grad():
                for _ in range(3):
                    fn()
            torch.cuda.synchronize()
            work.append((e["name"], name, fn))
    import contextlib

    profiler = contextlib.nullcontext() if plain else profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    with torch.no_grad(), dropout_disabled(), profiler as prof:  # the seed's F.dropout(training=True) too
        for model, name, fn in work:
            walls = []
            for _ in range(iters):
                with record_function(f"call|{model}|{name}"):
                    t0 = time.perf_counter()
                    fn()
                    torch.cuda.synchronize()
                    walls.append((time.perf_counter() - t0) * 1e3)
            walls.sort()
            print(f"{model} {name}: wall median {walls[len(walls) // 2]:.3f} ms (profiled)", flush=True)
    if not plain:
        prof.export_chrome_trace(trace)


def _seed_work(modules_dir: str, manifest: dict, device) -> list:
    """A bench/seed.py build's candidates (flashlift's modules, torch eager and compiled), warmed."""
    import torch

    from attention import DTYPES, flashlift_candidates
    from seed import seed_input, seed_model

    from flashlift.reference import dropout_disabled

    dtype = DTYPES[manifest["dtype"]]
    x = seed_input(manifest["batch"], manifest["seq"], dtype, device)
    model = seed_model(dtype, device)
    cands = {k: fn for k, (fn, _) in flashlift_candidates(modules_dir, manifest["modules"], (x,),
                                                          parameters=seed_model(dtype).state_dict()).items()}
    graphs = torch.compile(seed_model(dtype, device), mode="reduce-overhead")
    cands.update(torch_eager=lambda: model(x), torch_cudagraphs=lambda: (torch.compiler.cudagraph_mark_step_begin(), graphs(x))[1])
    work = []
    with torch.no_grad(), dropout_disabled():
        for name, fn in cands.items():
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
            work.append(("seed", name, fn))
    return work


def _short(name: str) -> str:
    """A kernel name short enough for a table (IREE's dispatch names lose their prefix)."""
    m = re.match(r"main\$async_dispatch_\d+_(.*)", name) or re.match(r"main_dispatch_\d+_(.*)", name)
    if m:
        return "iree:" + m.group(1)
    return name if len(name) <= 60 else name[:57] + "..."


def report(trace: str) -> str:
    with open(trace) as f:
        events = json.load(f)["traceEvents"]
    calls = [(e["ts"], e["ts"] + e["dur"], e["name"]) for e in events
             if e.get("ph") == "X" and str(e.get("name", "")).startswith("call|")]
    kernels = sorted((e["ts"], e["ts"] + e["dur"], e["name"]) for e in events
                     if e.get("ph") == "X" and e.get("cat") == "kernel")
    by_model: dict = collections.OrderedDict()
    grouped: dict = collections.OrderedDict()
    for a, b, label in sorted(calls):
        _, model, cand = label.split("|", 2)
        grouped.setdefault((model, cand), []).append((a, b))
    for (model, cand), cs in grouped.items():
        per: dict = collections.OrderedDict()
        count: collections.Counter = collections.Counter()
        spans, sums = [], []
        for a, b in cs:
            ks = [k for k in kernels if k[0] >= a and k[1] <= b]
            if ks:
                spans.append(ks[-1][1] - ks[0][0])
                sums.append(sum(k[1] - k[0] for k in ks))
            for k in ks:
                n = _short(k[2])
                per[n] = per.get(n, 0.0) + (k[1] - k[0])
                count[n] += 1
        n = len(cs)
        med = lambda xs: sorted(xs)[len(xs) // 2] if xs else 0.0
        by_model.setdefault(model, collections.OrderedDict())[cand] = {
            "per": {k: v / n for k, v in per.items()}, "count": {k: v / n for k, v in count.items()},
            "sum": med(sums), "span": med(spans), "wall": med([b - a for a, b in cs])}
    out = []
    for model, cands in by_model.items():
        names = list(cands)
        out += [f"## {model}", "", "| per call (us, median) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for key, what in (("wall", "wall (profiled)"), ("span", "GPU span, first kernel start to last end"),
                          ("sum", "sum of kernel times")):
            out.append(f"| {what} | " + " | ".join(f"{cands[c][key]:.0f}" for c in names) + " |")
        out += ["", "| kernel: us per call (launches per call) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        kern: list = []
        for c in names:
            kern += [k for k in cands[c]["per"] if k not in kern]
        kern.sort(key=lambda k: -max(cands[c]["per"].get(k, 0) for c in names))
        for k in kern:
            cells = [f"{cands[c]['per'][k]:.1f} ({cands[c]['count'][k]:g})" if k in cands[c]["per"] else ""
                     for c in names]
            out.append(f"| `{k}` | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["run", "report"])
    p.add_argument("--trace", default="trace.json", help="run: where to write the chrome trace; report: what to read")
    p.add_argument("--modules", default=os.path.join(ROOT, "build", "bench", "models-cuda_sm_90"))
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--peers", default="eager,compile,cudagraphs", help="torch peers, as bench/models.py names them")
    p.add_argument("--models", default="", help="comma list (default: every model in the manifest)")
    p.add_argument("--plain", action="store_true", help="run: no profiler (e.g. under ncu)")
    p.add_argument("--iree-flags", default="", help="IREE runtime flags, e.g. --cuda_use_streams=true")
    a = p.parse_args()
    if a.mode == "run":
        if a.iree_flags:
            import iree.runtime as rt

            rt.flags.parse_flags(*a.iree_flags.split())
        run(a.modules, a.iters, [x for x in a.peers.split(",") if x], [x for x in a.models.split(",") if x], a.trace,
            a.plain)
    else:
        print(report(a.trace))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
