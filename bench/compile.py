"""Compile-time scaling: time and peak memory of compile_model against the model's size.

Hugging Face models built from their configs with random weights (transformers' default
attention, SDPA; default configs, so the decoders' KV cache is on and left out by
flashlift), called as their users call them (`input_ids` with a padding `attention_mask`):
  * bert-base   BertModel, BERT-base config, f32, B=1 S=128 (8 tokens padding);
  * gpt2        GPT2LMHeadModel, GPT-2 (124 M) config, f32, B=1 S=128 (left padding);
  * qwen2-0.5b  Qwen2ForCausalLM, Qwen2-0.5B's config, f16, B=1 S=64;
  * llama-1.2b  LlamaForCausalLM, Llama-3.2-1B's config, bf16, B=1 S=64;
  * llama-3.2b  LlamaForCausalLM, Llama-3.2-3B's config, bf16, B=1 S=64;
  * llama-8b    LlamaForCausalLM, Llama-3.1-8B's config, bf16, B=1 S=64 (16 GB of weights).
Each model runs in its own process (`child`), which marks its phases; this process samples
the resident memory of that process tree (the child and the iree-compile it starts) from
/proc every 50 ms. Reported per model: the weights' bytes (tied weights once), compile
time (compile_model: export, import, passes, iree-compile), the peak RSS during the compile,
the RSS before the model was built (Python, torch, transformers and the compiler's libraries,
loaded by compiling a one-layer model first: the constant)
and (peak - constant) / weights, whose goal is <= 1.5; the saved file's size; then the
saved module loaded in a fresh process (only the IREE runtime's mapping of the file): its
peak RSS and its answer against the first process's. Numerics: the compiled model's
logits / last hidden state against PyTorch on the same inputs, ||out - ref|| / ||ref||, in
the model's dtype (tolerance 1e-4 for f32, 5e-3 for f16/bf16) and against PyTorch in f32.

    python bench/compile.py                          # every model; writes bench/results/compile-cpu.md
    python bench/compile.py --models bert-base gpt2 --parameters inline   # the old path, for comparison
    python bench/compile.py --render                 # the results file again from its .json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from attention import commit, device_name  # noqa: E402

TOL = {"float32": 1e-4, "float16": 5e-3, "bfloat16": 5e-3}


def _llama3(hidden: int, intermediate: int, layers: int, heads: int, head_dim: int, tied: bool) -> tuple:
    """A Llama 3 family member's MODELS row: 8 KV heads, its vocabulary and RoPE; bf16, B=1 S=64."""
    config = {"hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
              "num_attention_heads": heads, "num_key_value_heads": 8, "vocab_size": 128256,
              "max_position_embeddings": 131072, "rope_theta": 500000.0, "tie_word_embeddings": tied,
              "head_dim": head_dim}
    return ("LlamaConfig", "LlamaForCausalLM", config, "bfloat16", 1, 64, 4, True)


MODELS = {
    # name: (transformers config class, model class, config kwargs, dtype, batch, seq, padded tokens, left padding)
    "bert-base": ("BertConfig", "BertModel", {}, "float32", 1, 128, 8, False),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", {}, "float32", 1, 128, 8, True),
    "qwen2-0.5b": ("Qwen2Config", "Qwen2ForCausalLM",
                   {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                    "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
                    "max_position_embeddings": 32768, "rope_theta": 1000000.0, "tie_word_embeddings": True},
                   "float16", 1, 64, 4, True),
    "llama-1.2b": _llama3(2048, 8192, 16, 32, 64, tied=True),
    "llama-3.2b": _llama3(3072, 8192, 28, 24, 128, tied=True),
    "llama-8b": _llama3(4096, 14336, 32, 32, 128, tied=False),   # (16 GB of weights)
}

# Measured at d325afe on this machine before parameters left the IR (weights as IR constants).
BEFORE = {"bert-base": "66 s, 4.5 GB", "qwen2-0.5b": "554 s (machine shared), 9.1 GB"}


# ---------------------------------------------------------------- the child: one model

def child(name: str, parameters: str, out_dir: str) -> None:
    marks = {}

    def mark(what):
        marks[what] = time.time()
        print(f"compile.py child: {what} at {marks[what]:.1f}", file=sys.stderr, flush=True)

    mark("start")
    import torch
    import transformers as tf

    import flashlift
    from flashlift.reference import reference

    # the constant: Python, torch, transformers and the compiler's own libraries (IREE,
    # torch-mlir, loaded by a first compile), before the model exists
    flashlift.compile_model(torch.nn.Linear(4, 4), (torch.randn(2, 4),))
    mark("imported")
    cfg_cls, model_cls, cfg_kwargs, dtype, batch, seq, pad, left = MODELS[name]
    torch.manual_seed(0)
    cfg = getattr(tf, cfg_cls)(**cfg_kwargs)
    model = getattr(tf, model_cls)._from_config(cfg, torch_dtype=getattr(torch, dtype)).eval()
    ids = torch.randint(1, cfg.vocab_size, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    if left:
        mask[-1, :pad] = 0
    else:
        mask[-1, seq - pad:] = 0
    kwargs = {"input_ids": ids, "attention_mask": mask}
    torch.save(kwargs, os.path.join(out_dir, f"{name}.kwargs.pt"))
    seen, weights, count = set(), 0, 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            weights += t.numel() * t.element_size()
            count += t.numel() if t.is_floating_point() else 0
    mark("built")

    compiled = flashlift.compile_model(model, (), kwargs=kwargs, parameters=parameters)
    mark("compiled")
    path = os.path.join(out_dir, f"{name}.flashlift")
    compiled.save(path)
    constants = compiled.meta["constants"]
    del compiled   # (it holds the torch weights' memory as its parameters)
    mark("saved")
    with torch.no_grad():
        ref = reference(model, **kwargs, **constants)
    key = "logits" if "logits" in ref.keys() else "last_hidden_state"
    want = ref[key]
    del ref
    mark("reference")
    # PyTorch in f32: the whole model cast where its f32 copy fits in memory, else each module
    # cast to f32 just before it runs and back after (the 8 B model's 32 GB does not fit here)
    fits = count * 4 < _available_bytes() - (1 << 30)
    with torch.no_grad(), contextlib.nullcontext() if fits else _f32_one_module_at_a_time(model):
        want32 = reference(model.float() if fits else model, **kwargs, **constants)[key]
    del model
    gc.collect()
    mark("reference_f32")
    # the module run from its file, as users load it, with the torch model gone (with the model
    # held, the module and its packed weights take a second copy: an 8 B model's 32 GB)
    out = flashlift.load(path)(**kwargs)
    got = out[key]
    torch.save(got, os.path.join(out_dir, f"{name}.out.pt"))
    mark("ran")
    result = {
        "name": name, "dtype": dtype, "batch": batch, "seq": seq, "params": count, "weights": weights,
        "parameters": parameters, "output": key, "file_bytes": os.path.getsize(path),
        "err": _rel_err(got, want), "err_f32": _rel_err(got, want32), "torch_err_f32": _rel_err(want, want32),
        "nan": bool(torch.isnan(got.float()).any()), "marks": marks,
    }
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(result, f)


@contextlib.contextmanager
def _f32_one_module_at_a_time(model):
    """Inside, each module with parameters of its own runs in f32: cast to f32 by a forward
    pre-hook and back to its dtype after (bf16 -> f32 -> bf16 is exact), so the model's f32
    answer needs one module's f32 copy at a time, not the whole model's."""
    import torch

    handles = []
    for module in model.modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        dtype = next(module.parameters(recurse=False)).dtype

        def before(mod, args, kwargs):
            mod.float()
            return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args), kwargs

        def after(mod, args, kwargs, out, dtype=dtype):
            mod.to(dtype)
            return out

        handles += [module.register_forward_pre_hook(before, with_kwargs=True),
                    module.register_forward_hook(after, with_kwargs=True)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def child_load(name: str, out_dir: str) -> None:
    """A fresh process: load the saved module (the file's parameters mapped), run it on the
    same inputs, compare with the first process's answer."""
    marks = {"start": time.time()}
    import torch

    import flashlift

    path = os.path.join(out_dir, f"{name}.flashlift")
    marks["imported"] = time.time()
    compiled = flashlift.load(path)
    marks["loaded"] = time.time()
    first = torch.load(os.path.join(out_dir, f"{name}.out.pt"))
    kwargs = torch.load(os.path.join(out_dir, f"{name}.kwargs.pt"))
    out = compiled(**kwargs)
    key = "logits" if "logits" in out.keys() else "last_hidden_state"
    marks["ran"] = time.time()
    same = _rel_err(out[key], first)
    with open(os.path.join(out_dir, f"{name}.load.json"), "w") as f:
        json.dump({"err_vs_first": same, "marks": marks, "anon_after_run": _rss_anon()}, f)


def _proc_bytes(path: str, field: str) -> int:
    """A `field:  N kB` line of a /proc file, in bytes."""
    with open(path) as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _rss_anon() -> int:
    """This process's anonymous resident bytes (not the mapped parameter file's pages)."""
    return _proc_bytes("/proc/self/status", "RssAnon")


def _available_bytes() -> int:
    return _proc_bytes("/proc/meminfo", "MemAvailable")


def _rel_err(out, ref) -> float:
    out, ref = out.float(), ref.float()
    return float((out - ref).norm() / ref.norm())


# ---------------------------------------------------------------- the parent: sampling

def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/statm") as f:
                pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * page
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def sampled(cmd: list[str], log) -> tuple[int, list[tuple[float, int]]]:
    """Runs `cmd`, sampling its process tree's RSS; (exit status, [(time, bytes)])."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    samples = []
    while proc.poll() is None:
        samples.append((time.time(), _tree_rss(proc.pid)))
        time.sleep(0.05)
    return proc.returncode, samples


def peak(samples, start: float, end: float) -> int:
    return max((b for t, b in samples if start <= t <= end), default=0)


def at(samples, when: float) -> int:
    before = [b for t, b in samples if t <= when]
    return before[-1] if before else 0


def measure(name: str, parameters: str, work: str) -> dict:
    env_py = sys.executable
    log_path = os.path.join(work, f"{name}.log")
    with open(log_path, "w") as log:
        rc, samples = sampled([env_py, __file__, "child", name, "--parameters", parameters, "--work", work], log)
    result_path = os.path.join(work, f"{name}.json")
    if rc != 0 or not os.path.exists(result_path):
        tail = open(log_path).read()[-2000:]
        return {"name": name, "parameters": parameters, "failed": f"exit status {rc}: {tail.strip().splitlines()[-1] if tail.strip() else ''}"}
    r = json.load(open(result_path))
    m = r["marks"]
    r["compile_s"] = m["compiled"] - m["built"]
    r["constant_rss"] = at(samples, m["imported"])
    r["model_rss"] = at(samples, m["built"])
    r["compile_peak_rss"] = peak(samples, m["built"], m["compiled"])
    r["run_peak_rss"] = peak(samples, m["reference_f32"], m["ran"])   # (the saved module loaded and run)
    with open(log_path, "a") as log:
        rc, samples = sampled([env_py, __file__, "load", name, "--work", work], log)
    load_path = os.path.join(work, f"{name}.load.json")
    if rc == 0 and os.path.exists(load_path):
        lr = json.load(open(load_path))
        lm = lr["marks"]
        r["load"] = {"err_vs_first": lr["err_vs_first"], "load_s": lm["loaded"] - lm["imported"],
                     "constant_rss": at(samples, lm["imported"]), "peak_rss": peak(samples, lm["imported"], lm["ran"]),
                     "anon_after_run": lr.get("anon_after_run")}
    else:
        r["load"] = {"failed": f"exit status {rc}"}
    return r


# ---------------------------------------------------------------- the table

def _gb(b: int) -> str:
    return f"{b / 1e9:.2f} GB"


def verdict(r: dict) -> str:
    """"ok" within the dtype's tolerance; for f16/bf16 also when flashlift is no further from
    PyTorch in f32 than PyTorch's own model in that dtype is (x1.25): a deep bf16 model's
    answer moves by more than 5e-3 from its f32 one with every op's rounding of its output."""
    if r["nan"]:
        return "FAIL (NaN)"
    if r["err"] < TOL[r["dtype"]]:
        return "ok"
    if r["dtype"] != "float32" and r["err_f32"] <= 1.25 * r["torch_err_f32"]:
        return f"over {TOL[r['dtype']]:.0e}, but no further from f32 than PyTorch's own {r['dtype']}"
    return "FAIL"


def row(r: dict) -> str:
    if "failed" in r:
        return f"| {r['name']} | - | - | - | - | - | - | - | - | failed: {r['failed']} |"
    over = (r["compile_peak_rss"] - r["constant_rss"]) / r["weights"]
    ok = verdict(r)
    load = r["load"]
    anon = f", of it anonymous {_gb(load['anon_after_run'])}" if load.get("anon_after_run") else ""
    load_cell = (f"{load['load_s']:.1f} s, peak {_gb(load['peak_rss'])} ({(load['peak_rss'] - load['constant_rss']) / r['weights']:.2f}x{anon}), "
                 f"same answer {load['err_vs_first']:.0e}" if "failed" not in load else load["failed"])
    return (f"| {r['name']} ({r['dtype']}, B={r['batch']} S={r['seq']}) | {r['params'] / 1e6:.0f} M | {_gb(r['weights'])} | "
            f"{r['compile_s']:.0f} s ({r['compile_s'] / (r['params'] / 1e8):.1f} s per 100 M) | {_gb(r['compile_peak_rss'])} | "
            f"{_gb(r['constant_rss'])} | **{over:.2f}x** {'(goal met)' if over <= 1.5 else f'(goal 1.5x: {over - 1.5:.2f}x over)'} | "
            f"{_gb(r['file_bytes'])} | {load_cell} | {r['err']:.1e} {ok} (torch {r['torch_err_f32']:.1e} vs f32, flashlift {r['err_f32']:.1e}) |")


def write(rows: list[dict], out: str) -> str:
    head = rows[0]["parameters"] if rows else "archive"
    lines = [
        "# Compile-time scaling on the CPU: time and peak memory against model size", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; flashlift commit {commit()}; "
        f"{device_name('cpu')}; target cpu; compile_model(parameters={head!r})",
        "- models: Hugging Face configs with random weights, default attention (SDPA), called with input_ids and a "
        "padding attention_mask (see bench/compile.py); weights: bytes of the parameters and buffers, tied ones once",
        "- compile: compile_model's wall time (export, import, passes, iree-compile); peak RSS: the compiling process "
        "and its iree-compile child, sampled from /proc every 50 ms; constant: RSS before the model is built "
        "(Python, torch, transformers and the compiler's libraries, loaded by compiling a one-layer model first); over weights: (peak - constant) / weights, goal <= 1.5",
        "- load: the saved file loaded by `flashlift.load` in a fresh process (IREE runtime maps its parameters), "
        "run once: its time to load, its peak RSS ((peak - constant) / weights; the mapped file's pages count, and on "
        "the CPU IREE's data tiling packs each linear layer's weights into a copy at the first call: the anonymous "
        "part) and its answer against the compiling process's (which, too, runs the module from its file once the "
        "torch model is freed)",
        "- err: ||out - ref|| / ||ref|| of the logits (last hidden state for BERT) against PyTorch in the model's dtype "
        "(tolerance 1e-4 f32, 5e-3 f16/bf16); in brackets PyTorch's model in its dtype and flashlift's, both against PyTorch run in f32",
        "",
        "| model | params | weights | compile | peak RSS | constant | over weights | file | load in a fresh process | err vs PyTorch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ] + [row(r) for r in rows]
    before = [f"{n}: {v}" for n, v in BEFORE.items()]
    lines += ["", "Before parameters left the IR (d325afe, weights as constants in the IR, same machine): " + "; ".join(before)
              + " (9-10x the weights)."]
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    with open(os.path.splitext(out)[0] + ".json.tmp", "w") as f:
        json.dump(rows, f, indent=1)
    os.replace(os.path.splitext(out)[0] + ".json.tmp", os.path.splitext(out)[0] + ".json")
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    c.add_argument("name", choices=sorted(MODELS))
    c.add_argument("--parameters", default="archive")
    c.add_argument("--work", required=True)
    ld = sub.add_parser("load")
    ld.add_argument("name", choices=sorted(MODELS))
    ld.add_argument("--work", required=True)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=sorted(MODELS))
    p.add_argument("--parameters", default="archive", choices=("archive", "inline"))
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "compile-cpu.md"))
    p.add_argument("--render", action="store_true", help="rewrite --out from its .json (no measuring)")
    args = p.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "python"))
    if args.cmd == "child":
        return child(args.name, args.parameters, args.work) or 0
    if args.cmd == "load":
        return child_load(args.name, args.work) or 0
    if args.render:
        with open(os.path.splitext(args.out)[0] + ".json") as f:
            print(write(json.load(f), args.out))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="flashlift-bench-compile-") as work:
        for name in args.models:
            rows.append(measure(name, args.parameters, work))
            print(row(rows[-1]), flush=True)
    print(write(rows, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
