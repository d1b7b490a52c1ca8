# lit configuration for flashlift's FileCheck tests. Run: lit test/lit  (or the check-flashlift target)
import os
import shutil

import lit.formats

config.name = "flashlift"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["Inputs"]

# attn-opt and FileCheck come from the environment flashlift is installed in (the one running lit).
import sys

bindir = os.path.dirname(sys.executable)
config.environment["PATH"] = os.pathsep.join([bindir, config.environment.get("PATH", os.environ.get("PATH", ""))])
filecheck = shutil.which("FileCheck", path=config.environment["PATH"]) or shutil.which("filecheck", path=config.environment["PATH"])
if filecheck is None:
    lit_config.fatal("FileCheck not found: pip install filecheck")
config.substitutions.append(("FileCheck", filecheck))
for var in ("PYTHONPATH", "HOME", "TMPDIR"):
    if var in os.environ:
        config.environment[var] = os.environ[var]

# The CPU kernel's tests need what it runs on: x86-64 with AVX2 and FMA, and a C compiler.
def _cpu_kernel_available():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    except OSError:
        return False
    return {"avx2", "fma", "f16c"} <= set(flags) and any(shutil.which(c) for c in ("cc", "gcc", "clang"))


if _cpu_kernel_available():
    config.available_features.add("cpu-kernel")
