"""A compiled module's weights: IREE parameters, from tensors in memory or an IREE archive.

A module compiled with parameters="archive" (compile_model's default) holds no weights: each
is an IREE parameter that the module reads, when it is loaded, by its state-dict name in the
scope "model" (compiler pass `externalize-parameters`). `Parameters` supplies them, through
IREE's io_parameters module:

* `from_tensors`: the model's own tensors, without copies (compile_model; a fine-tuned
  state dict with `CompiledModel.with_parameters`);
* `from_file`: an IREE parameter archive (`.irpa`, IREE's own format), mapped, not read;
* `from_memory`: an archive already mapped (the `parameters.irpa` member of a `.flashlift`).

`check` compares what an archive has with the module's table (the description's
"parameters": per entry "name", "shape", "dtype", "bytes") and refuses a missing entry or one of
another size (and of another shape or dtype where the archive says, as flashlift's archives
do in each entry's metadata) with a ModuleFormatError that names them. Archive data is not
hashed (a multi-GB hash per load): IREE checks the archive's structure and bounds, flashlift
each entry's size.

`write` writes an archive atomically (`save_parameters`, `CompiledModel.save`). Needs only the
IREE runtime and numpy (torch for tensors).
"""

from __future__ import annotations

import json
import mmap
import os
import secrets

from flashlift.errors import InputError, ModuleFormatError, SaveError
from flashlift.module_abi import PARAMETER_SCOPE

#: The most entries check() names in one error.
_SHOWN = 8


class Parameters:
    """An IREE parameter index and what keeps its memory alive."""

    def __init__(self, index, where: str, keep=()):
        self.index = index
        self.where = where
        self._keep = keep  # tensors, arrays or the mapped file the index points into
        self.entries = {key: (entry.length, _metadata(entry)) for key, entry in index.items()}

    @classmethod
    def from_tensors(cls, tensors: dict, where: str = "the model's parameters") -> "Parameters":
        """An index over the tensors' own memory (CPU tensors are not copied; others are, to the host)."""
        import iree.runtime as rt

        index, keep = rt.ParameterIndex(), []
        for name, t in tensors.items():
            data, meta = _tensor_bytes(t, f"{where}: {name!r}")
            index.add_buffer(name, data, metadata=json.dumps(meta))
            keep.append(data)
        return cls(index, where, tuple(keep))

    @classmethod
    def from_memory(cls, view, where: str) -> "Parameters":
        import iree.runtime as rt

        index = rt.ParameterIndex()
        try:
            index.load_from_file_handle(rt.FileHandle.wrap_memory(view, readable=True, writable=False), "irpa")
        except Exception as e:  # IREE's parser: a bad magic, an entry out of bounds
            raise ModuleFormatError(f"{where}: not a valid IREE parameter archive ({_first_line(e)})") from None
        return cls(index, where, (view,))

    @classmethod
    def from_file(cls, path) -> "Parameters":
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    raise ModuleFormatError(f"{path}: empty file, not an IREE parameter archive")
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a folder, not a parameter archive") from None
        except OSError as e:
            raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None
        return cls.from_memory(memoryview(mapped), path)

    @classmethod
    def from_source(cls, source) -> "Parameters":
        """A Parameters, a path to an archive, or a dict of tensors (a state dict)."""
        if isinstance(source, Parameters):
            return source
        if isinstance(source, (str, os.PathLike)):
            return cls.from_file(source)
        if isinstance(source, dict):
            return cls.from_tensors(source, "the given state dict")
        raise InputError(f"parameters must be a path to an .irpa archive, a state dict or Parameters, "
                         f"not {type(source).__name__}")

    def check(self, table: list, where: str) -> None:
        """Refuses (ModuleFormatError) parameters that do not match the module's `table`."""
        problems = []
        for spec in table:
            name = spec["name"]
            if name not in self.entries:
                problems.append(f"{name!r} is missing")
                continue
            length, meta = self.entries[name]
            if length != spec["bytes"]:
                problems.append(f"{name!r} has {length} bytes, the module reads {spec['bytes']}")
            elif meta.get("dtype", spec["dtype"]) != spec["dtype"] or list(meta.get("shape", spec["shape"])) != spec["shape"]:
                problems.append(f"{name!r} is {meta.get('dtype')} {meta.get('shape')}, the module reads "
                                f"{spec['dtype']} {spec['shape']}")
        if problems:
            shown = "; ".join(problems[:_SHOWN]) + (f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else "")
            raise ModuleFormatError(f"the parameters ({self.where}) do not fit {where}: {shown}")

    def module(self, instance):
        """IREE's io_parameters module, answering the scope the compiled module reads."""
        import iree.runtime as rt

        return rt.create_io_parameters_module(instance, self.index.create_provider(scope=PARAMETER_SCOPE))

    def write(self, path) -> None:
        """Writes the parameters as an IREE archive at `path`, atomically (a SaveError says why
        it could not; a previous file at `path` is left as it was)."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
        try:
            try:
                self.index.create_archive_file(tmp)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                raise
        except (OSError, RuntimeError, ValueError) as e:
            raise SaveError(f"cannot write the parameter archive {path}: {_first_line(e)}") from e


def save_parameters(tensors: dict, path) -> None:
    """Writes `tensors` (a state dict: name -> tensor) as an IREE parameter archive that
    `flashlift.load(..., parameters=path)` and `CompiledModel.with_parameters(path)` take."""
    Parameters.from_tensors(tensors, "the state dict").write(path)


def table_entry(name: str, t) -> dict:
    """The description's record of parameter `name` read from tensor `t`."""
    return {"name": name, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""),
            "bytes": t.numel() * t.element_size()}


def _tensor_bytes(t, where: str):
    """`t`'s bytes as a flat uint8 array over its memory (a copy only if it is not a
    contiguous CPU tensor), and its {dtype, shape} metadata."""
    try:
        import torch
    except ImportError:  # pragma: no cover (a tensor without torch cannot exist)
        torch = None
    if torch is None or not isinstance(t, torch.Tensor):
        raise InputError(f"{where} is a {type(t).__name__}, not a torch tensor")
    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy(), {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}


def _metadata(entry) -> dict:
    try:
        meta = json.loads(entry.metadata) if entry.metadata else {}
    except (ValueError, UnicodeDecodeError, TypeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
