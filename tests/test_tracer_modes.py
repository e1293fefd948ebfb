"""Forward mode, mixed orders, the rule table's VJP and JVP rules, no silent zero, and any pytree.

References: jax.vjp / jax.jvp / jax.jacfwd / jax.jacrev / jax.hessian in float64 (rtol 1e-10) and
float64 central differences (rtol 1e-6).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn
from funcnet import tracer

RTOL = 1e-10


@pytest.fixture(autouse=True)
def _float64():
    """float64 for every test here, restored afterwards (a global switch would leak into other files)."""
    with jax.enable_x64(True):
        yield


def close(a, b, rtol=RTOL, atol=1e-12):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def xp_of(a):
    return a.__array_namespace__() if hasattr(a, "__array_namespace__") and not isinstance(a, jax.Array) else jnp


# every primitive of the table with a function of (xp, x) and a domain, on shapes with broadcasting and size-1 axes
CASES = {
    "exp": lambda xp, x: xp.exp(x), "log": lambda xp, x: xp.log(x * x + 1.0), "log1p": lambda xp, x: xp.log1p(x * x),
    "expm1": lambda xp, x: xp.expm1(x), "sqrt": lambda xp, x: xp.sqrt(x * x + 0.5), "sin": lambda xp, x: xp.sin(x),
    "cos": lambda xp, x: xp.cos(x), "tan": lambda xp, x: xp.tan(0.3 * x), "sinh": lambda xp, x: xp.sinh(x),
    "cosh": lambda xp, x: xp.cosh(x), "tanh": lambda xp, x: xp.tanh(x), "arctan": lambda xp, x: xp.arctan(x),
    "abs": lambda xp, x: xp.abs(x), "square": lambda xp, x: xp.square(x), "negative": lambda xp, x: -x,
    "add": lambda xp, x: x + x[:1], "subtract": lambda xp, x: x[:, :1] - x, "multiply": lambda xp, x: x * x[0],
    "divide": lambda xp, x: x / (x[:1] ** 2 + 1.0), "pow": lambda xp, x: (x * x + 0.5) ** x[:1],
    "maximum": lambda xp, x: xp.maximum(x, x[:1] * 0.5), "minimum": lambda xp, x: xp.minimum(x, 0.3),
    "where": lambda xp, x: xp.where(x > 0, x * x, -x), "matmul": lambda xp, x: x @ x.T,
    "sum": lambda xp, x: xp.sum(x, axis=0, keepdims=True), "mean": lambda xp, x: xp.mean(x, axis=1),
    "max": lambda xp, x: xp.max(x, axis=1), "min": lambda xp, x: xp.min(x, axis=0),
    "reshape": lambda xp, x: xp.reshape(x, (-1,)), "permute_dims": lambda xp, x: xp.permute_dims(x, (1, 0)),
    "broadcast_to": lambda xp, x: xp.broadcast_to(x[:1], (4,) + x.shape[1:]), "getitem": lambda xp, x: x[np.array([0, 0, 1])],
    "concat": lambda xp, x: xp.concat([x, 2 * x], axis=1), "stack": lambda xp, x: xp.stack([x, x * x], axis=0),
    "astype": lambda xp, x: x.astype(np.float64) * 2, "sort": lambda xp, x: xp.sort(x, axis=1),
    "take_along_axis": lambda xp, x: xp.take_along_axis(x, (np.arange(x.size).reshape(x.shape) * 7) % x.shape[1], axis=1),
    "log_softmax": lambda xp, x: fn.activations.log_softmax(x),
    "softmax_cross_entropy": lambda xp, x: fn.losses.softmax_cross_entropy(x, np.array([1, 0]) % x.shape[1]),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("shape", [(2, 3), (2, 1)])
def test_every_rule_vjp_and_jvp_match_jax(name, shape, rng):
    f = CASES[name]
    x = rng.normal(size=shape)
    t = rng.normal(size=shape)
    y, tan = tracer.jvp(lambda a: f(xp_of(a), a), (x,), (t,))
    ry, rtan = jax.jvp(lambda a: f(jnp, a), (jnp.asarray(x),), (jnp.asarray(t),))
    close(y, ry)
    close(tan, rtan)
    ct = rng.normal(size=np.shape(ry))
    out, pull = tracer.vjp(lambda a: f(xp_of(a), a), x)
    rout, rpull = jax.vjp(lambda a: f(jnp, a), jnp.asarray(x))
    close(pull(ct)[0], rpull(jnp.asarray(ct))[0])
    # and against central differences (the JVP is the directional derivative)
    eps = 1e-6
    fd = (np.asarray(f(np, x + eps * t)) - np.asarray(f(np, x - eps * t))) / (2 * eps)
    close(tan, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["tanh", "multiply", "matmul", "max", "log_softmax", "sort", "pow", "divide"])
def test_second_order_all_mode_pairs_match_jax_hessian(name, rng):
    f = lambda a: (xp_of(a).sum(CASES[name](xp_of(a), a) ** 2))
    x = rng.normal(size=(2, 3))
    ref = jax.hessian(lambda a: jnp.sum(CASES[name](jnp, a) ** 2))(jnp.asarray(x))
    close(tracer.hessian(f)(x), ref)                                            # forward over reverse
    close(tracer.jacrev(tracer.jacrev(f))(x), ref)                              # reverse over reverse
    close(tracer.jacfwd(tracer.jacfwd(f))(x), ref)                              # forward over forward
    close(tracer.jacrev(tracer.jacfwd(f))(x), ref)                              # reverse over forward
    v = rng.normal(size=(2, 3))
    close(tracer.hvp(f, (x,), (v,)), np.tensordot(np.asarray(ref), v, axes=2))


def test_jacobians_and_grad_of_jvp_match_jax(rng):
    f = lambda a: xp_of(a).tanh(a @ a.T) * a[:, :1]
    x = rng.normal(size=(3, 2))
    close(tracer.jacfwd(f)(x), jax.jacfwd(lambda a: jnp.tanh(a @ a.T) * a[:, :1])(jnp.asarray(x)))
    close(tracer.jacrev(f)(x), jax.jacrev(lambda a: jnp.tanh(a @ a.T) * a[:, :1])(jnp.asarray(x)))
    v = rng.normal(size=(3, 2))
    g = tracer.grad(lambda a: xp_of(a).sum(tracer.jvp(f, (a,), (v,))[1] ** 2))(x)
    ref = jax.grad(lambda a: jnp.sum(jax.jvp(lambda b: jnp.tanh(b @ b.T) * b[:, :1], (a,), (jnp.asarray(v),))[1] ** 2))(
        jnp.asarray(x))
    close(g, ref)


def test_forward_mode_gate_graph_and_its_table():
    f = lambda x, y, z: (x + y) * z
    assert [float(v) for v in tracer.jvp(f, (-2.0, 5.0, -4.0), (1.0, 0.0, 0.0))] == [-12.0, -4.0]
    g = tracer.trace(lambda x, y, z: tracer.name(tracer.name(x + y, "q") * z, "L"), -2.0, 5.0, -4.0,
                     tangents=(0.0, 0.0, 1.0))
    assert [(n.name, float(n.tangent)) for n in g.nodes] == [("x", 0), ("y", 0), ("z", 1), ("q", 0), ("L", 3)]
    assert "L = -12, tangent 3" in g.text()


# --------------------------------------------------------------------- no silent zero
CONCRETE = [
    ("float()", lambda x: float(x) ** 2),
    ("int()", lambda x: x * int(x)),
    ("complex()", lambda x: x * complex(x).real),
    ("bool()", lambda x: x if x else -x),
    ("operator.index()", lambda x: x * operator.index(x)),
    ("np.asarray()", lambda x: np.float64(x) * x),
    ("float()", lambda x: math.exp(x) * x),
    ("x.item()", lambda x: x.item() * x),
    ("x.tolist()", lambda x: sum(x.tolist()) * x),
]


@pytest.mark.parametrize("what,f", CONCRETE, ids=[c[0] + str(i) for i, c in enumerate(CONCRETE)])
def test_leaving_the_trace_raises_naming_the_operation(what, f):
    with pytest.raises(tracer.ConcretizationError, match=r"(?s)" + "lose its gradient.*stop_gradient"):
        tracer.grad(f)(3.0)
    assert issubclass(tracer.ConcretizationError, TypeError)


def test_setitem_into_an_ndarray_raises():
    def f(x):
        out = np.zeros(4)
        out[0] = 2 * x[0]
        return np.sum(out)

    # NumPy re-raises what float() raised as a ValueError, with the ConcretizationError as its cause
    with pytest.raises((tracer.ConcretizationError, ValueError)) as info:
        tracer.grad(f)(np.ones(3))
    err = info.value if isinstance(info.value, tracer.ConcretizationError) else info.value.__cause__
    assert isinstance(err, tracer.ConcretizationError) and "lose its gradient" in str(err)


def test_comparisons_from_either_side_give_plain_booleans():
    w = np.array([0.5, 2.0, 3.0])
    g = tracer.grad(lambda x: np.sum(np.where(w < x, x * x, x) + np.where(np.float64(2.0) < x, x, 0.0)
                                     + np.where(np.greater(w, x), x, 0.0)) + (x[0] if x[0] > 0 else -x[0]))(
        np.array([1.0, 1.0, 4.0]))
    close(g, [2 + 0 + 0 + 1, 1 + 0 + 1 + 0, 8 + 1 + 0 + 0])     # by hand: where picks x² or x per element


def test_sort_has_a_real_gradient():
    g = tracer.grad(lambda x: np.sum(np.sort(x) * np.array([1.0, 2.0, 3.0])))(np.array([3.0, 1.0, 2.0]))
    ref = jax.grad(lambda x: jnp.sum(jnp.sort(x) * jnp.array([1.0, 2.0, 3.0])))(jnp.array([3.0, 1.0, 2.0]))
    close(g, ref)
    close(g, [3.0, 1.0, 2.0])


def test_numpy_function_without_rule_raises():
    with pytest.raises(tracer.MissingRuleError, match=r"numpy\.i0"):
        tracer.grad(lambda a: np.sum(np.i0(a)))(np.ones(3))
    assert issubclass(tracer.MissingRuleError, NotImplementedError)


# --------------------------------------------------------------------------- pytrees
class Pair(NamedTuple):
    w: np.ndarray
    b: float


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Layer:
    w: np.ndarray
    b: np.ndarray


@jax.tree_util.register_pytree_node_class
class Scaled:
    def __init__(self, v, k):
        self.v, self.k = v, k

    def tree_flatten(self):
        return (self.v,), self.k

    @classmethod
    def tree_unflatten(cls, k, children):
        return cls(children[0], k)


@pytest.mark.parametrize("make", [lambda w, b: Pair(w, b), lambda w, b: Layer(w, np.full(3, b)),
                                  lambda w, b: {"s": Scaled(w, 2.0), "b": [b]}])
def test_any_jax_pytree_as_argument(make, rng):
    w = rng.normal(size=3)
    p = make(w, 0.5)
    loss = lambda p: sum(jnp.sum(jnp.tanh(leaf)) if isinstance(leaf, jax.Array) else xp_of(leaf).sum(xp_of(leaf).tanh(leaf))
                         for leaf in jax.tree_util.tree_leaves(p))
    g = tracer.grad(loss)(p)
    ref = jax.grad(loss)(jax.tree_util.tree_map(jnp.asarray, p))
    assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(ref)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(ref)):
        close(a, b)


# --------------------------------------------------------------- overridable functions
def test_a_users_overridable_function_gets_its_fused_rule(rng):
    @tracer.overridable
    def softsign(x):
        return x / (1.0 + xp_of(x).abs(x))

    tracer.defvjp(softsign, lambda g, ans, x: g / (1.0 + tracer.numpy.abs(x)) ** 2)
    x = rng.normal(size=4)
    graph = tracer.trace(lambda x: np.sum(softsign(x)), x)
    assert [n.op for n in graph.nodes if n.op != "input"][0] == "softsign"
    close(tracer.grad(lambda x: np.sum(softsign(x)))(x), jax.grad(lambda x: jnp.sum(softsign(x)))(jnp.asarray(x)))


@pytest.mark.parametrize("name,ref", [("gelu", jax.nn.gelu), ("silu", jax.nn.silu)])
def test_gelu_and_silu_match_jax_nn(name, ref, rng):
    x = rng.normal(size=(3, 4)) * 3
    act = fn.activations.get(name)
    close(act(jnp.asarray(x)), ref(jnp.asarray(x)))
    close(tracer.grad(lambda a: np.sum(act(a)))(x), jax.grad(lambda a: jnp.sum(ref(a)))(jnp.asarray(x)))
    exact = functools.partial(fn.activations.gelu, approximate=False)
    close(exact(jnp.asarray(x)), jax.nn.gelu(jnp.asarray(x), approximate=False))


def test_has_aux_with_a_single_return_value_says_what_it_needs():
    with pytest.raises(TypeError, match=r"has_aux=True needs f to return a pair \(value, aux\), got an array of shape \(\)"):
        tracer.grad(lambda x: x * x, has_aux=True)(1.0)
    g, aux = tracer.grad(lambda x: (x * x, "aux"), has_aux=True)(3.0)
    close(g, 6.0)
    assert aux == "aux"
