"""funcnet.optim.ema_momentum against its closed-form recursion."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnet as fn


@pytest.mark.parametrize("alpha, lr", [(0.9, 0.1), (0.5, 0.03), (0.0, 0.2)])
def test_ema_momentum_matches_closed_form(alpha, lr):
    # Δ_t = (1 - α) Σ_{s<=t} α^{t-s} g_s  and  θ_T = θ_0 - γ Σ_t Δ_t, in float64
    rng = np.random.default_rng(0)
    T = 12
    grads = rng.normal(size=(T, 5))
    theta0 = rng.normal(size=5)
    deltas = np.array([(1 - alpha) * sum(alpha ** (t - s) * grads[s] for s in range(t + 1)) for t in range(T)])
    ref = theta0 - lr * np.cumsum(deltas, axis=0)
    with jax.enable_x64(True):
        opt = fn.optim.ema_momentum(lr, alpha=alpha)
        theta = jnp.asarray(theta0)
        state = opt.init(theta)
        for t in range(T):
            upd, state = opt.update(jnp.asarray(grads[t]), state, theta)
            theta = optax.apply_updates(theta, upd)
            np.testing.assert_allclose(np.asarray(theta), ref[t], rtol=1e-12, atol=1e-12)


def test_ema_momentum_accepts_schedules_and_inject_hyperparams():
    sched = optax.linear_schedule(0.1, 0.0, 10)
    with jax.enable_x64(True):
        opt = fn.optim.ema_momentum(sched, alpha=0.5)
        state = opt.init(jnp.zeros(1))
        upd, state = opt.update(jnp.ones(1), state)
        np.testing.assert_allclose(np.asarray(upd), [-0.1 * 0.5], rtol=1e-7)  # optax evaluates the schedule in float32
        inj = optax.inject_hyperparams(fn.optim.ema_momentum)(learning_rate=0.2, alpha=0.5)
        s = inj.init(jnp.zeros(1))
        upd, s = inj.update(jnp.ones(1), s)
        np.testing.assert_allclose(np.asarray(upd), [-0.2 * 0.5], rtol=1e-12)
        np.testing.assert_allclose(float(s.hyperparams["learning_rate"]), 0.2, rtol=1e-12)


@pytest.mark.parametrize("kw, match", [(dict(learning_rate=-0.1), "learning_rate must be >= 0"),
                                       (dict(learning_rate=0.1, alpha=1.0), r"alpha must lie in \[0, 1\)"),
                                       (dict(learning_rate=0.1, alpha=-0.1), r"alpha must lie in \[0, 1\)")])
def test_ema_momentum_rejects_bad_hyperparameters(kw, match):
    with pytest.raises(ValueError, match=match):
        fn.optim.ema_momentum(**kw)
