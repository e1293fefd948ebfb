"""funcnet.tracer against jax.grad, central finite differences and the lectures' worked numbers."""

from __future__ import annotations

import gc

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn
from funcnet import tracer

RTOL_JAX = 1e-10  # tracer vs jax.grad, float64
RTOL_FD = 1e-6    # tracer vs central differences (eps 1e-6), float64


def numerical_grad(f, x, eps=1e-6):
    """Central differences of scalar f at float64 array x."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (float(f(xp)) - float(f(xm))) / (2 * eps)
    return g


def assert_close(a, b, rtol, atol=1e-12):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# ---------------------------------------------------------------- worked examples
def test_gate_graph():
    gx, gy, gz = tracer.grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2))(-2.0, 5.0, -4.0)
    assert (float(gx), float(gy), float(gz)) == (-4.0, -4.0, 3.0)


def test_linear_regression_cost():
    J = lambda w, b: ((w * 2.0 + b) - 5.0) ** 2
    gw, gb = tracer.grad(J, argnums=(0, 1))(3.0, 4.0)
    assert (float(gw), float(gb)) == (20.0, 10.0)


def test_sigmoid_neuron():
    def y(w1, w2):
        xp = w1.__array_namespace__()
        return w2 * fn.activations.sigmoid(w1 * 0.0)
    g1, g2 = tracer.grad(y, argnums=(0, 1))(0.0, 0.0)
    assert (float(g1), float(g2)) == (0.0, 0.5)


def test_mean_of_square():
    g = tracer.grad(lambda x: (3 * (x + 2) ** 2).mean())(np.ones((2, 2)))
    np.testing.assert_array_equal(g, np.full((2, 2), 4.5))


# ------------------------------------------------------------ the rule table
def _xp(a):
    return a.__array_namespace__() if hasattr(a, "__array_namespace__") else (jnp if isinstance(a, jax.Array) else np)


POS = "pos"  # domain tag: strictly positive inputs
UNARY = [  # name, domain
    ("negative", None), ("exp", None), ("log", POS), ("log1p", POS), ("expm1", None), ("sqrt", POS),
    ("sin", None), ("cos", None), ("tan", "small"), ("sinh", None), ("cosh", None), ("tanh", None),
    ("arctan", None), ("abs", None), ("sign", None), ("square", None),
]


def _draw(rng, shape, domain):
    x = rng.normal(size=shape)
    if domain == POS:
        return np.abs(x) + 0.5
    if domain == "small":
        return 0.5 * np.tanh(x)
    return x + np.sign(x) * 0.1  # keep away from 0 (abs, sign kinks)


def _check(f, args, rng, argnums=None, fd=True):
    """tracer.grad of sum(f(...) * w) against jax.grad and central differences, in float64."""
    argnums = tuple(range(len(args))) if argnums is None else argnums
    with jax.enable_x64(True):
        out_shape = np.shape(f(*[np.asarray(a) for a in args]))
        w = rng.normal(size=out_shape)
        loss = lambda *a: _xp(a[argnums[0]]).sum(f(*a) * w) if out_shape else f(*a) * 1.5
        got = tracer.grad(loss, argnums=argnums)(*args)
        ref = jax.grad(loss, argnums=argnums)(*[jnp.asarray(a) for a in args])
        for g, r in zip(got, ref):
            assert np.shape(g) == np.shape(r)
            assert_close(g, r, RTOL_JAX)
        if fd:
            for k, g in zip(argnums, got):
                def fk(xk, k=k):
                    a = list(args)
                    a[k] = xk
                    return loss(*a)
                assert_close(g, numerical_grad(fk, args[k]), RTOL_FD, atol=1e-8)


@pytest.mark.parametrize("name,domain", UNARY)
@pytest.mark.parametrize("shape", [(2, 3)])
def test_unary_rules(name, domain, shape, rng):
    x = _draw(rng, shape, domain)
    _check(lambda a: getattr(_xp(a), name)(a), [x], rng)


BINARY = ["add", "subtract", "multiply", "divide", "pow", "maximum", "minimum"]
BROADCAST = [((2, 3), (3,)), ((3,), (2, 3)), ((2, 1), (1, 3)), ((4, 1, 3), (2, 1)), ((), (2, 2))]


BINARY_CASES = [(name, *BROADCAST[(2 * i + k) % len(BROADCAST)]) for i, name in enumerate(BINARY) for k in (0, 1)]


@pytest.mark.parametrize("name,sx,sy", BINARY_CASES)
def test_binary_rules_with_broadcasting(name, sx, sy, rng):
    x, y = rng.normal(size=sx), rng.normal(size=sy)
    if name == "pow":
        x = np.abs(x) + 0.5
    if name == "divide":
        y = np.abs(y) + 0.5
    _check(lambda a, b: getattr(_xp(a), name)(a, b), [x, y], rng)


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**", "@"])
def test_operators_with_numpy_on_either_side(op, rng):
    a = np.abs(rng.normal(size=(2, 3))) + 0.5
    b = np.abs(rng.normal(size=(3, 3) if op == "@" else (2, 3))) + 0.5
    f = eval(f"lambda x, y: x {op} y")
    _check(f, [a, b], rng)
    _check(lambda x: f(x, b), [a], rng)          # traced on the left, NumPy on the right
    _check(lambda y: f(a, y), [b], rng)          # NumPy on the left: dispatched by __array_ufunc__


AXES = [(None, False), (1, True), (-1, False), ((0, 2), False), ((0, 2), True)]
REDUCTION_CASES = [(name, *AXES[(2 * i + k) % len(AXES)]) for i, name in enumerate(["sum", "mean", "max", "min"])
                   for k in (0, 1)]


@pytest.mark.parametrize("name,axis,keepdims", REDUCTION_CASES)
def test_reductions(name, axis, keepdims, rng):
    x = rng.normal(size=(2, 3, 4))
    _check(lambda a: getattr(_xp(a), name)(a, axis=axis, keepdims=keepdims), [x], rng)


SHAPE_OPS = [
    ("reshape", lambda xp, a: xp.reshape(a, (4, 3)), (2, 6)),
    ("permute_dims", lambda xp, a: xp.permute_dims(a, (2, 0, 1)), (2, 3, 4)),
    ("transpose", lambda xp, a: a.T, (2, 3)),
    ("expand_dims", lambda xp, a: xp.expand_dims(a, axis=1), (2, 3)),
    ("squeeze", lambda xp, a: xp.squeeze(a, axis=1), (2, 1, 3)),
    ("broadcast_to", lambda xp, a: xp.broadcast_to(a, (4, 2, 3)), (2, 1)),
    ("getitem basic", lambda xp, a: a[1:, ::2], (3, 4)),
    ("getitem int", lambda xp, a: a[1], (3, 4)),
    ("getitem fancy with repeats", lambda xp, a: a[np.array([0, 2, 0])], (3, 4)),
    ("getitem newaxis", lambda xp, a: a[..., None, 1], (3, 4)),
    ("matmul 2d", lambda xp, a: xp.matmul(a, a.T), (2, 3)),
    ("matmul vec", lambda xp, a: a @ a[0], (3, 3)),
    ("matmul vec-mat", lambda xp, a: a[0] @ a, (3, 3)),
    ("matmul batched", lambda xp, a: a @ xp.permute_dims(a, (0, 2, 1)), (2, 3, 4)),
    ("where", lambda xp, a: xp.where(a > 0, a * a, -a), (3, 4)),
    ("clip", lambda xp, a: xp.clip(a, -0.5, 0.5), (3, 4)),
    ("concat", lambda xp, a: xp.concat([a, 2 * a[:1]], axis=0), (3, 4)),
    ("stack", lambda xp, a: xp.stack([a, a * a], axis=1), (3, 4)),
    ("tensordot", lambda xp, a: xp.tensordot(a, xp.exp(a), axes=([0, 1], [0, 1])), (2, 3, 2)),
    ("tensordot int", lambda xp, a: xp.tensordot(a, a, axes=1), (3, 3)),
    ("astype", lambda xp, a: a.astype(a.dtype) * 2, (3,)),
    ("log_softmax", lambda xp, a: fn.activations.log_softmax(a), (2, 5)),
    ("softmax", lambda xp, a: fn.activations.softmax(a), (2, 5)),
    ("softplus", lambda xp, a: fn.activations.softplus(a), (2, 5)),
    ("elu", lambda xp, a: fn.activations.elu(a), (2, 5)),
    ("var", lambda xp, a: xp.var(a, axis=0), (4, 3)),
    ("softmax_cross_entropy", lambda xp, a: fn.losses.softmax_cross_entropy(a, np.array([1, 4])), (2, 5)),
    ("softmax_cross_entropy 3-d", lambda xp, a: fn.losses.softmax_cross_entropy(a, np.array([[0, 2, 1], [2, 2, 0]])), (2, 3, 3)),
]


@pytest.mark.parametrize("name,f,shape", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_ops_and_composites(name, f, shape, rng):
    x = rng.normal(size=shape) + 0.1
    _check(lambda a: f(_xp(a), a), [x], rng)


def test_logsumexp_matches_jax(rng):
    x = rng.normal(size=(3, 4)) * 50
    with jax.enable_x64(True):
        got = tracer.grad(lambda a: tracer.numpy.logsumexp(a, axis=1).sum())(x)
        ref = jax.grad(lambda a: jax.nn.logsumexp(a, axis=1).sum())(jnp.asarray(x))
    assert_close(got, ref, RTOL_JAX)


# ---------------------------------------- JAX's conventions at non-differentiable points
KINKS = [
    ("abs at 0", lambda a: _xp(a).abs(a), 0.0),
    ("relu at 0", fn.activations.relu, 0.0),
    ("maximum tie", lambda a: _xp(a).maximum(a, 0.0), 0.0),
    ("minimum tie", lambda a: _xp(a).minimum(a, 0.0), 0.0),
    ("clip at lower bound", lambda a: _xp(a).clip(a, 0.0, 1.0), 0.0),
    ("clip at upper bound", lambda a: _xp(a).clip(a, 0.0, 1.0), 1.0),
    ("sign at 0", lambda a: _xp(a).sign(a), 0.0),
    ("leaky_relu at 0", fn.activations.leaky_relu, 0.0),
    ("elu at 0", fn.activations.elu, 0.0),
    ("softplus at 0", fn.activations.softplus, 0.0),
    ("x**2 at 0", lambda a: a ** 2, 0.0),
]


@pytest.mark.parametrize("name,f,x0", KINKS, ids=[k[0] for k in KINKS])
def test_kinks_match_jax(name, f, x0):
    with jax.enable_x64(True):
        ref = float(jax.grad(f)(jnp.float64(x0)))
    assert float(tracer.grad(f)(x0)) == ref


def test_tied_max_splits_like_jax():
    x = np.array([1.0, 3.0, 3.0, -2.0])
    with jax.enable_x64(True):
        ref = jax.grad(lambda a: jnp.max(a))(jnp.asarray(x))
    np.testing.assert_array_equal(tracer.grad(lambda a: _xp(a).max(a))(x), np.asarray(ref))


def test_pow_exponent_gradient_at_zero_base():
    with jax.enable_x64(True):
        ref = jax.grad(lambda y: jnp.float64(0.0) ** y)(2.0)
    assert float(tracer.grad(lambda y: np.float64(0.0) ** y)(2.0)) == float(ref)


# ------------------------------------------------------------------- higher order
HESS = [
    ("sin*x", lambda a: _xp(a).sum(_xp(a).sin(a) * a)),
    ("tanh mlp-ish", lambda a: _xp(a).sum(_xp(a).tanh(a @ a.T) ** 2)),
    ("log_softmax", lambda a: _xp(a).sum(fn.activations.log_softmax(a) * a)),
    ("exp/sqrt/div", lambda a: _xp(a).mean(_xp(a).exp(a) / _xp(a).sqrt(a * a + 1.0))),
    ("broadcast+max", lambda a: _xp(a).sum(_xp(a).max(a[:, None] * a[None, :], axis=1) ** 2)),
    ("softmax_cross_entropy", lambda a: fn.losses.softmax_cross_entropy(a * a, np.array(1))),
]


@pytest.mark.parametrize("name,f", HESS, ids=[h[0] for h in HESS])
def test_hessian_matches_jax(name, f, rng):
    x = rng.normal(size=(3,)) if name != "tanh mlp-ish" else rng.normal(size=(2, 2))
    with jax.enable_x64(True):
        ref = jax.hessian(f)(jnp.asarray(x)).reshape(x.size, x.size)
    # the full Hessian, row by row
    rows = [tracer.grad(lambda a, i=i: tracer.grad(f)(a).reshape(-1)[i])(x).reshape(-1) for i in range(x.size)]
    assert_close(np.stack(rows), ref, RTOL_JAX)


def test_hessian_vector_product(rng):
    f = lambda a: _xp(a).sum(_xp(a).tanh(a) ** 3)
    x, v = rng.normal(size=4), rng.normal(size=4)
    hvp = tracer.grad(lambda a: _xp(a).sum(tracer.grad(f)(a) * v))(x)
    with jax.enable_x64(True):
        ref = jax.hessian(f)(jnp.asarray(x)) @ v
    assert_close(hvp, ref, RTOL_JAX)


def test_third_derivative_scalar():
    d3 = tracer.grad(tracer.grad(tracer.grad(lambda x: x ** 4)))(2.0)
    assert float(d3) == 24 * 2.0


def test_nested_closure_no_perturbation_confusion():
    # d/dx [x * d/dy (x + y)] = d/dx [x] = 1 (JAX: 1.0)
    g = tracer.grad(lambda x: x * tracer.grad(lambda y: x + y)(1.0))(2.0)
    assert float(g) == 1.0


# ---------------------------------------------------------------- pytrees and API
def test_pytree_argnums_and_value_and_grad(rng):
    p = {"w": rng.normal(size=(3, 2)), "b": [rng.normal(size=2), (rng.normal(size=()),)]}
    x = rng.normal(size=(4, 3))

    def f(p, x, s):
        return np.sum(np.tanh(x @ p["w"] + p["b"][0]) * s) + p["b"][1][0] ** 2

    val, (gp, gs) = tracer.value_and_grad(f, argnums=(0, 2))(p, x, 1.5)
    with jax.enable_x64(True):
        jp = jax.tree.map(jnp.asarray, p)
        f_j = lambda p, x, s: jnp.sum(jnp.tanh(x @ p["w"] + p["b"][0]) * s) + p["b"][1][0] ** 2
        rval, (rp, rs) = jax.value_and_grad(f_j, argnums=(0, 2))(jp, jnp.asarray(x), 1.5)
    assert_close(val, rval, RTOL_JAX)
    assert jax.tree.structure(gp) == jax.tree.structure(rp)
    for a, b in zip(jax.tree.leaves(gp), jax.tree.leaves(rp)):
        assert_close(a, b, RTOL_JAX)
    assert_close(gs, rs, RTOL_JAX)


def test_pytree_containers_keep_their_types(rng):
    # namedtuples, OrderedDicts and None leaves come back as jax.grad returns them
    import collections

    Layer = collections.namedtuple("Layer", ["w", "b"])
    p = collections.OrderedDict(first=Layer(rng.normal(size=(3, 2)), rng.normal(size=2)), skip=None,
                                scale=(rng.normal(size=()),))

    def f(p, xp=np):
        h = xp.tanh(xp.ones(3) @ p["first"].w + p["first"].b)
        return xp.sum(h * h) * p["scale"][0]

    g = tracer.grad(f)(p)
    with jax.enable_x64(True):
        ref = jax.grad(lambda q: f(q, jnp))(jax.tree.map(jnp.asarray, p))
    assert type(g) is collections.OrderedDict and type(g["first"]) is Layer and g["skip"] is None
    assert jax.tree.structure(g) == jax.tree.structure(ref)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(ref)):
        assert_close(a, b, RTOL_JAX)


def test_pytree_plain_containers_with_odd_leaves(rng):
    # map_leaves maps array leaves of plain lists/dicts inline; a None leaf, a Python float, a float32
    # array or an unused leaf among them: same gradients, structures and dtypes as jax.grad
    p = [{"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2).astype(np.float32)},
         {"skip": None, "s": 0.5, "unused": rng.normal(size=(2,))}]

    def f(p, xp=np):
        return xp.sum(xp.tanh(xp.ones(3) @ p[0]["w"] + p[0]["b"]) ** 2) * p[1]["s"]

    g = tracer.grad(f)(p)
    with jax.enable_x64(True):
        ref = jax.grad(lambda q: f(q, jnp))(jax.tree.map(jnp.asarray, p))
    assert g[1]["skip"] is None and jax.tree.structure(g) == jax.tree.structure(ref)
    assert g[0]["b"].dtype == np.float32
    np.testing.assert_array_equal(g[1]["unused"], np.zeros(2))
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(ref)):
        assert_close(a, b, 1e-6 if np.asarray(a).dtype == np.float32 else RTOL_JAX)


def test_gradients_are_fresh_arrays(rng):
    # a + b sends one cotangent to both arguments: each gradient must still be its own array, shared with
    # no input and no cotangent, so that updating one in place (clipping, SGD on the gradient) changes nothing else
    a, b = rng.normal(size=3), rng.normal(size=3)
    ga, gb = tracer.grad(lambda a, b: np.sum((a + b) ** 2), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, 2 * (a + b), rtol=1e-15)
    np.testing.assert_allclose(gb, 2 * (a + b), rtol=1e-15)
    assert not np.shares_memory(ga, gb)
    ga *= 0.0
    np.testing.assert_allclose(gb, 2 * (a + b), rtol=1e-15)

    ct = rng.normal(size=3)
    _, vjp_fn = tracer.vjp(lambda a, b: a + b, a, b)
    va, vb = vjp_fn(ct)
    assert not (np.shares_memory(va, vb) or np.shares_memory(va, ct) or np.shares_memory(vb, ct))
    _, vjp_id = tracer.vjp(lambda a: a, a)
    (vi,) = vjp_id(ct)
    assert not (np.shares_memory(vi, ct) or np.shares_memory(vi, a))
    np.testing.assert_array_equal(vi, ct)


def test_vjp_non_scalar_output(rng):
    x = rng.normal(size=(3, 2))
    ct = rng.normal(size=(2,))
    out, vjp_fn = tracer.vjp(lambda a: np.sum(np.exp(a), axis=0), x)
    (g,) = vjp_fn(ct)
    with jax.enable_x64(True):
        rout, rf = jax.vjp(lambda a: jnp.sum(jnp.exp(a), axis=0), jnp.asarray(x))
        (rg,) = rf(jnp.asarray(ct))
    assert_close(out, rout, RTOL_JAX)
    assert_close(g, rg, RTOL_JAX)


def test_has_aux():
    g, aux = tracer.grad(lambda x: (x * x, {"x2": x * x}), has_aux=True)(3.0)
    assert float(g) == 6.0 and float(aux["x2"]) == 9.0


def test_unused_input_gets_zeros_of_its_dtype():
    g = tracer.grad(lambda x, y: x * 2.0, argnums=1)(1.0, np.ones(3, np.float32))
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.zeros(3, np.float32))


def test_float32_gradients_stay_float32(rng):
    w = rng.normal(size=(3, 2)).astype(np.float32)
    g = tracer.grad(lambda w: np.sum(np.tanh(np.ones((4, 3), np.float32) @ w)))(w)
    assert g.dtype == np.float32
    ref = tracer.grad(lambda w: np.sum(np.tanh(np.ones((4, 3)) @ w)))(w.astype(np.float64))
    assert_close(g, ref, 1e-5, atol=1e-6)


def test_stop_gradient_and_no_grad():
    g = tracer.grad(lambda x: x * tracer.stop_gradient(x))(3.0)
    assert float(g) == 3.0

    def f(x):
        with tracer.no_grad():
            y = x * x
        assert not isinstance(y, tracer.Box)
        return x * y

    assert float(tracer.grad(f)(3.0)) == 9.0


def test_defvjp_for_a_numpy_function():
    # a NumPy function with no rule of its own (the registration lasts for the process: never one the table has)
    tracer.defvjp(np.nan_to_num, lambda g, ans, x: np.where(np.isfinite(x), g, 0.0))
    x = np.array([1.0, np.inf, 3.0])
    g = tracer.grad(lambda a: np.sum(np.nan_to_num(a) * np.array([1.0, 0.5, 2.0])))(x)
    np.testing.assert_allclose(g, [1.0, 0.0, 2.0], rtol=1e-15)     # d/dx of x where finite, 0 where replaced


def test_defvjp_for_a_new_primitive_higher_order():
    cube = tracer.primitive(lambda x: x ** 3, "cube")
    tracer.defvjp(cube, lambda g, ans, x: g * 3.0 * x * x)
    assert float(tracer.grad(cube)(2.0)) == 12.0
    assert float(tracer.grad(tracer.grad(cube))(2.0)) == 12.0  # 6x


# ------------------------------------------------------- funcnet models and losses
LOSSES = [
    ("softmax_cross_entropy int", fn.losses.softmax_cross_entropy, "int"),
    ("softmax_cross_entropy onehot", fn.losses.softmax_cross_entropy, "onehot"),
    ("mse", fn.losses.mse, "real"),
    ("half_mse", fn.losses.half_mse, "real"),
    ("binary_cross_entropy", fn.losses.binary_cross_entropy, "binary"),
]


ACTS = ["tanh", "relu", "sigmoid", "elu", "softplus", "leaky_relu"]
MLP_CASES = [(*LOSSES[i % len(LOSSES)], ACTS[i % len(ACTS)]) for i in range(len(ACTS))]


@pytest.mark.parametrize("name,loss,kind,act", MLP_CASES, ids=[f"{c[0]}-{c[3]}" for c in MLP_CASES])
def test_mlp_and_losses_match_jax(name, loss, kind, act, rng):
    model = fn.mlp([4, 5, 3], activation=act)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: np.asarray(a, np.float64), model.init(jax.random.key(0), jnp.float64))
        x = rng.normal(size=(6, 4))
        y = {"int": rng.integers(0, 3, size=6), "onehot": np.eye(3)[rng.integers(0, 3, size=6)],
             "real": rng.normal(size=(6, 3)), "binary": rng.integers(0, 2, size=(6, 3)).astype(np.float64)}[kind]
        L = lambda p, x: loss(model.apply(p, x), y) + 1e-2 * fn.losses.l2_penalty(p)
        got = tracer.grad(L)(params, x)  # traced params, plain NumPy x
        ref = jax.grad(L)(jax.tree.map(jnp.asarray, params), jnp.asarray(x))
        gx = tracer.grad(L, argnums=1)(params, x)  # plain params, traced x
        rx = jax.grad(L, argnums=1)(jax.tree.map(jnp.asarray, params), jnp.asarray(x))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        assert_close(a, b, RTOL_JAX, atol=1e-13)
    assert_close(gx, rx, RTOL_JAX, atol=1e-13)


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("x", [1, np.arange(3), np.array([True, False])])
def test_integer_or_bool_input_is_a_type_error(x):
    with pytest.raises(TypeError, match="float inputs"):
        tracer.grad(lambda a: a * 2)(x)
    with pytest.raises(TypeError):  # as JAX
        jax.grad(lambda a: a * 2)(x)


def test_non_scalar_output_points_to_vjp():
    with pytest.raises(TypeError, match="vjp"):
        tracer.grad(lambda a: a * 2)(np.ones(3))


def test_unsupported_numpy_function_names_it_and_shows_defvjp():
    with pytest.raises(NotImplementedError, match=r"numpy\.i0(.|\n)*defvjp"):
        tracer.grad(lambda a: np.sum(np.i0(a)))(np.ones(3))
    with pytest.raises(NotImplementedError, match=r"numpy\.spacing(.|\n)*defvjp"):
        tracer.grad(lambda a: np.sum(np.spacing(a)))(np.ones(3))


def test_in_place_mutation_is_an_error():
    def f(a):
        a[0] = 1.0
        return np.sum(a)

    with pytest.raises(TypeError, match="immutable"):
        tracer.grad(f)(np.ones(3))
    with pytest.raises(TypeError, match="in place"):
        tracer.grad(lambda a: np.sum(np.add(a, 1.0, out=a)))(np.ones(3))
    with pytest.raises(TypeError, match="lose its gradient"):
        tracer.grad(lambda a: np.sum(np.asarray(a)))(np.ones(3))


# --------------------------------------------------------------- scale and memory
def test_long_chain_is_iterative():
    n = 20_000

    def f(x):
        for _ in range(n):
            x = x * 1.0001
        return x

    assert_close(tracer.grad(f)(1.0), 1.0001 ** n, 1e-10)


def _garbage_cycles(fun, calls, warmup=None):
    """Run fun() ``calls`` times with the cycle collector off; return (objects in cycles, bytes grown)."""
    import tracemalloc

    fun()
    gc.collect()
    gc.disable()
    try:
        tracemalloc.start()
        # warm-up: NumPy fills small caches once (about 100 kB, then flat), and CPython's free list of
        # small tuples fills up to its 2,000 entries (a tuple built from a generator is allocated afresh
        # but freed onto that list): traced memory grows until both are full, then stays flat
        for _ in range(calls if warmup is None else warmup):
            fun()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(calls):
            fun()
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        return gc.collect(), grown
    finally:
        gc.enable()


def test_no_reference_cycles_memory_flat(rng):
    w = rng.normal(size=(3, 4))
    x = rng.normal(size=(5, 3))
    g = tracer.grad(lambda p: np.sum(np.tanh(x @ p["w"]) ** 2), argnums=0)
    cycles, grown = _garbage_cycles(lambda: g({"w": w}), 1000, warmup=2000)
    assert cycles == 0  # nothing was left for the cycle collector
    assert grown < 32 * 1024  # bytes over 1000 grad calls: flat
    # the same for an MLP loss and for a second derivative
    model = fn.mlp([8, 16, 3], activation="tanh")
    params = jax.tree.map(np.asarray, model.init(jax.random.key(0)))
    xs, ys = rng.normal(size=(5, 8)).astype(np.float32), rng.integers(0, 3, size=5)
    gl = tracer.grad(lambda p: fn.losses.softmax_cross_entropy(model.apply(p, xs), ys))
    assert _garbage_cycles(lambda: gl(params), 20)[0] == 0
    assert _garbage_cycles(lambda: tracer.grad(tracer.grad(lambda a: a ** 3))(2.0), 20)[0] == 0


# --------------------------------------------------------------- trace and explain
def test_trace_explain_gate_graph(capsys):
    def f(x, y, z):
        q = tracer.name(x + y, "q")
        return tracer.name(q * z, "L")

    g = tracer.trace(f, -2.0, 5.0, -4.0)
    assert [(n.name, float(n.value), float(n.grad)) for n in g.nodes] == [
        ("x", -2.0, -4.0), ("y", 5.0, -4.0), ("z", -4.0, 3.0), ("q", 3.0, -4.0), ("L", -12.0, 1.0)]
    assert float(g["L"].local[0]) == -4.0 and float(g["L"].local[1]) == 3.0  # dL/dq = z, dL/dz = q
    g.explain()
    text = capsys.readouterr().out
    for line in ("q = add(x, y) = 3", "L = multiply(q, z) = -12", "dL/dz = dL/dL · dL/dz = 1 · 3 = 3",
                 "dL/dq = dL/dL · dL/dq = 1 · -4 = -4", "dL/dx = dL/dq · dq/dx = -4 · 1 = -4"):
        assert line in text
    dot = g.to_dot()
    assert dot.startswith("digraph") and "q = add | value 3 | grad -4" in dot


def test_trace_shows_fan_out_accumulation():
    g = tracer.trace(lambda x: x * x + x, 3.0)
    assert float(g["x"].grad) == 2 * 3.0 + 1
    assert any("accumulates" in s and "fan-out" in s for s in g.steps)


# ------------------------------------------------------------ the API boundary: argnums, complex outputs
@pytest.mark.parametrize("argnums", [0.0, "0", True, (0, 1.0), None])
def test_argnums_of_the_wrong_kind_is_a_type_error(argnums):
    with pytest.raises(TypeError, match="argnums must be an int or a tuple of ints"):
        tracer.grad(lambda x, y: x * y, argnums=argnums)(1.0, 2.0)


@pytest.mark.parametrize("argnums, words", [(2, "out of range"), (-3, "out of range"), ((0, 0), "twice"), ((), "at least one")])
def test_argnums_of_a_wrong_value_is_a_value_error(argnums, words):
    with pytest.raises(ValueError, match=words):
        tracer.value_and_grad(lambda x, y: x * y, argnums=argnums)(1.0, 2.0)
    with pytest.raises(ValueError, match=words):
        tracer.jacrev(lambda x, y: x * y, argnums=argnums)(np.ones(2), np.ones(2))


def test_numpy_integer_argnums_gives_one_gradient_as_an_int_does():
    g = tracer.grad(lambda x, y: x * y, argnums=np.int64(1))(3.0, 2.0)
    np.testing.assert_allclose(g, 3.0, rtol=0)  # d(xy)/dy = x, exact


def test_grad_of_a_complex_output_is_a_type_error_as_in_jax():
    f = lambda z: z * z  # noqa: E731
    with pytest.raises(TypeError, match="real-valued output(.|\n)*holomorphic=True"):
        tracer.grad(f)(np.complex128(1 + 2j))
    with jax.enable_x64(True), pytest.raises(TypeError):
        jax.grad(f)(jnp.complex128(1 + 2j))     # the reference raises too


def test_holomorphic_grad_matches_jax():
    f = lambda z: (3.0 * z * z + z).sum()  # noqa: E731
    z = np.array([1 + 2j, 0.5 - 1j, -2.0 + 0.25j])
    with jax.enable_x64(True):
        ref = jax.grad(f, holomorphic=True)(jnp.asarray(z))
    got = tracer.grad(f, holomorphic=True)(z)
    np.testing.assert_allclose(got, np.asarray(ref), rtol=RTOL_JAX)
    np.testing.assert_allclose(got, 6.0 * z + 1.0, rtol=RTOL_JAX)     # closed form f'(z) = 6z + 1
    (value, _), g = tracer.value_and_grad(lambda z: (f(z), 0), has_aux=True, holomorphic=True)(z)
    np.testing.assert_allclose(value, f(z), rtol=RTOL_JAX)
    np.testing.assert_allclose(g, got, rtol=RTOL_JAX)


def test_holomorphic_needs_complex_inputs_and_output():
    with pytest.raises(TypeError, match="complex inputs"):
        tracer.grad(lambda z: z * z, holomorphic=True)(1.0)
    with pytest.raises(TypeError, match="complex output"):
        tracer.grad(lambda z: np.float64(2.0), holomorphic=True)(np.complex128(1 + 1j))   # a real output
