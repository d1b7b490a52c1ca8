"""externalize-parameters: the model's weights as IREE parameters, not constants in the IR.

Matches: `arith.constant dense_resource<"flashlift_param.NAME"> : T`, the data-less handle the
importer (flashlift.compiler.literals) gives each weight it leaves out of the IR.
Produces, once per NAME:

    util.global private @__param_N = #stream.parameter.named<"model"::"NAME"> : T

and each constant becomes `util.global.load immutable @__param_N : T`. iree-compile then never
sees the weights; at run time IREE's io_parameters module reads "NAME" in scope "model" from
the parameter index the runtime gives it (flashlift.parameters). Ops IREE hoists out of the
function (a weight's transpose) run once, when the module is loaded.

The pipeline's last step: every pass before it sees weights as constants, as it would with
inline data. Appends one `Parameter` record per global, in program order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from iree.compiler import ir

from flashlift.module_abi import PARAMETER_SCOPE

from . import ir as irx

NAME = "externalize-parameters"
SUMMARY = "Turn the importer's data-less weight handles into IREE parameter globals (#stream.parameter.named)"

#: The resource-key prefix of a weight left out of the IR; the rest of the key is its name.
RESOURCE_PREFIX = "flashlift_param."


@dataclass
class Parameter:
    """A parameter the module reads: its name in the archive and its tensor type."""

    name: str
    type: str  # e.g. "tensor<768x768xf16>"


def parameter_name(attr: ir.Attribute):
    """NAME of a `dense_resource<"flashlift_param.NAME">` attribute, else None."""
    text = str(attr)
    if not text.startswith("dense_resource<"):
        return None
    key = text[len("dense_resource<"):text.index(">")]
    if key.startswith('"'):
        key = json.loads(key)
    return key[len(RESOURCE_PREFIX):] if key.startswith(RESOURCE_PREFIX) else None


def run(module, results: list) -> None:
    module_op = module.operation
    body = module_op.regions[0].blocks[0]
    symbols: dict = {}  # NAME -> the global's symbol
    if not len(body.operations):
        return
    first = body.operations[0]  # the globals go before it, in program order
    with module_op.context, ir.Location.unknown():
        for op in irx.collect(module, "arith.constant"):
            name = parameter_name(op.operation.attributes["value"])
            if name is None:
                continue
            ttype = op.operation.results[0].type
            if name not in symbols:
                symbols[name] = f"__param_{len(symbols)}"
                text = (f"util.global private @{symbols[name]} = "
                        f"#stream.parameter.named<{json.dumps(PARAMETER_SCOPE)}::{json.dumps(name)}> : {ttype}")
                ir.InsertionPoint(first).insert(ir.Operation.parse(text))
                results.append(Parameter(name, str(ttype)))
            with ir.InsertionPoint(op), op.operation.location:
                load = ir.Operation.create("util.global.load", results=[ttype], attributes={
                    "global": ir.FlatSymbolRefAttr.get(symbols[name]), "is_immutable": ir.UnitAttr.get()})
            op.operation.results[0].replace_all_uses_with(load.results[0])
            op.operation.erase()
