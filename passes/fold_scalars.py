"""fold-scalars: a rank-0 computation on constants is a constant.

Models compute some scalars with tensor ops on constants, which torch-mlir keeps as code:
DeBERTa's attention scale is `1 / sqrt(tensor(d) * scale_factor)`, which reaches the
raising as

    %c = arith.constant dense<64.0> : tensor<f32>
    %s = linalg.generic {iterator_types = []} ins(%c) outs(%e) { math.sqrt ... } -> tensor<f32>
    %x = tensor.extract %s[]
    %scale = arith.divf %one, %x : f32

so the attention op's scale is not a compile-time constant, and no kernel takes it.
Matches: a `linalg.generic` with no loops whose inputs are all `arith.constant` scalars and
whose body is made of the float operations below (f16, bf16, f32 or f64). Produces: an
`arith.constant` rank-0 tensor holding the body's value, computed in the body's own float
types (numpy's; bf16 as f32 rounded to bf16, nearest-even), so it rounds as the code would;
canonicalize then folds the extract and the arithmetic after it. Anything else (an op not
listed, an integer value, a non-constant input) is left as written. In a bf16 model left
unfolded, IREE hoists the scale's bf16 scalar arithmetic into host code, which its VM cannot
hold (DeBERTa-v2 in bf16 failed to compile).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from iree.compiler import ir

from . import ir as irx

NAME = "fold-scalars"
SUMMARY = "Fold rank-0 linalg.generic computations on constants into constants"

def _bfloat16(x) -> np.float32:
    """`x` rounded to bf16 (to nearest, ties to even; NaN kept), held in an f32."""
    f = np.float32(x)
    if np.isnan(f):
        return f
    bits = int(np.array(f).view(np.uint32))
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000) & 0xFFFFFFFF
    return np.array(bits, dtype=np.uint32).view(np.float32)[()]


_FLOATS = {"f16": np.float16, "bf16": _bfloat16, "f32": np.float32, "f64": np.float64}
_UNARY = {"math.sqrt": np.sqrt, "math.rsqrt": lambda x: 1 / np.sqrt(x), "math.exp": np.exp, "math.log": np.log,
          "arith.negf": np.negative, "math.absf": np.abs}
_BINARY = {"arith.addf": np.add, "arith.subf": np.subtract, "arith.mulf": np.multiply, "arith.divf": np.divide,
           "arith.maximumf": np.maximum, "arith.minimumf": np.minimum, "math.powf": np.power}
_CASTS = ("arith.truncf", "arith.extf")


def _float_type(value: ir.Value):
    """The numpy type of a float scalar or rank-0 tensor value (None for any other)."""
    t = value.type
    if isinstance(t, ir.RankedTensorType):
        if t.rank != 0:
            return None
        t = t.element_type
    return _FLOATS.get(str(t))


def _evaluate(op) -> Optional[np.generic]:
    """The value a rank-0, all-constant `linalg.generic` yields, or None."""
    block = op.operation.regions[0].blocks[0]
    inputs = irx.ins(op)
    values: dict = {}
    for arg, operand in zip(list(block.arguments)[:len(inputs)], inputs):
        kind, number = _float_type(operand), irx.constant_value(operand)
        if kind is None or number is None:
            return None
        values[arg] = kind(number)
    for inner in block.operations:
        name = irx.op_name(inner)
        if name == "linalg.yield":
            return values.get(inner.operands[0])
        kind = _float_type(inner.results[0]) if len(inner.results) == 1 else None
        args = [values.get(v) for v in inner.operands]
        if kind is None or any(a is None for a in args):
            return None
        with np.errstate(all="ignore"):   # inf and NaN fold as the code would compute them
            if name in _UNARY and len(args) == 1:
                values[inner.results[0]] = kind(_UNARY[name](args[0]))
            elif name in _BINARY and len(args) == 2:
                values[inner.results[0]] = kind(_BINARY[name](args[0], args[1]))
            elif name in _CASTS and len(args) == 1:
                values[inner.results[0]] = kind(args[0])
            else:
                return None
    return None


def run(module, results) -> None:
    for op in irx.collect(module, "linalg.generic"):
        out = irx.result(op)
        if irx.iterator_types(op) or _float_type(out) is None or not irx.ins(op):
            continue
        value = _evaluate(op)
        if value is None:
            continue
        with ir.InsertionPoint(op.operation), op.operation.location:
            attr = ir.DenseElementsAttr.get_splat(out.type, ir.FloatAttr.get(out.type.element_type, float(value)))
            constant = ir.Operation.create("arith.constant", results=[out.type], attributes={"value": attr})
        out.replace_all_uses_with(constant.results[0])
        op.operation.erase()
