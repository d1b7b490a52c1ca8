"""Fixes applied to a module before ``torch.export`` so that the FX importers
(torch-mlir's ``torch_mlir.fx.export_and_import`` and IREE's
``iree.turbine``/``iree.compiler`` FX importer) accept it.

Non-persistent buffers
----------------------
A buffer registered with ``register_buffer(name, t, persistent=False)`` (for
example BERT/ViT ``position_ids``/``token_type_ids``, GPT-2's causal ``bias``
in older versions, rotary ``inv_freq`` in LLaMA) is lifted by ``torch.export``
into the graph signature as a *non-persistent* buffer input.  Its value is then
not in ``ExportedProgram.state_dict`` but in ``ExportedProgram.constants``, and
both importers only look the buffer up in the state dict, failing with::

    Could not find state mapping for buffer

Making every buffer persistent before exporting puts the value in the state
dict, so the importer materialises it as a constant (``arith.constant
dense<...>`` / a global) like any parameter.  Persistence only affects what
``state_dict()``/``load_state_dict()`` save and load; it does not change the
module's forward computation, so it is safe for inference export.
"""

from __future__ import annotations

import torch


def make_buffers_persistent(module: torch.nn.Module) -> torch.nn.Module:
    """Mark every non-persistent buffer of ``module`` and its submodules as
    persistent, in place, and return ``module``.

    Call it on the module right before ``torch.export.export`` /
    ``torch_mlir.fx.export_and_import``.  Idempotent; modules without
    non-persistent buffers are left unchanged.  After this,
    ``module.state_dict()`` includes the formerly non-persistent buffers, so
    loading a checkpoint saved before the call needs ``strict=False``.
    """
    for sub in module.modules():
        # ``_non_persistent_buffers_set`` is the (private but long-stable)
        # set of buffer names that nn.Module excludes from state_dict.
        names = getattr(sub, "_non_persistent_buffers_set", None)
        if names:
            names.clear()
    return module


__all__ = ["make_buffers_persistent"]
