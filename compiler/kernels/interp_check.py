"""CPU check of the Triton FA kernel's semantics with TRITON_INTERPRET=1.

    .venv/bin/python compiler/kernels/interp_check.py

Covers GQA, causal top-left / bottom-right, ragged Sq/Skv, Sq > Skv (rows with
no visible key -> 0). fp16 only: Triton 3.6's interpreter mishandles bf16
(garbage even for a trivial non-causal case), the compiled kernel is
dtype-generic. Runs small tiles (BLOCK_M=64, BLOCK_N=32) to exercise many tiles.
"""
import math
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import triton  # noqa: E402
import triton.runtime.interpreter as _interp  # noqa: E402

import triton_fa  # noqa: E402

_orig_patch = _interp._patch_lang_tensor


def _patched(tensor, scope):  # numpy >= 2.4 refuses int() of 1-element 1-d arrays
    _orig_patch(tensor, scope)
    scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))


_interp._patch_lang_tensor = _patched


def reference(q, k, v, causal, bottom_right, scale):
    B, H, Sq, D = q.shape
    KVH, Skv = k.shape[1], k.shape[2]
    r = H // KVH
    k = k.float().repeat_interleave(r, 1)
    v = v.float().repeat_interleave(r, 1)
    s = (q.float() @ k.transpose(-1, -2)) * scale
    if causal:
        diag = (Skv - Sq) if bottom_right else 0
        i = torch.arange(Sq)[:, None]
        j = torch.arange(Skv)[None, :]
        s = s.masked_fill(j > i + diag, float("-inf"))
    return torch.nan_to_num(torch.softmax(s, -1), 0.0) @ v


CASES = [  # B, H, KVH, Sq, Skv, D, causal, bottom_right
    (1, 4, 2, 100, 77, 64, False, False),
    (1, 4, 4, 128, 128, 64, True, False),
    (2, 4, 1, 50, 130, 64, True, True),
    (2, 4, 1, 500, 1000, 64, True, True),
    (1, 2, 2, 130, 70, 128, True, True),     # Sq > Skv bottom-right: fully masked rows
    (1, 2, 1, 130, 70, 128, True, False),
    (1, 2, 2, 64, 200, 64, True, False),
]


def main():
    torch.manual_seed(0)
    ok = True
    for (B, H, KVH, Sq, Skv, D, causal, br) in CASES:
        dt = torch.float16
        q = torch.randn(B, H, Sq, D).to(dt)
        k = torch.randn(B, KVH, Skv, D).to(dt)
        v = torch.randn(B, KVH, Skv, D).to(dt)
        o = torch.empty_like(q)
        scale = 1 / math.sqrt(D)
        cfg = dict(BLOCK_M=64, BLOCK_N=32)
        grid = (triton.cdiv(Sq, cfg["BLOCK_M"]), B * H, 1)
        triton_fa._fa_fwd_kernel[grid](
            q, k, v, o, SM_SCALE_LOG2=scale * 1.4426950408889634, H=H, KV_RATIO=H // KVH,
            SQ=Sq, SKV=Skv, HEAD_DIM=D, CAUSAL=causal, BOTTOM_RIGHT=br, **cfg)
        r = reference(q, k, v, causal, br, scale)
        err = ((o.float() - r).norm() / r.norm()).item()
        good = err < 2e-3 and not o.isnan().any()
        ok &= good
        print(f"B={B} H={H} KVH={KVH} Sq={Sq} Skv={Skv} D={D} causal={causal} br={br}: "
              f"relerr={err:.2e} {'ok' if good else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
