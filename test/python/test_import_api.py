"""compile_model's calling convention: keyword inputs, structured results, the KV cache left
out, and the errors for calls that do not fit the compiled module."""

import collections

import pytest
import torch

import flashlift
from conftest import rel_err
from flashlift.errors import ImportError_, InputError
from flashlift.structure import OutputDict, model_output_class, rebuild


class MaskedAttention(torch.nn.Module):
    """Attention whose key mask and scale come by keyword; returns a nested structure with
    constants in it."""

    def forward(self, q, k, v, mask=None, scale=0.25, extra=True):
        s = torch.matmul(q, k.transpose(-2, -1)) * scale
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        o = torch.matmul(torch.softmax(s, dim=-1), v)
        return {"out": o, "stats": (o.sum(-1), None, 3), "rows": [o.amax(-1)] if extra else []}


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 2, 8, 16, generator=g) for _ in range(3))
    mask = torch.rand(2, 1, 8, 8, generator=g) > 0.3
    mask[..., 0] = True
    return (q,), {"k": k, "v": v, "mask": mask, "scale": 0.5}


@pytest.fixture(scope="module")
def masked():
    args, kwargs = _inputs()
    return flashlift.compile_model(MaskedAttention(), args, kwargs=kwargs)


def check_same(out, ref):
    assert out.keys() == ref.keys() and isinstance(out["stats"], tuple) and isinstance(out["rows"], list)
    assert out["stats"][1] is None and out["stats"][2] == 3
    assert rel_err(out["out"], ref["out"]) < 1e-5 and rel_err(out["stats"][0], ref["stats"][0]) < 1e-5
    assert rel_err(out["rows"][0], ref["rows"][0]) < 1e-5


def test_keyword_inputs_any_order_and_structured_result(masked):
    args, kwargs = _inputs(seed=1)
    ref = MaskedAttention()(*args, **kwargs)
    check_same(masked(*args, **dict(reversed(list(kwargs.items())))), ref)
    assert [(s["name"], s["keyword"]) for s in masked.meta["inputs"]] == [
        ("q", False), ("k", True), ("v", True), ("mask", True)]
    assert masked.meta["constants"] == {"scale": 0.5}


def test_constant_keyword_may_be_repeated_not_changed(masked):
    args, kwargs = _inputs()
    masked(*args, **kwargs)  # scale=0.5, as compiled
    with pytest.raises(InputError, match=r"scale=0.25: MaskedAttention was compiled with scale=0.5"):
        masked(*args, **dict(kwargs, scale=0.25))


def test_missing_extra_and_wrong_keyword_inputs(masked):
    args, kwargs = _inputs()
    with pytest.raises(InputError, match=r"missing keyword argument\(s\) 'mask'"):
        masked(*args, **{k: v for k, v in kwargs.items() if k != "mask"})
    with pytest.raises(InputError, match=r"unexpected keyword argument 'bias'; MaskedAttention takes keyword "
                                         r"argument\(s\) k, v, mask"):
        masked(*args, **kwargs, bias=torch.zeros(1))
    with pytest.raises(InputError, match=r"q was compiled as positional argument 0: pass it positionally"):
        masked(**kwargs, q=args[0])
    with pytest.raises(InputError, match=r"takes 1 positional tensor\(s\) \(q\), got 0"):
        masked(**kwargs)
    with pytest.raises(InputError, match=r"keyword argument 'mask': expected a torch.Tensor, got ndarray"):
        masked(*args, **dict(kwargs, mask=kwargs["mask"].numpy()))
    with pytest.raises(InputError, match=r"keyword argument 'v': expected shape \[2, 2, 8, 16\], got \[2, 2, 8, 15\]"):
        masked(*args, **dict(kwargs, v=kwargs["v"][..., :15]))
    with pytest.raises(InputError, match=r"keyword argument 'mask': expected dtype bool, got float32"):
        masked(*args, **dict(kwargs, mask=kwargs["mask"].float()))


def test_compile_time_kwargs_are_checked():
    args, kwargs = _inputs()
    with pytest.raises(InputError, match=r"kwargs must be a dict"):
        flashlift.compile_model(MaskedAttention(), args, kwargs=[kwargs["k"]])
    with pytest.raises(InputError, match=r"kwargs\['k'\] is a list, expected a torch.Tensor or a constant"):
        flashlift.compile_model(MaskedAttention(), args, kwargs=dict(kwargs, k=[kwargs["k"]]))


def test_a_kv_cache_input_is_refused_with_what_to_do():
    """The decode step of generation passes past_key_values (a transformers Cache): refused
    before any import, saying to compile the forward without it."""
    transformers = pytest.importorskip("transformers")
    args, kwargs = _inputs()
    with pytest.raises(InputError, match=r"kwargs\['past_key_values'\] is a DynamicCache, .*a KV cache is not an "
                                         r"input flashlift compiles: compile the forward without it"):
        flashlift.compile_model(MaskedAttention(), args, kwargs=dict(kwargs, past_key_values=transformers.DynamicCache()))


def test_save_load_keeps_keywords_and_structure(masked, tmp_path):
    import json
    import zipfile

    path = tmp_path / "masked.flashlift"
    masked.save(str(path))
    meta = json.loads(zipfile.ZipFile(path).read("flashlift.json"))
    assert meta["output_tree"]["dict"][1][1]["tuple"][2] == {"constant": 3}
    args, kwargs = _inputs(seed=2)
    check_same(flashlift.load(str(path))(*args, **kwargs), MaskedAttention()(*args, **kwargs))


def test_single_tensor_one_tuple_and_namedtuple_results():
    Pair = collections.namedtuple("Pair", "total rows")

    class Shapes(torch.nn.Module):
        def forward(self, x):
            return x * 2, (x + 1,), Pair(x.sum(), x.amax(-1))

    x = torch.randn(3, 4)
    two, one, pair = flashlift.compile_model(Shapes(), (x,))(x)
    assert isinstance(one, tuple) and len(one) == 1 and torch.allclose(one[0], x + 1)
    assert type(pair).__name__ == "Pair" and pair._fields == ("total", "rows")
    assert torch.allclose(pair.total, x.sum()) and torch.allclose(two, x * 2)


def test_a_size_computed_under_dynamic_shapes_is_refused_by_name():
    class WithSize(torch.nn.Module):
        def forward(self, x):
            return x * 2, x.shape[0]

    b = torch.export.Dim("b", max=64)
    with pytest.raises(ImportError_, match=r"output\[1\] is a SymInt computed by the model, not a tensor"):
        flashlift.compile_model(WithSize(), (torch.randn(4, 3),), dynamic_shapes=({0: b},))


def test_model_output_fallback_without_its_class():
    tree = {"model_output": "transformers.no_such_module.FancyOutput",
            "fields": [["last_hidden_state", {"tensor": 0}], ["pooler_output", {"tensor": 1}]],
            "declared": ["last_hidden_state", "pooler_output", "attentions"]}
    a, b = torch.zeros(1), torch.ones(1)
    out = rebuild(tree, [a, b])
    assert isinstance(out, OutputDict) and out.class_name == "FancyOutput"
    assert out.last_hidden_state is a and out["pooler_output"] is b and out[1] is b and out.to_tuple() == (a, b)
    assert out.attentions is None  # declared, left None by the model
    with pytest.raises(AttributeError, match="FancyOutput has no field 'logits'"):
        out.logits


def test_model_output_class_is_only_looked_up_in_transformers():
    assert model_output_class("os.path.join") is None  # a name from a file is never imported elsewhere
    pytest.importorskip("transformers")
    from transformers.modeling_outputs import BaseModelOutput

    assert model_output_class("transformers.modeling_outputs.BaseModelOutput") is BaseModelOutput
    assert model_output_class("transformers.modeling_outputs.torch") is None  # not a ModelOutput


def test_decoder_default_use_cache_compiles_without_the_cache():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1)
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.randint(0, 64, (2, 6))
    compiled = flashlift.compile_model(model, (ids,))
    out = compiled(ids)
    assert type(out).__name__ == "CausalLMOutputWithPast" and list(out.keys()) == ["logits"]
    with torch.no_grad():
        assert rel_err(out.logits, model(ids).logits) < 1e-4
    assert "note: use_cache: the KV cache is not returned" in str(compiled.report)
    with pytest.raises(ImportError_, match=r"returns a DynamicCache \(a KV cache: call the model with use_cache=False\)"):
        flashlift.compile_model(model, (ids,), kwargs={"use_cache": True})


def test_keyword_inputs_with_dynamic_shapes():
    args, kwargs = _inputs()
    b = torch.export.Dim("b", max=16)
    shapes = {"q": {0: b}, "k": {0: b}, "v": {0: b}, "mask": {0: b}, "scale": None}
    compiled = flashlift.compile_model(MaskedAttention(), args, kwargs=kwargs, dynamic_shapes=shapes)
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(5, 2, 8, 16, generator=g) for _ in range(3))
    mask = torch.ones(5, 1, 8, 8, dtype=torch.bool)
    check_same(compiled(q, v=v, k=k, mask=mask), MaskedAttention()(q, k, v, mask=mask, scale=0.5))
    with pytest.raises(InputError, match=r"keyword argument 'v' dim 0 is 4 but argument 0 \(q\) dim 0 is 5"):
        compiled(q, v=v[:4], k=k, mask=mask)
