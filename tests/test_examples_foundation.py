"""The foundation examples run and print what they promise."""

from __future__ import annotations

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_mlp_pure_function_example():
    out = subprocess.run([sys.executable, str(EXAMPLES / "mlp_pure_function.py")], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert "parameters of [100, 2000, 10]: 222010" in out
    assert "batched: (2, 2)" in out


def test_my_gradients_example_test_file_passes():
    """examples/test_my_gradients.py is a pytest file users copy: it must pass as shipped."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", str(EXAMPLES / "test_my_gradients.py")],
                          cwd=EXAMPLES.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "3 passed" in proc.stdout
