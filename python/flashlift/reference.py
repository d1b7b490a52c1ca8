"""PyTorch reference outputs with the inference semantics flashlift compiles with.

flashlift treats every dropout as the identity. `F.dropout(x, p)` defaults to
training=True and so stays active after `model.eval()`, as does the `dropout_p` of
`F.scaled_dot_product_attention`; comparing against plain eager
output would compare against a random answer. `reference(model, *args)` runs the model in
eval mode with the functional dropouts patched to the identity.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def dropout_disabled():
    import torch
    import torch.nn.functional as F

    names = ["dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"]
    saved_f = {n: getattr(F, n) for n in names if hasattr(F, n)}
    saved_t = {n: getattr(torch, n) for n in ("dropout", "alpha_dropout", "feature_dropout") if hasattr(torch, n)}
    identity = lambda x, *a, **k: x  # noqa: E731
    sdpa = F.scaled_dot_product_attention

    def sdpa_without_dropout(*args, **kwargs):  # SDPA's dropout_p applies whatever the mode
        if len(args) > 4:
            args = args[:4] + (0.0,) + args[5:]
        kwargs.pop("dropout_p", None)
        return sdpa(*args, **kwargs)

    try:
        for n in saved_f:
            setattr(F, n, identity)
        for n in saved_t:
            setattr(torch, n, identity)
        F.scaled_dot_product_attention = sdpa_without_dropout
        yield
    finally:
        F.scaled_dot_product_attention = sdpa
        for n, f in saved_f.items():
            setattr(F, n, f)
        for n, f in saved_t.items():
            setattr(torch, n, f)


def reference(model, *args, **kwargs):
    """model(*args, **kwargs) in eval mode, no grad, every dropout the identity."""
    import torch

    model.eval()
    with torch.no_grad(), dropout_disabled():
        return model(*args, **kwargs)
