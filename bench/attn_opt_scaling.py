"""attn-opt's time against the number of attention sites: must grow linearly.

A module of N functions, each one hand-written attention with a padding mask as torch-mlir
emits it, goes through `attn-opt --raise-attention` (the command, in a subprocess, as users
run it); the table gives seconds and seconds per site for each N.

    python bench/attn_opt_scaling.py [--sites 100,200,400,800]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))


def one_function() -> tuple[str, str]:
    """(the #map aliases, one func.func) of a masked attention imported by torch-mlir."""
    import math

    import torch

    import flashlift
    from iree.compiler import ir

    class Attention(torch.nn.Module):
        def forward(self, q, k, v, mask):
            return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask, -1) @ v

    args = tuple(torch.randn(2, 2, 8, 16) for _ in range(3)) + (torch.zeros(2, 1, 1, 8),)
    text = ir.Module.parse(flashlift.import_model(Attention(), args), ir.Context()).operation.get_asm(enable_debug_info=False)
    aliases = "\n".join(l for l in text.splitlines() if l.startswith("#"))
    body = text[text.index("func.func"):text.rindex("}")]
    return aliases, body


def module_of(n: int, aliases: str, body: str) -> str:
    funcs = [re.sub(r"@main\b", f"@attention_{i}", body) for i in range(n)]
    return aliases + "\nmodule {\n" + "\n".join(funcs) + "\n}\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", default="100,200,400,800")
    a = p.parse_args()
    aliases, body = one_function()
    attn_opt = os.path.join(os.path.dirname(sys.executable), "attn-opt")
    print("| sites | seconds | ms per site |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, a.sites.split(",")):
            path = os.path.join(tmp, f"m{n}.mlir")
            with open(path, "w") as f:
                f.write(module_of(n, aliases, body))
            t0 = time.perf_counter()
            r = subprocess.run([attn_opt, path, "--raise-attention", "-o", os.devnull], capture_output=True, text=True)
            dt = time.perf_counter() - t0
            if r.returncode:
                print(r.stderr[-2000:])
                return 1
            print(f"| {n} | {dt:.2f} | {1000 * dt / n:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
