"""Splicing kernel executables and their call helpers into a module.

A kernel rewrite replaces an op by a `func.call` of a private helper function holding a
`flow.dispatch` of the kernel's `hal.executable.source` (compiler/kernels/iree_dispatch.py
writes their text). `ModuleSplicer` adds each executable, helper and global to the module
once, under a name no symbol of the module has, parsing the text in the module's context:
`kernel_executable` for a KernelBinary (named flashlift_<family>_sm<arch>_<digest of its
config>, embedding the cubin on sm_90 and the PTX on sm_80, `object_kind`), `helper` for a
call helper (`kernel_helper`: a KernelBinary's executable and its helper), `global_` for a
module global, `scratch_buffer` for the one the TMA kernels' global scratch lives in;
`replace_with_call` puts the call in place of the value the kernel computes. Shared by the
attention rewrite (kernel_dispatch.py) and the GEMM rewrite (gemm_dispatch.py).
"""

from __future__ import annotations

import hashlib

from iree.compiler import ir

from flashlift.compiler.kernels import iree_dispatch
from flashlift.passes.ir import erase_dead


def family_prefix(family: str) -> str:
    """The prefix of the symbols of `family`'s kernel executables and of their call helpers
    ("gemm": flashlift_gemm_sm90_<digest>, flashlift_gemm_sm90_<digest>_call)."""
    return f"flashlift_{family}_"


def object_kind(sm: int) -> str:
    """sm_90a: the cubin (no JIT at load; it only loads on cc 9.0 anyway). sm_80: the PTX,
    which the driver JIT-compiles for whatever GPU >= 8.0 it runs on."""
    return "cubin" if sm == 90 else "ptx"


class ModuleSplicer:
    """Adds kernel executables and their call helpers to a module, each once, under names
    no symbol of the module has (shared by the attention and GEMM kernel rewrites)."""

    def __init__(self, module):
        self.module = module  # an ir.Module or its builtin.module op
        self.body = module.body if hasattr(module, "body") else module.regions[0].blocks[0]
        self.executables: dict = {}  # key -> executable symbol
        self.helpers: dict = {}  # key -> helper function name
        self.taken = _symbols(self.body)

    def _unique(self, base: str) -> str:
        name, i = base, 0
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name

    def executable(self, base: str, text_of) -> str:
        """The symbol of the executable named after `base`; `text_of(symbol)` gives its
        text the first time."""
        return self._once(self.executables, base, base, text_of)

    def kernel_executable(self, family: str, kb) -> str:
        """The symbol of the executable embedding KernelBinary `kb` (flashlift_<family>_sm<arch>_
        <digest of kb's config and object kind>; one per distinct kernel)."""
        kind = object_kind(kb.arch)
        digest = hashlib.sha1(repr(sorted(kb.config.items())).encode() + kind.encode()).hexdigest()[:10]
        return self.executable(f"{family_prefix(family)}sm{kb.arch}_{digest}",
                               lambda name: iree_dispatch.executable_source(kb, name, object_kind=kind,
                                                                            object_label=f"{name}.{kind}"))

    def kernel_helper(self, family: str, kb, arg_types: list, result_type: str, scratch=None, uses: str = "") -> str:
        """The helper function running KernelBinary `kb` (its inputs of `arg_types`, one output
        of `result_type`: iree_dispatch.kernel_func) in its executable, once per distinct one;
        `scratch`, `uses`: a global scratch buffer's (scratch_buffer)."""
        sym = self.kernel_executable(family, kb)
        return self.helper((sym, tuple(arg_types), result_type), f"{sym}_call",
                           lambda name: iree_dispatch.kernel_func(kb, sym, name, list(arg_types), result_type, scratch),
                           uses)

    def replace_with_call(self, value, last, helper: str, operands: list):
        """`value`, computed by op `last` (and the ops before it), -> a func.call of `helper` on
        `operands` inserted before `last` at its location; the ops left dead erased. Returns the
        call's result."""
        with self.module.context, last.location, ir.InsertionPoint(last):
            call = ir.Operation.create("func.call", results=[value.type], operands=operands,
                                       attributes={"callee": ir.FlatSymbolRefAttr.get(helper)})
        value.replace_all_uses_with(call.results[0])
        erase_dead([last])
        return call.results[0]

    def helper(self, key, base: str, text_of, uses: str = "") -> str:
        """The name of the helper function for `key` (text_of(name) the first time). `uses`:
        the text of module symbols the helper refers to (already added), for parsing it."""
        return self._once(self.helpers, key, base, text_of, uses)

    def global_(self, key, base: str, text_of) -> str:
        """The name of the module global for `key` (text_of(name) the first time). Globals go
        first in the module: IREE 3.13's conversion to streams fails on a util.global.store
        it meets before the global's declaration ("failed to legalize ... marked illegal")."""
        return self._once(self.helpers, key, base, text_of, first=True)

    def scratch_buffer(self, base: str, nbytes: int) -> tuple:
        """((name, nbytes), its text) of the module global named after `base` that every
        kernel dispatch needing global scratch binds (iree_dispatch.scratch_global; nbytes
        must cover the largest): the `scratch` of iree_dispatch's dispatch builders, and the
        `uses` to parse their helpers with."""
        scratch = (self.global_(base, base, lambda name: iree_dispatch.scratch_global(name, nbytes)), nbytes)
        return scratch, iree_dispatch.scratch_global(*scratch)

    def _once(self, table: dict, key, base: str, text_of, uses: str = "", first: bool = False) -> str:
        if key not in table:
            name = table[key] = self._unique(base)
            # `uses` is parsed with the text (so that it verifies) but not added again
            known = len(list(ir.Module.parse("module {\n" + uses + "}\n", self.module.context).body.operations))
            parsed = ir.Module.parse("module {\n" + uses + text_of(name) + "}\n", self.module.context)
            anchor = list(self.body.operations)[0] if first and list(self.body.operations) else None
            for op in list(parsed.body.operations)[known:]:
                op.operation.detach_from_parent()
                if anchor is not None:
                    ir.InsertionPoint(anchor).insert(op.operation)
                else:
                    self.body.append(op.operation)
        return table[key]


def _symbols(body) -> set:
    names = set()
    for op in body.operations:
        if "sym_name" in op.operation.attributes:
            names.add(ir.StringAttr(op.operation.attributes["sym_name"]).value)
    return names
