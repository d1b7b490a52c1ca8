"""CPU (llvm-cpu) lowering configuration for ``iree_linalg_ext.attention``.

Why this exists
---------------
With IREE 3.13, ``iree_linalg_ext.attention`` on llvm-cpu goes through the
``LinalgExtTileAndVectorize`` pipeline (attention -> online_attention ->
decomposed into QK matmul / online softmax / PV matmul, then vectorized).
The default tile-size heuristic (``setRootConfig(AttentionOp)`` in
``LLVMCPU/KernelDispatch.cpp``) caps the vector tiles by register space and by
the "large vector" limit (32 KiB per vector op), which for head_dim 64 yields,
e.g. for f32 ``[batch, m, n, k1, k2]``::

    distribution           = [1, 64, 64, 0, 0]
    vector_common_parallel = [1, 1, 16, 0, 0]   # m=1 row, n=16 columns
    vector_reduction       = [0, 0, 0, 0, 8]    # k2 = 8 keys per step

i.e. one query row against 8 keys per step, with n split in 4 pieces (so
QK^T + softmax is recomputed 4 times, once per 16-wide slice of n), and the
QK contraction (reduction over the contiguous k1 dim of both Q and K)
needs a K-tile transpose or horizontal reductions on every step.
Measured on a 2-core znver4 (AVX-512): 15x slower than the
un-raised matmul+softmax+matmul form in f32, 3.4x in f16.

What we do instead
------------------
1. Vector tile ``m=4`` query rows x whole ``n`` x ``k2=32`` keys per step
   (``vector_common_parallel = [1, 4, N, 0, 0]``,
   ``vector_reduction = [0, 0, 0, 0, 32]``).  The whole n extent is
   one tile so the QK/softmax work is done once.  The running output
   accumulator is 4 x N f32 (16 zmm for N=64), and the score tile is 4 x 32
   (8 zmm), which (with operands) fits the 32 AVX-512 registers reasonably;
   larger m (8, 16) spills heavily, smaller m/k2 wastes more time on the
   online-softmax bookkeeping (row max/sum, rescale) per FMA.  Swept
   m in {1,2,4,8,16,32} x k2 in {8..128}: (4, 32) is best for f32 and f16
   and for head dims 32, 64 and 128.
2. Pre-transpose K to ``[..., k1, k2]`` (see ``CPU_PRETRANSPOSE_K``). The
   QK contraction is lowered to outer products
   ``S[m, :] += Q[m, k1] * K^T[k1, :]``, which needs K with k2 contiguous;
   with the natural ``[..., k2, k1]`` layout every (m-tile, k2-tile) step
   transposes a 32x64 K tile in registers (hundreds of shuffles).
   Transposing K once up front costs one pass over K (S*D elements)
   instead of (S/4)*(S/32) in-register tile transposes.  IREE folds a
   plain ``linalg.transpose`` feeding attention back into the indexing map
   (global-opt transpose propagation; ``--iree-global-opt-propagate-transposes=false``
   does NOT stop it), so the transposed K must go through
   ``util.optimization_barrier``.  With the same (4, 32) tiles this is
   ~2.5x; against the best natural-layout tiles (8, 8) it is 1.1-1.3x.
3. ``m * k2 * k1`` = 4*32*64 f32 = 32 KiB hits the pipeline's
   large-vector verifier (limit: 512 native vectors = 32 KiB), which only
   *checks* (it does not change any heuristic), so we turn it off with
   ``--iree-llvmcpu-fail-on-large-vector=false``.  Without the flag use
   ``k2 = 16`` (about 25% slower) -- see ``allow_large_vectors``.

Tile-size lists and the iteration-domain rank
---------------------------------------------
The attribute is attached to the op *as emitted* but is only read at
codegen time, after IREE has (a) dropped unit dims and (b) collapsed all
contiguous batch dims into one.  IREE copies the attribute verbatim, so the
lists must have the *dispatch-level* rank:
``[batch, m, n, k1, k2]`` when prod(batch_dims) > 1, ``[m, n, k1, k2]``
when it is 1.  This also requires that the emitted op's iteration dims are
ordered ``(batch..., m, n, k1, k2)`` (as in the indexing maps flashlift
emits) and that m, n, k1, k2 are single, non-unit dims; for anything else
(dynamic sizes, decode with m == 1, very wide heads) we return ``{}`` and let
IREE's default heuristic handle it (slow, but always correct).

This module has no IREE imports; it only produces attribute text.
"""

from __future__ import annotations

import math

__all__ = [
    "CPU_COMPILE_FLAGS",
    "DATA_TILING_FLAG",
    "CPU_PRETRANSPOSE_K",
    "cpu_attention_attrs",
    "pretransposed_key_map",
]

# Extra iree-compile flags for llvm-cpu when the attrs below are used.
# The large-vector verifier rejects our 4 x 32 x 64 QK contraction (exactly
# 32 KiB of f32); it is a check only, the default heuristics for other ops
# already stay under the limit, so disabling it has no effect elsewhere.
#
# Data tiling: IREE 3.13 leaves it off by default; on, each matmul's operands are packed into
# the tile layout of the target's vector unit (and bf16 matmuls use its bf16 dot products).
# The seed module on a Zen 4 core pair: f32 15.4 -> 11.3 ms, bf16 22.6 -> 6.1 ms
# (bench/results/seed-cpu.md); attention dispatches are not matmuls and are untouched.
# A module data tiling fails on (IREE 3.13: "'linalg.pack' op expected padding_value has 'i8'
# but got: 'i1'" for a boolean masked_fill) is compiled again without it (driver.iree_compile).
DATA_TILING_FLAG = "--iree-opt-data-tiling=true"
CPU_COMPILE_FLAGS: tuple = ("--iree-llvmcpu-fail-on-large-vector=false", DATA_TILING_FLAG)

# The tile sizes below are tuned for K given as [batch..., k1, k2] (head dim
# outer, sequence inner) and fed through util.optimization_barrier, i.e.
#
#   %kt  = linalg.transpose ins(%k : tensor<BxHxSxDxT>) outs(...)
#            permutation = [0, 1, 3, 2]
#   %ktb = util.optimization_barrier %kt : tensor<BxHxDxSxT>
#   ... iree_linalg_ext.attention with
#       key map affine_map<(b, h, m, n, k1, k2) -> (b, h, k1, k2)>
#
# and then pass k_transposed=True to cpu_attention_attrs().  Without it
# (k_transposed=False, the default, natural [batch..., k2, k1] K) you get the
# config tuned for that layout, which is ~1.1-1.3x slower.
CPU_PRETRANSPOSE_K: bool = True

_PIPELINE = "#iree_codegen.translation_info<pipeline = #iree_cpu.pipeline<LinalgExtTileAndVectorize>>"

# Per-workgroup tile along m. 64 rows gives B*H*ceil(M/64) workgroups, which
# is plenty for a handful of cores, and reuses each K/V tile 64 times.
_DIST_M = 64
# ... except for short query lengths (m <= _SMALL_M, static), which take 32 rows per
# workgroup: 1x12x128x64 f32 on the 2-core znver4 (iree-benchmark-module, twice,
# pre-transposed K): 0.80 ms vs 1.04-1.15 ms with 64 (IREE unraised: 1.11-1.19 ms);
# f16 within noise (1.71-1.75 vs 1.59-2.13 ms); 2x4x256x64 f32 within noise either way.
# The causal chunks of compiler/causal_split.py (32 rows) are clamped to 32 anyway.
_DIST_M_SMALL = 32
_SMALL_M = 128

# Largest head dims (k1, n) the tuned configs were validated for. Above this
# the 4 x n output accumulator no longer fits in registers; fall back to {}.
_MAX_HEAD_DIM = 256


def _fmt(values: list[int]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def pretransposed_key_map(num_batch_dims: int) -> str:
    """Key indexing map text for a pre-transposed K ([batch..., k1, k2]).

    Iteration dims are (batch..., m, n, k1, k2), matching what
    cpu_attention_attrs() assumes.
    """
    b = [f"b{i}" for i in range(num_batch_dims)]
    dims = ", ".join(b + ["m", "n", "k1", "k2"])
    res = ", ".join(b + ["k1", "k2"])
    return f"affine_map<({dims}) -> ({res})>"


def cpu_attention_attrs(
    batch_dims: list[int],
    m: int,
    k1: int,
    k2: int,
    n: int,
    elem_type: str,
    *,
    k_transposed: bool = False,
    allow_large_vectors: bool = True,
    m_vec: int | None = None,
    k2_vec: int | None = None,
    m_dist: int | None = None,
    dispatch_roles: list[str] | None = None,
) -> dict[str, str]:
    """Discardable attributes to attach to ``iree_linalg_ext.attention`` on llvm-cpu.

    Args:
      batch_dims: sizes of the batch iteration dims (e.g. [B, H]).
      m: query sequence length (rows of Q / output).
      k1: head dim of Q/K (contracted in Q @ K^T).
      k2: key/value sequence length (softmax/reduction dim).
      n: head dim of V / output.
      elem_type: "f32", "f16" or "bf16" element type of Q/K/V (the op
        accumulates in f32 on CPU either way; tile choice is the same).
      k_transposed: the op's K operand is [batch..., k1, k2] and comes from
        util.optimization_barrier (recommended, see CPU_PRETRANSPOSE_K).
        Default False = natural [batch..., k2, k1] K, which is what a plain
        raise of q @ k.transpose(-1, -2) produces.
      dispatch_roles: the role of each dim the dispatch has after IREE's folding and
        collapsing (lowering.dispatch_roles: ["batch", "batch", "m", "n", "k1", "k2"] for a
        [B, K2] padding mask over (b, h)); one tile-list entry each. None: all batch dims
        collapse into one (or none when their product is 1), then m, n, k1, k2.
      allow_large_vectors: CPU_COMPILE_FLAGS (large-vector check off) are
        used.  If False, k2 is capped so m*k2*k1 stays under 32 KiB of f32.
      m_vec, k2_vec, m_dist: overrides (tuning database / ``attn-tune``) for
        the query rows per vector tile, the keys per online-softmax step and
        the query rows per workgroup.  ``None`` keeps the defaults described
        above; like them they are clamped to the dim sizes (and ``m_dist`` to
        a multiple of ``m_vec``).  Non-positive values give ``{}``.

    Returns:
      {"compilation_info": "<attr text>"} -- put it in the op's discardable
      attr dict: ``iree_linalg_ext.attention <{indexing_maps = [...]}>
      {compilation_info = ...} ins(...)``.  ``{}`` means "use IREE's default".
    """
    if not _shape_supported(elem_type, batch_dims, m, k1, k2, n):
        return {}
    if any(o is not None and (not isinstance(o, int) or o <= 0) for o in (m_vec, k2_vec, m_dist)):
        return {}
    m_vec, k2_vec, m_dist = _vector_tiles(m, k1, k2, n, k_transposed, allow_large_vectors, m_vec, k2_vec, m_dist)
    # Dispatch-level rank: IREE collapses all batch dims into one, and drops
    # it entirely when the batch product is 1.
    if dispatch_roles is None:
        nb = 1 if None in batch_dims or math.prod(batch_dims) > 1 else 0
        dispatch_roles = ["batch"] * nb + ["m", "n", "k1", "k2"]
    if sorted(r for r in dispatch_roles if r not in ("batch", "m_outer")) != ["k1", "k2", "m", "n"]:
        return {}  # not one m, n, k1 and k2 dim each: keep IREE's default
    # Per dispatch dim: k1 must stay untiled (0); n is one full tile so QK^T/softmax are
    # computed once per (m, k2) tile; k2 is the online-softmax reduction loop; batch dims
    # (and query dims outside the sequence) go one at a time.
    tiles = {"batch": (1, 1, 0), "m_outer": (1, 1, 0), "m": (m_dist, m_vec, 0), "n": (n, n, 0),
             "k1": (0, 0, 0), "k2": (0, 0, k2_vec)}
    dist, vpar, vred = ([tiles[r][i] for r in dispatch_roles] for i in range(3))
    lowering = (
        "#iree_cpu.lowering_config<"
        f"distribution = {_fmt(dist)}, "
        f"vector_common_parallel = {_fmt(vpar)}, "
        f"vector_reduction = {_fmt(vred)}>"
    )
    return {
        "compilation_info": (
            "#iree_codegen.compilation_info<"
            f"lowering_config = {lowering}, translation_info = {_PIPELINE}>"
        )
    }


def _shape_supported(elem_type: str, batch_dims, m, k1, k2, n) -> bool:
    """Shapes the tiles are made for: f32/f16/bf16 with static head dims up to the maximum,
    no unit m/k1/k2/n (IREE folds those before codegen, which would shift the tile lists; nor
    is decode-style m == 1 what this tuning targets). Dynamic batch, m and k2 (torch.export
    dynamic shapes) take the same tiles as large static ones: IREE tiles a dynamic dim with
    remainder handling, and never folds it away as a unit dim."""
    if elem_type not in ("f32", "f16", "bf16"):
        return False
    if not isinstance(k1, int) or not isinstance(n, int):
        return False
    if any(s is not None and s <= 0 for s in [*batch_dims, m, k1, k2, n]):
        return False
    if min(s for s in (m, k1, k2, n) if s is not None) < 2:
        return False
    return k1 <= _MAX_HEAD_DIM and n <= _MAX_HEAD_DIM


def _vector_tiles(m, k1, k2, n, k_transposed: bool, allow_large_vectors: bool,
                  m_vec, k2_vec, m_dist) -> tuple[int, int, int]:
    """(query rows per vector tile, keys per online-softmax step, query rows per workgroup):
    the overrides or the measured defaults, clamped to the dim sizes. Non-multiple sizes are
    fine: IREE handles the remainder tiles (checked numerically on S=197: 5.9 ms vs 95 ms
    default, f32, 1 core), so tiles are not shrunk to divisors."""
    if k_transposed:
        # Outer-product QK with K^T rows contiguous: 4 query rows x 32 keys.
        m_vec_pref, k2_vec_pref = 4, 32
    else:
        # Natural K layout: every step transposes the K tile in registers;
        # 8 rows x 8 keys was the best trade-off measured (~1.1-1.3x slower
        # than the pre-transposed variant; 8*8*64 also stays under the
        # large-vector limit, so it needs no flag).
        m_vec_pref, k2_vec_pref = 8, 8
    m_vec = min(m_vec or m_vec_pref, m or _DIST_M)
    k2_vec = min(k2_vec or k2_vec_pref, k2 or k2_vec_pref)
    if not allow_large_vectors:
        # Keep the QK (m x k2 x k1) and PV (m x n x k2) contractions
        # strictly below 32 KiB of f32 (8192 elements).
        while k2_vec > 1 and m_vec * k2_vec * max(k1, n) >= 8192:
            k2_vec //= 2
    default_dist = _DIST_M_SMALL if m is not None and m <= _SMALL_M else _DIST_M
    m_dist = min(m_dist or default_dist, m or _DIST_M)
    # Keep the distribution tile a multiple of the vector tile.
    return m_vec, k2_vec, max(m_vec, (m_dist // m_vec) * m_vec)
