"""How the model's tensors (weights, buffers) enter the imported IR.

torch-mlir's FX importer makes every weight a `torch.vtensor.literal` of a dense_resource
blob built through `tensor.tolist()`: about 30 bytes of Python objects per element while it
runs, then the bytes printed in hex in the module's text and parsed again by IREE. For a model
of a billion parameters that is tens of GB. `LiteralHooks` (its `resolve_literal` hook)
replaces that:

* **external** (the default): each parameter, and each floating buffer of at least
  BUFFER_PARAMETER_BYTES, becomes `dense_resource<"flashlift_param.NAME">`, a resource handle
  with no data (NAME: the state-dict name). Nothing of the weight enters MLIR; the pass
  `externalize-parameters` (the pipeline's last step) turns each into an IREE parameter global,
  and the runtime supplies the tensor's bytes (flashlift.parameters). `external` maps the names
  used to the tensors (the model's own memory, not copies).
* **inline** (and every other tensor: integer and bool buffers such as masks, small floating
  buffers, lifted constants, which passes may evaluate at compile time): a dense_resource blob
  made from the tensor's memory directly, without `tolist()`.

Tensors of one element keep torch-mlir's own path (a splat constant, which folds better).
Small floating tensors (up to SMALL_FLOAT_BYTES: a rotary `inv_freq` buffer) are a dense
elements literal instead of a blob: IREE 3.13 folds an `arith.extf` of a bf16 dense_resource
into an f32 constant that keeps the bf16 blob, which fails to verify (every bf16 LLaMA-style
model whose rotary frequencies were cast with the model; f16 was not seen failing, the rule
holds for every float type).
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch_mlir import ir as tm_ir
from torch_mlir.extras.fx_importer import FxImporterHooks, TORCH_DTYPE_TO_NPY_TYPE, create_mlir_tensor_type

from flashlift.passes.externalize_parameters import RESOURCE_PREFIX

#: Floating buffers at least this large are parameters too (a sinusoidal position table);
#: smaller ones stay constants, which the passes can read (a float mask buffer).
BUFFER_PARAMETER_BYTES = 1 << 20

#: Floating tensors up to this size enter the IR as a dense literal, not a resource blob (see above).
SMALL_FLOAT_BYTES = 4096

#: State-dict names that fit in a resource handle as they are (anything else stays inline).
_NAME = re.compile(r"[A-Za-z0-9_.$]+\Z")


class LiteralHooks(FxImporterHooks):
    """The FX importer's literal hook (see the module doc)."""

    def __init__(self, ep, *, external: bool = True):
        self.names = _state_names(ep) if external else {}
        self.external: dict = {}  # state-dict name -> tensor, for each parameter left out of the IR
        self._attrs: dict = {}  # id(tensor) -> its attribute (a tensor read twice is one handle, one blob)

    def resolve_literal(self, gni, literal, info):
        if not isinstance(literal, torch.Tensor) or literal.numel() <= 1:
            return None
        attr = self._attrs.get(id(literal))
        if attr is None:
            attr = self._external(literal) or _inline(literal)
            if attr is None:
                return None
            self._attrs[id(literal)] = attr
        vtype = gni._cc.get_vtensor_type(literal.size(), literal.dtype)
        return tm_ir.Operation.create("torch.vtensor.literal", results=[vtype], attributes={"value": attr}).result

    def _external(self, t: torch.Tensor):
        name, is_parameter = self.names.get(id(t), (None, False))
        if name is None or not t.is_floating_point() or not _NAME.match(name):
            return None
        if not is_parameter and t.numel() * t.element_size() < BUFFER_PARAMETER_BYTES:
            return None
        self.external[name] = t
        return tm_ir.Attribute.parse(f'dense_resource<"{RESOURCE_PREFIX}{name}"> : {create_mlir_tensor_type(t)}')


def _state_names(ep) -> dict:
    """id(tensor) -> (state-dict name, whether it is a parameter), for the program's weights
    and buffers (a tensor tied under two names gets the first)."""
    sig = ep.graph_signature
    names: dict = {}
    for targets, is_parameter in ((sig.inputs_to_parameters.values(), True), (sig.inputs_to_buffers.values(), False)):
        for target in targets:
            t = ep.state_dict.get(target)
            if t is not None:
                names.setdefault(id(t), (target, is_parameter))
    return names


def _inline(t: torch.Tensor):
    """A dense_resource blob of `t`'s bytes, or for a small floating tensor a dense literal
    (None: torch-mlir's own path, for dtypes numpy cannot view)."""
    npy = TORCH_DTYPE_TO_NPY_TYPE.get(t.dtype)
    if npy is None:
        return None
    try:
        raw = t.detach().cpu().contiguous()
        data = (raw.view(torch.int16) if t.dtype == torch.bfloat16 else raw).numpy().view(npy)
    except (RuntimeError, TypeError):  # a fake or otherwise unreadable tensor
        return None
    if t.is_floating_point() and data.nbytes <= SMALL_FLOAT_BYTES:   # (little-endian bytes, as MLIR's hex form)
        return tm_ir.Attribute.parse(f'dense<"0x{data.tobytes().hex().upper()}"> : {create_mlir_tensor_type(t)}')
    shape = "_".join(str(d) for d in t.shape)
    return tm_ir.DenseResourceElementsAttr.get_from_buffer(data, f"torch_tensor_{shape}_{t.dtype}",
                                                           create_mlir_tensor_type(t))
