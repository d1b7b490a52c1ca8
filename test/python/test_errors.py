"""Bad input gets a clear flashlift error that names the problem, never a deep traceback."""

import inspect
import json
import zipfile

import pytest
import torch

import flashlift
from flashlift.errors import ImportError_, InputError, ModuleFormatError
from test_foundation import PlainAttention


@pytest.fixture(scope="module")
def compiled():
    q = torch.randn(2, 8, 16)
    return flashlift.compile_model(PlainAttention(), (q, q, q))


def test_unknown_target_lists_known():
    with pytest.raises(InputError, match=r"unknown target 'tpu'; known targets: cpu, cpu:generic, cpu:x86-64-v2, .*, cuda"):
        flashlift.compile_model(PlainAttention(), (torch.randn(1, 2, 2),) * 3, target="tpu")


def test_unknown_cuda_arch():
    with pytest.raises(InputError, match="unknown CUDA architecture 'sm_12'"):
        flashlift.compile_model(PlainAttention(), (torch.randn(1, 2, 2),) * 3, target="cuda:sm_12")


def test_example_args_must_be_tensors():
    with pytest.raises(InputError, match=r"example_args\[1\] is a list, expected a torch.Tensor"):
        flashlift.compile_model(PlainAttention(), (torch.randn(1, 2, 2), [1, 2], torch.randn(1, 2, 2)))


def test_model_must_be_module():
    with pytest.raises(InputError, match="model must be a torch.nn.Module"):
        flashlift.compile_model(lambda x: x, (torch.randn(2),))


def test_export_failure_names_the_model():
    class Broken(torch.nn.Module):
        def forward(self, x):
            return x @ torch.randn(3, 3)  # shapes do not match

    with pytest.raises(ImportError_, match="torch.export failed on Broken"):
        flashlift.compile_model(Broken(), (torch.randn(2, 4),))


def test_op_torch_mlir_cannot_lower_is_named_with_its_module_path(capfd):
    """An op torch-mlir has no lowering for (aten.histc: transformers' MoE experts count tokens
    with it) is named with the module that calls it and its source line, not as "a pass
    pipeline failed", and MLIR's raw diagnostic is not printed."""

    class Counts(torch.nn.Module):
        def forward(self, x):
            return torch.histc(x, bins=4, min=0, max=3)

    class Router(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.experts = Counts()

        def forward(self, x):
            return self.experts(x) + 1

    line = inspect.getsourcelines(Counts.forward)[1] + 1
    with pytest.raises(ImportError_, match=rf"could not lower Router to linalg: no lowering for aten\.histc at "
                                           rf"experts \(test_errors\.py:{line}\)$"):
        flashlift.compile_model(Router(), (torch.rand(12) * 3,))
    assert "failed to legalize" not in capfd.readouterr().err


def test_call_wrong_count(compiled):
    with pytest.raises(InputError, match=r"takes 3 tensor\(s\), got 2"):
        compiled(torch.randn(2, 8, 16), torch.randn(2, 8, 16))


def test_call_wrong_shape(compiled):
    with pytest.raises(InputError, match=r"argument 1 \(k\): expected shape \[2, 8, 16\], got \[2, 8, 15\]"):
        compiled(torch.randn(2, 8, 16), torch.randn(2, 8, 15), torch.randn(2, 8, 16))


def test_call_wrong_dtype(compiled):
    with pytest.raises(InputError, match=r"argument 2 \(v\): expected dtype float32, got float16"):
        compiled(torch.randn(2, 8, 16), torch.randn(2, 8, 16), torch.randn(2, 8, 16).half())


def test_call_not_a_tensor(compiled):
    with pytest.raises(InputError, match=r"argument 0 \(q\): expected a torch.Tensor, got ndarray"):
        compiled(torch.randn(2, 8, 16).numpy(), torch.randn(2, 8, 16), torch.randn(2, 8, 16))


def test_load_rejects_non_modules(tmp_path):
    junk = tmp_path / "junk.flashlift"
    junk.write_bytes(b"\x00not a zip at all")
    with pytest.raises(ModuleFormatError, match="not a flashlift module"):
        flashlift.load(str(junk))
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("flashlift.json", json.dumps({"format": "something-else"}))
        z.writestr("module.vmfb", b"")
    with pytest.raises(ModuleFormatError, match="has no 'format': 'flashlift-module'"):
        flashlift.load(str(other))
    with pytest.raises(InputError, match="no such file"):
        flashlift.load(str(tmp_path / "missing.flashlift"))


def test_attn_opt_errors_are_diagnostics(tmp_path, capsys):
    from flashlift.tools.attn_opt import main

    bad = tmp_path / "bad.mlir"
    bad.write_text("func.func @f() {\n  %0 = arith.constant : f32\n}\n")
    assert main([str(bad), "--raise-attention"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err and "error:" in err and "Traceback" not in err
    assert main([str(tmp_path / "nope.mlir")]) == 1
    assert "cannot read" in capsys.readouterr().err
    binary = tmp_path / "bin.mlir"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    assert main([str(binary)]) == 1
    assert "not a text .mlir file" in capsys.readouterr().err


def test_attn_opt_input_that_crashes_the_verifier(tmp_path, capsys):
    """An attention op whose region's block label follows its terminator crashes IREE 3.13's
    verifier without a diagnostic (in a child: iree-opt; in-process it would take attn-opt
    down): that chunk gets an error naming it, the other chunk is processed."""
    from flashlift.tools.attn_opt import main

    good = "func.func @ok(%x: f32) -> f32 {\n  return %x : f32\n}\n"
    crash = """#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>
func.func @f(%q: tensor<4x16x64xf16>, %k: tensor<4x8x64xf16>, %v: tensor<4x8x64xf16>) -> tensor<4x16x64xf16> {
  %scale = arith.constant 0.125 : f16
  %init = tensor.empty() : tensor<4x16x64xf16>
  %r = iree_linalg_ext.attention <{indexing_maps = [#q, #k, #v, #s, #o]}> ins(%q, %k, %v, %scale : tensor<4x16x64xf16>, tensor<4x8x64xf16>, tensor<4x8x64xf16>, f16) outs(%init : tensor<4x16x64xf16>) {
  } -> tensor<4x16x64xf16>
    iree_linalg_ext.yield %x : f32
  ^bb0(%x: f32):
  return %r : tensor<4x16x64xf16>
}
"""
    path = tmp_path / "crash.mlir"
    path.write_text(good + "// -----\n" + crash)
    assert main([str(path), "--split-input-file", "--raise-attention", "-o", str(tmp_path / "out.mlir")]) == 1
    err = capsys.readouterr().err
    assert f"{path}:4:1: error: this input crashes MLIR's parser or verifier" in err and "Traceback" not in err


@pytest.mark.parametrize("where", ["args", "kwargs"])
def test_zero_size_example_input_is_refused_by_name(where):
    """torch-mlir's lowering divides by a 0 dim (the process died of SIGFPE): refused first."""
    q, empty = torch.randn(2, 4, 8), torch.randn(2, 0, 8)
    if where == "args":
        with pytest.raises(InputError, match=r"example_args\[1\] has size 0 in dim 1 \(shape \[2, 0, 8\]\)"):
            flashlift.compile_model(PlainAttention(), (q, empty, q))
    else:
        with pytest.raises(InputError, match=r"kwargs\['v'\] has size 0 in dim 1"):
            flashlift.compile_model(PlainAttention(), (q, q), kwargs={"v": empty})


def test_data_dependent_output_size_is_refused_with_op_and_line():
    """`x[x > 0]` has a size torch.export cannot know (an unbacked symbol); torch-mlir lowered
    it without bound (17 GB). Refused before torch-mlir, naming the op and the line."""

    class Positive(torch.nn.Module):
        def forward(self, x):
            return x[x > 0] * 2

    line = inspect.getsourcelines(Positive.forward)[1] + 1
    with pytest.raises(ImportError_, match=rf"Positive: aten\.index\.Tensor at .*test_errors\.py:{line} gives a "
                                           r"size that depends on the input values \(u0"):
        flashlift.compile_model(Positive(), (torch.randn(4, 5),))
