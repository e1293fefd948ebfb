"""`funcnet demo`, `train` -> `visualize`, `--quiet`, and help without JAX: end to end at smoke size."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from funcnet.cli import main


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "funcnet", *args], capture_output=True, text=True, timeout=timeout)


def _strict(path):
    def refuse(token):
        raise AssertionError(f"{path.name} holds the non-standard JSON token {token}")
    return json.loads(path.read_text(), parse_constant=refuse)


def check_class_image_scores(scores):
    """summary.json's class-image scores: numbers in range, and the mean and the count they summarize agree."""
    corr, mean = scores["correlation"], scores["mean_correlation"]
    assert len(corr) == 10 and all(isinstance(c, float) and -1 <= c <= 1 for c in corr), corr
    assert isinstance(mean, float) and -1 <= mean <= 1 and mean == pytest.approx(sum(corr) / 10, abs=1e-12)
    assert isinstance(scores["transfer"], int) and 0 <= scores["transfer"] <= 10
    assert scores["transfer"] == sum(p == k for k, p in enumerate(scores["transfer_predicted"]))
    assert all(isinstance(c, int) and 0 <= c <= 9 for c in scores["nearest_class_mean"])


def test_demo_smoke(tmp_path):
    proc = _run("demo", "--quick", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = _strict(tmp_path / "summary.json")
    for name in summary["files"]:
        assert (tmp_path / name).is_file(), name
    assert {"checkpoint.npz", "history.png", "class_units.png", "fgsm_examples.png", "gradcheck.txt"} <= set(
        summary["files"])
    assert summary["sizes"] == [64, 32, 10]
    # 3 epochs of Adam on digits: far above chance (0.1); the full demo's accuracy is tested in test_train*.
    assert summary["test_accuracy"] > 0.8
    # the gradient check is of the network the demo trained, and says so
    text = (tmp_path / "gradcheck.txt").read_text()
    assert "trained network" in text and "layer sizes 64-32-10" in text and "2410 parameters" in text
    assert "[0]['w']  (64, 32)  jax vs tracer" in text
    assert summary["gradcheck_ok"] is True
    # FGSM lowers accuracy, more for a larger eps
    accs = [row["accuracy"] for row in summary["fgsm"]]
    assert accs[0] < summary["test_accuracy"] and accs == sorted(accs, reverse=True)
    assert "jax vs tracer" in proc.stdout and "[1/4] training" in proc.stdout and "compilation" in proc.stdout
    check_class_image_scores(summary["class_image_scores"])
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("test accuracy") and "correlation with the class mean images" in last
    assert f"transfer {summary['class_image_scores']['transfer']}/10" in last


def test_train_then_visualize_compose(tmp_path, capsys):
    train_out, vis_out = tmp_path / "train", tmp_path / "vis"
    assert main(["train", "--data", "digits", "--hidden", "16", "--epochs", "2", "--seed", "3",
                 "--out", str(train_out), "--quiet"]) == 0
    trained = _strict(train_out / "summary.json")
    assert main(["visualize", "--params", str(train_out / "checkpoint.npz"), "--steps", "5", "--hidden-units", "3",
                 "--epochs", "2", "--objective", "logit", "--jitter", "1.5", "--rotate", "0",
                 "--out", str(vis_out), "--quiet"]) == 0
    vis = _strict(vis_out / "summary.json")
    assert vis["sizes"] == [64, 16, 10] == trained["sizes"]
    # visualize tests the loaded model on the digits that training held out (the split of the training seed):
    # the same accuracy as train measured, up to float32 summation order
    assert vis["test_accuracy"] == pytest.approx(trained["test_accuracy"], abs=1e-6)
    assert len(vis["hidden_units"]) == 3 and (vis_out / "class_units.png").is_file()
    check_class_image_scores(vis["class_image_scores"])
    assert vis["objective"] == "logit"
    assert vis["class_recipe"] == {"lr": 0.05, "l2": 0.1, "tv": 0.0, "jitter": 1.5, "scale": 0.1, "rotate": 0.0}
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and out[0].startswith("test accuracy") and out[1].startswith("class confidence")  # --quiet


def test_quiet_prints_only_the_result_line(tmp_path, capsys):
    assert main(["train", "--data", "xor", "--hidden", "4", "--epochs", "2", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("test accuracy") and "best epoch" in out[0]
    assert main(["train", "--data", "xor", "--hidden", "4", "--epochs", "2", "--out", str(tmp_path)]) == 0
    loud = capsys.readouterr().out
    assert "the first epoch includes compilation" in loud and len(loud.strip().splitlines()) > 1


_HELP_WITHOUT_JAX = """
import sys
from funcnet.cli import main
for argv in ([], ["demo"], ["train"], ["visualize"], ["gradcheck"], ["graph"]):
    try:
        main([*argv, "--help"])
    except SystemExit as e:
        assert e.code == 0, e.code
print("jax imported:", "jax" in sys.modules, file=sys.stderr)
"""


def test_help_imports_no_jax():
    proc = subprocess.run([sys.executable, "-c", _HELP_WITHOUT_JAX], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for cmd in ("demo", "train", "visualize", "gradcheck", "graph"):
        assert f"usage: funcnet {cmd}" in proc.stdout
    assert "jax imported: False" in proc.stderr


def test_cli_help_lists_every_command():
    proc = _run("--help")
    assert proc.returncode == 0
    for cmd in ("demo", "train", "visualize", "gradcheck", "graph"):
        assert cmd in proc.stdout
    proc = _run()
    assert proc.returncode == 2 and "funcnet: error: the following arguments are required: COMMAND" in proc.stderr


def test_demo_rejects_bad_arguments(tmp_path):
    proc = _run("demo", "--epochs", "0", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "funcnet demo: error: argument --epochs: must be >= 1, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()  # refused before any work
