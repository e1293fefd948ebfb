"""fn.mlp: activations, init schemes, apply under jit/grad/vmap, mixed namespaces, bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn

# (name, jax.nn reference) — the independent reference for values and derivatives.
ACTIVATIONS = [
    ("identity", lambda z: z),
    ("sigmoid", jax.nn.sigmoid),
    ("tanh", jnp.tanh),
    ("relu", jax.nn.relu),
    ("leaky_relu", jax.nn.leaky_relu),
    ("elu", jax.nn.elu),
    ("softplus", jax.nn.softplus),
    ("softmax", jax.nn.softmax),
    ("log_softmax", jax.nn.log_softmax),
]


@pytest.mark.parametrize("name,ref", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_values_and_grads_match_jax_nn(name, ref):
    g = fn.activations.get(name)
    with jax.enable_x64(True):
        # include the kinks at 0 and large magnitudes
        z = jnp.array([[-30.0, -1.5, 0.0, 0.7, 2.0, 40.0], [0.0, 0.0, 1e-3, -1e-3, 5.0, -5.0]])
        np.testing.assert_allclose(g(z), ref(z), rtol=1e-12, atol=1e-14)
        w = jnp.linspace(-1.0, 1.0, z.size).reshape(z.shape)  # makes softmax's gradient non-trivial
        grad = jax.grad(lambda z: jnp.sum(w * g(z)))(z)
        want = jax.grad(lambda z: jnp.sum(w * ref(z)))(z)
        np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-14)
        # and on NumPy inputs, in the NumPy namespace
        out = g(np.asarray(z))
        assert isinstance(out, np.ndarray)
        np.testing.assert_allclose(out, ref(z), rtol=1e-12, atol=1e-14)


def test_activation_names_and_errors():
    assert set(fn.activations.names()) >= {a[0] for a in ACTIVATIONS}
    with pytest.raises(ValueError, match=r"unknown activation 'rellu'.*'relu'"):
        fn.mlp([2, 3, 1], activation="rellu")
    with pytest.raises(ValueError, match="one entry per hidden layer"):
        fn.mlp([2, 3, 3, 1], activation=["relu"])
    with pytest.raises(TypeError, match="activation must be"):
        fn.activations.get(3)


def test_sigmoid_and_softmax_are_finite_for_huge_inputs():
    z = jnp.array([-1e4, 0.0, 1e4], jnp.float32)
    np.testing.assert_array_equal(fn.activations.sigmoid(z), np.array([0.0, 0.5, 1.0], np.float32))
    p = fn.activations.softmax(z)
    np.testing.assert_allclose(p, [0.0, 0.0, 1.0], atol=0)
    assert np.all(np.isfinite(fn.activations.log_softmax(z)))


# ---------------------------------------------------------------- init schemes
FAN_IN, FAN_OUT = 400, 300
INIT_VARIANCE = {
    "he": 2.0 / FAN_IN,
    "xavier": 2.0 / (FAN_IN + FAN_OUT),
    "lecun": 1.0 / FAN_IN,
    "uniform": 0.2**2 / 12.0,   # U(-0.1, 0.1)
    "normal": 0.01**2,          # N(0, 0.01²)
}


@pytest.mark.parametrize("scheme", sorted(INIT_VARIANCE))
def test_init_statistics_match_the_scheme(scheme):
    model = fn.mlp([FAN_IN, FAN_OUT], init=scheme)
    (layer,) = model.init(jax.random.key(0))
    w = np.asarray(layer["w"], np.float64)
    assert layer["w"].shape == (FAN_IN, FAN_OUT) and layer["w"].dtype == jnp.float32
    np.testing.assert_array_equal(layer["b"], np.zeros(FAN_OUT, np.float32))
    var = INIT_VARIANCE[scheme]
    n = w.size
    # sample mean ~ N(0, var/n): allow 5 standard errors
    assert abs(w.mean()) < 5 * math.sqrt(var / n)
    # sample variance: relative standard error sqrt(2/n) (normal) or less (uniform); allow 5x
    assert abs(w.var() / var - 1) < 5 * math.sqrt(2.0 / n)
    if scheme == "uniform":
        assert w.min() >= -0.1 and w.max() <= 0.1
    if scheme == "xavier":
        a = math.sqrt(6.0 / (FAN_IN + FAN_OUT))
        assert w.min() >= -a and w.max() <= a


def test_zeros_and_constant_init_show_the_symmetry_problem():
    for scheme, value in (("zeros", 0.0), ("constant", 0.1)):
        params = fn.mlp([3, 4, 2], activation="tanh", init=scheme).init(jax.random.key(0))
        for layer in params:
            np.testing.assert_array_equal(layer["w"], np.full(layer["w"].shape, value, np.float32))
    # with constant init every hidden unit gets the same gradient: the units stay identical
    model = fn.mlp([3, 4, 1], activation="tanh", init="constant")
    params = model.init(jax.random.key(0))
    x = jnp.array([[0.3, -1.0, 2.0]])
    g = jax.grad(lambda p: fn.losses.half_mse(model.apply(p, x), jnp.ones((1, 1))))(params)
    col = np.asarray(g[0]["w"])
    np.testing.assert_allclose(col, np.repeat(col[:, :1], 4, axis=1), rtol=0, atol=0)


def test_callable_init_and_unknown_init():
    def ones(key, shape, dtype):
        return jnp.ones(shape, dtype)

    params = fn.mlp([2, 3], init=ones).init(jax.random.key(0))
    np.testing.assert_array_equal(params[0]["w"], np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"unknown init scheme 'kaiming'.*'he'"):
        fn.mlp([2, 3], init="kaiming")


def test_init_is_deterministic_and_accepts_legacy_keys():
    model = fn.mlp([5, 7, 3])
    a = model.init(jax.random.key(42))
    b = model.init(jax.random.key(42))
    c = model.init(jax.random.PRNGKey(42))
    for la, lb, lc in zip(a, b, c):
        np.testing.assert_array_equal(la["w"], lb["w"])
        np.testing.assert_array_equal(la["w"], lc["w"])  # same bits from the same seed
    d = model.init(jax.random.key(43))
    assert not np.array_equal(a[0]["w"], d[0]["w"])


def test_init_dtype_float64():
    with jax.enable_x64(True):
        params = fn.mlp([2, 3]).init(jax.random.key(0))
        assert params[0]["w"].dtype == jnp.float64
    assert fn.mlp([2, 3]).init(jax.random.key(0), dtype=jnp.bfloat16)[0]["w"].dtype == jnp.bfloat16


# ---------------------------------------------------------------------- apply
def _reference_forward(params, x, acts):
    """Independent loop: h = g(h W + b), in float64 NumPy."""
    h = np.asarray(x, np.float64)
    for layer, g in zip(params, acts):
        h = g(h @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64))
    return h


def test_param_count_exam_question():
    assert fn.param_count(fn.mlp([100, 2000, 10]).init(jax.random.key(0))) == 222010
    assert fn.param_count(fn.mlp([784, 512, 10]).init(jax.random.key(0))) == 784 * 512 + 512 + 512 * 10 + 10


def test_apply_shapes_single_batch_and_leading_axes():
    model = fn.mlp([4, 6, 3], activation="tanh")
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (2, 5, 4))
    y = model.apply(params, x)
    assert y.shape == (2, 5, 3)
    assert model.apply(params, x[0, 0]).shape == (3,)
    np.testing.assert_allclose(model.apply(params, x[0, 0]), y[0, 0], rtol=1e-6)
    ref = _reference_forward(params, x, [np.tanh, lambda z: z])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_activations_returns_every_layer():
    model = fn.mlp([4, 6, 5, 3], activation=["relu", "sigmoid"], output_activation="softmax")
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (7, 4))
    acts = model.activations(params, x)
    assert [a["z"].shape for a in acts] == [(7, 6), (7, 5), (7, 3)]
    np.testing.assert_allclose(acts[0]["a"], jax.nn.relu(acts[0]["z"]), rtol=1e-6)
    np.testing.assert_allclose(acts[1]["z"], acts[0]["a"] @ params[1]["w"] + params[1]["b"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts[-1]["a"], model.apply(params, x), rtol=1e-6)
    np.testing.assert_allclose(np.sum(acts[-1]["a"], -1), np.ones(7), rtol=1e-5)


def test_apply_under_jit_grad_vmap_agrees_with_eager():
    model = fn.mlp([3, 8, 2], activation="elu")
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (10, 3))
    eager = model.apply(params, x)
    np.testing.assert_allclose(jax.jit(model.apply)(params, x), eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(model.apply, in_axes=(None, 0))(params, x), eager, rtol=1e-5, atol=1e-6)

    # the model is hashable and works as a static jit argument
    @jax.jit
    def _f(params, x):
        return model.apply(params, x)

    static = jax.jit(lambda m, p, x: m.apply(p, x), static_argnums=0)
    np.testing.assert_allclose(static(model, params, x), eager, rtol=1e-5, atol=1e-6)
    assert hash(model) == hash(fn.mlp([3, 8, 2], activation="elu"))

    # grad of a scalar function vs central differences in float64
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x64 = jnp.asarray(x, jnp.float64)
        f = lambda w: jnp.sum(model.apply([{"w": w, "b": p64[0]["b"]}, p64[1]], x64) ** 2)
        g = jax.grad(f)(p64[0]["w"])
        eps = 1e-6
        e = jnp.zeros_like(p64[0]["w"]).at[1, 2].set(eps)
        fd = (f(p64[0]["w"] + e) - f(p64[0]["w"] - e)) / (2 * eps)
        np.testing.assert_allclose(g[1, 2], fd, rtol=1e-7)


def test_mixed_namespaces():
    model = fn.mlp([3, 4, 2], activation="sigmoid")
    params = model.init(jax.random.key(0))
    x_np = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    # NumPy params + NumPy input -> NumPy result
    p_np = jax.tree.map(np.asarray, params)
    out_np = model.apply(p_np, x_np)
    assert isinstance(out_np, np.ndarray)
    out_jax = model.apply(params, x_np)
    assert isinstance(out_jax, jax.Array)
    np.testing.assert_allclose(out_np, out_jax, rtol=1e-5, atol=1e-6)
    # JAX-traced params with a NumPy x
    g = jax.grad(lambda p: jnp.sum(model.apply(p, x_np)))(params)
    assert g[0]["w"].shape == (3, 4)


def test_bad_inputs_have_clear_errors():
    model = fn.mlp([4, 6, 3])
    params = model.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"layer 0 expects inputs of width 4.*\(2, 5\)"):
        model.apply(params, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match=r"expected a list of 2 layer dicts"):
        model.apply(params[:1], jnp.ones(4))
    bad = [params[0], {"w": params[1]["w"].T, "b": params[1]["b"]}]
    with pytest.raises(ValueError, match=r"params\[1\]\['w'\] has shape \(3, 6\), expected \(6, 3\)"):
        model.apply(bad, jnp.ones(4))
    with pytest.raises(ValueError, match=r"keys \['b', 'w'\]"):
        model.apply([params[0], {"W": 1, "b": 2}], jnp.ones(4))
    with pytest.raises(ValueError, match="at least two positive widths"):
        fn.mlp([4])
    with pytest.raises(ValueError, match=r"sizes\[1\] must be >= 1, got 0"):
        fn.mlp([4, 0, 2])


def test_this_file_runs_under_strict_dtype_promotion():
    """conftest turns on JAX's strict promotion here: an implicit int32 + float32 mix is an error, not an upcast."""
    with pytest.raises(jax.dtypes.TypePromotionError):
        jnp.ones(2, jnp.int32) + jnp.ones(2, jnp.float32)
    model = fn.mlp([2, 3, 1])                       # integer inputs are cast to the weights' dtype, explicitly
    out = model.apply(model.init(jax.random.key(0)), jnp.array([[0, 1], [1, 0]], jnp.int32))
    assert out.dtype == jnp.float32 and out.shape == (2, 1)
