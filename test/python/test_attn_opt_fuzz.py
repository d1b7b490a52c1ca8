"""attn-opt on a few hundred mutated versions of the lit inputs (seeded, bounded in time).

Each mutant (a line deleted, duplicated or swapped, a number or type changed, a token
dropped, the file cut short) goes through `attn-opt --split-input-file --raise-attention
--remarks`. Whatever the input, attn-opt must exit 0 or 1, print no Python traceback, and
name a `file:line:col` for every error. The mutants run in one worker process (a crash of
the process itself fails the test and names the mutant).
"""

import glob
import os
import random
import re
import subprocess
import sys
import tempfile
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MUTANTS = 240
SECONDS = 240

WORKER = textwrap.dedent("""
    import contextlib, io, sys, time, traceback
    from flashlift.tools.attn_opt import main
    deadline = time.time() + float(sys.argv[2])
    for path in open(sys.argv[1]).read().split():
        if time.time() > deadline:
            break
        print("BEGIN", path, flush=True)
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = main([path, "--split-input-file", "--raise-attention", "--remarks", "-o", "-"])
        except SystemExit as e:  # argparse
            rc = e.code
        except BaseException:
            rc = "exception"
            err.write(traceback.format_exc())
        with open(path + ".err", "w") as f:
            f.write(err.getvalue())
        print("END", path, rc, flush=True)
""")


def mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    kind = rng.randrange(7)
    i = rng.randrange(len(lines))
    if kind == 0:
        del lines[i]
    elif kind == 1:
        lines.insert(i, lines[rng.randrange(len(lines))])
    elif kind == 2:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == 3:
        lines[i] = re.sub(r"\d+", lambda m: str(rng.choice([0, 1, 3, 7, 64, 999999])), lines[i], count=1)
    elif kind == 4:
        lines[i] = re.sub(r"\b(f32|f16|i1|i64|index)\b", lambda m: rng.choice(["f32", "f16", "bf16", "i8", "i1", "index"]), lines[i])
    elif kind == 5:
        tokens = lines[i].split(" ")
        if len(tokens) > 1:
            del tokens[rng.randrange(len(tokens))]
        lines[i] = " ".join(tokens)
    else:
        return text[:rng.randrange(len(text))]
    return "\n".join(lines) + "\n"


def test_attn_opt_survives_mutated_inputs():
    rng = random.Random(1234)
    sources = sorted(glob.glob(os.path.join(ROOT, "test", "lit", "*.mlir")))
    texts = [open(p).read() for p in sources]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n in range(MUTANTS):
            text = rng.choice(texts)
            chunks = text.split("// -----")
            text = rng.choice(chunks) if len(chunks) > 1 and rng.random() < 0.8 else text  # mostly one case
            path = os.path.join(tmp, f"mutant{n}.mlir")
            with open(path, "w") as f:
                f.write(mutate(text, rng))
            paths.append(path)
        listing = os.path.join(tmp, "paths.txt")
        with open(listing, "w") as f:
            f.write("\n".join(paths))
        proc = subprocess.run([sys.executable, "-c", WORKER, listing, str(SECONDS)], capture_output=True, text=True,
                              timeout=SECONDS + 120, cwd=ROOT)
        ended = re.findall(r"^END (\S+) (\S+)$", proc.stdout, re.MULTILINE)
        begun = re.findall(r"^BEGIN (\S+)$", proc.stdout, re.MULTILINE)
        assert len(begun) == len(ended), f"the worker died on {begun[-1]} (status {proc.returncode}): {proc.stderr[-2000:]}"
        assert len(ended) >= 50, f"only {len(ended)} mutants ran in {SECONDS} s"
        bad = []
        for path, rc in ended:
            err = open(path + ".err").read()
            located = all(re.match(r"^\S+:\d+:\d+: (error|remark|note|warning)|^attn-opt: ", l) for l in err.splitlines() if "error" in l)
            if rc not in ("0", "1") or "Traceback" in err or (rc == "1" and not re.search(r":\d+:\d+: error", err)) or not located:
                bad.append((os.path.basename(path), rc, err[-600:]))
        assert not bad, f"{len(bad)} of {len(ended)} mutants misbehaved, e.g. {bad[:3]}"
