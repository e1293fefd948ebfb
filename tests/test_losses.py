"""fn.losses against closed forms and optax, under JAX and NumPy; gradients; bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnet as fn


@pytest.fixture
def data64():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 4)), rng.normal(size=(6, 4))


def test_mse_and_half_mse_closed_forms(data64):
    p, t = data64
    np.testing.assert_allclose(fn.losses.mse(p, t), np.mean((p - t) ** 2), rtol=1e-14)
    np.testing.assert_allclose(fn.losses.half_mse(p, t), np.sum((p - t) ** 2) / (2 * 6), rtol=1e-14)
    # single example and scalar: ½‖ŷ - y‖²
    np.testing.assert_allclose(fn.losses.half_mse(p[0], t[0]), 0.5 * np.sum((p[0] - t[0]) ** 2), rtol=1e-14)
    np.testing.assert_allclose(fn.losses.half_mse(np.float64(3.0), np.float64(5.0)), 2.0, rtol=0)


def test_mse_gradients(data64):
    with jax.enable_x64(True):
        p, t = map(jnp.asarray, data64)
        np.testing.assert_allclose(jax.grad(fn.losses.mse)(p, t), 2 * (p - t) / p.size, rtol=1e-13)
        np.testing.assert_allclose(jax.grad(fn.losses.half_mse)(p, t), (p - t) / 6, rtol=1e-13)


def test_binary_cross_entropy_matches_optax_and_is_stable():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        z = jnp.asarray(rng.normal(size=(5, 3)) * 4)
        y = jnp.asarray(rng.uniform(size=(5, 3)))
        np.testing.assert_allclose(
            fn.losses.binary_cross_entropy(z, y), optax.sigmoid_binary_cross_entropy(z, y).mean(), rtol=1e-12
        )
        # gradient (σ(z) - y) / count
        g = jax.grad(fn.losses.binary_cross_entropy)(z, y)
        np.testing.assert_allclose(g, (jax.nn.sigmoid(z) - y) / z.size, rtol=1e-12, atol=1e-15)
        big = jnp.array([1e4, -1e4])
        np.testing.assert_allclose(fn.losses.binary_cross_entropy(big, jnp.array([0.0, 1.0])), 1e4, rtol=1e-12)


def test_softmax_cross_entropy_int_and_onehot():
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        z = jnp.asarray(rng.normal(size=(8, 5)) * 3)
        labels = jnp.asarray(rng.integers(0, 5, size=8))
        ref = optax.softmax_cross_entropy_with_integer_labels(z, labels).mean()
        np.testing.assert_allclose(fn.losses.softmax_cross_entropy(z, labels), ref, rtol=1e-12)
        onehot = jax.nn.one_hot(labels, 5, dtype=jnp.float64)
        np.testing.assert_allclose(fn.losses.softmax_cross_entropy(z, onehot), ref, rtol=1e-12)
        # the lectures' gradient: (p - y) / m
        g = jax.grad(fn.losses.softmax_cross_entropy)(z, labels)
        np.testing.assert_allclose(g, (jax.nn.softmax(z) - onehot) / 8, rtol=1e-12, atol=1e-15)
        # closed form on one example: -log softmax
        z1 = jnp.array([1.0, 2.0, 3.0])
        want = -(3.0 - np.log(np.exp(1.0) + np.exp(2.0) + np.exp(3.0)))
        np.testing.assert_allclose(fn.losses.softmax_cross_entropy(z1, jnp.array(2)), want, rtol=1e-14)


def test_softmax_cross_entropy_integer_labels_under_jit_vmap_and_leading_axes():
    # integer labels pick log p[y] with a gather; the one-hot targets path is the independent reference
    with jax.enable_x64(True):
        rng = np.random.default_rng(5)
        z = jnp.asarray(rng.normal(size=(3, 4, 6)) * 2)
        y = jnp.asarray(rng.integers(0, 6, size=(3, 4)))
        onehot = jax.nn.one_hot(y, 6, dtype=jnp.float64)
        ref = fn.losses.softmax_cross_entropy(z, onehot)
        got = jax.jit(fn.losses.softmax_cross_entropy)(z, y)                      # labels traced
        np.testing.assert_allclose(got, ref, rtol=1e-13)
        per_row = jax.vmap(fn.losses.softmax_cross_entropy)(z, y)
        np.testing.assert_allclose(per_row, jax.vmap(fn.losses.softmax_cross_entropy)(z, onehot), rtol=1e-13)
        g = jax.jit(jax.grad(fn.losses.softmax_cross_entropy))(z, y)
        np.testing.assert_allclose(g, (jax.nn.softmax(z) - onehot) / 12, rtol=1e-12, atol=1e-15)


def test_softmax_cross_entropy_without_take_along_axis_uses_one_hot(monkeypatch):
    # an Array API namespace without take_along_axis: integer labels go through the one-hot product
    import types

    from funcnet import losses as _losses

    plain = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("_")})
    del plain.take_along_axis
    monkeypatch.setattr(_losses, "array_namespace", lambda *a: plain)
    rng = np.random.default_rng(6)
    z, y = rng.normal(size=(5, 4)), rng.integers(0, 4, size=5)
    monkeypatch.undo()
    ref = fn.losses.softmax_cross_entropy(z, y)                               # take_along_axis path
    monkeypatch.setattr(_losses, "array_namespace", lambda *a: plain)
    np.testing.assert_allclose(fn.losses.softmax_cross_entropy(z, y), ref, rtol=1e-14)
    want = -np.mean(z[np.arange(5), y] - np.log(np.exp(z).sum(axis=1)))      # closed form
    np.testing.assert_allclose(ref, want, rtol=1e-13)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    z = jnp.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], jnp.float32)
    y = jnp.array([0, 0])
    loss = fn.losses.softmax_cross_entropy(z, y)
    np.testing.assert_allclose(loss, (0.0 + 1e4) / 2, rtol=1e-6)
    g = jax.grad(fn.losses.softmax_cross_entropy)(z, y)
    assert np.all(np.isfinite(g))


def test_losses_run_in_numpy():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 3))
    y = np.array([0, 2, 1, 1])
    out = fn.losses.softmax_cross_entropy(z, y)
    with jax.enable_x64(True):
        ref = optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(z), jnp.asarray(y)).mean()
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_l2_penalty_skips_biases():
    params = [{"w": np.array([[1.0, 2.0]]), "b": np.array([10.0, 10.0])}, {"w": np.array([[3.0], [4.0]]), "b": np.array([5.0])}]
    np.testing.assert_allclose(fn.losses.l2_penalty(params), 0.5 * (1 + 4 + 9 + 16), rtol=0)
    jp = jax.tree.map(jnp.asarray, params)
    g = jax.grad(fn.losses.l2_penalty)(jax.tree.map(lambda a: a.astype(jnp.float32), jp))
    np.testing.assert_allclose(g[1]["w"], [[3.0], [4.0]], rtol=0)
    np.testing.assert_array_equal(g[0]["b"], [0.0, 0.0])


def test_loss_bad_inputs():
    with pytest.raises(ValueError, match=r"same shape, got \(3,\) and \(4,\)"):
        fn.losses.mse(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\).*\[0, 3\]"):
        fn.losses.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"integer labels must have shape \(2,\)"):
        fn.losses.softmax_cross_entropy(np.zeros((2, 3)), np.array([[0], [1]]))
    with pytest.raises(ValueError, match=r"one-hot/probability targets must have the logits' shape"):
        fn.losses.softmax_cross_entropy(np.zeros((2, 3)), np.zeros((2, 4)))
