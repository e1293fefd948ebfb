"""Complex numbers in funcnet.tracer with JAX's conventions, compared with jax.grad / jax.vjp in float64 (1e-10).

JAX's convention: a cotangent is pulled back through the transposes of the linear maps, without conjugation, so
for a real-valued ``f`` of a complex ``z`` the gradient is ``conj(∂f/∂z̄ · 2)`` in Wirtinger terms (``grad(abs)(z)
= conj(z)/|z|``), and for a holomorphic ``f`` the VJP of the cotangent 1 is ``f'(z)``
(``jax.grad(f, holomorphic=True)``). ``tracer.grad`` has no ``holomorphic=`` flag: it is checked through ``vjp``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import tracer

RTOL, ATOL = 1e-10, 1e-12


def cnormal(*shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape) + 1j * rng.normal(size=shape)


def close(got, want):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=RTOL, atol=ATOL)


# real-valued functions of complex inputs: tracer.grad against jax.grad
REAL_OF_COMPLEX = [
    ("abs", lambda xp, z: xp.sum(xp.abs(z))),
    ("abs-squared", lambda xp, z: xp.sum(xp.abs(z) ** 2)),
    ("real-imag", lambda xp, z: xp.sum(xp.real(z) * 2.0 + xp.imag(z) ** 3)),
    ("attributes-conj", lambda xp, z: xp.sum((z * z.conj()).real + z.imag * z.real)),
    ("angle", lambda xp, z: xp.sum(xp.angle(z) * xp.arange(1.0, 5.0))),
    ("var", lambda xp, z: xp.var(z)),
    ("std-axis-ddof", lambda xp, z: xp.sum(xp.std(z.reshape(2, 2), axis=0, ddof=1))),
    ("holomorphic-inside", lambda xp, z: xp.sum(xp.abs(xp.exp(z) * xp.sin(z) / (z + 3.0) + xp.sqrt(z) * xp.log(z)))),
    ("inverse-trig", lambda xp, z: xp.sum(xp.real(xp.arcsin(z * 0.3) + xp.arctanh(z * 0.2) + xp.arcsinh(z)))),
    ("power-reciprocal", lambda xp, z: xp.sum(xp.imag(z ** 3 + xp.reciprocal(z) + xp.exp2(z) + xp.log10(z)))),
    ("matmul-prod-cumsum", lambda xp, z: xp.abs(xp.prod(z) + xp.sum(xp.cumsum(z) * z[::-1]) + z[:2] @ z[2:])),
]


@pytest.mark.parametrize("name,f", REAL_OF_COMPLEX, ids=[c[0] for c in REAL_OF_COMPLEX])
def test_grad_of_real_function_of_complex_input_matches_jax(name, f):
    z = cnormal(4)
    got = tracer.grad(lambda a: f(np, a))(z)
    with jax.enable_x64(True):
        want = jax.grad(lambda a: f(jnp, a))(jnp.asarray(z))
    assert got.dtype == np.complex128
    close(got, want)


HOLOMORPHIC = [
    ("polynomial", lambda xp, z: xp.sum(z ** 3 - 2.0 * z * z + 1j * z)),
    ("exp-sin-log", lambda xp, z: xp.sum(xp.exp(z) * xp.sin(z) + xp.log(z) * xp.cos(z))),
    ("quotient-sqrt-tanh", lambda xp, z: xp.sum(xp.sqrt(z) / (1.0 + z * z) + xp.tanh(z))),
    ("inverse-trig", lambda xp, z: xp.sum(xp.arcsin(0.3 * z) + xp.arccos(0.2 * z) + xp.arctan(z) + xp.arcsinh(z))),
    ("prod-cumprod", lambda xp, z: xp.prod(z) + xp.sum(xp.cumprod(z))),
]


@pytest.mark.parametrize("name,f", HOLOMORPHIC, ids=[c[0] for c in HOLOMORPHIC])
def test_holomorphic_functions_match_jax_holomorphic_grad(name, f):
    z = cnormal(3, seed=1)
    out, pull = tracer.vjp(lambda a: f(np, a), z)
    (got,) = pull(np.ones((), dtype=np.complex128))
    with jax.enable_x64(True):
        want = jax.grad(lambda a: f(jnp, a), holomorphic=True)(jnp.asarray(z))
        close(out, f(jnp, jnp.asarray(z)))
    close(got, want)
    # forward mode: the JVP of a holomorphic function is f'(z)·t
    t = cnormal(3, seed=2)
    close(tracer.jvp(lambda a: f(np, a), (z,), (t,))[1], np.sum(np.asarray(want) * t))


def test_vjp_of_complex_output_with_complex_cotangent_matches_jax():
    def f(xp, z, x):
        return xp.exp(1j * x) * z ** 2 + xp.conj(z) * x

    z, x, ct = cnormal(3), np.linspace(0.1, 0.9, 3), cnormal(3, seed=4)
    out, pull = tracer.vjp(lambda a, b: f(np, a, b), z, x)
    with jax.enable_x64(True):
        jout, jpull = jax.vjp(lambda a, b: f(jnp, a, b), jnp.asarray(z), jnp.asarray(x))
        want = jpull(jnp.asarray(ct))
    close(out, jout)
    got = pull(ct)
    assert got[1].dtype == np.float64                   # a real input's cotangent is real
    close(got, want)


def f_intermediate(xp, x):
    """Real in, real out, complex in between."""
    z = xp.exp(1j * x) * (x + 2j)
    return xp.sum(xp.abs(z) ** 3 + xp.real(z * z) - xp.imag(xp.conj(z) * x) + xp.angle(z))


def test_complex_intermediate_first_and_second_order_match_jax():
    x = np.array([0.3, -0.7, 1.1])
    with jax.enable_x64(True):
        jf = lambda a: f_intermediate(jnp, a)
        want_g, want_h = jax.grad(jf)(jnp.asarray(x)), jax.hessian(jf)(jnp.asarray(x))
    g = tracer.grad(lambda a: f_intermediate(np, a))(x)
    assert g.dtype == np.float64
    close(g, want_g)
    close(tracer.hessian(lambda a: f_intermediate(np, a))(x), want_h)
    gg = tracer.grad(lambda a: tracer.grad(lambda b: f_intermediate(np, b))(a)[0])(x)   # grad of grad: real
    assert np.asarray(gg).dtype == np.float64
    close(gg, np.asarray(want_h)[0])


def test_abs_of_complex_zero_has_jax_zero_gradient():
    z = np.array([0j, 3 + 4j])
    with jax.enable_x64(True):
        want = jax.grad(lambda a: jnp.sum(jnp.abs(a)))(jnp.asarray(z))
    close(tracer.grad(lambda a: np.sum(np.abs(a)))(z), want)
    close(want[1], (3 - 4j) / 5)                          # conj(z)/|z|


def test_var_and_std_of_complex_values_are_real_as_numpy():
    z = np.array([1 + 2j, 3 - 1j, 0.5j, -2.0 + 0j])
    for axis, ddof in ((None, 0), (0, 1)):
        got = tracer.numpy.var(z, axis=axis, correction=ddof)
        np.testing.assert_allclose(got, np.var(z, axis=axis, ddof=ddof), rtol=RTOL)
        assert np.isrealobj(got)
    value = tracer.value_and_grad(lambda a: np.std(a))(z)[0]
    np.testing.assert_allclose(value, np.std(z), rtol=RTOL)


def test_grad_of_complex_output_raises_type_error():
    with pytest.raises(TypeError, match="real-valued output"):
        tracer.grad(lambda z: np.sum(z * z))(cnormal(3))


# A real value that meets a complex one in a product or sum receives a complex cotangent from that rule; its own
# cotangent must be the real part (JAX's convention) before it flows on, e.g. into abs's complex-aware rule.
MIXED = {
    "re(z / |z|)": lambda xp, x: xp.sum(xp.real((x + 2j) / xp.abs(x + 2j))),
    "re(z * |z|)": lambda xp, x: xp.sum(xp.real((x + 2j) * xp.abs(x + 2j))),
    "re(conj(z) / |z|)": lambda xp, x: xp.sum(xp.real(xp.conj(x + 2j) / xp.abs(x + 2j))),
    "|x + 2j|": lambda xp, x: xp.sum(xp.abs(x + 2j)),
    "angle(x + 2j)": lambda xp, x: xp.sum(xp.angle(x + 2j)),
    "imag(x (1 + 2j))²": lambda xp, x: xp.sum(xp.imag(x * (1 + 2j)) ** 2),
}


@pytest.mark.parametrize("name", MIXED)
def test_real_values_mixed_with_complex_ones_match_jax_first_and_second_order(name):
    f = MIXED[name]
    x = np.array([0.3, -0.7, 1.1])
    with jax.enable_x64(True):
        want_g = jax.grad(lambda a: f(jnp, a))(jnp.asarray(x))
        want_h = jax.hessian(lambda a: f(jnp, a))(jnp.asarray(x))
    close(tracer.grad(lambda a: f(np, a))(x), want_g)
    close(tracer.grad(lambda a: tracer.grad(lambda b: f(np, b))(a)[0])(x), np.asarray(want_h)[0])   # reverse of reverse
    close(tracer.hessian(lambda a: f(np, a))(x), want_h)                                              # forward over reverse
