r"""The input as the optimizer sees it: the parametrization x = ρ(u) and the random transformations T(x).

Inputs are channels-last: ``(n,)`` (one spatial axis), ``(H, W)`` or ``(H, W, C)`` (two spatial axes).

Fourier space (``space="fourier"``): u = (Re c, Im c) over the real-FFT frequencies of the spatial axes, and

    z = irfft(c · w),     w_f = (max(|f|, f_min) / f_min)^-decay / max(...)     (orthonormal FFT)

so that an Adam step of equal size in every coordinate of u moves the low frequencies most.

Transformations (``Regularizers.jitter/scale/rotate``): the model sees T(x) = x sampled at the points
A⁻¹(p - c - t) + c of the pixel grid p (c the image centre, A a rotation by θ with zoom s, t a shift), by
bilinear interpolation with edge values outside; everything is differentiable in x.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from funcnet.inputs._config import Parametrization, Regularizers

__all__ = ["u_shape", "to_x", "to_u", "transform"]


def _spatial(shape: tuple) -> tuple:
    return shape[: min(len(shape), 2)]


def _freq_weights(shape: tuple, decay: float) -> np.ndarray:
    spatial = _spatial(shape)
    grids = [np.fft.fftfreq(n) for n in spatial[:-1]] + [np.fft.rfftfreq(spatial[-1])]
    f = np.sqrt(sum(g ** 2 for g in np.meshgrid(*grids, indexing="ij")))
    f_min = 1.0 / max(spatial)
    w = (np.maximum(f, f_min) / f_min) ** -decay
    w = w / w.max()
    return w.reshape(w.shape + (1,) * (len(shape) - len(spatial)))


def u_shape(p: Parametrization, shape: tuple) -> tuple:
    """The shape of the optimized variable u for inputs of ``shape``."""
    if p.space == "pixel":
        return shape
    if p.space == "pca":
        return (p.basis.rank,)
    spatial = _spatial(shape)
    return (2, *spatial[:-1], spatial[-1] // 2 + 1, *shape[len(spatial):])


def _axes(shape):
    return tuple(range(len(_spatial(shape))))


def _squash(p: Parametrization, z):
    if p.value_range is None or p.squash == "clip":
        return z
    lo, hi = p.value_range
    if p.squash == "sigmoid":
        return lo + (hi - lo) * jax.nn.sigmoid(z)
    return 0.5 * (lo + hi) + 0.5 * (hi - lo) * jnp.tanh(z)


def _unsquash(p: Parametrization, x):
    if p.value_range is None or p.squash == "clip":
        return x
    lo, hi = p.value_range
    t = jnp.clip((x - lo) / (hi - lo), 1e-3, 1 - 1e-3)
    if p.squash == "sigmoid":
        return jnp.log(t) - jnp.log1p(-t)
    return jnp.arctanh(2.0 * t - 1.0)


def to_x(p: Parametrization, shape: tuple, u):
    """x = ρ(u), of ``shape``."""
    if p.space == "pca":
        b = p.basis
        z = jnp.asarray(b.mean, u.dtype) + u @ jnp.asarray(b.scales[:, None] * b.components, u.dtype)
        return _squash(p, jnp.reshape(z, shape))
    if p.space == "fourier":
        w = jnp.asarray(_freq_weights(shape, p.decay), u.dtype)
        c = jax.lax.complex(u[0], u[1]) * w
        u = jnp.fft.irfftn(c, s=_spatial(shape), axes=_axes(shape), norm="ortho").astype(u.dtype)
    return _squash(p, u)


def to_u(p: Parametrization, shape: tuple, x):
    """u with ρ(u) ≈ x (exact inside the value range, up to the squash's clipping at 1e-3 of the edges)."""
    z = _unsquash(p, x)
    if p.space == "pixel":
        return z
    if p.space == "pca":                # the least-squares u: V's rows are orthonormal
        b = p.basis
        return ((jnp.reshape(z, (-1,)) - jnp.asarray(b.mean, x.dtype)) @ jnp.asarray(b.components.T, x.dtype)
                / jnp.asarray(b.scales, x.dtype))
    c = jnp.fft.rfftn(z, axes=_axes(shape), norm="ortho") / jnp.asarray(_freq_weights(shape, p.decay))
    return jnp.stack([jnp.real(c), jnp.imag(c)]).astype(x.dtype)


def _sample(x, coords):
    """x (spatial..., C?) bilinearly sampled at ``coords`` (one array per spatial axis), edge values outside."""
    n_sp = len(coords)
    if x.ndim == n_sp:
        return jax.scipy.ndimage.map_coordinates(x, list(coords), order=1, mode="nearest")
    flat = x.reshape(*x.shape[:n_sp], -1)
    out = jax.vmap(lambda ch: jax.scipy.ndimage.map_coordinates(ch, list(coords), order=1, mode="nearest"),
                   in_axes=-1, out_axes=-1)(flat)
    return out.reshape(x.shape)


def transform(r: Regularizers, x, key):
    """T(x): a random shift (≤ jitter px), zoom (1 ± scale) and rotation (≤ rotate degrees), bilinear."""
    k_t, k_s, k_a = jax.random.split(key, 3)
    spatial = _spatial(x.shape)
    dt = x.dtype
    t = jax.random.uniform(k_t, (len(spatial),), dt, -r.jitter, r.jitter)
    if len(spatial) == 1:
        return _sample(x, [jnp.arange(spatial[0], dtype=dt) - t[0]])
    s = 1.0 + jax.random.uniform(k_s, (), dt, -r.scale, r.scale)
    a = jnp.deg2rad(jax.random.uniform(k_a, (), dt, -r.rotate, r.rotate))
    ci, cj = (spatial[0] - 1) / 2.0, (spatial[1] - 1) / 2.0
    ii, jj = jnp.meshgrid(jnp.arange(spatial[0], dtype=dt) - ci, jnp.arange(spatial[1], dtype=dt) - cj,
                          indexing="ij")
    ii, jj = ii - t[0], jj - t[1]
    src_i = (jnp.cos(a) * ii + jnp.sin(a) * jj) / s + ci
    src_j = (-jnp.sin(a) * ii + jnp.cos(a) * jj) / s + cj
    return _sample(x, [src_i, src_j])
