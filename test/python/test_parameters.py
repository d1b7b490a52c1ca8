"""Weights as IREE parameters (compile_model's default parameters="archive"): numerics, the IR
handed to iree-compile, save/load with the archive (also where the compiler cannot be imported),
weights swapped without recompiling, and clear errors for archives that do not fit.
Tolerances: f32 relative error 1e-5, bf16 5e-3 (against PyTorch on the same inputs)."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import flashlift
from conftest import runtime_only
from flashlift import archive
from flashlift.compiler import driver
from flashlift.compiler.importer import import_model
from flashlift.compiler.targets import parse_target
from flashlift.parameters import Parameters, save_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Block(torch.nn.Module):
    """Self-attention with q/k/v/o projections, a residual LayerNorm and a tied output layer."""

    def __init__(self, d=32, heads=4, vocab=50):
        super().__init__()
        self.heads = heads
        self.emb = torch.nn.Embedding(vocab, d)
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d) for _ in range(4))
        self.ln = torch.nn.LayerNorm(d)
        self.out = torch.nn.Linear(d, vocab, bias=False)
        self.out.weight = self.emb.weight  # tied, as language models do
        self.register_buffer("scale", torch.tensor(1.0))

    def forward(self, ids, mask):
        x = self.emb(ids)
        B, S, D = x.shape
        q, k, v = (f(x).view(B, S, self.heads, D // self.heads).transpose(1, 2) for f in (self.q, self.k, self.v))
        s = q @ k.transpose(-1, -2) / (D // self.heads) ** 0.5
        s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
        a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, S, D)
        return self.out(self.ln(self.o(a) + x) * self.scale)


def _inputs(B=2, S=8, vocab=50):
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (B, S), generator=gen)
    mask = torch.ones(B, S, dtype=torch.bool)
    mask[1, 5:] = False  # padding
    return ids, mask


def _rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.fixture(scope="module")
def compiled():
    torch.manual_seed(0)
    model = Block().eval()
    return model, flashlift.compile_model(model, _inputs())


def test_weights_are_parameters_and_the_answer_is_pytorchs(compiled):
    model, c = compiled
    names = [p["name"] for p in c.meta["parameters"]]
    # every weight once (the tied one under its first name); the 1-element buffer stays inline
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert "out.weight" not in names and "scale" not in names
    assert {p["name"]: p["bytes"] for p in c.meta["parameters"]}["q.weight"] == 32 * 32 * 4
    assert len(c.report.raised) == 1
    ids, mask = _inputs()
    assert _rel(c(ids, mask), model(ids, mask)) < 1e-5


def test_the_weights_are_freed_with_the_model_and_the_module():
    """Once the user drops the model and the compiled module, nothing of flashlift's (or
    torch.export's: a module global it leaves filled after a trace) keeps the weights alive:
    an 8 B model's 16 GB could not be freed before its saved module was loaded."""
    import gc
    import weakref

    torch.manual_seed(0)
    model = Block().eval()
    weight = weakref.ref(model.q.weight)
    compiled = flashlift.compile_model(model, _inputs())
    del model, compiled
    gc.collect()
    assert weight() is None


def test_the_ir_holds_no_weights():
    torch.manual_seed(0)
    model = Block(d=128).eval()
    imported = import_model(model, _inputs())
    assert "dense_resource<\"flashlift_param.q.weight\">" in imported.text or \
        "dense_resource<flashlift_param.q.weight>" in imported.text
    lowered = driver.lower(imported.text, parse_target("cpu"), func_name=imported.func_name)
    assert '#stream.parameter.named<"model"::"q.weight"> : tensor<128x128xf32>' in lowered.text
    assert "flashlift_param" not in lowered.text
    weights = sum(t.numel() * t.element_size() for t in imported.parameters.values())
    assert len(lowered.text) < weights / 4  # the text is the program, not the weights
    inline = import_model(model, _inputs(), parameters="inline")
    assert "flashlift_param" not in inline.text and len(inline.text) > weights


def test_inline_parameters_still_work():
    torch.manual_seed(0)
    model = Block().eval()
    c = flashlift.compile_model(model, _inputs(), parameters="inline")
    assert "parameters" not in c.meta
    ids, mask = _inputs()
    assert _rel(c(ids, mask), model(ids, mask)) < 1e-5
    with pytest.raises(flashlift.InputError, match="inline"):
        c.with_parameters(model.state_dict())


def test_parameters_mode_is_checked():
    with pytest.raises(flashlift.InputError, match="parameters='files'.*'archive', 'inline'"):
        flashlift.compile_model(Block(), _inputs(), parameters="files")


def _fine_tuned(model):
    torch.manual_seed(7)
    tuned = Block().eval()
    tuned.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return tuned


def test_weights_swapped_without_recompiling(compiled, tmp_path):
    model, c = compiled
    tuned = _fine_tuned(model)
    ids, mask = _inputs()
    want = tuned(ids, mask)
    assert _rel(c(ids, mask), want) > 1e-3  # (the swap below is what changes the answer)
    assert _rel(c.with_parameters(tuned.state_dict())(ids, mask), want) < 1e-5
    save_parameters(tuned.state_dict(), tmp_path / "tuned.irpa")
    assert _rel(c.with_parameters(str(tmp_path / "tuned.irpa"))(ids, mask), want) < 1e-5
    c.save(tmp_path / "m.flashlift")
    loaded = flashlift.load(tmp_path / "m.flashlift", parameters=tmp_path / "tuned.irpa")
    assert _rel(loaded(ids, mask), want) < 1e-5
    assert _rel(c(ids, mask), model(ids, mask)) < 1e-5  # the original is unchanged


def test_save_writes_the_parameters_in_the_file_and_load_maps_them(compiled, tmp_path):
    model, c = compiled
    path = tmp_path / "m.flashlift"
    c.save(path)
    contents = archive.read(str(path))
    assert isinstance(contents.parameters, memoryview)  # mapped, not read
    index = Parameters.from_memory(contents.parameters, "test").entries
    assert set(index) == {p["name"] for p in c.meta["parameters"]}
    ids, mask = _inputs()
    torch.save((ids, mask, model(ids, mask)), tmp_path / "io.pt")
    script = runtime_only() + textwrap.dedent(f"""
        import torch, flashlift
        ids, mask, want = torch.load({str(tmp_path / "io.pt")!r})
        got = flashlift.load({str(path)!r})(ids, mask)
        err = ((got - want).norm() / want.norm()).item()
        assert err < 1e-5, err
        assert not any(m.startswith(("iree.compiler", "torch_mlir")) for m in sys.modules)
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "test", "python")]))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_save_without_parameters_writes_the_program_alone(compiled, tmp_path):
    """save(parameters=False): the weights travel apart and load takes them."""
    model, c = compiled
    path = tmp_path / "program.flashlift"
    c.save(path, parameters=False)
    assert archive.read(str(path)).parameters is None
    with pytest.raises(flashlift.ModuleFormatError, match="has no parameters.irpa .give them with parameters=."):
        flashlift.load(path)
    ids, mask = _inputs()
    assert _rel(flashlift.load(path, parameters=model.state_dict())(ids, mask), model(ids, mask)) < 1e-5


def test_an_archive_that_does_not_fit_names_the_entries(compiled, tmp_path):
    model, c = compiled
    sd = dict(model.state_dict())
    del sd["q.weight"]
    sd["k.weight"] = torch.zeros(16, 32)
    with pytest.raises(flashlift.ModuleFormatError, match=r"'k.weight' has 2048 bytes, the module reads 4096.*"
                                                           r"'q.weight' is missing|'q.weight' is missing.*'k.weight'"):
        c.with_parameters(sd)
    sd = dict(model.state_dict(), **{"k.weight": torch.zeros(64, 16)})  # same bytes, other shape
    with pytest.raises(flashlift.ModuleFormatError, match=r"'k.weight' is float32 \[64, 16\], the module reads "
                                                           r"float32 \[32, 32\]"):
        c.with_parameters(sd)
    sd = dict(model.state_dict(), **{"k.weight": model.k.weight.detach().view(torch.int32)})
    with pytest.raises(flashlift.ModuleFormatError, match=r"'k.weight' is int32"):
        c.with_parameters(sd)


def test_a_malformed_archive_is_refused_clearly(compiled, tmp_path):
    model, c = compiled
    garbage = tmp_path / "garbage.irpa"
    garbage.write_bytes(b"not an archive" * 100)
    with pytest.raises(flashlift.ModuleFormatError, match=r"garbage.irpa: not a valid IREE parameter archive"):
        c.with_parameters(str(garbage))
    empty = tmp_path / "empty.irpa"
    empty.write_bytes(b"")
    with pytest.raises(flashlift.ModuleFormatError, match="empty file"):
        c.with_parameters(str(empty))
    with pytest.raises(flashlift.InputError, match="no such file"):
        c.with_parameters(str(tmp_path / "missing.irpa"))
    with pytest.raises(flashlift.InputError, match="not a torch tensor"):
        c.with_parameters({"q.weight": [1.0, 2.0]})
    good = tmp_path / "good.irpa"
    save_parameters(model.state_dict(), good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.irpa"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(flashlift.ModuleFormatError, match="truncated.irpa"):
        c.with_parameters(str(truncated))


def test_a_file_whose_parameters_were_damaged_or_removed_is_refused(compiled, tmp_path):
    import zipfile

    model, c = compiled
    path = tmp_path / "m.flashlift"
    c.save(path)
    stripped = tmp_path / "stripped.flashlift"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(stripped, "w") as dst:
        for name in (archive.META_NAME, archive.VMFB_NAME):
            dst.writestr(src.getinfo(name), src.read(name))
    with pytest.raises(flashlift.ModuleFormatError, match="has no parameters.irpa"):
        flashlift.load(stripped)
    ids, mask = _inputs()
    assert _rel(flashlift.load(stripped, parameters=model.state_dict())(ids, mask), model(ids, mask)) < 1e-5
    damaged = tmp_path / "damaged.flashlift"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for name in (archive.META_NAME, archive.VMFB_NAME):
            dst.writestr(src.getinfo(name), src.read(name))
        dst.writestr(archive.PARAMETERS_NAME, b"\0" * 4096)
    with pytest.raises(flashlift.ModuleFormatError, match="parameters.irpa: not a valid IREE parameter archive"):
        flashlift.load(damaged)


def test_bf16_parameters():
    torch.manual_seed(0)
    model = Block().eval().to(torch.bfloat16)
    c = flashlift.compile_model(model, _inputs())
    assert {p["dtype"] for p in c.meta["parameters"]} == {"bfloat16"}
    ids, mask = _inputs()
    want = Block().eval()
    want.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    # against the same bf16 weights computed in f32: both round to bf16 between ops
    assert _rel(c(ids, mask), want(ids, mask)) < 2e-2
