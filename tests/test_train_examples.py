"""The training examples and `funcnet train`, at smoke size."""

from __future__ import annotations

import json
import pathlib
import runpy

import numpy as np
import pytest

import funcnet as fn
from funcnet.cli import main

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name, expect", [
    ("train_digits.py", "test accuracy"),
    ("regression_x2.py", "final train MSE"),
    ("xor_perceptron_vs_mlp.py", "perceptron"),
    ("select_hyperparameters.py", "reported once"),
])
def test_example_runs(name, expect, monkeypatch, capsys):
    monkeypatch.setenv("FUNCNET_SMOKE", "1")
    monkeypatch.setattr("sys.argv", [name])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    assert expect in capsys.readouterr().out


def test_cli_train_writes_history_plot_and_checkpoint(tmp_path, capsys):
    rc = main(["train", "--data", "xor", "--hidden", "4", "--activation", "tanh", "--optimizer", "ema_momentum",
               "--lr", "0.5", "--epochs", "3", "--batch-size", "0", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    hist = json.loads((tmp_path / "history.json").read_text())
    assert len(hist["train_loss"]) == 3 and len(hist["lr"]) == 3
    np.testing.assert_allclose(hist["lr"], [0.5] * 3, rtol=1e-7)
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = fn.load(tmp_path / "checkpoint.npz")
    assert ckpt["sizes"] == [2, 4, 2] and ckpt["params"][0]["w"].shape == (2, 4)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs_run"] == 3 and 0.0 <= summary["test_accuracy"] <= 1.0
    assert "test accuracy" in capsys.readouterr().out


def test_cli_train_rejects_negative_lr(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "xor", "--lr", "-1", "--epochs", "1", "--out", str(tmp_path), "--quiet"])
    assert e.value.code == 2 and "argument --lr: must be > 0, got -1" in capsys.readouterr().err
