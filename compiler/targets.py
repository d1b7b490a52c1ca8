"""Compilation targets for flashlift (IREE 3.13).

A target spec string names where the compiled module will run; it maps to the
``iree-compile`` flags and the IREE runtime driver to load the module with::

    >>> t = parse_target("cuda")
    >>> t.flags
    ('--iree-hal-target-device=cuda', '--iree-cuda-target=sm_80')
    >>> t.driver
    'cuda'

Known specs
-----------
``cpu`` (also ``cpu:host``)
    llvm-cpu for the host CPU (``--iree-llvmcpu-target-cpu=host``: its name and
    every feature it has), driver ``local-task``.  The module runs on CPUs with
    the same features.  The only kind of target that runs on the development
    machine (no GPU there).
``cpu:generic`` / ``cpu:x86-64-v2`` / ``cpu:x86-64-v3`` / ``cpu:x86-64-v4``
    Portable CPU modules: ``generic`` is the architecture's baseline (x86-64:
    SSE2), the x86-64 levels those of the psABI (v2: SSE4.2, POPCNT; v3: AVX2,
    FMA, BMI2, F16C; v4: AVX-512 F/BW/CD/DQ/VL), given to IREE as
    ``--iree-llvmcpu-target-cpu=<level>`` (IREE 3.13 turns the name into LLVM's
    feature list; ``--iree-llvmcpu-target-cpu-features`` stays unset).  The
    x86-64 levels compile for x86-64 on any machine
    (``--iree-llvmcpu-target-triple``).  Either way the description records the
    features compiled for, and ``flashlift.load`` refuses a machine without them
    (flashlift.cpu).
``cpu:sapphirerapids``
    An Intel AVX-512 + AMX CPU (Sapphire Rapids and later Xeons), for building
    modules that run there from any x86-64 machine (the triple as above): LLVM's
    feature list for the name (AMX tiles, AVX512_BF16/FP16, ...); bf16 attention
    takes the CPU kernel's AMX build.  ``flashlift.load`` checks the features.
``cuda`` / ``cuda:sm_80`` / ``cuda:sm_86`` / ``cuda:sm_87`` / ``cuda:sm_89``
    CUDA backend (PTX), driver ``cuda``.  ``cuda`` means ``sm_80``.
    IREE 3.13 has no ``sm_90`` target ("missing GPU target in
    #hal.executable.target"; likewise ``sm_100``), but sm_80 PTX is
    JIT-compiled by the driver and runs on H100/H200.
    ``sm_70``/``sm_75`` crash in LLVM on attention ("Cannot select:
    intrinsic %llvm.nvvm.mma.m16n8k16...") and are refused.
``cuda:sm_90``
    H100/H200: IREE compiles for ``sm_80`` (same flags as ``cuda``), and the
    attention ops the FlashAttention kernels cover are dispatched to a Triton
    kernel built for ``sm_90a`` (see ``kernel_arch``, docs/kernels.md).  The
    module then only loads on compute capability 9.0 GPUs.

``kernel_arch`` names the architecture flashlift builds its own attention
kernels for (:mod:`flashlift.compiler.kernel_dispatch`): ``"sm_90"`` for
``cuda:sm_90``, ``"sm_80"`` for ``cuda`` / ``cuda:sm_80`` (sm_80 PTX, runs on
Ampere and Hopper), ``""`` (no kernels, IREE codegen only) for every other
target.
``rocm`` / ``rocm:gfx942`` / ``rocm:<gfx arch>``
    HIP backend, driver ``hip``.  ``rocm`` means ``gfx942`` (MI300).  The
    attention op compiled for gfx942, gfx90a, gfx908, gfx950, gfx1100 and
    gfx1201; hand-tuned attention attributes exist for gfx942 only.
``vulkan`` / ``vulkan:<target>``
    SPIR-V backend, driver ``vulkan``.  ``vulkan`` means
    ``--iree-vulkan-target=ampere`` (NVIDIA sm_80-class SPIR-V environment);
    other useful values: ``rdna3`` (AMD), ``valhall4`` (ARM Mali), or a
    product/arch name (see ``iree-compile --help``).  Caveats:

    * IREE's default Vulkan target (``vp_android_baseline_2022``) lacks
      16-bit storage, so even plain f16 matmuls fail ("failed to legalize
      operation 'vector.bitcast'"); that is why a named target is used.
    * The SPIR-V backend cannot code-generate ``iree_linalg_ext.attention``
      ("'iree_linalg_ext.online_attention' op result #0 must be ... tensor
      ..., but got 'memref<...>'").  The flags therefore add a preprocessing
      pipeline that decomposes attention back into matmul + softmax linalg
      ops.  That compiles but materialises the full ``[.., m, k2]`` f32 score
      tensor (4 GiB for 4x16x4096x4096), so raising gains nothing here.
    * bf16 does not compile for any Vulkan target tried (ampere: "no GPU
      subgroup mma compute ops generated"; rdna3/valhall4: other errors).
      Adding ``--iree-input-promote-bf16-to-f32`` (see :data:`VULKAN_BF16_FLAGS`)
      makes it compile but changes the module's public signature to f32
      inputs/outputs.

Unknown specs raise :class:`flashlift.errors.InputError` (a ``ValueError``).
Importing this module does not import IREE.
"""

from __future__ import annotations

import dataclasses
import re

from flashlift.cpu import host_arch
from flashlift.errors import InputError  # a ValueError subclass; no IREE import

__all__ = [
    "Target",
    "parse_target",
    "known_targets",
    "KNOWN",
    "CPU_LEVELS",
    "CUDA_ARCHS",
    "CUDA_KERNEL_ARCHS",
    "VULKAN_DECOMPOSE_ATTENTION_PIPELINE",
    "VULKAN_BF16_FLAGS",
]

#: CUDA compute capabilities accepted for ``cuda:sm_XX`` (all compile the
#: attention op with IREE 3.13).
CUDA_ARCHS = ("sm_80", "sm_86", "sm_87", "sm_89")
#: CUDA architectures accepted although IREE 3.13 cannot compile for them: IREE
#: compiles for the value (an arch in CUDA_ARCHS), flashlift's kernels for the key.
CUDA_KERNEL_ONLY_ARCHS = {"sm_90": "sm_80"}
#: ``cuda:<arch>`` -> kernel_arch (architectures flashlift builds kernels for).
CUDA_KERNEL_ARCHS = {"sm_80": "sm_80", "sm_90": "sm_90"}
DEFAULT_CUDA = DEFAULT_CUDA_ARCH = "sm_80"
DEFAULT_ROCM_ARCH = "gfx942"
DEFAULT_VULKAN_TARGET = "ampere"

#: Preprocessing pipeline that rewrites ``iree_linalg_ext.attention`` into
#: plain linalg ops (needed by the SPIR-V backend).
VULKAN_DECOMPOSE_ATTENTION_PIPELINE = (
    "builtin.module(util.func("
    "iree-linalg-ext-convert-attention-to-online-attention,"
    "iree-linalg-ext-decompose-attention))")

#: Extra flags that make bf16 models compile for Vulkan (changes the I/O
#: element type of the compiled functions to f32!).
VULKAN_BF16_FLAGS = ("--iree-input-promote-bf16-to-f32",)

#: CPU levels ``cpu:<level>`` accepted besides the host (LLVM CPU names); the x86-64 ones
#: (the x86-64-v* levels and the named x86 CPUs, X86_CPUS) compile for x86-64 whatever the
#: compiling machine is.
X86_CPUS = ("sapphirerapids",)
CPU_LEVELS = ("generic", "x86-64-v2", "x86-64-v3", "x86-64-v4", *X86_CPUS)
X86_64_TRIPLE = "x86_64-unknown-unknown-eabi-elf"  # what IREE 3.13 uses for the host on x86-64

#: Spec strings shown in error messages.
KNOWN = (
    "cpu", *[f"cpu:{level}" for level in CPU_LEVELS],
    "cuda", *[f"cuda:{a}" for a in CUDA_ARCHS], *[f"cuda:{a}" for a in CUDA_KERNEL_ONLY_ARCHS],
    "rocm", "rocm:gfx942", "rocm:<gfx arch>",
    "vulkan", "vulkan:<target>",
)

_CPU_FLAGS = (
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
)


@dataclasses.dataclass(frozen=True)
class Target:
    """One compilation target.

    Attributes:
      name: canonical spec, e.g. ``"cpu"``, ``"cuda:sm_80"``, ``"rocm:gfx942"``,
        ``"vulkan:ampere"``.
      kind: ``"cpu"``, ``"cuda"``, ``"rocm"`` or ``"vulkan"``.
      flags: ``iree-compile`` flags selecting the device/backend.
      driver: IREE runtime HAL driver name (``local-task``, ``cuda``,
        ``hip``, ``vulkan``).
      arch: ``"host"`` or the CPU level (``"generic"``, ``"x86-64-v3"``,
        ``"sapphirerapids"``), the GPU architecture IREE compiles for (``sm_80``,
        ``gfx942``; ``sm_80`` for ``cuda:sm_90``) or the Vulkan target name
        (``ampere``).  For cuda/rocm this is what
        :func:`flashlift.compiler.lowering_gpu.gpu_attention_attrs` takes.
      runs_here: True if modules for this target can be executed on the
        development machine (the ``cpu`` targets; it has no GPU); a CPU
        level this machine lacks features of is still refused at load.
      raise_attention: whether emitting ``iree_linalg_ext.attention`` is
        worthwhile (False for Vulkan, where it is decomposed again).
      notes: free-form caveats.
      kernel_arch: architecture flashlift's own attention kernels are built
        for (``"sm_80"``, ``"sm_90"``), ``""`` = none (IREE codegen only).
    """

    name: str
    kind: str
    flags: tuple = ()
    driver: str = "local-task"
    arch: str = ""
    runs_here: bool = False
    raise_attention: bool = True
    notes: str = ""
    kernel_arch: str = ""

    def compile_args(self, *extra: str) -> list:
        """Flags as a fresh list, with ``extra`` flags appended."""
        return [*self.flags, *extra]

    def device_available(self) -> bool:
        """Whether the IREE runtime can see a device for this target's driver
        on this machine (imports ``iree.runtime`` lazily)."""
        try:
            import iree.runtime as rt
            if self.driver not in rt.query_available_drivers():
                return False
            if self.driver.startswith("local"):
                return True
            return bool(rt.get_driver(self.driver).query_available_devices())
        except Exception:  # driver library missing, no device, ...
            return False


def _unknown(spec: str) -> InputError:
    return InputError(f"unknown target '{spec}'; known targets: {', '.join(KNOWN)}")


def _cpu(level: str, spec: str) -> Target:
    """``cpu`` (the host) or ``cpu:<level>`` (CPU_LEVELS); ``arch`` is the LLVM CPU name."""
    if level == "host":
        return Target("cpu", "cpu", (*_CPU_FLAGS, "--iree-llvmcpu-target-cpu=host"), "local-task", "host", True)
    if level not in CPU_LEVELS:
        raise InputError(f"unknown CPU level '{level}' in target '{spec}'; known: host, {', '.join(CPU_LEVELS)}")
    flags = (*_CPU_FLAGS, f"--iree-llvmcpu-target-cpu={level}")
    x86 = level.startswith("x86-64") or level in X86_CPUS
    if x86:
        flags += (f"--iree-llvmcpu-target-triple={X86_64_TRIPLE}",)
    notes = ("for that CPU: runs on a CPU with its features (flashlift.load checks them)" if level in X86_CPUS else
             "portable: runs on any CPU with the level's features (flashlift.load checks them)")
    return Target(f"cpu:{level}", "cpu", flags, "local-task", level, not x86 or host_arch() == "x86_64", notes=notes)


def _cuda(arch: str, spec: str) -> Target:
    if arch not in CUDA_ARCHS and arch not in CUDA_KERNEL_ONLY_ARCHS:
        hint = "(sm_80 PTX also runs on newer GPUs: use 'cuda'; 'cuda:sm_90' for H100/H200)"
        if arch in ("sm_70", "sm_72", "sm_75"):
            hint = "(IREE 3.13 crashes in LLVM on attention MMA for pre-Ampere GPUs)"
        raise InputError(
            f"unknown CUDA architecture '{arch}' in target '{spec}': IREE 3.13 "
            f"attention works for {', '.join(CUDA_ARCHS)} {hint}")
    iree_arch = CUDA_KERNEL_ONLY_ARCHS.get(arch, arch)
    kernel_arch = CUDA_KERNEL_ARCHS.get(arch, "")
    notes = "PTX, JIT-compiled by the CUDA driver at load time."
    if arch != iree_arch:
        notes = (f"IREE compiles for {iree_arch} (no {arch} target in IREE 3.13); "
                 f"covered attention runs flashlift's {kernel_arch}a kernel (loads on cc 9.0 only).")
    return Target(f"cuda:{arch}", "cuda",
                  ("--iree-hal-target-device=cuda", f"--iree-cuda-target={iree_arch}"),
                  "cuda", iree_arch, False, notes=notes, kernel_arch=kernel_arch)


def _rocm(arch: str, spec: str) -> Target:
    if not re.fullmatch(r"gfx[0-9a-f]{3,4}", arch):
        raise InputError(f"target '{spec}': ROCm needs a gfx architecture, e.g. rocm:gfx942")
    # NB: the flag is --iree-rocm-target; 3.13 has no --iree-hip-target.
    return Target(f"rocm:{arch}", "rocm",
                  ("--iree-hal-target-device=hip", f"--iree-rocm-target={arch}"),
                  "hip", arch, False)


def _vulkan(vk_target: str, spec: str) -> Target:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", vk_target):
        raise InputError(f"target '{spec}': bad Vulkan target name '{vk_target}'")
    return Target(f"vulkan:{vk_target}", "vulkan",
                  ("--iree-hal-target-device=vulkan",
                   f"--iree-vulkan-target={vk_target}",
                   "--iree-preprocessing-pass-pipeline="
                   + VULKAN_DECOMPOSE_ATTENTION_PIPELINE),
                  "vulkan", vk_target, False, raise_attention=False,
                  notes=("attention is decomposed to matmul+softmax before "
                         "codegen; bf16 needs VULKAN_BF16_FLAGS (f32 I/O)."))


def parse_target(spec: str) -> Target:
    """Parse a target spec (see the module docstring).

    Raises :class:`flashlift.errors.InputError` (a ``ValueError``) for an
    unknown spec, listing the known ones.
    """
    if not isinstance(spec, str):
        raise InputError(f"target must be a string such as 'cpu' or 'cuda', got {type(spec).__name__}")
    text = spec.strip().lower()
    kind, sep, arg = text.partition(":")
    if text in ("cpu", "host", "llvm-cpu"):
        return _cpu("host", spec)
    if sep and not arg:
        raise _unknown(spec)
    if kind == "cpu":
        return _cpu(arg, spec)
    if kind == "cuda":
        return _cuda(arg or DEFAULT_CUDA_ARCH, spec)
    if kind in ("rocm", "hip"):
        return _rocm(arg or DEFAULT_ROCM_ARCH, spec)
    if kind == "vulkan":
        return _vulkan(arg or DEFAULT_VULKAN_TARGET, spec)
    raise _unknown(spec)


def known_targets() -> list[Target]:
    """One :class:`Target` for each concrete known spec."""
    seen: dict = {}
    for s in KNOWN:
        if "<" not in s:
            t = parse_target(s)
            seen.setdefault(t.name, t)
    return list(seen.values())
