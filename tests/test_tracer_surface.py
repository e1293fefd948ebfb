"""NumPy's differentiable surface: the same program under ``tracer.grad`` (NumPy calls on traced values) and ``jax.grad``.

Each case is a scalar function ``f(xp, *args)`` written once against a NumPy-like namespace ``xp``: the tracer runs
it with ``xp = numpy`` (NumPy functions dispatch to the tracer through ``__array_function__``/``__array_ufunc__``),
JAX runs it with ``xp = jax.numpy``. Gradients are compared with each other (two exact methods: 1e-10 relative)
and, independently, with float64 central differences of the plain NumPy function (h = 1e-5, 1e-6 relative and absolute).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import tracer

RTOL_EXACT, ATOL_EXACT = 1e-10, 1e-12
RTOL_FD, ATOL_FD = 1e-6, 1e-6


def _rng(seed=0):
    return np.random.default_rng(seed)


def normal(*shape, seed=0):
    return _rng(seed).normal(size=shape)


def positive(*shape, seed=0):
    return _rng(seed).uniform(0.5, 2.0, size=shape)


def unit(*shape, seed=0):                      # inside (-1, 1)
    return _rng(seed).uniform(-0.9, 0.9, size=shape)


def above_one(*shape, seed=0):
    return _rng(seed).uniform(1.2, 3.0, size=shape)


def spd(n, seed=0):                             # symmetric positive definite
    a = normal(n, n, seed=seed)
    return a @ a.T + n * np.eye(n)


def distinct(*shape, seed=0):                   # no ties (sort, max, median)
    n = int(np.prod(shape))
    return (_rng(seed).permutation(n) + _rng(seed + 1).uniform(0.1, 0.4, size=n)).reshape(shape)


W = normal(3, 4, seed=7)                        # fixed weights for non-scalar outputs
W4 = normal(4, 4, seed=8)

CASES = [
    # ---- elementwise, one argument
    ("reciprocal", lambda xp, x: xp.sum(xp.reciprocal(x)), (positive(3, 4),)),
    ("exp2", lambda xp, x: xp.sum(xp.exp2(x)), (normal(3, 4),)),
    ("log2", lambda xp, x: xp.sum(xp.log2(x)), (positive(3, 4),)),
    ("log10", lambda xp, x: xp.sum(xp.log10(x)), (positive(3, 4),)),
    ("arcsin", lambda xp, x: xp.sum(xp.arcsin(x)), (unit(3, 4),)),
    ("arccos", lambda xp, x: xp.sum(xp.arccos(x)), (unit(3, 4),)),
    ("arcsinh", lambda xp, x: xp.sum(xp.arcsinh(x)), (normal(3, 4),)),
    ("arccosh", lambda xp, x: xp.sum(xp.arccosh(x)), (above_one(3, 4),)),
    ("arctanh", lambda xp, x: xp.sum(xp.arctanh(x)), (unit(3, 4),)),
    ("sinc", lambda xp, x: xp.sum(xp.sinc(x)), (normal(3, 4) + 0.05,)),
    ("cbrt", lambda xp, x: xp.sum(xp.cbrt(x)), (positive(3, 4),)),
    ("fabs", lambda xp, x: xp.sum(xp.fabs(x) * W), (normal(3, 4),)),
    ("deg2rad", lambda xp, x: xp.sum(xp.sin(xp.deg2rad(x))), (normal(3, 4) * 90,)),
    ("rad2deg", lambda xp, x: xp.sum(xp.rad2deg(x) ** 2), (normal(3, 4),)),
    ("square", lambda xp, x: xp.sum(xp.square(x) * W), (normal(3, 4),)),
    ("log1p-expm1", lambda xp, x: xp.sum(xp.log1p(x) + xp.expm1(x)), (positive(3, 4),)),
    ("tan-arctan", lambda xp, x: xp.sum(xp.tan(x) * xp.arctan(x)), (unit(3, 4),)),
    # ---- elementwise, two arguments (broadcasting)
    ("power-both", lambda xp, x, y: xp.sum(xp.power(x, y)), (positive(3, 4), normal(4))),
    ("arctan2", lambda xp, x, y: xp.sum(xp.arctan2(x, y)), (normal(3, 4), positive(4))),
    ("hypot", lambda xp, x, y: xp.sum(xp.hypot(x, y)), (normal(3, 4), positive(3, 1))),
    ("logaddexp", lambda xp, x, y: xp.sum(xp.logaddexp(x, y)), (normal(3, 4), normal(4))),
    ("logaddexp2", lambda xp, x, y: xp.sum(xp.logaddexp2(x, y)), (normal(3, 4), normal(1, 4))),
    ("fmax", lambda xp, x, y: xp.sum(xp.fmax(x, y) * W), (normal(3, 4), normal(3, 4, seed=3))),
    ("fmin", lambda xp, x, y: xp.sum(xp.fmin(x, y) * W), (normal(3, 4), normal(3, 4, seed=3))),
    ("mod", lambda xp, x, y: xp.sum(xp.mod(x, y) * W), (positive(3, 4) * 3 + 0.01, positive(4) + 0.3)),
    ("remainder", lambda xp, x, y: xp.sum(xp.remainder(x, y) * W), (positive(3, 4) * 3 + 0.01, positive(4) + 0.3)),
    ("fmod", lambda xp, x, y: xp.sum(xp.fmod(x, y) * W), (positive(3, 4) * 3 + 0.01, positive(4) + 0.3)),
    ("true_divide", lambda xp, x, y: xp.sum(xp.true_divide(x, y)), (normal(3, 4), positive(4))),
    ("clip", lambda xp, x: xp.sum(xp.clip(x, -0.5, 0.7) * W), (normal(3, 4),)),
    ("where", lambda xp, x, y: xp.sum(xp.where(x > 0, x * y, y ** 2)), (normal(3, 4), normal(4))),
    ("maximum-minimum", lambda xp, x, y: xp.sum(xp.maximum(x, y) - xp.minimum(x, 2 * y)), (normal(3, 4), normal(4))),
    # ---- zero-gradient functions where JAX gives zero, composed with a differentiable part
    ("floor-ceil", lambda xp, x: xp.sum(x * xp.floor(x) + xp.ceil(x) * x), (normal(3, 4) * 3,)),
    ("round-rint-trunc", lambda xp, x: xp.sum(x * (xp.round(x) + xp.rint(x) + xp.trunc(x))), (normal(3, 4) * 3,)),
    ("sign", lambda xp, x: xp.sum(xp.sign(x) * x ** 2), (normal(3, 4),)),
    ("argmax-take", lambda xp, x: xp.sum(xp.take_along_axis(x, xp.argmax(x, axis=1)[:, None], axis=1)), (distinct(3, 4),)),
    # ---- reductions
    ("prod", lambda xp, x: xp.prod(x), (positive(3, 4),)),
    ("prod-axis", lambda xp, x: xp.sum(xp.prod(x, axis=0)), (normal(3, 4),)),
    ("prod-with-zero", lambda xp, x: xp.prod(x), (np.array([2.0, 0.0, 3.0, -1.5]),)),
    ("prod-two-zeros", lambda xp, x: xp.prod(x), (np.array([2.0, 0.0, 3.0, 0.0]),)),
    ("cumsum", lambda xp, x: xp.sum(xp.cumsum(x, axis=1) * W), (normal(3, 4),)),
    ("cumsum-flat", lambda xp, x: xp.sum(xp.cumsum(x) ** 2), (normal(3, 4),)),
    ("cumprod", lambda xp, x: xp.sum(xp.cumprod(x, axis=0)), (positive(3, 4),)),
    ("var", lambda xp, x: xp.var(x), (normal(3, 4),)),
    ("var-axis-ddof", lambda xp, x: xp.sum(xp.var(x, axis=0, ddof=1)), (normal(3, 4),)),
    ("std", lambda xp, x: xp.std(x), (normal(3, 4),)),
    ("std-axis-keepdims", lambda xp, x: xp.sum(xp.std(x, axis=1, keepdims=True) * x), (normal(3, 4),)),
    ("amax", lambda xp, x: xp.sum(xp.amax(x, axis=0)), (distinct(3, 4),)),
    ("amin", lambda xp, x: xp.amin(x), (distinct(3, 4),)),
    ("max-ties", lambda xp, x: xp.max(x), (np.array([1.0, 3.0, 3.0, 2.0]),)),
    ("mean-axis-tuple", lambda xp, x: xp.sum(xp.mean(x, axis=(0, 2)) * xp.arange(4.0)), (normal(2, 4, 3),)),
    ("sum-keepdims", lambda xp, x: xp.sum(xp.sum(x, axis=(0, 2), keepdims=True) * x), (normal(2, 4, 3),)),
    ("norm-vec", lambda xp, x: xp.linalg.norm(x), (normal(5),)),
    ("norm-vec-1", lambda xp, x: xp.linalg.norm(x, 1), (normal(5),)),
    ("norm-vec-inf", lambda xp, x: xp.linalg.norm(x, np.inf), (distinct(5),)),
    ("norm-vec-3", lambda xp, x: xp.linalg.norm(x, 3), (normal(5),)),
    ("norm-fro", lambda xp, x: xp.linalg.norm(x), (normal(3, 4),)),
    ("norm-fro-named", lambda xp, x: xp.linalg.norm(x, "fro"), (normal(3, 4),)),
    ("norm-nuc", lambda xp, x: xp.linalg.norm(x, "nuc"), (normal(3, 4),)),
    ("norm-2-matrix", lambda xp, x: xp.linalg.norm(x, 2), (normal(3, 4),)),
    ("norm-axis", lambda xp, x: xp.sum(xp.linalg.norm(x, axis=1)), (normal(3, 4),)),
    ("median", lambda xp, x: xp.median(x), (distinct(5),)),
    ("average-weights", lambda xp, x: xp.average(x, weights=xp.arange(1.0, 5.0), axis=1).sum(), (normal(3, 4),)),
    # ---- linear algebra
    ("dot", lambda xp, x, y: xp.sum(xp.dot(x, y)), (normal(3, 4), normal(4, 2))),
    ("dot-vec", lambda xp, x, y: xp.dot(x, y), (normal(4), normal(4, seed=2))),
    ("vdot", lambda xp, x, y: xp.vdot(x, y), (normal(3, 4), normal(3, 4, seed=2))),
    ("inner", lambda xp, x, y: xp.sum(xp.inner(x, y)), (normal(3, 4), normal(2, 4))),
    ("outer", lambda xp, x, y: xp.sum(xp.outer(x, y) * W), (normal(3), normal(4))),
    ("tensordot", lambda xp, x, y: xp.sum(xp.tensordot(x, y, axes=([1, 2], [0, 1]))), (normal(2, 3, 4), normal(3, 4, 5))),
    ("einsum-matmul", lambda xp, x, y: xp.sum(xp.einsum("ij,jk->ik", x, y)), (normal(3, 4), normal(4, 2))),
    ("einsum-trace", lambda xp, x: xp.einsum("ii", x), (normal(4, 4),)),
    ("einsum-diag", lambda xp, x: xp.sum(xp.einsum("ii->i", x) ** 2), (normal(4, 4),)),
    ("einsum-implicit", lambda xp, x, y: xp.sum(xp.einsum("ij,jk", x, y) ** 2), (normal(3, 4), normal(4, 2))),
    ("einsum-batch", lambda xp, x, y: xp.sum(xp.einsum("bij,bjk->bik", x, y) ** 2), (normal(2, 3, 4), normal(2, 4, 2))),
    ("einsum-ellipsis", lambda xp, x, y: xp.sum(xp.einsum("...ij,...j->...i", x, y) ** 2), (normal(2, 3, 4), normal(2, 4))),
    ("einsum-outer-sum", lambda xp, x, y: xp.einsum("i,j->", x, y), (normal(3), normal(4))),
    ("kron", lambda xp, x, y: xp.sum(xp.kron(x, y) ** 2), (normal(2, 3), normal(2, 2))),
    ("cross", lambda xp, x, y: xp.sum(xp.cross(x, y) ** 2), (normal(4, 3), normal(4, 3, seed=2))),
    ("trace", lambda xp, x: xp.trace(x @ x), (normal(4, 4),)),
    ("diag-extract", lambda xp, x: xp.sum(xp.diag(x) ** 2), (normal(4, 4),)),
    ("diag-build", lambda xp, x: xp.sum(xp.diag(x) @ W4), (normal(4),)),
    ("diagonal-offset", lambda xp, x: xp.sum(xp.diagonal(x, 1) ** 2), (normal(4, 5),)),
    ("inv", lambda xp, x: xp.sum(xp.linalg.inv(x)), (spd(4),)),
    ("det", lambda xp, x: xp.linalg.det(x), (normal(4, 4),)),
    ("slogdet", lambda xp, x: xp.linalg.slogdet(x)[1], (normal(4, 4),)),
    ("solve", lambda xp, a, b: xp.sum(xp.linalg.solve(a, b)), (spd(4), normal(4, 2))),
    ("solve-vec", lambda xp, a, b: xp.sum(xp.linalg.solve(a, b) ** 2), (spd(4), normal(4))),
    ("cholesky", lambda xp, x: xp.sum(xp.linalg.cholesky((x + x.T) / 2) ** 2 * xp.tril(xp.ones((4, 4)))), (spd(4),)),
    ("eigh-values", lambda xp, x: xp.sum(xp.linalg.eigh((x + x.T) / 2)[0] * xp.arange(1.0, 5.0)), (spd(4),)),
    ("eigh-vectors", lambda xp, x: xp.sum(xp.abs(xp.linalg.eigh((x + x.T) / 2)[1][:, 0])), (spd(4, seed=3),)),
    ("svd-values", lambda xp, x: xp.sum(xp.linalg.svd(x, compute_uv=False) ** 3), (normal(4, 3),)),
    ("matmul-batched-vec", lambda xp, x, y: xp.sum((x @ y) ** 2), (normal(2, 3, 4), normal(4))),
    # ---- shapes and indexing
    ("ravel", lambda xp, x: xp.sum(xp.ravel(x) * xp.arange(12.0)), (normal(3, 4),)),
    ("flatten-method", lambda xp, x: xp.sum(x.flatten() * xp.arange(12.0)), (normal(3, 4),)),
    ("squeeze", lambda xp, x: xp.sum(xp.squeeze(x) * W), (normal(3, 1, 4).reshape(3, 1, 4),)),
    ("expand_dims", lambda xp, x: xp.sum(xp.expand_dims(x, 1) * xp.ones((3, 2, 4))), (normal(3, 4),)),
    ("swapaxes", lambda xp, x: xp.sum(xp.swapaxes(x, 0, 2) * xp.arange(24.0).reshape(4, 3, 2)), (normal(2, 3, 4),)),
    ("moveaxis", lambda xp, x: xp.sum(xp.moveaxis(x, 0, -1) * xp.arange(24.0).reshape(3, 4, 2)), (normal(2, 3, 4),)),
    ("transpose-axes", lambda xp, x: xp.sum(xp.transpose(x, (1, 2, 0)) * xp.arange(24.0).reshape(3, 4, 2)), (normal(2, 3, 4),)),
    ("repeat", lambda xp, x: xp.sum(xp.repeat(x, 3, axis=1) ** 2), (normal(3, 4),)),
    ("repeat-flat", lambda xp, x: xp.sum(xp.repeat(x, 2) * xp.arange(24.0)), (normal(3, 4),)),
    ("tile", lambda xp, x: xp.sum(xp.tile(x, (2, 3)) * xp.arange(72.0).reshape(6, 12)), (normal(3, 4),)),
    ("flip", lambda xp, x: xp.sum(xp.flip(x, 1) * W), (normal(3, 4),)),
    ("rot90", lambda xp, x: xp.sum(xp.rot90(x) * W.T), (normal(3, 4),)),
    ("roll", lambda xp, x: xp.sum(xp.roll(x, 2, axis=1) * W), (normal(3, 4),)),
    ("pad", lambda xp, x: xp.sum(xp.pad(x, ((1, 0), (2, 1))) * xp.arange(35.0).reshape(5, 7) ** 0.5), (normal(4, 4),)),
    ("tril-triu", lambda xp, x: xp.sum(xp.tril(x) * 2 + xp.triu(x, 1) * W4), (normal(4, 4),)),
    ("split", lambda xp, x: xp.sum(xp.split(x, 2, axis=1)[1] ** 2), (normal(3, 4),)),
    ("array_split", lambda xp, x: xp.sum(xp.array_split(x, 3)[2] ** 3), (normal(7),)),
    ("hsplit-vsplit", lambda xp, x: xp.sum(xp.hsplit(x, 2)[0] ** 2) + xp.sum(xp.vsplit(x, 2)[1] ** 3), (normal(4, 4),)),
    ("concatenate", lambda xp, x, y: xp.sum(xp.concatenate([x, y], axis=0) ** 2), (normal(3, 4), normal(2, 4))),
    ("hstack-vstack", lambda xp, x, y: xp.sum(xp.hstack([x, y]) ** 2) + xp.sum(xp.vstack([x, y * 2])), (normal(3, 3), normal(3, 3))),
    ("dstack", lambda xp, x, y: xp.sum(xp.dstack([x, y]) ** 2), (normal(3, 4), normal(3, 4))),
    ("column_stack", lambda xp, x, y: xp.sum(xp.column_stack([x, y]) ** 3), (normal(3), normal(3))),
    ("append", lambda xp, x, y: xp.sum(xp.append(x, y) ** 2), (normal(3), normal(2))),
    ("atleast", lambda xp, x: xp.sum(xp.atleast_2d(x) ** 2) + xp.sum(xp.atleast_3d(x)) + xp.sum(xp.atleast_1d(x)), (normal(3),)),
    ("sort", lambda xp, x: xp.sum(xp.sort(x) * xp.array([1.0, 2.0, 3.0])), (np.array([3.0, 1.0, 2.0]),)),
    ("sort-axis", lambda xp, x: xp.sum(xp.sort(x, axis=0) * W), (distinct(3, 4),)),
    ("partition", lambda xp, x: xp.partition(x, 2)[2], (distinct(6),)),
    ("fancy-index", lambda xp, x: xp.sum(x[[0, 2, 2], [1, 1, 3]] ** 2), (normal(3, 4),)),
    ("bool-index", lambda xp, x: xp.sum(x[x > 0] ** 2), (normal(3, 4),)),
    ("take_along_axis", lambda xp, x: xp.sum(xp.take_along_axis(x, xp.array([[0], [2], [1]]), axis=1) ** 2), (normal(3, 4),)),
    ("take", lambda xp, x: xp.sum(xp.take(x, xp.array([0, 3, 3])) ** 2), (normal(3, 4),)),
    ("slice-step", lambda xp, x: xp.sum(x[::-1, 1::2] * W[:, :2]), (normal(3, 4),)),
    ("stack-list-of-traced", lambda xp, x: xp.sum(xp.stack([x[0] * 2, x[1], x[0] * x[1]]) ** 2), (normal(2, 3),)),
    # ---- methods
    ("method-dot", lambda xp, x, y: xp.sum(x.dot(y)), (normal(3, 4), normal(4, 2))),
    ("method-ravel-reshape", lambda xp, x: xp.sum(x.ravel().reshape(4, 3) * W.T), (normal(3, 4),)),
    ("method-reshape-args", lambda xp, x: xp.sum(x.reshape(2, 6) ** 2), (normal(3, 4),)),
    ("method-transpose-args", lambda xp, x: xp.sum(x.transpose(1, 0) * W.T), (normal(3, 4),)),
    ("method-reductions", lambda xp, x: x.sum(axis=0).prod() + x.mean() + x.max() - x.min() + x.var() + x.std(),
     (distinct(3, 4) / 10,)),
    ("method-cumsum", lambda xp, x: xp.sum(x.cumsum(axis=1) * W), (normal(3, 4),)),
    ("method-clip-squeeze", lambda xp, x: xp.sum(x.clip(-0.5, 0.5).squeeze() * W), (normal(3, 1, 4).reshape(3, 4),)),
    ("method-astype-T", lambda xp, x: xp.sum(x.astype(xp.float64).T * W.T), (normal(3, 4),)),
]


def _jax_grad(f, args, argnums):
    with jax.enable_x64(True):
        g = jax.grad(lambda *a: f(jnp, *a), argnums=argnums)(*[jnp.asarray(a) for a in args])
        return jax.tree.map(np.asarray, g)


def _central(f, args, argnum, h=1e-5):
    x = np.array(args[argnum], dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = h * max(1.0, abs(x[i]))
        xp_, xm = x.copy(), x.copy()
        xp_[i] += step
        xm[i] -= step
        a_p = list(args); a_p[argnum] = xp_
        a_m = list(args); a_m[argnum] = xm
        g[i] = (float(f(np, *a_p)) - float(f(np, *a_m))) / (2 * step)
    return g


@pytest.mark.parametrize("name,f,args", CASES, ids=[c[0] for c in CASES])
def test_numpy_surface_matches_jax_and_finite_differences(name, f, args):
    argnums = tuple(range(len(args)))
    got = tracer.grad(lambda *a: f(np, *a), argnums=argnums)(*args)
    want = _jax_grad(f, args, argnums)
    for k in argnums:
        np.testing.assert_allclose(got[k], want[k], rtol=RTOL_EXACT, atol=ATOL_EXACT, err_msg=f"{name}: arg {k} vs jax")
        np.testing.assert_allclose(got[k], _central(f, args, k), rtol=RTOL_FD, atol=ATOL_FD,
                                   err_msg=f"{name}: arg {k} vs central differences")
