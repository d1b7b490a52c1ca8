"""flashlift's CPU FlashAttention kernel: build its object, and the IREE executable around it.

The kernel is C with AVX2 + FMA intrinsics (cpu/fa_avx2.c: what it computes, how, and the
embedded-ELF rules it keeps). `build_object` gives it as a relocatable object, compiled once
with the machine's C compiler (cc, gcc or clang) and kept in flashlift's cache folder
($FLASHLIFT_CACHE_DIR, else $XDG_CACHE_HOME/flashlift or ~/.cache/flashlift), written
atomically under a digest of source, flags and compiler, so that later processes reuse it:
IREE 3.13's llvm-cpu linker takes an object by path only (an object given as data is not
linked). IREE links it into the module's CPU executable: `executable_source` writes an
`hal.executable.source` naming the object and a shim function, compiled by
IREE's llvm-cpu backend, that calls the kernel once per workgroup (x: query block of
BLOCK_M rows, y: batch * head) with the shape as constants. `dispatch_func` wraps a
`flow.dispatch` of it in a private function `(q, k, v) -> o` on the attention op's own
tensor types (and the mask's, where the kernel reads one): a binding is its tensor's dense
row-major memory, so no reshape is needed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu")
BLOCK_M = 32  # FL_BM in the source: the query rows of one workgroup
MAX_HEAD_DIM = 128  # FL_DMAX
HEAD_DIM_MULTIPLE = 16
MAX_OBJECT_BYTES = 16 << 20  # a kept object larger than this is not ours: rebuilt
ISAS = {"avx2": ("fa_avx2.c", ("-mavx2", "-mfma", "-mf16c"))}  # isa -> source, its flags
DTYPES = ("f32", "f16", "bf16")  # Q, K, V; O is the same or f32
CFLAGS = ("-O3", "-std=c11", "-ffreestanding", "-fno-builtin", "-fno-stack-protector", "-fPIC",
          "-fno-asynchronous-unwind-tables", "-fno-exceptions", "-fno-tree-loop-distribute-patterns",
          "-fno-plt")  # no libc calls (memset/memcpy), no unwind tables, position independent
GENERIC_CPU_TARGET = '#hal.executable.target<"llvm-cpu", "embedded-elf-x86_64">'


class BuildError(Exception):
    """The kernel object could not be built here (no C compiler, or it failed)."""


@dataclass(frozen=True)
class CpuKernel:
    isa: str
    path: str  # the object file, holding one entry point per (input, output) element type
    digest: str

    def symbol(self, in_dtype: str, out_dtype: str) -> str:
        return f"flashlift_attention_{in_dtype}_{out_dtype}_{self.isa}"


def cache_dir() -> str:
    """Where flashlift keeps what it builds for reuse ($FLASHLIFT_CACHE_DIR, else
    $XDG_CACHE_HOME/flashlift or ~/.cache/flashlift)."""
    if os.environ.get("FLASHLIFT_CACHE_DIR"):
        return os.environ["FLASHLIFT_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flashlift")


def compiler() -> str:
    """The C compiler flashlift builds its CPU kernel with ($CC, else cc, gcc, clang)."""
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


@functools.lru_cache(maxsize=None)
def build_object(isa: str = "avx2") -> CpuKernel:
    """The kernel for `isa` as a relocatable x86-64 ELF object (BuildError if it cannot be
    built): the one kept in the cache folder under the digest of its source, flags and
    compiler, else compiled there (or, where the cache is not writable, in a temporary folder)."""
    source, isa_flags = ISAS[isa]
    path = os.path.join(SOURCE_DIR, source)
    with open(path, "rb") as f:
        text = f.read()
    cc = compiler()
    flags = (*CFLAGS, *isa_flags)
    digest = hashlib.sha1(text + " ".join(flags).encode() + _compiler_id(cc).encode()).hexdigest()[:10]
    name = f"flashlift_attention_{isa}-{digest}.o"
    for folder in (os.path.join(cache_dir(), "kernels"), None):
        try:
            folder = folder or tempfile.mkdtemp(prefix="flashlift-kernels-")
            os.makedirs(folder, exist_ok=True)
            out = os.path.join(folder, name)
            if not _is_object(out):
                _compile(cc, flags, path, out)
            return CpuKernel(isa, out, digest)
        except OSError as e:
            error = e
    raise BuildError(f"could not write the kernel object: {error}")


def workgroups(batch_heads: int, sq: int) -> tuple:
    return ((sq + BLOCK_M - 1) // BLOCK_M, batch_heads, 1)


def executable_source(kernel: CpuKernel, sym_name: str, shape: dict) -> str:
    """`hal.executable.source` with the kernel object and the shim that calls it; shape:
    batch_heads, heads, kv_ratio, sq, skv, head_dim, causal (0 none, 1 top-left,
    2 bottom-right), mask_kind (0 none, 1 [B, Skv] key padding, 2 [B, Sq, Skv], 3 [Sq, Skv];
    an f32 mask), scale, the element types in_dtype (Q, K, V) and out_dtype (O), and the
    element counts q, kv, mask, o of the five bindings (without a mask the fourth is Q again,
    never read)."""
    s = shape
    gx, gy, _ = workgroups(s["batch_heads"], s["sq"])
    symbol = kernel.symbol(s["in_dtype"], s["out_dtype"])
    mem = {n: f"memref<{s[n]}x{s['out_dtype' if n == 'o' else 'in_dtype']}>" for n in ("q", "kv", "o")}
    mem["mask"] = f"memref<{s['mask']}xf32>" if s["mask_kind"] else mem["q"]
    types = [mem["q"], mem["kv"], mem["kv"], mem["mask"], mem["o"]]
    decl = ", ".join(types + ["index"] * 9 + ["f32"])
    bindings = ", ".join(["#hal.pipeline.binding<storage_buffer, ReadOnly>"] * 4 + ["#hal.pipeline.binding<storage_buffer>"])
    layout = f"#hal.pipeline.layout<bindings = [{bindings}]>"
    subspans = "\n".join(f"        %b{i} = hal.interface.binding.subspan layout({layout}) binding({i}) alignment(64)"
                         f" offset(%c0) : {t}" for i, t in enumerate(types))
    consts = "\n".join(f"        %{n} = arith.constant {s[k]} : index" for n, k in
                       (("h", "heads"), ("r", "kv_ratio"), ("sq", "sq"), ("skv", "skv"), ("d", "head_dim"),
                        ("cz", "causal"), ("mk", "mask_kind")))
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
        %wm = hal.interface.workgroup.id[0] : index
        %wb = hal.interface.workgroup.id[1] : index
{subspans}
{consts}
        %scale = arith.constant {float(s["scale"])!r} : f32
        func.call @{symbol}(%b0, %b1, %b2, %b3, %b4, %wm, %wb, %h, %r, %sq, %skv, %d, %cz, %mk, %scale) : ({decl}) -> ()
        return
      }}
    }}
  }}
"""


def dispatch_func(sym: str, name: str, types: tuple) -> str:
    """A private `func.func @name(q, k, v[, mask]) -> o` of one flow.dispatch of `sym`'s export
    (named as the executable: IREE links every executable's functions into one, so the names
    of the shims must differ); types: the (q, k, v, mask or None, o) tensor types. Without a
    mask, Q is bound again in the mask's place (never read)."""
    q, k, v, m, o = types
    params = f"%q: {q}, %k: {k}, %v: {v}" + (f", %m: {m}" if m else "")
    operands, operand_types = ("%q, %k, %v, %m", f"{q}, {k}, {v}, {m}") if m else ("%q, %k, %v, %q", f"{q}, {k}, {v}, {q}")
    return f"""  func.func private @{name}({params}) -> {o} {{
    %o = flow.dispatch @{sym}::@{sym}({operands}) : ({operand_types}) -> {o}
    return %o : {o}
  }}
"""
