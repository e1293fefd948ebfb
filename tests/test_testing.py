"""funcnet.testing: assert_grads_close and check_grads catch wrong derivative rules and pass on right ones.

References: closed-form derivatives written out by hand, and float64 central differences inside the checks.
The wrong rules are off by a known factor, far outside the stated tolerances; the right ones agree to ~1e-9.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn
from funcnet import testing, tracer
from funcnet._boundary import array_namespace


# ----------------------------------------------------------------------------- functions with known rules
def _sin_vjp(scale: float):
    """sin with a custom VJP whose rule is ``scale`` times the true cos (scale 1: correct)."""
    @jax.custom_vjp
    def s(x):
        return jnp.sin(x)

    s.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jnp.cos(x) * scale,))
    return s


def _sin_jvp(scale: float):
    """sin with a custom JVP whose tangent rule is ``scale`` times the true cos."""
    @jax.custom_jvp
    def s(x):
        return jnp.sin(x)

    s.defjvp(lambda p, t: (jnp.sin(p[0]), jnp.cos(p[0]) * scale * t[0]))
    return s


def _sin_jvp_frozen_second_order():
    """sin whose first derivative is right but whose derivative is held constant: d²/dx² is 0, not -sin."""
    @jax.custom_jvp
    def s(x):
        return jnp.sin(x)

    s.defjvp(lambda p, t: (jnp.sin(p[0]), jax.lax.stop_gradient(jnp.cos(p[0])) * t[0]))
    return s


def _sin_vjp_frozen_second_order():
    @jax.custom_vjp
    def s(x):
        return jnp.sin(x)

    s.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jax.lax.stop_gradient(jnp.cos(x)),))
    return s


X = np.array([0.3, -1.1, 0.7])


# ----------------------------------------------------------------------------- assert_grads_close
def test_assert_grads_close_passes_on_a_correct_mlp_loss():
    model = fn.mlp([3, 4, 2], activation="tanh")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)), rng.integers(0, 2, size=5)
    params = model.init(jax.random.key(0))
    loss = lambda p, x, y: fn.losses.softmax_cross_entropy(model.apply(p, x), y)  # noqa: E731
    report = testing.assert_grads_close(loss, params, x, y)
    assert report.ok and report.ran == ("jax", "tracer", "numerical") and len(report.rows) == 4 * 3
    with jax.enable_x64(True):  # independent reference: jax.grad in float64
        ref = jax.grad(loss)(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params), x, y)
    for got, want in zip(jax.tree.leaves(report.grads["tracer"]), jax.tree.leaves(ref)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)


def test_assert_grads_close_raises_with_the_report_on_a_wrong_custom_vjp():
    f = lambda x: jnp.sum(_sin_vjp(0.5)(x) ** 2)  # noqa: E731  (the rule halves d/dx sin)
    with pytest.raises(AssertionError, match=r"gradients disagree at leaf x \(jax vs numerical\)") as info:
        testing.assert_grads_close(f, X, methods=("jax", "fd"))
    err = info.value
    assert isinstance(err, testing.GradAssertionError)
    assert "MISMATCH" in str(err) and "first differing leaf: x (jax vs numerical" in str(err)
    # the JAX gradient is exactly half the truth d/dx Σ sin²x = 2 sin x cos x (closed form)
    truth = 2 * np.sin(X) * np.cos(X)
    np.testing.assert_allclose(err.report.grads["jax"], truth / 2, rtol=1e-12)
    np.testing.assert_allclose(err.report.grads["numerical"], truth, rtol=1e-8)
    # the same function with a correct rule passes
    testing.assert_grads_close(lambda x: jnp.sum(_sin_vjp(1.0)(x) ** 2), X, methods=("jax", "fd"))


def test_assert_grads_close_names_the_wrong_tracer_rule():
    cube = tracer.primitive(lambda x: x ** 3, "cube")
    tracer.defvjp(cube, lambda g, ans, x: g * 2 * x ** 2)  # wrong: 3x²

    def f(x):
        xp = array_namespace(x)
        return xp.sum(xp.tanh(cube(x) if isinstance(x, tracer.Box) else x ** 3))

    with pytest.raises(AssertionError, match=r"gradients disagree at leaf x \(jax vs tracer\)") as info:
        testing.assert_grads_close(f, X)
    assert "first differing node: x = input" in str(info.value) and "v1 = cube(x)" in str(info.value)


def test_a_method_that_cannot_run_is_skipped_with_its_reason():
    f = lambda x: jnp.sum(jnp.sin(x) * x)  # noqa: E731  (jax.numpy directly: the tracer cannot run it)
    report = testing.assert_grads_close(f, X)
    assert report.ran == ("jax", "numerical") and report.cannot_run["tracer"].startswith("TypeError:")
    assert "tracer: cannot run (TypeError:" in str(report)
    np.testing.assert_allclose(report.grads["jax"], np.cos(X) * X + np.sin(X), rtol=1e-12)  # closed form


def test_fewer_than_two_methods_that_ran_is_a_failure():
    f = lambda x: jnp.sum(jnp.sin(x))  # noqa: E731
    with pytest.raises(AssertionError, match=r"only 1 of the methods \('jax', 'tracer'\) could run f") as info:
        testing.assert_grads_close(f, X, methods=("jax", "tracer"))
    assert "tracer: cannot run" in str(info.value) and info.value.report.ran == ("jax",)


def test_tolerances_reach_the_comparison():
    # finite differences in float64 agree to ~1e-10 here: an rtol of 1e-14 on them must fail
    f = lambda x: jnp.sum(jnp.exp(x))  # noqa: E731
    testing.assert_grads_close(f, X, methods=("jax", "fd"))
    with pytest.raises(AssertionError, match="gradients disagree"):
        testing.assert_grads_close(f, X, methods=("jax", "fd"), fd_rtol=1e-14, fd_atol=0.0)


# ----------------------------------------------------------------------------- check_grads, JAX
def test_check_grads_passes_on_correct_functions_at_order_2():
    def f(w, x):  # pytree output, two arguments
        h = jnp.tanh(x @ w["a"] + w["b"])
        return {"h": h, "s": jnp.sum(h ** 2)}

    rng = np.random.default_rng(1)
    w = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    testing.check_grads(f, (w, rng.normal(size=(4, 3))), order=2)
    testing.check_grads(lambda x: _sin_vjp(1.0)(x) * x, (X,), order=2, modes=("rev",))
    testing.check_grads(lambda x: _sin_jvp(1.0)(x) * x, (X,), order=2)


@pytest.mark.parametrize("order", [1, 2])
def test_check_grads_catches_a_wrong_custom_vjp(order):
    with pytest.raises(AssertionError, match=r"reverse mode \(VJP\) of f disagrees .*derivative order 1"):
        testing.check_grads(lambda x: _sin_vjp(1.01)(x), (X,), order=order, modes=("rev",))


@pytest.mark.parametrize("order", [1, 2])
def test_check_grads_catches_a_wrong_custom_jvp(order):
    with pytest.raises(AssertionError, match=r"forward mode \(JVP\) of f disagrees .*derivative order 1"):
        testing.check_grads(lambda x: _sin_jvp(1.01)(x), (X,), order=order, modes=("fwd",))


def test_check_grads_catches_a_rule_wrong_only_at_second_order():
    f = _sin_jvp_frozen_second_order()
    testing.check_grads(f, (X,), order=1)  # the first derivative is right
    with pytest.raises(AssertionError, match=r"forward mode \(JVP\) of the JVP of f .*derivative order 2"):
        testing.check_grads(f, (X,), order=2, modes=("fwd",))
    g = _sin_vjp_frozen_second_order()
    testing.check_grads(g, (X,), order=1, modes=("rev",))
    with pytest.raises(AssertionError, match=r"reverse mode \(VJP\) of the VJP of f .*derivative order 2"):
        testing.check_grads(g, (X,), order=2, modes=("rev",))


def test_check_grads_is_deterministic_and_seeded():
    f = lambda x: _sin_vjp(1.5)(x)  # noqa: E731

    def message(seed):
        with pytest.raises(AssertionError) as info:
            testing.check_grads(f, (X,), order=1, modes=("rev",), seed=seed)
        return str(info.value)

    assert message(0) == message(0)
    assert message(0) != message(1)  # other random directions, other numbers


# ----------------------------------------------------------------------------- check_grads, tracer
def test_check_grads_tracer_reverse_mode_order_2():
    def f(w, x):
        xp = array_namespace(w, x)
        return xp.sum(xp.tanh(x @ w) ** 2)

    rng = np.random.default_rng(2)
    testing.check_grads(f, (rng.normal(size=(3, 2)), rng.normal(size=(4, 3))), order=2, modes=("rev",),
                        backend="tracer")


def test_check_grads_tracer_catches_a_wrong_rule():
    sq = tracer.primitive(lambda x: x * x, "square")
    tracer.defvjp(sq, lambda g, ans, x: g * x)  # wrong: 2x
    with pytest.raises(AssertionError, match=r"check_grads \(tracer\): reverse mode \(VJP\) of f disagrees"):
        testing.check_grads(lambda x: sq(x), (X,), order=1, modes=("rev",), backend="tracer")


def test_check_grads_tracer_forward_mode():
    """Needs tracer.jvp (forward mode, from the tracer-breadth work)."""
    def f(x):
        xp = array_namespace(x)
        return xp.sin(x) * xp.exp(x)

    testing.check_grads(f, (X,), order=2, modes=("fwd", "rev"), backend="tracer")


# ----------------------------------------------------------------------------- bad input
def test_check_grads_bad_input():
    f = lambda x: jnp.sin(x)  # noqa: E731
    with pytest.raises(TypeError, match=r"args must be a tuple .* got ndarray; write check_grads\(f, \(x,\)\)"):
        testing.check_grads(f, X)
    with pytest.raises(TypeError, match=r"order must be an int >= 1, got float 2.0"):
        testing.check_grads(f, (X,), order=2.0)
    with pytest.raises(ValueError, match=r"order must be >= 1, got 0"):
        testing.check_grads(f, (X,), order=0)
    with pytest.raises(ValueError, match=r"modes must be a non-empty tuple from \('rev', 'fwd'\), got \('bwd',\)"):
        testing.check_grads(f, (X,), modes=("bwd",))
    with pytest.raises(ValueError, match=r"backend must be one of \('jax', 'tracer'\), got 'torch'"):
        testing.check_grads(f, (X,), backend="torch")
    with pytest.raises(TypeError, match=r"args\[0\] has dtype int64"):
        testing.check_grads(f, (np.arange(3),))
    with pytest.raises(ValueError, match=r"outputs of f must be finite, but out holds 1 non-finite"):
        testing.check_grads(lambda x: jnp.log(x), (np.array([0.0, 1.0]),))
    with pytest.raises(ValueError, match="eps must be > 0"):
        testing.check_grads(f, (X,), eps=0.0)
