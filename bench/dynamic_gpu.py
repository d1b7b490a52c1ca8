"""Dynamic-shape numerics on a GPU: compile here, check there (not a benchmark).

    python bench/dynamic_gpu.py build build/dyn_gpu     # CPU machine: cuda:sm_90 modules
    python3 bench/dynamic_gpu.py check build/dyn_gpu    # GPU machine, runtime only

One module per model (plain attention, the seed's Attention), raised and unraised, each
compiled once with dynamic batch and sequence and called at sizes that are not tile multiples.
Prints the relative error against PyTorch in f32.
"""

import math
import sys

import torch

sys.path.insert(0, "examples")
import slapo_attention as sa  # noqa: E402

import flashlift  # noqa: E402


class Plain(torch.nn.Module):
    def forward(self, q, k, v):
        s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        return torch.matmul(torch.softmax(s, dim=-1), v)


def build(out: str) -> None:
    from torch.export import Dim

    b, s = Dim("b", max=64), Dim("s", max=4096)
    q = torch.randn(2, 8, 256, 64, dtype=torch.float16)
    torch.manual_seed(0)
    seed = sa.Attention(hidden_size=256, n_heads=4).half().eval()
    torch.save(seed.state_dict(), f"{out}/seed.pt")
    x = torch.randn(2, 128, 256, dtype=torch.float16)
    for tag, raise_attention in (("", True), ("_unraised", False)):
        m = flashlift.compile_model(Plain(), (q, q.clone(), q.clone()), target="cuda:sm_90",
                                    dynamic_shapes=({0: b, 2: s},) * 3, raise_attention=raise_attention)
        m.save(f"{out}/plain{tag}.flashlift")
        m = flashlift.compile_model(seed, (x,), target="cuda:sm_90", dynamic_shapes=({0: b, 1: s},),
                                    raise_attention=raise_attention)
        m.save(f"{out}/seed{tag}.flashlift")


def check(d: str) -> None:
    from flashlift.reference import reference

    err = lambda o, r: ((o.float().cpu() - r.float().cpu()).norm() / r.float().cpu().norm()).item()
    seed = sa.Attention(hidden_size=256, n_heads=4).eval()
    seed.load_state_dict({k: v.float() for k, v in torch.load(f"{d}/seed.pt").items()})
    print("| module | input shape | rel err vs f32 |\n|---|---|---|")
    for tag in ("", "_unraised"):
        m = flashlift.load(f"{d}/plain{tag}.flashlift")
        for shape in [(2, 8, 256, 64), (3, 8, 1000, 64), (1, 8, 77, 64)]:
            a = [torch.randn(*shape, dtype=torch.float16) for _ in range(3)]
            print(f"| plain{tag} | {shape} | {err(m(*a), Plain()(*[t.float() for t in a])):.1e} |")
        m = flashlift.load(f"{d}/seed{tag}.flashlift")
        for shape in [(2, 128, 256), (3, 301, 256)]:
            x = torch.randn(*shape, dtype=torch.float16)
            print(f"| seed{tag} | {shape} | {err(m(x), reference(seed, x.float())):.1e} |")


if __name__ == "__main__":
    {"build": build, "check": check}[sys.argv[1]](sys.argv[2])
