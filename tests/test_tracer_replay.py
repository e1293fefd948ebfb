"""Graph.replay and Graph.consumers: re-evaluating a recorded graph with some node values replaced."""

from __future__ import annotations

import numpy as np
import pytest

from funcnet import tracer
from funcnet.tracer import numpy as tnp

RTOL = 1e-12  # the same float64 operations as the direct computation


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _mlp_graph(rng):
    w = rng.normal(size=(3, 4))
    b = rng.normal(size=(4,))
    x = rng.normal(size=(5, 3))

    def f(w, b):
        h = tracer.name(tnp.tanh(x @ w + b), "h")
        return tracer.name((h * h).sum(), "L")

    return tracer.trace(f, w, b), x, w, b


def test_replay_without_overrides_gives_the_recorded_output(rng):
    g, *_ = _mlp_graph(rng)
    np.testing.assert_allclose(g.replay({}), g.output.value, rtol=RTOL)


@pytest.mark.parametrize("key", ["name", "node", "index"])
def test_replay_an_intermediate_value(rng, key):
    g, *_ = _mlp_graph(rng)
    h_new = rng.normal(size=(5, 4))
    k = [n.name for n in g.nodes].index("h")
    which = {"name": "h", "node": g["h"], "index": k}[key]
    h_old, out_old = g["h"].value.copy(), float(g.output.value)
    np.testing.assert_allclose(g.replay({which: h_new}), (h_new * h_new).sum(), rtol=RTOL)
    np.testing.assert_array_equal(g["h"].value, h_old)  # the graph is unchanged
    assert float(g.output.value) == out_old


def test_replay_an_input_recomputes_everything_downstream(rng):
    g, x, w, b = _mlp_graph(rng)
    w2 = rng.normal(size=w.shape)
    expect = (np.tanh(x @ w2 + b) ** 2).sum()
    np.testing.assert_allclose(g.replay({"w": w2}), expect, rtol=RTOL)


def test_replay_gives_finite_differences_of_intermediates(rng):
    g, *_ = _mlp_graph(rng)
    h = g["h"].value
    r = rng.normal(size=h.shape)
    eps = 1e-6
    fd = (g.replay({"h": h + eps * r}) - g.replay({"h": h - eps * r})) / (2 * eps)
    np.testing.assert_allclose(fd, np.sum(g["h"].grad * r), rtol=1e-6)


def test_consumers(rng):
    g, *_ = _mlp_graph(rng)
    assert [n.op for n in g.consumers("h")] == ["multiply"]
    assert [n.op for n in g.consumers("w")] == ["matmul"]
    assert g.consumers(g.output) == []


def test_replay_rejects_an_unknown_node(rng):
    g, *_ = _mlp_graph(rng)
    with pytest.raises(KeyError, match="no node named 'nope'"):
        g.replay({"nope": 1.0})
    with pytest.raises(KeyError, match="expected a Node of this graph"):
        g.replay({99: 1.0})
