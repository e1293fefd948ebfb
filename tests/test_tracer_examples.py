"""The tracer's examples run and print the lectures' numbers."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_autodiff_gate_example(capsys):
    runpy.run_path(str(EXAMPLES / "autodiff_gate.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "dL/dx = -4" in out and "dL/dz = 3" in out
    # forward mode: the lectures' tangent table along x, and one jvp per input direction
    table = out.split("Forward mode (tangents")[1]
    assert "q = 3, tangent 1" in table and "L = -12, tangent -4" in table
    for line in ("jvp along x: L = -12, dL/dx = -4", "jvp along y: L = -12, dL/dy = -4", "jvp along z: L = -12, dL/dz = 3"):
        assert line in out
    assert "dJ/dw = 20, dJ/db = 10" in out
    assert "dy/dw1 = 0, dy/dw2 = 0.5" in out
    assert "4.5" in out


def test_tracer_mlp_example(capsys):
    mod = runpy.run_path(str(EXAMPLES / "tracer_mlp.py"))
    mod["main"](steps=10, n=64)
    out = capsys.readouterr().out
    diff = float(out.split("jax.grad| over all parameters:")[1].split()[0])
    assert diff < 1e-10  # the two engines agree in float64
    ours, ref = (float(part.split()[-1]) for part in out.split("directional derivative along v:")[1]
                 .splitlines()[0].split(","))
    assert abs(ours - ref) <= 1e-10 * abs(ref)  # tracer.jvp against jax.jvp, float64
    hv_diff = float(out.split("jax hvp| over all parameters:")[1].split()[0])
    assert hv_diff < 1e-10  # tracer.hvp (forward over reverse) against jax.jvp(jax.grad)
    losses = [float(l.split("loss")[1]) for l in out.splitlines() if l.startswith("step")]
    assert len(losses) == 2 and losses[1] < losses[0]  # plain gradient descent with tracer gradients
