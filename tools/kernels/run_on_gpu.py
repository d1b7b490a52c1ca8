"""Run the NVIDIA fast-path spike on a GPU machine.

Needs only: python, numpy, torch (CUDA build), iree-base-runtime (3.13).
No IREE compiler, no triton: the Triton kernel is inside each .vmfb (as PTX
or cubin) and is launched by IREE's CUDA HAL.

    python tools/kernels/run_on_gpu.py build/gpu_spike            # everything this GPU can load
    python tools/kernels/run_on_gpu.py build/gpu_spike --filter sm90 --iters 50
    python tools/kernels/run_on_gpu.py build/gpu_spike --all      # also try "incompatible" ones

For every manifest entry: load the vmfb with iree.runtime (cuda driver), run
`attn(q, k, v)` on random inputs (N(0,1), rounded to the entry's dtype), compare
with torch SDPA computed in float32 (math backend, TF32 off) on the same
rounded inputs: relative error ||o - ref|| / ||ref||; FAIL on NaN/Inf or
error > tol (2e-3 for f16; bf16 uses --tol-bf16, default 8e-3, because merely
rounding the exact result to bf16 already costs ~1.7e-3 and torch's own bf16
SDPA lands at ~2.3e-3 -- both numbers are printed). Then times the IREE call
(warmup, median of --iters; the exported function is synchronous, so this is
the full IREE invocation incl. VM + launch overhead) and torch SDPA in the same
dtype on the same inputs, and prints a table. --profile additionally reports
the device time of the kernels via torch.profiler (CUPTI sees IREE's launches
too). Exit status 1 if any entry failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback

import numpy as np


def _compatible(entry, cc):
    """Can a GPU of compute capability cc=(major, minor) load this object?"""
    tgt = entry["ptx_target"]                      # "sm_80" or "sm_90a"
    arch = int("".join(ch for ch in tgt if ch.isdigit()))
    major, minor = divmod(arch, 10)
    if tgt.endswith("a"):                          # arch-specific: exact match only
        return cc == (major, minor)
    if entry["object"] == "ptx":                   # PTX JITs forward
        return cc >= (major, minor)
    return cc[0] == major and cc[1] >= minor       # SASS: same major


def _visible_pairs(sq, skv, causal, bottom_right):
    if not causal:
        return sq * skv
    diag = (skv - sq) if bottom_right else 0
    return sum(min(max(i + diag + 1, 0), skv) for i in range(sq))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="folder with manifest.json and the .vmfb files")
    ap.add_argument("--driver", default="cuda", help="IREE HAL driver (default cuda)")
    ap.add_argument("--filter", default=None, help="only entries whose id contains this (comma = any of)")
    ap.add_argument("--all", action="store_true", help="also try entries this GPU cannot load")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--tol", type=float, default=2e-3)
    ap.add_argument("--tol-bf16", type=float, default=8e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true", help="kernel device times via torch.profiler")
    ap.add_argument("--json", default=None, help="write results here")
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F
    import iree.runtime as rt
    import ml_dtypes

    with open(os.path.join(args.dir, "manifest.json")) as f:
        manifest = json.load(f)
    entries = manifest["entries"]
    if args.filter:
        keys = args.filter.split(",")
        entries = [e for e in entries if any(k in e["id"] for k in keys)]

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        cc = torch.cuda.get_device_capability()
        gpu = torch.cuda.get_device_name()
    else:
        cc, gpu = (0, 0), "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch {torch.__version__} on {gpu} (cc {cc[0]}.{cc[1]}); iree driver '{args.driver}'; "
          f"{len(entries)} entries", flush=True)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    config = rt.Config(args.driver)
    hal_device = config.device

    # ---- inputs / references, shared by all entries of one shape config ----
    cache = {}

    def get_case(e):
        key = e["config_id"]
        if key in cache:
            return cache[key]
        g = torch.Generator(device="cpu").manual_seed(args.seed)
        B, H, KVH, Sq, Skv, D = (e[k] for k in ("batch", "heads", "kv_heads", "sq", "skv", "head_dim"))
        tdt = {"float16": torch.float16, "bfloat16": torch.bfloat16}[e["dtype"]]
        q = torch.randn(B, H, Sq, D, generator=g).to(tdt)
        k = torch.randn(B, KVH, Skv, D, generator=g).to(tdt)
        v = torch.randn(B, KVH, Skv, D, generator=g).to(tdt)

        def to_iree(t):
            a = t.contiguous().view(torch.int16).numpy().view(np.uint16)
            a = a.view(np.float16) if tdt == torch.float16 else a.view(ml_dtypes.bfloat16)
            return rt.asdevicearray(hal_device, a)

        iree_in = [to_iree(t) for t in (q, k, v)]
        q, k, v = q.to(dev), k.to(dev), v.to(dev)
        scale = e["scale"]
        mask = None
        if e["causal"]:
            diag = (Skv - Sq) if e["bottom_right"] else 0
            i = torch.arange(Sq, device=dev)[:, None]
            j = torch.arange(Skv, device=dev)[None, :]
            mask = j <= i + diag                                     # True = attend
        # float32 reference, exact math backend, one batch at a time
        r = H // KVH
        ref = torch.empty(B, H, Sq, D, dtype=torch.float32, device=dev)
        from torch.nn.attention import SDPBackend, sdpa_kernel
        with sdpa_kernel(SDPBackend.MATH):
            for b in range(B):
                kf = k[b:b + 1].float().repeat_interleave(r, 1)
                vf = v[b:b + 1].float().repeat_interleave(r, 1)
                ref[b:b + 1] = F.scaled_dot_product_attention(
                    q[b:b + 1].float(), kf, vf, attn_mask=mask, scale=scale)
        ref = torch.nan_to_num(ref, nan=0.0)          # fully-masked rows -> 0 like the kernel

        # torch SDPA in the low-precision dtype (what a user would call)
        sdpa_kw = dict(scale=scale)
        kt, vt = k, v
        if e["causal"] and e["bottom_right"] and Sq != Skv:
            from torch.nn.attention.bias import causal_lower_right
            sdpa_kw["attn_mask"] = causal_lower_right(Sq, Skv)
        elif e["causal"]:
            sdpa_kw["is_causal"] = True
        if r > 1:
            try:
                F.scaled_dot_product_attention(q[:1, :, :8], k[:1, :, :8], v[:1, :, :8],
                                               enable_gqa=True, scale=scale)
                sdpa_kw["enable_gqa"] = True
            except Exception:
                kt, vt = k.repeat_interleave(r, 1), v.repeat_interleave(r, 1)

        def torch_call():
            return F.scaled_dot_product_attention(q, kt, vt, **sdpa_kw)

        torch_lp = torch_call().float()
        torch_err = ((torch_lp - ref).norm() / ref.norm()).item()
        round_err = ((ref.to(tdt).float() - ref).norm() / ref.norm()).item()
        flops = 4.0 * B * H * D * _visible_pairs(Sq, Skv, e["causal"], e["bottom_right"])
        cache[key] = dict(iree_in=iree_in, ref=ref, tdt=tdt, torch_call=torch_call,
                          torch_err=torch_err, round_err=round_err, flops=flops, torch_ms=None)
        return cache[key]

    def time_it(fn, after=None):
        for _ in range(args.warmup):
            fn()
        sync()
        ts = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            fn()
            if after:
                after()
            ts.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ts)

    results = []
    for e in entries:
        row = dict(id=e["id"], status="", err=None, iree_ms=None, torch_ms=None, note="")
        results.append(row)
        if not args.all and not _compatible(e, cc):
            row["status"] = "SKIP"
            row["note"] = f"{e['ptx_target']} {e['object']} not loadable on cc {cc[0]}.{cc[1]}"
            continue
        try:
            case = get_case(e)
            ctx = rt.SystemContext(config=config)
            vm_module = rt.VmModule.mmap(config.vm_instance, os.path.join(args.dir, e["vmfb"]))
            ctx.add_vm_module(vm_module)
            fn = ctx.modules.module[e["function"]]
            qd, kd, vd = case["iree_in"]
            out = fn(qd, kd, vd)
            host = np.asarray(out.to_host())
            o = torch.from_numpy(host.view(np.int16).copy()).view(case["tdt"]).to(dev).float()
            finite = bool(torch.isfinite(o).all())
            err = ((o - case["ref"]).norm() / case["ref"].norm()).item()
            tol = args.tol_bf16 if case["tdt"] == torch.bfloat16 else args.tol
            row["err"] = err
            row["torch_lp_err"] = case["torch_err"]
            row["status"] = "PASS" if finite and err <= tol else "FAIL"
            if not finite:
                row["note"] = "NaN/Inf in output"
            row["iree_ms"] = time_it(lambda: fn(qd, kd, vd))
            if case["torch_ms"] is None:
                case["torch_ms"] = time_it(case["torch_call"], after=sync)
            row["torch_ms"] = case["torch_ms"]
            row["iree_tflops"] = case["flops"] / (row["iree_ms"] * 1e-3) / 1e12
            row["torch_tflops"] = case["flops"] / (row["torch_ms"] * 1e-3) / 1e12
            if args.profile and dev.type == "cuda":
                row.update(_profile(fn, (qd, kd, vd), case["torch_call"], e["kernel"], sync))
            del ctx, fn, vm_module
        except Exception as ex:  # load failures (e.g. PTX too new for the driver) land here
            row["status"] = "FAIL"
            row["note"] = (str(ex).strip().splitlines() or [repr(ex)])[0][:160]
            if os.environ.get("SPIKE_VERBOSE"):
                traceback.print_exc()
        _print_row(row, header=(len(results) == 1))

    print()
    _print_table(results)
    for key, c in cache.items():
        print(f"  {key}: torch low-precision SDPA rel.err vs f32 = {c['torch_err']:.2e}, "
              f"rounding exact result to dtype = {c['round_err']:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(gpu=gpu, cc=list(cc), torch=torch.__version__, results=results), f, indent=1)
    n_fail = sum(r["status"] == "FAIL" for r in results)
    n_pass = sum(r["status"] == "PASS" for r in results)
    print(f"{n_pass} passed, {n_fail} failed, {len(results) - n_pass - n_fail} skipped")
    return 1 if n_fail else 0


def _profile(fn, iree_args, torch_call, kernel_name, sync, n=10):
    """Device-side kernel times (us) via CUPTI; IREE's launches are visible too."""
    from torch.profiler import ProfilerActivity, profile
    out = {}
    try:
        for label, call in (("iree", lambda: fn(*iree_args)), ("torch", torch_call)):
            sync()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(n):
                    call()
                sync()
            tot, cnt = 0.0, 0
            for ev in prof.key_averages():
                if ev.device_type is not None and "cuda" in str(ev.device_type).lower():
                    if label == "iree" and kernel_name not in ev.key:
                        continue
                    t = getattr(ev, "device_time_total", None) or getattr(ev, "cuda_time_total", 0)
                    tot += t
                    cnt = max(cnt, ev.count)
            out[f"{label}_kernel_us"] = tot / n if tot else None
    except Exception as ex:
        out["profile_error"] = str(ex)[:120]
    return out


def _fmt(x, f):
    return "-" if x is None else format(x, f)


def _print_row(r, header=False):
    if header:
        print(f"{'id':58s} {'status':6s} {'relerr':>9s} {'iree ms':>9s} {'torch ms':>9s}", flush=True)
    print(f"{r['id']:58s} {r['status']:6s} {_fmt(r['err'], '.2e'):>9s} {_fmt(r['iree_ms'], '.3f'):>9s} "
          f"{_fmt(r['torch_ms'], '.3f'):>9s} {r['note']}", flush=True)


def _print_table(results):
    hdr = (f"| {'entry':56s} | status | rel.err  | IREE ms (TFLOP/s) | torch SDPA ms (TFLOP/s) "
           f"| IREE/torch | kernel us iree/torch |")
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    for r in results:
        ratio = (r["torch_ms"] / r["iree_ms"]) if r.get("iree_ms") and r.get("torch_ms") else None
        ki, kt = r.get("iree_kernel_us"), r.get("torch_kernel_us")
        print(f"| {r['id']:56s} | {r['status']:6s} | {_fmt(r['err'], '.2e'):8s} | "
              f"{_fmt(r['iree_ms'], '8.3f')} ({_fmt(r.get('iree_tflops'), '5.1f')}) | "
              f"{_fmt(r['torch_ms'], '8.3f')} ({_fmt(r.get('torch_tflops'), '5.1f')})      | "
              f"{_fmt(ratio, '9.2f')}x | {_fmt(ki, '.0f')}/{_fmt(kt, '.0f')} {r['note']}")


if __name__ == "__main__":
    sys.exit(main())
