"""flashlift.json, the description of a compiled module: read with bounds, checked key by key.

`parse` refuses text nested deeper than MAX_DEPTH before json sees it (no RecursionError)
and any JSON error as a ModuleFormatError. `validate` checks every key the runtime reads,
with its type, so that a missing or mistyped key is refused at load naming the key
(`inputs[1].shape[2]`), never a KeyError at the first call. The keys are listed in
flashlift.runtime's module doc; the result tree's grammar in flashlift.structure.
"""

from __future__ import annotations

import json
import keyword
import re

from flashlift.errors import ModuleFormatError
from flashlift.module_abi import DTYPES
from flashlift.structure import CONSTANT_TYPES

#: How deep the description's JSON may nest (a real one nests under 20 levels).
MAX_DEPTH = 100
#: How deep the result tree may nest (flashlift.structure.rebuild recurses on it).
MAX_TREE_DEPTH = 32


def parse(text: bytes, where: str) -> dict:
    """The description object of `text`; a ModuleFormatError names what is wrong."""
    try:
        string = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModuleFormatError(f"{where}: not UTF-8 text ({e})") from None
    depth = _nesting(string)
    if depth > MAX_DEPTH:
        raise ModuleFormatError(f"{where}: nested more than {MAX_DEPTH} levels deep: not a flashlift description")
    try:
        value = json.loads(string)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, and ints of too many digits
        raise ModuleFormatError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ModuleFormatError(f"{where}: a JSON {type(value).__name__}, not an object")
    return value


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


def _nesting(text: str) -> int:
    """How deep `text`'s brackets nest (outside JSON strings); stops counting past MAX_DEPTH."""
    depth = deepest = 0
    for c in re.sub(r"[^\[\]{}]", "", _STRINGS.sub("", text)):
        depth += 1 if c in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                break
    return deepest


class _Bad(Exception):
    """A key that is missing or has the wrong type: where in the description, and why."""


def validate(meta: dict, where: str) -> None:
    """Refuses (ModuleFormatError) a description the runtime cannot use as it is."""
    try:
        _check_description(meta)
    except _Bad as e:
        raise ModuleFormatError(f"{where}: {e}") from None


def _check_description(meta: dict) -> None:
    _need(meta, "function", str, "")
    for key in ("target", "driver", "name", "module_sha256"):
        _optional(meta, key, str, "")
    inputs = _need(meta, "inputs", list, "")
    for i, spec in enumerate(inputs):
        _check_input(spec, f"inputs[{i}]")
    outputs = _need(meta, "outputs", list, "")
    for i, spec in enumerate(outputs):
        _check_tensor(spec, f"outputs[{i}]")
    constants = _optional(meta, "constants", dict, "") or {}
    for k, v in constants.items():
        _type(v, CONSTANT_TYPES, f"constants[{k!r}]")
    if meta.get("output_tree") is not None:
        _check_tree(meta["output_tree"], "output_tree", len(outputs), 0)
    if meta.get("cpu") is not None:
        _check_cpu(meta["cpu"])
    names = set()
    for i, spec in enumerate(_optional(meta, "parameters", list, "") or []):
        _check_tensor(spec, f"parameters[{i}]")
        if None in spec["shape"]:
            raise _Bad(f"parameters[{i}].shape has a dynamic size: a parameter's shape is static")
        name = _need(spec, "name", str, f"parameters[{i}]")
        if name in names:
            raise _Bad(f"parameters[{i}].name {name!r} is listed twice")
        names.add(name)
        if not _is_int(_need(spec, "bytes", int, f"parameters[{i}]"), 0):
            raise _Bad(f"parameters[{i}].bytes is {spec['bytes']!r}, expected a size in bytes (an int >= 0)")
    _check_report(_optional(meta, "report", dict, "") or {})


def _check_tensor(spec, at: str) -> None:
    _type(spec, dict, at)
    for d, size in enumerate(_need(spec, "shape", list, at)):
        if size is not None and not _is_int(size, 0):
            raise _Bad(f"{at}.shape[{d}] is {size!r}, expected a size (an int >= 0) or null")
    dtype = _need(spec, "dtype", str, at)
    if dtype not in DTYPES:
        raise _Bad(f"{at}.dtype is {dtype!r}, expected one of {', '.join(DTYPES)}")


def _check_input(spec, at: str) -> None:
    _check_tensor(spec, at)
    keyword_input = _optional(spec, "keyword", bool, at)
    if keyword_input:
        _need(spec, "name", str, at)
    else:
        _optional(spec, "name", str, at)
    symbols = _optional(spec, "symbols", list, at)
    if symbols is not None:
        if len(symbols) != len(spec["shape"]):
            raise _Bad(f"{at}.symbols has {len(symbols)} entries for {len(spec['shape'])} dims")
        for d, sym in enumerate(symbols):
            _type(sym, (str, type(None)), f"{at}.symbols[{d}]")


_TREE_KINDS = ("tensor", "constant", "tuple", "list", "dict", "namedtuple", "model_output")


def _check_tree(tree, at: str, n_outputs: int, depth: int) -> None:
    """One node of the result tree (flashlift.structure's grammar), its children below it."""
    if depth > MAX_TREE_DEPTH:
        raise _Bad(f"{at} nests more than {MAX_TREE_DEPTH} levels deep")
    _type(tree, dict, at)
    kind = next((k for k in _TREE_KINDS if k in tree), None)
    if kind is None:
        raise _Bad(f"{at} has none of the keys {', '.join(_TREE_KINDS)}")
    if kind == "tensor":
        index = tree["tensor"]
        if not _is_int(index, 0) or index >= n_outputs:
            raise _Bad(f"{at}.tensor is {index!r}, expected the index of one of the {n_outputs} outputs")
    elif kind == "constant":
        _type(tree["constant"], CONSTANT_TYPES, f"{at}.constant")
    elif kind in ("tuple", "list"):
        for i, child in enumerate(_need(tree, kind, list, at)):
            _check_tree(child, f"{at}.{kind}[{i}]", n_outputs, depth + 1)
    else:
        pairs = _need(tree, "dict" if kind == "dict" else "fields", list, at)
        for i, pair in enumerate(pairs):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise _Bad(f"{at}[{i}] is not a [key, value] pair")
            if kind == "dict":
                _type(pair[0], CONSTANT_TYPES, f"{at}.dict[{i}][0]")
            elif not isinstance(pair[0], str) or (kind == "namedtuple" and not _is_field_name(pair[0])):
                raise _Bad(f"{at}.fields[{i}][0] is {pair[0]!r}, expected a field name")
            _check_tree(pair[1], f"{at}[{pair[0]!r}]", n_outputs, depth + 1)
        if kind == "namedtuple" and not _is_field_name(tree["namedtuple"]):
            raise _Bad(f"{at}.namedtuple is {tree['namedtuple']!r}, expected a class name")
        if kind == "model_output":
            _type(tree["model_output"], str, f"{at}.model_output")
            for i, name in enumerate(_optional(tree, "declared", list, at) or []):
                _type(name, str, f"{at}.declared[{i}]")


def _check_cpu(cpu) -> None:
    _type(cpu, dict, "cpu")
    for key in ("arch", "name"):
        _optional(cpu, key, str, "cpu")
    for i, f in enumerate(_need(cpu, "features", list, "cpu")):
        _type(f, str, f"cpu.features[{i}]")


_SITE_KEYS = {"module_path": str, "source": str, "reason": str, "details": dict, "path": str, "path_reason": str}
_DROPOUT_KEYS = {"module_path": str, "p": (int, float), "training": bool, "source": str, "how": str}
_FUSED_KEYS = {"layers": list, "source": str, "shape": list}


def _check_report(report: dict) -> None:
    """The report's lists, so that Report.from_dict and printing it cannot fail."""
    _optional(report, "target", str, "report")
    _optional(report, "raise_attention", bool, "report")
    for key in ("raised", "rejected", "linears"):
        for i, site in enumerate(_optional(report, key, list, "report") or []):
            _check_record(site, _SITE_KEYS, ("module_path", "source"), f"report.{key}[{i}]")
    for i, d in enumerate(_optional(report, "dropouts", list, "report") or []):
        _check_record(d, _DROPOUT_KEYS, ("module_path", "p", "training", "source"), f"report.dropouts[{i}]")
    for i, f in enumerate(_optional(report, "fused", list, "report") or []):
        _check_record(f, _FUSED_KEYS, ("layers", "source", "shape"), f"report.fused[{i}]")
        for j, layer in enumerate(f["layers"]):
            _type(layer, str, f"report.fused[{i}].layers[{j}]")
        for j, n in enumerate(f["shape"]):
            _type(n, int, f"report.fused[{i}].shape[{j}]")
    for i, note in enumerate(_optional(report, "notes", list, "report") or []):
        _type(note, str, f"report.notes[{i}]")


def _check_record(record, keys: dict, required: tuple, at: str) -> None:
    _type(record, dict, at)
    for key in record:
        if key not in keys:
            raise _Bad(f"{at} has an unknown key {key!r}")
    for key, kind in keys.items():
        (_need if key in required else _optional)(record, key, kind, at)


def _need(obj: dict, key: str, kind, at: str):
    if obj.get(key) is None:
        raise _Bad(f"{_join(at, key)} is missing")
    return _type(obj[key], kind, _join(at, key))


def _optional(obj: dict, key: str, kind, at: str):
    return None if obj.get(key) is None else _type(obj[key], kind, _join(at, key))


def _type(value, kind, at: str):
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise _Bad(f"{at} is a {type(value).__name__} ({str(value)[:60]}), expected {names}")
    return value


def _join(at: str, key: str) -> str:
    return f"{at}.{key}" if at else key


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_field_name(name) -> bool:
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")
