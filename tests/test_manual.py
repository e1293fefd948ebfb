"""The hand-derived delta rule (fn.manual.mlp_backprop) against jax.grad, in float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu", "softmax",
               "log_softmax")
LOSSES = ("mse", "half_mse", "softmax_cross_entropy", "binary_cross_entropy")
OUTPUTS = (None, "sigmoid", "tanh", "softmax", "log_softmax", "relu", "elu", "softplus", "leaky_relu")
SIZES = [3, 5, 4, 3]  # one shape everywhere, so JAX's per-shape op caches are shared between cases
RTOL = 1e-10  # the bar: the manual rule matches jax.grad to 1e-10 relative in float64


def _data(loss, lead, k, seed=0):
    rng = np.random.default_rng(seed)
    if loss == "softmax_cross_entropy":
        return rng.integers(0, k, size=lead)
    return rng.uniform(0.0, 1.0, size=(*lead, k))


def _assert_tree_close(got, want, rtol=RTOL):
    gl, wl = jax.tree.leaves(got), jax.tree.leaves(want)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(gl, wl):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == np.float64
        # relative to the leaf's scale, so exact zeros (dead relu units) need exact agreement up to rounding
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * 1e-3 * max(1.0, np.abs(w).max()))


def _init(model, seed):
    """float64 NumPy parameters (mlp_backprop then runs in NumPy; jax.grad is the reference)."""
    return jax.tree.map(np.asarray, model.init(jax.random.key(seed), dtype=jnp.float64))


def _jax_grad(model, params, x, y, loss):
    return jax.grad(lambda p: getattr(fn.losses, loss)(model.apply(p, x), y))(params)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_hidden_activation_and_loss_matches_jax(activation, loss):
    with jax.enable_x64(True):
        model = fn.mlp(SIZES, activation=activation)
        params = _init(model, 1)
        x = np.random.default_rng(2).normal(size=(6, 3))
        y = _data(loss, (6,), 3)
        _assert_tree_close(fn.manual.mlp_backprop(model, params, x, y, loss=loss), _jax_grad(model, params, x, y, loss))


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("output", OUTPUTS)
def test_every_output_activation_and_loss_matches_jax(output, loss):
    with jax.enable_x64(True):
        model = fn.mlp(SIZES, activation="tanh", output_activation=output)
        params = _init(model, 3)
        x = np.random.default_rng(4).normal(size=(6, 3))
        y = _data(loss, (6,), 3, seed=5)
        _assert_tree_close(fn.manual.mlp_backprop(model, params, x, y, loss=loss), _jax_grad(model, params, x, y, loss))


@pytest.mark.parametrize("lead", [(), (1,), (2, 3)])
@pytest.mark.parametrize("loss", ["half_mse", "softmax_cross_entropy", "mse"])
def test_single_example_and_extra_leading_axes(lead, loss):
    with jax.enable_x64(True):
        model = fn.mlp(SIZES, activation=["elu", "softplus"])
        params = _init(model, 0)
        x = np.random.default_rng(0).normal(size=(*lead, 3))
        y = _data(loss, lead, 3)
        _assert_tree_close(fn.manual.mlp_backprop(model, params, x, y, loss=loss), _jax_grad(model, params, x, y, loss))


def test_one_hot_targets_and_loss_functions_by_object():
    with jax.enable_x64(True):
        model = fn.mlp(SIZES, activation="sigmoid")
        params = _init(model, 0)
        x = np.random.default_rng(0).normal(size=(6, 3))
        labels = np.array([0, 2, 1, 1, 0, 2])
        onehot = np.eye(3)[labels]
        g_int = fn.manual.mlp_backprop(model, params, x, labels, loss=fn.losses.softmax_cross_entropy)
        g_hot = fn.manual.mlp_backprop(model, params, x, onehot, loss="softmax_cross_entropy")
        _assert_tree_close(g_int, _jax_grad(model, params, x, labels, "softmax_cross_entropy"))
        _assert_tree_close(g_hot, g_int)


def test_runs_on_jax_arrays_under_jit():
    with jax.enable_x64(True):
        model = fn.mlp(SIZES, activation="relu")
        params = model.init(jax.random.key(0), dtype=jnp.float64)
        x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 3)))
        y = jnp.asarray(np.random.default_rng(1).normal(size=(6, 3)))
        g = jax.jit(lambda p: fn.manual.mlp_backprop(model, p, x, y, "mse"))(params)
        _assert_tree_close(g, _jax_grad(model, params, x, y, "mse"))


def test_worked_2_2_1_example_by_hand():
    """The lectures' 2-2-1 tanh network; the reference is the chain rule written out in scalars."""
    W0 = np.array([[1.0, -3.0], [0.2, 1.0]])  # lecture layout (out, in)
    W1 = np.array([[1.0, -1.0]])
    x0, y = np.array([1.0, 0.1]), 0.5
    # x1 = W0 x0, x2 = tanh(x1), x3 = W1 x2, L = ½(x3 - y)²
    x1 = np.array([1.0 * 1.0 + -3.0 * 0.1, 0.2 * 1.0 + 1.0 * 0.1])
    x2 = np.tanh(x1)
    x3 = x2[0] - x2[1]
    dx3 = x3 - y
    dW1 = dx3 * x2                                   # ∂L/∂W1[0, j] = (x3 - y) x2_j
    dx2 = dx3 * np.array([1.0, -1.0])
    dx1 = dx2 * (1.0 - x2 ** 2)
    dW0 = np.outer(dx1, x0)                          # (out, in)
    model = fn.mlp([2, 2, 1], activation="tanh")
    params = [{"w": W0.T, "b": np.zeros(2)}, {"w": W1.T, "b": np.zeros(1)}]
    g = fn.manual.mlp_backprop(model, params, x0, np.array([y]), loss="half_mse")
    np.testing.assert_allclose(g[0]["w"], dW0.T, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(g[1]["w"].ravel(), dW1, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(g[0]["b"], dx1, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(g[1]["b"], [dx3], rtol=1e-14, atol=1e-16)
    # the numbers a reader can check on paper (4 decimals)
    np.testing.assert_allclose(g[1]["w"].ravel(), [-0.1130, -0.0545], atol=5e-5)


def test_custom_activation_is_refused_with_the_supported_list():
    model = fn.mlp([2, 2, 1], activation=lambda z: z ** 3)
    params = model.init(jax.random.key(0))
    with pytest.raises(ValueError, match="hand-derived derivatives only for the activations"):
        fn.manual.mlp_backprop(model, params, np.ones(2), np.ones(1))


def test_custom_loss_and_unknown_name_are_refused():
    model = fn.mlp([2, 2, 1])
    params = model.init(jax.random.key(0))
    with pytest.raises(ValueError, match="hand-derived rules only for the losses"):
        fn.manual.mlp_backprop(model, params, np.ones(2), np.ones(1), loss=lambda p, t: (p - t).sum())
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        fn.manual.mlp_backprop(model, params, np.ones(2), np.ones(1), loss="hinge")


def test_target_shape_errors_say_what_was_expected():
    model = fn.mlp([2, 3, 4])
    params = model.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \(5, 4\).*got \(5, 3\)"):
        fn.manual.mlp_backprop(model, params, np.ones((5, 2)), np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"integer labels .* must have shape \(5,\)"):
        fn.manual.mlp_backprop(model, params, np.ones((5, 2)), np.zeros((5, 1), int), loss="softmax_cross_entropy")
    with pytest.raises(TypeError, match="float targets"):
        fn.manual.mlp_backprop(model, params, np.ones((5, 2)), np.zeros((5, 4), int), loss="mse")
    with pytest.raises(TypeError, match="needs a funcnet MLP"):
        fn.manual.mlp_backprop(lambda p, x: x, params, np.ones(2), np.ones(4))
