"""What every API boundary of funcnet shares: the array namespace of the arguments, and argument checks.

Each check is written once here and raises one exception type per kind of mistake:

* ``TypeError`` — the argument has the wrong kind (a float where an int is needed, a bool for a count,
  a non-integer label array, an argnum that is not an int);
* ``ValueError`` — the kind is right but the value is not (a count below its minimum, arrays whose leading
  lengths differ, a label outside ``[0, K)``, an argnum out of range, a non-finite number).

Messages say what was expected and what arrived, naming the argument as the caller spelled it.

Choosing the array namespace from a function's arguments.

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

import functools
import types
from typing import Any

import numpy as np

__all__ = ["array_namespace", "overridable", "constant", "count", "real", "leading_length", "check_labels", "argnums_tuple",
           "prng_key", "float_dtype"]


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


def overridable(fun):
    """Let array types replace ``fun`` when they are among its positional arguments (as NEP 18 does for NumPy).

    The decorated function checks its positional arguments' types for a ``__funcnet_function__``
    method; the first one found is called as ``method(arg, wrapper, args, kwargs)`` and its result
    returned. Without one, ``fun`` runs as written. ``wrapper.__wrapped__`` is ``fun`` itself, for an
    override that only wants to run the plain implementation on its own values.

    This is how funcnet's tracer records ``funcnet.activations.log_softmax`` as one node with a fused
    rule, while JAX and NumPy run the function as written (one type check per call, done once under
    ``jit``). A user's own function gets the same: decorate it, then register a rule for it with
    ``funcnet.tracer.defvjp(my_function, ...)``.

    Example:
      >>> import numpy as np
      >>> @overridable
      ... def double(x):
      ...     return 2 * x
      >>> double(np.float64(1.5))
      np.float64(3.0)
    """

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        for a in args:
            hook = getattr(type(a), "__funcnet_function__", None)
            if hook is not None:
                return hook(a, wrapper, args, kwargs)
        return fun(*args, **kwargs)

    return wrapper


@overridable
def constant(xp, x):
    """``x`` held constant for differentiation in namespace ``xp``; NumPy passes it through.

    For shifts whose gradient cancels exactly, such as the maximum subtracted in log-sum-exp: the
    function's value does not depend on the shift, so holding it fixed gives the same derivatives of
    every order while the autodiff skips the shift's branch (``jax.nn.log_softmax`` does the same).
    Under JAX this is ``jax.lax.stop_gradient``; an array type with its own autodiff (funcnet's tracer)
    overrides it (see `overridable`).
    """
    if xp is not np and getattr(xp, "__name__", "").startswith("jax"):
        import jax

        return jax.lax.stop_gradient(x)
    return x


# ------------------------------------------------------------------ argument checks


def count(value: Any, name: str, *, minimum: int = 1, where: str = "") -> int:
    """``value`` as a Python int, checked to be an integer (Python or NumPy, not bool) ``>= minimum``.

    Raises:
      TypeError: ``value`` is not an integer (a float, a bool, a string, ...).
      ValueError: ``value < minimum``.
    """
    prefix = f"{where}: " if where else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{prefix}{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{prefix}{name} must be >= {minimum}, got {int(value)}")
    return int(value)


def real(value: Any, name: str, *, minimum: float | None = None, where: str = "") -> float:
    """``value`` as a finite Python float (int, float or a NumPy scalar; not bool), ``>= minimum`` if given.

    Raises:
      TypeError: ``value`` is not a real number.
      ValueError: it is NaN or infinite, or below ``minimum``.
    """
    prefix = f"{where}: " if where else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{prefix}{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{prefix}{name} must be finite, got {v}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{prefix}{name} must be >= {minimum}, got {v}")
    return v


def _leaves_with_names(tree: Any, name: str) -> list[tuple[str, Any]]:
    """``[(name + path, leaf)]`` for a pytree (JAX's, so NamedTuples and registered nodes count)."""
    import jax

    return [(f"{name}{jax.tree_util.keystr(p)}", leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def leading_length(tree: Any, name: str, *, allow_empty: bool = False) -> int:
    """The number of examples in ``tree``: the leading length that all of its array leaves share.

    Raises:
      ValueError: ``tree`` holds no arrays, a leaf is a scalar, the leading lengths differ (each leaf's
        path and length is listed), or there are no examples and ``allow_empty`` is False.
    """
    leaves = _leaves_with_names(tree, name)
    if not leaves:
        raise ValueError(f"{name} holds no arrays; pass e.g. (X, y) with X of shape (n, features)")
    lengths = {}
    for where, leaf in leaves:
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise ValueError(f"every array in {name} needs a leading example axis, but {where} is a scalar")
        lengths[where] = shape[0]
    if len(set(lengths.values())) != 1:
        listing = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise ValueError(f"every array in {name} must have the same leading length (number of examples), got {listing}")
    n = int(next(iter(lengths.values())))
    if n == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (0 examples)")
    return n


def check_labels(labels: Any, num_classes: int, name: str = "labels", *, where: str = "") -> None:
    """Integer class labels lie in ``[0, num_classes)``. Needs concrete values (call outside ``jit``).

    Raises:
      TypeError: the labels are not integers.
      ValueError: a label is outside ``[0, num_classes)``.
    """
    prefix = f"{where}: " if where else ""
    arr = np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{prefix}{name} must be integer class labels, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"{prefix}{name} must lie in [0, {num_classes}) for {num_classes} classes, "
            f"got values in [{arr.min()}, {arr.max()}]"
        )


def argnums_tuple(argnums: Any, nargs: int, *, name: str = "argnums") -> tuple[int, ...]:
    """``argnums`` (an int or a non-empty sequence of ints, negative counting from the end) as indices.

    Raises:
      TypeError: ``argnums`` is not an int or a sequence of ints (a float, a bool, ...).
      ValueError: it is empty, repeats an index, or names an argument the call does not have.
    """
    items = (argnums,) if isinstance(argnums, (int, np.integer)) else argnums
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {type(argnums).__name__} {argnums!r}") from None
    if any(isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) for i in items):
        raise TypeError(f"{name} must be an int or a tuple of ints, got {argnums!r}")
    if not items:
        raise ValueError(f"{name} must name at least one argument, got {argnums!r}")
    for i in items:
        if not -nargs <= i < nargs:
            raise ValueError(
                f"{name}={argnums!r} is out of range for a function called with {nargs} positional argument(s)"
            )
    out = tuple(int(i) % nargs for i in items)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={argnums!r} names an argument twice")
    return out


def prng_key(key: Any, name: str = "key", *, where: str = "") -> Any:
    """``key`` checked to be one JAX PRNG key: typed (``jax.random.key(0)``) or legacy uint32 ``(2,)``.

    Raises:
      TypeError: anything else (an int seed, a float array, ...), with the hint ``jax.random.key(0)``.
      ValueError: an array of several keys where one is needed.
    """
    import jax

    prefix = f"{where}: " if where else ""
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"{prefix}{name} must be a single PRNG key, got a key array of shape {key.shape}")
        return key
    if isinstance(key, (np.ndarray, jax.Array)) and np.shape(key) == (2,) and key.dtype == np.uint32:
        return key  # legacy jax.random.PRNGKey
    raise TypeError(f"{prefix}{name} must be a PRNG key, e.g. {name}=jax.random.key(0); "
                    f"got {type(key).__name__} {key!r}")


def float_dtype(dtype: Any, name: str = "dtype", *, where: str = "") -> np.dtype:
    """``dtype`` as a NumPy dtype, checked to be a real floating type (float16/32/64, bfloat16).

    Raises:
      TypeError: not a dtype, or not a real float (int, bool, complex).
    """
    prefix = f"{where}: " if where else ""
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{prefix}{name} must be a float dtype, got {dtype!r}") from None
    if d.kind != "f" and d.name != "bfloat16":
        raise TypeError(f"{prefix}{name} must be a real float dtype (e.g. float32), got {d}")
    return d
