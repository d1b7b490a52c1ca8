"""The tuning database, forced lowering knobs and attn-tune (CPU end to end, GPU ingest)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import flashlift
from flashlift.compiler import lowering, tuning
from flashlift.compiler.targets import parse_target
from flashlift.tools import attn_tune

CPU, CUDA = parse_target("cpu"), parse_target("cuda")


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = str(tmp_path / "tuning_db.json")
    monkeypatch.setenv("FLASHLIFT_TUNING_DB", path)
    return path


def cpu_tiles(attrs):
    info = attrs["compilation_info"]
    return tuning._list(info, "vector_common_parallel"), tuning._list(info, "vector_reduction")


def test_packaged_database_is_valid():
    db = tuning.load(tuning.DB_PATH)
    for key, entry in db["entries"].items():
        if key.startswith("gemm:"):  # the GEMM kernel's tile for one shape (bench/gemm.py --record-from)
            arch, dtype, m, n, k, *epilogue = key[len("gemm:sm_"):].split("/")
            assert epilogue in ([], ["gelu"], ["swiglu"]), key
            assert tuning.lookup_gemm(int(m[1:]), int(n[1:]), int(k[1:]), dtype, int(arch), epilogue="".join(epilogue)) \
                == entry["knobs"], key
            assert all(field in entry["provenance"] for field in ("device", "date", "us", "rel_err")), key
            continue
        assert key.count("/") in (6, 7), key
        assert entry["knobs"] and set(entry["knobs"]) <= set(tuning.CPU_KNOBS + tuning.GPU_KNOBS + tuning.CPU_KERNEL_KNOBS)
        if key.startswith("cpu-kernel:"):  # a build of flashlift's CPU kernel, for a family of CPUs
            from flashlift.compiler.kernels import cpu_build
            assert key.split("/")[0][len("cpu-kernel:"):] in cpu_build.ISA_FLAGS, key
            assert entry["knobs"]["isa"] in cpu_build.ISA_FLAGS, key
        for field in ("device", "date", "ms", "rel_err"):
            assert field in entry["provenance"], (key, field)


def test_database_entry_takes_precedence_over_the_heuristic(db):
    shape = tuning.bhsd_shape(1, 8, 512, 64, "f32", False)
    assert cpu_tiles(lowering.configs_for(shape, CPU)) == ([1, 8, 64, 0, 0], [0, 0, 0, 0, 8])  # heuristic
    key = tuning.shape_key(shape, tuning.target_key(CPU))
    tuning.record(key, {"m_vec": 4, "k2_vec": 16}, {"device": "test", "ms": 1.0, "rel_err": 1e-7})
    assert tuning.lookup(shape, CPU) == {"m_vec": 4, "k2_vec": 16}
    assert cpu_tiles(lowering.configs_for(shape, CPU)) == ([1, 4, 64, 0, 0], [0, 0, 0, 0, 16])
    # Same class (m, k2 in 257..512): the entry applies; another class: the heuristic.
    assert cpu_tiles(lowering.configs_for(tuning.bhsd_shape(2, 4, 300, 64, "f32", False), CPU))[0] == [1, 4, 64, 0, 0]
    assert cpu_tiles(lowering.configs_for(tuning.bhsd_shape(1, 8, 512, 64, "f16", False), CPU))[0] == [1, 8, 64, 0, 0]
    assert cpu_tiles(lowering.configs_for(tuning.bhsd_shape(1, 8, 512, 64, "f32", True), CPU))[0] == [1, 8, 64, 0, 0]
    # Forced knobs beat the database; use_db=False is the bare heuristic.
    with lowering.override({"m_vec": 2, "k2_vec": 32}):
        assert cpu_tiles(lowering.configs_for(shape, CPU)) == ([1, 2, 64, 0, 0], [0, 0, 0, 0, 32])
    with lowering.override(use_db=False):
        assert cpu_tiles(lowering.configs_for(shape, CPU))[0] == [1, 8, 64, 0, 0]
    assert lowering.configs_for(shape, CPU, {"iree_default": True}) == {}
    # A pre-transposed K is another class (its best tiles differ).
    assert tuning.shape_key(dict(shape, k_transposed=True), "cpu:x") == "cpu:x/f32/d64/m512/k512/mask-none/b1/kT"
    assert tuning.lookup(dict(shape, k_transposed=True), CPU) is None
    with pytest.raises(flashlift.InputError, match="m_tile"):
        lowering.configs_for(shape, CPU, {"m_tile": 64})


def test_database_disabled_or_unusable_entry_falls_back(db, monkeypatch):
    shape = tuning.bhsd_shape(4, 16, 1024, 64, "f16", False)
    heuristic = tuning.knobs_from_attrs(lowering.configs_for(shape, CUDA))
    assert heuristic == {"m_tile": 128, "k2_tile": 32, "num_subgroups": 4}
    key = tuning.shape_key(shape, tuning.target_key(CUDA))
    assert key == "cuda:sm_80/f16/d64/m1024/k1024/mask-none/b1"
    tuning.record(key, {"m_tile": 64, "k2_tile": 64, "num_subgroups": 2}, {"device": "H200", "ms": 0.1, "rel_err": 1e-4})
    assert tuning.knobs_from_attrs(lowering.configs_for(shape, CUDA)) == {"m_tile": 64, "k2_tile": 64, "num_subgroups": 2}
    # m = 528 is in the same bucket, but 64 does not divide it: the heuristic, not IREE's default.
    odd = tuning.bhsd_shape(4, 16, 528, 64, "f16", False)
    tuning.record(tuning.shape_key(odd, "cuda:sm_80"), {"m_tile": 64, "k2_tile": 64}, {"device": "x", "ms": 1, "rel_err": 0})
    assert tuning.knobs_from_attrs(lowering.configs_for(odd, CUDA))["m_tile"] == 16
    monkeypatch.setenv("FLASHLIFT_TUNING_DB", "off")
    assert tuning.knobs_from_attrs(lowering.configs_for(shape, CUDA)) == heuristic


class Attention(torch.nn.Module):
    def forward(self, q, k, v):
        return torch.softmax(q @ k.transpose(-2, -1) * 0.25, dim=-1) @ v


def test_forced_config_compiles_and_is_correct():
    from flashlift.compiler import driver
    from flashlift.runtime import CompiledModel

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 40, 16) for _ in range(3))
    text = flashlift.import_model(Attention(), (q, k, v))
    with lowering.override({"m_vec": 4, "k2_vec": 16, "m_dist": 16}) as seen:
        lowered = driver.lower(text, CPU, use_kernels=False)  # the configs are IREE codegen's
    (op,) = seen
    assert (op["shape"]["batch"], op["shape"]["m"], op["shape"]["k2"]) == ([2], 40, 40) and op["attrs"]
    assert "vector_common_parallel = [1, 4, 16, 0, 0]" in lowered.text
    assert "vector_reduction = [0, 0, 0, 0, 16]" in lowered.text
    assert "distribution = [1, 16, 16, 0, 0]" in lowered.text
    model = CompiledModel(driver.iree_compile(lowered.text, CPU), {"function": "main", "inputs": lowered.signature["inputs"],
                                                                   "outputs": lowered.signature["outputs"]})
    ref = Attention()(q, k, v)
    assert ((model(q, k, v) - ref).norm() / ref.norm()).item() < 1e-5


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """One attn-tune CPU run: the heuristic and two more candidates."""
    tmp = tmp_path_factory.mktemp("tune")
    db, results, out = str(tmp / "db.json"), str(tmp / "results.json"), str(tmp / "modules")
    code = attn_tune.main(["--target", "cpu", "--shape", "1,2,32,64", "--dtype", "f32", "--candidates", "3",
                           "--knobs", "m_vec=8,k2_vec=8", "--knobs", "m_vec=16,k2_vec=32",
                           "--rounds", "2", "--reps", "2", "--db", db, "--results", results, "--out", out])
    assert code == 0
    with open(results) as f:
        return db, json.load(f), out


def test_attn_tune_cpu_end_to_end(cpu_run):
    db, results, _ = cpu_run
    (case,) = results["cases"]
    # K is pre-transposed on the CPU (compiler/layout.py): the heuristic is 4 x 32 there, and
    # the large-vector check is off, so all three candidates compile.
    kept = [r["knobs"]["m_vec"] for r in case["results"]]
    assert kept[0] == 4 and 16 in kept, case
    assert case["results"][0]["heuristic"] and all(r["rel_err"] < 1e-4 and r["ms"] > 0 for r in case["results"])
    # every candidate is either measured or dropped with the stage and the reason
    assert len(case["results"]) + len(case["dropped"]) >= 2
    assert all(d["stage"] in ("compile", "numerics") and d["reason"] for d in case["dropped"]), case["dropped"]
    entries = tuning.load(db)["entries"]
    assert list(entries) == [f"{tuning.target_key(CPU)}/f32/d64/m32/k32/mask-none/b1/kT"]
    (entry,) = entries.values()
    assert entry["knobs"] == attn_tune.pick(case)["knobs"]
    assert entry["provenance"]["shape"] == [1, 2, 32, 64] and entry["provenance"]["rel_err"] < 1e-4
    assert entry["provenance"]["timing"]["driver"] == "local-sync"


def test_run_gpu_runner_needs_no_compiler(cpu_run, tmp_path):
    """The runner half (run-gpu) imports only torch, the IREE runtime and flashlift's runtime."""
    _, _, folder = cpu_run
    out = tmp_path / "results.json"
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.startswith(("iree.compiler", "torch_mlir", "flashlift.compiler")):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from flashlift.tools import attn_tune
        sys.exit(attn_tune.main(["run-gpu", {folder!r}, "--out", {str(out)!r}, "--rounds", "1", "--reps", "1"]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert results["format"] == "attn-tune-results" and len(results["cases"][0]["results"]) >= 2


def gpu_results(heuristic_ms=1.0):
    def res(i, knobs, ms, err, heuristic=False):
        m, k, sg = knobs
        return {"id": f"c{i}", "knobs": {"m_tile": m, "k2_tile": k, "num_subgroups": sg}, "heuristic": heuristic,
                "ms": ms, "rel_err": err}
    return {
        "format": "attn-tune-results", "version": 1, "target": "cuda:sm_80", "target_key": "cuda:sm_80",
        "device": "NVIDIA H200", "date": "2026-11-22 10:00 UTC", "commit": "abc1234",
        "timing": {"rounds": 5, "reps": 10},
        "cases": [{"name": "4x16x4096x64_f16_causal", "b": 4, "h": 16, "s": 4096, "d": 64, "dtype": "f16",
                   "causal": True, "db_key": "cuda:sm_80/f16/d64/m4096/k4096/mask-shared/b1", "tolerance": 2e-3,
                   "dropped": [{"knobs": {"m_tile": 256}, "stage": "compile", "reason": "x"}],
                   "results": [res(0, (128, 32, 4), heuristic_ms, 4e-4, True), res(1, (64, 32, 4), 0.8, 4e-4),
                               res(2, (128, 64, 4), 0.5, 0.3)]}],
    }


def test_ingest_gpu_results(db, tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(gpu_results()))
    assert attn_tune.main(["ingest", str(path)]) == 0
    (key, entry), = tuning.load()["entries"].items()
    assert key == "cuda:sm_80/f16/d64/m4096/k4096/mask-shared/b1"
    # The 0.5 ms candidate has wrong numerics: the 0.8 ms one wins.
    assert entry["knobs"] == {"m_tile": 64, "k2_tile": 32, "num_subgroups": 4}
    prov = entry["provenance"]
    assert (prov["device"], prov["date"], prov["ms"], prov["heuristic_ms"], prov["winner"]) == \
        ("NVIDIA H200", "2026-11-22", 0.8, 1.0, "tuned")
    shape = tuning.bhsd_shape(4, 16, 4096, 64, "f16", True)
    assert tuning.knobs_from_attrs(lowering.configs_for(shape, CUDA))["m_tile"] == 64
    assert tuning.knobs_from_attrs(lowering.configs_for(shape, parse_target("cuda:sm_86")))["m_tile"] == 128
    # Within --min-gain of the winner the heuristic is kept.
    path.write_text(json.dumps(gpu_results(heuristic_ms=0.81)))
    assert attn_tune.main(["ingest", str(path)]) == 0
    assert tuning.load()["entries"][key]["knobs"]["m_tile"] == 128
    assert "m_tile=128" in capsys.readouterr().out


def test_attn_tune_cpu_kernel_builds(tmp_path):
    """attn-tune --cpu-kernel: one candidate per build of flashlift's CPU kernel this CPU runs
    (the default first), measured and checked; the winner goes under the CPU family's key."""
    from flashlift.compiler import cpu_dispatch

    isas = cpu_dispatch.target_isas(CPU)
    if not isas:
        pytest.skip(cpu_dispatch.unavailable(CPU))
    db, results = str(tmp_path / "db.json"), str(tmp_path / "results.json")
    assert attn_tune.main(["--cpu-kernel", "--shape", "1,2,40,32", "--dtype", "bf16", "--rounds", "1", "--reps", "1",
                           "--db", db, "--results", results]) == 0
    with open(results) as f:
        (case,) = json.load(f)["cases"]
    assert [r["knobs"]["isa"] for r in case["results"]] == isas, case  # bf16: every build
    assert case["results"][0]["heuristic"] and all(r["rel_err"] < 1e-2 for r in case["results"])
    key = f"cpu-kernel:{isas[0]}/bf16/d32/m64/k64/mask-none/b1"
    assert case["db_key"] == key and list(tuning.load(db)["entries"]) == [key]
    assert tuning.lookup_kernel(tuning.bhsd_shape(1, 2, 40, 32, "bf16", False), isas[0], db) == attn_tune.pick(case)["knobs"]["isa"]


@pytest.mark.parametrize("text", ['{"version": 1, "ent', '{"version": 1, "entries": []}', '[1, 2]', '\xff\xfe'],
                         ids=["truncated", "entries_not_an_object", "not_an_object", "not_utf8"])
def test_unusable_database_is_a_clear_error(tmp_path, monkeypatch, text):
    """A database file flashlift cannot use (FLASHLIFT_TUNING_DB names it) is an InputError naming
    the file and the way to ignore it, not a JSON traceback from inside the compile."""
    path = tmp_path / "db.json"
    path.write_bytes(text.encode("latin-1"))
    monkeypatch.setenv("FLASHLIFT_TUNING_DB", str(path))
    with pytest.raises(flashlift.InputError, match=r"tuning database .*db\.json.*FLASHLIFT_TUNING_DB=off"):
        tuning.load()
