"""compile_model's calling convention: keyword inputs, and the errors for calls that do not
fit the compiled module."""

import pytest
import torch

import flashlift
from conftest import rel_err
from flashlift.errors import InputError


class MaskedAttention(torch.nn.Module):
    """Attention whose key mask and scale come by keyword."""

    def forward(self, q, k, v, mask=None, scale=0.25):
        s = torch.matmul(q, k.transpose(-2, -1)) * scale
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        o = torch.matmul(torch.softmax(s, dim=-1), v)
        return o


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
    assert rel_err(out, ref) < 1e-5


def test_keyword_inputs_any_order(masked):
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


def test_save_load_keeps_keywords(masked, tmp_path):
    path = tmp_path / "masked.flashlift"
    masked.save(str(path))
    args, kwargs = _inputs(seed=2)
    check_same(flashlift.load(str(path))(*args, **kwargs), MaskedAttention()(*args, **kwargs))


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
