"""flashlift's CPU attention kernels alone, without IREE: correctness and speed per core.

Builds each kernel source (compiler/kernels/cpu/fa_*.c) with the flags cpu_build uses plus
`-shared`, calls its entry point over the workgroup grid from one thread with ctypes, as
the shim IREE compiles would, and compares the output with torch (an f64 reference) and
the time with torch SDPA on one thread (`--threads N`: the workgroups on N threads, SDPA on
N). For working on the kernels: the numbers that count are bench/attention.py's, through IREE.

    .venv/bin/python tools/kernels/cpu_fa_bench.py [--isa avx2,avx512,avx512bf16] [--dtypes f32,bf16] [--reps 5]
    .venv/bin/python tools/kernels/cpu_fa_bench.py --isa avx512,avx512@/tmp/variant.c -D avx512@/tmp/variant.c:FL_KS=12
    # build here, run on a machine without a C compiler (the GPU machine's host CPU: AMX)
    .venv/bin/python tools/kernels/cpu_fa_bench.py --isa avx512bf16,avx512amx --lib-dir build/fa_libs --build-only
    python3 tools/kernels/cpu_fa_bench.py --isa avx512bf16,avx512amx --dtypes bf16 --lib-dir build/fa_libs
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

import flashlift  # noqa: E402

flashlift.__path__.append(ROOT)  # flashlift.compiler without the editable install (the GPU machine)
from flashlift.compiler.kernels import cpu_build, cpu_fa  # noqa: E402

SHAPES = [(1, 8, 1024, 64, False), (1, 8, 1024, 64, True), (1, 8, 512, 64, False), (2, 4, 256, 64, False),
          (1, 12, 128, 64, False), (1, 4, 300, 128, False), (1, 2, 77, 48, True)]
TYPES = {"f32": (torch.float32, "f32"), "f16": (torch.float16, "f16"), "bf16": (torch.bfloat16, "bf16")}


# Calls an entry point over the workgroup grid (as IREE's shim does, one workgroup at a time),
# from C: one ctypes call a run, so the timing is the kernel's (a ctypes call of 45 arguments a
# workgroup costs ~30 us, more than a workgroup's work on an AMX CPU). With threads > 1 the
# workgroups go to that many threads (the caller and threads - 1 started per run, ~20-50 us),
# each taking the next one from a shared counter, as IREE's workers take slices of the grid.
GRID_DRIVER = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#define MEMREF const void*, const void*, size_t, size_t, size_t
typedef void (*fa_fn)(MEMREF, MEMREF, MEMREF, MEMREF, MEMREF, size_t, size_t, size_t, size_t, size_t, size_t, size_t, size_t,
                      size_t, float, size_t, size_t, size_t, size_t, size_t, size_t, size_t, size_t, size_t);
typedef struct {
  fa_fn fn;
  const void *q, *k, *v, *m;
  void* o;
  size_t gx, gy, heads, sq, skv, d, causal, mask_kind;
  float scale;
  size_t next;  // the next workgroup to take (x + gx * y)
} grid_job;

static void* take_workgroups(void* arg) {
  grid_job* j = (grid_job*)arg;
  for (size_t w; (w = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < j->gx * j->gy;)
    j->fn(j->q, j->q, 0, 0, 1, j->k, j->k, 0, 0, 1, j->v, j->v, 0, 0, 1, j->m, j->m, 0, 0, 1, j->o, j->o, 0, 0, 1,
          w % j->gx, w / j->gx, j->heads, 1, j->sq, j->skv, j->d, j->causal, j->mask_kind, j->scale, 0, 0, 0, 0, 0,
          0, 0, 0, 0);
  return NULL;
}

void fl_bench_grid(fa_fn fn, const void* q, const void* k, const void* v, const void* m, void* o, size_t gx,
                   size_t gy, size_t heads, size_t sq, size_t skv, size_t d, size_t causal, size_t mask_kind,
                   float scale, size_t threads) {
  grid_job job = {fn, q, k, v, m, o, gx, gy, heads, sq, skv, d, causal, mask_kind, scale, 0};
  pthread_t helpers[63];
  size_t started = 0;
  for (; started + 1 < threads && started < 63; ++started)
    if (pthread_create(&helpers[started], NULL, take_workgroups, &job)) break;
  take_workgroups(&job);
  for (size_t t = 0; t < started; ++t) pthread_join(helpers[t], NULL);
}
"""


def shared_library(isa: str, extra: tuple = (), source: str = "", lib_dir: str = "", load: bool = True):
    """The kernel source for `isa` (or another file: a variant being tried) built as a shared
    library (cpu_build's flags + `extra`). With lib_dir: the one there if it exists (built on
    another machine), else built there."""
    own, defines = cpu_build.source_of("attention", isa)
    # (the driver's text in the name too: a library built with an older driver is not reused)
    tag = hashlib.sha1(repr((source, extra, GRID_DRIVER)).encode()).hexdigest()[:8]
    out = os.path.join(lib_dir or tempfile.mkdtemp(prefix="fa-bench-"), f"fa_{isa}-{tag}.so")
    if lib_dir and os.path.exists(out):
        return ctypes.CDLL(out) if load else None
    os.makedirs(os.path.dirname(out), exist_ok=True)
    driver = os.path.join(os.path.dirname(out), "grid_driver.c")
    with open(driver, "w") as f:
        f.write(GRID_DRIVER)
    cmd = [cpu_build.compiler(), *cpu_build.CFLAGS, *cpu_build.ISA_FLAGS[isa], *defines, *extra, "-shared", "-pthread",
           "-I", cpu_build.SOURCE_DIR, source or os.path.join(cpu_build.SOURCE_DIR, own), driver, "-o", out]
    subprocess.run(cmd, check=True)
    return ctypes.CDLL(out) if load else None


def call(lib, isa: str, q, k, v, causal: bool, scale: float, mask=None, threads: int = 1):
    """O = the kernel's attention of (B, H, S, D) contiguous q, k, v, one workgroup at a time
    on each of `threads` threads; mask: None, an f32 [B, Skv] key-padding mask or an additive
    [B, Sq, Skv] one."""
    b, h, sq, d = q.shape
    skv = k.shape[2]
    dtype = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}[q.dtype]
    o = torch.empty_like(q)
    fn = getattr(lib, f"flashlift_attention_{dtype}_{dtype}_{isa}")
    ptr = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    size = ctypes.c_size_t
    grid = cpu_fa.workgroups(b * h, sq)
    mask_kind = 0 if mask is None else 1 if mask.dim() == 2 else 2
    lib.fl_bench_grid.restype = None
    args = [ctypes.cast(fn, ctypes.c_void_p)] + [ptr(t) for t in (q, k, v, q if mask is None else mask, o)]
    args += [size(n) for n in (*grid[:2], h, sq, skv, d, 1 if causal else 0, mask_kind)] + [ctypes.c_float(scale),
                                                                                            size(threads)]
    # the run holds the tensors its pointers point into (a caller may drop the output)
    return o, lambda _keep=(q, k, v, mask, o): lib.fl_bench_grid(*args)


def median_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--isa", default=",".join(cpu_build.host_isas()),
                   help="builds to run, comma list; ISA@FILE builds a variant source for that ISA")
    p.add_argument("--dtypes", default="f32,f16,bf16")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--shapes", default="", help="indices into SHAPES, comma list (default: all)")
    p.add_argument("--mask", default="none", choices=["none", "key_padding", "full"],
                   help="a run-time f32 mask: [B, Skv] key padding (the last quarter of keys hidden) or [B, Sq, Skv]")
    p.add_argument("-D", dest="defines", action="append", default=[],
                   help="a define for the build (e.g. -D FL_KS=12: another block shape); repeatable, "
                        "'isa:NAME=V' for one ISA's build only")
    p.add_argument("--lib-dir", default="", help="keep the shared libraries here; use those found here")
    p.add_argument("--build-only", action="store_true", help="build the libraries into --lib-dir and stop")
    p.add_argument("--threads", type=int, default=1, help="threads for the kernel's workgroups and for torch")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    libs = {}
    for isa in args.isa.split(","):
        label, _, source = isa.partition("@")  # avx512@FILE: a variant of the avx512 source
        extra = tuple(f"-D{d.split(':', 1)[1] if ':' in d else d}" for d in args.defines
                      if ":" not in d or d.split(":", 1)[0] == isa)
        libs[isa] = (label, shared_library(label, extra, source, args.lib_dir, load=not args.build_only))
    if args.build_only:
        return 0
    shapes = [SHAPES[int(i)] for i in args.shapes.split(",")] if args.shapes else SHAPES
    print(f"{'shape':<22} {'dtype':<5} {'isa':<11} {'ms':>8} {'GFLOP/s':>8} {'sdpa ms':>8} {'vs sdpa':>8} {'err':>8}")
    for b, h, s, d, causal in shapes:
        for name in args.dtypes.split(","):
            dtype = TYPES[name][0]
            q, k, v = (torch.randn(b, h, s, d).to(dtype) for _ in range(3))
            scale = 1 / math.sqrt(d)
            mask, bias = None, None
            if args.mask == "key_padding":
                mask = torch.zeros(b, s)
                mask[:, s - s // 4:] = torch.finfo(torch.float32).min
                bias = mask[:, None, None, :]
            elif args.mask == "full":
                mask = torch.randn(b, s, s)
                bias = mask[:, None]
            if causal and bias is not None:
                continue  # the kernel's causal mask is built in; a run-time one comes alone
            ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=causal,
                                                 attn_mask=None if bias is None else bias.double())
            sdpa_ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, attn_mask=None if bias is None else bias.to(dtype)), args.reps)
            flops = 4 * b * h * s * s * d / (2 if causal else 1)
            for isa, (label, lib) in libs.items():
                o, run = call(lib, label, q, k, v, causal, scale, mask, args.threads)
                ms = median_ms(run, args.reps)
                err = ((o.double() - ref).norm() / ref.norm()).item()
                print(f"{f'{b}x{h}x{s}x{d}' + (' causal' if causal else ''):<22} {name:<5} {isa:<11} {ms:8.3f} "
                      f"{flops / ms / 1e6:8.1f} {sdpa_ms:8.3f} {sdpa_ms / ms:8.2f} {err:8.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
