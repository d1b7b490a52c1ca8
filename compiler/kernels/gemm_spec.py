"""One GEMM a flashlift kernel is built for: what a linear layer's chain (compiler/gemm_dispatch.py)
asks of the kernel, shared by the CUDA kernel (triton_gemm.py) and the CPU one (cpu_gemm.py)
without needing either's toolchain."""

from __future__ import annotations

import dataclasses
from typing import Optional

IN_DTYPES = ("f16", "bf16")
OUT_DTYPES = ("f16", "bf16", "f32")


@dataclasses.dataclass(frozen=True)
class GemmSpec:
    """One GEMM a kernel is built for (everything its code depends on but the tile)."""
    m: int
    n: int
    k: int
    dtype: str = "f16"  # A and W
    out_dtype: str = "f16"
    bias_dtype: Optional[str] = None  # None: no bias operand
    w_nk: bool = True  # W stored [N, K] (nn.Linear) or [K, N]
    gelu: bool = False  # apply GELU (erf form) to the rounded result
    swiglu: bool = False  # C = silu(G) * C, G the gate projection's [M, N] result (an operand)
    residual: bool = False  # C = C + G, G the residual stream [M, N] (an operand)

    @property
    def epilogue(self) -> str:
        """The epilogue's name ("gelu", "swiglu", "residual"), "" for none (tuning.gemm_key's)."""
        return "gelu" if self.gelu else "swiglu" if self.swiglu else "residual" if self.residual else ""

    @property
    def reads_g(self) -> bool:
        """Whether the kernel reads a second [M, N] operand G (the gate, or the residual)."""
        return self.swiglu or self.residual

    def check(self) -> None:
        if self.dtype not in IN_DTYPES:
            raise ValueError(f"GEMM input type {self.dtype} (kernel: f16, bf16)")
        if self.out_dtype not in OUT_DTYPES:
            raise ValueError(f"GEMM output type {self.out_dtype} (kernel: f16, bf16, f32)")
        if self.bias_dtype is not None and self.bias_dtype not in OUT_DTYPES:
            raise ValueError(f"bias type {self.bias_dtype}")
        if (self.gelu or self.swiglu or self.residual) and self.out_dtype == "f32":
            raise ValueError("GELU / SwiGLU / residual epilogue on an f16/bf16 result only")
        if self.gelu + self.swiglu + self.residual > 1:
            raise ValueError("two of the GELU, SwiGLU and residual epilogues together")
        if min(self.m, self.n, self.k) < 1:
            raise ValueError(f"empty GEMM {self.m}x{self.n}x{self.k}")
