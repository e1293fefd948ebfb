"""The fixed-weight forward visualize_units runs on: same values and input gradients as the model's own."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn
from funcnet.inputs import _frozen


def _model_and_params():
    model = fn.mlp([12, 9, 7, 4], activation=["tanh", "elu"], output_activation="sigmoid")
    params = model.init(jax.random.key(0), dtype=jnp.float64)
    return model, params


@pytest.mark.parametrize("batch", [(), (5,)])
def test_values_and_input_vjp_match_the_model_in_float64(batch):
    with jax.enable_x64(True):
        model, params = _model_and_params()
        x = jax.random.normal(jax.random.key(1), (*batch, 12), jnp.float64)
        acts = _frozen.frozen_activations(model, params)
        ref = model.activations(params, x)
        got = acts(x)
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g["z"], r["z"], rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(g["a"], r["a"], rtol=1e-13, atol=1e-13)
        # Reference: jax.vjp of the model's own forward (which differentiates W's transpose itself).
        ct = jax.random.normal(jax.random.key(2), (*batch, 4), jnp.float64)
        f_ref = lambda x: model.activations(params, x)[-1]["a"]
        f_got = lambda x: acts(x)[-1]["a"]
        (g_ref,) = jax.vjp(f_ref, x)[1](ct)
        (g_got,) = jax.vjp(f_got, x)[1](ct)
        np.testing.assert_allclose(g_got, g_ref, rtol=1e-12, atol=1e-14)


def test_second_derivatives_through_the_frozen_product():
    # The VJP rule is itself written in JAX, so a Hessian-vector product works and matches the model's.
    with jax.enable_x64(True):
        model, params = _model_and_params()
        acts = _frozen.frozen_activations(model, params)
        x = jax.random.normal(jax.random.key(3), (12,), jnp.float64)
        v = jax.random.normal(jax.random.key(4), (12,), jnp.float64)
        f_ref = lambda x: jnp.sum(model.apply(params, x) ** 2)
        f_got = lambda x: jnp.sum(acts(x)[-1]["a"] ** 2)
        hvp = lambda f: jax.jvp(jax.grad(f), (x,), (v,))[1]
        np.testing.assert_allclose(hvp(f_got), hvp(f_ref), rtol=1e-10, atol=1e-13)


def test_other_models_are_used_as_they_are():
    class Scaled:                               # duck-typed: sizes and activations(params, x)
        sizes = (3, 2)

        def activations(self, params, x):
            z = 2.0 * (x @ params[0]["w"]) + params[0]["b"]
            return [{"z": z, "a": z}]

    params = [{"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}]
    acts = _frozen.frozen_activations(Scaled(), params)
    np.testing.assert_allclose(acts(jnp.ones(3))[0]["z"], [6.0, 6.0], rtol=1e-6)


def test_images_do_not_depend_on_whether_history_is_recorded():
    # return_history=False forms gradients only (no value reductions); the iterates must be the same.
    with jax.enable_x64(True):
        model, params = _model_and_params()
        kw = dict(units=[0, 3], key=jax.random.key(5), steps=30, learning_rate=0.05, l2=1e-3, tv=0.01,
                  input_shape=(3, 4), value_range=(0.0, 1.0))
        images = fn.inputs.visualize_units(model, params, **kw)
        images_h, hist = fn.inputs.visualize_units(model, params, return_history=True, **kw)
        assert hist.shape == (2, 31)
        np.testing.assert_allclose(images, images_h, rtol=1e-12, atol=1e-14)
