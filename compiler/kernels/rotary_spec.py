"""What the rotary-embedding kernel computes, one static shape (passes/rotary.py's form):
shared by the CUDA kernel (triton_rotary.py) and the dispatch (compiler/rotary_dispatch.py)
without needing Triton.

    x: [batch, d1, d2, head_dim] in dtype, head_dim = 2h
    cos, sin: [table_batch, table_seq, head_dim] in table_dtype; row (b, s) of the tables
              belongs to x's rows with b = loop 0 (0 if table_batch is 1) and s = loop seq_dim
              (0 if table_seq is 1)
    out[.., j] = x[.., j] * cos[j] - x[.., j + h] * sin[j]      j < h
    out[.., j] = x[.., j] * cos[j] + x[.., j - h] * sin[j]      j >= h

each product and the sum rounded to table_dtype (the wider of x's and the tables' types: x is
extended, as torch promotes an f16 x times f32 tables, OLMo's), out stored in out_dtype
(table_dtype, or x's type where the model rounds the sum back to it).
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
    table_dtype: str = ""  # the tables' type, in which the products and the sum are rounded ("": dtype)
    out_dtype: str = ""  # "": table_dtype

    @property
    def compute_dtype(self) -> str:
        return self.table_dtype or self.dtype

    @property
    def result_dtype(self) -> str:
        return self.out_dtype or self.compute_dtype

    @property
    def rows(self) -> int:
        b, d1, d2, _ = self.shape
        return b * d1 * d2

    def check(self) -> None:
        """ValueError saying why the kernel does not compute this one."""
        b, d1, d2, d = self.shape
        for t in (self.dtype, self.compute_dtype, self.result_dtype):
            if t not in DTYPES:
                raise ValueError(f"element type {t} (kernel: {', '.join(DTYPES)})")
        width = {"f16": 16, "bf16": 16, "f32": 32}
        if self.compute_dtype != self.dtype and width[self.compute_dtype] <= width[self.dtype]:
            raise ValueError(f"{self.dtype} x with {self.compute_dtype} tables")
        if self.result_dtype not in (self.compute_dtype, self.dtype):
            raise ValueError(f"result in {self.result_dtype} from {self.dtype} x and {self.compute_dtype} tables")
        if d % 2 or d < 2:
            raise ValueError(f"head dim {d} is not even")
        if min(self.shape) < 1:
            raise ValueError(f"empty tensor {list(self.shape)}")
        if self.seq_dim not in (1, 2) or self.table_batch not in (1, b) or \
                self.table_seq not in (1, self.shape[self.seq_dim]):
            raise ValueError(f"tables [{self.table_batch}, {self.table_seq}, {d}] for x {list(self.shape)}")
