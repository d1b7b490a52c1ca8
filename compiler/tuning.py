"""The tuning database: measured winning lowering knobs for attention, by shape class, and
flashlift's GEMM kernel's tiles per linear-layer shape.

``tuning_db.json`` (next to this file, shipped as package data) maps a *key* to the knobs
that won an ``attn-tune`` run and where they were measured::

    {"version": 1,
     "entries": {
       "cpu:x86_64-avx512/f32/d64/m1024/k1024/mask-none/b1": {
         "knobs": {"m_vec": 8, "k2_vec": 8, "m_dist": 64},
         "provenance": {"device": "...", "date": "2026-11-22", "ms": 41.2, "rel_err": 1.1e-07,
                        "shape": [1, 8, 1024, 64], "heuristic_ms": 46.6, ...}}}}

The key (see :func:`shape_key`) is ``target/dtype/head dim/m bucket/k2 bucket/mask kind/batch
rank``:

* target: ``cuda:sm_80``, ``rocm:gfx942``; on the CPU ``cpu:<host class>`` (``cpu:x86_64-avx512``,
  ``cpu:x86_64-avx2``, ``cpu:aarch64``...), because CPU modules are compiled for the host;
* head dim ``d64`` (``d64x128`` when the Q/K and V head dims differ);
* ``m``/``k2`` buckets: the next power of two >= the length (``m1024`` holds 513..1024);
* mask kind: ``none``, ``shared`` (a mask over (m, k2) only, e.g. causal) or ``batched``;
* batch rank: the batch dims left after IREE folds unit dims and collapses the rest (0, 1, 2);
* ``/kT`` at the end when the op takes K pre-transposed (``[batch..., k1, k2]``).

``attn-tune`` takes the key from the op as flashlift actually lowered it (``lowering.override``
reports the shapes it saw), so layout rewrites before lowering are accounted for.

Knobs: GPU ``m_tile``, ``k2_tile``, ``num_subgroups`` (:func:`lowering_gpu.gpu_attention_attrs`);
CPU ``m_vec``, ``k2_vec``, ``m_dist`` (:func:`lowering_cpu.cpu_attention_attrs`).

flashlift's CPU kernel (compiler/cpu_dispatch.py) is chosen per shape too: which build of it
(``isa``: ``avx2``, ``avx512``, ``avx512bf16``, ``avx512amx``) runs an op, under the key
``cpu-kernel:<family>/<dtype>/...`` (:func:`kernel_key`), the family being the best build the
CPU runs (so an AVX2-only CPU and an AVX-512 one with BF16 have their own entries);
``attn-tune --cpu-kernel`` measures and records them.
``lowering.configs_for`` looks the op up here first and falls back to the heuristics when
there is no entry (or the entry's knobs are not valid for the exact shape).

flashlift's GEMM kernel on CUDA takes its tile config from ``gemm:sm_<arch>/<dtype>/m<bucket>/n<N>/k<K>``
(:func:`gemm_key`; knobs :data:`GEMM_KNOBS`), recorded from ``bench/gemm.py``'s timings, else
the per-class table of ``triton_gemm.TUNED_CONFIGS``.

``FLASHLIFT_TUNING_DB`` names another database file; ``FLASHLIFT_TUNING_DB=off`` disables it.
Pure Python: importing this module does not import IREE.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
from typing import Optional

from flashlift.compiler.lowering_gpu import effective_batch_rank  # pure Python
from flashlift.errors import InputError

__all__ = [
    "DB_PATH", "GPU_KNOBS", "CPU_KNOBS", "db_path", "load", "save", "lookup", "record",
    "shape_key", "target_key", "mask_kind", "bucket", "host_cpu_class", "knobs_from_attrs",
    "CPU_KERNEL_KNOBS", "kernel_key", "lookup_kernel", "GEMM_KNOBS", "gemm_key", "lookup_gemm",
]

DB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tuning_db.json")
MAX_DB_BYTES = 64 << 20  # a database file read is bounded
VERSION = 1
GPU_KNOBS = ("m_tile", "k2_tile", "num_subgroups")
CPU_KNOBS = ("m_vec", "k2_vec", "m_dist")
CPU_KERNEL_KNOBS = ("isa",)
#: flashlift's GEMM kernel (compiler/kernels/triton_gemm.py): a tile config
GEMM_KNOBS = ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "num_warps", "num_stages", "TMA", "FLATTEN", "WARP_SPECIALIZE",
              "GLUON", "PINGPONG", "CONSUMERS")
_GEMM_REQUIRED = GEMM_KNOBS[:6]

_cache: dict = {}


def db_path(path: Optional[str] = None) -> Optional[str]:
    """The database file in use: `path`, else $FLASHLIFT_TUNING_DB, else the packaged one;
    None when disabled ($FLASHLIFT_TUNING_DB=off)."""
    path = path or os.environ.get("FLASHLIFT_TUNING_DB") or DB_PATH
    return None if path.lower() in ("off", "none", "0") else path


def _empty() -> dict:
    return {"version": VERSION, "entries": {}}


def load(path: Optional[str] = None) -> dict:
    """The database as a dict (an empty one when the file does not exist or is disabled).
    Cached per (path, mtime), so lowering can call it per op."""
    path = db_path(path)
    if path is None or not os.path.exists(path):
        return _empty()
    stamp = os.stat(path).st_mtime_ns
    hit = _cache.get(path)
    if hit and hit[0] == stamp:
        return hit[1]
    if os.path.getsize(path) > MAX_DB_BYTES:
        raise InputError(f"tuning database {path}: larger than {MAX_DB_BYTES >> 20} MiB (FLASHLIFT_TUNING_DB=off ignores it)")
    try:
        with open(path) as f:
            db = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"tuning database {path}: {e} (FLASHLIFT_TUNING_DB=off ignores it)") from None
    if not isinstance(db, dict) or db.get("version") != VERSION or not isinstance(db.get("entries"), dict) \
            or not all(isinstance(e, dict) for e in db["entries"].values()):
        raise InputError(f"tuning database {path}: not a flashlift tuning database (version {VERSION}, "
                         "an object of entries); FLASHLIFT_TUNING_DB=off ignores it")
    _cache[path] = (stamp, db)
    return db


def save(db: dict, path: Optional[str] = None) -> str:
    path = db_path(path)
    if path is None:
        raise ValueError("the tuning database is disabled (FLASHLIFT_TUNING_DB=off)")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(dumps(db))
    os.replace(tmp, path)
    _cache.pop(path, None)
    return path


def dumps(db: dict) -> str:
    """The database as text: sorted keys, one line per knob set and per provenance field
    (diffs of the checked-in file stay readable)."""
    c = lambda v: json.dumps(v, separators=(", ", ": "))
    parts = []
    for key, entry in sorted(db["entries"].items()):
        prov = ",\n".join(f"    {c(k)}: {c(v)}" for k, v in entry.get("provenance", {}).items())
        parts.append(f"  {c(key)}: {{\n   \"knobs\": {c(entry['knobs'])},\n   \"provenance\": {{\n{prov}\n   }}\n  }}")
    body = ",\n".join(parts)
    return f'{{\n "version": {VERSION},\n "entries": {{\n{body}\n }}\n}}\n' if parts else \
        f'{{\n "version": {VERSION},\n "entries": {{}}\n}}\n'


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------

def bucket(x: int) -> int:
    """The next power of two >= x (the length buckets of the key)."""
    return 1 << max(0, int(x) - 1).bit_length()


def host_cpu_class() -> str:
    """A coarse class of this machine's CPU: what ``--iree-llvmcpu-target-cpu=host`` code
    depends on most (the vector ISA)."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        flags = set()
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("flags"):
                        flags = set(line.split(":", 1)[1].split())
                        break
        except OSError:
            pass
        if "avx512f" in flags:
            return "x86_64-avx512"
        if "avx2" in flags:
            return "x86_64-avx2"
        return "x86_64"
    if machine in ("arm64", "aarch64"):
        return "aarch64"
    return machine or "unknown"


def target_key(target) -> str:
    """``cuda:sm_80``, ``rocm:gfx942``, ``cpu:x86_64-avx512`` ..."""
    if target.kind == "cpu":
        return f"cpu:{host_cpu_class()}"
    return f"{target.kind}:{target.arch}"


def mask_kind(shape: dict) -> str:
    if not shape.get("has_mask"):
        return "none"
    return "batched" if shape.get("mask_batch_dims") else "shared"


def batch_rank(shape: dict) -> Optional[int]:
    return effective_batch_rank(shape["batch"], shape.get("has_mask", False), shape.get("mask_batch_dims"))


def shape_key(shape: dict, target_k: str) -> Optional[str]:
    """The database key of an attention shape (as ``lowering.attention_shape`` gives it) on
    the target with key `target_k`; None for dynamic shapes."""
    if None in (shape.get("m"), shape.get("n"), shape.get("k1"), shape.get("k2")) or None in shape["batch"]:
        return None
    rank = batch_rank(shape)
    if rank is None:
        return None
    d = f"d{shape['k1']}" if shape["k1"] == shape["n"] else f"d{shape['k1']}x{shape['n']}"
    parts = [target_k, shape["elem_type"], d, f"m{bucket(shape['m'])}", f"k{bucket(shape['k2'])}",
             f"mask-{mask_kind(shape)}", f"b{rank}"]
    if shape.get("k_transposed"):
        parts.append("kT")  # K given as [batch..., k1, k2] (CPU pre-transpose): other tiles win
    return "/".join(parts)


def bhsd_shape(b: int, h: int, s: int, d: int, dtype: str, causal: bool) -> dict:
    """The ``attention_shape`` dict flashlift's raising gives for softmax(QK^T) V on
    [B, H, S, D] tensors (causal: a mask over (m, k2))."""
    return {"canonical": True, "batch": [b, h], "m": s, "n": d, "k1": d, "k2": s, "elem_type": dtype,
            "has_mask": bool(causal), "mask_batch_dims": []}


# --------------------------------------------------------------------------
# Lookup / record
# --------------------------------------------------------------------------

def lookup(shape: dict, target, path: Optional[str] = None) -> Optional[dict]:
    """The knobs recorded for `shape` on `target`, or None."""
    key = shape_key(shape, target_key(target))
    if key is None:
        return None
    entry = load(path)["entries"].get(key)
    if not entry:
        return None
    allowed = GPU_KNOBS if target.kind in ("cuda", "rocm") else CPU_KNOBS
    knobs = {k: v for k, v in entry.get("knobs", {}).items() if k in allowed}
    return knobs or None


def kernel_key(shape: dict, family: str) -> Optional[str]:
    """The key of the CPU kernel's build for `shape` on CPUs whose best build is `family`."""
    return shape_key(shape, f"cpu-kernel:{family}")


def lookup_kernel(shape: dict, family: str, path: Optional[str] = None) -> Optional[str]:
    """The CPU kernel build recorded for `shape` on the `family` of CPUs, or None."""
    key = kernel_key(shape, family)
    entry = load(path)["entries"].get(key) if key else None
    knobs = (entry or {}).get("knobs")
    isa = knobs.get("isa") if isinstance(knobs, dict) else None
    return isa if isinstance(isa, str) else None


def gemm_key(m: int, n: int, k: int, dtype: str, arch: int, epilogue: str = "") -> str:
    """The key of an [M, K] x [K, N] GEMM on sm_<arch> for flashlift's GEMM kernel: M (batch x
    sequence, which varies per call site) bucketed, N and K (the layer's) exact; a GEMM with an
    activation epilogue ("gelu", "swiglu") has its own key (the epilogue's loads and math move
    the best tile: the up projection with SwiGLU, bench/results/gemm-h100-gluon-d90d21c.json)."""
    return f"gemm:sm_{arch}/{dtype}/m{bucket(m)}/n{n}/k{k}" + (f"/{epilogue}" if epilogue else "")


def lookup_gemm(m: int, n: int, k: int, dtype: str, arch: int, path: Optional[str] = None,
                epilogue: str = "") -> Optional[dict]:
    """The GEMM kernel's tile config recorded for the shape (`bench/gemm.py --record-from`):
    with an epilogue, its own entry, else the plain GEMM's; None where there is none (or one
    without every tile knob as a positive int)."""
    entries = load(path)["entries"]
    entry = entries.get(gemm_key(m, n, k, dtype, arch, epilogue)) or entries.get(gemm_key(m, n, k, dtype, arch))
    knobs = (entry or {}).get("knobs")
    if not isinstance(knobs, dict):
        return None
    cfg = {name: v for name, v in knobs.items() if name in GEMM_KNOBS}
    if not all(isinstance(cfg.get(name), int) and not isinstance(cfg[name], bool) and cfg[name] > 0
               for name in _GEMM_REQUIRED):
        return None
    return cfg


def record(key: str, knobs: dict, provenance: dict, path: Optional[str] = None) -> dict:
    """Writes (or replaces) one entry; returns it. `provenance` should hold at least
    device, ms and rel_err; date is filled in when missing."""
    db = load(path)
    db = {"version": VERSION, "entries": dict(db["entries"])}
    prov = dict(provenance)
    prov.setdefault("date", datetime.date.today().isoformat())
    entry = {"knobs": dict(knobs), "provenance": prov}
    db["entries"][key] = entry
    save(db, path)
    return entry


# --------------------------------------------------------------------------
# Which knobs a set of attributes amounts to
# --------------------------------------------------------------------------

def _list(text: str, name: str) -> Optional[list]:
    m = re.search(rf"\b{name} = \[([-0-9, ]*)\]", text)
    return [int(x) for x in m.group(1).split(",") if x.strip()] if m else None


def knobs_from_attrs(attrs: dict) -> dict:
    """The knobs that attribute text from cpu_/gpu_attention_attrs encodes ({} for none):
    used to say what the heuristic chose."""
    info = attrs.get("compilation_info", "")
    if "#iree_cpu.lowering_config" in info:
        dist, vpar, vred = (_list(info, n) for n in ("distribution", "vector_common_parallel", "vector_reduction"))
        if dist and vpar and vred:
            return {"m_vec": vpar[-4], "k2_vec": vred[-1], "m_dist": dist[-4]}
    elif "#iree_gpu.lowering_config" in info:
        wg, red = _list(info, "workgroup"), _list(info, "reduction")
        size = re.search(r"workgroup_size = \[(\d+)", info)
        sub = re.search(r"subgroup_size = (\d+)", info)
        if wg and red and size and sub:
            return {"m_tile": wg[-4], "k2_tile": red[-1], "num_subgroups": int(size.group(1)) // int(sub.group(1))}
    return {}
