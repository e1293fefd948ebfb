"""A catalogue of bad inputs to the gradient-checking API: each gives a clear error of the right type, at the
boundary, whose message says what was expected and what arrived.

numerical_grad, compare_grads, default_step, manual.mlp_backprop, manual.mlp_loss, testing.assert_grads_close,
testing.check_grads. TypeError: the wrong kind of thing; ValueError: the right kind with a wrong value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn
from funcnet import testing

MODEL = fn.mlp([3, 4, 2], activation="tanh")
P = jax.tree.map(np.asarray, MODEL.init(jax.random.key(0)))
X, Y = np.ones((5, 3)), np.full((5, 2), 0.5)
LABELS = np.array([0, 1, 0, 1, 1])
V = np.array([0.5, -1.0])
total = lambda x: jnp.sum(x ** 2)  # noqa: E731
ng, cg = fn.check.numerical_grad, fn.check.compare_grads

CASES = [
    # ---- numerical_grad
    ("ng: f not callable", lambda: ng(3, V), TypeError, ["f must be a function", "int"]),
    ("ng: no point", lambda: ng(total), TypeError, ["needs the point"]),
    ("ng: argnums float", lambda: ng(total, V, argnums=0.0), TypeError, ["argnums must be an int", "float 0.0"]),
    ("ng: argnums bool", lambda: ng(total, V, argnums=True), TypeError, ["argnums must be an int", "True"]),
    ("ng: argnums str", lambda: ng(total, V, argnums="0"), TypeError, ["argnums must be an int", "'0'"]),
    ("ng: argnums out of range", lambda: ng(total, V, argnums=1), ValueError, ["argnums=1", "out of range", "1 positional"]),
    ("ng: argnums repeated", lambda: ng(lambda a, b: total(a), V, V, argnums=(0, 0)), ValueError, ["names an argument twice"]),
    ("ng: argnums empty", lambda: ng(total, V, argnums=()), ValueError, ["at least one argument"]),
    ("ng: int leaf", lambda: ng(total, np.arange(3)), TypeError, ["float arguments", "int64", "astype(float)"]),
    ("ng: bool leaf", lambda: ng(total, np.ones(2, bool)), TypeError, ["float arguments", "bool"]),
    ("ng: complex leaf", lambda: ng(total, np.ones(2, complex)), TypeError, ["real float", "complex128"]),
    ("ng: nan point", lambda: ng(total, np.array([1.0, np.nan])), ValueError, ["not finite", "index (1,)"]),
    ("ng: no leaves", lambda: ng(lambda d: 1.0, {}), ValueError, ["no array leaves"]),
    ("ng: vector output", lambda: ng(lambda x: x * 2, V), TypeError, ["scalar", "shape (2,)"]),
    ("ng: int output", lambda: ng(lambda x: 3, V), TypeError, ["float scalar", "int"]),
    ("ng: tuple output without has_aux", lambda: ng(lambda x: (total(x), 1), V), TypeError, ["tuple of length 2", "has_aux=True"]),
    ("ng: has_aux with a scalar", lambda: ng(total, V, has_aux=True), TypeError, ["has_aux=True", "pair (value, aux)", "shape ()"]),
    ("ng: method", lambda: ng(total, V, method="backward"), ValueError, ["'central' or 'forward'", "'backward'"]),
    ("ng: eps zero", lambda: ng(total, V, eps=0.0), ValueError, ["positive finite step", "0.0"]),
    ("ng: eps str", lambda: ng(total, V, eps="a"), TypeError, ["eps must be a real number", "str"]),
    ("ng: eps nan", lambda: ng(total, V, eps=float("nan")), ValueError, ["eps must be finite"]),
    ("ng: f infinite at the point", lambda: ng(lambda x: jnp.sum(1 / x), np.array([0.0])), ValueError, ["f is not finite at the point"]),
    # ---- compare_grads
    ("cg: f not callable", lambda: cg(None, V), TypeError, ["f must be a function", "NoneType"]),
    ("cg: no point", lambda: cg(total), TypeError, ["needs the point"]),
    ("cg: argnums float", lambda: cg(total, V, argnums=0.0), TypeError, ["argnums must be an int", "float 0.0"]),
    ("cg: argnums out of range", lambda: cg(total, V, argnums=-2), ValueError, ["out of range"]),
    ("cg: has_aux with a scalar", lambda: cg(total, V, has_aux=True), TypeError, ["has_aux=True", "pair (value, aux)"]),
    ("cg: has_aux with a triple", lambda: cg(lambda x: (total(x), 1, 2), V, has_aux=True), TypeError, ["pair (value, aux)", "tuple of length 3"]),
    ("cg: one method", lambda: cg(total, V, methods=("jax",)), ValueError, ["at least two methods", "('jax',)"]),
    ("cg: one method as a string", lambda: cg(total, V, methods="jax"), ValueError, ["at least two methods"]),
    ("cg: unknown method", lambda: cg(total, V, methods=("jax", "autograd")), ValueError, ["distinct names", "'autograd'"]),
    ("cg: repeated method", lambda: cg(total, V, methods=("fd", "numerical")), ValueError, ["distinct names"]),
    ("cg: methods not names", lambda: cg(total, V, methods=3), TypeError, ["tuple of names", "int 3"]),
    ("cg: methods with a non-name", lambda: cg(total, V, methods=("jax", 1)), TypeError, ["tuple of names"]),
    ("cg: manual without mlp_loss", lambda: cg(total, V, methods=("jax", "manual")), ValueError, ["fn.manual.mlp_loss"]),
    ("cg: negative rtol", lambda: cg(total, V, rtol=-1.0), ValueError, ["rtol must be >= 0.0", "-1.0"]),
    ("cg: atol str", lambda: cg(total, V, atol="1e-3"), TypeError, ["atol must be a real number", "str"]),
    ("cg: numerical_rtol nan", lambda: cg(total, V, numerical_rtol=float("nan")), ValueError, ["numerical_rtol must be finite"]),
    ("cg: int leaf in a pytree", lambda: cg(lambda p: p[0].sum(), [V, {"n": np.arange(3)}]), TypeError, ["leaf [1]['n']", "int"]),
    ("cg: vector output", lambda: cg(lambda x: x, V), TypeError, ["scalar", "shape (2,)"]),
    ("cg: f infinite at the point", lambda: cg(lambda x: jnp.sum(jnp.log(x)), np.array([0.0, 1.0])), ValueError, ["not finite at the point"]),
    # ---- default_step
    ("default_step: int dtype", lambda: fn.check.default_step(np.int32), TypeError, ["float dtype", "int32"]),
    ("default_step: method", lambda: fn.check.default_step(np.float64, "backward"), ValueError, ["'central' or 'forward'"]),
    # ---- manual.mlp_backprop / mlp_loss
    ("mlp_backprop: not a model", lambda: fn.manual.mlp_backprop("m", P, X, Y), TypeError, ["funcnet MLP", "str"]),
    ("mlp_backprop: unknown loss", lambda: fn.manual.mlp_backprop(MODEL, P, X, Y, loss="hinge"), ValueError, ["unknown loss 'hinge'", "mse"]),
    ("mlp_backprop: custom loss", lambda: fn.manual.mlp_backprop(MODEL, P, X, Y, loss=lambda a, b: 0.0), ValueError, ["hand-derived rules only"]),
    ("mlp_backprop: custom activation", lambda: fn.manual.mlp_backprop(fn.mlp([3, 4, 2], activation=lambda z: z), P, X, Y), ValueError, ["hand-derived derivatives only", "custom callable"]),
    ("mlp_backprop: input width", lambda: fn.manual.mlp_backprop(MODEL, P, np.ones((5, 4)), Y), ValueError, ["width 3", "(5, 4)"]),
    ("mlp_backprop: target shape", lambda: fn.manual.mlp_backprop(MODEL, P, X, np.ones((4, 2))), ValueError, ["output's shape (5, 2)", "(4, 2)"]),
    ("mlp_backprop: integer targets for mse", lambda: fn.manual.mlp_backprop(MODEL, P, X, np.ones((5, 2), int)), TypeError, ["float targets", "integer"]),
    ("mlp_backprop: label out of range", lambda: fn.manual.mlp_backprop(MODEL, P, X, np.array([0, 1, 2, 0, 1]), loss="softmax_cross_entropy"), ValueError, ["[0, 2)", "[0, 2]"]),
    ("mlp_backprop: float labels", lambda: fn.manual.mlp_backprop(MODEL, P, X, LABELS.astype(float), loss="softmax_cross_entropy"), TypeError, ["integer class labels", "astype(int)"]),
    ("mlp_backprop: label shape", lambda: fn.manual.mlp_backprop(MODEL, P, X, LABELS[:4], loss="softmax_cross_entropy"), ValueError, ["must have shape (5,)", "(4,)"]),
    ("mlp_backprop: nan targets", lambda: fn.manual.mlp_backprop(MODEL, P, X, np.full((5, 2), np.nan)), ValueError, ["non-finite"]),
    ("mlp_backprop: bce targets outside [0, 1]", lambda: fn.manual.mlp_backprop(MODEL, P, X, np.full((5, 2), 2.0), loss="binary_cross_entropy"), ValueError, ["[0, 1]", "[2, 2]"]),
    ("mlp_backprop: params structure", lambda: fn.manual.mlp_backprop(MODEL, P[:1], X, Y), ValueError, ["2 layer dicts", "length 1"]),
    ("mlp_backprop: params shape", lambda: fn.manual.mlp_backprop(MODEL, [{"w": np.ones((3, 5)), "b": np.ones(5)}, P[1]], X, Y), ValueError, ["params[0]['w']", "(3, 5)", "expected (3, 4)"]),
    ("mlp_loss: not a model", lambda: fn.manual.mlp_loss(None, X, Y), TypeError, ["funcnet MLP", "NoneType"]),
    ("mlp_loss: unknown loss", lambda: fn.manual.mlp_loss(MODEL, X, Y, "hinge"), ValueError, ["unknown loss"]),
    # ---- testing.assert_grads_close
    ("assert_grads_close: one method", lambda: testing.assert_grads_close(total, V, methods=("jax",)), ValueError, ["at least two methods"]),
    ("assert_grads_close: argnums float", lambda: testing.assert_grads_close(total, V, argnums=0.0), TypeError, ["argnums must be an int"]),
    ("assert_grads_close: has_aux with a scalar", lambda: testing.assert_grads_close(total, V, has_aux=True), TypeError, ["pair (value, aux)"]),
    ("assert_grads_close: negative fd_rtol", lambda: testing.assert_grads_close(total, V, fd_rtol=-1e-3), ValueError, ["numerical_rtol must be >= 0.0"]),
    ("assert_grads_close: int argument", lambda: testing.assert_grads_close(total, np.arange(2)), TypeError, ["float arguments"]),
    # ---- testing.check_grads
    ("check_grads: f not callable", lambda: testing.check_grads("f", (V,)), TypeError, ["f must be a function", "str"]),
    ("check_grads: bare array as args", lambda: testing.check_grads(jnp.sin, V), TypeError, ["args must be a tuple", "ndarray", "(x,)"]),
    ("check_grads: empty args", lambda: testing.check_grads(jnp.sin, ()), ValueError, ["args is empty"]),
    ("check_grads: order float", lambda: testing.check_grads(jnp.sin, (V,), order=1.0), TypeError, ["order must be an int", "float"]),
    ("check_grads: order bool", lambda: testing.check_grads(jnp.sin, (V,), order=True), TypeError, ["order must be an int", "bool"]),
    ("check_grads: order 0", lambda: testing.check_grads(jnp.sin, (V,), order=0), ValueError, ["order must be >= 1", "0"]),
    ("check_grads: unknown mode", lambda: testing.check_grads(jnp.sin, (V,), modes=("rev", "side")), ValueError, ["modes must be", "'side'"]),
    ("check_grads: no modes", lambda: testing.check_grads(jnp.sin, (V,), modes=()), ValueError, ["non-empty"]),
    ("check_grads: modes not names", lambda: testing.check_grads(jnp.sin, (V,), modes=3), TypeError, ["modes must be a tuple", "int 3"]),
    ("check_grads: backend", lambda: testing.check_grads(jnp.sin, (V,), backend="torch"), ValueError, ["backend must be one of", "'torch'"]),
    ("check_grads: eps zero", lambda: testing.check_grads(jnp.sin, (V,), eps=0.0), ValueError, ["eps must be > 0"]),
    ("check_grads: eps negative", lambda: testing.check_grads(jnp.sin, (V,), eps=-1e-3), ValueError, ["eps must be >= 0.0"]),
    ("check_grads: rtol nan", lambda: testing.check_grads(jnp.sin, (V,), rtol=float("nan")), ValueError, ["rtol must be finite"]),
    ("check_grads: atol str", lambda: testing.check_grads(jnp.sin, (V,), atol="0"), TypeError, ["atol must be a real number"]),
    ("check_grads: seed negative", lambda: testing.check_grads(jnp.sin, (V,), seed=-1), ValueError, ["seed must be >= 0"]),
    ("check_grads: seed float", lambda: testing.check_grads(jnp.sin, (V,), seed=0.5), TypeError, ["seed must be an int"]),
    ("check_grads: int argument", lambda: testing.check_grads(jnp.sin, (np.arange(3),)), TypeError, ["args[0]", "int64"]),
    ("check_grads: nan argument", lambda: testing.check_grads(jnp.sin, ({"w": np.array([np.nan])},)), ValueError, ["args[0]['w']", "non-finite"]),
    ("check_grads: int output", lambda: testing.check_grads(lambda x: jnp.round(x).astype(int), (V,)), TypeError, ["outputs of f", "int"]),
    ("check_grads: infinite output", lambda: testing.check_grads(jnp.log, (np.array([0.0]),)), ValueError, ["outputs of f must be finite"]),
]


@pytest.mark.parametrize("call, error, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error, f"expected exactly {error.__name__}, got {type(info.value).__name__}"
    message = str(info.value)
    missing = [w for w in words if w not in message]
    assert not missing, f"message {message!r} lacks {missing}"


def test_the_catalogue_covers_every_checked_function():
    names = {c[0].split(":")[0] for c in CASES}
    assert names == {"ng", "cg", "default_step", "mlp_backprop", "mlp_loss", "assert_grads_close", "check_grads"}
    assert len(CASES) >= 80
