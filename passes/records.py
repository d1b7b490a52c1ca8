"""What the passes decided: one `SiteRecord` per decision about one site, the report's only source.

Every pass that decides something a user should see appends records to the pipeline's one
`results` list (compiler/pipeline.py:run_pipeline); nothing joins them by location text.

    raise-attention     "attention"  raised | left        (reason: why it was left as written)
    fuse-linears        "linears"    fused                (details: the layers' locations, [M, K, N])
    dispatch-attention  "attention"  the codegen path     (site: the raise-attention record's index)
    dispatch-gemms      "gemm"       the codegen path

An attention op raise-attention builds carries its record's index in `results` as the
discardable attribute `flashlift.site` (kept by every later rewrite of the op: layouts,
causal chunks, masks); dispatch-attention's record about that op has it as `site`. The
`drop-site-ids` pass removes the attribute before iree-compile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from iree.compiler import ir

SITE_ATTR = "flashlift.site"

RAISED, LEFT, FUSED = "raised", "left", "fused"  # raise-attention's and fuse-linears' outcomes


@dataclass
class SiteRecord:
    """One pass's decision about one op (or group of ops) of the model."""

    stage: str  # the pass that decided: "raise-attention", "dispatch-attention", ...
    kind: str  # "attention" | "linears" (a fused group) | "gemm" (a linalg.matmul)
    location: str  # the op's location: the module path and source line (the first layer of a group)
    outcome: str  # RAISED / LEFT / FUSED, or a dispatch's codegen path ("iree-codegen", "triton-fa sm_90")
    reason: str = ""  # why not raised, or why the op kept "iree-codegen"
    details: dict = field(default_factory=dict)  # shapes, scale, mask, the kernel a dispatch built
    site: Optional[int] = None  # the raise-attention record (index in results) this op came from


def mark_site(op, index: int) -> None:
    """Gives `op` (an attention op just raised) its record's index."""
    op.attributes[SITE_ATTR] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64, op.context), index)


def site_of(op) -> Optional[int]:
    """The raise-attention record index `op` carries, or None (an op the input already had)."""
    attrs = op.operation.attributes
    return ir.IntegerAttr(attrs[SITE_ATTR]).value if SITE_ATTR in attrs else None
