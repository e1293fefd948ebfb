"""The input-optimization examples and `funcnet visualize` run at smoke size and report sensible numbers."""

from __future__ import annotations

import json
import pathlib
import runpy
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    sys.path.insert(0, str(EXAMPLES))
    try:
        return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="smoke")
    finally:
        sys.path.remove(str(EXAMPLES))


def test_quadratic_example(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    x, history = _load("quadratic_input")["main"](["--steps", "50", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "f(x0) = 4.0000" in out and "x = [0.986, 0.982], f = 3.5007" in out   # the lectures' numbers
    assert history.shape == (51,) and (tmp_path / "quadratic_objective.png").stat().st_size > 1000


def test_visualize_digits_example(capsys):
    # PNG writing is covered by the quadratic example and the CLI test; this checks the numbers.
    _, probs, scores, _, fourier = _load("visualize_digits")["main"](["--epochs", "5", "--steps", "60",
                                                                        "--hidden", "32"])
    np.testing.assert_array_equal(probs.argmax(-1), np.arange(10))
    out = capsys.readouterr().out
    assert "class image -> predicted class" in out and "correlation with the class mean images" in out
    assert 0 <= scores.transfer <= 10 and np.sum(scores.nearest == np.arange(10)) >= 8
    assert scores.mean_centered > fourier.mean_centered          # the data prior: the class-specific part grows


def test_adversarial_digits_example(capsys):
    rows = _load("adversarial_digits")["main"](["--epochs", "5", "--pgd-steps", "3"])
    acc = {(name, eps): a for name, eps, a in rows}
    assert acc[("clean", 0.0)] > 0.85
    assert acc[("FGSM", 0.2)] < acc[("clean", 0.0)] - 0.3
    assert "| FGSM | 0.10 |" in capsys.readouterr().out


def test_cli_visualize_writes_pngs_and_summary(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from funcnet.cli import main

    rc = main(["visualize", "--out", str(tmp_path), "--epochs", "5", "--steps", "150", "--hidden-units", "4",
               "--quiet"])
    assert rc == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["class_predicted"] == list(range(10))
    assert summary["objective"] == "margin"                       # visualize_units' default on the class units
    # 5 epochs, 150 steps: the class images already look like their digits (0.62 measured; the plain recipe of
    # pixel space, logit, no transforms reaches about 0.5 on a fully trained network) and transfer (10/10 measured)
    scores = summary["class_image_scores"]
    assert len(scores["correlation"]) == 10 and all(-1 <= c <= 1 for c in scores["correlation"])
    assert scores["mean_correlation"] == pytest.approx(np.mean(scores["correlation"]), abs=1e-12)
    assert scores["mean_correlation"] > 0.5
    assert np.sum(np.array(scores["nearest_class_mean"]) == np.arange(10)) >= 8
    assert isinstance(scores["transfer"], int) and 9 <= scores["transfer"] <= 10
    assert summary["hidden_units"] == [0, 1, 2, 3]
    assert np.all(np.array(summary["hidden_pre_activation"]) > np.array(summary["hidden_pre_activation_data_max"]))
    for name in summary["files"]:
        assert (tmp_path / name).stat().st_size > 1000
    with pytest.raises(SystemExit) as e:
        main(["visualize", "--out", str(tmp_path), "--layer", "1", "--epochs", "1", "--quiet"])
    assert e.value.code == 2 and "argument --layer: 1 is not a hidden layer" in capsys.readouterr().err
