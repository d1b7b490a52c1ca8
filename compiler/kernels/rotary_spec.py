"""What the rotary-embedding kernel computes, one static shape (passes/rotary.py's form):
shared by the CUDA kernel (triton_rotary.py) and the dispatch (compiler/rotary_dispatch.py)
without needing Triton.

    x, out: [batch, d1, d2, head_dim] in dtype, head_dim = 2h
    cos, sin: [table_batch, table_seq, head_dim] in dtype; row (b, s) of the tables belongs to
              x's rows with b = loop 0 (0 if table_batch is 1) and s = loop seq_dim (0 if
              table_seq is 1)
    out[.., j] = x[.., j] * cos[j] - x[.., j + h] * sin[j]      j < h
    out[.., j] = x[.., j] * cos[j] + x[.., j - h] * sin[j]      j >= h

each product and the sum rounded to dtype, as the model's ops are.
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("f16", "bf16", "f32")


@dataclass(frozen=True)
class RotarySpec:
    shape: tuple  # (batch, d1, d2, head_dim)
    dtype: str
    seq_dim: int  # 1 or 2
    table_batch: int  # 1 or batch
    table_seq: int  # 1 or shape[seq_dim]

    @property
    def rows(self) -> int:
        b, d1, d2, _ = self.shape
        return b * d1 * d2

    def check(self) -> None:
        """ValueError saying why the kernel does not compute this one."""
        b, d1, d2, d = self.shape
        if self.dtype not in DTYPES:
            raise ValueError(f"element type {self.dtype} (kernel: {', '.join(DTYPES)})")
        if d % 2 or d < 2:
            raise ValueError(f"head dim {d} is not even")
        if min(self.shape) < 1:
            raise ValueError(f"empty tensor {list(self.shape)}")
        if self.seq_dim not in (1, 2) or self.table_batch not in (1, b) or \
                self.table_seq not in (1, self.shape[self.seq_dim]):
            raise ValueError(f"tables [{self.table_batch}, {self.table_seq}, {d}] for x {list(self.shape)}")
