"""The tracer's examples run and print the lectures' numbers."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_autodiff_gate_example(capsys):
    runpy.run_path(str(EXAMPLES / "autodiff_gate.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "dL/dx = -4" in out and "dL/dz = 3" in out
    assert "dJ/dw = 20, dJ/db = 10" in out
    assert "dy/dw1 = 0, dy/dw2 = 0.5" in out
    assert "4.5" in out


def test_tracer_mlp_example(capsys):
    mod = runpy.run_path(str(EXAMPLES / "tracer_mlp.py"))
    mod["main"](steps=10, n=64)
    out = capsys.readouterr().out
    diff = float(out.split("jax.grad| over all parameters:")[1].split()[0])
    assert diff < 1e-10  # the two engines agree in float64
    losses = [float(l.split("loss")[1]) for l in out.splitlines() if l.startswith("step")]
    assert len(losses) == 2 and losses[1] < losses[0]  # plain gradient descent with tracer gradients
