"""Attention benchmark: flashlift against its peers, same run, same inputs.

Peers: IREE without raising (`raise_attention=False`), torch eager on the hand-written
module, `torch.compile` of it, and torch SDPA (in the row's dtype; `sdpa_f32`: SDPA on f32
copies of the inputs, the fastest choice on CPUs without half-precision matmul units).
`--threads N` runs torch and IREE's task system on N threads each. Every output is checked against an f32
reference (SDPA on upcast inputs); the table gives milliseconds, TFLOP/s
(4*B*H*Sq*Skv*D / t, half for causal) and flashlift's speed-up over each peer.

    # the CPU machine: compile and run in one go (2 threads, then 1)
    python bench/attention.py all --target cpu --dtypes f32,f16,bf16 --peers eager,compile,sdpa,sdpa_f32
    python bench/attention.py run --target cpu --threads 1 --peers eager,compile,sdpa,sdpa_f32
    # GPU: compile here (needs the IREE compiler) ...
    python bench/attention.py build --target cuda --out build/bench/cuda
    # ... run there (needs only torch + iree-base-runtime)
    python bench/attention.py run --modules build/bench/cuda --out-dir $OUT
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

GPU_SHAPES = [(4, 16, 4096, 64), (2, 16, 4096, 128), (8, 16, 1024, 64), (1, 32, 8192, 128), (16, 12, 512, 64)]
CPU_SHAPES = [(1, 8, 1024, 64), (1, 8, 512, 64), (2, 4, 256, 64), (1, 12, 128, 64)]
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


class HandwrittenAttention(torch.nn.Module):
    """softmax(Q K^T / sqrt(d) [+ causal mask]) V, as models write it."""

    def __init__(self, causal: bool):
        super().__init__()
        self.causal = causal

    def forward(self, q, k, v):
        s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        if self.causal:
            sq, skv = q.shape[-2], k.shape[-2]
            keep = torch.ones(sq, skv, dtype=torch.bool, device=q.device).tril()
            s = s.masked_fill(~keep, float("-inf"))
        return torch.matmul(F.softmax(s.float(), dim=-1).to(q.dtype), v)


def configs(target: str, dtypes: list[str]) -> list[dict]:
    shapes = CPU_SHAPES if target.startswith("cpu") else GPU_SHAPES
    out = []
    for b, h, s, d in shapes:
        for dt in dtypes:
            for causal in (False, True):
                out.append({"b": b, "h": h, "s": s, "d": d, "dtype": dt, "causal": causal})
    return out


def key(c: dict) -> str:
    return f"{c['b']}x{c['h']}x{c['s']}x{c['d']}_{c['dtype']}{'_causal' if c['causal'] else ''}"


def build(target: str, out_dir: str, dtypes: list[str]) -> list[dict]:
    import flashlift

    os.makedirs(out_dir, exist_ok=True)
    manifest = []
    for c in configs(target, dtypes):
        dtype = DTYPES[c["dtype"]]
        args = tuple(torch.randn(c["b"], c["h"], c["s"], c["d"], dtype=dtype) for _ in range(3))
        entry = dict(c, modules={})
        for variant, raise_attention in (("flashlift", True), ("iree_unraised", False)):
            t0 = time.time()
            try:
                compiled = flashlift.compile_model(HandwrittenAttention(c["causal"]), args, target=target,
                                                   raise_attention=raise_attention)
            except flashlift.FlashliftError as e:
                print(f"{key(c)} {variant}: compile failed: {str(e).splitlines()[0]}", flush=True)
                continue
            path = os.path.join(out_dir, f"{key(c)}.{variant}.flashlift")
            compiled.save(path)
            entry["modules"][variant] = os.path.basename(path)
            print(f"{key(c)} {variant}: {time.time() - t0:.1f}s raised={len(compiled.report.raised)}", flush=True)
        manifest.append(entry)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"target": target, "commit": commit(), "configs": manifest}, f, indent=1)
    return manifest


def commit() -> str:
    """HEAD's short hash, with "+changes" when the code that builds or runs the modules
    (compiler/, passes/, python/, bench/ but its results) differs from it: a results file names what made it.
    FLASHLIFT_COMMIT overrides it: on the lent GPU machine the copy's git history is not this
    checkout's (tools/device/run.sh sets it from the commit build.sh recorded)."""
    if os.environ.get("FLASHLIFT_COMMIT"):
        return os.environ["FLASHLIFT_COMMIT"]

    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD") or "unknown"
        return head + ("+changes" if git("status", "--porcelain", "--", "compiler", "passes", "python", "bench", ":!bench/results") else "")
    except OSError:
        return "unknown"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_calls(fn, device: str, calls: int) -> list[float]:
    """Milliseconds of each of `calls` calls of `fn()`, each followed by a device sync."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def rel_err(out, ref) -> float:
    out, ref = out.float(), ref.float()
    if torch.isnan(out).any():
        return float("nan")
    return ((out - ref).norm() / ref.norm()).item()


def load_manifest(modules_dir: str) -> tuple[dict, str]:
    """The build's manifest and the torch device to run peers on."""
    with open(os.path.join(modules_dir, "manifest.json")) as f:
        manifest = json.load(f)
    device = "cuda" if torch.cuda.is_available() and not manifest["target"].startswith("cpu") else "cpu"
    return manifest, device


def flashlift_candidates(modules_dir: str, modules: dict, args: tuple, public_call: bool = True,
                         parameters=None) -> dict:
    """variant -> (run, result -> torch tensor or None) for each saved module (loaded with
    `parameters`, a state dict, where given). On the GPU a run is the compiled model called on
    the CUDA tensors, as users call it (no copies, synchronous); public_call=False imports
    them once (`prepare`). On the CPU, a call on inputs prepared once (read in place where
    the runtime can: then the run returns torch tensors, else IREE's results)."""
    import flashlift
    from flashlift.runtime import _to_torch

    candidates = {}
    for variant, name in modules.items():
        compiled = flashlift.load(os.path.join(modules_dir, name), parameters=parameters)
        if args[0].is_cuda:
            candidates[variant] = ((lambda m=compiled: m(*args)) if public_call else compiled.prepare(*args), None)
            continue
        fn = compiled.prepare(*args)
        candidates[variant] = (fn, lambda r, m=compiled: r if isinstance(r, torch.Tensor)
                               else _to_torch(r, m.meta["outputs"][0]["dtype"]))
    return candidates


def measure(row: dict, candidates: dict, ref, device: str, label: str, rounds: int = 6, calls: int = 5) -> None:
    """Checks each candidate's output against `ref` (and warms it up), then times the candidates
    in interleaved rounds of `calls` calls each, so that a drift of the machine's speed (clocks,
    other tenants) hits every peer alike; row["ms"] is each one's median, row["err"] its error.
    A candidate that fails (e.g. out of memory) is reported and recorded as None, not fatal."""
    live, times = {}, {}
    for variant, (fn, convert) in candidates.items():
        try:
            out = fn()
            out = convert(out) if convert else out
            row["err"][variant] = rel_err(out.to(ref.device), ref)
            del out
            timed_calls(fn, device, 2)
            live[variant], times[variant] = fn, []
        except Exception as e:
            row["err"][variant] = row["ms"][variant] = None
            print(f"{label} {variant}: failed: {str(e).splitlines()[0][:200]}", flush=True)
    for _ in range(rounds):
        for variant, fn in live.items():
            times[variant] += timed_calls(fn, device, calls)
    for variant in live:
        row["ms"][variant] = statistics.median(times[variant])
    if device == "cuda":
        torch.cuda.empty_cache()


def run(modules_dir: str, out_dir: str, peers: list[str], threads: int = 0) -> list[dict]:
    manifest, device = load_manifest(modules_dir)
    rows = []
    for c in manifest["configs"]:
        dtype = DTYPES[c["dtype"]]
        torch.manual_seed(0)
        q, k, v = (torch.randn(c["b"], c["h"], c["s"], c["d"], dtype=dtype, device=device) for _ in range(3))
        ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=c["causal"])
        flops = 4 * c["b"] * c["h"] * c["s"] * c["s"] * c["d"] / (2 if c["causal"] else 1)
        row = dict(c, ms={}, err={})
        model = HandwrittenAttention(c["causal"]).to(device)
        candidates = flashlift_candidates(modules_dir, c["modules"], (q, k, v))
        if "eager" in peers:
            candidates["torch_eager"] = (lambda: model(q, k, v), None)
        if "compile" in peers:
            # a fresh Dynamo cache per config: one forward compiled for many shapes would hit
            # Dynamo's recompile limit (8) and run eagerly from then on
            torch._dynamo.reset()
            compiled_model = torch.compile(model)
            candidates["torch_compile"] = (lambda: compiled_model(q, k, v), None)
        if "sdpa" in peers:
            candidates["torch_sdpa"] = (lambda: F.scaled_dot_product_attention(q, k, v, is_causal=c["causal"]), None)
        if "sdpa_f32" in peers and dtype != torch.float32:
            q32, k32, v32 = q.float(), k.float(), v.float()
            candidates["torch_sdpa_f32"] = (lambda: F.scaled_dot_product_attention(q32, k32, v32, is_causal=c["causal"]),
                                            None)
        measure(row, candidates, ref, device, key(c))
        row["tflops"] = {k_: (flops / (ms * 1e-3) / 1e12 if ms else None) for k_, ms in row["ms"].items()}
        rows.append(row)
        print(_line(row), flush=True)
    write_results(rows, manifest, device, out_dir, threads)
    return rows


def _line(row: dict) -> str:
    fl = row["ms"].get("flashlift")
    parts = [f"{key(row):28s}"]
    for name, ms in row["ms"].items():
        ratio = f" x{ms / fl:.2f}" if fl and ms and name != "flashlift" else ""
        parts.append(f"{name}={ms:.3f}ms{ratio}" if ms else f"{name}=fail")
    return "  ".join(parts)


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{model or platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def peers_of(rows: list[dict]) -> list[str]:
    peers: list[str] = []
    for r in rows:
        peers += [p for p in r["ms"] if p not in peers]
    return peers


def results_markdown(title: str, notes: list[str], key_headers: list[str], rows: list[dict], key_cells,
                     cell) -> str:
    """A results file: title, notes (date first), then one row per case with each peer's
    cell, the ratios peer time / flashlift time, and flashlift's error."""
    peers = peers_of(rows)
    cols = key_headers + [cell(None, p) for p in peers] + [f"vs {p}" for p in peers if p != "flashlift"] + ["flashlift err"]
    lines = [f"# {title}", "", f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"]
    lines += [f"- {n}" for n in notes] + ["- ratio columns: peer time / flashlift time (> 1 means flashlift is faster)", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        fl = r["ms"].get("flashlift")
        ratios = [f"{r['ms'][p] / fl:.2f}" if fl and r["ms"].get(p) else "-" for p in peers if p != "flashlift"]
        err = r["err"].get("flashlift")
        cells = key_cells(r) + [cell(r, p) for p in peers] + ratios + [f"{err:.1e}" if err is not None else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_model_table(title: str, notes: list[str], rows: list[dict], path: str) -> str:
    """A results file of model rows (model, shape, dtype, each peer's ms) at `path`; returns its text."""
    text = results_markdown(
        title, notes, ["model", "shape", "dtype"], rows, lambda r: [r["model"], r["shape"], r["dtype"]],
        lambda r, p: f"{p} ms" if r is None else (f"{r['ms'][p]:.3f}" if r["ms"].get(p) else "fail"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    print(text)
    return text


def write_results(rows: list[dict], manifest: dict, device: str, out_dir: str, threads: int = 0) -> str:
    os.makedirs(out_dir, exist_ok=True)
    name = device_name(device) + (f", {threads} thread{'s' if threads > 1 else ''} (torch and IREE)" if threads else "")

    unit, scale = ("TFLOP/s", 1) if device == "cuda" else ("GFLOP/s", 1e3)

    def cell(r, p):
        if r is None:
            return f"{p} ms ({unit})"
        if p not in r["ms"]:
            return "-"  # not a peer of this row (sdpa_f32 on f32 rows)
        ms, tf = r["ms"].get(p), r["tflops"].get(p)
        return f"{ms:.3f} ({tf * scale:.1f})" if ms else "fail"

    text = results_markdown(
        f"Attention benchmark: {name}",
        [f"flashlift commit: {manifest.get('commit', 'unknown')} (modules compiled for target `{manifest['target']}`)",
         f"device: {name}; torch {torch.__version__}",
         "time: median ms of 30 warm calls per peer, timed in interleaved rounds, each call followed by a device sync (flashlift and IREE: the compiled "
         "model called on device-resident tensors, synchronous; on CUDA the torch tensors themselves, zero-copy); "
         f"{unit} = 4*B*H*S*S*D/t (half for causal); err = ||out - ref|| / ||ref|| vs SDPA on f32 inputs",
         f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"],
        ["shape (B,H,S,D)", "dtype", "causal"], rows,
        lambda r: [f"{r['b']},{r['h']},{r['s']},{r['d']}", r["dtype"], "yes" if r["causal"] else "no"], cell)
    stem = "gpu" if device == "cuda" else f"cpu{f'-{threads}t' if threads else ''}"
    path = os.path.join(out_dir, f"attention-{stem}.md")
    with open(path, "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, f"attention-{stem}.json"), "w") as f:
        json.dump({"device": name, "manifest_commit": manifest.get("commit"), "rows": rows}, f, indent=1)
    print(text)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["build", "run", "all"])
    p.add_argument("--target", default="cpu")
    p.add_argument("--dtypes", default=None, help="comma list of f32,f16,bf16")
    p.add_argument("--out", default=None, help="where build writes modules")
    p.add_argument("--modules", default=None, help="where run reads modules")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--peers", default="eager,compile,sdpa")
    p.add_argument("--threads", type=int, default=0, help="CPU: threads for torch and for IREE's task system")
    args = p.parse_args()
    if args.threads:
        import iree.runtime

        torch.set_num_threads(args.threads)
        iree.runtime.flags.parse_flags(f"--task_topology_group_count={args.threads}")
    dtypes = (args.dtypes or ("f32,f16" if args.target == "cpu" else "f16,bf16")).split(",")
    modules = args.modules or args.out or os.path.join(ROOT, "build", "bench", args.target.replace(":", "_"))
    if args.mode in ("build", "all"):
        build(args.target, modules, dtypes)
    if args.mode in ("run", "all"):
        run(modules, args.out_dir, args.peers.split(","), args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
