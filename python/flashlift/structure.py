"""What a compiled model returns, as plain data: the nesting of its outputs.

The compiled function returns a flat list of tensors; the model returned a tensor, a tuple,
a list, a dict, a named tuple or a transformers `ModelOutput`, nested in any way, with
constants (None, ints, ...) among the tensors. `describe` turns torch.export's output spec
(a pytree TreeSpec) into JSON-able data at compile time; `rebuild` puts the flat tensors
back into that shape at call time, without torch.export or pickle:

    {"tensor": 0}                                  the function's result 0
    {"constant": 3}                                a value torch.export kept as a constant
    {"tuple": [...]} / {"list": [...]}             the children in order
    {"dict": [[key, child], ...]}                  also OrderedDict (keys: str, int, ...)
    {"namedtuple": "Name", "fields": [[f, child], ...]}
    {"model_output": "transformers.x.Class", "fields": [[f, child], ...], "declared": [f, ...]}

A `ModelOutput` comes back as its own class when transformers is importable where the
module runs; otherwise as `OutputDict`, a dict with the class name and the same access
(`out.logits`, `out["logits"]`, `out[0]`, `out.to_tuple()`).
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
from typing import Any, Callable

from flashlift.errors import ImportError_

#: Leaf values that may stand in the description as constants.
CONSTANT_TYPES = (type(None), bool, int, float, str)


def describe(spec, leaf: Callable[[int, str], dict], where: str = "output") -> dict:
    """The plain-data tree of TreeSpec `spec`; `leaf(i, where)` describes its i-th leaf,
    found at `where` (e.g. "output.past_key_values[0]")."""
    counter = iter(range(spec.num_leaves))
    return _describe(spec, lambda at: leaf(next(counter), at), where)


def _describe(spec, next_leaf, where: str) -> dict:
    if spec.is_leaf():
        return next_leaf(where)
    kind, children = spec.type, spec.children()
    if kind is tuple or kind is list:
        return {kind.__name__: [_describe(c, next_leaf, f"{where}[{i}]") for i, c in enumerate(children)]}
    if kind is dict or kind is collections.OrderedDict:
        return {"dict": [[k, _describe(c, next_leaf, f"{where}[{k!r}]")] for k, c in zip(spec.context, children)]}
    if kind is collections.namedtuple:
        cls = spec.context
        return {"namedtuple": cls.__name__,
                "fields": [[f, _describe(c, next_leaf, f"{where}.{f}")] for f, c in zip(cls._fields, children)]}
    if is_model_output(kind):  # (its None fields are not in the spec: "declared" has them all)
        return {"model_output": f"{kind.__module__}.{kind.__qualname__}",
                "fields": [[f, _describe(c, next_leaf, f"{where}.{f}")] for f, c in zip(spec.context, children)],
                "declared": [f.name for f in dataclasses.fields(kind)] if dataclasses.is_dataclass(kind) else []}
    raise ImportError_(f"{where} is a {getattr(kind, '__qualname__', kind)}: flashlift returns tensors in tuples, "
                       "lists, dicts, named tuples and transformers ModelOutputs only")


def is_model_output(cls) -> bool:
    """Whether `cls` derives from transformers' ModelOutput (checked without importing it)."""
    return isinstance(cls, type) and any(
        base.__name__ == "ModelOutput" and base.__module__.startswith("transformers") for base in cls.__mro__)


def constant_leaf(value: Any, where: str) -> dict:
    """A constant result leaf, or an ImportError_ naming what it is when it is not plain data."""
    if isinstance(value, CONSTANT_TYPES):
        return {"constant": value}
    raise ImportError_(f"{where} is a {type(value).__name__} ({value!r}), neither a tensor nor a constant "
                       f"({', '.join(t.__name__ for t in CONSTANT_TYPES)}): it cannot be returned by a compiled module")


def rebuild(tree: dict, tensors: list) -> Any:
    """The model's result: `tensors` (the function's results) put back into `tree`."""
    if "tensor" in tree:
        return tensors[tree["tensor"]]
    if "constant" in tree:
        return tree["constant"]
    if "tuple" in tree:
        return tuple(rebuild(c, tensors) for c in tree["tuple"])
    if "list" in tree:
        return [rebuild(c, tensors) for c in tree["list"]]
    if "dict" in tree:
        return {k: rebuild(c, tensors) for k, c in tree["dict"]}
    fields = {f: rebuild(c, tensors) for f, c in tree["fields"]}
    if "namedtuple" in tree:
        return _namedtuple(tree["namedtuple"], tuple(fields))(**fields)
    cls = model_output_class(tree["model_output"])
    if cls is not None:
        return cls(**fields)
    return OutputDict(tree["model_output"].rpartition(".")[2], fields, tree.get("declared", ()))


def _namedtuple(name: str, fields: tuple):
    return _NAMEDTUPLES.setdefault((name, fields), collections.namedtuple(name, fields))


_NAMEDTUPLES: dict = {}
_CLASSES: dict = {}


def model_output_class(path: str):
    """The ModelOutput class `path` names if transformers is importable here, else None.
    Only modules of the transformers package are imported: the name comes from a file."""
    if path in _CLASSES:
        return _CLASSES[path]
    module, _, name = path.rpartition(".")
    cls = None
    if module.split(".")[0] == "transformers":
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:  # transformers is not installed here (or has no such module)
            cls = None
        if not is_model_output(cls):
            cls = None
    _CLASSES[path] = cls
    return cls


class OutputDict(dict):
    """A ModelOutput's fields where transformers is not importable: a dict that also reads
    fields as attributes (a declared field the model left None reads None) and by position
    (the non-None fields in order), as ModelOutput does."""

    def __init__(self, class_name: str, fields: dict, declared=()):
        super().__init__((k, v) for k, v in fields.items() if v is not None)
        self.class_name = class_name
        self.declared = tuple(declared)

    def __getattr__(self, name: str):
        if name in self:
            return self[name]
        if name in self.__dict__.get("declared", ()):
            return None
        raise AttributeError(f"{self.__dict__.get('class_name', 'OutputDict')} has no field {name!r}")

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return self.to_tuple()[key]
        return super().__getitem__(key)

    def to_tuple(self) -> tuple:
        return tuple(self.values())

    def __repr__(self) -> str:
        return f"{self.class_name}({dict.__repr__(self)})"
