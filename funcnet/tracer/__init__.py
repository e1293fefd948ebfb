"""A from-scratch automatic differentiation tracer over NumPy, reverse and forward mode, checked against JAX.

The same user code runs here and under JAX: traced values support Python operators, NumPy's
functions and ``__array_namespace__()``, so funcnet's models and losses differentiate with
``tracer.grad`` on NumPy inputs and with ``jax.grad`` on JAX inputs.

    >>> import numpy as np
    >>> from funcnet import tracer
    >>> tracer.grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2))(-2.0, 5.0, -4.0)
    (array(-4.), array(-4.), array(3.))

Importing it patches nothing. See ``docs/autodiff.md`` ("Autodiff from scratch"): the core is
``_core.py``, the rules ``_rules.py``, grad's memory policy ``_memory.py``.
"""

from funcnet._boundary import overridable
from funcnet.tracer._api import (
    defjvp,
    defvjp,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacrev,
    jvp,
    name,
    no_grad,
    primitive,
    stop_gradient,
    value_and_grad,
    vjp,
)
from funcnet.tracer._core import Box, MissingRuleError, Primitive
from funcnet.tracer._graph import Graph, trace
from funcnet.tracer._numpy import ConcretizationError, namespace as numpy

__all__ = [
    "grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev", "hessian", "hvp", "stop_gradient", "no_grad",
    "defvjp", "defjvp", "primitive", "name", "overridable", "trace", "Graph", "Box", "Primitive", "numpy",
    "ConcretizationError", "MissingRuleError",
]
