"""Where the FlashAttention kernels find the rows of Q, K and V.

Each of Q, K, V is read in one of two layouts:

  * head-major (B, heads, S, D), contiguous: a head's rows are D elements apart;
  * sequence-major: row s of batch entry b starts at element (b * S + s) * width + col0, and
    head h's D columns at col0 + h * D of it. `width` is heads * D and col0 0 for a
    (B, S, heads, D) tensor (where a model's projection leaves Q before its transpose); a
    fused QKV projection's [B * S, 3 * hidden] result holds Q, K and V side by side, each at
    its column offset (width 3 * hidden), and the kernel reads all three there, no copy.

`in_seq_major` (the kernels' build argument) gives one entry per input: False (head-major),
True (sequence-major, width heads * D, col0 0) or (width, col0). `layout_consts` turns it
into the kernels' constexprs {Q,K,V}_SEQ_MAJOR, {Q,K,V}_ROW_W, {Q,K,V}_COL0.

A full mask (the kernels' HAS_MASK) is one or more (SQ, SKV) slabs; `mask_slab` says which one
a program reads (the Gluon kernel writes the same choice inline: it cannot call Triton functions).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def mask_slab(off_b, off_h, off_bh, MASK_BATCHED: tl.constexpr):
    """The (SQ, SKV) mask slab of batch entry off_b, head off_h (off_bh = off_b * H + off_h), by
    MASK_BATCHED: 0 one mask for all, 1 one per entry (B, SQ, SKV), 2 one per entry and head
    (B, H, SQ, SKV), 3 one per head (H, SQ, SKV)."""
    if MASK_BATCHED == 2:
        slab = off_bh
    elif MASK_BATCHED == 3:
        slab = off_h
    elif MASK_BATCHED == 1:
        slab = off_b
    else:
        slab = off_b * 0
    return slab.to(tl.int64)


def rows(entry, heads: int, head_dim: int) -> tuple:
    """(seq_major, width, col0) of one in_seq_major entry, checked."""
    if entry is False or entry is None:
        return False, head_dim, 0
    if entry is True:
        return True, heads * head_dim, 0
    width, col0 = (int(x) for x in entry)
    if col0 < 0 or col0 + heads * head_dim > width:
        raise ValueError(f"sequence-major rows of width {width} cannot hold {heads} heads of {head_dim} at column {col0}")
    return True, width, col0


def layout_consts(in_seq_major: tuple, heads: int, kv_heads: int, head_dim: int) -> dict:
    consts = {}
    for name, entry, n in zip("QKV", in_seq_major, (heads, kv_heads, kv_heads)):
        seq, width, col0 = rows(entry, n, head_dim)
        consts.update({f"{name}_SEQ_MAJOR": seq, f"{name}_ROW_W": width, f"{name}_COL0": col0})
    return consts


def describe(entry) -> str:
    """The report's name of an entry's layout: bhsd, bshd or bshd[width@col0]."""
    if entry is False or entry is None:
        return "bhsd"
    if entry is True:
        return "bshd"
    return f"bshd[{entry[0]}@{entry[1]}]"
