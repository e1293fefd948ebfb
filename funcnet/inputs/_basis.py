r"""A data-derived input parametrization: the principal components of the training data.

For data X (m, d) mapped into the squash's pre-image (z = logit((x - lo)/(hi - lo)), clipped at ``eps`` from
the edges, when the parametrization squashes into a value range), with mean μ and covariance
Σ = V diag(σ²) Vᵀ (V's columns the principal directions, σ the standard deviations along them),

    z(u) = μ + Σ_k u_k σ_k^power v_k,          x = squash(z)

With ``power=1`` this is z = μ + Σ^{1/2} u restricted to the top components: u ~ N(0, I) gives inputs with
the data's own pixel covariance, and an Adam step of equal size in every u_k moves z furthest along the
directions in which the data varies most — a decorrelated parametrization whose prior is the data (Olah et
al. 2017 decorrelate colours the same way). u = 0 is the data's mean (in the pre-image).
"""

from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np

from funcnet import _boundary

__all__ = ["Basis", "pca_basis"]


class Basis:
    r"""The mean μ (d,), orthonormal directions V (k, d) and scales s (k,) of ``z = μ + (u·s) V``; hashable.

    Build it with `pca_basis`. Equality and hash are by content, so two bases of the same data share one
    compiled program.
    """

    __slots__ = ("mean", "components", "scales", "value_range", "_digest")

    def __init__(self, mean, components, scales, value_range=None):
        self.mean = np.asarray(mean, np.float64)
        self.components = np.asarray(components, np.float64)
        self.scales = np.asarray(scales, np.float64)
        self.value_range = value_range
        k, d = self.components.shape
        if self.mean.shape != (d,) or self.scales.shape != (k,):
            raise ValueError(f"Basis: mean must have shape ({d},) and scales ({k},), got {self.mean.shape} and "
                             f"{self.scales.shape}")
        h = hashlib.sha1()
        for a in (self.mean, self.components, self.scales):
            h.update(a.tobytes())
        h.update(repr(value_range).encode())
        self._digest = h.hexdigest()

    @property
    def size(self) -> int:
        """d, the number of input values."""
        return self.components.shape[1]

    @property
    def rank(self) -> int:
        """k, the number of components (the length of u)."""
        return self.components.shape[0]

    def __hash__(self):
        return hash(self._digest)

    def __eq__(self, other):
        return isinstance(other, Basis) and other._digest == self._digest

    def __repr__(self):
        return f"Basis(size={self.size}, rank={self.rank}, value_range={self.value_range})"


def pca_basis(X, *, value_range: Optional[tuple] = None, components: Optional[int] = None, power: float = 1.0,
              eps: float = 0.01) -> Basis:
    r"""The principal components of data X (m, ...) as a `Parametrization` basis (``space="pca"``).

    Args:
      X: data ``(m, ...)``, one example per row (flattened); m ≥ 2.
      value_range: the ``(lo, hi)`` the parametrization squashes into (as `Parametrization`'s); the components
        are then taken of logit((X - lo)/(hi - lo)), X clipped ``eps`` from the edges, the domain before the
        sigmoid. None: of X itself (for an unbounded or pixel-clipped parametrization).
      components: keep the top k components (default: all, d).
      power: the scale of component k is σ_k^power (1: z = μ + Σ^{1/2}u; 0: an orthonormal basis).
      eps: the clipping margin of the logit (0 < eps < 0.5).

    Returns:
      a `Basis` (mean (d,), components (k, d), scales (k,)).

    Examples:
      >>> import funcnet as fn
      >>> X, _ = fn.datasets.digits()
      >>> b = fn.inputs.pca_basis(X, value_range=(0, 1), components=32)
      >>> b.size, b.rank
      (64, 32)
    """
    where = "pca_basis"
    data = np.asarray(X, np.float64)
    if data.ndim < 2 or data.shape[0] < 2:
        raise ValueError(f"{where}: X must hold at least 2 examples (m, ...), got shape {data.shape}")
    data = data.reshape(data.shape[0], -1)
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{where}: X has non-finite values")
    power = _boundary.real(power, "power", minimum=0, where=where)
    eps = _boundary.real(eps, "eps", minimum=0, where=where)
    if not 0 < eps < 0.5:
        raise ValueError(f"{where}: eps must be in (0, 0.5), got {eps}")
    d = data.shape[1]
    k = d if components is None else _boundary.count(components, "components", where=where)
    if k > d:
        raise ValueError(f"{where}: components={k} exceeds the {d} values per example")
    if value_range is not None:
        lo, hi = value_range
        t = np.clip((data - lo) / (hi - lo), eps, 1 - eps)
        data = np.log(t) - np.log1p(-t)
        value_range = (float(lo), float(hi))
    mean = data.mean(0)
    _, s, vt = np.linalg.svd(data - mean, full_matrices=True)      # (d, d): a complete basis even if m < d
    sigma = s / np.sqrt(data.shape[0] - 1)
    sigma = np.concatenate([sigma, np.zeros(max(0, d - sigma.size))])[:k]
    vt = vt[:k]
    floor = max(sigma[0] * 1e-6, 1e-12)
    return Basis(mean, vt, np.maximum(sigma, floor) ** power, value_range)
