"""The runtime's two calling conventions: IREE's synchronous one (CPU modules) and the
coarse-fences one CUDA modules are compiled with (a wait and a signal fence after the
tensors; flashlift polls the signal before it blocks). Both are exercised here on the CPU,
where an async module is compiled on purpose."""

import pytest
import torch

import flashlift
from conftest import rel_err
from flashlift import runtime
from flashlift.compiler import driver
from flashlift.compiler.targets import parse_target
from flashlift.runtime import CompiledModel
from test_foundation import PlainAttention

CPU = parse_target("cpu")


class MaskedTwoOutputs(torch.nn.Module):
    """Attention with a boolean key mask, returning the output and its row sums."""

    def forward(self, q, k, v, keep):
        s = torch.matmul(q, k.transpose(-2, -1)) * 0.25
        s = s.masked_fill(~keep, float("-inf"))
        o = torch.matmul(torch.softmax(s.float(), dim=-1).to(q.dtype), v)
        return o, o.float().sum(-1)


def compiled_cpu(model, args, *, async_abi: bool) -> CompiledModel:
    text = flashlift.import_model(model, args)
    lowered = driver.lower(text, CPU)
    vmfb = driver.iree_compile(lowered.text, CPU, async_abi=async_abi)
    return CompiledModel(vmfb, {"function": "main", "inputs": lowered.signature["inputs"],
                                "outputs": lowered.signature["outputs"]})


def test_cuda_targets_compile_with_the_async_abi_and_cpu_without():
    assert driver.ASYNC_ABI_FLAGS[0] in driver.compile_flags(parse_target("cuda:sm_90"))
    assert driver.ASYNC_ABI_FLAGS[0] not in driver.compile_flags(CPU)
    assert driver.ASYNC_ABI_FLAGS[0] in driver.compile_flags(CPU, async_abi=True)


class ResidualLayerNorm(torch.nn.Module):
    """BERT's output block in f16: torch-mlir emits f64 scalars in it (the rsub's 1.0, eps)."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(64)

    def forward(self, x, y, keep):
        return self.norm(x + y) * (1.0 - keep[..., None].to(x.dtype))


def test_f64_is_kept_only_for_float64_models():
    """Regression: f64 kept in every module made IREE's CUDA codegen fail on BERT's LayerNorm
    ("failed to distribute"); a float16 model compiles for CUDA with f64 demoted."""
    assert driver.KEEP_F64_FLAGS[0] not in driver.compile_flags(parse_target("cuda:sm_90"))
    assert driver.KEEP_F64_FLAGS[0] in driver.compile_flags(CPU, keep_f64=True)
    args = (torch.randn(2, 16, 64).half(), torch.randn(2, 16, 64).half(), torch.ones(2, 16, dtype=torch.int64))
    compiled = flashlift.compile_model(ResidualLayerNorm().half(), args, target="cuda:sm_90")
    assert [s["dtype"] for s in compiled.meta["inputs"]] == ["float16", "float16", "int64"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_async_and_sync_modules_give_the_same_answers(dtype):
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, 24, 16).to(dtype) for _ in range(3))
    keep = torch.rand(2, 1, 24, 24) > 0.3
    keep[..., 0] = True  # no fully masked row
    args = (q, k, v, keep)
    ref_o, ref_sum = MaskedTwoOutputs()(*args)
    sync = compiled_cpu(MaskedTwoOutputs(), args, async_abi=False)
    asyn = compiled_cpu(MaskedTwoOutputs(), args, async_abi=True)
    assert not sync.is_async and asyn.is_async
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for model in (sync, asyn):
        o, total = model(*args)
        assert o.dtype == dtype and total.dtype == torch.float32
        assert rel_err(o, ref_o) < tol and rel_err(total, ref_sum) < tol
    # a later call on other inputs is not answered with an earlier call's result
    q2 = torch.randn_like(q)
    o2, _ = asyn(q2, k, v, keep)
    assert rel_err(o2, MaskedTwoOutputs()(q2, k, v, keep)[0]) < tol


@pytest.mark.parametrize("async_abi", [False, True])
def test_timed_call_gives_the_answer_and_the_time_of_each_step(async_abi):
    """timed_call: the same result as a call, and a positive time per step of this ABI's path."""
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 8, 16) for _ in range(3))
    model = compiled_cpu(PlainAttention(), (q, k, v), async_abi=async_abi)
    out, steps = model.timed_call(q, k, v)
    assert torch.equal(out, model(q, k, v))
    want = ["inputs", "submit", "wait", "outputs"] if async_abi else ["inputs", "submit", "outputs"]
    assert list(steps) == want and all(t > 0 for t in steps.values()), steps


def test_async_prepare_runs_repeatedly():
    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 8, 16) for _ in range(3))
    model = compiled_cpu(PlainAttention(), (q, k, v), async_abi=True)
    run = model.prepare(q, k, v)   # CPU tensors are imported in place: run() gives torch tensors
    first = run().clone()
    for _ in range(3):
        assert torch.equal(run(), first)
        # each call signals its own value
        assert model._semaphore.query() == model._calls
    assert rel_err(first, PlainAttention()(q, k, v)) < 1e-5


def test_await_blocks_after_the_spin_budget(monkeypatch):
    """A call that outlasts SPIN_SECONDS ends in the fence's blocking wait."""

    class Semaphore:
        def __init__(self):
            self.polls = 0

        def query(self):
            self.polls += 1
            return 0

    class Fence:
        waited = False

        def wait(self):
            Fence.waited = True

    monkeypatch.setattr(runtime, "SPIN_SECONDS", 0.001)
    sem = Semaphore()
    runtime._await(sem, 1, Fence())
    assert Fence.waited and sem.polls >= 1  # (one poll can outlast 1 ms on a loaded machine)


def test_await_returns_once_the_semaphore_is_reached():
    class Semaphore:
        def query(self):
            return 5

    class Fence:
        def wait(self):
            raise AssertionError("must not block: the value was reached")

    runtime._await(Semaphore(), 5, Fence())


def test_a_repeated_call_reuses_the_last_imports_only_for_the_same_tensors():
    """The zero-copy path's shortcut (CUDA only; its bookkeeping is plain Python)."""
    model = CompiledModel(b"", {"function": "main", "inputs": [], "outputs": []}, device="cuda")
    q, k = torch.randn(2, 8, 16), torch.randn(2, 8, 16)
    assert model._repeat_views((q, k)) is None  # no call yet
    model._last_call = ([runtime._memory_key(q), runtime._memory_key(k)], ["q view", "k view"])
    assert model._repeat_views((q, k)) == ["q view", "k view"]
    t = k.transpose(1, 2)  # a non-contiguous input has no key: never a repeat
    model._last_call = ([runtime._memory_key(q), runtime._memory_key(t)], ["q view", "t view"])
    assert model._repeat_views((q, t)) is None
    model._last_call = ([runtime._memory_key(q), runtime._memory_key(k)], ["q view", "k view"])
    assert model._repeat_views((q, q)) is None  # other memory
    assert model._repeat_views((q, k.clone())) is None
    assert model._repeat_views((q, k.view(2, 16, 8))) is None  # other shape, same memory
    assert model._repeat_views((q, k.to(torch.float16))) is None
    assert model._repeat_views((q,)) is None
    assert model._repeat_views((q, "k")) is None  # not a tensor: check_args reports it


def test_cpu_inputs_are_read_in_place():
    """A CPU module reads contiguous, 64-byte aligned CPU tensors where they lie (no copy into an
    IREE buffer): the same tensors changed in place give the new answer; a misaligned view and
    a non-contiguous one are copied and give the same answer as their contiguous copies; the
    result is the caller's own (a later call does not change it)."""
    torch.manual_seed(5)
    q, k, v = (torch.randn(2, 8, 16) for _ in range(3))
    model = flashlift.compile_model(PlainAttention(), (q, k, v))
    assert model._zero_copy((q, k, v))
    first = model(q, k, v)
    kept = first.clone()
    assert rel_err(first, PlainAttention()(q, k, v)) < 1e-5
    q.mul_(-2.0)                                   # the very tensors, changed: the kept imports see it
    second = model(q, k, v)
    assert rel_err(second, PlainAttention()(q, k, v)) < 1e-5 and torch.equal(first, kept)
    wide = torch.randn(2 * 8 * 16 + 1)
    misaligned = wide[1:].view(2, 8, 16)           # 4 bytes past an aligned start
    misaligned.copy_(k)
    assert not model._zero_copy((q, misaligned, v))
    assert torch.equal(model(q, misaligned, v), model(q, k, v))
    transposed = v.transpose(0, 1).contiguous().transpose(0, 1)   # same values, not contiguous
    assert not model._zero_copy((q, k, transposed))
    assert torch.equal(model(q, k, transposed), model(q, k, v))
