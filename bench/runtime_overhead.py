"""Per-call cost of an IREE invocation under different runtime device settings.

A compiled attention's call takes longer than its one kernel (bench/results/kernel-profile-h200.md),
and the gap grows with the output's size. This script times the same saved modules with each
runtime setting in a fresh process (driver flags are process-wide), so the settings can be
compared in one run:

  default          the runtime's defaults (stream-ordered pool allocations)
  caching          the device's allocator wrapped in IREE's caching allocator
  sync             --cuda_async_allocations=false (results from the device allocator)
  sync+caching     both
  ...+inline       --cuda_allow_inline_execution=true (command buffers run inline on the stream)
  ...+graphs       --cuda_use_streams=false (command buffers recorded as CUDA graphs)

    python bench/runtime_overhead.py --modules build/bench/cuda_sm_90 --select 4x16x4096x64_f16 ... --out $OUT/overhead.md
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

SETTINGS = {
    "default": ([], None),
    "caching": ([], ["caching"]),
    "sync": (["--cuda_async_allocations=false"], None),
    "sync+caching": (["--cuda_async_allocations=false"], ["caching"]),
    "sync+caching+inline": (["--cuda_async_allocations=false", "--cuda_allow_inline_execution=true"], ["caching"]),
    "sync+caching+graphs": (["--cuda_async_allocations=false", "--cuda_use_streams=false"], ["caching"]),
}
# "<setting>+torch": the same with torch's CUDA context live in the process and a
# torch.cuda.synchronize() after each call (as bench/attention.py times it)


def time_module(path: str, setting: str, calls: int) -> dict:
    """Median and min ms per synchronous call of the module at `path` under `setting`."""
    import iree.runtime as rt
    import numpy as np

    import flashlift

    with_torch = setting.endswith("+torch")
    flags, allocators = SETTINGS[setting.removesuffix("+torch")]
    sync = lambda: None  # noqa: E731
    if with_torch:
        import torch

        torch.zeros(1, device="cuda")
        sync = torch.cuda.synchronize
    if flags:
        rt.flags.parse_flags(*flags)  # before the driver is created
    compiled = flashlift.load(path)
    device = rt.get_driver(compiled.device).create_default_device(allocators=allocators)
    ctx = rt.SystemContext(config=rt.Config(device=device))
    ctx.add_vm_module(rt.VmModule.copy_buffer(ctx.instance, compiled.vmfb))
    fn = ctx.modules.module[compiled.meta["function"]]
    rng = np.random.default_rng(0)
    buffers = []
    for spec in compiled.meta["inputs"]:
        host = rng.standard_normal(spec["shape"]).astype(np.float32)
        if spec["dtype"] == "int64":  # attention masks: 1 = attend
            host, element = np.ones(spec["shape"], np.int64), rt.HalElementType.SINT_64
        elif spec["dtype"] == "bfloat16":
            host = (host.view(np.uint32) >> 16).astype(np.uint16).view(np.int16)
            element = rt.HalElementType.BFLOAT_16
        else:
            host = host.astype(spec["dtype"])
            element = getattr(rt.HalElementType, {"float16": "FLOAT_16", "float32": "FLOAT_32"}[spec["dtype"]])
        buffers.append(device.allocator.allocate_buffer_copy(
            memory_type=rt.MemoryType.DEVICE_LOCAL, allowed_usage=rt.BufferUsage.DEFAULT,
            device=device, buffer=host, element_type=element))
    for _ in range(5):
        fn(*buffers)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn(*buffers)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", nargs="+", required=True, help="saved .flashlift modules or folders of them")
    p.add_argument("--select", nargs="*", default=[], help="keep modules whose file name contains one of these")
    p.add_argument("--settings", nargs="*", default=list(SETTINGS), help=f"of {list(SETTINGS)}, each maybe +torch")
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--out", help="write the markdown table here too")
    p.add_argument("--one", nargs=2, metavar=("MODULE", "SETTING"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(time_module(a.one[0], a.one[1], a.calls)))
        return 0
    paths = []
    for m in a.modules:
        paths += sorted(glob.glob(os.path.join(m, "*.flashlift"))) if os.path.isdir(m) else [m]
    paths = [q for q in paths if not a.select or any(s in os.path.basename(q) for s in a.select)]
    lines = ["| module | " + " | ".join(f"{s} ms" for s in a.settings) + " |",
             "|---|" + "---|" * len(a.settings)]
    for path in paths:
        cells = []
        for s in a.settings:
            r = subprocess.run([sys.executable, __file__, "--modules", path, "--calls", str(a.calls), "--one", path, s],
                               capture_output=True, text=True)
            if r.returncode:
                cells.append("failed")
                print(f"{path} {s}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}", flush=True)
                continue
            t = json.loads(r.stdout.strip().splitlines()[-1])
            cells.append(f"{t['median_ms']:.3f} (min {t['min_ms']:.3f})")
        lines.append(f"| {os.path.basename(path)} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
