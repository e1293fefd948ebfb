"""Feasible sets for input optimization: projections Π(x) = argmin_{x' ∈ C} ‖x' - x‖.

Each projection is a small pytree (its bounds are leaves), so it is passed into compiled code as data:
changing a bound does not recompile. Call one like a function: ``box(0, 1)(x)``.

* `box` — C = {x : lower ≤ x ≤ upper}, Π(x) = clip(x, lower, upper);
* `ball` — C = {x : ‖x - center‖ ≤ radius} in the L2 or L∞ norm (``optax.projections``);
* `chain` — apply several in turn (e.g. a ball, then the pixel box).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

__all__ = ["Projection", "box", "ball", "chain"]


class Projection:
    """Base class of funcnet's projections (pytrees with ``__call__``)."""

    def __call__(self, x):  # pragma: no cover - abstract
        raise NotImplementedError


@jax.tree_util.register_pytree_node_class
class Box(Projection):
    """Π(x) = clip(x, lower, upper); ``lower``/``upper`` scalars or arrays broadcasting against x."""

    def __init__(self, lower, upper):
        self.lower, self.upper = lower, upper

    def __call__(self, x):
        return jnp.clip(x, self.lower, self.upper)

    def tree_flatten(self):
        return (self.lower, self.upper), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)

    def __repr__(self):
        return f"box({self.lower!r}, {self.upper!r})"


@jax.tree_util.register_pytree_node_class
class Ball(Projection):
    """Π(x) = center + P(x - center), P the projection onto the radius-``radius`` ball of ``norm``.

    The norm is taken over the whole array: for a batch, vmap the projection or use one per example.
    """

    def __init__(self, center, radius, norm: str = "l2"):
        self.center, self.radius, self.norm = center, radius, norm

    def __call__(self, x):
        d = x - self.center
        if self.norm == "linf":
            d = optax.projections.projection_linf_ball(d, self.radius)
        else:
            d = optax.projections.projection_l2_ball(d, self.radius)
        return self.center + d

    def tree_flatten(self):
        return (self.center, self.radius), self.norm

    @classmethod
    def tree_unflatten(cls, norm, children):
        return cls(*children, norm=norm)

    def __repr__(self):
        return f"ball(radius={self.radius!r}, norm={self.norm!r})"


@jax.tree_util.register_pytree_node_class
class Chain(Projection):
    """Apply projections in order (the result lies in the last set; in all sets when they nest)."""

    def __init__(self, *projections):
        self.projections = tuple(projections)

    def __call__(self, x):
        for p in self.projections:
            x = p(x)
        return x

    def tree_flatten(self):
        return self.projections, None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)

    def __repr__(self):
        return "chain(" + ", ".join(map(repr, self.projections)) + ")"


def _float(v: Any, name: str):
    if isinstance(v, (int, float)):
        return float(v)
    arr = jnp.asarray(v)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.asarray(0.0).dtype)
    return arr


def box(lower, upper) -> Box:
    """The box {x : lower ≤ x ≤ upper}; projection = clip.

    Examples:
      >>> import jax.numpy as jnp, funcnet as fn
      >>> fn.inputs.box(0.0, 1.0)(jnp.array([-0.5, 0.3, 2.0])).tolist()
      [0.0, 0.30000001192092896, 1.0]
    """
    if isinstance(lower, (int, float)) and isinstance(upper, (int, float)) and lower > upper:
        raise ValueError(f"box: lower must be <= upper, got lower={lower}, upper={upper}")
    return Box(_float(lower, "lower"), _float(upper, "upper"))


def ball(center, radius, norm: str = "l2") -> Ball:
    """The norm ball {x : ‖x - center‖ ≤ radius}, ``norm`` "l2" or "linf" (over the whole array)."""
    if norm not in ("l2", "linf"):
        raise ValueError(f"ball: norm must be 'l2' or 'linf', got {norm!r}")
    if isinstance(radius, (int, float)) and radius < 0:
        raise ValueError(f"ball: radius must be >= 0, got {radius}")
    return Ball(jnp.asarray(center), _float(radius, "radius"), norm)


def chain(*projections) -> Chain:
    """Compose projections: ``chain(ball(x, 0.1), box(0, 1))`` projects onto the ball, then clips."""
    for p in projections:
        if not callable(p):
            raise TypeError(f"chain: every element must be a projection (callable), got {type(p).__name__}")
    return Chain(*projections)
