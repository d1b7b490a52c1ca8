"""Where one call of a compiled attention spends its time on the GPU, by calling convention.

The same attention is compiled twice for cuda:sm_90: with IREE's synchronous ABI (the call
blocks in IREE's own wait) and with the coarse-fences ABI flashlift uses for CUDA (the
runtime polls the signal semaphore, then blocks: flashlift.runtime._await). Each is called
as users call it, on torch's CUDA tensors, interleaved with torch SDPA on the same inputs:

  sync         IREE's synchronous ABI
  async+block  coarse-fences ABI, blocking wait at once (SPIN_SECONDS = 0)
  async+poll   coarse-fences ABI as shipped (poll for up to SPIN_SECONDS, then block)

Then, for the shipped form, host time per step of one call (perf_counter stamps) and a CUPTI
timeline of one call (torch.profiler): when and on which thread IREE launches the kernel,
and how long after the kernel's end the call returns.

    python bench/call_overhead.py build --out build/bench/overhead             # here
    python bench/call_overhead.py run --modules build/bench/overhead --out $OUT  # GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "python"), os.path.join(ROOT, "bench")]

SHAPES = [(16, 12, 512, 64), (8, 16, 1024, 64), (4, 16, 4096, 64), (2, 16, 4096, 128)]


def name(shape) -> str:
    return "x".join(map(str, shape))


def build(out: str) -> None:
    from attention import HandwrittenAttention

    import flashlift
    from flashlift.compiler import driver
    from flashlift.compiler.targets import parse_target

    target = parse_target("cuda:sm_90")
    os.makedirs(out, exist_ok=True)
    for shape in SHAPES:
        args = tuple(torch.randn(*shape, dtype=torch.float16) for _ in range(3))
        compiled = flashlift.compile_model(HandwrittenAttention(False), args, target=target.name)
        compiled.save(os.path.join(out, f"{name(shape)}.async.flashlift"))
        # the same lowering, compiled with IREE's synchronous ABI
        text = flashlift.import_model(HandwrittenAttention(False), args)
        sync_vmfb = driver.iree_compile(driver.lower(text, target).text, target, async_abi=False)
        type(compiled)(sync_vmfb, compiled.meta).save(os.path.join(out, f"{name(shape)}.sync.flashlift"))
        print(name(shape), "built", flush=True)


def timed(fn, n: int) -> list:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def with_spin(model, seconds: float):
    from flashlift import runtime

    def call(*args):
        saved, runtime.SPIN_SECONDS = runtime.SPIN_SECONDS, seconds
        try:
            return model(*args)
        finally:
            runtime.SPIN_SECONDS = saved
    return call


def steps(model, args, calls: int = 200) -> dict:
    """Median microseconds of each host step of a repeated zero-copy call (the runtime's own
    CompiledModel.timed_call), and the harness's device sync after it."""
    model(*args)
    stamps = []
    for _ in range(calls):
        out, seconds = model.timed_call(*args)
        t0 = time.perf_counter()
        del out
        torch.cuda.synchronize()
        stamps.append(dict(seconds, **{"device sync (harness)": time.perf_counter() - t0}))
    return {label: statistics.median(s.get(label, 0.0) for s in stamps) * 1e6 for label in stamps[0]}


def timeline(model, args, out_dir: str, label: str) -> dict:
    """CUPTI timeline of the third of three calls: microseconds from the call's start to IREE's
    cuLaunchKernel (and whether the calling thread made it), the kernel's length, and from the
    kernel's end to the call's return."""
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(3):
            with record_function(f"call{i}"):
                model(*args)
    path = os.path.join(out_dir, f"timeline_{label}.json")
    prof.export_chrome_trace(path)
    with open(path) as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    call = next(e for e in events if e["name"] == "call2")
    t0, t1 = call["ts"], call["ts"] + call["dur"]
    launch = next(e for e in events if e["name"].startswith("cuLaunchKernel") and t0 <= e["ts"] <= t1)
    kernel = next(e for e in events if e.get("cat") == "kernel" and t0 <= e["ts"] <= t1)
    return {"launch_after_us": launch["ts"] - t0, "launch_thread": "caller" if launch["tid"] == call["tid"] else "IREE worker",
            "kernel_us": kernel["dur"], "return_after_kernel_us": t1 - kernel["ts"] - kernel["dur"]}


def run(modules: str, out_dir: str, rounds: int = 8, calls: int = 5) -> str:
    import flashlift

    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for shape in SHAPES:
        torch.manual_seed(0)
        q, k, v = (torch.randn(*shape, dtype=torch.float16, device="cuda") for _ in range(3))
        ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
        sync = flashlift.load(os.path.join(modules, f"{name(shape)}.sync.flashlift"))
        asyn = flashlift.load(os.path.join(modules, f"{name(shape)}.async.flashlift"))
        cands = {"torch_sdpa": lambda: F.scaled_dot_product_attention(q, k, v), "sync": lambda: sync(q, k, v),
                 "async+block": lambda: with_spin(asyn, 0.0)(q, k, v), "async+poll": lambda: asyn(q, k, v)}
        errs, times = {}, {c: [] for c in cands}
        for c, fn in cands.items():
            out = fn()
            errs[c] = ((out.float() - ref).norm() / ref.norm()).item()
            timed(fn, 3)
        for _ in range(rounds):
            for c, fn in cands.items():
                times[c] += timed(fn, calls)
        row = {"shape": name(shape), "err": errs,
               "ms": {c: statistics.median(t) for c, t in times.items()},
               "p90": {c: sorted(t)[int(0.9 * (len(t) - 1))] for c, t in times.items()},
               "steps_us": steps(asyn, (q, k, v)),
               "timeline": {"sync": timeline(sync, (q, k, v), out_dir, f"{name(shape)}_sync"),
                            "async+poll": timeline(asyn, (q, k, v), out_dir, f"{name(shape)}_async")}}
        rows.append(row)
        print(json.dumps(row), flush=True)
        del sync, asyn
        torch.cuda.empty_cache()
    return write(rows, out_dir)


def write(rows: list, out_dir: str) -> str:
    cands = list(rows[0]["ms"])
    lines = [f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; f16, non-causal; median (p90) ms "
             f"of 40 calls per form, interleaved, each followed by a device sync", "",
             "| shape (B,H,S,D) | " + " | ".join(cands) + " | sync/async+poll | SDPA/async+poll |",
             "|---|" + "---|" * (len(cands) + 2)]
    for r in rows:
        ms = r["ms"]
        lines.append(f"| {r['shape'].replace('x', ',')} | " + " | ".join(f"{ms[c]:.3f} ({r['p90'][c]:.3f})" for c in cands)
                     + f" | {ms['sync'] / ms['async+poll']:.2f} | {ms['torch_sdpa'] / ms['async+poll']:.2f} |")
    steps_labels = list(rows[0]["steps_us"])
    lines += ["", "Host time per step of a repeated call (coarse-fences ABI, median us):", "",
              "| shape | " + " | ".join(steps_labels) + " |", "|---|" + "---|" * len(steps_labels)]
    for r in rows:
        lines.append(f"| {r['shape'].replace('x', ',')} | " + " | ".join(f"{r['steps_us'][s]:.1f}" for s in steps_labels) + " |")
    lines += ["", "CUPTI timeline of one call (torch.profiler; its own overhead inflates host times):", "",
              "| shape | form | launch after call start us | launched by | kernel us | return after kernel end us |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        for form, t in r["timeline"].items():
            lines.append(f"| {r['shape'].replace('x', ',')} | {form} | {t['launch_after_us']:.0f} | {t['launch_thread']} | "
                         f"{t['kernel_us']:.0f} | {t['return_after_kernel_us']:.0f} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "call-overhead.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "call-overhead.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(text)
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["build", "run"])
    p.add_argument("--out", required=True)
    p.add_argument("--modules", default=None)
    a = p.parse_args()
    if a.mode == "build":
        build(a.out)
    else:
        run(a.modules, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
