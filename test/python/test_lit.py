"""Runs the lit + FileCheck suite (test/lit) as part of pytest, one test per .mlir file."""

import glob
import os
import subprocess
import sys

import pytest

LIT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lit")
FILES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(LIT_DIR, "*.mlir")))


@pytest.mark.parametrize("name", FILES)
def test_lit(name):
    proc = subprocess.run([sys.executable, "-c", "from lit.main import main; main()", "-v", os.path.join(LIT_DIR, name)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
