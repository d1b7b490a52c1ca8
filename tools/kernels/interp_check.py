"""CPU check of the Triton kernels' semantics with TRITON_INTERPRET=1.

    .venv/bin/python tools/kernels/interp_check.py        # the FA kernel
    .venv/bin/python tools/kernels/interp_check.py gemm   # the GEMM kernel (triton_gemm.py)
    .venv/bin/python tools/kernels/interp_check.py tma    # the Hopper kernel (triton_fa_tma.py)
    .venv/bin/python tools/kernels/interp_check.py empty  # both kernels, rows that see no key
                                                             # (empty_rows "zero" / "nan") and FLOOR rows
    .venv/bin/python tools/kernels/interp_check.py norm   # the norm kernel (triton_norm.py):
                                                             # LayerNorm and RMSNorm, residual or not
    .venv/bin/python tools/kernels/interp_check.py rotary # the rotary-embedding kernel
                                                             # (triton_rotary.py), bit for bit

Covers GQA, causal top-left / bottom-right, ragged Sq/Skv, Sq > Skv (rows with
no visible key -> 0), the additive key-padding mask (HAS_KPM: a (B, Skv)
f32 or f16 mask with -inf / -65504 / finite entries, alone and with causal) and
the run-time (B, Sq, Skv) / (Sq, Skv) mask (HAS_MASK: causal + padding as
LLaMA builds it from its inputs, with -65504 fills, and a random bias; with and
without skipping the tiles it hides). fp16 only: Triton 3.6's interpreter mishandles bf16
(garbage even for a trivial non-causal case), the compiled kernel is
dtype-generic. Runs small tiles (BLOCK_M=64, BLOCK_N=32) to exercise many tiles.
"""
import math
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: the kernels are decorated for the interpreter

import torch  # noqa: E402
import triton  # noqa: E402
import triton.runtime.interpreter as _interp  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import flashlift  # noqa: E402

flashlift.__path__.append(ROOT)  # flashlift.compiler from this checkout without the editable install
from flashlift.compiler.kernels import triton_fa_ptr, triton_fa_tma, triton_gemm, triton_norm, triton_rotary  # noqa: E402
from flashlift.compiler.kernels.rotary_spec import RotarySpec  # noqa: E402
from flashlift.compiler.kernels.fa_layouts import layout_consts  # noqa: E402

_orig_patch = _interp._patch_lang_tensor


def _patched(tensor, scope):  # numpy >= 2.4 refuses int() of 1-element 1-d arrays
    _orig_patch(tensor, scope)
    scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))


_interp._patch_lang_tensor = _patched


def reference(q, k, v, causal, bottom_right, scale, kpm=None, mask=None, empty_rows="zero"):
    B, H, Sq, D = q.shape
    KVH, Skv = k.shape[1], k.shape[2]
    r = H // KVH
    k = k.float().repeat_interleave(r, 1)
    v = v.float().repeat_interleave(r, 1)
    s = (q.float() @ k.transpose(-1, -2)) * scale
    if kpm is not None:
        s = s + kpm.float()[:, None, None, :]
    if mask is not None:
        s = s + (mask.float()[:, None] if mask.dim() == 3 else mask.float())
    if causal:
        diag = (Skv - Sq) if bottom_right else 0
        i = torch.arange(Sq)[:, None]
        j = torch.arange(Skv)[None, :]
        s = s.masked_fill(j > i + diag, float("-inf"))
    p = torch.softmax(s, -1)  # NaN on rows that see no key
    return (torch.nan_to_num(p, 0.0) if empty_rows == "zero" else p) @ v


CASES = [  # B, H, KVH, Sq, Skv, D, causal, bottom_right[, key-padding mask dtype]
    (1, 4, 2, 100, 77, 64, False, False),
    (1, 4, 4, 128, 128, 64, True, False),
    (2, 4, 1, 50, 130, 64, True, True),
    (2, 4, 1, 500, 1000, 64, True, True),
    (1, 2, 2, 130, 70, 128, True, True),     # Sq > Skv bottom-right: fully masked rows
    (1, 2, 1, 130, 70, 128, True, False),
    (1, 2, 2, 64, 200, 64, True, False),
    # key-padding mask (B, Skv), additive
    (2, 4, 4, 128, 128, 64, False, False, torch.float32),   # padding alone
    (3, 2, 2, 100, 77, 64, False, False, torch.float32),    # ragged Sq/Skv
    (2, 4, 1, 96, 160, 64, False, False, torch.float32),    # GQA
    (2, 4, 2, 128, 128, 64, True, False, torch.float32),    # causal + padding
    (2, 2, 1, 50, 130, 128, True, True, torch.float32),     # bottom-right + padding + GQA
    (2, 2, 2, 64, 96, 64, False, False, torch.float16),     # f16 mask with -65504
    # run-time (B, Sq, Skv) masks: kind, dtype, batched, skip
    (2, 4, 1, 128, 128, 64, False, False, ("llama", torch.float32, True, True)),   # causal + padding, GQA
    (2, 4, 1, 128, 128, 64, False, False, ("llama", torch.float32, True, False)),  # same, every tile
    (2, 2, 2, 100, 77, 64, False, False, ("llama", torch.float16, True, True)),    # ragged, f16 mask
    (2, 2, 2, 96, 160, 128, False, False, ("bias", torch.float32, True, True)),    # a random bias
    (2, 2, 1, 128, 96, 64, False, False, ("llama", torch.float32, False, True)),   # one mask for all b
    (2, 4, 2, 100, 77, 64, False, False, ("alibi", torch.float32, 2, False)),      # (B, H, Sq, Skv): a row per head
    (2, 2, 1, 128, 128, 64, False, False, ("alibi", torch.float16, 2, True)),      # the same, f16, tiles skipped
    (3, 4, 2, 100, 77, 64, True, False, ("alibi", torch.float32, 3, False)),       # (H, Sq, Skv) for every b, causal
    # O written as (B, Sq, H, D)
    (2, 4, 2, 100, 77, 64, True, True, "bshd"),
    (2, 4, 1, 128, 128, 64, False, False, ("llama", torch.float32, True, False), "bshd"),
    # Q, K and/or V read as (B, S, heads, D)
    (2, 4, 2, 100, 77, 64, True, True, "bshd", "in_qkv"),
    (2, 4, 4, 128, 128, 64, False, False, torch.float32, "in_qkv"),
    (2, 4, 1, 128, 96, 64, False, False, ("llama", torch.float32, True, False), "in_v"),
]


def padding_mask(B, Skv, dtype):
    """Batch b keeps its first Skv - 7 * (b + 1) keys (at least one); the rest are
    -inf (f32) / -65504 (f16); a few kept keys get a finite bias."""
    kpm = torch.zeros(B, Skv)
    for b in range(B):
        kpm[b, max(1, Skv - 7 * (b + 1)):] = float("-inf") if dtype == torch.float32 else -65504.0
    kpm[:, 0] = torch.where(kpm[:, 0] == 0, torch.tensor(-0.75), kpm[:, 0])
    return kpm.to(dtype)


def full_mask(B, Sq, Skv, kind, dtype, batched, H=1):
    """LLaMA's: causal bottom-right plus key padding (batch b drops its last 9 * b keys,
    keeping every row's diagonal key), -65504 where hidden; a random bias; or ALiBi's
    (B, H, Sq, Skv) (batched 2): LLaMA's mask plus a slope per head times the key's distance;
    with batched 3 the (H, Sq, Skv) bias alone, one per head for every batch entry."""
    if kind == "alibi":
        slopes = 2.0 ** -torch.arange(1, H + 1.0)
        dist = (torch.arange(Skv)[None, :] - torch.arange(Sq)[:, None] - (Skv - Sq)).float()
        if batched == 3:
            return (slopes[:, None, None] * dist * 8).to(dtype)
        return (full_mask(B, Sq, Skv, "llama", torch.float32, True)[:, None] + slopes[:, None, None] * dist).to(dtype)
    if kind == "bias":
        m = torch.randn(B, Sq, Skv)
    else:
        i, j = torch.arange(Sq)[:, None], torch.arange(Skv)[None, :]
        hidden = (j > i + (Skv - Sq)).expand(B, Sq, Skv).clone()
        for b in range(B):
            hidden[b, :, j[0] < 9 * b] = True  # left padding: the first keys
            hidden[b][hidden[b].all(-1)] = False  # no fully hidden rows (not covered)
        m = torch.where(hidden, torch.tensor(-65504.0), torch.tensor(0.0))
    return (m if batched else m[0]).to(dtype)


def main():
    torch.manual_seed(0)
    ok = True
    for (B, H, KVH, Sq, Skv, D, causal, br, *rest) in CASES:
        bshd = "bshd" in rest
        seq_in = ("in_qkv" in rest, "in_qkv" in rest, "in_qkv" in rest or "in_v" in rest)
        rest = [x for x in rest if x not in ("bshd", "in_qkv", "in_v")]
        kpm_dt = rest[0] if rest and not isinstance(rest[0], tuple) else None
        fm = rest[0] if rest and isinstance(rest[0], tuple) else None
        dt = torch.float16
        q = torch.randn(B, H, Sq, D).to(dt)
        k = torch.randn(B, KVH, Skv, D).to(dt)
        v = torch.randn(B, KVH, Skv, D).to(dt)
        o = torch.full((B, Sq, H, D), float("nan")).to(dt) if bshd else torch.full_like(q, float("nan"))
        kpm = padding_mask(B, Skv, kpm_dt) if kpm_dt is not None else None
        scale = 1 / math.sqrt(D)
        cfg = dict(BLOCK_M=64, BLOCK_N=32)
        mask = full_mask(B, Sq, Skv, fm[0], fm[1], fm[2], H) if fm else None
        if fm:
            cfg.update(HAS_MASK=True, MASK_BATCHED=int(fm[2]), MASK_SKIP=fm[3])
        grid = (triton.cdiv(Sq, cfg["BLOCK_M"]), B * H, 1)
        triton_fa_ptr._fa_fwd_kernel[grid](
            *(t.transpose(1, 2).contiguous() if f else t for t, f in zip((q, k, v), seq_in)),
            kpm if mask is None else mask, o, SM_SCALE_LOG2=scale * 1.4426950408889634, H=H, KV_RATIO=H // KVH,
            SQ=Sq, SKV=Skv, HEAD_DIM=D, CAUSAL=causal, BOTTOM_RIGHT=br,
            HAS_KPM=kpm is not None, O_SEQ_MAJOR=bshd, **layout_consts(seq_in, H, KVH, D), **cfg)
        if bshd:
            o = o.transpose(1, 2)
        r = reference(q, k, v, causal, br, scale, kpm, mask[None] if fm and fm[2] == 3 else mask)
        err = ((o.float() - r).norm() / r.norm()).item()
        good = err < 2e-3 and not o.isnan().any()
        if kpm is not None or mask is not None:  # the mask must matter: the unmasked result is far off
            r0 = reference(q, k, v, causal, br, scale)
            good &= ((o.float() - r0).norm() / r0.norm()).item() > 1e-2
        ok &= good
        print(f"B={B} H={H} KVH={KVH} Sq={Sq} Skv={Skv} D={D} causal={causal} br={br}: "
              f"kpm={kpm_dt} mask={fm} bshd={bshd} in={seq_in} relerr={err:.2e} {'ok' if good else 'FAIL'}")
    return 0 if ok else 1


FLOOR = -(2.0 ** 126)  # passes/masks.py: what a finite mask is clamped at


def empty_rows_mask(B, Sq, Skv, kind):
    """Masks with rows that see no key (every key -inf) and rows whose every key is FLOOR
    (uniform), next to ordinary rows: kind "full" (B, Sq, Skv) or "kpm" (B, Skv).
    full: a random bias with every 5th key -inf; in batch 0 row 3 all -inf, row 5 all
    FLOOR, row 7 half -inf half FLOOR (uniform over the FLOOR keys), rows 40-71 all -inf
    (whole query tiles); in batch 1 rows 10-20 all FLOOR and row 30 all -inf.
    kpm: batch 0 keeps its keys (a bias, every 5th key -inf), batch 1 all -inf, batch 2
    (and later) all FLOOR."""
    inf = float("-inf")
    if kind == "kpm":
        m = torch.randn(B, Skv) * 0.5
        m[0, ::5] = inf
        m[1] = inf
        m[2:] = FLOOR
        return m
    m = torch.randn(B, Sq, Skv) * 0.5
    m[:, :, ::5] = inf
    m[0, 3] = inf
    m[0, 5] = FLOOR
    m[0, 7, : Skv // 2] = inf
    m[0, 7, Skv // 2:] = FLOOR
    m[0, 40:72] = inf
    m[1, 10:21] = FLOOR
    m[1, 30] = inf
    return m


def check(o, r, mask_matters=None):
    """NaN exactly where the reference has NaN, relative error < 2e-3 elsewhere; with
    mask_matters (the unmasked reference) the mask must change the result."""
    nan = r.isnan()
    same_nan = torch.equal(o.isnan(), nan)
    o, r = o.float()[~nan], r[~nan]
    err = ((o - r).norm() / r.norm()).item()
    good = same_nan and err < 2e-3
    if mask_matters is not None:
        m0 = mask_matters[~nan]
        good &= ((o - m0).norm() / m0.norm()).item() > 1e-2
    return err, good, int(nan.any(-1).sum())  # (rows)


EMPTY_CASES = [  # B, H, KVH, Sq, Skv, D, causal, bottom_right, mask kind (None, "kpm", "full")
    (2, 2, 1, 96, 80, 64, False, False, "full"),    # ragged, GQA
    (2, 2, 2, 128, 128, 128, True, False, "full"),  # causal + the mask
    (3, 2, 2, 100, 77, 64, False, False, "kpm"),
    (3, 2, 1, 64, 96, 64, True, True, "kpm"),      # causal + FLOOR: uniform over the visible keys
    (1, 2, 2, 130, 70, 64, True, True, None),      # Sq > Skv bottom-right: rows that see no key
]


def main_empty_rows():
    """Both variants (empty_rows "zero" and "nan") of both kernels on rows that see no key
    and rows whose every key is FLOOR, against torch (NaN rows kept for "nan")."""
    import warnings

    warnings.filterwarnings("ignore", "invalid value encountered in divide")  # 0/0: the NaN rows
    torch.manual_seed(0)
    ok = True
    for (B, H, KVH, Sq, Skv, D, causal, br, kind), nan, kernel in (
            (c, n, kn) for c in EMPTY_CASES for n in (False, True) for kn in ("pointer", "tma", "tma-persistent")):
        tiles_fit = Sq % 32 == 0 and Skv % 32 == 0
        if kernel != "pointer" and not tiles_fit:
            continue
        q = torch.randn(B, H, Sq, D).half()
        k = torch.randn(B, KVH, Skv, D).half()
        v = torch.randn(B, KVH, Skv, D).half()
        o = torch.full_like(q, 7.0)
        m = empty_rows_mask(B, Sq, Skv, kind) if kind else None
        scale = 1 / math.sqrt(D)
        kw = dict(SM_SCALE_LOG2=scale * 1.4426950408889634, H=H, KV_RATIO=H // KVH, SQ=Sq, SKV=Skv, HEAD_DIM=D,
                  CAUSAL=causal, BOTTOM_RIGHT=br, HAS_KPM=kind == "kpm", HAS_MASK=kind == "full",
                  EMPTY_ROWS_NAN=nan, O_SEQ_MAJOR=False, **layout_consts((False,) * 3, H, KVH, D))
        if kernel == "pointer":
            triton_fa_ptr._fa_fwd_kernel[(triton.cdiv(Sq, 64), B * H, 1)](q, k, v, m, o, BLOCK_M=64, BLOCK_N=32, **kw)
        else:
            persistent = kernel == "tma-persistent"
            triton_fa_tma._fa_fwd_tma_kernel[(3, 1, 1) if persistent else (Sq // 32, B * H, 1)](
                q, k, v, m, o, B=B, BLOCK_M=32, BLOCK_N=32, MASK_BATCHED=True, PERSISTENT=persistent,
                NUM_PROGS=3, **kw)
        r = reference(q, k, v, causal, br, scale, kpm=m if kind == "kpm" else None,
                      mask=m if kind == "full" else None, empty_rows="nan" if nan else "zero")
        r0 = reference(q, k, v, causal, br, scale, empty_rows="nan" if nan else "zero") if kind else None
        err, good, nan_rows = check(o, r, r0)
        empty = int(r.isnan().any(-1).sum()) if nan else int((r == 0).all(-1).sum())
        good &= empty > 0  # the case has rows that see no key: NaN, or 0
        ok &= good
        print(f"EMPTY {kernel} B={B} H={H} KVH={KVH} Sq={Sq} Skv={Skv} D={D} causal={causal} br={br} mask={kind} "
              f"empty_rows={'nan' if nan else 'zero'}: {empty} rows see no key, relerr={err:.2e} "
              f"{'ok' if good else 'FAIL'}")
    return 0 if ok else 1


TMA_CASES = [  # B, H, KVH, Sq, Skv, D, causal, bottom_right, seq-major (q, k, v, o)[, mask]: tile multiples
    (1, 4, 2, 64, 96, 64, False, False, (False,) * 4),
    (2, 2, 2, 96, 96, 128, True, False, (False,) * 4),
    (2, 4, 1, 64, 128, 64, True, True, (False,) * 4),
    (1, 2, 2, 128, 64, 64, True, True, (False,) * 4),   # Sq > Skv bottom-right: fully masked rows
    (2, 4, 2, 64, 96, 64, True, True, (True, True, False, True)),
    (2, 4, 4, 96, 64, 64, False, False, (True, True, True, True)),
    # run-time masks: a (B, Skv) key-padding mask, (B, Sq, Skv) LLaMA's, one (Sq, Skv) bias for all b
    (3, 2, 2, 64, 96, 64, False, False, (False,) * 4, torch.float32),
    (2, 4, 1, 64, 64, 128, False, False, (False, False, True, False), ("llama", torch.float16, True, False)),
    (2, 2, 2, 96, 64, 64, False, False, (False,) * 4, ("bias", torch.float32, False, False)),
    (2, 4, 2, 64, 96, 64, False, False, (False, True, False, False), ("alibi", torch.float32, 2, False)),
    (3, 4, 2, 64, 96, 64, False, False, (False,) * 4, ("alibi", torch.float32, 3, False)),
]


def main_tma():
    """triton_fa_tma's kernel (TMA descriptors; warp specialisation is a no-op here), with a
    program per tile and persistent (3 programs striding over the tiles)."""
    torch.manual_seed(0)
    ok = True
    for (B, H, KVH, Sq, Skv, D, causal, br, seq, *masks), persistent in (
            (case, p) for case in TMA_CASES for p in (False, True)):
        q = torch.randn(B, H, Sq, D).half()
        k = torch.randn(B, KVH, Skv, D).half()
        v = torch.randn(B, KVH, Skv, D).half()
        o = torch.full((B, Sq, H, D) if seq[3] else (B, H, Sq, D), float("nan")).half()
        kpm = padding_mask(B, Skv, masks[0]) if masks and not isinstance(masks[0], tuple) else None
        fm = masks[0] if masks and isinstance(masks[0], tuple) else None
        mask = full_mask(B, Sq, Skv, fm[0], fm[1], fm[2], H) if fm else None
        scale = 1 / math.sqrt(D)
        triton_fa_tma._fa_fwd_tma_kernel[(3, 1, 1) if persistent else (Sq // 32, B * H, 1)](
            *(t.transpose(1, 2).contiguous() if f else t for t, f in zip((q, k, v), seq)),
            kpm if mask is None else mask, o,
            SM_SCALE_LOG2=scale * 1.4426950408889634, B=B, H=H, KV_RATIO=H // KVH, SQ=Sq, SKV=Skv, HEAD_DIM=D,
            CAUSAL=causal, BOTTOM_RIGHT=br, BLOCK_M=32, BLOCK_N=32, O_SEQ_MAJOR=seq[3],
            **layout_consts(seq[:3], H, KVH, D), HAS_KPM=kpm is not None, HAS_MASK=mask is not None,
            MASK_BATCHED=int(fm[2]) if fm else 0, PERSISTENT=persistent, NUM_PROGS=3)
        if seq[3]:
            o = o.transpose(1, 2)
        r = reference(q, k, v, causal, br, scale, kpm, mask[None] if fm and fm[2] == 3 else mask)
        err = ((o.float() - r).norm() / r.norm()).item()
        good = err < 2e-3 and not o.isnan().any()
        if kpm is not None or mask is not None:  # the mask must matter
            r0 = reference(q, k, v, causal, br, scale)
            good &= ((o.float() - r0).norm() / r0.norm()).item() > 1e-2
        ok &= good
        print(f"TMA B={B} H={H} KVH={KVH} Sq={Sq} Skv={Skv} D={D} causal={causal} br={br} seq-major={seq} "
              f"kpm={kpm is not None} mask={fm} persistent={persistent}: relerr={err:.2e} {'ok' if good else 'FAIL'}")
    return 0 if ok else 1


GEMM_CASES = [  # M, N, K, bias dtype, W stored [N, K], out dtype[, "gelu"]; tiles 32x32x16, groups of 2 rows
    (100, 70, 33, torch.float32, True, torch.float16),   # ragged M, N and K; f32 bias
    (64, 64, 64, None, True, torch.float32),            # even tiles, f32 result, no bias
    (50, 96, 80, torch.float16, False, torch.float16),   # W stored [K, N] (x @ w); f16 bias
    (130, 33, 48, None, False, torch.float16),           # a partial last group of tile rows
    (100, 70, 33, torch.float16, True, torch.float16, "gelu"),  # bias, then GELU of the f16 result
    (100, 70, 33, None, True, torch.float16, "swiglu"),  # silu(gate) * this result, ragged edges
    (64, 96, 64, None, True, torch.float16, "swiglu"),   # even tiles
    # rows of 16-byte multiples, which the TMA kernel takes too: ragged M, N and K
    (100, 72, 40, torch.float32, True, torch.float16),
    (130, 40, 48, None, False, torch.float16),
    (100, 72, 40, torch.float16, True, torch.float16, "gelu"),
    (100, 72, 40, None, True, torch.float16, "swiglu"),
    (100, 70, 33, None, True, torch.float16, "residual"),  # the residual stream + this result, ragged
    (100, 72, 40, torch.float16, True, torch.float16, "residual"),  # with a bias, TMA too
]


def main_gemm():
    """triton_gemm's pointer kernel on every case; its TMA kernel (persistent, 3 programs
    walking the tiles; warp specialisation is a no-op here) on the cases it covers."""
    torch.manual_seed(0)
    ok = True
    cfg = dict(BLOCK_M=32, BLOCK_N=32, BLOCK_K=16, GROUP_M=2)
    runs = [(case, False) for case in GEMM_CASES]
    runs += [(case, True) for case in GEMM_CASES
             if not triton_gemm.tma_covers(triton_gemm.GemmSpec(case[0], case[1], case[2], "f16",
                                                                {torch.float16: "f16", torch.float32: "f32"}[case[5]],
                                                                None, case[4]), 90)]
    for (m, n, k, bias_dt, w_nk, out_dt, *act), tma in runs:
        gelu, swiglu, residual = act == ["gelu"], act == ["swiglu"], act == ["residual"]
        gate = (torch.randn(m, n) * 3).half() if swiglu or residual else None
        a = torch.randn(m, k).half()
        w = (torch.randn(n, k) if w_nk else torch.randn(k, n)).half()
        bias = torch.randn(n).to(bias_dt) if bias_dt else None
        c = torch.full((m, n), float("nan")).to(out_dt)
        args = dict(M=m, N=n, K=k, W_NK=w_nk, HAS_BIAS=bias is not None, GELU=gelu, SWIGLU=swiglu, RESIDUAL=residual, **cfg)
        if tma:
            triton_gemm._gemm_tma_kernel[(3, 1, 1)](a, w, bias, gate, c, NUM_PROGS=3, WARP_SPECIALIZE=False,
                                                    FLATTEN=False, **args)
        else:
            triton_gemm._gemm_kernel[(triton.cdiv(m, 32) * triton.cdiv(n, 32), 1, 1)](a, w, bias, gate, c, **args)
        ref = a.float() @ (w.float().T if w_nk else w.float()) + (bias.float() if bias is not None else 0)
        if gelu:
            ref = torch.nn.functional.gelu(ref)
        if swiglu:  # torch in f16: silu(gate) rounded, the product rounded
            ref = (torch.nn.functional.silu(gate.float()).half() * ref.half()).float()
        if residual:  # torch in f16: this result rounded, the sum rounded
            ref = (gate + ref.half()).float()
        err = ((c.float() - ref).norm() / ref.norm()).item()
        good = err < 2e-3 and not c.isnan().any()
        ok &= good
        print(f"GEMM {'TMA' if tma else 'pointer'} M={m} N={n} K={k} bias={bias_dt} w_nk={w_nk} out={out_dt} "
              f"gelu={gelu} swiglu={swiglu} residual={residual}: relerr={err:.2e} {'ok' if good else 'FAIL'}")
    return 0 if ok else 1


NORM_CASES = [  # rows, n, kind, residual, weight, bias, weight_rounded, dtype, out dtype
    (5, 96, "layer", True, True, True, False, torch.float16, torch.float16),   # BERT's: n not a power of 2
    (4, 64, "layer", False, False, False, False, torch.float32, torch.float32),  # no affine, f32
    (5, 96, "rms", True, True, False, True, torch.float16, torch.float16),     # LLaMA's: weight in f16
    (3, 128, "rms", False, True, False, False, torch.float32, torch.float32),  # f32, the weight in f32
    (4, 80, "rms", True, False, False, False, torch.float16, torch.float32),   # no weight, f32 result
]


def main_norm():
    """The norm kernel per row against torch: x = a (+ r, rounded to the input type), then
    LayerNorm or RMSNorm (LLaMA's form where the weight multiplies after the rounding), with
    zero rows (RMSNorm: y = 0, not NaN) and a constant row (LayerNorm: variance 0)."""
    torch.manual_seed(4)
    ok = True
    eps = 1e-6
    for rows, n, kind, residual, weight, bias, rounded, dt, out_dt in NORM_CASES:
        a, r = torch.randn(rows, n).to(dt), torch.randn(rows, n).to(dt)
        a[0] = 3.0  # a constant row
        if not residual:
            a[1] = 0.0  # RMSNorm of zeros: 0
        w = (torch.randn(n) * 0.5 + 1).to(dt) if weight else None
        b = torch.randn(n).to(dt) if bias else None
        y = torch.full((rows, n), float("nan")).to(out_dt)
        triton_norm._norm_kernel[(rows, 1, 1)](a, r if residual else None, w, b, y, N=n,
                                               BLOCK_N=triton.next_power_of_2(n), EPS=eps, HAS_R=residual,
                                               HAS_W=weight, HAS_B=bias, RMS=kind == "rms", WEIGHT_ROUNDED=rounded)
        x = (a + r).to(dt) if residual else a  # the model's sum, in its type
        h = x.double()
        if kind == "rms":
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        else:
            h = (h - h.mean(-1, keepdim=True)) * torch.rsqrt(h.var(-1, unbiased=False, keepdim=True) + eps)
        if rounded:
            h = h.to(dt).double()
        ref = (h * (w.double() if weight else 1.0) + (b.double() if bias else 0.0)).float()
        err = ((y.float() - ref).norm() / ref.norm()).item()
        good = err < (2e-3 if dt == torch.float16 else 1e-5) and not y.isnan().any()
        ok &= good
        print(f"NORM {kind} rows={rows} n={n} residual={residual} weight={weight} bias={bias} rounded={rounded} "
              f"{str(dt)[6:]}->{str(out_dt)[6:]}: relerr={err:.2e} {'ok' if good else 'FAIL'}")
    return 0 if ok else 1


def main_fused():
    """Q, K, V read from one fused QKV buffer [B * S, width] at their columns (fa_layouts.py),
    by both kernels: 8 spare columns first, so that no operand starts at column 0."""
    torch.manual_seed(3)
    ok = True
    for B, H, KVH, S, D, causal, kernel in ((2, 4, 2, 64, 64, False, "pointer"), (2, 4, 4, 64, 64, True, "pointer"),
                                            (1, 4, 2, 64, 64, False, "tma"), (2, 2, 2, 64, 64, True, "tma")):
        pad, width = 8, 8 + (H + 2 * KVH) * D
        buf = torch.randn(B * S, width).half()
        cols = [pad, pad + H * D, pad + (H + KVH) * D]
        q, k, v = (buf[:, c:c + n * D].reshape(B, S, n, D).transpose(1, 2) for c, n in zip(cols, (H, KVH, KVH)))
        o = torch.full((B, H, S, D), float("nan")).half()
        scale = 1 / math.sqrt(D)
        rows = tuple((width, c) for c in cols)
        kw = dict(SM_SCALE_LOG2=scale * 1.4426950408889634, H=H, KV_RATIO=H // KVH, SQ=S, SKV=S, HEAD_DIM=D,
                  CAUSAL=causal, BOTTOM_RIGHT=False, HAS_KPM=False, O_SEQ_MAJOR=False, **layout_consts(rows, H, KVH, D))
        if kernel == "pointer":
            triton_fa_ptr._fa_fwd_kernel[(triton.cdiv(S, 32), B * H, 1)](buf, buf, buf, None, o, BLOCK_M=32, BLOCK_N=32, **kw)
        else:
            triton_fa_tma._fa_fwd_tma_kernel[(S // 32, B * H, 1)](buf, buf, buf, None, o, B=B, BLOCK_M=32, BLOCK_N=32,
                                                                 HAS_MASK=False, MASK_BATCHED=False, PERSISTENT=False,
                                                                 NUM_PROGS=1, **kw)
        r = reference(q.contiguous(), k.contiguous(), v.contiguous(), causal, False, scale)
        err = ((o.float() - r).norm() / r.norm()).item()
        good = err < 2e-3 and not o.isnan().any()
        ok &= good
        print(f"FUSED {kernel} B={B} H={H} KVH={KVH} S={S} D={D} causal={causal} width={width} cols={cols}: "
              f"relerr={err:.2e} {'ok' if good else 'FAIL'}")
    return 0 if ok else 1


# (x shape, seq dim, tables' batch and sequence sizes, x's dtype[, the tables' wider dtype, the
# result's]): LLaMA's (B, S, H, D) after the head transpose sinks, (B, H, S, D), position ids per
# batch element, one position (a decode step), a head dim whose half is no power of two, rows not
# a multiple of the block, f32; OLMo's f32 tables with an f16 x, the sum rounded back or not
ROTARY_CASES = [
    ((2, 40, 4, 64), 1, 1, 40, torch.float16),
    ((2, 4, 40, 64), 2, 1, 40, torch.float16),
    ((3, 16, 2, 128), 1, 3, 16, torch.float16),
    ((2, 1, 4, 64), 1, 2, 1, torch.float16),
    ((1, 24, 3, 80), 1, 1, 24, torch.float16),
    ((2, 7, 3, 32), 1, 1, 7, torch.float32),
    ((2, 4, 40, 64), 2, 1, 40, torch.float16, torch.float32, torch.float16),
    ((2, 40, 4, 64), 1, 1, 40, torch.float16, torch.float32, torch.float32),
]


def main_rotary():
    """The rotary kernel against torch's x * cos + rotate_half(x) * sin in the model's type
    (LLaMA's apply_rotary_pos_emb), bit for bit. (f16 and f32: bf16 is the compiled kernel's
    same code, which the interpreter mishandles.)"""
    torch.manual_seed(5)
    ok = True
    name = {torch.float16: "f16", torch.float32: "f32"}
    for shape, seq_dim, tb, ts, dt, *wide in ROTARY_CASES:
        tdt, odt = wide or (dt, dt)
        b, d1, d2, d = shape
        x = (torch.randn(shape) * 4).to(dt)
        angles = torch.rand(tb, ts, d // 2) * 100
        cos, sin = torch.cat([angles.cos()] * 2, -1).to(tdt), torch.cat([angles.sin()] * 2, -1).to(tdt)
        spec = RotarySpec(shape, name[dt], seq_dim, tb, ts, table_dtype=name[tdt], out_dtype=name[odt])
        out = torch.full(shape, float("nan")).to(odt)
        triton_rotary._rotary_kernel[triton_rotary.grid(spec)](x, cos, sin, out, **triton_rotary.constexprs(spec))
        if seq_dim == 1:   # tables [tb, ts, d] against x (b, s, h, d)
            c, s = cos[:, :, None], sin[:, :, None]
        else:              # x (b, h, s, d)
            c, s = cos[:, None], sin[:, None]
        half = d // 2
        ref = (x * c + torch.cat((-x[..., half:], x[..., :half]), -1) * s).to(odt)  # (torch promotes x to tdt)
        same = torch.equal(out, ref)
        ok &= same
        print(f"ROTARY x={list(shape)} seq_dim={seq_dim} tables=[{tb}, {ts}, {d}] {name[dt]} x, {name[tdt]} tables, "
              f"{name[odt]} out: "
              f"{'bit for bit ok' if same else f'FAIL max diff {(out.float() - ref.float()).abs().max().item():.3e}'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit({"gemm": main_gemm, "tma": main_tma, "empty": main_empty_rows, "fused": main_fused, "norm": main_norm,
              "rotary": main_rotary}.get(sys.argv[1] if sys.argv[1:] else "", main)())
