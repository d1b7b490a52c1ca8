"""Building flashlift's CPU kernels: C objects IREE links into a module's CPU executable.

Each kernel is C with vector intrinsics in cpu/, one source per instruction set (fa_avx2.c,
fa_avx512.c: FlashAttention, sharing fa_common.h, the latter built as avx512, avx512bf16 and
avx512amx (AMX bf16 tiles); norm_avx2.c: residual add + LayerNorm; gemm_avx512.c: bf16 linear
layers, built as avx512bf16 and avx512amx),
written for IREE's embedded ELF (no libc, no globals written). `SOURCES` says which source
(and defines) builds a kernel for an ISA, `ISA_CPU_FLAGS` what a CPU must have to run it.
`build_object(kernel, isa)` gives one as a relocatable object, compiled once with the
machine's C compiler (cc, gcc or clang) and kept in flashlift's cache folder
($FLASHLIFT_CACHE_DIR, else $XDG_CACHE_HOME/flashlift or ~/.cache/flashlift), written
atomically under a digest of source, flags and compiler, so that later processes reuse it:
IREE 3.13's llvm-cpu linker takes an object by path only (an object given as data is not
linked). The shims that call them are cpu_fa.py's, cpu_norm.py's and cpu_gemm.py's.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from flashlift.cpu import host_flags

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu")
MAX_OBJECT_BYTES = 16 << 20  # a kept object larger than this is not ours: rebuilt
#: (kernel, isa) -> (its source in cpu/, the defines it is built with)
SOURCES = {
    ("attention", "avx2"): ("fa_avx2.c", ()),
    ("attention", "avx512"): ("fa_avx512.c", ()),
    ("attention", "avx512bf16"): ("fa_avx512.c", ("-DFL_DPBF16",)),  # bf16 products (VDPBF16PS)
    ("attention", "avx512amx"): ("fa_avx512.c", ("-DFL_DPBF16", "-DFL_AMX")),  # bf16 products in AMX tiles
    ("attention", "avx512amx_emu"): ("fa_avx512.c", ("-DFL_DPBF16", "-DFL_AMX", "-DFL_AMX_EMULATE")),  # tests only
    ("norm", "avx2"): ("norm_avx2.c", ()),
    ("gemm", "avx512bf16"): ("gemm_avx512.c", ()),  # bf16 linear layers: VDPBF16PS
    ("gemm", "avx512amx"): ("gemm_avx512.c", ("-DFL_AMX",)),  # on AMX tiles
    ("gemm", "avx512amx_emu"): ("gemm_avx512.c", ("-DFL_AMX", "-DFL_AMX_EMULATE")),  # tiles in C: tests only
}
HEADERS = ("fa_common.h", "shim_abi.h", "amx.h")  # included by the sources: part of every object's digest
_AVX2 = ("-mavx2", "-mfma", "-mf16c")
_AVX512 = (*_AVX2, "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl")
_AVX512BF16 = (*_AVX512, "-mavx512bf16")
ISA_FLAGS = {"avx2": _AVX2, "avx512": _AVX512, "avx512bf16": _AVX512BF16,
             "avx512amx": (*_AVX512BF16, "-mamx-tile", "-mamx-bf16"), "avx512amx_emu": _AVX512BF16}
#: isa -> the /proc/cpuinfo flags a CPU needs to run its objects; best first
ISA_CPU_FLAGS = {
    "avx512amx": ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16",
                  "amx_tile", "amx_bf16"),
    "avx512bf16": ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"),
    "avx512": ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl"),
    "avx2": ("avx2", "fma", "f16c"),
}
#: Builds for tests: the code of an ISA with a unit it needs written out in C (avx512amx_emu:
#: the AMX build's tile unit, amx.h), run where the build named here runs. Never chosen for a
#: CPU (runnable_isas leaves them out); taken where a test forces them.
EMULATED = {"avx512amx_emu": "avx512bf16"}
CFLAGS = ("-O3", "-std=c11", "-ffreestanding", "-fno-builtin", "-fno-stack-protector", "-fPIC",
          "-fno-asynchronous-unwind-tables", "-fno-exceptions", "-fno-tree-loop-distribute-patterns",
          "-fno-plt")  # no libc calls (memset/memcpy), no unwind tables, position independent
GENERIC_CPU_TARGET = '#hal.executable.target<"llvm-cpu", "embedded-elf-x86_64">'


class BuildError(Exception):
    """The kernel object could not be built here (no C compiler, or it failed)."""


@dataclass(frozen=True)
class CpuKernel:
    kernel: str  # "attention", "norm"
    isa: str
    path: str  # the object file, holding one entry point per (input, output) element type
    digest: str

    def symbol(self, in_dtype: str, out_dtype: str) -> str:
        """The entry point for inputs in `in_dtype` and outputs in `out_dtype`."""
        return f"flashlift_{self.kernel}_{in_dtype}_{out_dtype}_{self.isa}"


def cache_dir() -> str:
    """Where flashlift keeps what it builds for reuse ($FLASHLIFT_CACHE_DIR, else
    $XDG_CACHE_HOME/flashlift or ~/.cache/flashlift)."""
    if os.environ.get("FLASHLIFT_CACHE_DIR"):
        return os.environ["FLASHLIFT_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flashlift")


def compiler() -> str:
    """The C compiler flashlift builds its CPU kernels with ($CC, else cc, gcc, clang)."""
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise BuildError("no C compiler found (tried $CC, cc, gcc, clang)")


def _compiler_id(cc: str) -> str:
    """The compiler's path and version line: part of the object's digest."""
    try:
        done = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"{os.path.basename(cc)} failed to run: {e}") from None
    return f"{os.path.realpath(cc)} {(done.stdout.strip().splitlines() or [''])[0]}"


def _is_object(path: str) -> bool:
    """A file there that reads as an ELF object of a plausible size (a kept build)."""
    try:
        if not 0 < os.path.getsize(path) <= MAX_OBJECT_BYTES:
            return False
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _compile(cc: str, flags: tuple, source: str, out: str) -> None:
    """`source` compiled to `out`, atomically: into a temporary file beside it, flushed to
    disk, then renamed (a reader sees no object or the whole one)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), prefix=os.path.basename(out) + ".")
    os.close(fd)
    try:
        try:
            done = subprocess.run([cc, *flags, "-c", source, "-o", tmp], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BuildError(f"{os.path.basename(cc)} failed to run: {e}") from None
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["(no message)"])[0]
            raise BuildError(f"{os.path.basename(cc)} could not compile {os.path.basename(source)}: {first[:200]}")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def runnable_isas(cpu_flags, kernel: str = "attention") -> list:
    """The ISAs `kernel` is built for that a CPU with `cpu_flags` runs, best first (the
    emulated builds left out)."""
    flags = set(cpu_flags or ())
    return [isa for isa, need in ISA_CPU_FLAGS.items() if (kernel, isa) in SOURCES and flags.issuperset(need)]


def runs(isa: str, isas: list) -> bool:
    """Whether a CPU that runs the builds `isas` runs the `isa` build (an emulated one: where
    the build it emulates on runs)."""
    return isa in isas or EMULATED.get(isa) in isas


def host_isas(kernel: str = "attention") -> list:
    """runnable_isas of this machine's CPU."""
    return runnable_isas(host_flags(), kernel)


def source_of(kernel: str, isa: str) -> tuple:
    """(source file name in cpu/, defines) of `kernel` for `isa`; KeyError if there is none."""
    return SOURCES[(kernel, isa)]


@functools.lru_cache(maxsize=None)
def build_object(kernel: str = "attention", isa: str = "avx2") -> CpuKernel:
    """`kernel` for `isa` as a relocatable x86-64 ELF object (BuildError if it cannot be
    built): the one kept in the cache folder under the digest of its source, flags and
    compiler, else compiled there (or, where the cache is not writable, in a temporary folder)."""
    source, defines = source_of(kernel, isa)
    path = os.path.join(SOURCE_DIR, source)
    text = b""
    for name in (source, *HEADERS):
        with open(os.path.join(SOURCE_DIR, name), "rb") as f:
            text += f.read()
    cc = compiler()
    flags = (*CFLAGS, *ISA_FLAGS[isa], *defines)
    digest = hashlib.sha1(text + " ".join(flags).encode() + _compiler_id(cc).encode()).hexdigest()[:10]
    flags += ("-I", SOURCE_DIR)
    name = f"flashlift_{kernel}_{isa}-{digest}.o"
    for folder in (os.path.join(cache_dir(), "kernels"), None):
        try:
            folder = folder or tempfile.mkdtemp(prefix="flashlift-kernels-")
            os.makedirs(folder, exist_ok=True)
            out = os.path.join(folder, name)
            if not _is_object(out):
                _compile(cc, flags, path, out)
            return CpuKernel(kernel, isa, out, digest)
        except OSError as e:
            error = e
    raise BuildError(f"could not write the kernel object: {error}")


def shim_source(kernel: CpuKernel, sym_name: str, symbol: str, bindings: list, grid: tuple, args: list) -> str:
    """`hal.executable.source` @sym_name linking `kernel`'s object, with one export whose
    workgroup count is `grid` (x, y) and a shim that calls the object's `symbol` once per
    workgroup as symbol(binding memrefs..., workgroup id x, [id y,] args...). bindings: the
    memref types (every one read-only but the last, the output); args: ("index", int) or
    ("f32", float) constants. IREE compiles the shim with its llvm-cpu backend and links the
    object by path."""
    layout = "#hal.pipeline.layout<bindings = [" + ", ".join(
        ["#hal.pipeline.binding<storage_buffer, ReadOnly>"] * (len(bindings) - 1) + ["#hal.pipeline.binding<storage_buffer>"]) + "]>"
    ids = ["%wx", "%wy"][:len(grid)]
    decl = ", ".join(list(bindings) + ["index"] * len(ids) + [kind for kind, _ in args])
    lines = [f"        %b{i} = hal.interface.binding.subspan layout({layout}) binding({i}) alignment(64)"
             f" offset(%c0) : {t}" for i, t in enumerate(bindings)]
    text = lambda kind, v: _float_literal(v) if kind == "f32" else str(int(v))  # noqa: E731
    lines += [f"        %a{i} = arith.constant {text(kind, v)} : {kind}" for i, (kind, v) in enumerate(args)]
    operands = ", ".join([f"%b{i}" for i in range(len(bindings))] + ids + [f"%a{i}" for i in range(len(args))])
    gx, gy = (list(grid) + [1])[:2]
    body = "\n".join(lines)
    obj = f'#hal.executable.object<{{path = "{kernel.path}"}}>'
    return f"""  hal.executable.source private @{sym_name} <objects = #hal.executable.objects<{{
      {GENERIC_CPU_TARGET} = [{obj}]}}>> {{
    hal.executable.export public @{sym_name} ordinal(0) layout({layout})
        count(%device: !hal.device) -> (index, index, index) {{
      %x = arith.constant {gx} : index
      %y = arith.constant {gy} : index
      %c1 = arith.constant 1 : index
      hal.return %x, %y, %c1 : index, index, index
    }}
    builtin.module {{
      func.func private @{symbol}({decl}) attributes {{hal.import.static}}
      func.func @{sym_name}() {{
        %c0 = arith.constant 0 : index
        %wx = hal.interface.workgroup.id[0] : index
        %wy = hal.interface.workgroup.id[1] : index
{body}
        func.call @{symbol}({operands}) : ({decl}) -> ()
        return
      }}
    }}
  }}
"""


def _float_literal(v) -> str:
    """An MLIR float literal of v: repr's digits, with the point MLIR needs (1e-05 -> 1.0e-05)."""
    text = repr(float(v))
    if "e" in text and "." not in text:
        text = text.replace("e", ".0e")
    return text


def dispatch_source(sym: str, name: str, params: list, operands: list, result: str) -> str:
    """A private `func.func @name(params...) -> result` of one flow.dispatch of `sym`'s export
    (named as the executable: IREE links every executable's functions into one, so the names
    of the shims must differ) on `operands`, each a (param name, type) of `params`, which
    may repeat (a binding the kernel never reads takes a tensor it has)."""
    sig = ", ".join(f"%{n}: {t}" for n, t in params)
    ops = ", ".join(f"%{n}" for n, _ in operands)
    types = ", ".join(t for _, t in operands)
    return f"""  func.func private @{name}({sig}) -> {result} {{
    %o = flow.dispatch @{sym}::@{sym}({ops}) : ({types}) -> {result}
    return %o : {result}
  }}
"""
