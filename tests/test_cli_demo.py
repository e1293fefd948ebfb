"""`funcnet demo` and `funcnet visualize` run end to end at smoke size and write what they promise."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "funcnet", *args], capture_output=True, text=True, timeout=timeout)


def test_demo_smoke(tmp_path):
    proc = _run("demo", "--epochs", "3", "--steps", "30", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in summary["files"]:
        assert (tmp_path / name).is_file(), name
    assert {"history.png", "class_units.png", "fgsm_examples.png", "gradcheck.txt"} <= set(summary["files"])
    # 3 epochs of Adam on digits: far above chance (0.1); the full demo's accuracy is tested in test_train*.
    assert summary["test_accuracy"] > 0.85
    assert summary["gradcheck_ok"] is True and summary["gradcheck_max_rel_error"] < 1e-5
    # FGSM lowers accuracy, more for a larger eps
    accs = [row["accuracy"] for row in summary["fgsm"]]
    assert accs[0] < summary["test_accuracy"] and accs == sorted(accs, reverse=True)
    assert "jax vs tracer" in proc.stdout and "test accuracy" in proc.stdout


def test_cli_help_lists_every_command():
    proc = _run("--help")
    assert proc.returncode == 0
    for cmd in ("demo", "train", "visualize", "gradcheck", "graph"):
        assert cmd in proc.stdout
    assert _run().returncode == 2  # no command: help and a usage error


def test_demo_rejects_bad_arguments(tmp_path):
    proc = _run("demo", "--epochs", "0", "--out", str(tmp_path))
    assert proc.returncode == 2 and "funcnet demo: error: argument --epochs: must be >= 1, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []  # refused before any work
