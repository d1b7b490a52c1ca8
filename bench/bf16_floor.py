"""The error floor of bf16 attention: what rounding alone costs, against an f64 reference.

A FlashAttention kernel feeds P (the unnormalised softmax, in [0, 1]) to the P @ V matmul in
the input type, and writes O in it. In bf16 (8 bits of mantissa) those two roundings give a
relative error of about 2.3e-3 on N(0, 1) inputs, whatever the kernel; torch SDPA lands there
too (bench/results/attention-gpu-h200.md). Runs on the CPU in seconds:

    python bench/bf16_floor.py
"""

from __future__ import annotations

import torch


def main(b: int = 2, h: int = 8, s: int = 1024, d: int = 64) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(b, h, s, d).bfloat16().double() for _ in range(3))
    scores = (q @ k.transpose(-1, -2)) / d ** 0.5
    ref = torch.softmax(scores, -1) @ v
    p = torch.exp(scores - scores.amax(-1, keepdim=True))
    l_sum = p.sum(-1, keepdim=True)

    def err(o):
        return ((o.bfloat16().double() - ref).norm() / ref.norm()).item()

    print(f"shape (B,H,S,D) = {b},{h},{s},{d}; bf16 inputs; relative error vs f64")
    print(f"  exact math, O rounded to bf16:           {err(ref):.2e}")
    for name, dt in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        print(f"  P rounded to {name:4s}, O rounded to bf16:  {err((p.to(dt).double() @ v) / l_sum):.2e}")


if __name__ == "__main__":
    main()
