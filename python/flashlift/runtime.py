"""The compiled-model object and its file format. Needs only iree-base-runtime and numpy.

A saved module (`.flashlift`) is a zip archive (flashlift.archive) with two or three members:
`module.vmfb`, what iree-compile wrote, which holds executable code (native code for the
CPU, PTX or a cubin for CUDA, SPIR-V for Vulkan) that the IREE runtime runs on the first
call; `flashlift.json`, the description: plain data (no Python code, no pickle); and for
modules compiled with parameters="archive" (the default), `parameters.irpa`: the weights,
an IREE parameter archive (plain data: named byte ranges), mapped at load, not read.
Trust a `.flashlift` from elsewhere as you would trust a shared library.

`load` checks, before it returns: the archive's bounds (flashlift.archive), every key of
the description (flashlift.description), the module's SHA-256 against "module_sha256",
that IREE accepts the module and that its function's declared signature is the one
described (flashlift.module_abi), and for CPU modules that this machine has the CPU
features the code was compiled for (flashlift.cpu).

The description's keys: "function", "target", "driver", "name" (the model's class);
"inputs": per function input its "shape" (None: dynamic), "dtype", "name" and "keyword"
(passed by keyword, else positionally), "symbols" (dynamic dims' torch.export symbols);
"constants": keyword inputs compiled in as constants (a call may repeat them, same value);
"outputs": per function result its shape and dtype; "output_tree": how the results nest in
what the model returns (flashlift.structure); "report"; "module_sha256": the hex SHA-256 of
module.vmfb; "cpu": for CPU modules, the target's {"arch", "name", "features"} (null: no
native code); "parameters": the weights the module reads as IREE parameters, per entry
its "name" (state-dict name, the key in parameters.irpa), "shape", "dtype" and "bytes"
(flashlift.parameters). Files without "output_tree" or input names (written before they existed)
return a tensor or a tuple and take positional inputs; files without "module_sha256" or
"cpu" are checked against the archive's CRC-32 and not for CPU features.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
import zlib
from typing import Any, Optional

from flashlift import archive, cpu, description
from flashlift.archive import META_NAME, VMFB_NAME  # noqa: F401 (the file's member names)
from flashlift.errors import InputError, ModuleFormatError, SaveError, TargetError
from flashlift.module_abi import declared_signature, dtype_name, open_module, signature_mismatches  # noqa: F401
from flashlift.parameters import Parameters
from flashlift.report import Report

FORMAT = "flashlift-module"
VERSION = 1


class CompiledModel:
    """A model compiled by flashlift. Call it with torch tensors; get torch tensors back.

    `vmfb` is the module's bytes, or a memoryview of them mapped from a file (`load`)."""

    def __init__(self, vmfb, meta: dict, device: Optional[str] = None, parameters: Optional[Parameters] = None):
        self._vmfb = vmfb
        self.meta = meta
        self.parameters = parameters  # the weights the module reads (None: it has them inline)
        if meta.get("parameters") and parameters is not None:
            parameters.check(meta["parameters"], f"{meta.get('name', 'the model')}'s module")
        self.device = device or meta.get("driver", "local-task")
        self.report = Report.from_dict(meta.get("report", {}))
        self._fn = None
        self._last_call = ([], [])  # (memory keys, imports) of the last zero-copy call
        self._semaphore = None  # signalled by calls of a coarse-fences (async) function
        self._calls = 0

    @property
    def target(self) -> str:
        return self.meta.get("target", "cpu")

    @property
    def vmfb(self) -> bytes:
        return bytes(self._vmfb) if isinstance(self._vmfb, memoryview) else self._vmfb

    def _function(self):
        if self._fn is None:
            import iree.runtime as rt

            check_machine(self.meta, self.meta.get("name", "model"))
            try:
                config = rt.Config(device=_make_device(self.device)) if self.device == "cuda" else rt.Config(self.device)
            except Exception as e:
                raise InputError(f"IREE runtime device '{self.device}' is not available here: {e}") from None
            ctx = rt.SystemContext(config=config)
            if self.meta.get("parameters"):
                if self.parameters is None:
                    raise InputError(f"{self.meta.get('name', 'the model')}'s module reads {len(self.meta['parameters'])} "
                                     "parameters and none were given: use flashlift.load, or with_parameters()")
                ctx.add_vm_module(self.parameters.module(ctx.instance))
            ctx.add_vm_module(open_module(ctx.instance, self._vmfb, VMFB_NAME))
            self._ctx = ctx
            self._fn = ctx.modules.module[self.meta["function"]]
            if self._fn.vm_function.reflection.get("iree.abi.model") == "coarse-fences":
                self._semaphore = self._ctx.config.device.create_semaphore(0)
                self._no_wait = rt.HalFence(1)  # an empty fence: the inputs are ready
        return self._fn

    @property
    def is_async(self) -> bool:
        """Whether the module's function takes a wait and a signal fence after its tensors
        (compiled with --iree-execution-model=async-external, as CUDA modules are)."""
        self._function()
        return self._semaphore is not None

    def flat_args(self, args: tuple, kwargs: dict) -> tuple:
        """The function's inputs, in its order, from a call's positional and keyword inputs
        (keywords in any order; a keyword compiled as a constant may be repeated, same value)."""
        inputs = self.meta["inputs"]
        if not kwargs and not any(s.get("keyword") for s in inputs):
            return args
        name = self.meta.get("name", "model")
        positional = [s.get("name") or f"args[{i}]" for i, s in enumerate(inputs) if not s.get("keyword")]
        keywords = [s["name"] for s in inputs if s.get("keyword")]
        constants = self.meta.get("constants") or {}
        for k, v in kwargs.items():
            if k in keywords:
                continue
            if k in constants:
                if not (type(v) is type(constants[k]) and v == constants[k]):
                    raise InputError(f"{k}={v!r}: {name} was compiled with {k}={constants[k]!r} (a constant of "
                                     "the compiled module); compile again to change it")
                continue
            hint = (f" ({k} was compiled as positional argument {positional.index(k)}: pass it positionally)"
                    if k in positional else f"; {name} takes keyword argument(s) {', '.join(keywords) or 'none'}")
            raise InputError(f"unexpected keyword argument {k!r}{hint}")
        if len(args) != len(positional):
            raise InputError(f"{name} takes {len(positional)} positional tensor(s)"
                             + (f" ({', '.join(positional)})" if positional else "") + f", got {len(args)}")
        missing = [k for k in keywords if k not in kwargs]
        if missing:
            raise InputError(f"{name} is missing keyword argument(s) {', '.join(repr(k) for k in missing)}")
        it = iter(args)
        return tuple(kwargs[s["name"]] if s.get("keyword") else next(it) for s in inputs)

    def check_args(self, args: tuple) -> None:
        """Checks the function's inputs (flat_args' result): count, types, dtypes, shapes."""
        import torch

        expected = self.meta["inputs"]
        if len(args) != len(expected):
            raise InputError(f"{self.meta.get('name', 'model')} takes {len(expected)} tensor(s), got {len(args)}")
        for i, (a, spec) in enumerate(zip(args, expected)):
            label = _label(i, spec)
            if not isinstance(a, torch.Tensor):
                raise InputError(f"{label}: expected a torch.Tensor, got {type(a).__name__}")
            got_dtype = str(a.dtype).replace("torch.", "")
            if got_dtype != spec["dtype"]:
                raise InputError(f"{label}: expected dtype {spec['dtype']}, got {got_dtype}")
            shape = list(a.shape)
            want = spec["shape"]
            if len(shape) != len(want) or any(w is not None and w != s for w, s in zip(want, shape)):
                want_text = "[" + ", ".join("?" if w is None else str(w) for w in want) + "]"
                raise InputError(f"{label}: expected shape {want_text}, got {shape}")
        self._check_symbols(args)

    def _check_symbols(self, args: tuple) -> None:
        """Dynamic dims that torch.export named alike (q's and k's batch `s0`) were compiled as
        one size: inputs that disagree would be read out of bounds, so refuse them."""
        seen: dict = {}
        for i, (a, spec) in enumerate(zip(args, self.meta["inputs"])):
            for d, sym in enumerate(spec.get("symbols") or []):
                if sym is None:
                    continue
                if sym in seen and seen[sym][2] != a.shape[d]:
                    other, e, size = seen[sym]
                    raise InputError(f"{_label(i, spec)} dim {d} is {a.shape[d]} but {other} dim {e} is {size}: "
                                     f"both are the dynamic size {sym} the model was compiled with")
                seen.setdefault(sym, (_label(i, spec), d, a.shape[d]))

    def __call__(self, *args: Any, **kwargs: Any):
        """Runs the module on `args` and `kwargs` (the model's keyword inputs, by name) and
        returns what the model returns (see "output_tree" in the module doc). On a CUDA
        module, torch tensors on the GPU IREE runs on (cuda:0) go in and come out without
        copies (DLPack): the result is on that GPU. On a CPU module, contiguous, 64-byte
        aligned CPU tensors are read in place (_zero_copy); the result is a copy. Other
        tensors are copied through the host, and the result is returned where the first
        argument lives."""
        return self._structured(self._call(self.flat_args(args, kwargs)))

    def timed_call(self, *args: Any, **kwargs: Any) -> tuple:
        """Calls the module as `__call__` does and returns `(result, steps)`: the host seconds
        spent in each step of this call, in order, for benchmarks and profiles:

            "inputs"      the arguments checked and handed to IREE (imported or uploaded)
            "sync torch"  waiting for torch's stream (CUDA tensors, zero-copy calls only)
            "submit"      IREE's VM call (for a synchronous module: the whole run)
            "wait"        until the result is ready (modules with the async ABI)
            "outputs"     the results as torch tensors, nested as the model returns them

        The steps are those of `__call__` itself, measured by the same code path."""
        steps = Steps()
        result = self._structured(self._call(self.flat_args(args, kwargs), steps))
        steps("outputs")
        return result, steps.seconds

    def _call(self, args: tuple, step=None) -> list:
        """The function's results (torch tensors) on its inputs, in order; `step(name)` marks
        the end of each step (see timed_call)."""
        step = step or _no_step
        views = self._repeat_views(args)
        if views is not None:
            step("inputs")
            return self._run_zero_copy(views, step)
        self.check_args(args)
        if self._zero_copy(args):
            return self._call_zero_copy(args, step)
        buffers = [self._upload(a) for a in args]
        step("inputs")
        if self.is_async:
            outs = [self._export(v).cpu() for v in self._invoke(buffers, step)]
        else:
            result = self._function()(*buffers)
            step("submit")
            results = result if isinstance(result, (list, tuple)) else [result]
            outs = [_to_torch(r, spec["dtype"]) for r, spec in zip(results, self.meta["outputs"])]
        where = args[0].device if args else None
        if where is not None and where.type != "cpu":
            outs = [o.to(where) for o in outs]
        return outs

    def _structured(self, outs: list):
        """The results nested as the model returned them; a tensor or a tuple for modules
        saved without an "output_tree"."""
        tree = self.meta.get("output_tree")
        if tree is None:
            return outs[0] if len(outs) == 1 else tuple(outs)
        if "tensor" in tree:  # (a single tensor: the common case, kept cheap)
            return outs[tree["tensor"]]
        from flashlift.structure import rebuild

        return rebuild(tree, outs)

    def prepare(self, *args: Any, **kwargs: Any):
        """Uploads the inputs to the device once (on a CUDA module, CUDA tensors on its GPU are
        used in place); returns a no-argument function that runs the module on them and waits
        for the result (for timing without host copies). On the zero-copy path the function
        returns torch tensors (a tensor, or a tuple of the function's results), otherwise
        IREE's results."""
        args = self.flat_args(args, kwargs)
        self.check_args(args)
        if self._zero_copy(args):
            views = [self._import(a) for a in args]
            return lambda: _single_or_tuple(self._run_zero_copy(views))
        fn = self._function()
        buffers = [self._upload(a) for a in args]
        if self.is_async:
            return lambda: self._invoke(buffers)
        return lambda: fn(*buffers)

    def _zero_copy(self, args: tuple) -> bool:
        """Whether every argument can be handed to IREE in place: a tensor on the CUDA device
        IREE runs this module on, or, for a module on the CPU, a contiguous CPU tensor of a
        type DLPack and IREE agree on whose memory is 64-byte aligned (the alignment IREE's CPU
        code may assume of a binding). A copy of each input into an IREE buffer cost a
        2x4x256x64 bf16 attention ~0.15 ms a call on one Zen 4 core (1.03 vs 0.86-0.88 ms)."""
        import torch

        if not args or not all(isinstance(a, torch.Tensor) for a in args):
            return False
        if self.device == "cuda":
            return all(a.is_cuda and (a.device.index or 0) == 0 for a in args)
        return self.device in _HOST_DRIVERS and all(
            a.device.type == "cpu" and a.is_contiguous() and a.numel() and a.data_ptr() % 64 == 0
            and a.dtype in _host_import_dtypes() for a in args)

    def _call_zero_copy(self, args: tuple, step):
        """Imports cost ~8 us a tensor in IREE 3.13's bindings: the last call's imports are kept
        and reused for the same memory (pointer, shape, strides, dtype). A kept view holds its
        tensor alive, so the memory cannot be given to another tensor meanwhile; the cost is
        that the previous call's inputs stay allocated until the next call."""
        # (a non-contiguous tensor is imported as a fresh contiguous copy each time)
        keys = [_memory_key(a) for a in args]
        last = {k: v for k, v in zip(*self._last_call) if k is not None}
        views = [last[k] if k in last else self._import(a) for k, a in zip(keys, args)]
        self._last_call = (keys, views)
        step("inputs")
        return self._run_zero_copy(views, step)

    def _repeat_views(self, args: tuple):
        """The last call's imports if `args` are the very tensors it was given (memory, shape,
        strides, dtype; the kept imports hold that memory, so no other tensor can have it).
        Those passed check_args then, so a repeated call skips it and the imports (~10 us)."""
        keys, views = self._last_call
        if not keys or None in keys:  # no call yet, or a non-contiguous input (imported afresh)
            return None
        try:
            return views if [_memory_key(a) for a in args] == keys else None
        except AttributeError:  # not a tensor: check_args says what is wrong
            return None

    def _run_zero_copy(self, views: list, step=None):
        # IREE runs on its own CUDA stream and 3.13's CUDA driver cannot import a CUDA event
        # as a wait: finish torch's pending work on the inputs first. The call itself is
        # synchronous, so the results are complete when it returns.
        step = step or _no_step
        if self.device == "cuda":
            self._sync_torch()
            step("sync torch")
            return [self._export(v) for v in self._invoke(views, step)]
        # on the CPU the results are copied out of IREE's memory: a tensor over it that
        # outlives the runtime (one kept until the interpreter exits) crashes Python's exit
        return [self._export(v).clone() for v in self._invoke(views, step)]

    def _export(self, view):
        """A torch tensor over result `view`'s memory on the module's device (no copy)."""
        import torch.utils.dlpack

        kind = _DLPACK_CUDA if self.device == "cuda" else _DLPACK_CPU
        return torch.utils.dlpack.from_dlpack(self._device().create_dlpack_capsule(view, kind, 0))

    @staticmethod
    def _sync_torch() -> None:
        """Waits for torch's current stream on cuda:0 (the device zero-copy calls use)."""
        import torch

        sync = _stream_synchronize()
        if sync is None or sync(torch._C._cuda_getCurrentRawStream(0)) != 0:
            torch.cuda.current_stream(0).synchronize()  # (raises what went wrong, if anything did)

    def _import(self, t):
        """An IREE buffer view over tensor `t`'s device memory (no copy)."""
        import torch.utils.dlpack

        return self._device().from_dlpack_capsule(torch.utils.dlpack.to_dlpack(t.detach().contiguous()))

    def _invoke(self, views: list, step=None) -> list:
        """Calls the module's function on buffer views and waits for it; returns its result
        buffer views. An async function gets an empty wait fence (its inputs are ready) and
        a signal fence on this model's semaphore, which is then awaited."""
        import iree.runtime as rt

        step = step or _no_step
        fn = self._function()
        arg_list, signal = self._arguments(views)
        ret_list = rt.VmVariantList(len(self.meta["outputs"]))
        self._ctx.vm_context.invoke(fn.vm_function, arg_list, ret_list)
        step("submit")
        if signal is not None:
            _await(self._semaphore, self._calls, signal)
            step("wait")
        return [ret_list.get_as_object(i, rt.HalBufferView) for i in range(ret_list.size)]

    def _arguments(self, views: list) -> tuple:
        """The argument list of the next call on `views` and its signal fence (None for a
        synchronous function). Built afresh each call: a reused list whose signal fence was
        raised to the new value (HalFence.insert) works on the CPU, but on CUDA such a call
        hung (H200 machine, 2026-11-22)."""
        import iree.runtime as rt

        self._calls += 1
        arg_list = rt.VmVariantList(len(views) + 2)
        for v in views:
            arg_list.push_ref(v)
        signal = None
        if self._semaphore is not None:
            signal = rt.HalFence.create_at(self._semaphore, self._calls)
            arg_list.push_ref(self._no_wait)
            arg_list.push_ref(signal)
        return arg_list, signal

    def _device(self):
        self._function()
        return self._ctx.config.device

    def _upload(self, t):
        """A device buffer view holding tensor `t` (bf16 without needing ml_dtypes)."""
        import iree.runtime as rt
        import torch

        t = t.detach().cpu().contiguous()
        name = str(t.dtype).replace("torch.", "")
        host = t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
        element = getattr(rt.HalElementType, _HAL_ELEMENT_TYPES.get(name, ""), None)
        if element is None:
            return host
        device = self._device()
        return device.allocator.allocate_buffer_copy(
            memory_type=rt.MemoryType.DEVICE_LOCAL, allowed_usage=rt.BufferUsage.DEFAULT,
            device=device, buffer=host, element_type=element)

    def with_parameters(self, parameters) -> "CompiledModel":
        """The same compiled module with other weights of the same structure (a fine-tuned
        state dict, an .irpa path, a Parameters); no recompiling. A ModuleFormatError names
        the entries that are missing or of another size, shape or dtype."""
        if not self.meta.get("parameters"):
            raise InputError(f"{self.meta.get('name', 'the model')}'s module has its weights inline (compiled with "
                             "parameters='inline'): it takes no parameters")
        return CompiledModel(self._vmfb, self.meta, self.device, Parameters.from_source(parameters))

    def save(self, path: str, *, parameters: bool = True) -> None:
        """Writes the compiled module, its description (with the module's SHA-256) and its
        parameters (see the module doc), atomically: on failure a SaveError says why and a
        previous file at `path` is left as it was. `parameters=False` leaves the weights out
        (shipped apart, e.g. as the model's own checkpoint): `load(path, parameters=...)`
        then takes them."""
        meta = dict(self.meta, module_sha256=hashlib.sha256(self._vmfb).hexdigest())
        description = json.dumps(meta, indent=2).encode("utf-8")
        if not meta.get("parameters") or not parameters:
            archive.write(path, description, self._vmfb)
            return
        if self.parameters is None:
            raise SaveError(f"cannot save {path}: the module reads parameters and this CompiledModel has none")
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        with tempfile.TemporaryDirectory(prefix=".flashlift-save-", dir=folder) as tmp:
            irpa = os.path.join(tmp, archive.PARAMETERS_NAME)
            self.parameters.write(irpa)
            archive.write(path, description, self._vmfb, parameters=irpa)


class Steps:
    """`step(name)` adds the time since the previous mark (or since creation) to
    `seconds[name]`; the marks of CompiledModel.timed_call."""

    def __init__(self):
        self.seconds: dict = {}
        self._last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


def _no_step(name: str) -> None:
    """The step marker of an untimed call."""


def _label(i: int, spec: dict) -> str:
    """How errors name function input `i`: "argument 0 (q)" or "keyword argument 'mask'"."""
    if spec.get("keyword"):
        return f"keyword argument {spec['name']!r}"
    return f"argument {i}" + (f" ({spec['name']})" if spec.get("name") else "")


def _single_or_tuple(outs: list):
    return outs[0] if len(outs) == 1 else tuple(outs)


def _memory_key(t):
    """What identifies a contiguous tensor's import: its memory, shape, strides and dtype."""
    return (t.data_ptr(), tuple(t.shape), t.stride(), t.dtype) if t.is_contiguous() else None


#: How long a call polls for its result before it blocks (seconds): see _await.
SPIN_SECONDS = 0.05
#: What _await calls between polls (a no-op where the OS has no sched_yield).
_yield_cpu = getattr(os, "sched_yield", None) or (lambda: None)


def _await(semaphore, value: int, fence) -> None:
    """Waits until `semaphore` reaches `value`. IREE's blocking wait wakes its caller 0.1-0.3 ms
    after a kernel of 0.5 ms or more ends on the H200 machines (the waiting thread's CPU has
    gone idle), so a call polls the semaphore first, as CUDA's own synchronisation spins by
    default; calls longer than SPIN_SECONDS block, where that latency no longer matters.
    A failed semaphore (a device error) raises from query() or wait(). Between polls the
    thread yields its CPU (sched_yield, not sleep(0), which wakes late): 2-6% per call at
    512-1024 tokens (H200 machine, 2026-11-29, 4 of 4 interleaved comparisons), as IREE's
    queue and completion threads that the call waits for get to run sooner."""
    import time

    deadline = time.perf_counter() + SPIN_SECONDS
    while semaphore.query() < value:
        _yield_cpu()
        if time.perf_counter() > deadline:
            fence.wait()
            return


@functools.lru_cache(maxsize=None)
def _stream_synchronize():
    """The CUDA driver's cuStreamSynchronize, called directly (None where it cannot be):
    1.5 us a call against 8.6 us for torch.cuda.current_stream().synchronize() on an idle
    stream (H200 machine, 2026-11-22), paid by every zero-copy call."""
    import ctypes

    import torch

    try:
        fn = ctypes.CDLL("libcuda.so.1").cuStreamSynchronize
        torch._C._cuda_getCurrentRawStream  # noqa: B018 (present in torch >= 1.x; checked once)
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_void_p], ctypes.c_int
    return fn


@functools.lru_cache(maxsize=None)
def _make_device(driver: str):
    """The process's one CUDA device for flashlift modules, shared by every model (one CUDA
    stream, one set of IREE queue threads, one allocator cache). Its result buffers come from
    IREE's caching allocator instead of the stream-ordered pool: a pooled result the caller
    drops is freed with a synchronous cuMemFree, 0.1-0.3 ms per call for a 16 MiB attention
    output on an H200, more with torch's CUDA context in the same process
    (bench/results/runtime-overhead-h200.md). The flag takes effect if this process has not
    created IREE's CUDA driver yet. The cache keeps freed buffers for reuse for the life of the
    process, as torch's caching allocator does."""
    import iree.runtime as rt

    rt.flags.parse_flags("--cuda_async_allocations=false")
    return rt.get_driver(driver).create_default_device(allocators=["caching"])


def load(path: str, device: Optional[str] = None, parameters=None) -> CompiledModel:
    """Loads a module written by CompiledModel.save; needs only the IREE runtime.

    `device` is an IREE runtime driver ("local-task", "local-sync", "cuda", "hip", "vulkan");
    by default the one the module was compiled for. `parameters`: other weights for the
    module (an .irpa path or a state dict, as CompiledModel.with_parameters takes); by default
    the file's own, mapped from it. Everything the module doc lists is checked first: a file
    that fails a check is refused with a ModuleFormatError (a TargetError for a CPU module
    this machine cannot run), naming the file and the check.
    """
    path = os.fspath(path)
    contents = archive.read(path)
    meta = description.parse(contents.description, f"{path}: {META_NAME}")
    if meta.get("format") != FORMAT:
        raise ModuleFormatError(f"{path}: not a flashlift module ({META_NAME} has no 'format': '{FORMAT}')")
    if meta.get("version") != VERSION:
        raise ModuleFormatError(f"{path}: flashlift module version {meta.get('version')} is not supported (want {VERSION})")
    description.validate(meta, f"{path}: {META_NAME}")
    _check_integrity(meta, contents, path)
    check_module(meta, contents.module, path, ModuleFormatError)
    check_machine(meta, path)
    weights = None
    if meta.get("parameters"):
        if parameters is not None:
            weights = Parameters.from_source(parameters)
        elif contents.parameters is None:
            raise ModuleFormatError(f"{path}: the module reads {len(meta['parameters'])} parameters and the file has no "
                                    f"{archive.PARAMETERS_NAME} (give them with parameters=)")
        else:
            weights = Parameters.from_memory(contents.parameters, f"{path}: {archive.PARAMETERS_NAME}")
    elif parameters is not None:
        raise InputError(f"{path}: the module has its weights inline (compiled with parameters='inline'): it takes no "
                         "parameters")
    return CompiledModel(contents.module, meta, device, weights)


def _check_integrity(meta: dict, contents: archive.Contents, path: str) -> None:
    """module.vmfb's SHA-256 against the description's (the archive's CRC-32 for files
    saved without one)."""
    want = meta.get("module_sha256")
    if want is None:
        ok, what = zlib.crc32(contents.module) == contents.module_crc, "CRC-32 the archive records"
    else:
        ok, what = hashlib.sha256(contents.module).hexdigest() == want.lower(), f"SHA-256 in {META_NAME}"
    if not ok:
        raise ModuleFormatError(f"{path}: {VMFB_NAME} does not match the {what}: the file is damaged or was "
                                "modified after it was saved")


def check_module(meta: dict, module, where: str, error=ModuleFormatError) -> None:
    """IREE accepts `module` and its function's declared signature is the described one;
    else `error` lists the differences."""
    import iree.runtime as rt

    declared = declared_signature(open_module(rt.VmInstance(), module, f"{where}: {VMFB_NAME}"),
                                  meta["function"], f"{where}: {VMFB_NAME}")
    problems = signature_mismatches(meta, declared)
    if problems:
        raise error(f"{where}: {META_NAME} does not describe the function @{meta['function']} of {VMFB_NAME}: "
                    + "; ".join(problems))


def check_machine(meta: dict, where: str) -> None:
    """A CPU module runs only on a CPU of its architecture with the features it was compiled
    for (flashlift.cpu): a TargetError names what this machine lacks."""
    target = meta.get("cpu")
    lacking = cpu.missing(target)
    if not lacking:
        return
    if lacking[0].startswith("architecture"):
        raise TargetError(f"{where}: compiled for {target['arch']} CPUs, this machine is {cpu.host_arch()}")
    raise TargetError(
        f"{where}: compiled for CPU {target.get('name', '?')!r} (target {meta.get('target', '?')}), whose code "
        f"uses {', '.join(lacking)}, which this machine's CPU lacks: the first call would die of an illegal "
        "instruction. Compile it for this machine (target 'cpu') or a level every machine it runs on has "
        "('cpu:generic', 'cpu:x86-64-v2', 'cpu:x86-64-v3')")


_DLPACK_CPU, _DLPACK_CUDA = 1, 2  # DLPack's kDLCPU and kDLCUDA device types
_HOST_DRIVERS = ("local-task", "local-sync")  # IREE devices whose buffers are host memory


@functools.lru_cache(maxsize=None)
def _host_import_dtypes() -> frozenset:
    """The torch dtypes a CPU module's inputs are imported in place in (the rest are copied)."""
    import torch

    return frozenset((torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32))

_HAL_ELEMENT_TYPES = {"float32": "FLOAT_32", "float16": "FLOAT_16", "bfloat16": "BFLOAT_16", "float64": "FLOAT_64",
                      "int64": "SINT_64", "int32": "SINT_32", "int16": "SINT_16", "int8": "SINT_8", "uint8": "UINT_8",
                      "bool": "BOOL_8"}


def _to_torch(result, dtype: str):
    """A torch tensor copied from an IREE result (bf16 read as raw 16-bit words)."""
    import numpy as np
    import torch

    if dtype == "bfloat16":
        try:  # with ml_dtypes installed, the runtime's own host transfer works
            return torch.from_numpy(np.array(result.to_host()).view(np.int16)).view(torch.bfloat16)
        except Exception:
            pass
        view = result._buffer_view if hasattr(result, "_buffer_view") else result
        raw = view.map().asarray(tuple(view.shape), np.dtype(np.int16))
        return torch.from_numpy(np.array(raw)).view(torch.bfloat16)
    arr = result.to_host() if hasattr(result, "to_host") else result
    return torch.from_numpy(np.array(arr))
