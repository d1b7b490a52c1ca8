"""unify-dims: one SSA value per dynamic size that the function's inputs share.

A model exported with dynamic shapes has inputs whose dims are the same number on every
call (q, k and v share the batch size `s0`), but nothing in the IR says so: torch-mlir reads
each size from whichever argument it likes (`tensor.dim %arg1, 0` while reshaping %arg0).
The importer records the symbols on the function:

    func.func @main(...) attributes {flashlift.input_dims = [["s0", 4, "s1", 8], ...]}

Matches: every `tensor.dim %argN, <constant>` (also inside regions) in such a function.
Produces: the same `tensor.dim` of the first argument that has that symbol, created once at
the top of the function. Later passes then see equal sizes as the same value.
Without the attribute the pass does nothing: unrelated dims are never merged.
"""

from __future__ import annotations

from iree.compiler import ir

from . import ir as irx

NAME = "unify-dims"
SUMMARY = "Read equal dynamic input sizes (flashlift.input_dims symbols) from one tensor.dim"
ATTR = "flashlift.input_dims"


def symbols(func) -> dict:
    """{(arg number, dim): symbol} for the dynamic dims named in the attribute."""
    if ATTR not in func.attributes:
        return {}
    table = {}
    for n, dims in enumerate(func.attributes[ATTR]):
        for d, attr in enumerate(dims):
            if isinstance(attr, ir.StringAttr):
                table[(n, d)] = attr.value
    return table


def _unify(func) -> None:
    table = symbols(func)
    if not table:
        return
    entry = func.regions[0].blocks[0]
    first = {}
    for key, sym in sorted(table.items()):
        first.setdefault(sym, key)
    canonical = {}
    anchor = entry.operations[0] if len(entry.operations) else None
    with ir.InsertionPoint(anchor) if anchor is not None else ir.InsertionPoint(entry), func.location:
        for sym, (n, d) in first.items():
            canonical[sym] = irx.tensor_dim(entry.arguments[n], d)
    for op in irx.collect(func, "tensor.dim"):
        if any(irx.result(op) == c for c in canonical.values()):
            continue
        src, index = op.operation.operands
        d = irx.constant_value(index)
        if not isinstance(src, ir.BlockArgument) or ir.BlockArgument(src).owner != entry or not isinstance(d, int):
            continue
        sym = table.get((ir.BlockArgument(src).arg_number, d))
        if sym is None:
            continue
        irx.result(op).replace_all_uses_with(canonical[sym])
        op.operation.erase()


def run(module, results) -> None:
    for func in irx.collect(module, "func.func"):
        _unify(func.operation)
