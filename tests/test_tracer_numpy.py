"""The NumPy surface of funcnet.tracer, forward mode and second order: each new primitive and composite against
``jax.jvp`` and ``jax.hessian`` (float64, 1e-10 relative), the kinks against JAX's conventions, and the errors.

First-order reverse mode of the same surface is ``tests/test_tracer_surface.py`` (against ``jax.grad`` and central
differences); complex numbers are ``tests/test_tracer_complex.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import tracer

RTOL, ATOL = 1e-10, 1e-12


def normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def positive(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, size=shape)


def unit(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-0.9, 0.9, size=shape)


def close(got, want, rtol=RTOL, atol=ATOL):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol)


# name, f(xp, *args) -> array (any shape), args; each is run by tracer.jvp (xp = numpy) and jax.jvp (xp = jax.numpy)
FORWARD = [
    ("reciprocal", lambda xp, x: xp.reciprocal(x), (positive(3, 2),)),
    ("exp2-log2-log10", lambda xp, x: xp.exp2(x) + xp.log2(x) * xp.log10(x), (positive(3, 2),)),
    ("arcsin-arccos", lambda xp, x: xp.arcsin(x) * xp.arccos(x), (unit(4),)),
    ("arcsinh-arctanh", lambda xp, x: xp.arcsinh(x) + xp.arctanh(x), (unit(4),)),
    ("arccosh", lambda xp, x: xp.arccosh(x + 2.0), (positive(4),)),
    ("cbrt-fabs", lambda xp, x: xp.cbrt(x) * xp.fabs(x - 1.0), (positive(4),)),
    ("deg2rad-rad2deg", lambda xp, x: xp.sin(xp.deg2rad(x)) + xp.rad2deg(x) ** 2, (normal(4),)),
    ("radians-degrees", lambda xp, x: xp.radians(x) * xp.degrees(x), (normal(4),)),
    ("sinc", lambda xp, x: xp.sinc(x), (normal(5) + 0.05,)),
    ("arctan2", lambda xp, y, x: xp.arctan2(y, x), (normal(2, 3), positive(3))),
    ("hypot", lambda xp, x, y: xp.hypot(x, y), (normal(2, 3), positive(2, 1))),
    ("logaddexp2", lambda xp, x, y: xp.logaddexp(x, y) + xp.logaddexp2(y, x), (normal(2, 3), normal(3))),
    ("fmax-fmin", lambda xp, x, y: xp.fmax(x, y) * xp.fmin(y, x), (normal(5), normal(5, seed=1))),
    ("mod-fmod", lambda xp, x, y: xp.mod(x, y) + xp.fmod(-x, y), (positive(5) * 3, positive(5, seed=1))),
    ("prod-axis-keepdims", lambda xp, x: xp.prod(x, axis=1, keepdims=True) * x, (normal(3, 4),)),
    ("prod-axes", lambda xp, x: xp.prod(x, axis=(0, 2)), (normal(2, 3, 2),)),
    ("cumsum", lambda xp, x: xp.cumsum(x, axis=0) + xp.cumsum(x).reshape(3, 2), (normal(3, 2),)),
    ("cumprod", lambda xp, x: xp.cumprod(x, axis=1), (normal(2, 5),)),
    ("median-even", lambda xp, x: xp.median(x, axis=0), (normal(4, 3),)),
    ("average-returned", lambda xp, x, w: xp.average(x, axis=0, weights=w, returned=True)[0], (normal(3, 2), positive(3))),
    ("var-std-ddof", lambda xp, x: xp.var(x, axis=1, ddof=1) * xp.std(x, axis=1), (normal(3, 4),)),
    ("repeat-tile", lambda xp, x: xp.repeat(x, np.array([1, 0, 2]), axis=0).sum(0) + xp.tile(x, (1, 2))[0, 1:3], (normal(3, 2),)),
    ("flip-rot90-roll", lambda xp, x: xp.rot90(x, 3) + xp.flip(xp.roll(x, -1), (0, 1)).T, (normal(3, 3),)),
    ("rot90-k2-roll-none", lambda xp, x: xp.rot90(x, 2) * xp.roll(x, 4), (normal(2, 3),)),
    ("pad-modes", lambda xp, x: xp.pad(x, 2, mode="reflect") + xp.pad(x, 2, mode="edge") + xp.pad(x, 2, mode="wrap")
     + xp.pad(x, 2, mode="symmetric") + xp.pad(x, ((2, 2), (2, 2)), constant_values=1.5), (normal(3, 3),)),
    ("tril-triu-offset", lambda xp, x: xp.tril(x, -1) + xp.triu(x, 2) * 3.0, (normal(2, 3, 4),)),
    ("splits", lambda xp, x: xp.array_split(x, 3, axis=1)[1] * xp.split(x, [1, 4], axis=1)[1][:, :2], (normal(2, 5),)),
    ("stacks", lambda xp, x, y: xp.column_stack([x, y]).sum() + xp.dstack([x, y])[0, :, 0] + xp.vstack([x, y]).sum(0),
     (normal(3), normal(3, seed=1))),
    ("append-axis", lambda xp, x, y: xp.append(x, y, axis=1), (normal(2, 2), normal(2, 3))),
    ("moveaxis-expand", lambda xp, x: xp.moveaxis(xp.expand_dims(x, (0, 3)), [0, 1], [-1, 0]), (normal(2, 3),)),
    ("take-modes", lambda xp, x: xp.take(x, xp.array([0, 5, -1]), mode="wrap") + xp.take(x, xp.array([1, 9]), axis=1,
                                                                                       mode="clip").sum(), (normal(2, 3),)),
    ("partition", lambda xp, x: xp.partition(x, 1, axis=1)[:, 1], (normal(3, 4),)),
    ("diff", lambda xp, x: xp.diff(x, n=2, axis=0), (normal(4, 3),)),
    ("nansum", lambda xp, x: xp.nansum(xp.where(x > 0, x, xp.nan)) * x, (normal(4),)),
    ("angle", lambda xp, x: xp.angle(x + 2j * x[::-1]), (normal(4),)),
    ("ravel-F-flatten", lambda xp, x: xp.ravel(x, order="F") * x.flatten(), (normal(2, 3),)),
    ("atleast-3d", lambda xp, x: xp.atleast_3d(x) * 2.0, (normal(2, 3),)),
    ("dot-nd", lambda xp, x, y: x.dot(y), (normal(2, 3), normal(2, 3, 4))),
]


@pytest.mark.parametrize("name,f,args", FORWARD, ids=[c[0] for c in FORWARD])
def test_jvp_matches_jax(name, f, args):
    tangents = tuple(normal(*np.shape(a), seed=10 + i) for i, a in enumerate(args))
    out, tan = tracer.jvp(lambda *a: f(np, *a), args, tangents)
    with jax.enable_x64(True):
        want_out, want_tan = jax.jvp(lambda *a: f(jnp, *a), tuple(map(jnp.asarray, args)), tuple(map(jnp.asarray, tangents)))
    close(out, want_out)
    close(tan, want_tan)


@pytest.mark.parametrize("name,f,args", FORWARD, ids=[c[0] for c in FORWARD])
def test_vjp_matches_jax(name, f, args):
    out, pull = tracer.vjp(lambda *a: f(np, *a), *args)
    ct = normal(*np.shape(out), seed=20)
    with jax.enable_x64(True):
        _, jpull = jax.vjp(lambda *a: f(jnp, *a), *map(jnp.asarray, args))
        want = jpull(jnp.asarray(ct))
    close(pull(ct), want)


# second order: scalar functions, tracer.hessian (forward over reverse) and grad of grad against jax.hessian
SECOND = [
    ("reciprocal-exp2-log2", lambda xp, x: xp.sum(xp.reciprocal(x) * xp.exp2(x) * xp.log2(x)), positive(3)),
    ("arcsin-arccosh", lambda xp, x: xp.sum(xp.arcsin(x) * xp.arccosh(x + 2.0)), unit(3)),
    ("arctanh-cbrt", lambda xp, x: xp.sum(xp.arctanh(x) * xp.cbrt(x + 2.0)), unit(3)),
    ("sinc", lambda xp, x: xp.sum(xp.sinc(x) ** 2), normal(3) + 0.05),
    ("arctan2-hypot", lambda xp, x: xp.sum(xp.arctan2(x[:2], x[1:]) * xp.hypot(x[1:], x[:2])), positive(3)),
    ("logaddexp-logaddexp2", lambda xp, x: xp.sum(xp.logaddexp(x, x[::-1] ** 2) + xp.logaddexp2(x ** 2, x)), normal(4)),
    ("prod", lambda xp, x: xp.prod(x ** 2 + x), normal(4)),
    ("prod-one-zero", lambda xp, x: xp.prod(x), np.array([2.0, 0.0, 3.0, -1.5])),
    ("prod-two-zeros", lambda xp, x: xp.prod(x), np.array([2.0, 0.0, 3.0, 0.0])),
    ("prod-axis-zero", lambda xp, x: xp.sum(xp.prod(x.reshape(2, 3), axis=1) ** 2), np.array([1.0, 0.0, 2.0, 3.0, 4.0, 0.5])),
    ("cumprod-zero", lambda xp, x: xp.sum(xp.cumprod(x) ** 2), np.array([2.0, 0.0, 3.0, 1.5, -0.5])),
    ("cumsum", lambda xp, x: xp.sum(xp.cumsum(x) ** 3), normal(4)),
    ("var-std", lambda xp, x: xp.var(x, ddof=1) * xp.std(x), normal(4)),
    ("median-average", lambda xp, x: xp.median(x ** 2) * xp.average(x, weights=xp.arange(1.0, 5.0)), normal(4)),
    ("shapes", lambda xp, x: xp.sum(xp.pad(xp.roll(xp.tile(x, 2), 1), 1, mode="reflect") ** 3), normal(3)),
    ("mod-fmax", lambda xp, x: xp.sum(xp.mod(x ** 2, 0.7) * xp.fmax(x, x[::-1] * 0.5) ** 2), positive(4)),
]


@pytest.mark.parametrize("name,f,x", SECOND, ids=[c[0] for c in SECOND])
def test_second_order_matches_jax(name, f, x):
    with jax.enable_x64(True):
        want = np.asarray(jax.hessian(lambda a: f(jnp, a))(jnp.asarray(x)))
    close(tracer.hessian(lambda a: f(np, a))(x), want)
    v = normal(*x.shape, seed=5)
    close(tracer.hvp(lambda a: f(np, a), (x,), (v,)), want @ v)


def test_grad_of_grad_sinc_at_zero_uses_the_maclaurin_series():
    # jnp.sinc's convention: every derivative at 0 from the series of sin(u)/u; sinc''(0) = -π²/3
    d1 = tracer.grad(np.sinc)(0.0)
    d2 = tracer.grad(tracer.grad(np.sinc))(0.0)
    with jax.enable_x64(True):
        assert float(d1) == float(jax.grad(jnp.sinc)(0.0)) == 0.0
        np.testing.assert_allclose(d2, jax.grad(jax.grad(jnp.sinc))(0.0), rtol=RTOL)
    np.testing.assert_allclose(d2, -np.pi ** 2 / 3, rtol=RTOL)


# kinks: the value JAX gives, which is not always a derivative (docs/operations.md, "Conventions")
KINKS = [
    ("hypot-origin", lambda xp, x, y: xp.hypot(x, y), (0.0, 0.0)),               # 0.5 each (no derivative)
    ("fmax-tie", lambda xp, x, y: xp.fmax(x, y), (1.0, 1.0)),                    # all to the second argument
    ("fmin-tie", lambda xp, x, y: xp.fmin(x, y), (1.0, 1.0)),
    ("fmax-nan", lambda xp, x, y: xp.fmax(x, y), (np.nan, 2.0)),                 # NaN ignored: to the number
    ("fabs-zero", lambda xp, x, y: xp.fabs(x) + y, (0.0, 1.0)),                  # 1, as abs
    ("mod-exact-multiple", lambda xp, x, y: xp.mod(x, y), (6.0, 3.0)),           # -floor(x/y) for y
    ("fmod-negative", lambda xp, x, y: xp.fmod(x, y), (-7.0, 3.0)),              # -trunc(x/y) for y
    ("clip-bound", lambda xp, x, y: xp.clip(x, y, 2.0), (1.0, 1.0)),             # 0.5 each at a bound
    ("round-floor", lambda xp, x, y: xp.round(x) * y + xp.floor(y) * x, (1.5, 2.0)),
]


@pytest.mark.parametrize("name,f,args", KINKS, ids=[c[0] for c in KINKS])
def test_kinks_follow_jax(name, f, args):
    got = tracer.grad(lambda *a: f(np, *a), argnums=(0, 1))(*args)
    with jax.enable_x64(True):
        want = jax.grad(lambda *a: f(jnp, *a), argnums=(0, 1))(*map(jnp.float64, args))
    close(got, want)


@pytest.mark.parametrize("x", [np.array([1.0, 2.0, 2.0, 3.0]), np.array([1.0, 2.0, 2.0, 3.0, 5.0]),
                               np.array([3.0, 3.0, 3.0])])
def test_median_and_max_ties_follow_jax(x):
    with jax.enable_x64(True):
        close(tracer.grad(np.median)(x), jax.grad(jnp.median)(jnp.asarray(x)))
        close(tracer.grad(np.amax)(x), jax.grad(jnp.max)(jnp.asarray(x)))


def test_comparisons_with_an_untraced_left_side_carry_no_gradient():
    w = np.array([0.1, 0.5])

    def f(xp, t):
        return (xp.sum(xp.where(xp.greater(w, t), t, 2.0 * t)) + xp.sum((w < t) * t)
                + (xp.float64(0.2) < t) * t + xp.sum(xp.less_equal(w, t) * t ** 2))

    with jax.enable_x64(True):
        want = jax.grad(lambda t: f(jnp, t))(0.3)
    close(tracer.grad(lambda t: f(np, t))(0.3), want)


def test_zero_gradient_functions_run_on_plain_values():
    x = normal(3, 4) * 3
    for fun in (np.floor, np.ceil, np.rint, np.trunc, np.round, np.fix, np.sign, np.argmax, np.argsort):
        g = tracer.grad(lambda a: np.sum(fun(a) * 1.0))(x)
        np.testing.assert_array_equal(g, np.zeros_like(x))


def test_method_surface_matches_numpy_values_and_jax_gradients():
    def f(xp, x):
        y = x.reshape(3, 4)
        return (y.prod(axis=1).sum() + y.cumprod(axis=1).sum() + y.var(ddof=1) + y.std(axis=0).sum()
                + y.repeat(2, axis=0).sum() * y.swapaxes(0, 1)[0, 1] + y.take(np.array([1, 2])).sum() + y.conj().sum()
                + y.real.sum() + y.imag.sum() + y.copy().ravel()[3] + y.squeeze().sum())

    x = positive(12)
    with jax.enable_x64(True):
        want = jax.value_and_grad(lambda a: f(jnp, a))(jnp.asarray(x))
    close(tracer.value_and_grad(lambda a: f(np, a))(x), want)


# errors: the type, and the words that say what to write instead
def test_building_an_array_from_traced_values_says_to_stack():
    for build in (lambda x: np.array([x[0], x[1]]), lambda x: np.r_[x, x], lambda x: np.c_[x, x]):
        with pytest.raises(tracer.ConcretizationError, match=r"np\.stack"):
            tracer.grad(lambda x: np.sum(build(x)))(np.ones(2))
    g = tracer.grad(lambda x: np.sum(np.stack([x[0], 2 * x[1]]) ** 2))(np.ones(2))
    np.testing.assert_allclose(g, [2.0, 8.0], rtol=RTOL)


def test_in_place_methods_and_out_arguments_raise_type_error():
    with pytest.raises(TypeError, match=r"np\.sort\(x\)"):
        tracer.grad(lambda x: x.sort())(np.ones(3))
    with pytest.raises(TypeError, match="immutable"):
        tracer.grad(lambda x: np.sum(np.cumsum(x, out=np.empty(3))))(np.ones(3))
    with pytest.raises(TypeError, match="immutable"):
        tracer.grad(lambda x: np.prod(x, out=np.empty(())))(np.ones(3))


def test_unsupported_pad_mode_and_unequal_split_raise():
    with pytest.raises(NotImplementedError, match="linear_ramp"):
        tracer.grad(lambda x: np.sum(np.pad(x, 1, mode="linear_ramp")))(np.ones(3))
    with pytest.raises(ValueError, match="equal division"):
        tracer.grad(lambda x: np.sum(np.split(x, 2)[0]))(np.ones(3))
