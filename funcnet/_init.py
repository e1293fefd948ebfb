"""Weight initialisation schemes.

Each scheme is a JAX initializer ``(key, shape, dtype) -> array`` for a weight
matrix of shape ``(fan_in, fan_out)``. Biases always start at zero.

=========== ======================================================== =====================
name        distribution                                             Var[w]
=========== ======================================================== =====================
``he``      truncated normal (He et al. 2015)                        2 / fan_in
``xavier``  uniform U(-a, a), a = √(6 / (fan_in + fan_out)) (Glorot) 2 / (fan_in + fan_out)
``lecun``   truncated normal (LeCun 1998)                            1 / fan_in
``uniform`` U(-0.1, 0.1)                                             0.01 / 3
``normal``  N(0, σ²) with σ = 0.01                                   1e-4
``zeros``   all zeros (shows the symmetry problem)                   0
``constant`` all 0.1 (shows the symmetry problem)                    0
=========== ======================================================== =====================
"""

from __future__ import annotations

from typing import Any, Callable, Union

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

Initializer = Callable[[Any, tuple, Any], jax.Array]
InitSpec = Union[str, Initializer]

__all__ = ["get", "names", "CONSTANT_VALUE"]

CONSTANT_VALUE = 0.1


def _uniform(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, minval=-0.1, maxval=0.1)


_REGISTRY: dict[str, Initializer] = {
    "he": jinit.he_normal(),
    "xavier": jinit.glorot_uniform(),
    "glorot": jinit.glorot_uniform(),
    "lecun": jinit.lecun_normal(),
    "uniform": _uniform,
    "normal": jinit.normal(stddev=0.01),
    "zeros": jinit.zeros,
    "constant": jinit.constant(CONSTANT_VALUE),
}


def names() -> tuple[str, ...]:
    """The init scheme names accepted by :func:`funcnet.mlp`."""
    return tuple(_REGISTRY)


def get(spec: InitSpec) -> Initializer:
    """Resolve an init scheme by name or pass a callable ``(key, shape, dtype) -> array`` through."""
    if isinstance(spec, str):
        try:
            return _REGISTRY[spec]
        except KeyError:
            raise ValueError(
                f"unknown init scheme {spec!r}; expected one of {sorted(_REGISTRY)} "
                "or a callable (key, shape, dtype) -> array"
            ) from None
    if callable(spec):
        return spec
    raise TypeError(f"init must be a name or a callable; got {type(spec).__name__}: {spec!r}")
