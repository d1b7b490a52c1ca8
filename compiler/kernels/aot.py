"""From a `triton.compile` result to a `KernelBinary` IREE can dispatch (build time only).

Shared by every flashlift kernel (triton_fa.py, triton_fa_tma.py, triton_gemm.py): checks
what the IREE dispatch cannot provide (Triton profile scratch, cluster launches, more shared
memory than the architecture allows), verifies the PTX entry's parameters against the names
and roles the caller expects (then Triton's two scratch pointers), and records register use
and the global scratch the kernel needs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
from typing import Optional

# Max dynamic shared memory per block with opt-in (CU_DEVICE_ATTRIBUTE_MAX_
# SHARED_MEMORY_PER_BLOCK_OPTIN): A100 = 163 KiB, H100/H200 = 227 KiB.
MAX_SHARED_OPTIN = {80: 166912, 86: 101376, 89: 101376, 90: 232448}


@dataclasses.dataclass
class KernelParam:
    name: str            # e.g. "q", "k", "v", "o", "a", "w", "bias", "c", "global_scratch"
    ptx_type: str        # ".u64"
    role: str            # "input" | "output" | "scratch"


@dataclasses.dataclass
class KernelBinary:
    ptx: str
    name: str
    grid: tuple
    block: tuple
    shared_mem_bytes: int
    params: list
    # extras (not required by the dispatch generator, but handy)
    cubin: Optional[bytes] = None
    arch: int = 80
    ptx_target: str = ""
    ptx_version: str = ""
    config: dict = dataclasses.field(default_factory=dict)
    n_regs: Optional[int] = None
    n_spills: Optional[int] = None
    # Triton global scratch per CTA (bytes; 0 = the kernel never touches global_scratch):
    # CTA i uses global_scratch + i * this, i its linear block index.
    scratch_per_cta: int = 0
    scratch_align: int = 1

    @property
    def scratch_bytes(self) -> int:
        """The global scratch a launch needs: every CTA of the grid gets its own slice."""
        gx, gy, gz = self.grid
        return self.scratch_per_cta * gx * gy * gz


_ENTRY_RE = re.compile(r"\.visible\s+\.entry\s+(\w+)\s*\((.*?)\)", re.S)


def tensor_map_options(opts: dict) -> dict:
    """triton.compile's options for a kernel that builds TMA tensor maps on the device: without
    `ptx_version`, i.e. Triton's own PTX version. Asked for `.version 8.4`, Triton 3.6 writes
    each map's row stride in 16-byte units (`tensormap.replace.tile.global_stride ... 32` for
    512-byte rows, 512 with its own 8.7), which the cubin then reads as bytes: the loads come
    from the wrong rows (measured: NaN from triton_fa_tma on an H200, 2026-11-22; rel. error 1.0
    from the TMA GEMM through IREE on an H100, 2026-12-07). sm_90 modules carry the cubin, so
    no driver JIT-compiles this PTX."""
    return {k: v for k, v in opts.items() if k != "ptx_version"}


def attention_source(fn, *, tdt: str, consts: dict, mask: str, mask_dtype: str, source=None):
    """triton's ASTSource (or `source`, e.g. Gluon's) of an attention kernel fn(Q, K, V, KPM,
    O, **consts): pointers of element type tdt (KPM of mask_dtype where there is a mask, else
    a None constexpr), every const a constexpr. Every base pointer is 16-byte aligned (IREE
    bindings are at least 64-byte aligned), which enables vectorized / async-copy loads."""
    from triton.compiler import ASTSource

    sig = {"Q": f"*{tdt}", "K": f"*{tdt}", "V": f"*{tdt}", "KPM": f"*{mask_dtype}" if mask else "constexpr",
           "O": f"*{tdt}", **{k: "constexpr" for k in consts}}
    pointers = (0, 1, 2, 3, 4) if mask else (0, 1, 2, 4)  # Q 0, K 1, V 2, KPM 3, O 4
    attrs = {(i,): [["tt.divisibility", 16]] for i in pointers}
    return (source or ASTSource)(fn=fn, signature=sig, constexprs=consts if mask else {**consts, "KPM": None},
                                 attrs=attrs)


def parse_ptx_entry(ptx: str):
    """Returns (entry_name, [(ptx_type, param_name), ...]) of the single .entry."""
    m = _ENTRY_RE.search(ptx)
    if not m:
        raise ValueError("no .visible .entry in PTX")
    params = []
    for decl in m.group(2).split(","):
        decl = decl.strip()
        if not decl:
            continue
        pm = re.match(r"\.param\s+(\.\w+)\s+(?:\.ptr\s+(?:\.\w+\s+)*)?(\w+)", decl)
        if not pm:
            raise ValueError(f"cannot parse PTX param: {decl!r}")
        params.append((pm.group(1), pm.group(2)))
    return m.group(1), params


def ptxas(ptx: str, arch_name: str) -> tuple[bytes, str]:
    """(cubin, ptxas -v log) with the ptxas Triton itself uses."""
    from triton.backends.nvidia.compiler import get_ptxas
    exe = get_ptxas(int(re.sub(r"\D", "", arch_name))).path
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "k.ptx")
        dst = os.path.join(d, "k.cubin")
        with open(src, "w") as f:
            f.write(ptx)
        r = subprocess.run([exe, "-v", f"--gpu-name={arch_name}", src, "-o", dst],
                           capture_output=True, text=True, check=True)
        with open(dst, "rb") as f:
            return f.read(), r.stderr


def binary(ck, arch: int, names: list, roles: list, grid: tuple, config: dict) -> KernelBinary:
    """The KernelBinary of Triton's CompiledKernel `ck`, whose pointer parameters are
    `names` (with `roles`) followed by Triton's two scratch pointers."""
    md = ck.metadata
    ptx = ck.asm["ptx"]
    if (md.profile_scratch_size or 0) != 0:
        raise RuntimeError(f"kernel needs Triton profile scratch ({md.profile_scratch_size} B); "
                           f"the IREE dispatch feeds a dummy")
    if md.num_ctas != 1 or tuple(getattr(md, "cluster_dims", (1, 1, 1)) or (1, 1, 1)) != (1, 1, 1):
        raise RuntimeError("cluster launch not supported through IREE")
    if md.shared > MAX_SHARED_OPTIN[arch]:
        raise RuntimeError(f"needs {md.shared} B shared memory > {MAX_SHARED_OPTIN[arch]} B on sm_{arch}")
    name, ptx_params = parse_ptx_entry(ptx)
    if name != md.name:
        raise RuntimeError(f"entry {name} != metadata name {md.name}")
    names = list(names) + ["global_scratch", "profile_scratch"]
    roles = list(roles) + ["scratch", "scratch"]
    if len(ptx_params) != len(names) or any(t != ".u64" for t, _ in ptx_params):
        raise RuntimeError(f"unexpected PTX signature for {name}: {ptx_params}")
    params = [KernelParam(n, t, r) for (t, _), n, r in zip(ptx_params, names, roles)]
    target = re.search(r"^\s*\.target\s+(\w+)", ptx, re.M).group(1)
    version = re.search(r"^\s*\.version\s+([\d.]+)", ptx, re.M).group(1)
    # ptxas again with -v for register/spill counts (Triton drops its log); keep Triton's cubin
    my_cubin, log = ptxas(ptx, target)
    regs = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores", log)
    return KernelBinary(ptx=ptx, name=name, grid=tuple(grid), block=(md.num_warps * 32, 1, 1),
                        shared_mem_bytes=int(md.shared), params=params,
                        cubin=ck.asm.get("cubin") or my_cubin, arch=arch, ptx_target=target,
                        ptx_version=version, config=config,
                        n_regs=int(regs.group(1)) if regs else None,
                        n_spills=int(spills.group(1)) if spills else None,
                        scratch_per_cta=int(md.global_scratch_size or 0),
                        scratch_align=int(md.global_scratch_align or 1))
