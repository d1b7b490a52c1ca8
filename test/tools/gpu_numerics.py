"""The GPU numerics tests, for the GPU machine (torch + IREE runtime, no IREE compiler).

pytest's GPU tests (test_gemm_kernel.py's and test_kernels.py's test_gpu_numerics) compile in
the test, which the GPU machine cannot. This tool builds the same cases here and checks them
there:

    # here: compile each case for cuda:sm_90, save the module, fresh inputs and the f32 reference
    .venv/bin/python test/tools/gpu_numerics.py build build/gpu_numerics
    # GPU machine: run each module on its inputs, compare; exit status 1 if any case fails
    python3 test/tools/gpu_numerics.py run build/gpu_numerics
    # only the cases whose name starts with one of some prefixes (e.g. the attention cases), or
    # matches one of some shell patterns (an item with * ? or [; e.g. every Gluon GEMM case):
    .venv/bin/python test/tools/gpu_numerics.py build build/gpu_numerics cuda:sm_90 attn_,mask_
    .venv/bin/python test/tools/gpu_numerics.py build build/gpu_numerics cuda:sm_90 '*_gluon*,mask_*_f16'

The mask cases (test_kernels.MASK_GPU_CASES, `mask_<case>` with flashlift's kernels and
`mask_<case>_codegen` with IREE's codegen, use_kernels=False) have rows whose every key is
masked: NaN in the output must be exactly where PyTorch's f32 reference has NaN, and the
error is taken over the other entries. A `_codegen` case runs on its kernel case's inputs
(one .pt file for both).
"""

from __future__ import annotations

import fnmatch
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "python"), os.path.join(ROOT, "test"), os.path.join(ROOT, "test", "python")]


def build(out_dir: str, target: str, prefix: str = "") -> None:
    import torch

    import flashlift
    import test_gemm_kernel
    import test_kernels
    import test_norm_kernel
    import test_rotary
    from test_gemm_kernel import fresh_inputs_and_reference

    os.makedirs(out_dir, exist_ok=True)
    with_kwargs = lambda gpu_case: (lambda c: gpu_case(c) + ({},))  # noqa: E731  (no compile_model kwargs)
    cases = [(c, c, with_kwargs(test_gemm_kernel.gpu_case), "linears", True) for c in test_gemm_kernel.GPU_CASES]
    cases += [(f"attn_{c}", c, with_kwargs(test_kernels.gpu_case), "raised", True) for c in test_kernels.GPU_CASES]
    cases += [(f"mask_{c}{'' if kernels else '_codegen'}", c, with_kwargs(test_kernels.mask_gpu_case), "raised", kernels)
              for c in test_kernels.MASK_GPU_CASES for kernels in (True, False)]
    cases += [(c, c, test_norm_kernel.gpu_case, "epilogues" if c.startswith(("norm", "rms_norm")) else "raised", True)
              for c in test_norm_kernel.GPU_CASES]
    cases += [(c, c, test_rotary.gpu_case, "rotary", True) for c in test_rotary.GPU_CASES]
    for name, case, gpu_case, sites, use_kernels in cases:
        if prefix and not any(fnmatch.fnmatchcase(name, p) if any(ch in p for ch in "*?[") else name.startswith(p)
                              for p in prefix.split(",")):
            continue
        model, args, tol, kwargs = gpu_case(case)
        # `*_tma`: the GEMM kernel's TMA variant; `attn_gluon_*`, `mask_gluon_*`: gluon_fa's attention kernel
        with test_gemm_kernel.gemm_configs(name), test_kernels.fa_kernel_configs(name):
            compiled = flashlift.compile_model(model, args, target=target, use_kernels=use_kernels, **kwargs)
        paths = sorted({s.path + (f" ({s.details['kernel']['name']}" + (f", empty rows {s.details['kernel']['empty_rows']}"
                                                                      if "empty_rows" in s.details["kernel"] else "")
                                  + ")" if "kernel" in s.details else "")
                        for s in getattr(compiled.report, sites)})
        compiled.save(os.path.join(out_dir, f"{name}.flashlift"))
        if not use_kernels and os.path.exists(os.path.join(out_dir, f"{name.removesuffix('_codegen')}.pt")):
            data = {"inputs_of": name.removesuffix("_codegen"), "tol": tol, "paths": paths}
        else:
            fresh, ref = fresh_inputs_and_reference(model, args)
            data = {"args": fresh, "ref": ref, "tol": tol, "paths": paths}
        torch.save(data, os.path.join(out_dir, f"{name}.pt"))
        print(f"{name}: paths {paths}", flush=True)


def run(out_dir: str) -> int:
    """Each case twice: host tensors in (copied to the GPU and back) and CUDA tensors in (used
    in place; the result must be a CUDA tensor, stay intact across the next call, and a call on
    inputs changed in place must equal the host path's answer on them)."""
    import torch

    import flashlift

    failed = 0
    for name in sorted(f for f in os.listdir(out_dir) if f.endswith(".flashlift")):
        case = name[:-len(".flashlift")]
        data = torch.load(os.path.join(out_dir, f"{case}.pt"))
        if "inputs_of" in data:  # a codegen case on its kernel case's inputs
            data = {**torch.load(os.path.join(out_dir, f"{data['inputs_of']}.pt")), "tol": data["tol"],
                    "paths": data["paths"]}
        compiled = flashlift.load(os.path.join(out_dir, name))
        ref = data["ref"].float()
        host = _first(compiled(*data["args"]))
        on_gpu = _first(compiled(*[a.cuda() for a in data["args"]]))
        kept = on_gpu.clone()
        nan_rows = int(torch.isnan(ref).any(-1).sum())
        _first(compiled(*[(a + 1 if a.is_floating_point() else a).cuda() for a in data["args"]]))
        # the same CUDA tensors changed in place: the reused imports must see the new values
        gpu_args = [a.cuda() for a in data["args"]]
        compiled(*gpu_args)
        first = gpu_args[0]  # scaled, or integer ids / masks permuted (still valid values)
        first.mul_(0.5) if first.is_floating_point() else first.copy_(first.flip(-1))
        in_place_ok = _same(_first(compiled(*gpu_args)).cpu(), _first(compiled(*[a.cpu() for a in gpu_args])))
        for how, out in (("host", host), ("cuda", on_gpu)):
            err = _rel_err(out.float().cpu(), ref)
            ok = err < data["tol"] and (how == "host" or (out.is_cuda and _same(out, kept) and in_place_ok))
            failed += not ok
            nan_note = f" NaN rows {int(torch.isnan(out).any(-1).sum())}/{nan_rows} of ref" if nan_rows else ""
            print(f"{case:12s} {how:4s} rel err {err:.2e} (tolerance {data['tol']:.0e}) on {out.device}{nan_note} "
                  f"{'ok' if ok else 'FAIL'}  {data['paths']}", flush=True)
    return 1 if failed else 0


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _rel_err(out, ref) -> float:
    """Over the entries where the reference is not NaN; NaN unless the output is NaN exactly
    where the reference is (nowhere, for every case but the masks' fully masked rows)."""
    import torch

    nan = torch.isnan(ref)
    if not torch.equal(torch.isnan(out), nan):
        return float("nan")
    return ((out[~nan] - ref[~nan]).norm() / ref[~nan].norm()).item()


def _same(a, b) -> bool:
    """torch.equal, with NaN equal to NaN."""
    import torch

    return torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("build", "run"):
        sys.exit("usage: gpu_numerics.py build FOLDER [TARGET [PREFIXES]] | run FOLDER  (see the docstring)")
    mode, folder = sys.argv[1], sys.argv[2]
    if mode == "build":
        build(folder, sys.argv[3] if len(sys.argv) > 3 else "cuda:sm_90", sys.argv[4] if len(sys.argv) > 4 else "")
    else:
        sys.exit(run(folder))
