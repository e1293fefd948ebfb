"""fn.inputs.optimize_input: the lectures' quadratic, projections, optax optimizers, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnet as fn

A = np.array([[0.0, 2.0], [2.0, 0.0]])
B = np.array([-0.5, 0.5])
C = -2.0


def quad(x):
    return (x @ jnp.asarray(A, x.dtype) @ x + jnp.asarray(B, x.dtype) @ x + C) ** 2


def quad_np(x):
    return float((x @ A @ x + B @ x + C) ** 2)


def quad_grad_np(x):
    # Hand-derived: f = q², q = xᵀAx + bᵀx + c, ∇f = 2q (2Ax + b) for symmetric A.
    q = x @ A @ x + B @ x + C
    return 2.0 * q * (2.0 * A @ x + B)


def test_quadratic_first_step_matches_lecture_numbers():
    x, hist = fn.inputs.optimize_input(quad, jnp.array([1.0, 1.0]), steps=200, learning_rate=1e-3)
    assert hist.shape == (201,)
    np.testing.assert_allclose(float(hist[0]), 4.0, rtol=1e-6)      # f(x0) = (4 + 0 - 2)² = 4
    np.testing.assert_allclose(float(hist[1]), 3.5007, atol=5e-5)    # lecture value after one step
    x1, _ = fn.inputs.optimize_input(quad, jnp.array([1.0, 1.0]), steps=1, learning_rate=1e-3)
    np.testing.assert_allclose(np.asarray(x1), [0.986, 0.982], atol=1e-6)  # x0 - 1e-3 * [14, 18]


def test_quadratic_matches_numpy_loop_and_decreases_monotonically():
    with jax.enable_x64(True):
        x, hist = fn.inputs.optimize_input(quad, jnp.array([1.0, 1.0], jnp.float64), steps=200, learning_rate=1e-3)
        assert x.dtype == jnp.float64
        x, hist = np.asarray(x), np.asarray(hist)
    xr = np.array([1.0, 1.0])
    ref = [quad_np(xr)]
    for _ in range(200):
        xr = xr - 1e-3 * quad_grad_np(xr)
        ref.append(quad_np(xr))
    np.testing.assert_allclose(hist, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x, xr, rtol=1e-9)
    assert np.all(np.diff(hist) <= 1e-12), "gradient descent with a small step must not increase f"
    assert hist[-1] < 1e-3 * hist[0]


def test_maximize_ascends_and_args_are_passed():
    # f(x; a) = -‖x - a‖²: ascent moves x towards a; exact iterate x_t = a + (1-2γ)^t (x0 - a).
    a = jnp.array([0.5, -1.0, 2.0])
    f = lambda x, a: -jnp.sum((x - a) ** 2)
    x, hist = fn.inputs.optimize_input(f, jnp.zeros(3), steps=10, learning_rate=0.1, maximize=True, args=(a,))
    np.testing.assert_allclose(np.asarray(x), np.asarray(a) * (1 - 0.8 ** 10), rtol=1e-5)
    assert np.all(np.diff(np.asarray(hist)) >= 0)


def test_optax_optimizer_matches_hand_written_optax_loop():
    opt = optax.adam(0.05)
    x, hist = fn.inputs.optimize_input(quad, jnp.array([1.0, 1.0]), steps=30, optimizer=opt)
    xr, s = jnp.array([1.0, 1.0]), opt.init(jnp.array([1.0, 1.0]))
    for _ in range(30):
        u, s = opt.update(jax.grad(quad)(xr), s, xr)
        xr = optax.apply_updates(xr, u)
    np.testing.assert_allclose(np.asarray(x), np.asarray(xr), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(hist[-1]), float(quad(xr)), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("project, check", [
    (fn.inputs.box(0.95, 2.0), lambda x: np.all((x >= 0.95) & (x <= 2.0))),
    (fn.inputs.ball(jnp.array([1.0, 1.0]), 0.05, "l2"), lambda x: np.linalg.norm(x - 1.0) <= 0.05 + 1e-6),
    (fn.inputs.ball(jnp.array([1.0, 1.0]), 0.02, "linf"), lambda x: np.max(np.abs(x - 1.0)) <= 0.02 + 1e-6),
    (lambda x: jnp.clip(x, 0.9, 1.0), lambda x: np.all((x >= 0.9 - 1e-7) & (x <= 1.0))),
])
def test_projection_keeps_iterates_feasible(project, check):
    x, hist = fn.inputs.optimize_input(quad, jnp.array([1.0, 1.0]), steps=300, learning_rate=1e-3, project=project)
    assert check(np.asarray(x))
    # The constrained optimum is worse than the unconstrained one (f → 0) but better than the start.
    assert 1e-4 < float(hist[-1]) < 4.0


def test_box_projection_matches_clip():
    x = jnp.array([-0.5, 0.3, 2.0])
    np.testing.assert_array_equal(np.asarray(fn.inputs.box(0.0, 1.0)(x)), np.clip(np.asarray(x), 0, 1))
    chained = fn.inputs.chain(fn.inputs.ball(jnp.zeros(3), 1.0, "linf"), fn.inputs.box(0.0, 0.5))
    np.testing.assert_allclose(np.asarray(chained(x)), [0.0, 0.3, 0.5], rtol=1e-7)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(steps=3, learning_rate=0.1), ValueError, r"real scalar \(shape \(\)\), got .* shape \(2,\)"),
])
def test_non_scalar_objective_raises_before_compiling(kwargs, err, match):
    with pytest.raises(err, match=match):
        fn.inputs.optimize_input(lambda x: x ** 2, jnp.ones(2), **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0, learning_rate=0.1), "steps must be >= 1, got 0"),
    (dict(steps=3), "give learning_rate"),
    (dict(steps=3, learning_rate=0.1, optimizer=optax.sgd(0.1)), "not both"),
    (dict(steps=3, learning_rate=0.1, project="box"), "project must be a callable"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fn.inputs.optimize_input(quad, jnp.ones(2), **kwargs)


def test_second_call_with_same_config_does_not_recompile():
    from funcnet.inputs._optimize import _optimize_jit

    fn.inputs.optimize_input(quad, jnp.ones(2), steps=5, learning_rate=1e-3, project=fn.inputs.box(0.0, 1.0))
    before = _optimize_jit._cache_size()
    # New learning rate and new box bounds are data, not static config.
    fn.inputs.optimize_input(quad, jnp.ones(2) * 0.5, steps=5, learning_rate=2e-3, project=fn.inputs.box(0.1, 0.9))
    assert _optimize_jit._cache_size() == before
