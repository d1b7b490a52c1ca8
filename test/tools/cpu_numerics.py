"""test_cpu_kernel.py's numerics cases for a CPU this machine is not: build here, check there.

The CPU kernel's AMX build (`cpu:sapphirerapids`, bf16 attention on AMX tiles) cannot run on a
CPU without AMX, so pytest here only compiles it. This tool compiles the same cases as
test_cpu_kernel.py (its CASES, the half-precision case with odd key counts, the run-time
masks with rows that see no key; test_cpu_gemm.py's linear layers, whose bf16 GEMMs take the
CPU GEMM kernel's AMX build) in bf16 (and f32, which keeps the avx512 build) for a CPU target, saves each module with fresh inputs and PyTorch's f64 answer, and checks them on the
machine that has that CPU (the GPU machine's host: IREE runtime and torch, no compiler):

    # here
    .venv/bin/python test/tools/cpu_numerics.py build build/cpu_numerics cpu:sapphirerapids
    # there; exit status 1 if any case fails
    python3 test/tools/cpu_numerics.py run build/cpu_numerics

A case passes when its output has NaN exactly where PyTorch's has and the relative error over
the rest is under test_cpu_kernel.TOL for its dtype; each line names the kernel build its site took.
"""

from __future__ import annotations

import copy
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "python"), os.path.join(ROOT, "test", "python"), os.path.join(ROOT, "test", "tools")]


def cases():
    """name -> (module, inputs) of every case, inputs in f32 (cast per dtype by build)."""
    import torch

    import test_cpu_kernel as t

    out = {}
    for name, (shape, skv, mask, groups) in t.CASES.items():
        torch.manual_seed(0)
        b, h, sq, d = shape
        out[name] = (t.Attention(mask, groups=groups), (torch.randn(b, h, sq, d), torch.randn(b, h // groups, skv, d),
                                                        torch.randn(b, h // groups, skv, d)))
    torch.manual_seed(4)
    out["odd_keys_d48_causal"] = (t.Attention("top_left"), (torch.randn(2, 2, 70, 48), torch.randn(2, 2, 75, 48),
                                                            torch.randn(2, 2, 75, 48)))
    out["d128_long"] = (t.Attention(), tuple(torch.randn(1, 2, 300, 128) for _ in range(3)))
    for kind in ("key_padding", "full", "per_head"):
        out[f"mask_{kind}"] = (t.Masked(), t.run_time_mask_inputs(kind, head_dim=64))
    import test_cpu_gemm as g   # the bf16 linear layers' GEMM kernel (AMX build on this target)

    for name in g.CASES:
        module, x = g.case(name)
        out[f"linears_{name}"] = (module.float(), (x.float(),))
    return out


def build(out_dir: str, target: str) -> None:
    import torch

    import flashlift
    import test_cpu_kernel as t

    os.makedirs(out_dir, exist_ok=True)
    for name, (module, inputs) in cases().items():
        for dtype in (torch.bfloat16, torch.float32):
            # a bf16 model's mask is bf16 too (which the kernel does not read: IREE's codegen, as reported)
            args = tuple(x.to(dtype) for x in inputs)
            compiled = flashlift.compile_model(copy.deepcopy(module).to(dtype), args, target=target)
            with torch.no_grad():   # (weights rounded as the model's)
                ref = copy.deepcopy(module).to(dtype).double()(*(x.double() for x in args)).float()
            case = f"{name}_{str(dtype).removeprefix('torch.')}"
            compiled.save(os.path.join(out_dir, f"{case}.flashlift"))
            paths = [s.path for s in compiled.report.raised + compiled.report.linears]
            torch.save({"args": args, "ref": ref, "paths": paths, "tol": t.TOL[dtype]}, os.path.join(out_dir, f"{case}.pt"))
            print(f"{case}: {paths}", flush=True)


def run(out_dir: str) -> int:
    """(No test_cpu_kernel here: it imports the compiler, which the GPU machine lacks.)"""
    import torch

    import flashlift
    from gpu_numerics import _rel_err

    failed = 0
    for name in sorted(f for f in os.listdir(out_dir) if f.endswith(".flashlift")):
        case = name.removesuffix(".flashlift")
        data = torch.load(os.path.join(out_dir, f"{case}.pt"))
        out = flashlift.load(os.path.join(out_dir, name))(*data["args"]).float()
        ref = data["ref"]
        err = _rel_err(out, ref)   # NaN unless NaN lies exactly where the reference has it
        ok = err < data["tol"]
        failed += not ok
        print(f"{case:45s} rel err {err:.1e} (tolerance {data['tol']:.0e}) NaN rows "
              f"{int(torch.isnan(out).any(-1).sum())}/{int(torch.isnan(ref).any(-1).sum())}  {'ok' if ok else 'FAIL'}  {data['paths']}",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    mode, folder = sys.argv[1], sys.argv[2]
    if mode == "build":
        build(folder, sys.argv[3] if len(sys.argv) > 3 else "cpu:sapphirerapids")
    else:
        sys.exit(run(folder))
