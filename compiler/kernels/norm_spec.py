"""What a norm kernel computes, one static shape: shared by the CPU (cpu_norm.py) and CUDA
(triton_norm.py) kernels and the dispatch that picks one (compiler/norm_dispatch.py).

    x = a [+ r]                     rows x n, in dtype (the sum rounded to it)
    LayerNorm (kind "layer"):  y = (x - mean) / sqrt(var + eps) [* weight] [+ bias]
    RMSNorm (kind "rms"):      y = x / sqrt(mean(x^2) + eps) [* weight]

over the last dim (n), in f32 (mean and the biased variance of each row), stored in
out_dtype; weight and bias [n] in dtype. weight_rounded (RMSNorm as LLaMA writes it,
`weight * y.to(dtype)`): y is rounded to dtype before the weight multiplies it, in dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("f32", "f16", "bf16")


@dataclass(frozen=True)
class NormSpec:
    rows: int
    n: int
    dtype: str  # a, r, weight, bias
    out_dtype: str  # y: dtype or f32
    eps: float
    residual: bool
    weight: bool
    bias: bool
    kind: str = "layer"  # "layer" | "rms"
    weight_rounded: bool = False

    @property
    def name(self) -> str:
        return "RMSNorm" if self.kind == "rms" else "LayerNorm"

    def check(self, max_n: int, multiple: int = 1) -> None:
        """ValueError saying why a kernel with rows of at most max_n elements (a multiple of
        `multiple`) does not compute this one."""
        if self.dtype not in DTYPES:
            raise ValueError(f"element type {self.dtype} (kernel: {', '.join(DTYPES)})")
        if self.out_dtype not in (self.dtype, "f32"):
            raise ValueError(f"result type {self.out_dtype} for {self.dtype} inputs")
        if not 0 < self.n <= max_n or self.n % multiple:
            raise ValueError(f"rows of {self.n} elements (kernel: a multiple of {multiple} up to {max_n})")
        if self.rows <= 0:
            raise ValueError("no rows")
        if self.kind not in ("layer", "rms") or (self.kind == "rms" and self.bias):
            raise ValueError(f"a {self.kind} norm{' with a bias' if self.bias else ''}")
