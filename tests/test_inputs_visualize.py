"""fn.inputs.visualize_units and the regularizers: class units, hidden units, shapes, caching, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnet as fn
from funcnet.inputs._visualize import _visualize_jit

# The plain method: pixel space, no penalties, no random transformations (the references below assume it).
PLAIN = dict(space="pixel", l2=0.0, jitter=0, scale=0, rotate=0)
RECIPE = dict(input_shape=(8, 8), value_range=(0.0, 1.0), l2=1e-3, tv=0.05, steps=200, learning_rate=0.05)


def test_class_images_are_classified_as_their_class(trained_digits):
    model, params = trained_digits
    images = fn.inputs.visualize_units(model, params, units=range(10), key=jax.random.key(0), **RECIPE)
    assert images.shape == (10, 8, 8)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0      # the sigmoid range
    probs = np.asarray(jax.nn.softmax(model.apply(params, images.reshape(10, 64))))
    np.testing.assert_array_equal(probs.argmax(-1), np.arange(10))
    assert probs[np.arange(10), np.arange(10)].min() > 0.95, probs.diagonal()


@pytest.mark.parametrize("objective", ["probability"])   # "logit"/"log_probability": tests below
def test_other_class_objectives_reach_their_class(trained_digits, objective):
    model, params = trained_digits
    images = fn.inputs.visualize_units(model, params, units=[2, 7], key=jax.random.key(1), objective=objective,
                                       **RECIPE)
    probs = np.asarray(jax.nn.softmax(model.apply(params, images.reshape(2, 64))))
    np.testing.assert_array_equal(probs.argmax(-1), [2, 7])
    assert probs[[0, 1], [2, 7]].min() > 0.9


def test_hidden_units_reach_the_box_optimum_far_above_the_data(trained_digits, digits_split):
    model, params = trained_digits
    (Xtr, _), _, _ = digits_split
    w, b = np.asarray(params[0]["w"]), np.asarray(params[0]["b"])
    units = np.arange(16)
    images = fn.inputs.visualize_units(model, params, units=units, layer=0, key=jax.random.key(2),
                                       input_shape=(8, 8), value_range=(0.0, 1.0), parametrization="clip",
                                       objective="pre_activation", steps=200, learning_rate=0.05,
                                       jitter=0, scale=0, rotate=0, l2=0)
    z = np.einsum("ui,iu->u", np.asarray(images).reshape(16, 64), w[:, units]) + b[units]
    # Independent reference: a linear unit's maximum over the box [0, 1]^64 is b_j + Σ_i max(w_ij, 0).
    z_box_max = b[units] + np.maximum(w[:, units], 0).sum(0)
    np.testing.assert_allclose(z, z_box_max, rtol=0.02, atol=0.05)
    z_data_max = (np.asarray(Xtr) @ w[:, units] + b[units]).max(0)
    assert np.all(z > z_data_max + 0.5 * np.abs(z_data_max)), (z, z_data_max)


def test_hidden_post_activation_with_regularizers_and_jitter_beats_the_data(trained_digits, digits_split):
    model, params = trained_digits
    (Xtr, _), _, _ = digits_split
    units = [0, 5, 9, 33]
    images = fn.inputs.visualize_units(model, params, units=units, layer=-2, key=jax.random.key(3), jitter=1,
                                       blur=0.01, l1=1e-3, **RECIPE)
    a_vis = np.asarray(model.activations(params, images.reshape(len(units), 64))[0]["a"])[np.arange(4), units]
    a_data = np.asarray(model.activations(params, Xtr)[0]["a"])[:, units].max(0)
    assert np.all(a_vis > a_data), (a_vis, a_data)


def test_matches_hand_written_single_unit_adam_loop(trained_digits):
    # No jitter and a given start: visualize_units is deterministic and must equal a plain optax loop.
    model, params = trained_digits
    x0 = jnp.full((64,), 0.3)
    images, hist = fn.inputs.visualize_units(model, params, units=[4, 6], init=x0, steps=25, learning_rate=0.02,
                                             objective="logit", return_history=True, **(PLAIN | dict(l2=0.01)))
    opt = optax.adam(0.02)
    f = lambda x, unit: model.apply(params, x)[unit] - 0.01 * jnp.sum(x * x)

    @jax.jit
    def step(x, s, unit):
        v, g = jax.value_and_grad(f)(x, unit)
        u, s = opt.update(-g, s, x)
        return optax.apply_updates(x, u), s, v

    for row, unit in enumerate([4, 6]):
        x, s, values = x0, opt.init(x0), []
        for _ in range(25):
            x, s, v = step(x, s, unit)
            values.append(float(v))
        values.append(float(f(x, unit)))
        np.testing.assert_allclose(np.asarray(images[row]), np.asarray(x), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(hist[row]), values, rtol=1e-4, atol=1e-4)


def test_deep_dream_from_a_data_image_moves_it_to_the_target_class(trained_digits, digits_split):
    model, params = trained_digits
    _, _, (Xte, yte) = digits_split
    three = Xte[np.flatnonzero(np.asarray(yte) == 3)[0]].reshape(8, 8)
    image = fn.inputs.visualize_units(model, params, units=[8], init=three, objective="log_probability",
                                      steps=60, learning_rate=0.05, input_shape=(8, 8), value_range=(0.0, 1.0),
                                      **PLAIN)
    assert int(jnp.argmax(model.apply(params, image.reshape(64)))) == 8
    assert int(jnp.argmax(model.apply(params, three.reshape(64)))) == 3


@pytest.mark.parametrize("input_shape", [(12,), (2, 2, 3)])
def test_any_image_shape_and_channel_count(input_shape):
    model = fn.mlp([12, 8, 3], activation="tanh")
    params = model.init(jax.random.key(0))
    images, hist = fn.inputs.visualize_units(model, params, units=[0, 2], key=jax.random.key(1), steps=40,
                                             input_shape=input_shape, tv=0.01, blur=0.01,
                                             value_range=(-1, 1), parametrization="tanh", return_history=True)
    assert images.shape == (2, *input_shape) and hist.shape == (2, 41)
    assert float(jnp.abs(images).max()) <= 1.0
    z = model.apply(params, images.reshape(2, 12))
    z0 = model.apply(params, jnp.zeros(12))
    assert np.all(np.asarray(z[[0, 1], [0, 2]]) > np.asarray(z0[jnp.array([0, 2])]))


def test_second_call_with_same_config_does_not_recompile(trained_digits):
    model, params = trained_digits
    kw = dict(input_shape=(8, 8), steps=5, l2=1e-3, value_range=(0.0, 1.0))
    fn.inputs.visualize_units(model, params, units=[0, 1, 2], key=jax.random.key(0), **kw)
    before = _visualize_jit._cache_size()
    fn.inputs.visualize_units(model, params, units=[7, 8, 9], key=jax.random.key(5), **kw)
    assert _visualize_jit._cache_size() == before


@pytest.mark.parametrize("kwargs, match", [
    (dict(units=[10]), r"units \[10\] are out of range for layer 1, which has 10 units"),
    (dict(units=[-1]), r"units \[-1\] are out of range"),
    (dict(units=[64], layer=0), r"layer 0, which has 64 units"),
    (dict(units=[0], layer=2), r"layer 2 is out of range for a model with 2 weight layers"),
    (dict(units=[0], layer=-3), r"valid layers are -2..1"),
    (dict(units=[0], input_shape=(8, 9)), r"input_shape \(8, 9\) does not match the model's input width 64"),
    (dict(units=[0], layer=0, objective="logit"), r"output layer only"),
    (dict(units=[0], objective="energy"), r"objective must be one of"),
    (dict(units=[0], regularizers=[(1.0, lambda x: x)]), r"must return a real scalar"),
    (dict(units=[0], parametrization="sigmoid"), r"needs value_range"),
    (dict(units=[0], init=jnp.zeros(63)), r"init must have shape"),
])
def test_bad_input_raises_before_compiling(trained_digits, kwargs, match):
    model, params = trained_digits
    with pytest.raises(ValueError, match=match):
        fn.inputs.visualize_units(model, params, key=jax.random.key(0), steps=3, **kwargs)


def test_noise_start_needs_a_key(trained_digits):
    model, params = trained_digits
    with pytest.raises(ValueError, match="needs key"):
        fn.inputs.visualize_units(model, params, units=[0], steps=3)


# ------------------------------------------------------------------ regularizers
def test_regularizers_match_numpy_references(rng):
    x = rng.normal(size=(5, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(float(fn.inputs.l1(jnp.asarray(x))), np.abs(x).sum(), rtol=1e-5)
    np.testing.assert_allclose(float(fn.inputs.l2(jnp.asarray(x))), (x ** 2).sum(), rtol=1e-5)
    tv_ref = ((x[1:] - x[:-1]) ** 2).sum() + ((x[:, 1:] - x[:, :-1]) ** 2).sum()   # channels are not neighbours
    np.testing.assert_allclose(float(fn.inputs.total_variation(jnp.asarray(x))), tv_ref, rtol=1e-5)
    v = x[:, 0, 0]
    np.testing.assert_allclose(float(fn.inputs.total_variation(jnp.asarray(v))), (np.diff(v) ** 2).sum(), rtol=1e-5)


def test_gaussian_blur_matches_scipy(rng):
    ndimage = pytest.importorskip("scipy.ndimage")
    x = rng.normal(size=(7, 9)).astype(np.float64)
    with jax.enable_x64(True):
        ours = np.asarray(fn.inputs.gaussian_blur(jnp.asarray(x), 1.0))
        pen = float(fn.inputs.blur_penalty(jnp.asarray(x), 1.0))
        const = float(fn.inputs.blur_penalty(jnp.full((4, 4), 0.7, jnp.float64), 1.0))
    ref = ndimage.gaussian_filter(x, 1.0, mode="nearest", truncate=2.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pen, ((x - ref) ** 2).sum(), rtol=1e-10)
    assert abs(const) < 1e-20   # a constant image has no high frequencies
