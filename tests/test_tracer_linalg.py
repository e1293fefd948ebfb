"""The tracer's linear algebra (``funcnet/tracer/_linalg.py``) against JAX and finite differences.

Each program is written once against a NumPy-like namespace ``xp``: the tracer runs it with ``xp = numpy``
(NumPy's functions dispatch to the rule table), JAX with ``xp = jax.numpy`` under ``jax.jit``, in float64.

* reverse mode: ``tracer.grad`` vs ``jax.grad`` (1e-10 relative) and vs central differences (1e-6);
* forward mode: ``tracer.jvp`` vs ``jax.jvp`` on random tangents (1e-10 relative);
* second order: ``tracer.hessian`` vs ``jax.hessian`` (1e-9 relative);
* complex inputs of the products: ``tracer.vjp`` vs ``jax.vjp`` with complex cotangents (1e-10 relative);
* conventions at points without a derivative, and errors (type and key words).

Eigenvector and singular-vector signs are arbitrary, so programs that read vectors use sign-free
combinations (squares, ``u_i v_i`` products, reconstructions).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import tracer

RTOL, ATOL = 1e-10, 1e-12
RTOL_FD, ATOL_FD = 1e-6, 1e-6
RTOL_2, ATOL_2 = 1e-9, 1e-10


def normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def cnormal(*shape, seed=0):
    r = np.random.default_rng(seed)
    return r.normal(size=shape) + 1j * r.normal(size=shape)


def spd(n, seed=0, batch=()):
    a = normal(*batch, n, n, seed=seed)
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def distinct(*shape, seed=0):
    n = int(np.prod(shape))
    r = np.random.default_rng(seed)
    return ((r.permutation(n) + r.uniform(0.1, 0.4, size=n)) * np.where(r.random(n) < 0.5, -1, 1)).reshape(shape)


def sym(xp, x):
    return (x + xp.swapaxes(x, -1, -2)) / 2


W = normal(3, 4, seed=7)
W4 = normal(4, 4, seed=8)

# ------------------------------------------------------------------ reverse mode: (name, f(xp, *args) -> scalar, args)
GRAD_CASES = [
    # einsum: every kind of subscripts
    ("einsum-transpose", lambda xp, x: xp.sum(xp.einsum("ij->ji", x) * W.T), (normal(3, 4),)),
    ("einsum-sum-axis", lambda xp, x: xp.sum(xp.einsum("ij->i", x) ** 2), (normal(3, 4),)),
    ("einsum-full-sum", lambda xp, x: xp.einsum("ij->", x) ** 2, (normal(3, 4),)),
    ("einsum-three-operands", lambda xp, x, y, z: xp.einsum("ij,jk,kl->il", x, y, z).sum(),
     (normal(2, 3), normal(3, 4, seed=1), normal(4, 2, seed=2))),
    ("einsum-repeated-in-two", lambda xp, x, y: xp.einsum("iij,jk->ik", x, y).sum() ** 2,
     (normal(3, 3, 2), normal(2, 4, seed=1))),
    ("einsum-triple-diagonal", lambda xp, x: xp.einsum("iii->i", x) @ xp.arange(1.0, 4.0), (normal(3, 3, 3),)),
    ("einsum-diag-times-vector", lambda xp, x, y: xp.sum(xp.einsum("ii,i->i", x, y) ** 2), (normal(4, 4), normal(4))),
    ("einsum-bilinear", lambda xp, x, a, y: xp.einsum("i,ij,j", x, a, y), (normal(3), normal(3, 4, seed=1), normal(4, seed=2))),
    ("einsum-ellipsis-broadcast", lambda xp, x, y: xp.sum(xp.einsum("...ij,...jk->...ik", x, y) ** 2),
     (normal(1, 3, 4), normal(2, 4, 2, seed=1))),
    ("einsum-ellipsis-implicit", lambda xp, x: xp.sum(xp.einsum("...ii", x) ** 2), (normal(2, 3, 3),)),
    ("einsum-implicit-order", lambda xp, x, y: xp.sum(xp.einsum("ba,cb", x, y) * W[:2, :3]),
     (normal(4, 2), normal(3, 4, seed=1))),
    ("einsum-scalar-operand", lambda xp, s, x: xp.sum(xp.einsum(",ij->ij", s, x) ** 2), (np.array(1.5), normal(2, 3))),
    ("einsum-empty-contraction", lambda xp, x, y, z: xp.sum(xp.einsum("ij,jk->ik", x, y) + z),
     (normal(3, 0), normal(0, 2), normal(3, 2))),
    ("einsum-size-one-broadcast", lambda xp, x, y: xp.sum(xp.einsum("...i,...i->...", x, y) ** 2),
     (normal(3, 1, 4), normal(1, 2, 4, seed=1))),
    # dot, inner, outer, vdot, tensordot, matmul
    ("dot-size-one", lambda xp, x, y: xp.sum(xp.dot(x, y) ** 2), (normal(3, 1), normal(1, 4, seed=1))),
    ("dot-matrix-vector", lambda xp, x, y: xp.sum(xp.dot(x, y) ** 2), (normal(3, 4), normal(4))),
    ("dot-scalar", lambda xp, s, x: xp.sum(xp.dot(s, x) * W), (np.array(0.7), normal(3, 4))),
    ("dot-nd", lambda xp, x, y: xp.sum(xp.dot(x, y) ** 2), (normal(2, 3, 4), normal(5, 4, 2, seed=1))),
    ("dot-nd-vector", lambda xp, x, y: xp.sum(xp.dot(x, y) ** 2), (normal(2, 3, 4), normal(4, seed=1))),
    ("inner-nd", lambda xp, x, y: xp.sum(xp.inner(x, y) ** 2), (normal(2, 3, 4), normal(5, 4, seed=1))),
    ("inner-vectors", lambda xp, x, y: xp.inner(x, y) ** 2, (normal(4), normal(4, seed=1))),
    ("outer-flattens", lambda xp, x, y: xp.sum(xp.outer(x, y) ** 2), (normal(2, 2), normal(3, seed=1))),
    ("vdot-vectors", lambda xp, x, y: xp.vdot(x, y) ** 2, (normal(4), normal(4, seed=1))),
    ("tensordot-int", lambda xp, x, y: xp.sum(xp.tensordot(x, y, axes=1) ** 2), (normal(2, 3), normal(3, 4, seed=1))),
    ("tensordot-zero", lambda xp, x, y: xp.sum(xp.tensordot(x, y, axes=0) * 1.5), (normal(2), normal(3, seed=1))),
    ("matmul-vec-vec", lambda xp, x, y: (x @ y) ** 2, (normal(4), normal(4, seed=1))),
    ("matmul-vec-batched", lambda xp, x, y: xp.sum((x @ y) ** 2), (normal(3), normal(2, 3, 4, seed=1))),
    ("matmul-broadcast", lambda xp, x, y: xp.sum(xp.matmul(x, y) ** 2), (normal(2, 1, 3, 4), normal(3, 4, 2, seed=1))),
    # kron, cross, trace, diagonal, diag
    ("kron-vectors", lambda xp, x, y: xp.sum(xp.kron(x, y) * xp.arange(6.0)), (normal(2), normal(3, seed=1))),
    ("kron-mixed-ndim", lambda xp, x, y: xp.sum(xp.kron(x, y) ** 2), (normal(2, 2, 2), normal(3, 2, seed=1))),
    ("cross-axis0", lambda xp, x, y: xp.sum(xp.cross(x, y, axis=0) ** 2), (normal(3, 4), normal(3, 4, seed=1))),
    ("cross-broadcast", lambda xp, x, y: xp.sum(xp.cross(x, y) * xp.arange(6.0).reshape(2, 3)),
     (normal(2, 3), normal(3, seed=1))),
    ("trace-offset-axes", lambda xp, x: xp.sum(xp.trace(x, 1, 0, 2) ** 2), (normal(3, 2, 4),)),
    ("trace-negative-offset", lambda xp, x: xp.trace(x, -1) ** 2, (normal(4, 3),)),
    ("diagonal-axes", lambda xp, x: xp.sum(xp.diagonal(x, 0, 2, 1) ** 2), (normal(2, 3, 3),)),
    ("diagonal-negative-offset", lambda xp, x: xp.sum(xp.diagonal(x, -2) ** 3), (normal(5, 4),)),
    ("diag-build-offset", lambda xp, x: xp.sum(xp.diag(x, 1) * xp.arange(16.0).reshape(4, 4)), (normal(3),)),
    ("diag-build-negative", lambda xp, x: xp.sum(xp.diag(x, -2) @ W4[:, :]), (normal(2),)),
    ("diag-extract-offset", lambda xp, x: xp.sum(xp.diag(x, -1) ** 2), (normal(4, 3),)),
    ("diagflat", lambda xp, x: xp.sum(xp.diagflat(x) @ W4), (normal(2, 2),)),
    # numpy.linalg
    ("inv-batched", lambda xp, x: xp.sum(xp.linalg.inv(x) * W4), (spd(4, batch=(2,)),)),
    ("det-batched", lambda xp, x: xp.sum(xp.linalg.det(x) ** 2), (normal(3, 3, 3),)),
    ("slogdet-negative-det", lambda xp, x: xp.linalg.slogdet(x)[1] * 2.0,
     (normal(4, 4) @ np.diag([-1.0, 1.0, 1.0, 1.0]),)),
    ("slogdet-batched", lambda xp, x: xp.sum(xp.linalg.slogdet(x)[1]), (normal(2, 3, 3),)),
    ("solve-batched", lambda xp, a, b: xp.sum(xp.linalg.solve(a, b) ** 2), (spd(3, batch=(2,)), normal(2, 3, 2))),
    ("solve-broadcast-b", lambda xp, a, b: xp.sum(xp.linalg.solve(a, b) ** 2), (spd(3, batch=(2,)), normal(3, 2))),
    ("solve-batched-vector", lambda xp, a, b: xp.sum(xp.linalg.solve(a, b) ** 2), (spd(3, batch=(2,)), normal(3))),
    ("cholesky-upper", lambda xp, x: xp.sum(xp.linalg.cholesky(sym(xp, x), upper=True) * W4), (spd(4),)),
    ("cholesky-batched", lambda xp, x: xp.sum(xp.linalg.cholesky(sym(xp, x)) ** 2), (spd(3, batch=(2,)),)),
    ("eigvalsh", lambda xp, x: xp.sum(xp.linalg.eigvalsh(sym(xp, x)) ** 3), (normal(4, 4),)),
    ("eigh-vector-outer", lambda xp, x: xp.sum(xp.outer(*[xp.linalg.eigh(sym(xp, x))[1][:, 2]] * 2) * W4),
     (normal(4, 4, seed=5),)),
    ("eigh-both", lambda xp, x: xp.sum((xp.linalg.eigh(sym(xp, x))[1] ** 2) * xp.linalg.eigh(sym(xp, x))[0]),
     (normal(3, 3, seed=2),)),
    ("eigh-batched-values", lambda xp, x: xp.sum(xp.linalg.eigh(sym(xp, x))[0] * xp.arange(3.0)), (normal(2, 3, 3),)),
    ("svd-values-wide", lambda xp, x: xp.sum(xp.linalg.svd(x, compute_uv=False) ** 2 * xp.arange(1.0, 4.0)),
     (normal(3, 5),)),
    ("svd-reconstruct-tall", lambda xp, x: xp.sum((lambda u, s, vh: (u * s) @ vh)(*xp.linalg.svd(x, full_matrices=False)) * W.T),
     (normal(4, 3),)),
    ("svd-u-squared-tall", lambda xp, x: xp.sum(xp.linalg.svd(x, full_matrices=False)[0] ** 2 * W.T[:, :3]),
     (normal(4, 3, seed=3),)),
    ("svd-uv-product-wide", lambda xp, x: xp.sum((lambda u, s, vh: u[:, 0] @ W[:, :3].T @ vh[0, :3])
                                                  (*xp.linalg.svd(x, full_matrices=False))), (normal(3, 4, seed=4),)),
    ("svd-square-full", lambda xp, x: xp.sum(xp.linalg.svd(x)[2] ** 2 * W4), (normal(4, 4, seed=6),)),
    ("svd-batched-values", lambda xp, x: xp.sum(xp.linalg.svd(x, compute_uv=False) ** 3), (normal(2, 3, 2),)),
    ("matrix_power", lambda xp, x: xp.sum(xp.linalg.matrix_power(x, 3) * W4), (normal(4, 4) / 2,)),
    ("matrix_power-negative", lambda xp, x: xp.sum(xp.linalg.matrix_power(x, -2) * W4), (spd(4),)),
    ("pinv-tall", lambda xp, x: xp.sum(xp.linalg.pinv(x) * W), (normal(4, 3),)),
    ("pinv-wide-batched", lambda xp, x: xp.sum(xp.linalg.pinv(x) ** 2), (normal(2, 2, 3),)),
    ("cond", lambda xp, x: xp.linalg.cond(x) + xp.linalg.cond(x, -2) + xp.linalg.cond(x, "fro") + xp.linalg.cond(x, 1),
     (normal(3, 3) + 3 * np.eye(3),)),
    ("multi_dot", lambda xp, x, y, z: xp.linalg.multi_dot([x, y, z]), (normal(3), normal(3, 4, seed=1), normal(4, seed=2))),
]
# norms: every ord NumPy takes, with axis and keepdims
VECTOR_ORDS = [None, 1, 2, np.inf, -np.inf, 3, 0.5, -1.5]
MATRIX_ORDS = [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]
GRAD_CASES += [(f"norm-vector-ord={o}", lambda xp, x, o=o: xp.linalg.norm(x, o), (distinct(5),)) for o in VECTOR_ORDS]
GRAD_CASES += [(f"norm-matrix-ord={o}", lambda xp, x, o=o: xp.linalg.norm(x, o), (distinct(3, 4),)) for o in MATRIX_ORDS]
GRAD_CASES += [
    ("norm-axis-keepdims", lambda xp, x: xp.sum(xp.linalg.norm(x, 3, axis=0, keepdims=True) * x), (normal(3, 4),)),
    ("norm-3d-flat", lambda xp, x: xp.linalg.norm(x), (normal(2, 3, 2),)),
    ("norm-matrix-axes-keepdims", lambda xp, x: xp.sum(xp.linalg.norm(x, 1, axis=(2, 0), keepdims=True) * x),
     (distinct(3, 2, 4),)),
    ("norm-nuc-batched-axes", lambda xp, x: xp.sum(xp.linalg.norm(x, "nuc", axis=(0, 2)) ** 2), (normal(3, 2, 4),)),
    ("norm-inf-axis-tuple", lambda xp, x: xp.sum(xp.linalg.norm(x, -np.inf, axis=(1, 0))), (distinct(3, 4),)),
    ("vector_norm", lambda xp, x: xp.sum(xp.linalg.vector_norm(x, axis=(0, 2), ord=4)), (normal(2, 3, 2),)),
    ("matrix_norm", lambda xp, x: xp.sum(xp.linalg.matrix_norm(x, ord=-2)), (normal(2, 3, 2),)),
    ("svdvals", lambda xp, x: xp.sum(xp.linalg.svdvals(x) ** 2), (normal(3, 5),)),
]


def _jax(f):
    return lambda *a: f(jnp, *a)


def _np(f):
    return lambda *a: f(np, *a)


def _central(f, args, k, h=1e-5):
    x = np.array(args[k], dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = h * max(1.0, abs(x[i]))
        hi, lo = list(args), list(args)
        hi[k], lo[k] = x.copy(), x.copy()
        hi[k][i] += step
        lo[k][i] -= step
        g[i] = (float(f(np, *hi)) - float(f(np, *lo))) / (2 * step)
    return g


@pytest.mark.parametrize("name,f,args", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_grad_matches_jax_and_central_differences(name, f, args):
    argnums = tuple(range(len(args)))
    got = tracer.grad(_np(f), argnums=argnums)(*args)
    with jax.enable_x64(True):
        want = jax.jit(jax.grad(_jax(f), argnums=argnums))(*[jnp.asarray(a) for a in args])
    for k in argnums:
        np.testing.assert_allclose(got[k], np.asarray(want[k]), rtol=RTOL, atol=ATOL, err_msg=f"{name}: arg {k} vs jax")
        if name != "norm-vector-ord=0":     # a count: zero gradient, and steps that cross no zero see no change
            np.testing.assert_allclose(got[k], _central(f, args, k), rtol=RTOL_FD, atol=ATOL_FD,
                                       err_msg=f"{name}: arg {k} vs central differences")


def test_norm_ord_zero_counts_nonzeros_with_zero_gradient():
    x = np.array([0.0, 2.0, -1.0, 0.0])
    value, g = tracer.value_and_grad(lambda x: np.linalg.norm(x, 0) + np.sum(x))(x)
    assert value == pytest.approx(2.0 + 1.0, abs=0)
    np.testing.assert_array_equal(g, np.ones(4))         # d(sum)/dx only; the count adds nothing, as jax.grad


# ------------------------------------------------------------------ forward mode: (name, f(xp, *args) -> array, args)
JVP_CASES = [
    ("einsum-repeated", lambda xp, x, y: xp.einsum("iij,jk->ik", x, y), (normal(3, 3, 2), normal(2, 4, seed=1))),
    ("einsum-ellipsis", lambda xp, x, y: xp.einsum("...ij,...j->...i", x, y), (normal(2, 3, 4), normal(2, 4, seed=1))),
    ("dot-nd", lambda xp, x, y: xp.dot(x, y), (normal(2, 3, 4), normal(5, 4, 2, seed=1))),
    ("inner", lambda xp, x, y: xp.inner(x, y), (normal(3, 4), normal(2, 4, seed=1))),
    ("vdot", lambda xp, x, y: xp.vdot(x, y), (normal(3, 4), normal(3, 4, seed=1))),
    ("outer-kron", lambda xp, x, y: xp.kron(xp.outer(x, y), y), (normal(2), normal(3, seed=1))),
    ("cross", lambda xp, x, y: xp.cross(x, y), (normal(4, 3), normal(4, 3, seed=1))),
    ("trace-diagonal-diag", lambda xp, x: xp.trace(x) * xp.diag(xp.diagonal(x, 1)), (normal(4, 4),)),
    ("inv", lambda xp, x: xp.linalg.inv(x), (spd(3, batch=(2,)),)),
    ("det", lambda xp, x: xp.linalg.det(x), (normal(2, 3, 3),)),
    ("slogdet", lambda xp, x: xp.linalg.slogdet(x)[1], (normal(2, 3, 3),)),
    ("solve-matrix", lambda xp, a, b: xp.linalg.solve(a, b), (spd(3, batch=(2,)), normal(3, 2))),
    ("solve-vector", lambda xp, a, b: xp.linalg.solve(a, b), (spd(3), normal(3))),
    ("cholesky", lambda xp, x: xp.linalg.cholesky(sym(xp, x)), (spd(4),)),
    ("eigh-values", lambda xp, x: xp.linalg.eigh(sym(xp, x))[0], (normal(2, 4, 4),)),
    ("eigh-vectors-squared", lambda xp, x: xp.linalg.eigh(sym(xp, x))[1] ** 2, (normal(4, 4),)),
    ("svd-values", lambda xp, x: xp.linalg.svd(x, compute_uv=False), (normal(2, 3, 4),)),
    ("svd-u-squared-tall", lambda xp, x: xp.linalg.svd(x, full_matrices=False)[0] ** 2, (normal(5, 3),)),
    ("svd-v-squared-wide", lambda xp, x: xp.linalg.svd(x, full_matrices=False)[2] ** 2, (normal(3, 5),)),
    ("pinv", lambda xp, x: xp.linalg.pinv(x), (normal(2, 4, 3),)),
    ("norms", lambda xp, x: xp.stack([xp.linalg.norm(x, o) for o in MATRIX_ORDS[1:]]), (distinct(3, 4),)),
]


@pytest.mark.parametrize("name,f,args", JVP_CASES, ids=[c[0] for c in JVP_CASES])
def test_jvp_matches_jax(name, f, args):
    tangents = tuple(normal(*np.shape(a), seed=11 + i) for i, a in enumerate(args))
    out, tan = tracer.jvp(_np(f), args, tangents)
    with jax.enable_x64(True):
        want_out, want_tan = jax.jit(lambda a, t: jax.jvp(_jax(f), a, t))(tuple(map(jnp.asarray, args)),
                                                                          tuple(map(jnp.asarray, tangents)))
    np.testing.assert_allclose(out, np.asarray(want_out), rtol=RTOL, atol=ATOL, err_msg=f"{name}: value")
    np.testing.assert_allclose(tan, np.asarray(want_tan), rtol=RTOL, atol=ATOL, err_msg=f"{name}: tangent")


# ------------------------------------------------------------------ second order: (name, f(xp, x) -> scalar, x)
HESSIAN_CASES = [
    ("einsum-trace-of-square", lambda xp, x: xp.einsum("ij,ji", x, x) ** 2, normal(3, 3)),
    ("inv", lambda xp, x: xp.sum(xp.linalg.inv(x) * W4[:3, :3]), spd(3)),
    ("det", lambda xp, x: xp.linalg.det(x), normal(3, 3)),
    ("solve", lambda xp, x: xp.sum(xp.linalg.solve(x, xp.arange(1.0, 4.0)) ** 2), spd(3)),
    ("cholesky", lambda xp, x: xp.sum(xp.linalg.cholesky(sym(xp, x)) ** 3), spd(3)),
    ("eigh-values", lambda xp, x: xp.sum(xp.linalg.eigvalsh(sym(xp, x)) ** 3), normal(3, 3)),
    ("eigh-vectors", lambda xp, x: xp.sum(xp.linalg.eigh(sym(xp, x))[1] ** 4), normal(3, 3)),
    ("svd-values", lambda xp, x: xp.sum(xp.linalg.svd(x, compute_uv=False) ** 3), normal(3, 2)),
    ("svd-vectors", lambda xp, x: xp.sum(xp.linalg.svd(x, full_matrices=False)[0] ** 4), normal(3, 2)),
    ("norm-nuc", lambda xp, x: xp.linalg.norm(x, "nuc"), normal(2, 3)),
    ("pinv", lambda xp, x: xp.sum(xp.linalg.pinv(x) ** 2), normal(3, 2)),
]


@pytest.mark.parametrize("name,f,x", HESSIAN_CASES, ids=[c[0] for c in HESSIAN_CASES])
def test_hessian_matches_jax(name, f, x):
    got = tracer.hessian(_np(f))(x)
    with jax.enable_x64(True):
        want = jax.jit(jax.hessian(_jax(f)))(jnp.asarray(x))
    np.testing.assert_allclose(got, np.asarray(want), rtol=RTOL_2, atol=ATOL_2, err_msg=name)


def test_grad_of_grad_of_einsum_matches_jax():
    f = lambda xp, x: xp.einsum("i,ij,j", x, W4, x) ** 2   # noqa: E731
    x = normal(4)
    got = tracer.grad(lambda x: np.sum(tracer.grad(_np(f))(x) ** 2))(x)
    with jax.enable_x64(True):
        want = jax.grad(lambda x: jnp.sum(jax.grad(_jax(f))(x) ** 2))(jnp.asarray(x))
    np.testing.assert_allclose(got, np.asarray(want), rtol=RTOL_2, atol=ATOL_2)


# ------------------------------------------------------------------ complex inputs: tracer.vjp vs jax.vjp
COMPLEX_CASES = [
    ("dot", lambda xp, x, y: xp.dot(x, y), (cnormal(3, 4), cnormal(4, 2, seed=1))),
    ("dot-nd", lambda xp, x, y: xp.dot(x, y), (cnormal(2, 3), cnormal(2, 3, 2, seed=1))),
    ("vdot", lambda xp, x, y: xp.vdot(x, y), (cnormal(3, 2), cnormal(3, 2, seed=1))),
    ("inner", lambda xp, x, y: xp.inner(x, y), (cnormal(3, 4), cnormal(2, 4, seed=1))),
    ("outer", lambda xp, x, y: xp.outer(x, y), (cnormal(3), cnormal(2, seed=1))),
    ("einsum", lambda xp, x, y: xp.einsum("bij,bjk->bik", x, y), (cnormal(2, 3, 4), cnormal(2, 4, 2, seed=1))),
    ("einsum-repeated", lambda xp, x: xp.einsum("iij->j", x), (cnormal(3, 3, 2),)),
    ("tensordot", lambda xp, x, y: xp.tensordot(x, y, axes=([1], [0])), (cnormal(2, 3), cnormal(3, 2, seed=1))),
    ("matmul", lambda xp, x, y: x @ y, (cnormal(2, 3, 4), cnormal(4, seed=1))),
    ("kron-trace-diag", lambda xp, x, y: xp.kron(xp.diag(x), y) * xp.trace(y), (cnormal(3, 3), cnormal(2, 2, seed=1))),
    ("inv-det", lambda xp, x: xp.linalg.inv(x) * xp.linalg.det(x), (cnormal(3, 3),)),
    ("solve", lambda xp, a, b: xp.linalg.solve(a, b), (cnormal(3, 3), cnormal(3, 2, seed=1))),
]


@pytest.mark.parametrize("name,f,args", COMPLEX_CASES, ids=[c[0] for c in COMPLEX_CASES])
def test_complex_vjp_matches_jax(name, f, args):
    out, pull = tracer.vjp(_np(f), *args)
    ct = cnormal(*np.shape(out), seed=21)
    got = pull(ct)
    with jax.enable_x64(True):
        want_out, want = jax.jit(lambda a, c: (lambda o, pull: (o, pull(c)))(*jax.vjp(_jax(f), *a)))(
            tuple(map(jnp.asarray, args)), jnp.asarray(ct))
    np.testing.assert_allclose(out, np.asarray(want_out), rtol=RTOL, atol=ATOL, err_msg=f"{name}: value")
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, np.asarray(b), rtol=RTOL, atol=ATOL, err_msg=f"{name}: arg {k}")


# ------------------------------------------------------------------ conventions where no derivative exists
def test_repeated_eigenvalues_values_only_stay_finite_and_match_jax():
    x = np.diag([2.0, 2.0, 5.0]) + 0.0
    f = lambda xp, x: xp.sum(xp.linalg.eigh(sym(xp, x))[0] * xp.array([1.0, 2.0, 3.0]))   # noqa: E731
    got = tracer.grad(_np(f))(x)
    with jax.enable_x64(True):
        want = jax.grad(_jax(f))(jnp.asarray(x))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np.asarray(want), rtol=RTOL, atol=ATOL)


def test_repeated_eigenvalues_vectors_have_no_derivative_nan_as_jax():
    x = np.diag([2.0, 2.0, 5.0])
    f = lambda xp, x: xp.sum(xp.linalg.eigh(sym(xp, x))[1] * W4[:3, :3])   # noqa: E731
    got = tracer.grad(_np(f))(x)
    with jax.enable_x64(True):
        want = np.asarray(jax.grad(_jax(f))(jnp.asarray(x)))
    assert not np.all(np.isfinite(want)) and np.isnan(got).any()


def test_singular_values_of_rank_deficient_tall_matrix_finite_as_jax():
    x = np.outer(normal(4), normal(3, seed=1))                 # rank 1: two zero singular values
    f = lambda xp, x: xp.sum(xp.linalg.svd(x, compute_uv=False) * xp.array([1.0, 2.0, 3.0]))   # noqa: E731
    got = tracer.grad(_np(f))(x)
    with jax.enable_x64(True):
        want = jax.grad(_jax(f))(jnp.asarray(x))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------ the Array API namespace and errors
def test_array_api_namespace_linalg_matches_jax():
    def f(x):
        xp = x.__array_namespace__() if hasattr(x, "__array_namespace__") else jnp
        return (xp.linalg.norm(x, "nuc") + xp.linalg.det(x @ xp.linalg.matrix_transpose(x))
                + xp.einsum("ij,ij", x, x) + xp.sum(xp.linalg.vecdot(x, x)) + xp.linalg.trace(x[:, :3]))

    x = normal(3, 4)
    got = tracer.grad(f)(x)
    with jax.enable_x64(True):
        want = jax.grad(f)(jnp.asarray(x))
    np.testing.assert_allclose(got, np.asarray(want), rtol=RTOL, atol=ATOL)


def _grad_at(f, x):
    return tracer.grad(f)(x)


@pytest.mark.parametrize("f,x,err,words", [
    (lambda x: np.sum(np.linalg.svd(x)[0]), normal(3, 2), tracer.MissingRuleError, ("full_matrices=False",)),
    (lambda x: np.sum(np.linalg.inv(x)), normal(3, 2), ValueError, ("square", "(3, 2)")),
    (lambda x: np.linalg.det(x), normal(3), ValueError, ("square", "(3,)")),
    (lambda x: np.sum(np.einsum("ij,jk", x)), normal(3, 3), ValueError, ("2 operand subscripts", "1 operands")),
    (lambda x: np.sum(np.einsum("ijk", x)), normal(3, 3), ValueError, ("ijk", "(3, 3)")),
    (lambda x: np.linalg.norm(x, "nuc"), normal(3), ValueError, ("invalid norm order", "vectors")),
    (lambda x: np.linalg.norm(x, "bad"), normal(3, 3), ValueError, ("invalid norm order", "matrices")),
    (lambda x: np.linalg.norm(x, 2), normal(2, 2, 2), ValueError, ("dimensions", "3")),
    (lambda x: np.sum(np.diag(x)), normal(2, 2, 2), ValueError, ("1-D or 2-D", "(2, 2, 2)")),
    (lambda x: np.sum(np.cross(x, x)), normal(4), ValueError, ("2 or 3 components", "4")),
    (lambda x: np.abs(np.linalg.slogdet(x)[1]), cnormal(2, 2), TypeError, ("slogdet", "real", "complex128")),
    (lambda x: np.sum(np.einsum("ij", x, out=np.zeros((3, 3)))), normal(3, 3), TypeError, ("out=", "immutable")),
])
def test_bad_input_raises_clear_errors(f, x, err, words):
    with pytest.raises(err) as info:
        _grad_at(f, x)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_rules_read_only_what_they_declare():
    """grad's memory policy (threshold 0: every array) keeps only what each rule declares it reads."""
    from funcnet.tracer import _memory

    def f(x):
        s = np.linalg.svd(x[:, :3], full_matrices=False)
        w, v = np.linalg.eigh(x[:3, :3] @ x[:3, :3].T)
        return (np.sum(np.linalg.inv(x[:3, :3] + 3 * np.eye(3)) * W4[:3, :3]) + np.sum(s[0] ** 4) + np.sum(v ** 4)
                + np.linalg.slogdet(x[:3, :3])[1] + np.sum(np.linalg.cholesky(x[:3, :3] @ x[:3, :3].T + np.eye(3)) ** 2)
                + np.einsum("ij,ij", x, x))

    x = normal(4, 4)
    want = tracer.grad(f)(x)
    with _memory.threshold(0):
        got = tracer.grad(f)(x)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
