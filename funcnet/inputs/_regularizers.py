r"""Image priors R(x) for activation maximization, as pure functions of one input.

Inputs are channels-last: ``(n,)`` (flat or tabular; one "spatial" axis), ``(H, W)`` (grayscale) or
``(H, W, C)``. Spatial axes are the first ``min(x.ndim, 2)`` axes.

    l1(x)              = Σ_i |x_i|
    l2(x)              = Σ_i x_i²
    total_variation(x) = Σ (x_{i+1,j} - x_{i,j})² + (x_{i,j+1} - x_{i,j})²       (β = 2 TV, smooth)
    blur_penalty(x)    = Σ (x - G_σ * x)²                                         (high frequencies)

Each is differentiable and cheap; combine them with weights: λ₁ l1 + λ₂ l2 + λ_tv TV + λ_b blur.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["l1", "l2", "total_variation", "blur_penalty", "gaussian_blur", "spatial_axes"]


def spatial_axes(x) -> tuple[int, ...]:
    """The spatial axes of a channels-last input: (0,) for (n,), (0, 1) for (H, W) and (H, W, C)."""
    if x.ndim == 0:
        raise ValueError("regularizers need an input with at least one axis, got a scalar")
    return tuple(range(min(x.ndim, 2)))


def l1(x):
    r"""Σ|x_i|: favours sparse inputs."""
    return jnp.sum(jnp.abs(x))


def l2(x):
    r"""Σx_i² (squared L2 norm): keeps the input small; the 'weight decay' of input space."""
    return jnp.sum(x * x)


def total_variation(x):
    r"""β=2 total variation over the spatial axes: Σ squared differences of neighbouring pixels.

    Examples:
      >>> import jax.numpy as jnp, funcnet as fn
      >>> float(fn.inputs.total_variation(jnp.array([[0.0, 1.0], [0.0, 1.0]])))
      2.0
    """
    total = jnp.zeros((), x.dtype)
    for ax in spatial_axes(x):
        if x.shape[ax] > 1:
            total = total + jnp.sum(jnp.diff(x, axis=ax) ** 2)
    return total


def _gauss_kernel(sigma: float, dtype):
    radius = max(1, int(math.ceil(2.0 * sigma)))
    t = jnp.arange(-radius, radius + 1, dtype=dtype)
    k = jnp.exp(-0.5 * (t / sigma) ** 2)
    return k / jnp.sum(k), radius


def gaussian_blur(x, sigma: float = 1.0):
    """Separable Gaussian blur over the spatial axes (edge padding); same shape as x."""
    if sigma <= 0:
        return x
    k, r = _gauss_kernel(float(sigma), x.dtype)
    for ax in spatial_axes(x):
        pad = [(0, 0)] * x.ndim
        pad[ax] = (r, r)
        xp = jnp.pad(x, pad, mode="edge")
        n = x.shape[ax]
        x = sum(k[j] * jax.lax.slice_in_dim(xp, j, j + n, axis=ax) for j in range(2 * r + 1))
    return x


def blur_penalty(x, sigma: float = 1.0):
    r"""Σ(x - G_σ * x)²: the energy a Gaussian blur would remove, i.e. the high-frequency content."""
    return jnp.sum((x - gaussian_blur(x, sigma)) ** 2)
