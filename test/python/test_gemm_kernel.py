"""flashlift's GEMM kernel for linear layers on CUDA targets: build, coverage, report, numerics.

The IR rewrite itself is checked by test/lit/dispatch-gemms.mlir (FileCheck, positive cases
and near misses); here: the kernel's semantics (Triton interpreter, no GPU), the builds for
sm_80 and sm_90, which layers of real models take it, and numerics on a CUDA device (skipped
without one).
"""

import contextlib
import dataclasses
import itertools
import os
import re
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")

import flashlift  # noqa: E402
from flashlift.compiler import kernel_build  # noqa: E402
from flashlift.compiler.kernel_build import PTX_VERSION  # noqa: E402
from flashlift.compiler.kernels import triton_fa, triton_gemm  # noqa: E402
from flashlift.compiler.targets import parse_target  # noqa: E402
from conftest import ROOT, rel_err, tuned_in  # noqa: E402
import hf_models  # noqa: E402
from hf_models import build_bert, build_llama  # noqa: E402
from test_kernels import _gpu_target, lowered  # noqa: E402

ENTRY = b"_gemm_kernel"


class MLP(torch.nn.Module):
    """Two nn.Linear layers (one without bias) around a GELU, as a transformer's FFN."""

    def __init__(self, d=64, hidden=96):
        super().__init__()
        self.up, self.down = torch.nn.Linear(d, hidden), torch.nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.down(torch.nn.functional.gelu(self.up(x)))


class SwiGLU(torch.nn.Module):
    """LLaMA's MLP: down(silu(gate(x)) * up(x)), no biases."""

    def __init__(self, d=64, hidden=96):
        super().__init__()
        self.gate_proj, self.up_proj = torch.nn.Linear(d, hidden, bias=False), torch.nn.Linear(d, hidden, bias=False)
        self.down_proj = torch.nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.down_proj(torch.nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class MatmulWeight(torch.nn.Module):
    """`x @ w` with w a [K, N] input: the kernel reads it without a transpose."""

    def forward(self, x, w):
        return x @ w


def test_gemm_kernel_semantics_in_triton_interpreter():
    """interp_check.py gemm: ragged M/N/K, bias f32/f16/none, W as [N, K] and [K, N], f16/f32 out,
    the GELU, SwiGLU and residual epilogues."""
    script = os.path.join(ROOT, "tools", "kernels", "interp_check.py")  # a developer tool, not in the package
    r = subprocess.run([sys.executable, script, "gemm"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert r.stdout.count(" ok") == 21 and r.stdout.count("GEMM TMA") == 8 and "FAIL" not in r.stdout


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("bias", [None, "f16"])
def test_build_gemm(arch, bias):
    spec = triton_gemm.GemmSpec(4096, 768, 768, "f16", "f16", bias, True)
    kb = triton_gemm.build_gemm(spec, arch, ptx_version=84)
    names = ["a", "w"] + (["bias"] if bias else []) + ["c", "global_scratch", "profile_scratch"]
    assert [p.name for p in kb.params] == names
    assert kb.ptx_target == ("sm_90a" if arch == 90 else "sm_80") and kb.cubin and ENTRY in kb.cubin
    assert kb.grid == (32 * 6, 1, 1) and kb.block == (256, 1, 1)  # 128x128 tiles, 8 warps
    assert ("wgmma.mma_async" in kb.ptx) == (arch == 90)
    assert kb.n_spills == 0


def test_build_gemm_tma():
    """The Hopper TMA kernel: the same parameters, a persistent grid (one program per SM at
    most), TMA loads, its tensor maps in global scratch; sm_90 and 16-byte rows only."""
    spec = triton_gemm.GemmSpec(4096, 2816, 1024, "f16", "f16", None, True, swiglu=True)
    kb = triton_gemm.build_gemm(spec, 90, triton_gemm.TMA_CANDIDATES[0], ptx_version=84)
    assert [p.name for p in kb.params] == ["a", "w", "gate", "c", "global_scratch", "profile_scratch"]
    assert kb.name == "_gemm_tma_kernel" and kb.grid == (132, 1, 1)  # 32 x 22 tiles over 132 programs
    assert "cp.async.bulk.tensor" in kb.ptx and "wgmma.mma_async" in kb.ptx
    assert kb.scratch_per_cta >= 4 * 128 and kb.scratch_bytes == 132 * kb.scratch_per_cta  # a, w, gate, c maps
    assert kb.n_spills == 0
    small = triton_gemm.GemmSpec(64, 128, 64)
    assert triton_gemm.grid(small, triton_gemm.TMA_CANDIDATES[0]) == (1, 1, 1)
    with pytest.raises(ValueError, match="sm_90 only"):
        triton_gemm.build_gemm(spec, 80, triton_gemm.TMA_CANDIDATES[0])
    with pytest.raises(ValueError, match="multiples of 16 bytes"):
        triton_gemm.build_gemm(triton_gemm.GemmSpec(64, 64, 33), 90, triton_gemm.TMA_CANDIDATES[0])


@contextlib.contextmanager
def gemm_configs(case: str):
    """For a case named `*_tma`: the tuned table picks the TMA kernel for the shapes it takes,
    and the in-process kernel cache starts empty; `*_gluon`: every GEMM gluon_gemm covers takes
    its kernel (force_config): GLUON_CANDIDATES[1], or [i] for `*_gluon<i>`; any other case: as tuned."""
    gluon = re.fullmatch(r".*_gluon(\d*)", case)   # (not attention's `attn_gluon_*` / `mask_gluon_*`)
    if gluon:   # `_gluon`: GLUON_CANDIDATES[1]; `_gluon<i>`: GLUON_CANDIDATES[i]
        with triton_gemm.force_config(triton_gemm.GLUON_CANDIDATES[int(gluon.group(1) or 1)]):
            yield
    elif case.endswith("_tma"):
        with tuned_in(triton_gemm.TUNED_CONFIGS, kernel_build._GEMM_CACHE, {
                (90, "large"): triton_gemm.TMA_CANDIDATES[0],
                (90, "small"): next(c for c in triton_gemm.TMA_CANDIDATES if c["BLOCK_M"] == 64)}):
            yield
    else:
        yield


@pytest.mark.parametrize("build", [
    lambda: triton_gemm.build_gemm(triton_gemm.GemmSpec(256, 512, 256), 90, triton_gemm.TMA_CANDIDATES[0],
                                   ptx_version=PTX_VERSION),
    lambda: triton_fa.build_ptx(batch=1, heads=2, kv_heads=2, sq=256, skv=256, head_dim=64, arch=90,
                                config={"TMA": True}, ptx_version=PTX_VERSION),
    lambda: triton_fa.build_ptx(batch=1, heads=2, kv_heads=2, sq=256, skv=256, head_dim=64, arch=90,
                                config={"GLUON": True}, ptx_version=PTX_VERSION),
], ids=["tma_gemm", "tma_attention", "gluon_attention"])
def test_tensor_maps_keep_their_row_stride_in_bytes(build):
    """A kernel that builds TMA tensor maps on the device is compiled at Triton's own PTX
    version whatever kernel_build asks for: at `.version 8.4` Triton writes a map's row stride
    in 16-byte units, which the cubin reads as bytes (aot.tensor_map_options; through IREE on an
    H100 the TMA GEMM gave rel. error 1.0). Rows here are 256 or 64 f16: 512 or 128 bytes."""
    kb = build()
    assert kb.ptx_version != "8.4"
    strides = set(re.findall(r"mov.b64\s+%rd\d+, (\d+);\s*// begin inline asm\s*@%p\d+ tensormap.replace.tile.global_stride",
                             kb.ptx))
    assert strides and all(int(x) >= 128 and int(x) % 16 == 0 for x in strides), strides


def test_tma_kernel_in_a_compiled_model():
    """With the TMA kernel tuned in, every GEMM of LLaMA's MLP takes it (the SwiGLU epilogue
    too): one module global holds the tensor maps of all; a shape it cannot take (rows of 33
    elements) keeps the pointer kernel."""
    args = (torch.randn(2, 16, 64, dtype=torch.float16),)
    with gemm_configs("swiglu_tma"):
        assert triton_gemm.tuned_config(triton_gemm.GemmSpec(4096, 64, 33), 90).get("TMA") is None
        compiled = flashlift.compile_model(SwiGLU().half(), args, target="cuda:sm_90")
        text = lowered(SwiGLU().half(), args).text
    kernels = [(s.module_path, s.details["kernel"]["name"], s.details["kernel"]["epilogue"]) for s in compiled.report.linears]
    assert kernels == [("gate_proj", "_gemm_tma_kernel", "to f16"), ("up_proj", "_gemm_tma_kernel", "to f16, silu(gate) *"),
                       ("down_proj", "_gemm_tma_kernel", "to f16")]
    assert compiled.vmfb.count(b"_gemm_tma_kernel") >= 1
    assert text.count("util.global private mutable @flashlift_gemm_scratch") == 1
    assert text.count("util.global.load @flashlift_gemm_scratch") == 3  # each dispatch binds it


def test_tile_config_per_shape_from_the_tuning_database(tmp_path, monkeypatch):
    """A shape's entry (bench/gemm.py --record-from) comes before the class table, for M in its
    bucket and exactly its N and K; an entry without valid tile knobs is ignored; a tuned tile
    that does not build with this GEMM's epilogue gives way to the class's."""
    from flashlift.compiler import tuning

    monkeypatch.setenv("FLASHLIFT_TUNING_DB", str(tmp_path / "db.json"))
    spec = triton_gemm.GemmSpec(4096, 2816, 1024, "f16", "f16", None, True)
    by_class = triton_gemm.TUNED_CONFIGS[(90, "large")]
    assert triton_gemm.tuned_configs(spec, 90) == [by_class]
    wide = triton_gemm.TMA_CANDIDATES[2]  # 128 x 256 tiles, TMA, flattened
    tuning.record(tuning.gemm_key(4096, 2816, 1024, "f16", 90), wide, {"device": "test"})
    assert triton_gemm.tuned_configs(spec, 90) == [wide, by_class]
    assert triton_gemm.tuned_config(triton_gemm.GemmSpec(3000, 2816, 1024), 90) == wide  # M 2049..4096
    assert triton_gemm.tuned_config(triton_gemm.GemmSpec(4096, 2816, 1024, "bf16"), 90) == by_class
    assert triton_gemm.tuned_config(triton_gemm.GemmSpec(4096, 2816, 1024), 80) == triton_gemm.TUNED_CONFIGS[(80, "large")]
    # with the SwiGLU gate's tile too, 128 x 256 needs 278 KB of shared memory: the class's tile
    swiglu = triton_gemm.build_gemm(dataclasses.replace(spec, swiglu=True), 90, ptx_version=84)
    assert (swiglu.config["BLOCK_N"], swiglu.config.get("TMA", False)) == (by_class["BLOCK_N"], by_class.get("TMA", False))
    # an epilogue's own entry wins for the GEMM with that epilogue; the plain one stands for the rest
    narrow = triton_gemm.CANDIDATES[1]
    tuning.record(tuning.gemm_key(4096, 2816, 1024, "f16", 90, "swiglu"), narrow, {"device": "test"})
    assert triton_gemm.tuned_configs(dataclasses.replace(spec, swiglu=True), 90)[0] == narrow
    assert triton_gemm.tuned_configs(dataclasses.replace(spec, gelu=True), 90)[0] == wide
    assert triton_gemm.tuned_configs(spec, 90)[0] == wide
    tuning.record(tuning.gemm_key(4096, 2816, 1024, "f16", 90), dict(wide, BLOCK_M="128"), {"device": "test"})
    assert triton_gemm.tuned_configs(spec, 90) == [by_class]


def test_a_config_given_picks_its_own_kernel(tmp_path, monkeypatch):
    """A config passed to build_gemm / compile_gemm (bench/gemm.py's candidates) builds the
    kernel it names, whatever the shape's tuned one: the tuned config's GLUON / PINGPONG once
    leaked into a pointer config given for a Gluon-tuned shape, so bench/gemm.py timed Gluon
    under the pointer kernel's name."""
    from flashlift.compiler import tuning

    monkeypatch.setenv("FLASHLIFT_TUNING_DB", str(tmp_path / "db.json"))
    spec = triton_gemm.GemmSpec(4096, 3072, 768, bias_dtype="f16", gelu=True)
    tuning.record(tuning.gemm_key(4096, 3072, 768, "f16", 90, "gelu"), triton_gemm.GLUON_CANDIDATES[7], {"device": "test"})
    assert triton_gemm.build_gemm(spec, 90).name == "_gemm_gluon_kernel"
    assert triton_gemm.build_gemm(spec, 90, triton_gemm.CANDIDATES[0]).name == "_gemm_kernel"
    shared = triton_gemm.build_gemm(spec, 90, triton_gemm.GLUON_CANDIDATES[1])
    assert "%turns" not in triton_gemm.compile_gemm(spec, 90, triton_gemm.GLUON_CANDIDATES[1])[0].asm["ttgir"]
    assert shared.n_spills == 0


def test_three_consumers_only_where_they_apply(tmp_path, monkeypatch):
    """CONSUMERS=3 (three warpgroups sharing 192-row tiles) is a shared-tile schedule; each
    consumer sharing a tile takes 64 or 128 rows (Triton's tensor maps: powers of two), a
    config otherwise is refused by name; a config given for a shape tuned to three
    consumers builds its own two (the tuned CONSUMERS does not leak into it)."""
    from flashlift.compiler import tuning
    from flashlift.compiler.kernels import gluon_gemm

    for bad in (dict(triton_gemm.GLUON_CANDIDATES[5], CONSUMERS=3), dict(triton_gemm.GLUON_CANDIDATES[1], CONSUMERS=3),
                dict(triton_gemm.GLUON_CANDIDATES[8], CONSUMERS=4), dict(triton_gemm.GLUON_CANDIDATES[8], CONSUMERS=2)):
        with pytest.raises(ValueError, match="consumers with BLOCK_M"):
            gluon_gemm.consumers(bad)
    monkeypatch.setenv("FLASHLIFT_TUNING_DB", str(tmp_path / "db.json"))
    spec = triton_gemm.GemmSpec(4096, 768, 768, bias_dtype="f16")
    tuning.record(tuning.gemm_key(4096, 768, 768, "f16", 90), triton_gemm.GLUON_CANDIDATES[8], {"device": "test"})
    assert triton_gemm.build_gemm(spec, 90).block == (512, 1, 1)   # (the tuned three consumers)
    assert triton_gemm.build_gemm(spec, 90, triton_gemm.GLUON_CANDIDATES[1]).block == (384, 1, 1)


def test_bench_records_each_shapes_fastest_correct_config(tmp_path):
    """bench/gemm.py --record-from: per shape the fastest config whose result was right; a row
    with an epilogue (the SwiGLU row) under the epilogue's own key."""
    import json

    from flashlift.compiler import tuning

    slow, fast, wrong = (dict(triton_gemm.CANDIDATES[0]), dict(triton_gemm.TMA_CANDIDATES[0]),
                         dict(triton_gemm.CANDIDATES[1]))
    row = dict(model="llama", layer="gate/up", m=4096, n=2816, k=1024, cublas_ms=0.036, epilogue="")
    runs = [dict(row, config=slow, ms=0.044, err=2e-4), dict(row, config=fast, ms=0.040, err=2e-4),
            dict(row, config=wrong, ms=0.010, err=float("nan")),
            dict(row, layer="up + SwiGLU epilogue", epilogue="swiglu", config=slow, ms=0.050, err=2e-4),
            dict(row, layer="up + SwiGLU epilogue", epilogue="swiglu", config=fast, ms=0.060, err=2e-4)]
    run = tmp_path / "gemm-h200.json"
    run.write_text(json.dumps({"device": "NVIDIA H200", "dtype": "f16", "arch": 90, "date": "2026-12-07", "runs": runs}))
    db = tmp_path / "db.json"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gemm.py"), "--record-from", str(run)],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "FLASHLIFT_TUNING_DB": str(db)})
    assert r.returncode == 0, r.stderr[-2000:]
    entries = json.loads(db.read_text())["entries"]
    plain, swiglu = tuning.gemm_key(4096, 2816, 1024, "f16", 90), tuning.gemm_key(4096, 2816, 1024, "f16", 90, "swiglu")
    assert sorted(entries) == [plain, swiglu]
    entry = entries[plain]
    assert entry["knobs"] == fast and entry["provenance"]["us"] == 40.0 and entry["provenance"]["device"] == "NVIDIA H200"
    assert entries[swiglu]["knobs"] == slow and entries[swiglu]["provenance"]["us"] == 50.0


def test_spec_is_checked():
    with pytest.raises(ValueError, match="input type f32"):
        triton_gemm.GemmSpec(8, 8, 8, "f32").check()
    assert triton_gemm.shape_class(triton_gemm.GemmSpec(4096, 256, 1024)) == "small"
    assert triton_gemm.shape_class(triton_gemm.GemmSpec(4096, 768, 768)) == "large"


def test_compiled_model_dispatches_linear_layers():
    torch.manual_seed(0)
    compiled = flashlift.compile_model(MLP().half(), (torch.randn(2, 16, 64, dtype=torch.float16),),
                                       target="cuda:sm_90")
    assert compiled.vmfb.count(ENTRY) >= 2
    paths = [(s.module_path, s.path, s.details["shape"]) for s in compiled.report.linears]
    assert paths == [("up", "triton-gemm sm_90", "32x96x64"), ("down", "triton-gemm sm_90", "32x64x96")]
    epilogues = [s.details["kernel"]["epilogue"] for s in compiled.report.linears]
    assert epilogues == ["bias, to f16, gelu", "to f16"]  # the GELU between them runs in the first kernel
    assert "2 of 2 matmuls take flashlift's GEMM kernel [triton-gemm sm_90]" in str(compiled.report)
    # the report survives save/load
    assert flashlift.CompiledModel(compiled.vmfb, compiled.meta).report.linears[1].path == "triton-gemm sm_90"


def test_swiglu_runs_in_the_up_projections_epilogue():
    """silu(gate(x)) * up(x): the up projection's kernel reads the gate's result and multiplies in
    its epilogue; no elementwise pass over the two results is left (the IR has no math.exp)."""
    args = (torch.randn(2, 16, 64, dtype=torch.float16),)
    compiled = flashlift.compile_model(SwiGLU().half(), args, target="cuda:sm_90")
    epilogues = [(s.module_path, s.details["kernel"]["epilogue"]) for s in compiled.report.linears]
    assert epilogues == [("gate_proj", "to f16"), ("up_proj", "to f16, silu(gate) *"), ("down_proj", "to f16")]
    assert "math.exp" not in lowered(SwiGLU().half(), args).text
    silu_then_add = lowered(SwiGLU().half(), args, use_kernels=False).text
    assert "math.exp" in silu_then_add  # use_kernels=False: IREE's own ops


def test_residual_adds_run_in_the_projections_epilogue():
    """A LLaMA decoder (pre-norm: each residual sum is read by the next norm and the next
    residual add, so the norm kernel cannot take it): o_proj's and down_proj's sums run in
    their GEMMs' epilogues, but the last down_proj's, which the final norm takes with its
    input; gemm_dispatch.without_residual_epilogue leaves every add to IREE."""
    from flashlift.compiler import gemm_dispatch

    model, args, kwargs, _ = hf_models.DEFAULT_BUILDERS["llama"]("f16", True)
    epilogues = lambda report: [(s.module_path.rsplit(".", 1)[-1], s.details["kernel"]["epilogue"])  # noqa: E731
                                for s in report.linears if s.module_path.endswith(("o_proj", "down_proj"))]
    report = flashlift.compile_model(model, args, kwargs=kwargs, target="cuda:sm_90").report
    assert epilogues(report) == [("o_proj", "to f16, + residual"), ("down_proj", "to f16, + residual"),
                                 ("o_proj", "to f16, + residual"), ("down_proj", "to f16")], str(report)
    with gemm_dispatch.without_residual_epilogue():
        report = flashlift.compile_model(model, args, kwargs=kwargs, target="cuda:sm_90").report
    assert all(e == "to f16" for _, e in epilogues(report)), epilogues(report)


def test_uncovered_matmuls_are_reported_with_the_reason():
    compiled = flashlift.compile_model(MLP(), (torch.randn(2, 16, 64),), target="cuda:sm_90")  # f32
    assert [s.path for s in compiled.report.linears] == ["iree-codegen", "iree-codegen"]
    assert "element type f32" in compiled.report.linears[0].path_reason
    assert "0 of 2 matmuls" in str(compiled.report) and "up (" in str(compiled.report)


def test_other_targets_and_use_kernels_false_keep_iree_codegen():
    args = (torch.randn(2, 16, 64, dtype=torch.float16),)
    assert lowered(MLP().half(), args, target="cpu").of("dispatch-gemms") == []
    assert lowered(MLP().half(), args, use_kernels=False).of("dispatch-gemms") == []
    assert "linalg.matmul" in lowered(MLP().half(), args, use_kernels=False).text
    assert str(flashlift.compile_model(MLP().half(), args).report).count("matmul") == 0


@pytest.mark.parametrize("build", [build_bert, build_llama], ids=["bert", "llama"])
def test_every_projection_of_a_transformer_takes_the_kernel(build):
    model, args, _ = build("f16")
    low = lowered(model, args)
    covered = [r for r in low.of("dispatch-gemms") if r.outcome == "triton-gemm sm_90"]
    assert low.of("dispatch-gemms") and len(covered) == len(low.of("dispatch-gemms")), [r.reason for r in low.of("dispatch-gemms") if r not in covered]
    assert "linalg.matmul" not in low.text


# --- numerics on a CUDA device (skipped without one) ---------------------------------------------


GPU_CASES = ["mlp_f16", "mlp_bf16", "swiglu_f16", "swiglu_bf16", "x_at_w_f16", "bert_f16", "llama_f16"]
GPU_CASES += [f"{c}_tma" for c in ("swiglu_f16", "swiglu_bf16", "x_at_w_f16", "bert_f16", "llama_f16")]  # gemm_configs
GPU_CASES += [f"{c}_gluon" for c in ("swiglu_f16", "swiglu_bf16", "x_at_w_f16", "bert_f16", "llama_f16")]
GPU_CASES += [f"{c}_gluon{i}" for c in ("swiglu_f16", "bert_f16", "llama_f16") for i in (0, 4)]  # 128x256, 256x128 tiles
# wider GEMMs (M 2304; up: 144-288 C tiles, more than the 132 SMs, so a persistent program takes
# several and the ring wraps across tiles; down: K 1024, more K steps than ring slots)
GPU_CASES += [f"{c}_wide_f16{s}" for c in ("mlp", "swiglu") for s in ("", "_gluon", "_gluon0")]
# the ping-pong consumers (GLUON_CANDIDATES[5:]: whole C tiles in turn; a wide case gives a program
# several tiles, so both consumers and the ring's hand-over between them run)
GPU_CASES += [f"{c}_gluon{i}" for c in ("swiglu_f16", "bert_f16", "llama_f16", "mlp_wide_f16", "swiglu_wide_f16")
              for i in (5, 7)]
# three consumers sharing 192-row tiles (GLUON_CANDIDATES[8]; ragged M in swiglu_f16)
GPU_CASES += [f"{c}_gluon8" for c in ("swiglu_f16", "bert_f16", "llama_f16", "mlp_wide_f16", "swiglu_wide_f16")]


def _tuned_sm90_configs() -> list:
    """The GEMM configs compiler/tuning_db.json holds for sm_90 (its knobs, one per entry)."""
    import json

    with open(os.path.join(ROOT, "compiler", "tuning_db.json")) as f:
        entries = json.load(f)["entries"]
    return [e["knobs"] for k, e in entries.items() if k.startswith("gemm:sm_90/")]


def _tuned_gluon_indexes() -> list:
    """The GLUON_CANDIDATES indexes of the Gluon configs the tuning database holds for sm_90
    (None for one that is no candidate: test_every_tuned_config_has_a_gpu_case fails on it)."""
    found = {tuple(sorted(knobs.items())) for knobs in _tuned_sm90_configs() if knobs.get("GLUON")}
    candidates = [tuple(sorted(c.items())) for c in triton_gemm.GLUON_CANDIDATES]
    return sorted({candidates.index(k) if k in candidates else None for k in found}, key=str)


# every Gluon config the tuning database can pick, in a small and a wide (ring wrapping) case
GPU_CASES += [case for i in _tuned_gluon_indexes() if i is not None
              for case in (f"bert_f16_gluon{i}", f"swiglu_wide_f16_gluon{i}") if case not in GPU_CASES]


def test_every_tuned_config_has_a_gpu_case():
    """The GPU numerics run every GEMM config the tuned tables can pick on sm_90: each Gluon
    config of the tuning database is a GLUON_CANDIDATES entry some `*_gluon<i>` case forces;
    every other one is the per-class table's, which the as-tuned cases reach (bert_f16's
    GEMMs are "small", mlp_wide_f16's "large")."""
    indexes = _tuned_gluon_indexes()
    assert None not in indexes, "a tuned Gluon config is no GLUON_CANDIDATES entry"
    assert all(f"bert_f16_gluon{i}" in GPU_CASES and f"swiglu_wide_f16_gluon{i}" in GPU_CASES for i in indexes)
    per_class = [triton_gemm.TUNED_CONFIGS[(90, c)] for c in ("small", "large")]
    assert all(knobs in per_class for knobs in _tuned_sm90_configs() if not knobs.get("GLUON"))
    assert triton_gemm.shape_class(triton_gemm.GemmSpec(3 * 70, 200, 96)) == "small"      # bert_f16-sized
    assert triton_gemm.shape_class(triton_gemm.GemmSpec(2304, 1024, 256)) == "large"      # mlp_wide_f16's up
    assert {"bert_f16", "mlp_wide_f16"} <= set(GPU_CASES)


def gpu_case(case: str):
    """(model, example args, tolerance vs the f32 model) of a GPU numerics case (also built by
    test/tools/gpu_numerics.py for the GPU machine, which has no IREE compiler)."""
    torch.manual_seed(0)
    case = case.removesuffix("_tma").partition("_gluon")[0]
    if case.startswith(("mlp", "swiglu")):
        dtype = torch.bfloat16 if case.endswith("bf16") else torch.float16
        d, hidden, x = (256, 1024, (1, 2304, 256)) if "_wide" in case else (96, 200, (3, 70, 96))
        module = (MLP if case.startswith("mlp") else SwiGLU)(d, hidden).to(dtype)
        return module, (torch.randn(*x, dtype=dtype),), (2e-2 if dtype == torch.bfloat16 else 5e-3)
    if case == "x_at_w_f16":
        return MatmulWeight(), (torch.randn(100, 48).half(), torch.randn(48, 130).half()), 5e-3
    model, args, _ = (build_bert if case == "bert_f16" else build_llama)("f16")
    return model, args, 5e-3


def fresh_inputs_and_reference(model, args):
    """New random float inputs like `args` (ints kept) and the f32 model's output on them."""
    import copy

    fresh = tuple(torch.randn_like(a, dtype=torch.float32).to(a.dtype) if a.is_floating_point() else a for a in args)
    with torch.no_grad():
        ref = copy.deepcopy(model).float()(*(a.float() if a.is_floating_point() else a for a in fresh))
    return fresh, (ref[0] if isinstance(ref, tuple) else ref)


@pytest.mark.parametrize("case", GPU_CASES)
def test_gpu_numerics(case):
    target = _gpu_target()
    model, args, tol = gpu_case(case)
    with gemm_configs(case):
        compiled = flashlift.compile_model(model, args, target=target)
    assert compiled.report.linears and all(s.path.startswith("triton-gemm") for s in compiled.report.linears)
    fresh, ref = fresh_inputs_and_reference(model, args)
    out = compiled(*fresh)
    assert rel_err(out[0] if isinstance(out, tuple) else out, ref) < tol


@pytest.mark.parametrize("spec", [
    triton_gemm.GemmSpec(4096, 1024, 1024),                                            # LLaMA's q/o
    triton_gemm.GemmSpec(4096, 3072, 768, bias_dtype="f16", gelu=True),                # BERT's up + GELU
    triton_gemm.GemmSpec(4096, 2816, 1024, swiglu=True),                               # LLaMA's up + SwiGLU
    triton_gemm.GemmSpec(300, 256, 1000, dtype="bf16", out_dtype="f32", w_nk=False),   # ragged M and K, W [K, N]
], ids=["plain", "bias_gelu", "swiglu", "ragged_kn"])
@pytest.mark.parametrize("schedule", ["shared_tile", "pingpong", "three_consumers"])
def test_gluon_gemm_builds_for_sm90(spec, schedule):
    """gluon_gemm's kernel compiles for sm_90a with every epilogue, its consumers sharing each
    C tile or taking whole tiles in turn (ping-pong): a loader warp plus two consumer
    warpgroups (384 threads) at 240 registers, or three sharing a 192-row tile at 160, a
    persistent grid, its tensor maps in per-CTA global scratch, the ABI of the other kernels.
    No spills, but for the ping-pong GELU epilogue (a 128 x 128 f32 tile per warpgroup, then
    erf per element: ~256 bytes)."""
    pingpong = schedule == "pingpong"
    if schedule == "three_consumers" and spec.out_dtype == "f32":
        pytest.skip("three 64 x 128 f32 staging tiles and four stages pass shared memory (as the tuner finds)")
    # (ping-pong with an f32 C: two 128 x 128 f32 staging tiles leave too little shared memory
    # for four stages; the 128 x 64 candidate builds)
    cfg = triton_gemm.GLUON_CANDIDATES[{"shared_tile": 1, "three_consumers": 8}.get(schedule)
                                       or (7 if spec.out_dtype == "f32" else 5)]
    kb = triton_gemm.build_gemm(spec, 90, cfg)
    assert kb.ptx_target == "sm_90a" and kb.block == ((512, 1, 1) if schedule == "three_consumers" else (384, 1, 1))
    assert kb.n_spills == 0 or (pingpong and spec.gelu and kb.n_spills <= 512), kb.n_spills
    regs = 160 if schedule == "three_consumers" else 240
    assert f"setmaxnreg.inc.sync.aligned.u32 \t{regs}" in kb.ptx
    tiles = -(-spec.m // cfg["BLOCK_M"]) * -(-spec.n // cfg["BLOCK_N"])
    assert kb.grid == (min(tiles, 132), 1, 1) and kb.scratch_per_cta >= 3 * 128
    names = ["a", "w"] + (["bias"] if spec.bias_dtype else []) + (["gate"] if spec.swiglu else []) + ["c"]
    assert [p.name for p in kb.params] == names + ["global_scratch", "profile_scratch"]


def test_force_config_comes_first_where_its_kernel_covers_the_shape():
    """force_config (how bench/models.py builds whole models on one config): inside the block
    every GEMM takes the config first, unless its kernel refuses the shape; kernel_build's
    cache keeps a forced build apart from the tuned one."""
    gluon = triton_gemm.GLUON_CANDIDATES[1]
    spec = triton_gemm.GemmSpec(4096, 1024, 1024)
    tuned = triton_gemm.tuned_config(spec, 90)
    with triton_gemm.force_config(gluon):
        assert triton_gemm.tuned_config(spec, 90) == gluon
        assert triton_gemm.tuned_config(spec, 80) == triton_gemm.CANDIDATES[0]   # Gluon GEMM: sm_90 only
        assert triton_gemm.build_context() == (tuple(sorted(gluon.items())), False)
    assert triton_gemm.build_context() == (None, False) and triton_gemm.tuned_config(spec, 90) == tuned
    with triton_gemm.force_config(gluon), triton_gemm.without_gluon():  # (bench/models.py's flashlift_no_gluon_gemm)
        assert triton_gemm.tuned_config(spec, 90) == triton_gemm.CANDIDATES[0]
        assert triton_gemm.build_context() != (tuple(sorted(gluon.items())), False)


def test_gluon_gemm_consumers_free_the_slot_they_read():
    """Each consumer gives back the ring slot of the K step it finished, not the slot its C
    tile began at: a `prev = st` carried through the K loop was dropped by Gluon's frontend
    (Triton 3.6), the arrives all went to the tile's first slot, and the kernel hung on the
    H100 once a program took a second C tile (the GPU numerics' `*_wide_*_gluon*` cases run it)."""
    import re

    ck, _ = triton_gemm.compile_gemm(triton_gemm.GemmSpec(4096, 1024, 1024), 90, triton_gemm.GLUON_CANDIDATES[1])
    ttgir = ck.asm["ttgir"]
    tile_slots = set(re.findall(r"scf\.for %tile = .*? iter_args\((%[\w]+) = ", ttgir))
    freed = re.findall(r"memdesc_index %free\[(%[\w]+)\]", ttgir)
    assert tile_slots and len(freed) >= 4   # each consumer: an arrive in the K loop and one after it
    assert not tile_slots & set(freed), (tile_slots, freed)


def _pingpong_ring(tiles: int, k_steps: int, stages: int, turns: bool, seed: int):
    """gluon_gemm's ping-pong protocol as a model, under one random interleaving of the loader
    and the two consumers: mbarrier waits by parity (a wait passes while the barrier's phase
    bit differs from the parity given), the loader filling the ring in step order, consumer c
    taking tiles c, c + 2, ... with (turns) or without the turn barriers. Returns the wrong
    reads (a consumer at a slot that does not hold its step) or "deadlock"."""
    import random

    rng, done, tag, wrong = random.Random(seed), {}, [None] * stages, []

    def arrive(bar):
        done[bar] = done.get(bar, 0) + 1

    def loader():
        for g in range(tiles * k_steps):
            yield ("free", g % stages), ((g // stages) & 1) ^ 1
            tag[g % stages] = g
            arrive(("ready", g % stages))

    def consumer(c):
        for i in range(c, tiles, 2):
            if turns and (i + c) // 2 > 0:
                yield ("turn", c), ((i + c) // 2 - 1) & 1
            for kk in range(k_steps):
                g = i * k_steps + kk
                yield ("ready", g % stages), (g // stages) & 1
                wrong.extend([(c, g, tag[g % stages])] if tag[g % stages] != g else [])
                if kk > 0:   # step g - 1's product is done: its slot goes back
                    wrong.extend([(c, g - 1, "overwritten")] if tag[(g - 1) % stages] != g - 1 else [])
                    arrive(("free", (g - 1) % stages))
            if turns:
                arrive(("turn", 1 - c))
            arrive(("free", (i * k_steps + k_steps - 1) % stages))

    procs = {"loader": loader(), 0: consumer(0), 1: consumer(1)}
    waits = {}
    for name in list(procs):
        waits[name] = next(procs[name], None)
        if waits[name] is None:
            del procs[name]
    while procs:
        runnable = [n for n in procs if (done.get(waits[n][0], 0) & 1) != waits[n][1]]
        if not runnable:
            return "deadlock"
        n = rng.choice(runnable)
        waits[n] = next(procs[n], None)
        if waits[n] is None:
            del procs[n]
    return wrong


def test_pingpong_consumers_take_turns():
    """The ping-pong consumers' ring protocol, modelled: with the turn barriers no interleaving
    reads a slot before the loader filled it for that step, or deadlocks (programs of 1-5
    tiles, 1-12 K steps, 2-6 stages); without them a consumer starting its tile can pass a
    parity wait two fills early (a fresh barrier passes parity 1) and read another tile's data.
    The kernel has the turn barriers: each consumer waits on its own before its K loop."""
    for tiles, k_steps, stages, seed in itertools.product((1, 2, 3, 5), (1, 2, 3, 12), (2, 4, 5), range(8)):
        assert _pingpong_ring(tiles, k_steps, stages, True, seed) == [], (tiles, k_steps, stages, seed)
    assert any(_pingpong_ring(3, 12, 4, False, seed) for seed in range(8))
    ck, _ = triton_gemm.compile_gemm(triton_gemm.GemmSpec(4096, 1024, 1024), 90, triton_gemm.GLUON_CANDIDATES[5])
    ttgir = ck.asm["ttgir"]
    assert "%turn = ttg.local_alloc" in ttgir and re.search(r"ttg\.warp_specialize\([^)]*%turn\b", ttgir)
    assert len(re.findall(r"%turns(_\d+)? = arith\.divsi", ttgir)) == 2   # each consumer counts its turns
