"""`funcnet gradcheck` and `funcnet graph`."""

from __future__ import annotations

import json
import shutil

import pytest

from funcnet.cli import main


def test_gradcheck_agrees_and_writes_a_report(tmp_path, capsys):
    rc = main(["gradcheck", "--sizes", "3", "4", "2", "--activation", "sigmoid", "--loss", "mse",
               "--batch", "4", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "[0]['w']  (3, 4)  jax vs tracer" in out
    assert "numerical vs manual" in out and "all methods agree" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is True and report["sizes"] == [3, 4, 2]
    rows = report["reports"]["sigmoid"]["rows"]
    assert len(rows) == 4 * 6  # 4 leaves x 6 pairs of the 4 methods
    # the exact methods agree far inside their stated tolerance
    assert max(r["max_rel_error"] for r in rows if "numerical" not in r["methods"]) < 1e-10


def test_gradcheck_exits_nonzero_on_disagreement(tmp_path, capsys):
    # a step of 0.5 makes finite differences wrong by O(h²) ≈ 1e-2: the check must say so
    rc = main(["gradcheck", "--sizes", "2", "3", "1", "--methods", "jax", "numerical", "--eps", "0.5",
               "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "MISMATCH" in out and "GRADIENTS DISAGREE" in out
    assert json.loads((tmp_path / "report.json").read_text())["ok"] is False


def test_gradcheck_all_activations_with_cross_entropy(tmp_path, capsys):
    rc = main(["gradcheck", "--sizes", "3", "3", "3", "--activation", "all", "--loss", "softmax_cross_entropy",
               "--methods", "tracer", "manual", "--batch", "3", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert sorted(report["reports"]) == sorted(["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
                                                "softplus", "gelu", "silu", "softmax", "log_softmax"])
    assert "log_softmax  ok" in out


def test_graph_explains_the_lecture_example(tmp_path, capsys):
    rc = main(["graph", "q = x + y; f = q * z", "--var", "x=-2", "--var", "y=5", "--var", "z=-4",
               "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    # by hand: f = (x + y) z; df/dx = df/dy = z = -4, df/dz = x + y = 3
    assert "f = multiply(q, z) = -12" in out
    assert "df/dx = -4" in out and "df/dy = -4" in out and "df/dz = 3" in out
    dot = (tmp_path / "graph.dot").read_text()
    assert dot.startswith("digraph") and "q = add" in dot
    data = json.loads((tmp_path / "graph.json").read_text())
    assert data["output"] == -12.0 and data["gradients"] == {"x": -4.0, "y": -4.0, "z": 3.0}
    if shutil.which("dot"):
        assert (tmp_path / "graph.svg").read_text().lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE"))
        assert (tmp_path / "graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "Graphviz 'dot' is not installed" in out


def test_graph_neuron_with_sigmoid(tmp_path, capsys):
    rc = main(["graph", "sigmoid(w0*x0 + w1*x1 + w2)", "--var", "w0=2", "--var", "x0=-1", "--var", "w1=-3",
               "--var", "x1=-2", "--var", "w2=-3", "--out", str(tmp_path)])
    assert rc == 0
    g = json.loads((tmp_path / "graph.json").read_text())["gradients"]
    # by hand: s = w0 x0 + w1 x1 + w2 = 1, σ'(1) = σ(1)(1 - σ(1)); ∂/∂w0 = σ'(1)·x0
    import math
    sp = 1 / (1 + math.exp(-1)) * (1 - 1 / (1 + math.exp(-1)))
    for name, want in {"w0": -sp, "x0": 2 * sp, "w1": -2 * sp, "x1": -3 * sp, "w2": sp}.items():
        assert g[name] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("argv, message", [
    (["graph", "x + foo", "--var", "x=1"], "argument expr: unknown name 'foo'"),
    (["graph", "__import__('os')", "--var", "x=1"], "argument expr: unknown function '__import__'"),
    (["graph", "x[0]", "--var", "x=1"], "argument expr: unsupported syntax"),
    (["graph", "x +", "--var", "x=1"], "argument expr: cannot parse"),
    (["graph", "x", "--var", "x"], "argument --var: expected NAME=VALUE"),
    (["graph", "x", "--var", "x=abc"], "argument --var: the value of x must be a number"),
    (["gradcheck", "--sizes", "3"], "argument --sizes: needs at least two widths"),
])
def test_bad_arguments_give_clear_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"funcnet {argv[0]}: error: {message}" in err and "Traceback" not in err


def test_graph_without_graphviz_writes_dot_only(tmp_path, capsys, monkeypatch):
    import funcnet.cli._graph as graph_cmd

    monkeypatch.setattr(graph_cmd.shutil, "which", lambda name: None)
    rc = main(["graph", "tanh(x) * y", "--var", "x=0.5", "--var", "y=2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "Graphviz 'dot' is not installed" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.dot", "graph.json"]
    # by hand: d/dx tanh(x)·y = y(1 - tanh²x), d/dy = tanh x
    import math
    g = json.loads((tmp_path / "graph.json").read_text())["gradients"]
    assert g["x"] == pytest.approx(2 * (1 - math.tanh(0.5) ** 2), rel=1e-12)
    assert g["y"] == pytest.approx(math.tanh(0.5), rel=1e-12)
