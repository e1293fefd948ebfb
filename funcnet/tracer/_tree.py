"""Minimal pytrees (dict, list, tuple, namedtuple, None) for the tracer; no JAX inside.

Written with module-level recursion (no self-referencing closures, which would be
reference cycles left for the garbage collector on every call).
"""

from __future__ import annotations

from typing import Any

__all__ = ["flatten", "unflatten", "map_leaves", "leaf_paths"]

_LEAF = object()

# Types that are always leaves, so map_leaves applies ``f`` to them without a call of its own
# (the tracer adds NumPy arrays and its boxes).
LEAF_TYPES: set = {float, int, complex}


def _flatten(t, leaves):
    if isinstance(t, dict):
        return (dict, type(t), tuple(t), tuple(_flatten(v, leaves) for v in t.values()))
    if isinstance(t, (list, tuple)):
        return (list if isinstance(t, list) else tuple, type(t), None, tuple(_flatten(v, leaves) for v in t))
    if t is None:
        return None
    leaves.append(t)
    return _LEAF


def flatten(tree: Any) -> tuple[list, Any]:
    """``(leaves, treedef)``; ``unflatten(treedef, leaves)`` rebuilds a tree of the same shape."""
    leaves: list = []
    return leaves, _flatten(tree, leaves)


def _unflatten(d, it):
    if d is _LEAF:
        return next(it)
    if d is None:
        return None
    kind, typ, keys, children = d
    vals = [_unflatten(c, it) for c in children]
    if kind is dict:
        return dict(zip(keys, vals)) if typ is dict else typ(zip(keys, vals))
    if kind is list:
        return vals if typ is list else typ(vals)
    return typ(*vals) if hasattr(typ, "_fields") else typ(vals)


def unflatten(treedef: Any, leaves) -> Any:
    return _unflatten(treedef, iter(leaves))


def map_leaves(f, tree: Any) -> Any:
    """``unflatten(d, [f(leaf) for leaf in leaves])`` for ``leaves, d = flatten(tree)``, in one pass.

    Plain lists, dicts and tuples (what parameters usually are) are rebuilt directly; any other
    container goes through flatten/unflatten. ``f`` sees the leaves in ``flatten`` order.
    """
    t = type(tree)
    if t is list:
        return [f(v) if type(v) in LEAF_TYPES else map_leaves(f, v) for v in tree]
    if t is dict:
        return {k: f(v) if type(v) in LEAF_TYPES else map_leaves(f, v) for k, v in tree.items()}
    if t is tuple:
        return tuple([f(v) if type(v) in LEAF_TYPES else map_leaves(f, v) for v in tree])
    if tree is None:
        return None
    if isinstance(tree, (dict, list, tuple)):
        leaves, d = flatten(tree)
        return unflatten(d, [f(leaf) for leaf in leaves])
    return f(tree)


def _paths(t, p, out):
    if isinstance(t, dict):
        for k, v in t.items():
            _paths(v, f"{p}[{k!r}]", out)
    elif isinstance(t, (list, tuple)):
        for i, v in enumerate(t):
            _paths(v, f"{p}[{i}]", out)
    elif t is not None:
        out.append(p)


def leaf_paths(tree: Any, prefix: str = "") -> list[str]:
    """Readable names of the leaves, in ``flatten`` order: ``w[0]['b']``."""
    out: list[str] = []
    _paths(tree, prefix, out)
    return out
