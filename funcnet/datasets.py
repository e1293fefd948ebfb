"""Small bundled or generated data sets; nothing is downloaded."""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from funcnet import _boundary

__all__ = ["digits", "moons", "xor", "split"]


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits bundled with scikit-learn (UCI ML digits, 1797 images).

    Returns:
      ``(X, y)``: ``X`` float32 of shape (1797, 64), pixel intensities 0..16 scaled
      to [0, 1], each row an 8x8 image in row-major order; ``y`` int32 of shape
      (1797,) with classes 0..9.

    Requires scikit-learn (``pip install "funcnet[data]"``); its copy of the data
    ships inside the package, so no network is used.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "funcnet.datasets.digits() needs scikit-learn, which bundles the data set: "
            'pip install "funcnet[data]"'
        ) from e
    bunch = load_digits()
    X = (np.asarray(bunch.data, dtype=np.float32) / 16.0).astype(np.float32)
    y = np.asarray(bunch.target, dtype=np.int32)
    return X, y


def moons(key, n: int = 200, noise: float = 0.1) -> tuple[jax.Array, jax.Array]:
    """Two interleaving half circles, a classic non-linearly-separable binary task.

    Args:
      key: JAX PRNG key; the same key gives the same points.
      n: number of points (``n // 2`` on the upper moon, the rest on the lower).
      noise: standard deviation of Gaussian noise added to each coordinate.

    Returns:
      ``(X, y)``: ``X`` float32 (n, 2), ``y`` int32 (n,) in {0, 1}.
    """
    key = _boundary.prng_key(key, where="moons")
    n = _boundary.count(n, "n", minimum=2, where="moons")
    noise = _boundary.real(noise, "noise", minimum=0.0, where="moons")
    n_upper = n // 2
    n_lower = n - n_upper
    k_noise, k_perm = jax.random.split(key)
    t_up = jnp.linspace(0.0, math.pi, n_upper)
    t_low = jnp.linspace(0.0, math.pi, n_lower)
    upper = jnp.stack([jnp.cos(t_up), jnp.sin(t_up)], axis=1)
    lower = jnp.stack([1.0 - jnp.cos(t_low), 0.5 - jnp.sin(t_low)], axis=1)
    X = jnp.concatenate([upper, lower]) + noise * jax.random.normal(k_noise, (n, 2))
    y = jnp.concatenate([jnp.zeros(n_upper, jnp.int32), jnp.ones(n_lower, jnp.int32)])
    perm = jax.random.permutation(k_perm, n)
    return X[perm].astype(jnp.float32), y[perm]


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points: ``X`` float32 (4, 2) = {0,1}², ``y`` float32 (4, 1) = x1 XOR x2.

    No line separates the classes, so a perceptron fails and one hidden layer succeeds.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    return X, y


def split(key, data: Any, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> tuple[Any, ...]:
    """Shuffle a data pytree along its leading axis and cut it into parts.

    Args:
      key: JAX PRNG key for the shuffle.
      data: a pytree of arrays sharing their leading length n, e.g. ``(X, y)``.
      fractions: positive fractions summing to 1 (e.g. train/val/test). Part
        sizes are ``floor(f * n)``, the remainder going to the first part.

    Returns:
      A tuple with one pytree of the same structure as ``data`` per fraction.
    """
    key = _boundary.prng_key(key, where="split")
    leaves, treedef = jax.tree_util.tree_flatten(data)
    n = _boundary.leading_length(data, "data")
    fractions = tuple(_boundary.real(f, f"fractions[{i}]", where="split") for i, f in enumerate(fractions))
    if not fractions or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split: fractions must be positive and sum to 1, got {fractions}")
    sizes = [int(math.floor(f * n)) for f in fractions]
    sizes[0] += n - sum(sizes)
    if min(sizes) == 0:
        raise ValueError(f"split: {n} examples are too few for fractions {fractions} (part sizes {sizes})")
    perm = np.asarray(jax.random.permutation(key, n))
    parts, start = [], 0
    for size in sizes:
        idx = perm[start:start + size]
        start += size
        parts.append(jax.tree_util.tree_unflatten(treedef, [leaf[idx] for leaf in leaves]))
    return tuple(parts)
