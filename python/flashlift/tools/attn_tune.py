"""attn-tune: measure lowering configurations for attention and keep the winners.

    # CPU: compile the candidates, time them here, write the winners into the database
    attn-tune --target cpu --shape 1,8,1024,64 --shape 2,4,256,64 --dtype f32,f16 --causal both
    # GPU: compile here ...
    attn-tune --target cuda --shape 4,16,4096,64 --dtype f16,bf16 --out build/tune/cuda
    # ... measure on the GPU machine (needs only torch + iree-base-runtime) ...
    PYTHONPATH=python python -m flashlift.tools.attn_tune run-gpu build/tune/cuda --out results.json
    # ... and bring the results back into the database here
    attn-tune ingest results.json
    # flashlift's CPU kernel: which of its builds (avx2, avx512, avx512bf16, avx512amx) runs each shape here
    attn-tune --cpu-kernel --shape 1,12,128,64 --dtype f32,bf16 --causal both

Each candidate is the hand-written attention module (softmax(Q K^T / sqrt(d) [+ causal mask]) V)
compiled by ``flashlift.compile_model`` with its knobs forced (``lowering.override``); the
first candidate is what the heuristic picks. Candidates that fail to compile, or whose output
is off the f32 PyTorch reference (rel. err >= 1e-4 f32, 2e-3 f16, 1e-2 bf16), are dropped and
reported. The winner (fastest; the heuristic unless another candidate is faster by
--min-gain, 5%) goes into compiler/tuning_db.json under the shape's class key with its provenance.
With ``--cpu-kernel`` the candidates are the builds of flashlift's CPU kernel this CPU runs
(``cpu_dispatch.force_isa``; the default choice first) and the key the CPU family's
(``tuning.kernel_key``).

``run-gpu`` and the measuring half of the CPU mode import only torch, the IREE runtime and
flashlift's runtime part, never the compiler.
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
from typing import Optional

TOLERANCE = {"f32": 1e-4, "f16": 2e-3, "bf16": 1e-2}
TORCH_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}
MANIFEST = "manifest.json"
# A candidate replaces the heuristic's choice only when it is this much faster: on the shared
# 2-core CPU machine run-to-run noise of the median is a few per cent.
MIN_GAIN = 0.05

# Candidate knobs, in order of preference; the heuristic's own choice always comes first
# and candidates that amount to the same attributes as an earlier one are skipped.
CPU_CANDIDATES = [
    {"m_vec": 4, "k2_vec": 8}, {"m_vec": 8, "k2_vec": 4}, {"m_vec": 4, "k2_vec": 16},
    {"m_vec": 8, "k2_vec": 8, "m_dist": 32}, {"m_vec": 8, "k2_vec": 8, "m_dist": 128},
    {"m_vec": 16, "k2_vec": 4}, {"m_vec": 2, "k2_vec": 32}, {"m_vec": 8, "k2_vec": 16},
]
GPU_CANDIDATES = [
    {"m_tile": m, "k2_tile": k, "num_subgroups": sg}
    for m, k, sg in [(128, 32, 4), (128, 64, 4), (64, 32, 4), (64, 64, 4), (128, 32, 8), (64, 32, 2),
                     (128, 16, 4), (64, 16, 4), (64, 16, 2), (256, 32, 8), (32, 32, 2), (32, 64, 2)]
]


# --------------------------------------------------------------------------
# The module being tuned
# --------------------------------------------------------------------------

def attention_module(causal: bool):
    """softmax(Q K^T / sqrt(d) [+ causal mask]) V as models write it (as bench/attention.py)."""
    import torch
    import torch.nn.functional as F

    class HandwrittenAttention(torch.nn.Module):
        def forward(self, q, k, v):
            s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
            if causal:
                keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
                s = s.masked_fill(~keep, float("-inf"))
            return torch.matmul(F.softmax(s.float(), dim=-1).to(q.dtype), v)

    return HandwrittenAttention()


def make_inputs(case: dict, device: str = "cpu"):
    """The inputs every machine uses for a case (seeded, generated on the CPU)."""
    import torch

    torch.manual_seed(0)
    dtype = getattr(torch, TORCH_DTYPES[case["dtype"]])
    shape = (case["b"], case["h"], case["s"], case["d"])
    return tuple(torch.randn(*shape, dtype=dtype).to(device) for _ in range(3))


def reference(q, k, v, causal: bool):
    import torch.nn.functional as F

    return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal)


def rel_err(out, ref) -> float:
    out, ref = out.float().to(ref.device), ref.float()
    if not bool(out.isfinite().all()):
        return float("nan")
    return ((out - ref).norm() / ref.norm()).item()


def case_name(c: dict) -> str:
    return f"{c['b']}x{c['h']}x{c['s']}x{c['d']}_{c['dtype']}{'_causal' if c['causal'] else ''}"


def knob_text(knobs: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in knobs.items()) or "-"



# --------------------------------------------------------------------------
# Build: candidates -> compiled modules + manifest (needs the compiler)
# --------------------------------------------------------------------------

def candidates_for(case: dict, target, extra: Optional[list] = None, limit: int = 6) -> list:
    """[(knobs, is_heuristic)] for one case: the heuristic (knobs None), then others whose
    attributes differ from it and from each other on the case's predicted op shape."""
    from flashlift.compiler import lowering, tuning

    shape = tuning.bhsd_shape(case["b"], case["h"], case["s"], case["d"], case["dtype"], case["causal"])
    pool = extra if extra is not None else (CPU_CANDIDATES if target.kind == "cpu" else GPU_CANDIDATES)
    out = [(None, True)]
    seen = {json.dumps(lowering.configs_for(shape, target, use_db=False), sort_keys=True)}
    for knobs in pool:
        if len(out) >= limit:
            break
        attrs = lowering.configs_for(shape, target, dict(knobs))
        text = json.dumps(attrs, sort_keys=True)
        if not attrs or text in seen:
            continue  # not applicable to this shape, or the same as an earlier candidate
        seen.add(text)
        out.append((dict(knobs), False))
    return out


def _compile_options() -> dict:
    """Tuning is about IREE's own codegen: where compile_model can route attention to a
    hand-written kernel instead, turn that off."""
    import inspect

    from flashlift.api import compile_model

    return {"use_kernels": False} if "use_kernels" in inspect.signature(compile_model).parameters else {}


def _first_error(message: str) -> str:
    lines = [l.strip() for l in message.splitlines() if "error:" in l]
    return (lines[0] if lines else message.strip().splitlines()[-1] if message.strip() else "failed")[:300]


def _manifest(target, out_dir: str, target_key: str) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    return {"format": "attn-tune-manifest", "version": 1, "target": target.name, "target_key": target_key,
            "commit": _commit(), "built": _now(), "built_on": _machine(), "cases": []}


def _write_manifest(manifest: dict, out_dir: str) -> dict:
    with open(os.path.join(out_dir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def build_cpu_kernel(cases: list, target_spec: str, out_dir: str, *, log=print) -> dict:
    """Compiles each case once per build of flashlift's CPU kernel the target runs (the one
    cpu_dispatch would choose first, as the heuristic) into `out_dir`; writes and returns the manifest."""
    import flashlift
    from flashlift.compiler import cpu_dispatch, tuning
    from flashlift.compiler.targets import parse_target

    target = parse_target(target_spec)
    isas = cpu_dispatch.target_isas(target)
    if not isas:
        raise SystemExit(f"attn-tune: no flashlift CPU kernel for {target.name}: {cpu_dispatch.unavailable(target)}")
    manifest = _manifest(target, out_dir, f"cpu-kernel:{isas[0]}")
    for case in cases:
        shape = tuning.bhsd_shape(case["b"], case["h"], case["s"], case["d"], case["dtype"], case["causal"])
        entry = dict(case, name=case_name(case), db_key=tuning.kernel_key(shape, isas[0]), candidates=[], dropped=[])
        default = cpu_dispatch.choose_isa(isas, case["dtype"])
        choices = [default] + [isa for isa in isas if isa != default and cpu_dispatch.fits(isa, case["dtype"])]
        for i, isa in enumerate(choices):
            t0 = time.time()
            with cpu_dispatch.force_isa(isa):
                compiled = flashlift.compile_model(attention_module(case["causal"]), make_inputs(case), target=target.name)
            paths = [s.path for s in compiled.report.raised]
            if paths != [cpu_dispatch.kernel_path(isa)]:
                entry["dropped"].append({"knobs": {"isa": isa}, "stage": "compile", "reason": f"took {paths}"})
                log(f"{entry['name']} [isa={isa}]: not taken ({paths})")
                continue
            module = f"{entry['name']}.c{i}.flashlift"
            compiled.save(os.path.join(out_dir, module))
            entry["candidates"].append({"id": f"c{i}", "knobs": {"isa": isa}, "heuristic": isa == default,
                                        "module": module, "compile_s": round(time.time() - t0, 2)})
            log(f"{entry['name']} [isa={isa}]{' (default)' if isa == default else ''}: compiled in {time.time() - t0:.1f}s")
        manifest["cases"].append(entry)
    return _write_manifest(manifest, out_dir)


def build(cases: list, target_spec: str, out_dir: str, *, limit: int = 6, extra: Optional[list] = None,
          log=print) -> dict:
    """Compiles every candidate of every case into `out_dir`; writes and returns the manifest."""
    import flashlift
    from flashlift.compiler import lowering, tuning
    from flashlift.compiler.targets import parse_target

    target = parse_target(target_spec)
    manifest = _manifest(target, out_dir, tuning.target_key(target))
    for case in cases:
        shape = tuning.bhsd_shape(case["b"], case["h"], case["s"], case["d"], case["dtype"], case["causal"])
        # Predicted key; replaced below by the key of the op as lowering saw it.
        entry = dict(case, name=case_name(case), db_key=tuning.shape_key(shape, manifest["target_key"]),
                     candidates=[], dropped=[])
        args = make_inputs(case)
        done = set()
        for i, (knobs, is_heuristic) in enumerate(candidates_for(case, target, extra, limit)):
            label = f"{entry['name']} [{knob_text(knobs) if knobs else 'heuristic'}]"
            t0 = time.time()
            try:
                with lowering.override(knobs, use_db=False) as seen:
                    compiled = flashlift.compile_model(attention_module(case["causal"]), args, target=target.name,
                                                       **_compile_options())
            except flashlift.FlashliftError as e:
                entry["dropped"].append({"knobs": knobs, "stage": "compile", "reason": _first_error(str(e))})
                log(f"{label}: compile failed: {entry['dropped'][-1]['reason']}")
                continue
            # What lowering really saw and set (layout rewrites before it change the op).
            reason = None
            if len(compiled.report.raised) != 1 or len(seen) != 1:
                reason = f"{len(compiled.report.raised)} attention op(s) raised, {len(seen)} lowered (want 1)"
            elif not seen[0]["attrs"]:
                reason = "no lowering configuration for these knobs on this op (IREE default)"
            else:
                attrs = json.dumps(seen[0]["attrs"], sort_keys=True)
                if attrs in done:
                    log(f"{label}: same attributes as an earlier candidate, skipped")
                    continue
                done.add(attrs)
            if reason:
                entry["dropped"].append({"knobs": knobs, "stage": "compile", "reason": reason})
                log(f"{label}: {reason}")
                continue
            knobs = tuning.knobs_from_attrs(seen[0]["attrs"]) or knobs
            entry["db_key"] = tuning.shape_key(seen[0]["shape"], manifest["target_key"])
            module = f"{entry['name']}.c{i}.flashlift"
            compiled.save(os.path.join(out_dir, module))
            entry["candidates"].append({"id": f"c{i}", "knobs": knobs, "heuristic": is_heuristic,
                                        "module": module, "compile_s": round(time.time() - t0, 2)})
            log(f"{entry['name']} [{knob_text(knobs)}]{' (heuristic)' if is_heuristic else ''}: "
                f"compiled in {time.time() - t0:.1f}s")
        manifest["cases"].append(entry)
    return _write_manifest(manifest, out_dir)


# --------------------------------------------------------------------------
# Run: manifest -> measured results (torch + IREE runtime only)
# --------------------------------------------------------------------------

def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def measure(folder: str, *, driver: Optional[str] = None, rounds: int = 5, reps: int = 3,
            workers: Optional[int] = None, log=print) -> dict:
    """Loads each case's candidates, checks their numerics against the f32 reference and times
    them in interleaved rounds (each round runs every candidate `reps` times); the result of a
    candidate is the median of all its runs. Returns the results document."""
    import torch

    import flashlift

    with open(os.path.join(folder, MANIFEST)) as f:
        manifest = json.load(f)
    gpu = not manifest["target"].startswith("cpu")
    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    if workers:
        import iree.runtime as rt

        rt.flags.parse_flags(f"--task_topology_group_count={workers}")
    results = {"format": "attn-tune-results", "version": 1, "target": manifest["target"],
               "target_key": manifest["target_key"], "commit": manifest.get("commit"),
               "device": _device_name(device), "date": _now(), "torch": torch.__version__,
               "timing": {"rounds": rounds, "reps": reps, "driver": driver or "module default",
                          "workers": workers, "statistic": "median ms, device-resident inputs"},
               "cases": []}
    for case in manifest["cases"]:
        q, k, v = make_inputs(case)
        ref = reference(*(t.to(device) for t in (q, k, v)), case["causal"])
        tol = TOLERANCE[case["dtype"]]
        row = {key: case[key] for key in ("name", "b", "h", "s", "d", "dtype", "causal", "db_key")}
        row["tolerance"] = tol
        row["dropped"] = list(case.get("dropped", []))
        row["results"] = []
        runnable = []
        for cand in case["candidates"]:
            res = {"id": cand["id"], "knobs": cand["knobs"], "heuristic": cand["heuristic"]}
            try:
                model = flashlift.load(os.path.join(folder, cand["module"]), device=driver)
                fn = model.prepare(q, k, v)
                out = model(q, k, v)
                res["rel_err"] = rel_err(out, ref)
            except Exception as e:  # a module that does not load or run is dropped, not fatal
                row["dropped"].append({"knobs": cand["knobs"], "stage": "run", "reason": str(e).splitlines()[0][:300]})
                log(f"{case['name']} [{knob_text(cand['knobs'])}]: failed to run: {row['dropped'][-1]['reason']}")
                continue
            if not res["rel_err"] < tol:  # NaN fails too
                row["dropped"].append({"knobs": cand["knobs"], "stage": "numerics",
                                       "reason": f"rel err {res['rel_err']:.2e} >= {tol:g}"})
                log(f"{case['name']} [{knob_text(cand['knobs'])}]: wrong numerics: {row['dropped'][-1]['reason']}")
                continue
            runnable.append((res, fn))
        times = {id(r): [] for r, _ in runnable}
        for r, fn in runnable:  # warm-up
            fn()
            fn()
        _sync(device)
        for _ in range(rounds):
            for r, fn in runnable:
                for _ in range(reps):
                    t0 = time.perf_counter()
                    fn()
                    _sync(device)
                    times[id(r)].append((time.perf_counter() - t0) * 1e3)
        for r, _ in runnable:
            r["ms"] = round(statistics.median(times[id(r)]), 4)
            r["ms_min"] = round(min(times[id(r)]), 4)
            row["results"].append(r)
            log(f"{case['name']} [{knob_text(r['knobs'])}]{' (heuristic)' if r['heuristic'] else ''}: "
                f"{r['ms']:.3f} ms, rel err {r['rel_err']:.1e}")
        results["cases"].append(row)
        if device == "cuda":
            torch.cuda.empty_cache()
    return results


# --------------------------------------------------------------------------
# Ingest: results -> database
# --------------------------------------------------------------------------

def pick(row: dict, min_gain: float = MIN_GAIN) -> Optional[dict]:
    """The winning result of one case: the fastest, unless the heuristic's is within
    `min_gain` (relative) of it, then the heuristic's (no churn for noise)."""
    ok = [r for r in row["results"] if r.get("ms") is not None and r.get("rel_err") is not None
          and r["rel_err"] < row.get("tolerance", TOLERANCE[row["dtype"]])]
    if not ok:
        return None
    best = min(ok, key=lambda r: r["ms"])
    heur = next((r for r in ok if r.get("heuristic")), None)
    if heur is not None and heur["ms"] <= best["ms"] * (1 + min_gain):
        return heur
    return best


def ingest(results: dict, *, db: Optional[str] = None, min_gain: float = MIN_GAIN, log=print) -> list:
    """Writes the winner of every case into the database; returns [(key, entry)]."""
    from flashlift.compiler import tuning

    written = []
    for row in results["cases"]:
        win = pick(row, min_gain)
        if win is None:
            log(f"{row['name']}: no candidate passed; nothing recorded")
            continue
        if not row.get("db_key"):
            log(f"{row['name']}: no database key (dynamic shape?); nothing recorded")
            continue
        heur = next((r for r in row["results"] if r.get("heuristic")), None)
        prov = {
            "device": results.get("device"), "date": (results.get("date") or _now())[:10],
            "ms": win["ms"], "ms_min": win.get("ms_min"), "rel_err": float(f"{win['rel_err']:.3g}"),
            "shape": [row["b"], row["h"], row["s"], row["d"]], "causal": row["causal"],
            "heuristic_ms": heur["ms"] if heur else None,
            "heuristic_knobs": heur["knobs"] if heur else None,
            "winner": "heuristic" if win.get("heuristic") else "tuned",
            "candidates": len(row["results"]), "dropped": len(row.get("dropped", [])),
            "timing": results.get("timing"), "commit": results.get("commit"), "tool": "attn-tune",
        }
        entry = tuning.record(row["db_key"], win["knobs"], prov, path=db)
        written.append((row["db_key"], entry))
        log(f"{row['name']}: {row['db_key']} <- {knob_text(win['knobs'])} ({win['ms']:.3f} ms"
            + (f", heuristic {heur['ms']:.3f} ms" if heur else "") + ")")
    return written


# --------------------------------------------------------------------------
# Helpers and the command line
# --------------------------------------------------------------------------

def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine() -> str:
    return f"{_cpu_model()} ({os.cpu_count()} cores)"


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    return f"{_cpu_model()} CPU ({os.cpu_count()} cores)"


def parse_shape(text: str) -> tuple:
    try:
        dims = tuple(int(x) for x in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) <= 0:
        raise argparse.ArgumentTypeError(f"--shape wants B,H,S,D (four positive integers), got '{text}'")
    return dims


def cases_from(shapes: list, dtypes: list, causal: str) -> list:
    flags = {"no": [False], "yes": [True], "both": [False, True]}[causal]
    return [{"b": b, "h": h, "s": s, "d": d, "dtype": dt, "causal": c}
            for b, h, s, d in shapes for dt in dtypes for c in flags]


def table(results: dict, min_gain: float = MIN_GAIN) -> str:
    lines = ["| case | heuristic knobs | ms | winner knobs | ms | speed-up | rel err | candidates (dropped) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in results["cases"]:
        win = pick(row, min_gain)
        heur = next((r for r in row["results"] if r.get("heuristic")), None)
        if win is None:
            lines.append(f"| {row['name']} | - | - | none passed | - | - | - | 0 ({len(row['dropped'])}) |")
            continue
        speed = f"{heur['ms'] / win['ms']:.2f}x" if heur else "-"
        lines.append(f"| {row['name']} | {knob_text(heur['knobs']) if heur else '-'} | "
                     f"{heur['ms']:.2f} | {knob_text(win['knobs'])} | {win['ms']:.2f} | {speed} | "
                     f"{win['rel_err']:.1e} | {len(row['results'])} ({len(row['dropped'])}) |"
                     if heur else
                     f"| {row['name']} | - | - | {knob_text(win['knobs'])} | {win['ms']:.2f} | - | "
                     f"{win['rel_err']:.1e} | {len(row['results'])} ({len(row['dropped'])}) |")
    return "\n".join(lines)


def _tune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="attn-tune", description=__doc__.splitlines()[0],
                                epilog="subcommands: 'attn-tune run-gpu FOLDER', 'attn-tune ingest RESULTS.json'")
    p.add_argument("--shape", action="append", type=parse_shape, required=True, help="B,H,S,D (repeatable)")
    p.add_argument("--dtype", default=None, help="comma list of f32,f16,bf16 (default: f32 on cpu, f16 on GPUs)")
    p.add_argument("--causal", nargs="?", const="yes", default="no", choices=["no", "yes", "both"])
    p.add_argument("--target", default="cpu", help="cpu, cuda, cuda:sm_86, rocm:gfx942 ...")
    p.add_argument("--candidates", type=int, default=6, help="at most this many candidates per case (heuristic included)")
    p.add_argument("--knobs", action="append", default=None, type=_parse_knobs,
                   help="an explicit candidate, e.g. m_vec=4,k2_vec=16 (repeatable; replaces the built-in list)")
    p.add_argument("--out", default=None, help="folder for modules + manifest (GPU targets: required)")
    p.add_argument("--db", default=None, help="tuning database to update (default: the packaged one)")
    p.add_argument("--min-gain", type=float, default=MIN_GAIN,
                   help=f"a candidate replaces the heuristic only when this much faster (default {MIN_GAIN})")
    p.add_argument("--driver", default="local-sync",
                   help="CPU: IREE runtime driver for timing (default local-sync: one thread, stable timings)")
    p.add_argument("--workers", type=int, default=None, help="CPU with --driver local-task: worker count")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--results", default=None, help="also write the results JSON here")
    p.add_argument("--dry-run", action="store_true", help="measure and report, do not write the database")
    p.add_argument("--cpu-kernel", action="store_true",
                   help="CPU: choose between the builds of flashlift's CPU kernel (avx2, avx512, ...) instead of IREE's knobs")
    return p


def _parse_knobs(text: str) -> dict:
    try:
        return {k.strip(): int(v) for k, v in (kv.split("=") for kv in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--knobs wants name=int[,name=int...], got '{text}'") from None


def main(argv: Optional[list] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run-gpu":
        p = argparse.ArgumentParser(prog="attn-tune run-gpu",
                                    description="Measure the candidates of a folder written by attn-tune on a GPU "
                                                "(needs only torch + iree-base-runtime).")
        p.add_argument("folder")
        p.add_argument("--out", default=None, help="results JSON (default: FOLDER/results.json)")
        p.add_argument("--driver", default=None, help="IREE runtime driver (default: the modules' own, e.g. cuda)")
        p.add_argument("--rounds", type=int, default=5)
        p.add_argument("--reps", type=int, default=10)
        a = p.parse_args(argv[1:])
        results = measure(a.folder, driver=a.driver, rounds=a.rounds, reps=a.reps)
        out = a.out or os.path.join(a.folder, "results.json")
        _write_json(out, results)
        print(table(results))
        print(f"results: {out}")
        return 0
    if argv and argv[0] == "ingest":
        p = argparse.ArgumentParser(prog="attn-tune ingest", description="Write the winners of a results JSON "
                                                                          "into the tuning database.")
        p.add_argument("results")
        p.add_argument("--db", default=None)
        p.add_argument("--min-gain", type=float, default=MIN_GAIN)
        a = p.parse_args(argv[1:])
        with open(a.results) as f:
            results = json.load(f)
        if results.get("format") != "attn-tune-results":
            print(f"attn-tune ingest: {a.results} is not an attn-tune results file", file=sys.stderr)
            return 2
        print(table(results, a.min_gain))
        written = ingest(results, db=a.db, min_gain=a.min_gain)
        print(f"{len(written)} entr{'y' if len(written) == 1 else 'ies'} written")
        return 0
    if argv and argv[0] == "tune":
        argv = argv[1:]
    a = _tune_parser().parse_args(argv)
    from flashlift.compiler.targets import parse_target

    target = parse_target(a.target)
    dtypes = (a.dtype or ("f32" if target.kind == "cpu" else "f16")).split(",")
    bad = [d for d in dtypes if d not in TOLERANCE]
    if bad:
        print(f"attn-tune: unknown dtype(s) {', '.join(bad)}; use f32, f16, bf16", file=sys.stderr)
        return 2
    cases = cases_from(a.shape, dtypes, a.causal)
    if target.kind != "cpu":
        if not a.out:
            print("attn-tune: GPU targets need --out FOLDER (the modules go to the GPU machine)", file=sys.stderr)
            return 2
        manifest = build(cases, target.name, a.out, limit=a.candidates, extra=a.knobs)
        n = sum(len(c["candidates"]) for c in manifest["cases"])
        print(f"{n} candidate modules + {MANIFEST} in {a.out}; on the GPU machine run\n"
              f"  attn-tune run-gpu {a.out} --out results.json   "
              f"(or PYTHONPATH=python python -m flashlift.tools.attn_tune run-gpu ...)\n"
              f"then here: attn-tune ingest results.json")
        return 0
    import tempfile

    with tempfile.TemporaryDirectory(prefix="attn-tune-") as tmp:
        folder = a.out or tmp
        if a.cpu_kernel:
            build_cpu_kernel(cases, target.name, folder)
        else:
            build(cases, target.name, folder, limit=a.candidates, extra=a.knobs)
        results = measure(folder, driver=a.driver, rounds=a.rounds, reps=a.reps, workers=a.workers)
    if a.results:
        _write_json(a.results, results)
    print(table(results, a.min_gain))
    if not a.dry_run:
        ingest(results, db=a.db, min_gain=a.min_gain)
    return 0


def _write_json(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


if __name__ == "__main__":
    raise SystemExit(main())
