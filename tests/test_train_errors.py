"""Bad input to fit fails clearly before compiling; non-finite losses stop (or skip) cleanly."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnet as fn
import funcnet.train._fit as _train

MODEL = fn.mlp([2, 3, 3])


def _loss(p, b):
    return fn.losses.softmax_cross_entropy(MODEL.apply(p, b[0]), b[1])


@pytest.fixture
def no_compile(monkeypatch):
    """Fail the test if fit gets as far as building its compiled epoch."""

    def boom(*a, **k):
        raise AssertionError("fit reached compilation")

    monkeypatch.setattr(_train, "get_programs", boom)


def _data(n=8):
    X = jnp.asarray(np.random.default_rng(0).normal(size=(n, 2)), jnp.float32)
    return X, jnp.arange(n, dtype=jnp.int32) % 3


P = MODEL.init(jax.random.key(0))
KW = dict(optimizer=optax.sgd(0.1), epochs=1, key=jax.random.key(0), progress=False)


@pytest.mark.parametrize("data, batch_size, match", [
    ((jnp.ones((8, 2)), jnp.zeros(7, jnp.int32)), 4, r"same leading length.*data\[0\]: 8, data\[1\]: 7"),
    ((jnp.ones((0, 2)), jnp.zeros(0, jnp.int32)), None, "empty"),
    ((), 4, "holds no arrays"),
    (_data(8), 9, "batch_size=9 is larger than the training data"),
    (_data(8), 0, "batch_size must be >= 1"),
    ((_data(8)[0], jnp.array([0, 1, 2, 3, 0, 1, 2, 5], jnp.int32)), 4, r"labels must lie in \[0, 3\)"),
])
def test_bad_data(no_compile, data, batch_size, match):
    with pytest.raises(ValueError, match=match):
        fn.fit(_loss, P, data, batch_size=batch_size, **KW)


def test_non_scalar_loss(no_compile):
    with pytest.raises(ValueError, match="must return a scalar"):
        fn.fit(lambda p, b: MODEL.apply(p, b[0]).sum(-1), P, _data(), batch_size=4, **KW)


@pytest.mark.parametrize("opt", [optax.sgd(-0.1), optax.adam(-1e-3),
                                 optax.inject_hyperparams(optax.sgd)(learning_rate=-0.1)])
def test_negative_learning_rate(no_compile, opt):
    with pytest.raises(ValueError, match="learning rate must be >= 0"):
        fn.fit(_loss, P, _data(), optimizer=opt, epochs=1, batch_size=4, key=jax.random.key(0))


def test_other_argument_errors(no_compile):
    with pytest.raises(ValueError, match="pass val_data"):
        fn.fit(_loss, P, _data(), batch_size=4, patience=2, **KW)
    with pytest.raises(ValueError, match="needs key"):
        fn.fit(_loss, P, _data(), optimizer=optax.sgd(0.1), epochs=1, batch_size=4)
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        fn.fit(_loss, P, _data(), optimizer=0.1, epochs=1, batch_size=4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="on_nonfinite"):
        fn.fit(_loss, P, _data(), batch_size=4, on_nonfinite="maybe", **KW)


def test_nan_stops_and_returns_params_with_a_finite_loss():
    # loss -w while w < 2.5, NaN after: sgd(1) moves w 0 -> 1 -> 2 -> 3, then the loss at w = 3 (the 4th step)
    # is NaN. w = 3 is finite but its loss is not: fit returns w = 2 (two unit steps), whose loss is -2.
    loss = lambda w, b: jnp.mean(b) * 0.0 + jnp.where(w < 2.5, -w, jnp.nan)
    with pytest.warns(_train.NonFiniteLossWarning, match="non-finite loss at epoch 1, step 4 of 10"):
        w, hist = fn.fit(loss, jnp.zeros(()), jnp.arange(10.0), optimizer=optax.sgd(1.0), epochs=5,
                         batch_size=1, key=jax.random.key(0), progress=False)
    assert float(w) == 2.0  # exact
    assert np.isfinite(float(loss(w, jnp.arange(10.0))))
    np.testing.assert_allclose(hist.train_loss, [-0.5], rtol=1e-7)  # mean of -0, -1: the two applied steps
    assert hist.steps == [2] and hist.steps_per_epoch == 10 and hist.partial  # a partial epoch, not a full one
    assert "non-finite loss" in hist.stop_reason


def test_nan_steps_can_be_skipped():
    # the gradient is NaN on the example 7 and 1 elsewhere: 9 unit steps per epoch
    loss = lambda w, b: jnp.mean(jnp.where(b == 7.0, jnp.nan, 1.0)) * w
    w, hist = fn.fit(loss, jnp.zeros(()), jnp.arange(10.0), optimizer=optax.sgd(0.5), epochs=2, batch_size=1,
                     key=jax.random.key(0), on_nonfinite="skip", progress=False)
    np.testing.assert_allclose(float(w), -0.5 * 18, rtol=1e-7)
    assert hist.skipped_steps == [1, 1] and hist.stop_reason is None
