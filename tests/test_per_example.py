"""fn.per_example_grads (vmap) against a Python loop of jax.grad."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn


def _setup():
    model = fn.mlp([4, 5, 3], activation="tanh")
    params = model.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, size=6))

    def loss_fn(p, batch):
        xb, yb = batch
        return fn.losses.softmax_cross_entropy(model.apply(p, xb), yb)

    return loss_fn, params, (x, y)


def test_matches_a_loop_over_examples():
    loss_fn, params, (x, y) = _setup()
    g = fn.per_example_grads(loss_fn, params, (x, y))
    grad_one = jax.jit(jax.grad(loss_fn))  # the reference: one example at a time, in a Python loop
    for i in range(x.shape[0]):
        ref = grad_one(params, (x[i:i + 1], y[i:i + 1]))
        for got, want in zip(jax.tree.leaves(g), jax.tree.leaves(ref)):
            assert got.shape == (6, *want.shape)
            np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)  # float32: vmap vs loop order


def test_mean_of_per_example_grads_is_the_batch_gradient():
    with jax.enable_x64(True):
        loss_fn, params, (x, y) = _setup()
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        g = fn.per_example_grads(loss_fn, params, (x.astype(jnp.float64), y))
        full = jax.jit(jax.grad(loss_fn))(params, (x.astype(jnp.float64), y))
        for got, want in zip(jax.tree.leaves(g), jax.tree.leaves(full)):
            np.testing.assert_allclose(got.mean(axis=0), want, rtol=1e-12, atol=1e-15)


def test_mismatched_leading_axes_are_refused():
    loss_fn, params, (x, y) = _setup()
    with pytest.raises(ValueError, match=r"same leading length.*batch\[0\]: 6, batch\[1\]: 5"):
        fn.per_example_grads(loss_fn, params, (x, y[:5]))
