"""A compile killed by SIGTERM leaves no iree-compile running (its children end with it)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent("""
    import torch, flashlift
    layers = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(200)])
    flashlift.compile_model(layers, (torch.randn(64, 256),))
""")


def _children(pid: int, name: str) -> list:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(fields[1]) == pid and comm == name:
            found.append(int(entry))
    return found


def test_sigterm_ends_iree_compile():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, compilers = time.time() + 240, []
        while time.time() < deadline and not compilers and proc.poll() is None:
            compilers = _children(proc.pid, "iree-compile")
            time.sleep(0.05)
        assert compilers, "iree-compile never started (or finished too fast to test)"
        time.sleep(0.3)  # well inside the compile (several seconds for 200 layers)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.time() + 1.5
        while time.time() < deadline and any(os.path.exists(f"/proc/{p}") for p in compilers):
            time.sleep(0.05)
        left = [p for p in compilers if os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0]]
        assert not left, f"iree-compile {left} still running after its parent was killed"
    finally:
        if proc.poll() is None:
            proc.kill()
