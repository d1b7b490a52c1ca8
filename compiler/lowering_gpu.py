"""Hand-picked GPU lowering attributes for ``iree_linalg_ext.attention``.

IREE 3.13 picks a default configuration for attention on GPUs that is far
from peak on NVIDIA parts (measured 50-70 TFLOP/s on H200 for f16, D=64):
it tiles the head dim ``n`` into 32-wide slices, so every workgroup recomputes
the full ``Q @ K^T`` for a slice of ``V``.  A configuration with one workgroup
per (batch, 128 query rows) tile covering the whole head dim, a 32..64 wide
``k2`` (key sequence) reduction tile and 4 subgroups reached ~115-122 TFLOP/s.

:func:`gpu_attention_attrs` produces that style of configuration as attribute
text that is attached to the attention op before it is handed to
``iree-compile``.  It returns an empty dict wherever it does not have a
configuration it trusts (then IREE's own heuristics are used).

Tile choice (CUDA; workgroup = 4 subgroups of 32 threads splitting the query
rows, ``n`` tile = the whole head dim).  Picked so that ptxas 13
(``-arch=sm_90 -v`` on the PTX IREE emits for sm_80) reports no register
spills with f16/bf16, with and without masks:

=========  =======  ========  ==================================
head dim   m tile   k2 tile   ptxas (D=64 rows: 4x16x4096x64)
=========  =======  ========  ==================================
<= 32      128      64        185 regs (k2=32 spills 8 B)
<= 64      128      32        168 regs, 200 causal (k2=64: 255 + 32 B spill)
<= 128     64       32        163 regs (m=128/k2=32: 255 + 32 B spill)
<= 256     64       16        242 regs
=========  =======  ========  ==================================

The m tile drops to 64 when 128 leaves fewer than 2 workgroups per SM, and
further (32, 16) when ``m`` is not divisible.  None of this has been timed on
a GPU yet: the tile table is a starting point for on-device tuning (see the
``m_tile``/``k2_tile``/``num_subgroups`` overrides).

ROCm gfx942 follows the shape of IREE's MI300 attention tuning specs: m=128,
4 waves of 64, ``VMFMA_F32_32x32x16_F16`` for QK^T and
``MFMA_F32_32x32x8_F16`` for PV (``MFMA_F32_32x32x8_BF16`` for both with
bf16), Q not staged in LDS, k2=64 (32 above D=64 to fit 64 KiB of LDS).
Compile-verified only.

Where the attributes go
-----------------------
``decomposition_config`` is an *inherent* attribute (an op property, inside ``<{...}>`` in the
op's assembly) and ``compilation_info`` a *discardable* one; annotate-lowering sets both through
the Python bindings (``op.attributes[name] = ir.Attribute.parse(text)``), which route each to
its place.

Which iteration space the attributes describe
---------------------------------------------
Tile lists are indexed by the op's iteration dims ``(batch.., m, n, k1, k2)``
*as they look once IREE has formed the dispatch*, not as written: before code
generation IREE (a) drops batch dims of size 1 and (b) collapses adjacent
batch dims that every operand indexes together (Q/K/V/O always do; a mask
that indexes only some of the batch dims, e.g. a ``[b, k2]`` padding mask
over ``(b, h)``, prevents it).  The lowering config is carried through that
rewrite unchanged, so it must already have the post-collapse rank; a config
of the wrong rank fails with "tiling of level Reduction failed".  This module
predicts the collapse (see :func:`effective_batch_rank`) assuming the
canonical layout (batch dims leading and in the same order in every operand:
Q ``(batch.., m, k1)``, K ``(batch.., k2, k1)``, V ``(batch.., k2, n)``,
O ``(batch.., m, n)``).  Callers should still fall back to compiling without
the attributes if ``iree-compile`` fails.

No IREE import happens here; this is pure string building.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Sequence

__all__ = [
    "gpu_attention_attrs",
    "effective_batch_rank",
]

# Streaming multiprocessor counts used only to decide between the 128 and 64
# query-row tiles (we want at least 2 workgroups per SM).  H100/H200 are
# compiled as sm_80 (IREE 3.13 does not know sm_90), so sm_80 uses the H100
# count.
_NUM_SMS = {80: 132, 86: 84, 87: 16, 89: 128}
_ROCM_NUM_CUS = {"gfx942": 304}

# Shared-memory budget per workgroup.  IREE 3.13's own limit is 166912 bytes
# for sm_80/86/87 and 101376 for sm_89; real sm_86 parts only have ~99 KiB,
# so sm_86 uses the smaller figure.  gfx942: 64 KiB (IREE enforces it: a
# 128x128 Q tile + 64-wide K/V tiles at D=128 needs 80 KiB and is rejected).
_SMEM_BYTES = {80: 166912, 86: 101376, 87: 166912, 89: 101376}
_ROCM_SMEM_BYTES = {"gfx942": 65536}


def _is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


def _smem_estimate(m_tile: int, k2_tile: int, k1: int, n: int,
                   promote_q: bool = True, elem_bytes: int = 2) -> int:
    """Shared memory of the VectorDistribute attention kernel: [Q tile,] K and
    V tiles and the P (softmax) tile, all in the 16-bit input type, plus ~7%
    for the padding IREE adds against bank conflicts.  (Without the margin
    this gives exactly the 81920 B IREE reports for gfx942, m=128, k2=64,
    D=128; measured padded sizes were 52224 B for an estimated 49152 B.)"""
    raw = elem_bytes * ((m_tile * k1 if promote_q else 0) + k2_tile * k1
                        + k2_tile * n + m_tile * k2_tile)
    return raw * 107 // 100


_DENORMAL = ('{iree_codegen.denormal_fp_math_f32 = '
             '#iree_codegen.denormal_fp_math<"preserve-sign">}')


# --------------------------------------------------------------------------
# Iteration-space bookkeeping
# --------------------------------------------------------------------------

def effective_batch_rank(batch_dims: Sequence[int], has_mask: bool,
                         mask_batch_dims: Optional[Sequence[int]] = None
                         ) -> Optional[int]:
    """Number of batch dims the attention op has after IREE's dispatch
    formation (unit-dim folding + collapsing of contiguous batch dims), or
    ``None`` when that cannot be known.

    ``mask_batch_dims`` lists the positions (into ``batch_dims``) of the batch
    dims the mask operand's indexing map uses: ``[]`` for a causal ``(m, k2)``
    mask, ``[0]`` for a ``(b, k2)`` padding mask over ``(b, h)``, ``[0, 1]``
    for a full ``(b, h, m, k2)`` mask.  With a mask and ``mask_batch_dims``
    None the answer is unknown (None) as soon as two or more non-unit batch
    dims remain, because a mask that uses only some of them stops IREE from
    collapsing them.
    """
    keep = [i for i, d in enumerate(batch_dims) if d != 1]
    if not keep:
        return 0
    if not has_mask or len(keep) == 1:
        return 1
    if mask_batch_dims is None:
        return None
    in_mask = set(mask_batch_dims)
    # The mask splits the remaining batch dims into runs of dims it does /
    # does not index; each run collapses into one dim.
    groups = 1
    for prev, cur in zip(keep, keep[1:]):
        if (prev in in_mask) != (cur in in_mask):
            groups += 1
    return groups


def _fmt(xs: Sequence[int]) -> str:
    return "[" + ", ".join(str(x) for x in xs) + "]"


def _subgroup_basis(nb: int, sg_m: int, qk: bool) -> str:
    """``subgroup_basis`` over the full (batch.., m, n, k1, k2) space plus the
    mapping of the decomposed matmul's own dims onto it.

    QK^T matmul iterates (batch.., m, k1, k2) -> skips n.
    P@V  matmul iterates (batch.., m, n, k2)  -> skips k1.
    """
    counts = [1] * nb + [sg_m, 1, 1, 1]
    m, n, k1, k2 = nb, nb + 1, nb + 2, nb + 3
    dims = list(range(nb)) + ([m, k1, k2] if qk else [m, n, k2])
    return f"[{_fmt(counts)}, {_fmt(dims)}]"


# --------------------------------------------------------------------------
# Target / intrinsic selection
# --------------------------------------------------------------------------

def _parse_arch(target_arch: str) -> tuple[str, str]:
    """Return (family, arch) with family in {"cuda", "rocm", ""}."""
    a = target_arch.strip().lower()
    if ":" in a:                      # accept target specs like "cuda:sm_86"
        kind, _, a = a.partition(":")
        if kind == "cuda" and not a:
            a = "sm_80"
    if a == "cuda":
        a = "sm_80"
    if re.fullmatch(r"sm_\d+", a):
        return "cuda", a
    if re.fullmatch(r"gfx[0-9a-f]+", a):
        return "rocm", a
    return "", a


def _cuda_mma(sm: int, elem_type: str) -> Optional[tuple[str, str]]:
    """(qk intrinsic, pv intrinsic) as attribute text, or None."""
    if sm < 80:
        return None  # bf16 mma.sync needs sm_80; f16 path untested below it.
    if elem_type == "f16":
        i = "#iree_gpu.mma_layout<NV_MMA_SYNC_F32_16x8x16_F16>"
    elif elem_type == "bf16":
        i = "#iree_gpu.mma_layout<NV_MMA_SYNC_F32_16x8x16_BF16>"
    else:
        return None
    return i, i


def _rocm_mma(arch: str, elem_type: str) -> Optional[tuple[str, str]]:
    if arch != "gfx942":
        return None
    if elem_type == "f16":
        # Same pairing as IREE's MI300 attention tuning specs: the virtual
        # 32x32x16 intrinsic for QK^T (its result layout feeds P@V directly)
        # and the native 32x32x8 one for P@V.
        return ("#iree_gpu.virtual_mma_layout<VMFMA_F32_32x32x16_F16>",
                "#iree_gpu.mma_layout<MFMA_F32_32x32x8_F16>")
    if elem_type == "bf16":
        i = "#iree_gpu.mma_layout<MFMA_F32_32x32x8_BF16>"
        return i, i
    return None


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------

def gpu_attention_attrs(target_arch: str, batch_dims: list[int], m: int,
                        k1: int, k2: int, n: int, elem_type: str,
                        has_mask: bool, *,
                        mask_batch_dims: Optional[Sequence[int]] = None,
                        m_tile: Optional[int] = None,
                        k2_tile: Optional[int] = None,
                        num_subgroups: Optional[int] = None,
                        allow_non_pow2_head: bool = False) -> dict[str, str]:
    """Attribute name -> attribute text for one ``iree_linalg_ext.attention``.

    Args:
      target_arch: ``"sm_80"``/``"sm_86"``/``"sm_89"`` (or ``"cuda"``,
        ``"cuda:sm_XX"``) for the CUDA backend, ``"gfx942"`` (or
        ``"rocm:gfx942"``) for ROCm.  Anything else -> ``{}``.
      batch_dims: sizes of the op's leading batch iteration dims, in order.
      m: query length, k1: head dim of Q/K, k2: key length, n: head dim of V.
      elem_type: ``"f16"`` or ``"bf16"`` (element type of Q/K/V); others
        -> ``{}``.
      has_mask: whether the op has a mask operand.
      mask_batch_dims: positions (into ``batch_dims``) of the batch dims the
        mask's indexing map uses, see :func:`effective_batch_rank`.  Needed
        when ``has_mask`` and two or more batch dims are > 1; without it
        such ops get ``{}`` (a wrong guess would make iree-compile fail).
      m_tile, k2_tile, num_subgroups: overrides for tuning experiments.
      allow_non_pow2_head: head dims that are multiples of 16 but not powers
        of two (48, 80, 96, 112, 160, 192, ...) fail in IREE 3.13 with the
        standard config ("failed to derive layout for promoted read-like
        op").  With this flag such shapes get a variant that only promotes
        Q/K/V at the op level (no per-matmul promotion), which compiles but
        has NOT been checked for speed or numerics on a GPU; without it they
        get ``{}`` (IREE's default, which for these head dims is a slow
        non-MMA reduction kernel).

    Returns:
      ``{"compilation_info": ..., "decomposition_config": ...}`` or ``{}``
      (use IREE's default) when no trusted configuration exists, e.g. when
      ``m``/``k2`` are not multiples of 16 (the MMA path needs aligned
      shapes), for decode-like ``m < 16``, head dims that are not multiples
      of 16 or larger than 256, or unknown targets / element types.
    """
    dev = _device(target_arch, elem_type)
    if dev is None or not _shape_supported(batch_dims, m, k1, k2, n, allow_non_pow2_head):
        return {}
    batch = math.prod(batch_dims) if batch_dims else 1
    choice = _choose_tiles(dev, batch, m, k1, k2, n, m_tile, k2_tile)
    if choice is None:
        return {}
    m_tile, k2_tile = choice
    # Subgroups all split the query rows (each owns m_tile/sg rows).
    sg = num_subgroups or max(1, min(4, m_tile // dev.rows_min))
    if m_tile % sg or (m_tile // sg) % dev.rows_min:
        return {}
    nb = effective_batch_rank(batch_dims, has_mask, mask_batch_dims)
    if nb is None:
        return {}
    non_pow2 = not (_is_pow2(k1) and _is_pow2(n))
    return {"compilation_info": _compilation_info(dev, nb, m_tile, n, k2_tile, sg),
            "decomposition_config": _decomposition_config(dev, nb, sg, non_pow2)}


@dataclass(frozen=True)
class _Device:
    """What the tile choice needs to know about a GPU target and element type."""

    family: str  # "cuda" | "rocm"
    mma: tuple[str, str]  # (QK^T intrinsic, PV intrinsic) as attribute text
    subgroup_size: int
    num_units: int  # SMs / CUs: the m tile shrinks to keep >= 2 workgroups on each
    smem_limit: int  # shared memory (LDS) per workgroup, bytes
    rows_min: int  # query rows per subgroup (the MMA's M)
    promote_q: bool  # Q staged in shared memory (ROCm keeps it out, as IREE's MI300 specs do)


def _device(target_arch: str, elem_type: str) -> Optional[_Device]:
    family, arch = _parse_arch(target_arch)
    if family == "cuda":
        sm = int(arch[3:])
        mma = _cuda_mma(sm, elem_type)
        facts = (32, _NUM_SMS.get(sm, 108), _SMEM_BYTES.get(sm, 101376), 16, True)
    elif family == "rocm":
        # No "amdgpu-waves-per-eu" hint (the MI300 specs use 2): with these tiles LDS, not
        # VGPRs, bounds occupancy for D <= 64 and the backend only warns that it missed it.
        mma = _rocm_mma(arch, elem_type)
        facts = (64, _ROCM_NUM_CUS.get(arch, 304), _ROCM_SMEM_BYTES.get(arch, 65536), 32, False)
    else:
        return None
    return None if mma is None else _Device(family, mma, *facts)


def _shape_supported(batch_dims: Sequence[int], m: int, k1: int, k2: int, n: int, allow_non_pow2_head: bool) -> bool:
    """Static sizes the MMA path takes: m, k2 and the head dims multiples of 16 (no decode-like
    m < 16), head dims at most 256, powers of two unless allowed."""
    if any(d <= 0 for d in list(batch_dims) + [m, k1, k2, n]):
        return False  # dynamic / unknown sizes: leave it to IREE
    if m < 16 or m % 16 or k2 % 16 or k1 % 16 or n % 16 or k1 > 256 or n > 256:
        return False
    return allow_non_pow2_head or (_is_pow2(k1) and _is_pow2(n))


def _preferred_tiles(family: str, head: int) -> tuple[int, int]:
    """(query-row tile, k2 reduction tile). CUDA: picked so that ptxas (-arch=sm_90, -v) reports
    no register spills for f16/bf16 with and without masks (m=128/k2=64 at D=64 spills: 255 regs
    + 32 B; m=128/k2=32 at D=128 spills; m=64/k2=32 at D=128 uses 163 regs). ROCm: IREE's MI300
    tuning-spec shape, k2=32 above D=64 for LDS."""
    if family == "rocm":
        return 128, (64 if head <= 64 else 32)
    for limit, tiles in ((32, (128, 64)), (64, (128, 32)), (128, (64, 32))):
        if head <= limit:
            return tiles
    return 64, 16


def _choose_tiles(dev: _Device, batch: int, m: int, k1: int, k2: int, n: int,
                  m_tile: Optional[int], k2_tile: Optional[int]) -> Optional[tuple[int, int]]:
    """The first (m tile, k2 tile) in preference order that fits shared memory; an override
    (m_tile / k2_tile) is the only candidate for its dim. None: nothing fits or divides."""
    pref_m, pref_k = _preferred_tiles(dev.family, max(n, k1))
    if m_tile is None:
        m_cands = [t for t in (128, 64, 32, 16) if t <= pref_m and m % t == 0 and t % dev.rows_min == 0]
        # Keep >= 2 workgroups per SM/CU if a smaller tile allows it.
        while len(m_cands) > 1 and m_cands[0] > 64 and batch * (m // m_cands[0]) < 2 * dev.num_units:
            m_cands = m_cands[1:]
    elif m % m_tile or m_tile % dev.rows_min:
        return None
    else:
        m_cands = [m_tile]
    if k2_tile is None:
        k_cands = [pref_k] + [t for t in (64, 32, 16) if t != pref_k]
        k_cands = [t for t in k_cands if k2 % t == 0 and (dev.family != "rocm" or t >= 32)]
    elif k2 % k2_tile or k2_tile % 16:
        return None
    else:
        k_cands = [k2_tile]
    return next(((mt, kt) for mt in m_cands for kt in k_cands
                 if _smem_estimate(mt, kt, k1, n, dev.promote_q) <= dev.smem_limit), None)


def _compilation_info(dev: _Device, nb: int, m_tile: int, n: int, k2_tile: int, sg: int) -> str:
    """The op's tiles over (batch.., m, n, k1, k2) as the dispatch has them: one workgroup per
    (batch, m tile) covering the whole head dim n, k2 the reduction loop; op-level promotion."""
    workgroup = [1] * nb + [m_tile, n, 0, 0]
    reduction = [0] * nb + [0, 0, 0, k2_tile]
    promoted = [0, 1, 2] if dev.promote_q else [1, 2]
    return ("#iree_codegen.compilation_info<"
            "lowering_config = #iree_gpu.lowering_config<{"
            f"workgroup = {_fmt(workgroup)}, reduction = {_fmt(reduction)}, {_promotion(promoted)}"
            "}>, "
            "translation_info = #iree_codegen.translation_info<"
            "pipeline = #iree_gpu.pipeline<VectorDistribute> "
            f"workgroup_size = [{sg * dev.subgroup_size}, 1, 1] "
            f"subgroup_size = {dev.subgroup_size}, {_DENORMAL}>>")


def _decomposition_config(dev: _Device, nb: int, sg: int, non_pow2: bool) -> str:
    """The two matmuls' intrinsics, promotion and subgroup layout. Non-power-of-two head dims
    promote nothing per matmul (IREE 3.13 cannot derive their promoted layouts)."""
    qk_promoted = [] if non_pow2 else ([0, 1] if dev.promote_q else [1])
    pv_promoted = [] if non_pow2 else [1]
    qk_mma, pv_mma = dev.mma
    return ("{qk_attrs = {attention_qk_matmul, "
            "lowering_config = #iree_gpu.lowering_config<{"
            f"mma_kind = {qk_mma}, {_promotion(qk_promoted)}, "
            f"subgroup_basis = {_subgroup_basis(nb, sg, qk=True)}}}>}}, "
            "pv_attrs = {attention_pv_matmul, "
            "lowering_config = #iree_gpu.lowering_config<{"
            f"mma_kind = {pv_mma}, {_promotion(pv_promoted)}, "
            f"subgroup_basis = {_subgroup_basis(nb, sg, qk=False)}}}>}}}}")


def _promotion(operands: list[int]) -> str:
    if not operands:
        return "promote_operands = []"
    dt = "#iree_gpu.derived_thread_config"
    return f"promote_operands = {_fmt(operands)}, promotion_types = [{', '.join([dt] * len(operands))}]"
