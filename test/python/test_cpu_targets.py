"""Portable CPU targets and the CPU check at load (flashlift.cpu): a module records the CPU
features it was compiled for, and a machine without them refuses it with their names
instead of dying of SIGILL on the first call."""

import json
import zipfile

import pytest
import torch

import flashlift
from flashlift import archive, cpu
from flashlift.compiler.targets import parse_target
from flashlift.errors import InputError, TargetError
from test_foundation import PlainAttention

X86 = cpu.host_arch() == "x86_64"


@pytest.fixture(scope="module")
def qkv():
    torch.manual_seed(1)
    return tuple(torch.randn(2, 4, 16, 8) for _ in range(3))


@pytest.fixture(scope="module")
def host_module(qkv, tmp_path_factory):
    path = tmp_path_factory.mktemp("cpu") / "host.flashlift"
    flashlift.compile_model(PlainAttention(), qkv).save(str(path))
    return str(path)


@pytest.mark.parametrize("level", ["generic", "x86-64-v3"])
def test_portable_level_compiles_runs_and_records_its_features(level, qkv, tmp_path):
    if level.startswith("x86-64") and not (X86 and cpu.host_flags() and "avx2" in cpu.host_flags()):
        pytest.skip("needs an x86-64 machine with AVX2 to run")
    compiled = flashlift.compile_model(PlainAttention(), qkv, target=f"cpu:{level}")
    assert compiled.meta["target"] == f"cpu:{level}"
    recorded = compiled.meta["cpu"]
    assert recorded["name"] == level and recorded["arch"] == cpu.host_arch()
    if level == "generic":
        assert recorded["features"] == [] or "avx" not in recorded["features"]
    else:
        assert {"avx2", "fma", "bmi2", "f16c"} <= set(recorded["features"]) and "avx512f" not in recorded["features"]
    ref = PlainAttention()(*qkv)
    compiled.save(str(tmp_path / "m.flashlift"))
    out = flashlift.load(str(tmp_path / "m.flashlift"))(*qkv)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-5
    assert len(compiled.report.raised) == 1


def test_host_module_records_this_cpu_and_loads_here(host_module):
    with zipfile.ZipFile(host_module) as z:
        recorded = json.loads(z.read(archive.META_NAME))["cpu"]
    assert recorded["arch"] == cpu.host_arch() and recorded["name"]
    if X86:
        assert "sse2" in recorded["features"]
    assert cpu.missing(recorded) == []
    flashlift.load(host_module)


def with_cpu(path, tmp_path, change):
    """A copy of the module at `path` whose description's "cpu" is changed by `change`."""
    with zipfile.ZipFile(path) as z:
        meta, module = json.loads(z.read(archive.META_NAME)), z.read(archive.VMFB_NAME)
    change(meta["cpu"])
    out = tmp_path / "edited.flashlift"
    archive.write(str(out), json.dumps(meta).encode(), module)
    return str(out)


def test_a_module_for_features_this_cpu_lacks_is_refused_by_name(host_module, tmp_path):
    flags = cpu.host_flags()
    if not X86 or flags is None:
        pytest.skip("the feature check covers Linux x86-64")
    lacking = [f for f, flag in cpu.CHECKED.items() if flag not in flags]
    if not lacking:
        pytest.skip("this CPU has every checked feature")
    path = with_cpu(host_module, tmp_path, lambda c: c["features"].append(lacking[0]))
    with pytest.raises(TargetError, match=rf"uses {lacking[0]}, which this machine's CPU lacks.*'cpu:generic'"):
        flashlift.load(path)


def test_a_module_for_another_architecture_is_refused(host_module, tmp_path):
    other = "aarch64" if X86 else "x86_64"
    with pytest.raises(TargetError, match=rf"compiled for {other} CPUs, this machine is {cpu.host_arch()}"):
        flashlift.load(with_cpu(host_module, tmp_path, lambda c: c.update(arch=other)))


def test_the_first_call_of_an_unloadable_module_is_refused_too(host_module, qkv):
    """A CompiledModel built from bytes (not through load) is checked before IREE runs it."""
    model = flashlift.load(host_module)
    meta = dict(model.meta, cpu=dict(model.meta["cpu"], arch="riscv64" if X86 else "x86_64"))
    with pytest.raises(TargetError, match="compiled for"):
        flashlift.CompiledModel(model.vmfb, meta)(*qkv)


def test_cpu_target_specs():
    assert parse_target("cpu:host").name == "cpu"
    v3 = parse_target("cpu:x86-64-v3")
    assert "--iree-llvmcpu-target-cpu=x86-64-v3" in v3.flags and v3.kind == "cpu"
    assert any(f.startswith("--iree-llvmcpu-target-triple=x86_64") for f in v3.flags)
    spr = parse_target("cpu:sapphirerapids")  # an Intel CPU by LLVM's name: built for it on any machine
    assert spr.name == "cpu:sapphirerapids" and spr.arch == "sapphirerapids" and spr.driver == "local-task"
    assert "--iree-llvmcpu-target-cpu=sapphirerapids" in spr.flags
    assert any(f.startswith("--iree-llvmcpu-target-triple=x86_64") for f in spr.flags)
    assert spr.runs_here == X86 and "flashlift.load checks" in spr.notes
    with pytest.raises(InputError, match=r"unknown CPU level 'pentium' in target 'cpu:pentium'; known: host, generic"):
        parse_target("cpu:pentium")


def test_features_are_read_as_llvm_enables_them():
    module = (b'junk #hal.executable.target<"llvm-cpu", "embedded-elf-x86_64", {cpu = "x", '
              b'cpu_features = "+avx,+avx2,+avx512f,-avx512f,+fma", target_triple = "x86_64-unknown"}> junk')
    assert cpu.compiled_for(module) == {"arch": "x86_64", "name": "x", "features": ["avx", "avx2", "fma"]}
    assert cpu.compiled_for(b"no executables") is None


@pytest.mark.parametrize("spec", ["cpu", "cpu:x86-64-v3", "cpu:sapphirerapids"])
def test_cpu_modules_compile_with_data_tiling(spec):
    """Every CPU target compiles with IREE's data tiling (off by default in IREE 3.13: bf16
    linear layers 3.7x slower without it on a Zen 4, bench/results/seed-cpu.md); CUDA not."""
    from flashlift.compiler.driver import compile_flags, without_data_tiling

    assert "--iree-opt-data-tiling=true" in compile_flags(parse_target(spec))
    assert not any("data-tiling" in f for f in compile_flags(parse_target("cuda:sm_90")))
    with without_data_tiling():   # (bench/seed.py's variant without it)
        assert not any("data-tiling" in f for f in compile_flags(parse_target(spec)))
    assert "--iree-opt-data-tiling=true" in compile_flags(parse_target(spec))


def test_a_module_data_tiling_fails_on_compiles_without_it(monkeypatch):
    """iree-compile failing with data tiling (IREE 3.13 does on a boolean masked_fill) is run
    again without it: the module compiles, computes the model, and the report says so."""
    from flashlift.compiler import driver

    real, seen = driver._iree_compile, []

    def failing_with_data_tiling(text, target, args):
        seen.append(driver.DATA_TILING_FLAG in args)
        if driver.DATA_TILING_FLAG in args:
            raise driver.CompileError("iree-compile failed for target cpu:\nm.mlir:1:0: error: 'linalg.pack' op failed")
        return real(text, target, args)

    monkeypatch.setattr(driver, "_iree_compile", failing_with_data_tiling)
    q, k, v = (torch.randn(1, 2, 16, 32) for _ in range(3))
    compiled = flashlift.compile_model(PlainAttention(), (q, k, v))
    assert seen == [True, False]
    assert any("data tiling failed" in n and "'linalg.pack' op failed" in n for n in compiled.report.notes)
    assert torch.allclose(compiled(q, k, v), PlainAttention()(q, k, v), atol=1e-5)
