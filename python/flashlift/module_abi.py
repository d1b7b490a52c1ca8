"""What a compiled module (.vmfb) declares about itself, read with the IREE runtime alone.

Creating a `VmModule` verifies the flatbuffer (a garbage or truncated module is refused
here, not at its first call). Each exported function carries IREE's reflection attribute
`iree.abi.declaration`, e.g.

    sync func @main(%input0: tensor<2x8x16xf32>, %input1: tensor<?x16xi64>) -> (%output0: tensor<2x8xf32>)

(`async func` for the coarse-fences ABI, whose fences are not listed). `declared_signature`
turns it into the description's form (per input and output: "shape" with None for a dynamic
dim, "dtype" in torch's names) so that the two can be compared (`signature_mismatches`).
"""

from __future__ import annotations

import re

from flashlift.errors import ModuleFormatError

_TORCH_DTYPES = {
    "f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64",
    "i64": "int64", "i32": "int32", "i16": "int16", "i8": "int8", "ui8": "uint8", "i1": "bool",
}
#: The dtypes a compiled module may take and return (what the runtime can pass to IREE).
DTYPES = tuple(_TORCH_DTYPES.values())
#: The IREE parameter scope a module's weights are read from (`#stream.parameter.named<"model"::NAME>`).
PARAMETER_SCOPE = "model"


def dtype_name(mlir_type: str) -> str:
    """torch's name for an MLIR element type ("f32" -> "float32"); other types unchanged."""
    return _TORCH_DTYPES.get(mlir_type, mlir_type)


def open_module(instance, buffer, where: str):
    """A VmModule over `buffer`: mapped in place when it is a memoryview (64-byte aligned,
    as flashlift.archive maps it), else copied into aligned memory."""
    import iree.runtime as rt

    try:
        if isinstance(buffer, memoryview):
            return rt.VmModule.wrap_buffer(instance, buffer)
        return rt.VmModule.copy_buffer(instance, buffer)
    except (ValueError, RuntimeError) as e:
        raise ModuleFormatError(f"{where}: not a valid IREE module ({_first_line(e)})") from None


def declared_signature(vm_module, function: str, where: str) -> dict:
    """{"inputs": [...], "outputs": [...]} of `function` as the module declares it."""
    if function not in vm_module.function_names:
        raise ModuleFormatError(f"{where}: the module has no function {function!r} "
                                f"(it has {', '.join(vm_module.function_names) or 'none'})")
    declaration = vm_module.lookup_function(function).reflection.get("iree.abi.declaration")
    if declaration is None:
        raise ModuleFormatError(f"{where}: function {function!r} of the module has no iree.abi.declaration")
    return parse_declaration(declaration, where)


_DECLARATION = re.compile(r"^\s*(?:a?sync )?func @\S+\((.*)\)\s*->\s*(.*?)\s*$", re.S)
_NAME = re.compile(r"^%[\w.$-]+\s*:\s*")


def parse_declaration(text: str, where: str) -> dict:
    """The inputs and outputs of one `iree.abi.declaration` (see the module doc); a type that
    is not a tensor is kept as {"type": text}, which matches no description entry."""
    found = _DECLARATION.match(text)
    if found is None:
        raise ModuleFormatError(f"{where}: cannot read the module's declaration {text[:200]!r}")
    params, results = found.group(1), found.group(2)
    if results.startswith("(") and results.endswith(")"):
        results = results[1:-1]
    return {"inputs": [_spec(_NAME.sub("", t)) for t in _split(params)],
            "outputs": [_spec(_NAME.sub("", t)) for t in _split(results)]}


def _split(text: str) -> list:
    """The comma-separated items of `text` outside brackets (a type may hold commas)."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(text + ","):
        if c in "<([{":
            depth += 1
        elif c in ">)]}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    return [item for item in items if item]


def _spec(type_text: str) -> dict:
    inner = re.fullmatch(r"tensor<([^<>,]*)>", type_text)
    if inner is None:
        return {"type": type_text}
    *dims, element = inner.group(1).split("x")
    if not all(d == "?" or d.isdigit() for d in dims):
        return {"type": type_text}
    return {"shape": [None if d == "?" else int(d) for d in dims], "dtype": dtype_name(element)}


def describe_spec(spec: dict) -> str:
    """A signature entry as errors print it: "float32 [2, ?, 16]"."""
    if "type" in spec:
        return spec["type"]
    return f"{spec.get('dtype')} [" + ", ".join("?" if d is None else str(d) for d in spec.get("shape", [])) + "]"


def signature_mismatches(described: dict, declared: dict) -> list:
    """Where a description's "inputs"/"outputs" differ from the module's declared signature
    (count, dtype, rank, static dims), one line each; [] when they agree."""
    problems = []
    for key, noun in (("inputs", "input"), ("outputs", "output")):
        mine, theirs = described.get(key, []), declared[key]
        if len(mine) != len(theirs):
            problems.append(f"{len(mine)} {key} described, the module's function has {len(theirs)}")
            continue
        for i, (a, b) in enumerate(zip(mine, theirs)):
            if (a.get("dtype"), a.get("shape")) != (b.get("dtype"), b.get("shape")):
                problems.append(f"{noun} {i}: described as {describe_spec(a)}, the module has {describe_spec(b)}")
    return problems


def _first_line(e: Exception) -> str:
    lines = [l for l in str(e).splitlines() if l.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]
