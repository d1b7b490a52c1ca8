"""The attention op's mask operand: what its values mean, and how raise-attention encodes
a model's mask into it so that every row, fully masked ones included, gets PyTorch's answer.

IREE's attention op (and flashlift's kernels, which compute the same thing) adds the f32
mask to the scaled scores *in base 2*: x = s * scale * log2(e) + mask * log2(e), then an
online softmax whose running max starts at finfo(f32).min. What a model computes is
softmax(f(s)), with f made of additions (biases, masks) and selects (masked_fill) in the
model's own precision. Four row cases decide whether the op's answer is the model's:

  * a key masked by `finfo(f32).min` (Hugging Face's fill): `min * log2(e)` overflows to
    -inf inside the op; a row whose every key is so masked then has no finite score and
    the op returns NaN (0/0), where PyTorch's `s + min` rounds every score to `min` and
    gives a uniform row. Every finite mask value is therefore clamped at FLOOR, whose
    base-2 value is finite and still absorbs any score (`s + FLOOR == FLOOR` for
    |s| < 2**100), so the row is uniform, as in PyTorch.
  * `masked_fill(m, -1e4)` *replaces* the score: a fully masked row is uniform in PyTorch,
    but an additive -1e4 leaves softmax(s). A key whose score a select replaced by a
    finite fill (<= MASKED) gets FLOOR: uniform again. (PyTorch gives a masked key
    exp(fill - max) weight, which is exactly 0 in f32 whenever the row's largest
    unmasked score is above fill + 104; the op gives it 0 always.)
  * an additive mask in a narrow type (an f16 model adding finfo(f16).min = -65504)
    rounds the score away in the model: fl16(s - 65504) == -65504 for |s| < 16, while
    the op adds in f32 and would keep softmax(s). A mask value at or below -swamp_limit
    of the type the model adds it in (2**(mantissa bits + 4): every score |s| < 8
    rounds to the mask value) gets FLOOR. In f32 the limit is 2**27; a finite mask above
    it is added as it is, with the model's own rounding behaviour.
  * -inf stays -inf: a row masked by -inf everywhere is NaN in PyTorch's plain softmax
    and in the op; torch's `_safe_softmax` (what SDPA decomposes to) returns 0 there,
    which raise-attention adds after the op (`row_guard`), from the mask alone.

Everything here works on the mask's values, never on the scores, so the encoding costs one
elementwise pass over the (small, broadcast) mask tensor.
"""

from __future__ import annotations

from iree.compiler import ir

from . import ir as irx

# A select() fill or compile-time mask entry at or below this hides the key: -1e4 and below,
# also as bf16 rounds it (-9984); exp(MASKED - max) is exactly 0 in f32 for any max > MASKED + 104.
MASKED = -9.9e3
FLOOR = -(2.0 ** 126)  # the most negative finite value the op's mask holds: FLOOR * log2(e) is finite
# Ops a value may pass through unchanged (IREE's compute barriers, util.optimization_barrier):
# the codegen steps look through them when they follow a mask or a key to its producer.
FENCES = ("iree_tensor_ext.compute_barrier.start", "iree_tensor_ext.compute_barrier.end", "util.optimization_barrier")
MANTISSA_BITS = {"f64": 52, "f32": 23, "f16": 10, "bf16": 7}


def swamp_limit(float_type: str) -> float:
    """|m| at which `s + m`, rounded to `float_type`, equals m for every |s| < 8."""
    return 2.0 ** (MANTISSA_BITS.get(float_type, 23) + 4)


def encode(value: ir.Value, replaced: list, adds_in: str) -> ir.Value:
    """Emits, at the insertion point, the op's f32 mask value for one model mask value.

    `value` is the model's additive term (f32), `replaced` the i1 values that are true where
    a select replaced the score by a finite fill, `adds_in` the narrowest float type the
    model adds a mask in. Returns
        value == -inf                          ? -inf
        replaced or value <= -swamp_limit      ? FLOOR
        otherwise                              : max(value, FLOOR)
    """
    f32 = ir.F32Type.get()
    i1 = ir.IntegerType.get_signless(1)

    def select(cond, a, b):
        return ir.Operation.create("arith.select", results=[f32], operands=[cond, a, b]).results[0]

    floor = irx.float_constant(FLOOR, f32)
    neg_inf = irx.float_constant(float("-inf"), f32)
    clamped = ir.Operation.create("arith.maximumf", results=[f32], operands=[value, floor]).results[0]
    absorbed = irx.cmpf("ole", value, irx.float_constant(-swamp_limit(adds_in), f32))
    for r in replaced:
        absorbed = ir.Operation.create("arith.ori", results=[i1], operands=[absorbed, r]).results[0]
    encoded = select(absorbed, floor, clamped)
    return select(irx.cmpf("oeq", value, neg_inf), neg_inf, encoded)


def float_type_name(t: ir.Type) -> str:
    text = str(t)
    return text if text in MANTISSA_BITS else "f32"
