"""What a CPU attention call costs beyond its kernel, and what reading the inputs in place saves.

For each CPU shape of bench/attention.py (hand-written attention, one thread for IREE's task
system and for torch), in one process, interleaved rounds:

  kernel      the CPU kernel alone: its entry point over the workgroup grid from C
              (tools/kernels/cpu_fa_bench.py's driver), the build the module's site took
  call        the compiled module called as users call it (CPU tensors read in place)
  call_copy   the same call with each input copied into an IREE buffer first (the runtime
              before 4953c1e; forced by switching the in-place path off)

and the call's time beyond the kernel. Modules are compiled here for `--target` (default
`cpu`); run where that target runs.

    .venv/bin/python bench/cpu_call.py [--dtypes f32,bf16] [--out bench/results/cpu-call.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "python"), os.path.join(ROOT, "bench"), os.path.join(ROOT, "tools", "kernels")]

from attention import CPU_SHAPES, DTYPES, HandwrittenAttention, commit, device_name  # noqa: E402


def timed(fn, calls: int) -> list:
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="cpu")
    p.add_argument("--dtypes", default="f32,bf16")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--out", default="")
    args = p.parse_args()
    import iree.runtime

    import cpu_fa_bench
    import flashlift

    torch.set_num_threads(1)
    iree.runtime.flags.parse_flags("--task_topology_group_count=1")
    rows = []
    for b, h, s, d in CPU_SHAPES:
        for name in args.dtypes.split(","):
            torch.manual_seed(0)
            q, k, v = (torch.randn(b, h, s, d, dtype=DTYPES[name]) for _ in range(3))
            model = flashlift.compile_model(HandwrittenAttention(False), (q, k, v), target=args.target)
            site = model.report.raised[0]
            isa = site.path.removeprefix("flashlift-cpu ")
            lib = cpu_fa_bench.shared_library(isa)
            _, kernel = cpu_fa_bench.call(lib, isa, q, k, v, False, 1 / d ** 0.5)
            copy_model = flashlift.CompiledModel(model.vmfb, model.meta)
            copy_model._zero_copy = lambda _args: False   # every input copied into an IREE buffer
            cands = {"kernel": kernel, "call": lambda: model(q, k, v), "call_copy": lambda: copy_model(q, k, v)}
            times = {c: [] for c in cands}
            for fn in cands.values():
                timed(fn, 3)
            for _ in range(args.rounds):
                for c, fn in cands.items():
                    times[c] += timed(fn, 5)
            ms = {c: statistics.median(t) for c, t in times.items()}
            rows.append((f"{b},{h},{s},{d}", name, isa, ms))
            print(rows[-1], flush=True)
    lines = [f"# A CPU attention call beyond its kernel: {device_name('cpu')}, 1 thread", "",
             f"- commit {commit()}, target `{args.target}`; `bench/cpu_call.py`; median ms of {args.rounds * 5} "
             "calls each, interleaved rounds; hand-written non-causal attention",
             "- kernel: the site's CPU kernel build alone over its grid (C driver); call: the public call, inputs "
             "read in place; call_copy: the same call with each input copied into an IREE buffer first", "",
             "| shape (B,H,S,D) | dtype | build | kernel ms | call ms | call_copy ms | call - kernel | call_copy - kernel |",
             "|---|---|---|---|---|---|---|---|"]
    for shape, name, isa, ms in rows:
        lines.append(f"| {shape} | {name} | {isa} | {ms['kernel']:.3f} | {ms['call']:.3f} | {ms['call_copy']:.3f} | "
                     f"{(ms['call'] - ms['kernel']) * 1e3:.0f} us | {(ms['call_copy'] - ms['kernel']) * 1e3:.0f} us |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
