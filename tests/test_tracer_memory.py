"""grad spends its graph during the backward pass: forward values are freed early, held values are kept."""

from __future__ import annotations

import weakref

import numpy as np
import pytest

from funcnet import tracer
from funcnet.tracer import _memory, numpy as tnp

RTOL = 1e-12  # same float64 arithmetic in both computations


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _probe_prim(seen: list, refs: list):
    """An identity primitive whose rule records whether the weakly referenced arrays are already freed."""
    ident = tracer.primitive(lambda x: x, "ident_probe")
    tracer.defvjp(ident, lambda g, ans, x: (seen.append([r() is None for r in refs]), g)[1])
    return ident


def test_grad_frees_forward_values_before_reaching_the_inputs(rng):
    a = rng.normal(size=(3, 4))
    w0 = rng.normal(size=(2, 3))
    seen, refs = [], []
    ident = _probe_prim(seen, refs)

    def f(w):
        h = ident(w)
        z = h @ a           # matmul: its rule never reads its output
        u = tnp.tanh(z + 1.0)
        refs.extend([weakref.ref(z.value), weakref.ref(u.value)])
        return (u * u).sum()

    with _memory.threshold(0):  # the policy acts on arrays this small too (by default: >= 64 KiB)
        g = tracer.grad(f)(w0)
    t = np.tanh(w0 @ a + 1.0)
    np.testing.assert_allclose(g, (2 * t * (1 - t * t)) @ a.T, rtol=RTOL)
    assert seen == [[True, True]]  # both freed by the time the rule nearest the input ran


def test_vjp_keeps_its_graph_for_repeated_calls(rng):
    a = rng.normal(size=(3, 4))
    seen, refs = [], []
    ident = _probe_prim(seen, refs)

    def f(w):
        z = ident(w) @ a
        refs.append(weakref.ref(z.value))
        return tnp.tanh(z)

    w0 = rng.normal(size=(2, 3))
    out, vjp_fn = tracer.vjp(f, w0)
    ct = np.ones_like(out)
    (g1,) = vjp_fn(ct)
    (g2,) = vjp_fn(ct)
    np.testing.assert_allclose(g2, g1, rtol=RTOL)
    np.testing.assert_allclose(g1, (1 - out * out) @ a.T, rtol=RTOL)
    assert seen == [[False], [False]]


def test_values_the_caller_holds_survive_grad(rng):
    a = rng.normal(size=(3, 4))
    w0 = rng.normal(size=(2, 3))
    kept = []

    def f(w):
        z = w @ a
        kept.append(z)  # a side effect: the box escapes
        return (tnp.tanh(z), z * 2.0)

    def loss(w):
        u, z2 = f(w)
        return u.sum(), {"z2": z2, "u": u}

    g, aux = tracer.grad(loss, has_aux=True)(w0)
    z = w0 @ a
    np.testing.assert_allclose(aux["z2"], 2.0 * z, rtol=RTOL)
    np.testing.assert_allclose(aux["u"], np.tanh(z), rtol=RTOL)
    np.testing.assert_allclose(kept[0].value, z, rtol=RTOL)
    np.testing.assert_allclose(g, (1 - np.tanh(z) ** 2) @ a.T, rtol=RTOL)


def test_tanh_rule_matches_its_formula_at_second_order():
    x0 = np.array([-0.7, 0.2, 1.3])
    h = tracer.grad(lambda x: tracer.grad(lambda y: tnp.tanh(y).sum())(x).sum())(x0)
    t = np.tanh(x0)
    np.testing.assert_allclose(h, -2 * t * (1 - t * t), rtol=RTOL)
