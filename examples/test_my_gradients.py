"""Test your own gradients with funcnet.testing: copy this file into your test suite and adapt it.

    pytest examples/test_my_gradients.py

Three habits: check a hand-written derivative rule with `check_grads` (random directions, forward and
reverse mode, second order too); check a whole loss with `assert_grads_close` (jax.grad, funcnet's tracer
and finite differences must agree); and let a method that cannot run your code say so instead of failing.
"""

import jax
import jax.numpy as jnp
import numpy as np

import funcnet as fn
from funcnet import testing


# ---- your code: a softplus log(1 + eˣ) with a hand-written derivative rule, and a loss that uses an MLP
@jax.custom_jvp
def softplus(x):
    return jnp.logaddexp(x, 0.0)


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), jax.nn.sigmoid(x) * t        # d/dx log(1 + eˣ) = σ(x)


MODEL = fn.mlp([4, 8, 3], activation="tanh")


def loss(params, x, y):
    """Written against the array namespace of its inputs (funcnet's models and losses are), so the
    same code runs under jax.grad and under funcnet's tracer."""
    return fn.losses.softmax_cross_entropy(MODEL.apply(params, x), y) + 1e-3 * fn.losses.l2_penalty(params)


# ---- the tests
def test_softplus_rule_first_and_second_order():
    # the JVP rule, its transpose (VJP) and their derivatives, along seeded random directions
    testing.check_grads(softplus, (np.linspace(-3.0, 3.0, 7),), order=2, modes=("fwd", "rev"))


def test_loss_gradient_three_ways():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)
    params = MODEL.init(jax.random.key(0))
    report = testing.assert_grads_close(loss, params, x, y, methods=("jax", "tracer", "fd"))
    assert report.ran == ("jax", "tracer", "numerical")


def test_jax_only_code_is_checked_without_the_tracer():
    # softplus calls jax.numpy directly: the tracer cannot run it, says why, and jax and fd are compared
    report = testing.assert_grads_close(lambda x: jnp.sum(softplus(x) ** 2), np.array([-1.0, 0.5, 2.0]))
    assert "tracer" in report.cannot_run and report.ran == ("jax", "numerical")
