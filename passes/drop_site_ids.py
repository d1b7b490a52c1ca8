"""drop-site-ids: removes the `flashlift.site` attributes raise-attention put on its ops.

Matches: every `iree_linalg_ext.attention` with a `flashlift.site` attribute (the only ops
that carry one; passes/records.py says what it numbers).
Produces: the same op without it. Runs after the last pass that records decisions, so the IR
handed to iree-compile holds only what IREE knows.
"""

from __future__ import annotations

from . import ir as irx
from .records import SITE_ATTR

NAME = "drop-site-ids"
SUMMARY = "Remove the flashlift.site ids the decision records refer to (before iree-compile)"


def run(module, results) -> None:
    for op in irx.collect(module, "iree_linalg_ext.attention"):
        if SITE_ATTR in op.operation.attributes:
            del op.operation.attributes[SITE_ATTR]
