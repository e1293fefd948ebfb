"""Catalogue of bad inputs to models, activations, losses, data sets and optimizers: each gets a clear error.

Every row is (case, call, exception type, words the message must contain). The call must raise that type (or a
subclass) at the API boundary, in funcnet's words: what was expected and what arrived. Companion files cover the
other areas (test_catalogue_train, _inputs, _check, _cli, and the tracer's no-silent-zero table).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn

MODEL = fn.mlp([3, 4, 2])
P = MODEL.init(jax.random.key(0))
INT_PARAMS = [{"w": jnp.ones((3, 4), jnp.int32), "b": jnp.zeros(4, jnp.int32)},
              {"w": jnp.ones((4, 2), jnp.int32), "b": jnp.zeros(2, jnp.int32)}]

CASES = [
    # models
    ("mlp float size", lambda: fn.mlp([3.7, 4, 2]), TypeError, ["sizes[0]", "int", "3.7"]),
    ("mlp bool size", lambda: fn.mlp([True, 4, 2]), TypeError, ["sizes[0]", "int"]),
    ("mlp zero width", lambda: fn.mlp([3, 0, 2]), ValueError, ["sizes[1]", ">= 1", "0"]),
    ("mlp one size", lambda: fn.mlp([3]), ValueError, ["at least two"]),
    ("mlp sizes not a list", lambda: fn.mlp(3), TypeError, ["sizes", "sequence"]),
    ("mlp unknown activation", lambda: fn.mlp([3, 4, 2], activation="bogus"), ValueError, ["unknown activation", "bogus"]),
    ("mlp unknown activation, no hidden layer", lambda: fn.mlp([3, 2], activation="bogus"), ValueError, ["bogus"]),
    ("mlp activation list length", lambda: fn.mlp([3, 4, 2], activation=["relu", "tanh"]), ValueError,
     ["one entry per hidden layer", "1"]),
    ("mlp unknown init", lambda: fn.mlp([3, 4, 2], init="bogus"), ValueError, ["init", "bogus"]),
    ("init int seed", lambda: MODEL.init(0), TypeError, ["PRNG key", "jax.random.key(0)"]),
    ("init int dtype", lambda: MODEL.init(jax.random.key(0), dtype=jnp.int32), TypeError, ["float dtype", "int32"]),
    ("apply wrong width", lambda: MODEL.apply(P, jnp.ones(5)), ValueError, ["width 3", "(5,)"]),
    ("apply complex input", lambda: MODEL.apply(P, jnp.ones(3, jnp.complex64)), TypeError, ["real", "complex64"]),
    ("apply integer params", lambda: MODEL.apply(INT_PARAMS, jnp.ones(3)), TypeError, ["params[0]['w']", "int32"]),
    ("apply params of another model", lambda: MODEL.apply(fn.mlp([3, 5, 2]).init(jax.random.key(0)), jnp.ones(3)),
     ValueError, ["params[0]['w']", "(3, 5)", "(3, 4)"]),
    ("apply too few layers", lambda: MODEL.apply(P[:1], jnp.ones(3)), ValueError, ["list of 2 layer dicts"]),
    # activations
    ("activation by bad name", lambda: fn.activations.get("bogus"), ValueError, ["unknown activation", "bogus"]),
    ("activation not callable", lambda: fn.activations.get(3), TypeError, ["activation"]),
    # losses
    ("mse shapes", lambda: fn.losses.mse(jnp.zeros((4, 3)), jnp.zeros((4, 2))), ValueError, ["same shape", "(4, 3)", "(4, 2)"]),
    ("mse empty batch", lambda: fn.losses.mse(jnp.zeros((0, 3)), jnp.zeros((0, 3))), ValueError, ["empty batch", "(0, 3)"]),
    ("half_mse empty batch", lambda: fn.losses.half_mse(jnp.zeros((0,)), jnp.zeros((0,))), ValueError, ["empty batch"]),
    ("bce targets outside [0, 1]", lambda: fn.losses.binary_cross_entropy(jnp.zeros(2), jnp.array([-1.0, 2.0])),
     ValueError, ["[0, 1]", "-1.0", "2.0"]),
    ("bce shapes", lambda: fn.losses.binary_cross_entropy(jnp.zeros(2), jnp.zeros(3)), ValueError, ["same shape"]),
    ("sce scalar logits", lambda: fn.losses.softmax_cross_entropy(jnp.zeros(()), jnp.zeros((), jnp.int32)), ValueError,
     ["class axis"]),
    ("sce empty batch", lambda: fn.losses.softmax_cross_entropy(jnp.zeros((0, 3)), jnp.zeros((0,), jnp.int32)),
     ValueError, ["empty batch"]),
    ("sce label out of range", lambda: fn.losses.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 5])),
     ValueError, ["[0, 3)", "5"]),
    ("sce label shape", lambda: fn.losses.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 1, 2])),
     ValueError, ["integer labels must have shape (2,)"]),
    ("sce one-hot shape", lambda: fn.losses.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2, 4))),
     ValueError, ["logits' shape (2, 3)", "(2, 4)"]),
    ("l2 of a string leaf", lambda: fn.losses.l2_penalty({"w": "x"}), TypeError, ["params['w']", "float"]),
    ("l2 of nothing", lambda: fn.losses.l2_penalty([{"b": jnp.ones(2)}]), ValueError, ["no weight leaves"]),
    # data sets
    ("moons int seed", lambda: fn.datasets.moons(0, 10, 0.1), TypeError, ["PRNG key", "jax.random.key(0)"]),
    ("moons one point", lambda: fn.datasets.moons(jax.random.key(0), 1, 0.1), ValueError, ["n", ">= 2"]),
    ("moons float n", lambda: fn.datasets.moons(jax.random.key(0), 10.5, 0.1), TypeError, ["n", "int"]),
    ("moons negative noise", lambda: fn.datasets.moons(jax.random.key(0), 10, -0.1), ValueError, ["noise", ">= 0"]),
    ("split int seed", lambda: fn.datasets.split(0, fn.datasets.xor()), TypeError, ["PRNG key"]),
    ("split fractions", lambda: fn.datasets.split(jax.random.key(0), fn.datasets.xor(), (0.5, 0.6)), ValueError,
     ["sum to 1"]),
    ("split lengths differ", lambda: fn.datasets.split(jax.random.key(0), (np.zeros((4, 2)), np.zeros(3))),
     ValueError, ["same leading length", "4", "3"]),
    # optimizers
    ("ema alpha", lambda: fn.optim.ema_momentum(0.1, alpha=1.5), ValueError, ["alpha", "[0, 1)", "1.5"]),
    ("ema nan rate", lambda: fn.optim.ema_momentum(float("nan")), ValueError, ["learning_rate"]),
]


@pytest.mark.parametrize("case,call,exc,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(case, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    missing = [w for w in words if w not in message]
    assert not missing, f"{case}: message {message!r} lacks {missing}"


def test_checks_do_not_refuse_good_input():
    """The same functions on good input (NumPy ints, legacy keys, concrete and traced labels) run."""
    assert fn.mlp([np.int64(3), 4, 2]).sizes == (3, 4, 2)
    assert MODEL.apply(MODEL.init(jax.random.PRNGKey(0)), jnp.ones((5, 3), jnp.int32)).shape == (5, 2)
    y = jnp.array([0.0, 1.0])
    ref = float(np.mean(np.log1p(np.exp(0.0)) - 0.0 * np.asarray(y)))        # softplus(0) = log 2 for both
    np.testing.assert_allclose(float(jax.jit(fn.losses.binary_cross_entropy)(jnp.zeros(2), y)), ref, rtol=1e-6)
    np.testing.assert_allclose(float(jax.jit(fn.losses.softmax_cross_entropy)(jnp.zeros((2, 3)), jnp.array([0, 2]))),
                               np.log(3.0), rtol=1e-6)
