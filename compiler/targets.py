"""Compilation targets: the name a user passes to compile_model(target=...) -> iree-compile flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from flashlift.errors import InputError

CUDA_ARCHS = ("sm_80", "sm_86", "sm_89")  # the newest IREE 3.13 knows; sm_80 PTX runs on H100/H200
DEFAULT_CUDA = "sm_80"
KNOWN = ("cpu", "cuda", "cuda:sm_80", "cuda:sm_86", "cuda:sm_89", "rocm:gfx942", "vulkan")


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "cpu" | "cuda" | "rocm" | "vulkan"
    flags: tuple = field(default_factory=tuple)
    driver: str = "local-task"  # IREE runtime driver that runs it
    arch: str = ""
    runs_here: bool = False


def parse_target(spec: str) -> Target:
    if not isinstance(spec, str):
        raise InputError(f"target must be a string such as 'cpu' or 'cuda', got {type(spec).__name__}")
    text = spec.strip().lower()
    if text in ("cpu", "host", "llvm-cpu"):
        return Target("cpu", "cpu", ("--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
                                     "--iree-llvmcpu-target-cpu=host"), "local-task", "host", True)
    if text == "cuda" or text.startswith("cuda:"):
        arch = text.partition(":")[2] or DEFAULT_CUDA
        if arch not in CUDA_ARCHS:
            raise InputError(f"unknown CUDA architecture '{arch}' in target '{spec}': IREE 3.13 knows {', '.join(CUDA_ARCHS)} "
                             "(sm_80 PTX also runs on sm_90 H100/H200)")
        return Target(f"cuda:{arch}", "cuda", ("--iree-hal-target-device=cuda", f"--iree-cuda-target={arch}"), "cuda", arch)
    if text.startswith("rocm:") or text.startswith("hip:"):
        arch = text.partition(":")[2]
        if not arch.startswith("gfx"):
            raise InputError(f"target '{spec}': ROCm needs a gfx architecture, e.g. rocm:gfx942")
        return Target(f"rocm:{arch}", "rocm", ("--iree-hal-target-device=hip", f"--iree-hip-target={arch}"), "hip", arch)
    if text == "vulkan":
        return Target("vulkan", "vulkan", ("--iree-hal-target-device=vulkan", "--iree-vulkan-target=rdna3"), "vulkan", "rdna3")
    raise InputError(f"unknown target '{spec}'; known targets: {', '.join(KNOWN)}")
