"""A from-scratch reverse-mode autodiff tracer over NumPy, checked against ``jax.grad``.

The same user code runs here and under JAX: traced values support Python operators
and ``__array_namespace__()``, so funcnet's models and losses differentiate with
``tracer.grad`` on NumPy inputs and with ``jax.grad`` on JAX inputs.

    >>> import numpy as np
    >>> from funcnet import tracer
    >>> tracer.grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2))(-2.0, 5.0, -4.0)
    (array(-4.), array(-4.), array(3.))

See ``docs/autodiff.md`` ("Autodiff from scratch") for how it works.
"""

from funcnet.tracer._api import (
    defvjp,
    grad,
    name,
    no_grad,
    primitive,
    stop_gradient,
    value_and_grad,
    vjp,
)
from funcnet.tracer._core import Box, Primitive
from funcnet.tracer._graph import Graph, trace
from funcnet.tracer._numpy import namespace as numpy

__all__ = [
    "grad", "value_and_grad", "vjp", "stop_gradient", "no_grad", "defvjp", "primitive", "name",
    "trace", "Graph", "Box", "Primitive", "numpy",
]
