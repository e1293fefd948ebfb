"""Smoke tests: the gradient-checking examples run, reproduce the worked numbers, and the docstring examples hold."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import runpy

import jax
import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def test_worked_2_2_1_example(capsys):
    mod = runpy.run_path(str(EXAMPLES / "worked_2_2_1.py"), run_name="worked_2_2_1")
    with jax.enable_x64(True):
        result = mod["main"]()
    out = capsys.readouterr().out
    assert result["report"].ok and "OK: max abs error" in out
    # independent reference: the chain rule written out with the lecture's numbers
    x1 = np.array([0.7, 0.3])
    x2 = np.tanh(x1)
    r = x2[0] - x2[1] - 0.5                                  # x3 - y
    np.testing.assert_allclose(result["dW1"], [[r * x2[0], r * x2[1]]], rtol=1e-14)
    dx1 = r * np.array([1.0, -1.0]) * (1 - x2 ** 2)
    np.testing.assert_allclose(result["dW0"], np.outer(dx1, [1.0, 0.1]), rtol=1e-14)
    # the printed 4-decimal values a reader checks against the slides
    np.testing.assert_allclose(result["dW1"], [[-0.1130, -0.0545]], atol=5e-5)
    np.testing.assert_allclose(result["dW0"], [[-0.1187, -0.0119], [0.1711, 0.0171]], atol=5e-5)
    # the delta rule's (in, out) gradient is the transpose of the lecture layout
    np.testing.assert_allclose(result["delta_rule"][0]["w"].T, result["dW0"], rtol=1e-14)
    # one descent step lowers the loss (values computed by hand: ½(x3 - y)² before the step)
    assert result["loss_before"] == pytest.approx(0.5 * r ** 2, rel=1e-14)
    assert result["loss_after"] < result["loss_before"]


def test_gradcheck_mlp_example(capsys):
    mod = runpy.run_path(str(EXAMPLES / "gradcheck_mlp.py"), run_name="gradcheck_mlp")
    assert mod["main"](sizes=(3, 4, 2), batch=4) is True
    out = capsys.readouterr().out
    assert "jax vs tracer" in out and "numerical vs manual" in out


