"""Mask classification for the attention kernel: which mask operand the kernel can take, and how.

An attention op's additive mask reaches the kernel one of two ways:

  * Known at compile time (its value computed by mask_consteval.py): `mask_as_2d` gives the
    [M, K2] mask the op sees (every batch entry must see the same one) and `causal_kind`
    classifies it: False (all zero), "top_left" (key j hidden from query i iff j > i),
    "bottom_right" (iff j > i + (K2 - M)), or NotCovered. Hidden means at or below
    passes/masks.py's MASKED (-9.9e3: -1e4, -65504, -inf); every other entry must be 0. The kernel then
    builds the causal pattern in and reads no mask. A causal mask that hides every key of
    some query by a finite value (FLOOR: the op's row is uniform, the causal kernel's
    empty) is not classified causal.
  * Added at run time (typically a mask computed from the function's arguments): the
    kernel reads the operand itself. `key_padding_mask_type`: a map of exactly (b, k2),
    b the leading Q batch dim and the kernel's batch (Q has >= 2 batch dims and K/V at
    least the leading one), shape [B, K2] -- BERT's [B, 1, 1, S] additive mask, which
    flashlift materialises as [B, K2] -- or (k2) alone, [K2], when the kernel's batch is 1;
    the kernel adds it to the scaled scores (triton_fa.build_ptx's key_padding_mask_dtype).
    `full_mask_type`: (b, m, k2), [B, M, K2] (LLaMA's causal + padding mask built from the
    model's inputs), or (m, k2) alone, [M, K2], one mask for every batch entry; the kernel
    adds mask[b, i, j] to every key tile (build_ptx's mask_dtype). `head_mask_type`: every Q
    batch dim in order, then (m, k2), [B, H, M, K2] -- ALiBi's per-head bias plus the padding
    (BLOOM, MPT, Falcon with alibi), T5's relative-position bias -- a row per (batch entry,
    head) and query; or the heads alone, [H, M, K2], shared by the batch (Swin's relative-
    position bias, a function of the weights). f32, f16 or bf16.

The mask's roles (which of its dims is m, k2 or a Q batch dim) come from
attention_coverage.mask_roles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
from iree.compiler import ir

from flashlift.compiler.kernel_sites import NotCovered
from flashlift.passes.masks import MASKED  # an entry at or below this hides the key

if TYPE_CHECKING:  # annotations only: attention_coverage imports this module
    from flashlift.compiler.attention_coverage import Plan

KPM_DTYPES = ("f32", "f16", "bf16")  # element types of a mask the kernel reads at run time


def key_padding_mask_type(plan: Plan) -> Optional[str]:
    """The element type of the plan's mask operand if the kernel can add it at run time as a
    key-padding mask: map (b, k2) with b the leading Q batch dim, which is the kernel's batch
    (Q has >= 2 batch dims, K/V share the leading one), shape [B, K2] (a dense row-major
    tensor value), float; else None. With a kernel batch of 1 a mask over k2 alone ([K2],
    what flashlift materialises for a batch of one) is the same memory and is taken too."""
    if plan.mask is None:
        return None
    t = ir.RankedTensorType(plan.mask.type)
    if plan.mask_roles == ["k2"] and plan.batch == 1:
        pass  # [K2] == [1, K2] in memory
    elif plan.mask_roles == [0, "k2"]:
        if len(plan.q_batch_sizes) < 2 or plan.kv_batch_len < 1:
            return None  # the kernel's batch is not Q's leading batch dim
        if list(t.shape) != [plan.batch, plan.skv]:
            return None
    else:
        return None
    elt = str(t.element_type)
    return elt if elt in KPM_DTYPES else None


def full_mask_type(plan: Plan) -> Optional[tuple]:
    """(element type, batched) of the plan's mask operand if the kernel can add it at run
    time per query and key: map (b, m, k2) with b the leading Q batch dim, which is the
    kernel's batch (as for key_padding_mask_type), shape [B, M, K2]; or map (m, k2),
    shape [M, K2], the same for every batch entry (batched False). Float only; else None."""
    if plan.mask is None:
        return None
    t = ir.RankedTensorType(plan.mask.type)
    if plan.mask_roles == [0, "m", "k2"]:
        if len(plan.q_batch_sizes) < 2 or plan.kv_batch_len < 1:
            return None
        if list(t.shape) != [plan.batch, plan.sq, plan.skv]:
            return None
        batched = True
    elif plan.mask_roles == ["m", "k2"] and list(t.shape) == [plan.sq, plan.skv]:
        batched = False
    else:
        return None
    elt = str(t.element_type)
    return (elt, batched) if elt in KPM_DTYPES else None


def head_mask_type(plan: Plan) -> Optional[tuple]:
    """(element type, batched) of the plan's mask operand if the kernel can add it at run time
    per head, query and key: a map of every Q batch dim in order, then (m, k2), shape
    [*Q batch dims, M, K2], whose rows are the kernel's flattened (b * H + h) * M + i
    (attention_coverage: the kernel's batch and heads are Q's batch dims, flattened in
    order); or of every Q batch dim but the leading one (the kernel's batch, as for
    key_padding_mask_type), [*Q batch dims[1:], M, K2], one for every batch entry (batched
    False): rows h * M + i. Float only; else None."""
    if plan.mask is None:
        return None
    t = ir.RankedTensorType(plan.mask.type)
    batch_dims = len(plan.q_batch_sizes)
    if plan.mask_roles == list(range(batch_dims)) + ["m", "k2"]:
        batched, shape = True, list(plan.q_batch_sizes)
    elif plan.mask_roles == list(range(1, batch_dims)) + ["m", "k2"] and batch_dims >= 2 and plan.kv_batch_len >= 1:
        batched, shape = False, list(plan.q_batch_sizes[1:])
    else:
        return None
    if list(t.shape) != shape + [plan.sq, plan.skv]:
        return None
    elt = str(t.element_type)
    return (elt, batched) if elt in KPM_DTYPES else None


def mask_as_2d(array, roles: list, sq: int, skv: int):
    """The [M, K2] (`sq` x `skv`) mask the op sees, from the mask's value `array` whose dims
    have `roles` ("m", "k2" or a Q batch position, attention_coverage.mask_roles); batch
    dims must not change it, else NotCovered."""
    a = np.asarray(array, dtype=np.float32)
    roles = list(roles)
    for axis in reversed(range(len(roles))):
        if isinstance(roles[axis], int):
            first = np.take(a, [0], axis=axis)
            if not np.array_equal(a, np.broadcast_to(first, a.shape)):
                raise NotCovered("the mask differs between batch entries (e.g. a padding mask)")
            a = np.squeeze(first, axis=axis)
            del roles[axis]
    if roles == ["k2", "m"]:
        a = a.T
    elif roles == ["m"]:
        a = a[:, None]
    elif roles == ["k2"]:
        a = a[None, :]
    elif roles == []:
        a = a.reshape(1, 1)
    return np.broadcast_to(a, (sq, skv))


def causal_kind(mask) -> object:
    """Classifies a [M, K2] additive mask: False (no mask), "top_left" (key j hidden from
    query i iff j > i), "bottom_right" (iff j > i + K2 - M); NotCovered for anything else,
    and for a causal mask that hides every key of a row by a finite value (the op's
    softmax is uniform there, the causal kernel's row empty)."""
    a = np.asarray(mask)
    hidden = a <= MASKED
    if not np.all(hidden | (a == 0)):
        raise NotCovered("the mask adds values other than 0 and -inf (a bias), not causal")
    if not hidden.any():
        return False
    rows, cols = a.shape
    i = np.arange(rows)[:, None]
    j = np.arange(cols)[None, :]
    kinds = (("top_left", j > i), ("bottom_right", j > i + (cols - rows)))
    for name, expected in kinds:
        if np.array_equal(hidden, expected):
            # A row the mask hides entirely sees no key in the kernel (0 or NaN, what the op
            # gives, and its row guard, where every key is -inf). Hidden by a finite value
            # (FLOOR) the op's row is uniform instead: that is the run-time mask's case.
            empty = hidden.all(axis=1)
            if not np.all(a[empty] == -np.inf):
                raise NotCovered(f"causal {name.replace('_', '-')} mask hides every key from some queries "
                                 "by a finite value (a uniform row, not causal)")
            return name
    raise NotCovered("the mask is not causal (neither top-left nor bottom-right)")
