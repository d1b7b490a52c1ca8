"""CPU features: what a CPU module was compiled for, and whether this machine has it.

A module for the llvm-cpu backend holds native code for one CPU architecture (x86-64,
AArch64), generated for a set of instruction-set features (LLVM's names: `avx2`, `avx512f`,
`amx-tile`, ...): those of the compiling machine for target `cpu`, a fixed level for
`cpu:generic` / `cpu:x86-64-v2` / `-v3` / `-v4`, LLVM's list for a named CPU
(`cpu:sapphirerapids`). Run on a CPU without one of them, the code
dies of SIGILL on its first call. So the description records the target
(`"cpu": {"arch", "name", "features"}`, read at compile time from the executable target that
iree-compile embeds in the module) and `load` refuses a module this machine cannot run,
naming what it lacks.

The check covers the architecture, and on Linux x86-64 the features code generation uses
(`CHECKED`: the SSE, AVX, AVX-512 and AMX families, FMA, F16C, BMI, LZCNT, POPCNT, MOVBE, ...),
read from /proc/cpuinfo. Recorded features outside that list, and other systems, are not
verified here.
"""

from __future__ import annotations

import functools
import platform
import re
from typing import Optional

#: LLVM feature name -> the flag Linux lists in /proc/cpuinfo, for the features that decide
#: which instructions generated code may contain.
CHECKED = {
    "sse": "sse", "sse2": "sse2", "sse3": "pni", "ssse3": "ssse3", "sse4.1": "sse4_1", "sse4.2": "sse4_2",
    "sse4a": "sse4a", "avx": "avx", "avx2": "avx2", "fma": "fma", "fma4": "fma4", "xop": "xop", "f16c": "f16c",
    "avx512f": "avx512f", "avx512cd": "avx512cd", "avx512dq": "avx512dq", "avx512bw": "avx512bw",
    "avx512vl": "avx512vl", "avx512ifma": "avx512ifma", "avx512vbmi": "avx512vbmi",
    "avx512vbmi2": "avx512_vbmi2", "avx512vnni": "avx512_vnni", "avx512bitalg": "avx512_bitalg",
    "avx512vpopcntdq": "avx512_vpopcntdq", "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16",
    "avx512vp2intersect": "avx512_vp2intersect", "avxvnni": "avx_vnni",
    "amx-tile": "amx_tile", "amx-int8": "amx_int8", "amx-bf16": "amx_bf16",
    "bmi": "bmi1", "bmi2": "bmi2", "lzcnt": "abm", "popcnt": "popcnt", "movbe": "movbe", "cx16": "cx16",
    "cmov": "cmov", "sahf": "lahf_lm", "pclmul": "pclmulqdq", "gfni": "gfni", "vaes": "vaes",
    "vpclmulqdq": "vpclmulqdq",
}

_ARCH_NAMES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64",
               "riscv64": "riscv64"}

_TARGET = re.compile(rb'#hal\.executable\.target<"llvm-cpu"')


def compiled_for(module: bytes) -> Optional[dict]:
    """The CPU target of a llvm-cpu module, from the executable target attribute iree-compile
    embeds in it: {"arch", "name", "features": enabled features, sorted}; None if it has none.
    Several executables: their features together."""
    found = None
    starts = [m.start() for m in _TARGET.finditer(module)]
    for start, end in zip(starts, starts[1:] + [len(module)]):
        text = bytes(module[start:min(end, start + 65536)]).decode("utf-8", "replace")
        fields = dict(re.findall(r'\b(cpu|cpu_features|target_triple) = "([^"]*)"', text))
        if "cpu" not in fields:
            continue
        target = {"arch": normal_arch(fields.get("target_triple", "").partition("-")[0]), "name": fields["cpu"],
                  "features": _enabled(fields.get("cpu_features", ""))}
        if found is not None:
            target["features"] = sorted(set(found["features"]) | set(target["features"]))
        found = target
    return found


def _enabled(features: str) -> list:
    """The features a comma-separated LLVM list ("+avx,+avx2,-avx512f") enables; a later
    entry overrides an earlier one, as in LLVM."""
    state = {}
    for item in filter(None, features.split(",")):
        state[item[1:]] = item[0] == "+"
    return sorted(f for f, on in state.items() if on)


def normal_arch(name: str) -> str:
    """One name per architecture ("x86_64" for AMD64, "aarch64" for arm64)."""
    return _ARCH_NAMES.get(name.lower(), name.lower())


def host_arch() -> str:
    return normal_arch(platform.machine())


@functools.lru_cache(maxsize=None)
def host_flags() -> Optional[frozenset]:
    """The CPU flags Linux lists for this machine (/proc/cpuinfo), None where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def missing(target: Optional[dict]) -> list:
    """What this machine lacks of a module's CPU target (see the module doc): ["architecture
    aarch64"] or the LLVM names of missing features; [] when it has them all or cannot tell."""
    if not target:
        return []
    arch = target.get("arch")
    if arch and arch != host_arch():
        return [f"architecture {arch}"]
    flags = host_flags()
    if flags is None or host_arch() != "x86_64":
        return []
    return [f for f in target.get("features", ()) if f in CHECKED and CHECKED[f] not in flags]
