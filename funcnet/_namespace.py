"""Choosing the array namespace from a function's arguments.

funcnet's models and losses are written once against the Array API standard
(``x.__array_namespace__()``). The namespace is picked from *all* array leaves of
all arguments, so that mixed calls work:

* any leaf from a third namespace (funcnet's tracer) wins, because its values must
  record every operation;
* otherwise any JAX array or JAX tracer selects ``jax.numpy`` (JAX-traced
  parameters with a plain NumPy ``x`` stay traced);
* otherwise NumPy.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

__all__ = ["array_namespace", "constant"]


# type -> (namespace, is_jax): array_namespace runs on every forward pass, so each array type's
# ``__array_namespace__()`` is looked up once (it depends on the type alone for NumPy, JAX arrays and
# tracers, and funcnet's tracer boxes).
_BY_TYPE: dict = {}


def _namespace_of(leaf: Any) -> types.ModuleType | Any | None:
    get = getattr(leaf, "__array_namespace__", None)
    if get is not None:
        return get()
    if isinstance(leaf, np.generic):
        return np
    return None


def _classify(leaf: Any):
    t = type(leaf)
    hit = _BY_TYPE.get(t)
    if hit is not None:
        return hit
    ns = _namespace_of(leaf)
    if ns is None:
        ns = np                 # Python scalars, None-like leaves
    hit = _BY_TYPE[t] = (ns, getattr(ns, "__name__", "").startswith("jax"))
    return hit


def array_namespace(*trees: Any):
    """Return the Array API namespace shared by the array leaves of ``trees``.

    Python scalars and ``None`` are ignored. With no array leaf at all, NumPy is
    returned.

    Raises:
      TypeError: if leaves come from two different non-NumPy, non-JAX namespaces.
    """
    other = None
    has_jax = False
    stack = list(trees)
    while stack:                  # the array leaves, walked here (this runs on every forward pass)
        leaf = stack.pop()
        t = type(leaf)
        if t is np.ndarray or leaf is None:
            continue
        if t is dict:
            stack.extend(leaf.values())
            continue
        if t is list or t is tuple:
            stack.extend(leaf)
            continue
        hit = _BY_TYPE.get(t)
        if hit is None:
            if isinstance(leaf, dict):
                stack.extend(leaf.values())
                continue
            if isinstance(leaf, (list, tuple)):
                stack.extend(leaf)
                continue
            hit = _classify(leaf)
        ns, is_jax = hit
        if ns is np:
            continue
        if is_jax:
            has_jax = True
        elif other is None:
            other = ns
        elif ns is not other:
            raise TypeError(
                f"arguments mix two array namespaces, {other!r} and {ns!r}; "
                "pass arrays of one kind (plus NumPy arrays or Python scalars)"
            )
    if other is not None:
        return other
    if has_jax:
        import jax.numpy as jnp

        return jnp
    return np


def constant(xp, x):
    """``x`` held constant for differentiation in namespace ``xp`` (JAX, funcnet's tracer); NumPy passes it through.

    For shifts whose gradient cancels exactly, such as the maximum subtracted in log-sum-exp: the
    function's value does not depend on the shift, so holding it fixed gives the same derivatives of
    every order while the autodiff skips the shift's branch (``jax.nn.log_softmax`` does the same).
    """
    if xp is np:
        return x
    stop = getattr(xp, "stop_gradient", None)      # funcnet's tracer namespace (an extension)
    if stop is not None:
        return stop(x)
    if getattr(xp, "__name__", "").startswith("jax"):
        import jax

        return jax.lax.stop_gradient(x)
    return x
