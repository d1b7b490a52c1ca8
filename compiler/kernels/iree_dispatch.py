"""Emit IREE MLIR that dispatches a prebuilt (Triton) CUDA kernel.

Given a `KernelBinary` (see triton_fa.py) this produces

  * a `hal.executable.source` holding the PTX (or cubin) as an
    `#hal.executable.object`, keyed by the *generic* CUDA executable target
    `#hal.executable.target<"cuda", "cuda-nvptx-fb">`. A generic key (no
    configuration dict) matches whatever concrete cuda target the compiler
    derives from `--iree-hal-target-backends=cuda --iree-cuda-target=sm_80`,
    so the object is picked up regardless of the target_arch the rest of the
    module is compiled for. IREE never parses an external object: the bytes
    are copied verbatim into the CUDA executable flatbuffer (`modules[0].
    ptx_image`) and handed to cuModuleLoadDataEx at load time, so an
    `.target sm_90a` PTX (or an sm_90a cubin) inside an "sm_80" executable is
    fine -- it only has to load on the GPU it finally runs on.
  * a `flow.dispatch` of that export on tensors Q, K, V returning O
    (`dispatch_op`), or a private function wrapping it (`dispatch_func`), which
    flashlift.compiler.kernel_dispatch splices into a model's module in place
    of an `iree_linalg_ext.attention` op, on the op's own operand types.

IREE CUDA kernel ABI for external executables (IREE 3.13):
  kernel params = one CUdeviceptr per layout binding, in binding order,
  followed by one 32-bit value per layout constant. Bindings are assigned in
  flow.dispatch order: all tensor operands (a tied result is its operand's
  binding), then all untied results.
  block dims = export `workgroup_size`, dynamic shared memory = export
  `workgroup_local_memory` (the HAL calls cuFuncSetAttribute(
  CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, that value) when the
  executable is loaded and launches with it), grid = the values returned by
  the export's count region.

Triton's kernel is (Q, K, V, O, global_scratch, profile_scratch). The two scratch
pointers must be valid device pointers, but the kernel never dereferences them
(scratch sizes are 0, verified at build time), so they are bound to Q again. For
O to come before them in binding order, O is a tied operand: the dispatch is
`(q, k, v, o_init, q, q) -> o_init`, with o_init a `tensor.empty()` that IREE
allocates as the result. A dispatch with dummy *results* for the scratch
pointers instead costs each call a transient allocation and a deallocation
queued after the kernel, which the call then waits on: 10-20 us more per call
on an H200 (bench/results/runtime-overhead-h200.md). No push constants are
used: every shape is baked into the kernel.

A kernel built with a key-padding mask (build_ptx(key_padding_mask_dtype=...))
has a fourth input, (q, k, v, key_padding_mask, o, scratch, scratch): the
dispatch is then `(q, k, v, mask, o_init, q, q) -> o_init`, the (B, Skv)
mask being binding 3 (read-only) and O binding 4. A kernel built with a
(B, Sq, Skv) mask (build_ptx(mask_dtype=...), parameter "mask") takes it in
the same place.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

_MLIR_DTYPE = {"fp16": "f16", "f16": "f16", "float16": "f16",
               "bf16": "bf16", "bfloat16": "bf16"}

GENERIC_CUDA_TARGET = '#hal.executable.target<"cuda", "cuda-nvptx-fb">'


def _tensor_type(shape: Sequence[int], elt: str) -> str:
    return "tensor<" + "x".join(str(int(d)) for d in shape) + "x" + elt + ">"


def attention_types(kb) -> tuple[str, str, str]:
    """(q/o type, k/v type, element type) for the kernel's static config."""
    c = kb.config
    elt = _MLIR_DTYPE[c["dtype"]]
    q = _tensor_type((c["batch"], c["heads"], c["sq"], c["head_dim"]), elt)
    kv = _tensor_type((c["batch"], c["kv_heads"], c["skv"], c["head_dim"]), elt)
    return q, kv, elt


def _object_attr(kb, object_kind: str, object_path: Optional[str],
                 object_label: Optional[str] = None) -> str:
    if object_path is not None:
        return f'#hal.executable.object<{{path = "{object_path}"}}>'
    data = kb.ptx.encode() if object_kind == "ptx" else kb.cubin
    if data is None:
        raise ValueError(f"KernelBinary has no {object_kind}")
    # No explicit NUL needed for PTX: IREE stores the object as a flatbuffer
    # string, which is always NUL-terminated (cuModuleLoadDataEx needs that).
    # object_label: a `path` next to the data, only as a name (IREE uses the data
    # when both are set and never opens the path). Needed when the IR goes
    # through MLIR's printer: IREE 3.13 prints a data-only object as
    # `{, data = ...}`, which does not parse again.
    label = f'path = "{object_label}", ' if object_label else ""
    return (f'#hal.executable.object<{{{label}data = dense<"0x{data.hex().upper()}"> '
            f': vector<{len(data)}xi8>}}>')


def executable_source(kb, sym_name: str, *, object_kind: str = "ptx",
                      object_path: Optional[str] = None,
                      export_name: Optional[str] = None,
                      object_label: Optional[str] = None) -> str:
    """`hal.executable.source` text declaring the kernel.

    object_kind: "ptx" (JIT-compiled by the driver at load) or "cubin"
    (ptxas output, loaded as-is). object_path: reference a file instead of
    embedding the bytes (iree-compile reads it; relative paths are resolved
    with --iree-hal-executable-object-search-path). object_label: see
    _object_attr (set it when the module is printed and parsed again).
    The export name *is* the kernel symbol IREE looks up with
    cuModuleGetFunction, so it must equal the PTX `.entry` name.
    """
    name = export_name or kb.name
    if name != kb.name:
        raise ValueError("export name must equal the PTX .entry name")
    bindings = _bindings(kb)
    gx, gy, gz = kb.grid
    bx, by, bz = kb.block
    obj = _object_attr(kb, object_kind, object_path, object_label)
    b = ",\n          ".join(bindings)
    return f"""  hal.executable.source private @{sym_name} <objects = #hal.executable.objects<{{
      {GENERIC_CUDA_TARGET} = [
        {obj}
      ]
    }}>> {{
    hal.executable.export public @{name} ordinal(0)
        layout(#hal.pipeline.layout<bindings = [
          {b}
        ]>)
        count(%device: !hal.device) -> (index, index, index) {{
      %gx = arith.constant {gx} : index
      %gy = arith.constant {gy} : index
      %gz = arith.constant {gz} : index
      hal.return %gx, %gy, %gz : index, index, index
    }} <workgroup_size = [{bx} : index, {by} : index, {bz} : index], workgroup_local_memory = {kb.shared_mem_bytes}>
  }}
"""


def has_mask(kb) -> bool:
    """Whether the kernel takes a mask (its 4th input): key-padding or (B, Sq, Skv)."""
    return any(p.name in ("key_padding_mask", "mask") for p in kb.params)


def mask_type(kb) -> str:
    """The mask tensor type of a masked kernel: (B, Skv) key-padding, or (B, Sq, Skv)
    ((Sq, Skv) when one mask serves every batch entry; with a row per head (B, H, Sq, Skv), or
    (H, Sq, Skv) for every batch entry)."""
    c = kb.config
    if "mask" in c:
        shape = ((c["batch"],) if c.get("mask_batched", True) else ()) + ((c["heads"],) if c.get("mask_heads") else ()) \
            + (c["sq"], c["skv"])
        return _tensor_type(shape, {"fp32": "f32", **_MLIR_DTYPE}[c["mask"]])
    return _tensor_type((c["batch"], c["skv"]), {"fp32": "f32", **_MLIR_DTYPE}[c["key_padding_mask"]])


def _check_abi(kb, mask: Optional[str] = None) -> None:
    roles = [p.role for p in kb.params]
    n_in = 4 if has_mask(kb) else 3
    if roles != ["input"] * n_in + ["output"] + ["scratch"] * 2:
        raise ValueError(f"unexpected kernel params for {kb.name}: {kb.params}")
    if (mask is not None) != has_mask(kb):
        raise ValueError(f"kernel {kb.name} {'takes' if has_mask(kb) else 'takes no'} mask")


def dispatch_op(kb, sym_name: str, q: str, k: str, v: str, result: str = "%o", *,
                types: Optional[Sequence[str]] = None, mask: Optional[str] = None,
                mask_type_: Optional[str] = None, scratch: Optional[str] = None) -> str:
    """The `flow.dispatch` computing `result = attention(q, k, v)`; q/k/v/result
    are SSA names (e.g. "%q"); Triton's scratch pointers are bound to q, or the
    global scratch to `scratch` = (module global, its size in bytes; see
    scratch_global) when the kernel needs one.

    types: (q, k, v, o) tensor types as MLIR text; default the kernel's
    (B, H, S, D) / (B, KVH, S, D) types. Any other static types with the same
    row-major memory (e.g. an attention op's (b, g, r, m, k1) grouped-query Q)
    work too: a binding is only a pointer to the dense row-major tensor, so the
    kernel sees the same bytes.

    mask / mask_type_: the (B, Skv) key-padding mask SSA name and type (default
    mask_type(kb)), required exactly when the kernel takes one.
    """
    _check_abi(kb, mask)
    qt, kt, vt, ot = types if types is not None else _default_types(kb)
    operands, otypes = [q, k, v], [qt, kt, vt]
    if mask is not None:
        operands.append(mask)
        otypes.append(mask_type_ or mask_type(kb))
    return _tied_dispatch(kb, sym_name, operands, otypes, ot, result, scratch)


def _tied_dispatch(kb, sym_name: str, operands: Sequence[str], types: Sequence[str],
                   result_type: str, result: str, scratch: Optional[str] = None) -> str:
    """`result = flow.dispatch` of a Triton kernel (inputs..., out, scratch, scratch): the
    output a tied `tensor.empty()` operand, both scratch pointers bound to the first input
    (see the module doc); or, for a kernel that uses global scratch, the global one bound
    to module global `scratch`, loaded, updated in place (a tied result) and stored back."""
    needs = kb.scratch_bytes > 0
    if needs != (scratch is not None) or (needs and scratch[1] < kb.scratch_bytes):
        raise ValueError(f"kernel {kb.name} needs {kb.scratch_bytes} bytes of global scratch"
                         if needs else f"kernel {kb.name} uses no global scratch")
    init = f"%{result.lstrip('%')}_init"
    if not needs:
        names = ", ".join([*operands, init, operands[0], operands[0]])
        tys = ", ".join([*types, result_type, types[0], types[0]])
        return (f"    {init} = tensor.empty() : {result_type}\n"
                f"    {result} = flow.dispatch @{sym_name}::@{kb.name}({names}) : ({tys}) -> {init}\n")
    sym, nbytes = scratch
    st = scratch_type(nbytes)
    base = result.lstrip('%')
    names = ", ".join([*operands, init, f"%{base}_scratch", operands[0]])
    tys = ", ".join([*types, result_type, st, types[0]])
    return (f"    {init} = tensor.empty() : {result_type}\n"
            f"    %{base}_scratch = util.global.load @{sym} : {st}\n"
            f"    {result}, %{base}_scratch_out = flow.dispatch @{sym_name}::@{kb.name}({names}) : ({tys}) "
            f"-> ({init}, %{base}_scratch)\n"
            f"    util.global.store %{base}_scratch_out, @{sym} : {st}\n")


def scratch_type(nbytes: int) -> str:
    """The tensor type of a global scratch buffer of `nbytes` bytes."""
    return f"tensor<{nbytes}xi8>"


def scratch_global(sym: str, nbytes: int) -> str:
    """A module global `@sym` of `nbytes` bytes to bind as the global scratch of kernels that
    need one (at most nbytes each). A global (not a transient tensor) so that a call
    allocates nothing: the buffer lives as long as the module, and each dispatch updates it
    in place (a tied result stored back), which also orders the dispatches that share it.
    Its contents never matter (each CTA writes its part before reading it); zeros are a
    splat IREE fills once at load."""
    return f"  util.global private mutable @{sym} = dense<0> : {scratch_type(nbytes)}\n"


def _default_types(kb) -> tuple[str, str, str, str]:
    qt, kvt, _ = attention_types(kb)
    return qt, kvt, kvt, qt


def dispatch_func(kb, sym_name: str, func_name: str, types: Sequence[str],
                  result_type: Optional[str] = None, mask_type_: Optional[str] = None,
                  scratch: Optional[str] = None) -> str:
    """`func.func private @func_name(q, k, v) -> o` that dispatches the kernel of
    executable `sym_name` (see executable_source) on operands of `types`
    (q, k, v, o tensor types, MLIR text; o in the kernel's element type).

    result_type: the function's result type when it differs from o in element
    type only (e.g. f32 for an attention op that accumulates into f32): the
    kernel's f16/bf16 output is then extended with a linalg.generic.
    Meant to be parsed and moved into a module next to the executable and
    called where an op is replaced (IREE inlines it). A kernel with a
    key-padding mask gets a fourth argument %mask (of mask_type_, default
    mask_type(kb)). scratch: (module global, bytes) bound as global scratch, for a
    kernel that needs one (see scratch_global).
    """
    qt, kt, vt, ot = types
    rt = result_type or ot
    masked = has_mask(kb)
    mt = (mask_type_ or mask_type(kb)) if masked else None
    body = dispatch_op(kb, sym_name, "%q", "%k", "%v", "%o", types=types,
                       mask="%mask" if masked else None, mask_type_=mt, scratch=scratch)
    ret = "%o"
    if rt != ot:
        src_elt = ot[ot.rindex("x") + 1:-1]
        dst_elt = rt[rt.rindex("x") + 1:-1]
        rank = ot.count("x")
        dims = ", ".join(f"d{i}" for i in range(rank))
        ident = f"affine_map<({dims}) -> ({dims})>"
        par = ", ".join(['"parallel"'] * rank)
        body += (f"    %e = tensor.empty() : {rt}\n"
                 f"    %x = linalg.generic {{indexing_maps = [{ident}, {ident}], iterator_types = [{par}]}} "
                 f"ins(%o : {ot}) outs(%e : {rt}) {{\n"
                 f"    ^bb0(%a: {src_elt}, %b: {dst_elt}):\n"
                 f"      %c = arith.extf %a : {src_elt} to {dst_elt}\n"
                 f"      linalg.yield %c : {dst_elt}\n"
                 f"    }} -> {rt}\n")
        ret = "%x"
    margs = f", %mask: {mt}" if masked else ""
    return (f"  func.func private @{func_name}(%q: {qt}, %k: {kt}, %v: {vt}{margs}) -> {rt} {{\n"
            + body + f"    return {ret} : {rt}\n  }}\n")


def kernel_func(kb, sym_name: str, func_name: str, arg_types: Sequence[str], result_type: str,
                scratch: Optional[tuple] = None) -> str:
    """`func.func private @func_name(args...) -> result` holding one `flow.dispatch` of the
    kernel of executable `sym_name`, for any kernel whose parameters are its inputs (in
    order), one output, then Triton's two scratch pointers (e.g. triton_gemm's); scratch:
    (module global, bytes) bound as global scratch, for a kernel that needs one."""
    roles = [p.role for p in kb.params]
    n_in = len(arg_types)
    if roles != ["input"] * n_in + ["output", "scratch", "scratch"]:
        raise ValueError(f"kernel {kb.name} params {roles} do not take {n_in} inputs and one output")
    args = ", ".join(f"%arg{i}: {t}" for i, t in enumerate(arg_types))
    body = _tied_dispatch(kb, sym_name, [f"%arg{i}" for i in range(n_in)], arg_types, result_type, "%r", scratch)
    return (f"  func.func private @{func_name}({args}) -> {result_type} {{\n"
            + body + f"    return %r : {result_type}\n  }}\n")


def _bindings(kb) -> list:
    """Inputs and the dummy scratch pointers (bound to the first input) read-only; the output
    and a used global scratch read-write."""
    def writes(p):
        return p.role == "output" or (p.name == "global_scratch" and kb.scratch_bytes > 0)

    return [f"#hal.pipeline.binding<storage_buffer{'' if writes(p) else ', ReadOnly'}>" for p in kb.params]


def module_text(kb, *, func_name: str = "attn", sym_name: str = "flashlift_fa_fwd",
                object_kind: str = "ptx", object_path: Optional[str] = None) -> str:
    """A complete module: hal.executable.source + `func.func @attn(q, k, v) -> o`."""
    qt, kvt, _ = attention_types(kb)
    c = kb.config
    scratch = (f"{sym_name}_scratch", kb.scratch_bytes) if kb.scratch_bytes else None
    header = (f"// flashlift FA fwd: B={c['batch']} H={c['heads']} KVH={c['kv_heads']} "
              f"Sq={c['sq']} Skv={c['skv']} D={c['head_dim']} {c['dtype']} "
              f"causal={c['causal']} bottom_right={c['bottom_right']} scale={c['scale']!r}\n"
              f"// kernel {kb.name} ({kb.ptx_target}, PTX {kb.ptx_version}) grid={kb.grid} "
              f"block={kb.block} smem={kb.shared_mem_bytes} object={object_kind}\n")
    return (header + "module {\n"
            + executable_source(kb, sym_name, object_kind=object_kind, object_path=object_path)
            + (scratch_global(*scratch) if scratch else "")
            + f"  func.func @{func_name}(%q: {qt}, %k: {kvt}, %v: {kvt}) -> {qt} {{\n"
            + dispatch_op(kb, sym_name, "%q", "%k", "%v", "%o", scratch=scratch)
            + f"    return %o : {qt}\n  }}\n}}\n")


def iree_compile(mlir_text: str, out_path: str, *, cuda_target: str = "sm_80",
                 extra_args: Sequence[str] = ()) -> None:
    """Compiles with the iree-compile next to the running interpreter (or on PATH)."""
    import shutil
    import subprocess
    import sys
    exe = os.path.join(os.path.dirname(sys.executable), "iree-compile")
    if not os.path.exists(exe):
        exe = shutil.which("iree-compile") or "iree-compile"
    r = subprocess.run([exe, "-", "--iree-hal-target-backends=cuda",
                        f"--iree-cuda-target={cuda_target}", "-o", out_path, *extra_args],
                       input=mlir_text, text=True, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"iree-compile failed ({r.returncode}):\n{r.stderr[-4000:]}")
