"""Tune the Triton FA forward kernel (triton_fa.py) on a GPU, against torch SDPA.

Needs a CUDA GPU, torch and triton 3.6 (no IREE). Launches exactly what
build_ptx embeds: triton_fa.compile_kernel(...) (AOT triton.compile for the
GPU's arch, every shape constexpr, 16-byte aligned pointers) and runs the
CompiledKernel directly. Compiles happen in a process pool first (they fill the
Triton cache; the timing process then only loads them).

    python tools/kernels/tune_on_gpu.py --out $OUT            # full sweep
    python tools/kernels/tune_on_gpu.py --out $OUT --table     # only the
        # configs fa_configs.tuned_config picks (verification / final table)

Phases of the sweep (all f16 unless said):
  A  tile sweep (BLOCK_M, BLOCK_N, num_warps, num_stages), FOLD_SCALE on; plus the
     original kernel with its original default tile ("orig")
  B  variants on the 2 best tiles of each case: EXP16 x KTRANS (x REVERSE_M if
     causal), FOLD_SCALE off
  C  bf16: the 3 best f16 combos of each case, + the best with EXP16 toggled
  S  semantics: ragged Sq/Skv, GQA, bottom-right, Sq > Skv, spiky inputs with the
     chosen combos of each head dim (numerics only)
  E  final table per (shape, dtype, causal): chosen combo vs SDPA, timed twice

Numerics: rel. Frobenius error vs torch SDPA in float32 (math backend, TF32
off) on the same rounded inputs; f16 must be < 2e-3, bf16 < 8e-3 (rounding the
exact result to bf16 alone costs ~1.7e-3; torch's bf16 SDPA lands ~2.3e-3).
The output is poisoned with NaN before each checked launch.
Timing: triton.testing.do_bench (CUDA events, L2 flushed between reps), median.
Writes <out>/tuning.json and <out>/table.md; prints the table last.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import itertools
import json
import math
import multiprocessing as mp
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import flashlift  # noqa: E402

flashlift.__path__.append(ROOT)  # flashlift.compiler from this checkout without the editable install
from flashlift.compiler.kernels import fa_configs, triton_fa  # noqa: E402

SHAPES = [  # B, H, S, D  (Sq == Skv, kv_heads == H)
    (4, 16, 4096, 64),
    (2, 16, 4096, 128),
    (8, 16, 1024, 64),
    (1, 32, 8192, 128),
    (16, 12, 512, 64),
]

# (BLOCK_M, BLOCK_N, num_warps, [num_stages...]) per head dim
TILES = {
    64: [(64, 64, 4, [3, 4]), (64, 128, 4, [2, 3]), (128, 32, 4, [3]),
         (128, 64, 4, [2, 3, 4]), (128, 128, 4, [2]), (128, 64, 8, [3, 4]),
         (128, 128, 8, [2, 3, 4]), (256, 64, 8, [2, 3]), (256, 128, 8, [2])],
    128: [(64, 64, 4, [2, 3]), (64, 128, 4, [2]), (128, 32, 4, [3]),
          (128, 64, 4, [2, 3]), (128, 32, 8, [3, 4]), (128, 64, 8, [2, 3, 4]),
          (128, 128, 8, [2, 3]), (256, 64, 8, [2])],
}
SMEM_LIMIT = 232448 - 2048   # sm_90 opt-in limit minus barriers / slack
TOL = {"fp16": 2e-3, "bf16": 8e-3}
FLAG_NAMES = fa_configs.VARIANT_FLAGS


def _t(bm, bn, w, s, **flags):
    return dict(BLOCK_M=bm, BLOCK_N=bn, num_warps=w, num_stages=s, **flags)


# second round (--refine), after the first sweep's winners: m64n64w4s3 (d64),
# m128n128w8s3 (d128). F = FOLD_SCALE, K = KTRANS, R = REVERSE_M (causal only).
_F = dict(FOLD_SCALE=True)
REFINE = {
    64: [_t(64, 64, 4, 3, **_F), _t(64, 64, 4, 3, KTRANS=True, **_F),
         _t(64, 64, 4, 3, REVERSE_M=True, **_F), _t(64, 64, 4, 3, KTRANS=True, REVERSE_M=True, **_F),
         _t(64, 64, 4, 4, **_F), _t(64, 64, 4, 4, KTRANS=True, REVERSE_M=True, **_F),
         _t(64, 32, 4, 4, **_F), _t(64, 64, 4, 3, PIPE_QK=True, **_F), _t(128, 64, 4, 3, **_F),
         _t(64, 64, 4, 3)],
    128: [_t(128, 128, 8, 3, **_F), _t(128, 128, 8, 3, KTRANS=True, **_F),
          _t(128, 128, 8, 3, REVERSE_M=True, **_F), _t(128, 128, 8, 3, KTRANS=True, REVERSE_M=True, **_F),
          _t(128, 128, 8, 3), _t(128, 128, 8, 3, REVERSE_M=True),
          _t(128, 64, 8, 3, **_F), _t(128, 64, 8, 3, KTRANS=True, **_F), _t(128, 64, 8, 3, PIPE_QK=True, **_F),
          _t(64, 64, 4, 3, REVERSE_M=True, **_F), _t(64, 64, 4, 3, KTRANS=True, REVERSE_M=True, **_F),
          _t(64, 32, 4, 3, **_F), _t(64, 32, 4, 4, **_F), _t(128, 64, 4, 2, KTRANS=True, **_F),
          _t(128, 64, 8, 2, maxnreg=128, **_F)],
}


def smem_estimate(bm, bn, d, stages):
    return bm * d * 2 + stages * bn * d * 4


def tile_configs(d):
    out = []
    for bm, bn, w, ss in TILES[d]:
        for s in ss:
            if smem_estimate(bm, bn, d, s) <= SMEM_LIMIT:
                out.append(dict(BLOCK_M=bm, BLOCK_N=bn, num_warps=w, num_stages=s))
    return out


def combo_key(cfg):
    t = f"m{cfg['BLOCK_M']}n{cfg['BLOCK_N']}w{cfg['num_warps']}s{cfg['num_stages']}"
    fl = [f for f in FLAG_NAMES if cfg.get(f)]
    if cfg.get("maxnreg"):
        fl.append(f"maxnreg{cfg['maxnreg']}")
    return t + ("+" + "+".join(fl) if fl else "")


# --------------------------------------------------------------------------
# compile (process pool) -- fills the Triton cache
# --------------------------------------------------------------------------

def _compile_job(job):
    t0 = time.time()
    try:
        ck, cfg, _ = triton_fa.compile_kernel(**job)
        md = ck.metadata
        return dict(ok=True, shared=int(md.shared), secs=time.time() - t0,
                    scratch=int(md.global_scratch_size or 0))
    except Exception as e:  # noqa: BLE001
        return dict(ok=False, err=f"{type(e).__name__}: {str(e)[:300]}", secs=time.time() - t0)


def precompile(pool, jobs, log):
    if not jobs:
        return {}
    t0 = time.time()
    uniq = {}
    for j in jobs:
        uniq.setdefault(json.dumps(j, sort_keys=True), j)
    res = {}
    futs = {pool.submit(_compile_job, j): k for k, j in uniq.items()}
    for f in cf.as_completed(futs):
        res[futs[f]] = f.result()
    bad = sum(1 for r in res.values() if not r["ok"])
    log(f"  compiled {len(uniq)} kernels in {time.time() - t0:.1f}s ({bad} failed)")
    return res


# --------------------------------------------------------------------------
# GPU side
# --------------------------------------------------------------------------

class Bench:
    def __init__(self, args, log):
        import torch
        import triton
        self.torch = torch
        self.triton = triton
        self.args = args
        self.log = log
        self.cc = torch.cuda.get_device_capability()
        self.arch = self.cc[0] * 10 + self.cc[1]
        self.arch_build = 90 if self.arch >= 90 else 80
        self.inputs = {}
        self.refs = {}
        self.sdpa_ms = {}
        self.kernels = {}
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def job(self, case, dtype, cfg):
        b, h, kvh, sq, skv, d, causal, br = case
        return dict(batch=b, heads=h, kv_heads=kvh, sq=sq, skv=skv, head_dim=d, dtype=dtype,
                    causal=causal, bottom_right=br, arch=self.arch_build, config=cfg)

    def get_inputs(self, case, dtype, spiky=False):
        torch = self.torch
        key = (case, dtype, spiky)
        if key not in self.inputs:
            self.inputs.clear()
            self.refs.clear()
            b, h, kvh, sq, skv, d, causal, br = case
            tdt = torch.float16 if dtype == "fp16" else torch.bfloat16
            g = torch.Generator(device="cuda").manual_seed(hash(key) & 0xFFFF)
            q = torch.randn(b, h, sq, d, device="cuda", generator=g).to(tdt)
            k = torch.randn(b, kvh, skv, d, device="cuda", generator=g).to(tdt)
            v = torch.randn(b, kvh, skv, d, device="cuda", generator=g).to(tdt)
            if spiky:   # large logits: stresses the running max / exp path
                q = (q.float() * 4).to(tdt)
            self.inputs[key] = (q, k, v)
        return self.inputs[key]

    def reference(self, case, dtype, spiky=False):
        torch = self.torch
        import torch.nn.functional as F
        key = (case, dtype, spiky)
        if key not in self.refs:
            q, k, v = self.get_inputs(case, dtype, spiky)
            b, h, kvh, sq, skv, d, causal, br = case
            qf, kf, vf = q.float(), k.float(), v.float()
            if kvh != h:
                kf = kf.repeat_interleave(h // kvh, 1)
                vf = vf.repeat_interleave(h // kvh, 1)
            outs = []
            for bi in range(b):   # per batch: bounds the math backend's memory
                mask = None
                if causal:
                    diag = (skv - sq) if br else 0
                    i = torch.arange(sq, device="cuda")[:, None]
                    j = torch.arange(skv, device="cuda")[None, :]
                    mask = j <= i + diag
                with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
                    o = F.scaled_dot_product_attention(qf[bi:bi + 1], kf[bi:bi + 1], vf[bi:bi + 1],
                                                       attn_mask=mask)
                outs.append(torch.nan_to_num(o, 0.0))
            self.refs[key] = torch.cat(outs)
        return self.refs[key]

    def sdpa(self, case, dtype):
        import torch.nn.functional as F
        key = (case, dtype)
        if key not in self.sdpa_ms:
            q, k, v = self.get_inputs(case, dtype)
            causal = case[6]
            fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # noqa: E731
            o = fn()
            err = self.relerr(o, self.reference(case, dtype))
            ms = self.triton.testing.do_bench(fn, warmup=self.args.warmup, rep=self.args.rep,
                                              return_mode="median")
            self.sdpa_ms[key] = (ms, err)
        return self.sdpa_ms[key]

    def sdpa_kernel_names(self, case, dtype):
        import torch.nn.functional as F
        from torch.profiler import profile, ProfilerActivity
        q, k, v = self.get_inputs(case, dtype)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            F.scaled_dot_product_attention(q, k, v, is_causal=case[6])
            self.torch.cuda.synchronize()
        return sorted({e.name[:80] for e in prof.events() if e.device_type.name == "CUDA"})

    def relerr(self, o, ref):
        of = o.float()
        if not bool(self.torch.isfinite(of).all()):
            return float("nan")
        return float((of - ref).norm() / ref.norm())

    def load(self, case, dtype, cfg):
        key = json.dumps(self.job(case, dtype, cfg), sort_keys=True)
        if key not in self.kernels:
            ck, rcfg, consts = triton_fa.compile_kernel(**self.job(case, dtype, cfg))
            ck._init_handles()
            self.kernels[key] = (ck, rcfg, consts)
        return self.kernels[key]

    def run_kernel(self, case, dtype, cfg, time_it=True, spiky=False):
        torch = self.torch
        b, h, kvh, sq, skv, d, causal, br = case
        r = dict(case=list(case), dtype=dtype, combo=combo_key(cfg), cfg=dict(cfg))
        try:
            ck, rcfg, consts = self.load(case, dtype, cfg)
        except Exception as e:  # noqa: BLE001
            r.update(ok=False, err=f"{type(e).__name__}: {str(e)[:300]}")
            return r
        r.update(combo=combo_key(rcfg), cfg={k: rcfg[k] for k in rcfg},
                 regs=ck.n_regs, spills=ck.n_spills, smem=int(ck.metadata.shared))
        q, k, v = self.get_inputs(case, dtype, spiky)
        o = torch.full_like(q, float("nan"))
        grid = (self.triton.cdiv(sq, rcfg["BLOCK_M"]), b * h, 1)
        cargs = list(consts.values())
        runner = ck[grid]
        fn = lambda: runner(q, k, v, None, o, *cargs)  # noqa: E731  (None: no key-padding mask)
        try:
            fn()
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001
            r.update(ok=False, err=f"launch: {type(e).__name__}: {str(e)[:300]}")
            return r
        err = self.relerr(o, self.reference(case, dtype, spiky))
        r["relerr"] = err
        r["ok"] = bool(err == err and err < TOL[dtype])
        if time_it and r["ok"]:
            r["ms"] = self.triton.testing.do_bench(fn, warmup=self.args.warmup, rep=self.args.rep,
                                                   return_mode="median")
            fl = flops(case)
            r["tflops"] = fl / r["ms"] * 1e-9
            s_ms, s_err = self.sdpa(case, dtype)
            r["sdpa_ms"] = s_ms
            r["speedup"] = s_ms / r["ms"]
        return r


def visible_pairs(sq, skv, causal, br):
    if not causal:
        return sq * skv
    diag = (skv - sq) if br else 0
    # sum_i clamp(i + diag + 1, 0, skv)
    tot = 0
    for i in range(sq):
        tot += min(max(i + diag + 1, 0), skv)
    return tot


def flops(case):
    b, h, kvh, sq, skv, d, causal, br = case
    return 4.0 * b * h * d * visible_pairs(sq, skv, causal, br)


def shape_case(shape, causal):
    b, h, s, d = shape
    return (b, h, h, s, s, d, bool(causal), False)


def case_name(case, dtype=None):
    b, h, kvh, sq, skv, d, causal, br = case
    n = f"b{b}_h{h}" + (f"_kv{kvh}" if kvh != h else "") + (f"_s{sq}" if sq == skv else f"_sq{sq}_skv{skv}")
    n += f"_d{d}" + (("_causal" + ("_br" if br else "")) if causal else "")
    return n + (f"_{dtype}" if dtype else "")


def class_key(case, dtype):
    b, h, kvh, sq, skv, d, causal, br = case
    return f"d{d}_{'causal' if causal else 'full'}_{dtype}_{fa_configs.length_class(sq, skv)}"


# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--table", action="store_true", help="only the tuned configs (+ semantics)")
    ap.add_argument("--phases", default="A,B,C,S,E")
    ap.add_argument("--shapes", default=None, help="indices into SHAPES, e.g. 0,2")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rep", type=int, default=40)
    ap.add_argument("--final-rep", type=int, default=150)
    ap.add_argument("--budget", type=float, default=330.0, help="seconds; later phases shrink/skip")
    ap.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 4))
    ap.add_argument("--extra", default=None, help="JSON list of extra cfg dicts tried in phase A")
    ap.add_argument("--refine", action="store_true",
                    help="instead of phases A-C: every REFINE combo of the head dim, on every case, "
                         "f16 and bf16")
    ap.add_argument("--profile-one", default=None,
                    help='JSON {"shape":[B,H,S,D],"causal":0,"dtype":"fp16","cfg":{...}}: just launch '
                         'that kernel 3 times (for ncu)')
    ap.add_argument("--build-iree", default=None, metavar="DIR",
                    help="(build machine, no GPU) build_spike.py's vmfbs for SHAPES x {f16,bf16} x "
                         "{causal, not} with the tuned sm_90 configs into DIR, then exit")
    args = ap.parse_args(argv)
    if args.build_iree:
        import build_spike  # tools/kernels/build_spike.py, next to this script (needs iree-compile)
        build_spike.CONFIGS = [
            (case_name(shape_case(s, c), dt), s[0], s[1], s[1], s[2], s[2], s[3], dt,
             "top_left" if c else False)
            for s in SHAPES for dt in ("f16", "bf16") for c in (False, True)]
        return build_spike.main([args.build_iree, "--archs", "90", "--no-alt-tiles"])
    os.makedirs(args.out, exist_ok=True)
    if args.profile_one:
        spec = json.loads(args.profile_one)
        import torch
        bench = Bench(args, print)
        c = shape_case(tuple(spec["shape"]), spec.get("causal", False))
        for _ in range(3):
            r = bench.run_kernel(c, spec.get("dtype", "fp16"), spec["cfg"], time_it=False)
        torch.cuda.synchronize()
        print("profile-one", r)
        return 0
    t_start = time.time()
    logf = open(os.path.join(args.out, "tune_log.txt"), "a")

    def log(*a):
        s = " ".join(str(x) for x in a)
        print(s, flush=True)
        logf.write(s + "\n")
        logf.flush()

    def elapsed():
        return time.time() - t_start

    pool = cf.ProcessPoolExecutor(max_workers=args.workers, mp_context=mp.get_context("spawn"))
    import torch
    bench = Bench(args, log)
    props = torch.cuda.get_device_properties(0)
    import triton
    info = dict(device=props.name, cc=list(bench.cc), sms=props.multi_processor_count,
                torch=torch.__version__, triton=triton.__version__, arch_build=bench.arch_build,
                cuda=torch.version.cuda)
    log("device:", json.dumps(info))
    shapes = SHAPES if not args.shapes else [SHAPES[int(i)] for i in args.shapes.split(",")]
    phases = set(args.phases.split(","))
    results = []          # every measurement
    cases = [shape_case(s, c) for s in shapes for c in (False, True)]

    def measure(jobs_cd, label):
        """jobs_cd: list of (case, dtype, cfg). precompile then time."""
        precompile(pool, [bench.job(c, d, cfg) for c, d, cfg in jobs_cd], log)
        out = []
        for c, d, cfg in jobs_cd:
            r = bench.run_kernel(c, d, cfg)
            r["phase"] = label
            out.append(r)
            results.append(r)
            if r.get("ok"):
                log(f"  {label} {case_name(c, d):32s} {r['combo']:44s} {r['ms']:.4f} ms "
                    f"{r['tflops']:6.1f} TF/s x{r['speedup']:.2f} err={r['relerr']:.2e} "
                    f"regs={r['regs']} sp={r['spills']} smem={r['smem']}")
            else:
                log(f"  {label} {case_name(c, d):32s} {r['combo']:44s} FAIL "
                    f"{r.get('err', '')} err={r.get('relerr')}")
        return out

    def ranked(case, dtype, phase_set=None):
        rs = [r for r in results if r.get("ok") and tuple(r["case"]) == case and r["dtype"] == dtype
              and (phase_set is None or r["phase"] in phase_set)]
        best = {}
        for r in rs:
            if r["combo"] not in best or r["ms"] < best[r["combo"]]["ms"]:
                best[r["combo"]] = r
        return sorted(best.values(), key=lambda r: r["ms"])

    chosen = {}   # (case, dtype) -> cfg

    def choose_fastest(dtype, fallback=None):
        """chosen[(case, dtype)] = the fastest measured cfg of each case; with none measured,
        the one chosen for (case, fallback) if any."""
        for c in cases:
            rk = ranked(c, dtype)
            if rk:
                chosen[(c, dtype)] = rk[0]["cfg"]
            elif fallback is not None and (c, fallback) in chosen:
                chosen[(c, dtype)] = chosen[(c, fallback)]

    def dump(tag):
        with open(os.path.join(args.out, "tuning_partial.json"), "w") as f:
            json.dump(dict(info=info, tag=tag, elapsed_s=elapsed(), results=results), f, default=str)

    if args.refine:
        log(f"[R] refine ({elapsed():.0f}s)")
        jobs = []
        for c in cases:
            for dt in ("fp16", "bf16"):
                seen = set()
                for combo in REFINE[c[5]]:
                    rc = fa_configs.resolve_config(head_dim=c[5], arch=bench.arch_build, causal=c[6],
                                                  dtype=dt, sq=c[3], skv=c[4], scale=1.0, config=combo)
                    if combo_key(rc) in seen:
                        continue
                    seen.add(combo_key(rc))
                    jobs.append((c, dt, combo))
        measure(jobs, "R")
        dump("R")
        for dt in ("fp16", "bf16"):
            choose_fastest(dt)
    elif args.table:
        for c in cases:
            for dt in ("fp16", "bf16"):
                chosen[(c, dt)] = fa_configs.resolve_config(
                    head_dim=c[5], arch=bench.arch_build, causal=c[6], dtype=dt, sq=c[3], skv=c[4],
                    scale=1.0)
    else:
        base_flags = dict(FOLD_SCALE=True, EXP16=False, KTRANS=False, REVERSE_M=False)
        extra = json.loads(args.extra) if args.extra else []
        if "A" in phases:
            log(f"[A] tile sweep ({elapsed():.0f}s)")
            jobs = []
            for c in cases:
                d = c[5]
                orig = dict(fa_configs.CANDIDATE_CONFIGS[(bench.arch_build, d)][0])
                orig.update(FOLD_SCALE=False, EXP16=False, KTRANS=False, REVERSE_M=False)
                jobs.append((c, "fp16", orig))
                for t in tile_configs(d) + [e for e in extra if e.get("d", d) == d]:
                    t = {k: v for k, v in t.items() if k != "d"}
                    jobs.append((c, "fp16", dict(base_flags, **t)))
            measure(jobs, "A")
            dump("A")
        if "B" in phases and elapsed() < args.budget * 0.55:
            log(f"[B] variants ({elapsed():.0f}s)")
            jobs = []
            for c in cases:
                top = [r for r in ranked(c, "fp16") if r["cfg"].get("FOLD_SCALE")][:2]
                for i, r in enumerate(top):
                    tile = {k: r["cfg"][k] for k in ("BLOCK_M", "BLOCK_N", "num_warps", "num_stages")}
                    revs = (False, True) if c[6] else (False,)
                    for e16, kt, rv in itertools.product((False, True), (False, True), revs):
                        if not (e16 or kt or rv):
                            continue
                        jobs.append((c, "fp16", dict(tile, FOLD_SCALE=True, EXP16=e16, KTRANS=kt, REVERSE_M=rv)))
                    if i == 0:
                        jobs.append((c, "fp16", dict(tile, FOLD_SCALE=False, EXP16=False, KTRANS=False,
                                                     REVERSE_M=False)))
            measure(jobs, "B")
            dump("B")
        choose_fastest("fp16")
        if "C" in phases and elapsed() < args.budget * 0.75:
            log(f"[C] bf16 ({elapsed():.0f}s)")
            jobs = []
            for c in cases:
                rk = ranked(c, "fp16")[:3]
                for r in rk:
                    jobs.append((c, "bf16", dict(r["cfg"])))
                if rk:
                    tog = dict(rk[0]["cfg"])
                    tog["EXP16"] = not tog.get("EXP16")
                    jobs.append((c, "bf16", tog))
            measure(jobs, "C")
            dump("C")
        choose_fastest("bf16", fallback="fp16")

    # ---- class winners: best geomean slowdown over the shapes of a class ----
    winners = {}
    classes = {}
    for (c, dt) in chosen:
        classes.setdefault(class_key(c, dt), []).append((c, dt))
    for ck_, members in sorted(classes.items()):
        combos = None
        per = {}
        for c, dt in members:
            rk = ranked(c, dt)
            if not rk:
                continue
            per[(c, dt)] = {r["combo"]: r for r in rk}
            combos = set(per[(c, dt)]) if combos is None else combos & set(per[(c, dt)])
        if not combos:
            continue
        def score(cb):
            return math.exp(sum(math.log(per[m][cb]["ms"] / min(x["ms"] for x in per[m].values()))
                                for m in per) / len(per))
        best = min(combos, key=score)
        cfg = next(iter(per.values()))[best]["cfg"]
        winners[ck_] = dict(combo=best, cfg=cfg, geomean_slowdown=score(best),
                            members=[case_name(c, dt) for c, dt in per])
        if not args.table:
            for c, dt in members:
                chosen[(c, dt)] = cfg
    if winners:
        log("class winners:")
        for k, w in winners.items():
            log(f"  {k:28s} {w['combo']:44s} geomean slowdown vs per-shape best {w['geomean_slowdown']:.3f}")

    # ---- semantics: ragged / GQA / bottom-right / spiky, numerics only ----
    sem = []
    if "S" in phases and elapsed() < args.budget * 0.85:
        log(f"[S] semantics ({elapsed():.0f}s)")
        sem_cases = [  # B, H, KVH, Sq, Skv, D, causal, br
            (2, 8, 2, 1000, 777, 64, True, True),
            (1, 8, 8, 777, 1000, 64, True, False),
            (2, 8, 4, 1000, 1000, 64, False, False),
            (1, 4, 4, 300, 130, 128, True, True),      # Sq > Skv bottom-right: empty rows -> 0
            (2, 16, 4, 2000, 2000, 128, True, False),
            (1, 8, 8, 1500, 3001, 128, True, True),
        ]
        sem_jobs = []
        for c in sem_cases:
            for dt in ("fp16", "bf16"):
                cfgs = {}
                for (cc, cdt), cfg in chosen.items():
                    if cc[5] == c[5] and cdt == dt and cc[6] == c[6]:
                        cfgs[combo_key(cfg)] = cfg
                for cfg in cfgs.values():
                    sem_jobs.append((c, dt, cfg, False))
        for (cc, cdt), cfg in chosen.items():       # spiky logits, chosen combo of each case
            if cc[0] * cc[1] * cc[3] <= 2 * 16 * 4096:
                sem_jobs.append((cc, cdt, cfg, True))
        precompile(pool, [bench.job(c, d, cfg) for c, d, cfg, _ in sem_jobs], log)
        for c, dt, cfg, spiky in sem_jobs:
            r = bench.run_kernel(c, dt, cfg, time_it=False, spiky=spiky)
            r["spiky"] = spiky
            sem.append(r)
            log(f"  S {case_name(c, dt):40s}{' spiky' if spiky else ''} {r['combo']:44s} "
                f"err={r.get('relerr', float('nan')):.2e} {'ok' if r.get('ok') else 'FAIL ' + r.get('err', '')}")

    # ---- final table ----
    table = []
    if "E" in phases:
        log(f"[E] final table ({elapsed():.0f}s)")
        args.rep = args.final_rep
        args.warmup = 25
        bench.sdpa_ms.clear()
        precompile(pool, [bench.job(c, d, cfg) for (c, d), cfg in chosen.items()], log)
        for s in shapes:
            for dt in ("fp16", "bf16"):
                for causal in (False, True):
                    c = shape_case(s, causal)
                    if (c, dt) not in chosen:
                        continue
                    cfg = chosen[(c, dt)]
                    r1 = bench.run_kernel(c, dt, cfg)
                    if not r1.get("ok"):
                        table.append(dict(case=case_name(c), dtype=dt, ok=False, err=r1.get("err"),
                                          relerr=r1.get("relerr")))
                        continue
                    s1 = bench.sdpa_ms[(c, dt)]
                    bench.sdpa_ms.pop((c, dt))
                    r2 = bench.run_kernel(c, dt, cfg)
                    s2 = bench.sdpa_ms[(c, dt)]
                    k_ms = min(r1["ms"], r2["ms"])
                    t_ms = min(s1[0], s2[0])
                    names = bench.sdpa_kernel_names(c, dt) if dt == "fp16" else []
                    table.append(dict(
                        case=case_name(c), dtype=dt, causal=causal, combo=r1["combo"], cfg=r1["cfg"],
                        ok=True, relerr=r1["relerr"], sdpa_relerr=s1[1], kernel_ms=[r1["ms"], r2["ms"]],
                        sdpa_ms=[s1[0], s2[0]], kernel_tflops=flops(c) / k_ms * 1e-9,
                        sdpa_tflops=flops(c) / t_ms * 1e-9, ratio=t_ms / k_ms, regs=r1["regs"],
                        spills=r1["spills"], smem=r1["smem"], sdpa_kernels=names))
                    log(f"  E {case_name(c, dt):32s} {r1['combo']:44s} {k_ms:.4f} ms vs SDPA {t_ms:.4f} "
                        f"-> x{t_ms / k_ms:.2f}")

    # ---- output ----
    summary = dict(info=info, elapsed_s=elapsed(), winners=winners, table=table, semantics=sem,
                   results=results)
    with open(os.path.join(args.out, "tuning.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    lines = [f"device: {info['device']} (cc {info['cc'][0]}.{info['cc'][1]}, {info['sms']} SMs), "
             f"torch {info['torch']}, triton {info['triton']}, kernels built for sm_{bench.arch_build}"
             f"{'a' if bench.arch_build == 90 else ''}", "",
             "| shape (B,H,S,D) | dtype | causal | config | kernel ms (TFLOP/s) | SDPA ms (TFLOP/s) | "
             "kernel/SDPA speed | rel.err (SDPA's) | regs/spill/smem |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in table:
        if not t.get("ok"):
            lines.append(f"| {t['case']} | {t['dtype']} | | FAIL {t.get('err')} | | | | {t.get('relerr')} | |")
            continue
        lines.append(
            f"| {t['case']} | {t['dtype']} | {'yes' if t['causal'] else 'no'} | {t['combo']} | "
            f"{min(t['kernel_ms']):.4f} ({t['kernel_tflops']:.0f}) | {min(t['sdpa_ms']):.4f} "
            f"({t['sdpa_tflops']:.0f}) | **{t['ratio']:.2f}x** | {t['relerr']:.2e} ({t['sdpa_relerr']:.2e}) | "
            f"{t['regs']}/{t['spills']}/{t['smem'] // 1024}K |")
    sdpa_k = sorted({n for t in table for n in t.get("sdpa_kernels", [])})
    if sdpa_k:
        lines += ["", "SDPA kernels seen (fp16): " + "; ".join(sdpa_k)]
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    log(f"done in {elapsed():.0f}s")
    print("\n".join(lines))
    pool.shutdown(cancel_futures=True)
    bad = [s for s in sem if not s.get("ok")] + [t for t in table if not t.get("ok")]
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.exit(2)
