"""Triton FlashAttention forward, AOT-compiled to PTX/cubin for IREE: the build entry point.

`build_ptx` builds one static shape with the config fa_configs.resolve_config picks, through
one of two kernels: triton_fa_ptr.py (pointer loads, any sm_80+ GPU) or triton_fa_tma.py
(TMA, warp-specialised and persistent; sm_90a). Both share the ABI below. This module is
only needed at *build* time (it imports triton). The result of
`build_ptx` is a `KernelBinary`: the PTX text (and the cubin ptxas made from
it), the kernel's entry name, the launch grid/block, the dynamic shared memory
size and the exact parameter list of the `.entry` (verified against the PTX).

Kernel ABI (every shape is a compile-time constant, so only pointers remain):

    .entry <name>(.param .u64 Q, .param .u64 K, .param .u64 V, .param .u64 O,
                  .param .u64 global_scratch, .param .u64 profile_scratch)

    or, built with key_padding_mask_dtype, (Q, K, V, KPM, O, global_scratch,
    profile_scratch): KPM (B, Skv) contiguous f32/f16/bf16, added to the
    scaled scores of batch b = program_id(1) // H before the softmax
    (HAS_KPM; every key tile then takes the masked loop). Without it KPM is a
    None constexpr and the kernel's code is unchanged.

    or, built with mask_dtype (a run-time additive mask per query and key,
    e.g. LLaMA's causal + padding mask made from the model's inputs), the same
    parameter list with MASK (B, Sq, Skv) contiguous (or (Sq, Skv), the same
    for every batch entry: mask_batched=False; with mask_heads=True a row per
    head too, (B, H, Sq, Skv) as ALiBi's or (H, Sq, Skv)) in KPM's place (HAS_MASK).
    Every key tile takes the masked loop (MASK_SKIP: a tile whose mask
    entries are all <= -1e4 for every row of the query tile is skipped; off by
    default, measured slower). Rows whose every key is masked by a finite
    fill get the softmax over all keys, as in torch (with MASK_SKIP, maybe 0).

    Built with out_seq_major (O_SEQ_MAJOR), O is (B, Sq, H, D): the kernel
    writes what a model's `.transpose(1, 2)` of the attention output reads,
    and the transpose dispatch disappears. Likewise in_seq_major reads Q, K
    and/or V as (B, S, heads, D), where the model's projections leave them,
    or at their columns of a fused QKV projection's result (fa_layouts.py).

  * Q, O: (B, H,   Sq,  D) contiguous, dtype f16/bf16
  * K, V: (B, KVH, Skv, D) contiguous, same dtype; kv head = q head // (H//KVH)
  * global_scratch / profile_scratch are appended by Triton >= 3.3 to every
    kernel. For this kernel both scratch sizes are 0 (checked in build_ptx),
    so Triton's own launcher would pass NULL and the body never dereferences
    them. From IREE we feed them with a tiny dummy binding (see
    iree_dispatch.py); the pointer value is never used.
  * grid  = (ceil(Sq / BLOCK_M), B * H, 1); program_id(0) = query tile,
    program_id(1) = b * H + h.
  * block = (num_warps * 32, 1, 1)
  * dynamic shared memory = metadata.shared bytes (Triton kernels use only
    dynamic shared memory; > 48 KiB needs cuFuncSetAttribute(
    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), which IREE's CUDA HAL
    does at executable load from the export's `workgroup_local_memory`).

Config: `tuned_config` / TUNED_CONFIGS (measured on an H200, see
bench/results/triton-kernel-h200.md) gives the tile (BLOCK_M, BLOCK_N,
num_warps, num_stages) and the kernel variant flags (FOLD_SCALE, KTRANS,
REVERSE_M, ...; all default off = the original kernel) per (arch, head dim,
causal, dtype, length class); a `config` passed to build_ptx overrides any of
them (partial dicts allowed). REVERSE_M reverses the query-tile order inside
the same grid, so the ABI below is unchanged for every config.

Masking semantics (causal):
  * top-left     : key j visible to query i iff j <= i
  * bottom-right : key j visible to query i iff j <= i + (Skv - Sq)
    (this is torch's CausalVariant.LOWER_RIGHT / flash-attn's causal=True).
  Rows that see no key at all (bottom-right with Sq > Skv, or every key
  masked by -inf) produce 0, or NaN (0/0) when built with empty_rows="nan"
  (EMPTY_ROWS_NAN): the attention op gives NaN there, as PyTorch's plain
  softmax does; torch's _safe_softmax (SDPA) gives 0. A row whose every key is
  masked by a finite value (FLOOR = -2^126, what passes/masks.py clamps masks
  at) sees every key: mask * log2(e) = -1.2e38 is finite, absorbs the score,
  and the row is uniform, as in PyTorch. (An f16 mask cannot hold FLOOR; the
  masks flashlift passes are f32.)
"""

from __future__ import annotations

import inspect
import math
from typing import Optional

from flashlift.compiler.kernels import aot, fa_layouts, gluon_fa, triton_fa_ptr, triton_fa_tma
from flashlift.compiler.kernels.aot import MAX_SHARED_OPTIN, KernelBinary
from flashlift.compiler.kernels.fa_configs import KPM_DTYPE, TL_DTYPE, resolve_config, smaller_tiles


def compile_kernel(*, batch: int, heads: int, kv_heads: int, sq: int, skv: int,
                   head_dim: int, dtype: str = "f16", causal: bool = False,
                   bottom_right: bool = False, scale: Optional[float] = None,
                   arch: int = 80, config: Optional[dict] = None,
                   ptx_version: Optional[int] = None,
                   key_padding_mask_dtype: Optional[str] = None,
                   mask_dtype: Optional[str] = None, mask_batched: bool = True, mask_heads: bool = False,
                   out_seq_major: bool = False, in_seq_major: tuple = (False, False, False),
                   empty_rows: str = "zero"):
    """triton.compile of one static shape; returns (CompiledKernel, cfg, consts).
    Shared by build_ptx and tools/kernels/tune_on_gpu.py (which launches the CompiledKernel
    directly: ck[grid](q, k, v, kpm, o, *consts.values()), kpm None without a
    key-padding mask). empty_rows: what a query row that sees no key (every key
    masked by -inf, or causal bottom-right with Sq > Skv) gets: "zero" (what
    the tuning and benchmark tools compare with, a reference whose NaN rows are
    zeroed; also the attention op followed by _safe_softmax's row guard) or
    "nan" (0/0: the attention op's own answer, and PyTorch's plain softmax)."""
    if head_dim not in (64, 128):
        raise ValueError(f"head_dim {head_dim} not supported (64 or 128)")
    if heads % kv_heads:
        raise ValueError("heads must be a multiple of kv_heads")
    if arch not in (80, 90):
        raise ValueError("arch must be 80 or 90")
    tdt = TL_DTYPE[str(dtype).replace("torch.", "")]
    if scale is None:
        scale = 1.0 / math.sqrt(head_dim)
    if key_padding_mask_dtype is not None and mask_dtype is not None:
        raise ValueError("a key-padding mask or a (B, Sq, Skv) mask, not both")
    if empty_rows not in ("zero", "nan"):
        raise ValueError(f"empty_rows={empty_rows!r} (\"zero\" or \"nan\")")
    any_mask = key_padding_mask_dtype if key_padding_mask_dtype is not None else mask_dtype
    mask = "key_padding" if key_padding_mask_dtype is not None else "full" if mask_dtype is not None else ""
    cfg = resolve_config(head_dim=head_dim, arch=arch, causal=bool(causal), bottom_right=bool(bottom_right), dtype=tdt,
                         sq=sq, skv=skv, scale=float(scale), config=config, mask=mask)
    opts = dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    if cfg.get("maxnreg"):
        opts["maxnreg"] = int(cfg["maxnreg"])
    if ptx_version is not None:
        opts["ptx_version"] = ptx_version
    kernel = gluon_fa if cfg["GLUON"] else triton_fa_tma if cfg["TMA"] else triton_fa_ptr
    ck, consts = kernel.compile_kernel(
        tdt=tdt, cfg=cfg, opts=opts, arch=arch, batch=batch, heads=heads, kv_heads=kv_heads, sq=sq, skv=skv,
        head_dim=head_dim, scale=float(scale), causal=bool(causal), bottom_right=bool(bottom_right),
        out_seq_major=out_seq_major, in_seq_major=in_seq_major,
        mask=mask, mask_dtype=KPM_DTYPE[str(any_mask).replace("torch.", "")] if any_mask is not None else "",
        mask_batched=(2 if mask_batched else 3) if mask_heads else int(mask_batched), empty_rows=empty_rows)
    return ck, cfg, consts


def build_ptx(**kwargs) -> KernelBinary:
    """AOT-compiles the FA forward kernel for one static shape; takes compile_kernel's
    keyword arguments (an unknown one is a TypeError).

    causal may be False, True / "top_left", or "bottom_right" (equivalently
    causal=True, bottom_right=True). ptx_version: e.g. 84 to emit `.version 8.4`
    (JIT-able by CUDA >= 12.4 drivers); default is what Triton picks (8.7 for
    its bundled ptxas 12.8, which needs an R570+ driver to JIT).
    key_padding_mask_dtype: None (no mask) or the element type ("f32", "f16",
    "bf16") of a (B, Skv) contiguous additive mask added to the scaled scores
    of batch b before the softmax; the kernel then takes it as a pointer
    parameter right after V (q, k, v, key_padding_mask, o, scratch...).
    mask_dtype: None or the element type of a (B, Sq, Skv) contiguous additive
    mask ((Sq, Skv) with mask_batched=False; with mask_heads=True a row per head
    too: (B, H, Sq, Skv) as ALiBi's, (H, Sq, Skv) with mask_batched=False),
    taken in the same place
    (q, k, v, mask, o, scratch...); config MASK_SKIP=True skips key tiles the
    mask hides from the whole query tile (a data-dependent branch: slower on
    an H200 for LLaMA's causal mask at S=1024, 106 vs 82 us per layer).
    out_seq_major: O is written as (B, Sq, H, D) instead of (B, H, Sq, D).
    in_seq_major: (q, k, v) entries, each False (read as (B, heads, S, D)), True
    (as (B, S, heads, D), where a model's projection leaves it) or (width,
    col0): sequence rows of `width` elements, the heads from column col0 (Q, K
    and V side by side in a fused QKV projection's result; fa_layouts.py).
    empty_rows: "zero" (default) or "nan", the output of a query row that sees
    no key (see compile_kernel); the config says which ("empty_rows"), so the
    two variants never share an executable.
    """
    bound = inspect.signature(compile_kernel).bind(**kwargs)
    bound.apply_defaults()
    a = bound.arguments
    if isinstance(a["causal"], str):
        if a["causal"] not in ("top_left", "bottom_right"):
            raise ValueError(f"causal={a['causal']!r}")
        a["bottom_right"] = a["causal"] == "bottom_right"
        a["causal"] = True
    if a["scale"] is None:
        a["scale"] = 1.0 / math.sqrt(a["head_dim"])
    ck, cfg, _ = compile_kernel(**a)
    # The tuned tile can overflow shared memory where a mask adds its own tiles (head dim 128
    # with a (B, Sq, Skv) f32 mask: 352 KiB): then fewer stages, then narrower key tiles.
    for smaller in smaller_tiles(cfg):
        if ck.metadata.shared <= MAX_SHARED_OPTIN[a["arch"]]:
            break
        ck, cfg, _ = compile_kernel(**{**a, "config": {**(a["config"] or {}), **smaller}})
    kpm_dtype, mask_dtype, in_seq_major = a["key_padding_mask_dtype"], a["mask_dtype"], a["in_seq_major"]
    roles = ["input", "input", "input", "output"]
    names = ["q", "k", "v", "o"]
    if kpm_dtype is not None or mask_dtype is not None:
        roles.insert(3, "input")
        names.insert(3, "key_padding_mask" if mask_dtype is None else "mask")
    grid = (gluon_fa if cfg["GLUON"] else triton_fa_tma).grid(cfg, a["batch"], a["heads"], a["sq"])
    cfg_out = dict(cfg, scale=float(a["scale"]), causal=bool(a["causal"]),
                   bottom_right=bool(a["causal"] and a["bottom_right"]),
                   **{k: a[k] for k in ("batch", "heads", "kv_heads", "sq", "skv", "head_dim")},
                   dtype=TL_DTYPE[str(a["dtype"]).replace("torch.", "")], empty_rows=a["empty_rows"])
    if kpm_dtype is not None:  # (absent otherwise: configs of mask-free kernels unchanged)
        cfg_out["key_padding_mask"] = KPM_DTYPE[str(kpm_dtype).replace("torch.", "")]
    if mask_dtype is not None:
        cfg_out["mask"] = KPM_DTYPE[str(mask_dtype).replace("torch.", "")]
        cfg_out["mask_batched"] = bool(a["mask_batched"])
        if a["mask_heads"]:  # (absent otherwise: configs of the other masked kernels unchanged)
            cfg_out["mask_heads"] = True
    else:
        cfg_out.pop("MASK_SKIP", None)
    if a["out_seq_major"]:
        cfg_out["out_layout"] = "bshd"
    if any(in_seq_major):
        cfg_out["in_layout"] = [fa_layouts.describe(x) for x in in_seq_major]
    return aot.binary(ck, a["arch"], names, roles, grid, cfg_out)


if __name__ == "__main__":  # quick smoke test: python triton_fa.py
    kb = build_ptx(batch=2, heads=8, kv_heads=2, sq=1000, skv=777, head_dim=64,
                   dtype="f16", causal="bottom_right", arch=90)
    print(kb.name, kb.grid, kb.block, kb.shared_mem_bytes, kb.ptx_target,
          kb.ptx_version, [(p.name, p.ptx_type) for p in kb.params],
          len(kb.ptx), len(kb.cubin or b""))
