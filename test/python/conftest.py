import contextlib
import importlib.util
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "test"))


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runtime_only(*also: str) -> str:
    """The start of a script for a child process that may use only the runtime: any import
    of the IREE compiler, torch-mlir (or the modules `also` names) fails loudly."""
    blocked = ("iree.compiler", "torch_mlir") + also
    return f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.startswith({blocked!r}):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
"""


def rel_err(out, ref) -> float:
    out, ref = out.float(), ref.float()
    assert not torch.isnan(out).any(), "output has NaN"
    return ((out - ref).norm() / ref.norm()).item()


@pytest.fixture(scope="session")
def slapo():
    return load_example("slapo_attention")


@contextlib.contextmanager
def tuned_in(table: dict, cache: dict, entries: dict):
    """For the block: a tuned-config table updated with `entries` and the in-process kernel
    cache built from it emptied; both as they were afterwards."""
    saved, cached = dict(table), dict(cache)
    table.update(entries)
    cache.clear()
    try:
        yield
    finally:
        table.clear()
        table.update(saved)
        cache.clear()
        cache.update(cached)
