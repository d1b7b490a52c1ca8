"""Spike (not used by the compiler): a FlashAttention forward for Hopper with TMA tensor
descriptors and Triton's warp specialisation, timed against triton_fa's tuned kernel and torch
SDPA. Non-causal, no masks, Sq == Skv, (B, H, S, D) contiguous.

Needs a CUDA GPU with torch and Triton 3.6 (the GPU machine):

    PYTHONPATH=$PWD/python:$PWD python3 compiler/kernels/ws_tma_spike.py

What it showed (H200, 2026-11-22; bench/results/triton-kernel-h200.md, section 3): with
BLOCK 128x128, 4 warps, 2 stages, `warp_specialize=True` (Triton makes a producer warpgroup and
two consumer warpgroups, 12 warps), head dim 128 gets 0.88-0.91x of SDPA's kernel where
triton_fa's gets 0.84-0.85x; head dim 64 loses (0.84-0.85x vs 0.89-0.92x). 3 stages with warp
specialisation gave NaN outputs (a race) and are not to be used. What adopting it needs:
`tl.make_tensor_descriptor` writes each CTA's descriptors into Triton's global scratch
(512-640 bytes per CTA), so the dispatch needs a real scratch binding (today both scratch
pointers are bound to Q because the kernels need none), and the causal/masked loops.
"""

import math
import os
import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

@triton.jit
def _fa_ws(Q, K, V, O, SM_SCALE_LOG2: tl.constexpr, BH: tl.constexpr, S: tl.constexpr, D: tl.constexpr,
           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, WS: tl.constexpr):
    start_m = tl.program_id(0)
    off_bh = tl.program_id(1)
    y = BH * S
    desc_q = tl.make_tensor_descriptor(Q, shape=[y, D], strides=[D, 1], block_shape=[BLOCK_M, D])
    desc_k = tl.make_tensor_descriptor(K, shape=[y, D], strides=[D, 1], block_shape=[BLOCK_N, D])
    desc_v = tl.make_tensor_descriptor(V, shape=[y, D], strides=[D, 1], block_shape=[BLOCK_N, D])
    desc_o = tl.make_tensor_descriptor(O, shape=[y, D], strides=[D, 1], block_shape=[BLOCK_M, D])
    row0 = off_bh * S
    qo = row0 + start_m * BLOCK_M
    q = desc_q.load([qo, 0])
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32) + 1.0
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    for start_n in tl.range(0, S, BLOCK_N, warp_specialize=WS):
        k = desc_k.load([row0 + start_n, 0]).T
        qk = tl.dot(q, k)
        m_ij = tl.maximum(m_i, tl.max(qk, 1) * SM_SCALE_LOG2)
        qk = qk * SM_SCALE_LOG2 - m_ij[:, None]
        p = tl.math.exp2(qk)
        alpha = tl.math.exp2(m_i - m_ij)
        l_ij = tl.sum(p, 1)
        acc = acc * alpha[:, None]
        v = desc_v.load([row0 + start_n, 0])
        acc = tl.dot(p.to(v.dtype), v, acc)
        l_i = l_i * alpha + l_ij
        m_i = m_ij
    acc = acc / l_i[:, None]
    desc_o.store([qo, 0], acc.to(O.dtype.element_ty))


VARIANTS = [  # (BLOCK_M, BLOCK_N, num_warps, num_stages, warp_specialize)
    (128, 128, 4, 2, True), (128, 128, 4, 3, True), (128, 64, 4, 2, True), (128, 64, 4, 3, True),
    (128, 128, 8, 2, False), (128, 128, 8, 3, False)]


def rel_err(out, ref) -> float:
    return ((out.float() - ref).norm() / ref.norm()).item()


def main() -> None:
    import flashlift

    flashlift.__path__.append(ROOT)  # flashlift.compiler without the editable install
    from flashlift.compiler.kernels import triton_fa

    print("triton", triton.__version__, torch.cuda.get_device_name())
    # tl.make_tensor_descriptor writes each CTA's descriptors into a global scratch buffer
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
    bench = lambda fn: triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")  # noqa: E731
    for b, h, s, d in [(2, 16, 4096, 128), (1, 32, 8192, 128), (4, 16, 4096, 64)]:
        for dt in (torch.float16, torch.bfloat16):
            torch.manual_seed(0)
            q, k, v = (torch.randn(b, h, s, d, dtype=dt, device="cuda") for _ in range(3))
            ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
            sdpa = bench(lambda: F.scaled_dot_product_attention(q, k, v))
            ck, cfg, consts = triton_fa.compile_kernel(batch=b, heads=h, kv_heads=h, sq=s, skv=s, head_dim=d,
                                                      dtype="bf16" if dt == torch.bfloat16 else "f16", arch=90)
            o = torch.full_like(q, float("nan"))
            current = lambda: ck[(triton.cdiv(s, cfg["BLOCK_M"]), b * h, 1)](q, k, v, None, o, *consts.values())  # noqa: E731
            current()
            t = bench(current)
            lines = [f"{b}x{h}x{s}x{d} {str(dt)[6:]}: sdpa {sdpa * 1e3:.0f} us; triton_fa {t * 1e3:.0f} us "
                     f"({sdpa / t:.2f}x, err {rel_err(o, ref):.1e})"]
            for bm, bn, nw, ns, ws in VARIANTS:
                label = f"m{bm}n{bn}w{nw}s{ns}{'ws' if ws else ''}"
                o = torch.full_like(q, float("nan"))
                fn = lambda: _fa_ws[(s // bm, b * h, 1)](q, k, v, o, 1.4426950408889634 / math.sqrt(d), b * h, s, d,  # noqa: E731
                                                         bm, bn, ws, num_warps=nw, num_stages=ns)
                try:
                    fn()
                    torch.cuda.synchronize()
                    err = rel_err(o, ref)
                    t = bench(fn)
                    lines.append(f"  {label} {t * 1e3:.0f} us ({sdpa / t:.2f}x, err {err:.1e})")
                except Exception as e:  # e.g. out of shared memory
                    lines.append(f"  {label} failed: {str(e)[:120]}")
            print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
