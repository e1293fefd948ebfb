"""Pytrees for the tracer: dict, list, tuple, namedtuple and None natively, any other JAX pytree through JAX.

Plain containers (what parameters usually are) are walked here without JAX. A container of another
type (a registered dataclass, a chex or Flax dataclass, an Equinox module, a class registered with
``jax.tree_util.register_pytree_node``) is opened one level at a time with ``jax.tree_util``, imported
on first meeting one; a type JAX treats as a leaf is remembered, so it costs one lookup afterwards.
Written with module-level recursion (no self-referencing closures, which would be reference cycles).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["flatten", "unflatten", "map_leaves", "leaf_paths"]

_LEAF = object()
# types that are always leaves (map_leaves applies ``f`` to them without a call of its own)
LEAF_TYPES = frozenset({float, int, complex, bool, np.ndarray, np.float64, np.float32, np.complex128})
_JAX_LEAVES: set = set()     # other types seen to be leaves of JAX's pytrees too


def _is_leaf_type(t) -> bool:
    return t in LEAF_TYPES or t in _JAX_LEAVES or issubclass(t, np.generic) or hasattr(t, "__array_namespace__")


def _jax_children(t):
    """``(children, treedef)`` of one level of a JAX pytree node, or None for a leaf."""
    typ = type(t)
    if _is_leaf_type(typ):
        return None
    import jax.tree_util as jtu

    children, tdef = jtu.tree_flatten(t, is_leaf=lambda c: c is not t)
    if len(children) == 1 and children[0] is t:
        _JAX_LEAVES.add(typ)
        return None
    return children, tdef


def _flatten(t, leaves):
    if isinstance(t, dict):
        return (dict, type(t), tuple(t), tuple(_flatten(v, leaves) for v in t.values()))
    if isinstance(t, (list, tuple)):
        return (list if isinstance(t, list) else tuple, type(t), None, tuple(_flatten(v, leaves) for v in t))
    if t is None:
        return None
    node = _jax_children(t)
    if node is not None:
        return ("jax", node[1], None, tuple(_flatten(c, leaves) for c in node[0]))
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
    if kind == "jax":
        return typ.unflatten(vals)
    if kind is dict:
        return dict(zip(keys, vals)) if typ is dict else typ(zip(keys, vals))
    if kind is list:
        return vals if typ is list else typ(vals)
    return typ(*vals) if hasattr(typ, "_fields") else typ(vals)


def unflatten(treedef: Any, leaves) -> Any:
    return _unflatten(treedef, iter(leaves))


def map_leaves(f, tree: Any) -> Any:
    """``unflatten(d, [f(leaf) for leaf in leaves])`` for ``leaves, d = flatten(tree)``, in one pass.

    Plain lists, dicts and tuples are rebuilt directly; any other container goes through
    flatten/unflatten. ``f`` sees the leaves in ``flatten`` order.
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
    if t in LEAF_TYPES:
        return f(tree)
    leaves, d = flatten(tree)
    return unflatten(d, [f(leaf) for leaf in leaves])


def _paths(d, p, out):
    if d is _LEAF:
        out.append(p)
    elif d is not None:
        kind, typ, keys, children = d
        for k, c in zip(keys if keys is not None else range(len(children)), children):
            _paths(c, f"{p}[{k!r}]" if kind is dict else f"{p}[{k}]", out)


def leaf_paths(tree: Any, prefix: str = "") -> list[str]:
    """Readable names of the leaves, in ``flatten`` order: ``w[0]['b']``."""
    out: list[str] = []
    _paths(flatten(tree)[1], prefix, out)
    return out
