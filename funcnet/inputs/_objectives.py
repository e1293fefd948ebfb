r"""Objectives for `visualize_units`: what to maximize for unit j, composable as in Lucid.

An objective is a function ``f(out, unit) -> scalar`` of what the model computes at the input x and the unit
index j. ``out`` is, for a funcnet MLP, ``model.activations(params, x)`` (one ``{"z", "a"}`` dict per weight
layer) and, for any other model ``apply(params, x)``, its output. Objectives add and scale:

    (f + g)(out, j) = f(out, j) + g(out, j),       (c · f)(out, j) = c · f(out, j)

The named objectives, on layer l with pre-activation z and activation a:

    activation a_lj, pre_activation z_lj, logit z_Lj, probability softmax(z_L)_j,
    log_probability log softmax(z_L)_j, margin z_Lj - log Σ_{k≠j} exp z_Lk  (the class against all others)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from funcnet import activations as _activations

__all__ = ["Objective", "objective", "NAMED", "named"]

NAMED = ("activation", "pre_activation", "logit", "probability", "log_probability", "margin")
OUTPUT_ONLY = ("logit", "probability", "log_probability", "margin")


@dataclasses.dataclass(frozen=True)
class Objective:
    r"""A weighted sum Σ_k c_k f_k(out, unit) of objective functions; hashable, composable with ``+`` and ``*``.

    Examples:
      >>> import funcnet as fn
      >>> logit = fn.inputs.objective(lambda out, j: out[j])
      >>> sparse = fn.inputs.objective(lambda out, j: -(out ** 2).sum())
      >>> both = logit + 0.1 * sparse
      >>> import jax.numpy as jnp
      >>> float(both(jnp.array([1.0, 2.0]), 1))
      1.5
    """

    terms: tuple

    def __call__(self, out, unit):
        total = None
        for weight, f in self.terms:
            v = weight * f(out, unit)
            total = v if total is None else total + v
        return total

    def __add__(self, other):
        return Objective(self.terms + objective(other).terms)

    def __radd__(self, other):
        return objective(other) + self

    def __sub__(self, other):
        return self + (-1.0) * objective(other)

    def __mul__(self, c):
        if isinstance(c, bool) or not isinstance(c, (int, float)):
            return NotImplemented
        return Objective(tuple((float(c) * w, f) for w, f in self.terms))

    __rmul__ = __mul__

    def __neg__(self):
        return (-1.0) * self

    def __truediv__(self, c):
        return self * (1.0 / c)


def objective(f: Callable[[Any, Any], Any] | Objective) -> Objective:
    """Wrap ``f(out, unit) -> scalar`` as a composable `Objective` (objectives pass through)."""
    if isinstance(f, Objective):
        return f
    if not callable(f):
        raise TypeError(f"an objective must be a callable (out, unit) -> scalar or a name in {list(NAMED)}, got "
                        f"{type(f).__name__} {f!r}")
    return Objective(((1.0, f),))


@dataclasses.dataclass(frozen=True)
class _Named:
    """A named objective on ``layer`` (None: the output of an ``apply`` function)."""

    name: str
    layer: Any

    def __call__(self, out, unit):
        if self.layer is None:
            z = a = out
        else:
            z, a = out[self.layer]["z"], out[self.layer]["a"]
        if self.name == "activation":
            return a[unit]
        if self.name in ("pre_activation", "logit"):
            return z[unit]
        if self.name == "probability":
            return _activations.softmax(z)[unit]
        if self.name == "log_probability":
            return _activations.log_softmax(z)[unit]
        others = jnp.where(jnp.arange(z.shape[-1]) == unit, -jnp.inf, z)
        return z[unit] - jax.nn.logsumexp(others)


def named(name: str, layer) -> Objective:
    """The named objective ``name`` on ``layer`` (an int for an MLP, None for an ``apply`` function's output)."""
    return Objective(((1.0, _Named(name, layer)),))
