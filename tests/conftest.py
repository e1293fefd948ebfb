"""Shared fixtures.

Conventions for every test file:
* float64 gradient checks run inside ``with jax.enable_x64(True):`` (the suite's default is float32);
* every numeric assertion compares against an independent reference with a written tolerance;
* randomness comes from fixed seeds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnet as fn


# Test files whose code paths are funcnet's own model, loss, data and gradient-checking code (no optax inside: optax's
# Adam mixes its int32 step count with floats, which strict promotion refuses) run with JAX's strict dtype promotion,
# so an implicit int/float or float32/float64 mix in funcnet's code is an error, not a silent upcast.
STRICT_DTYPE_FILES = {"test_models.py", "test_losses.py", "test_catalogue_models.py", "test_manual.py",
                      "test_per_example.py", "test_datasets.py", "test_check.py"}


@pytest.fixture(autouse=True)
def _strict_dtype_promotion(request):
    if request.node.path.name in STRICT_DTYPE_FILES:
        with jax.numpy_dtype_promotion("strict"):
            yield
    else:
        yield


@pytest.fixture(scope="session")
def digits_split():
    """The digits data split 80/10/10 with key 0, as JAX arrays: ((Xtr, ytr), (Xva, yva), (Xte, yte))."""
    parts = fn.datasets.split(jax.random.key(0), fn.datasets.digits())
    return jax.tree.map(jnp.asarray, parts)


@pytest.fixture(scope="session")
def trained_digits(digits_split):
    """A 64-64-10 ReLU MLP trained on digits (about 97% test accuracy): (model, params).

    Trained with a plain Adam loop so the fixture does not depend on `fn.fit`.
    """
    (Xtr, ytr), _, _ = digits_split
    model = fn.mlp([64, 64, 10], activation="relu")
    params = model.init(jax.random.key(1))
    opt = optax.adam(3e-3)
    bs = 64
    n = Xtr.shape[0] // bs * bs

    def loss_fn(p, x, y):
        return fn.losses.softmax_cross_entropy(model.apply(p, x), y)

    @jax.jit
    def epoch(p, s, key):
        idx = jax.random.permutation(key, Xtr.shape[0])[:n].reshape(-1, bs)

        def step(c, i):
            p, s = c
            g = jax.grad(loss_fn)(p, Xtr[i], ytr[i])
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (p, s), idx)[0]

    s = opt.init(params)
    for k in jax.random.split(jax.random.key(2), 30):
        params, s = epoch(params, s, k)
    return model, params


@pytest.fixture
def rng():
    """A seeded NumPy generator."""
    return np.random.default_rng(0)
