"""Minimal pytrees (dict, list, tuple, namedtuple, None) for the tracer; no JAX inside."""

from __future__ import annotations

from typing import Any

__all__ = ["flatten", "unflatten", "leaf_paths"]

_LEAF = object()


def flatten(tree: Any) -> tuple[list, Any]:
    """``(leaves, treedef)``; ``unflatten(treedef, leaves)`` rebuilds a tree of the same shape."""
    leaves: list = []

    def go(t):
        if isinstance(t, dict):
            return (dict, type(t), tuple(t), tuple(go(v) for v in t.values()))
        if isinstance(t, (list, tuple)):
            return (list if isinstance(t, list) else tuple, type(t), None, tuple(go(v) for v in t))
        if t is None:
            return None
        leaves.append(t)
        return _LEAF

    return leaves, go(tree)


def unflatten(treedef: Any, leaves) -> Any:
    it = iter(leaves)

    def go(d):
        if d is _LEAF:
            return next(it)
        if d is None:
            return None
        kind, typ, keys, children = d
        vals = [go(c) for c in children]
        if kind is dict:
            return typ(zip(keys, vals)) if typ is not dict else dict(zip(keys, vals))
        if kind is list:
            return vals if typ is list else typ(vals)
        return typ(*vals) if hasattr(typ, "_fields") else typ(vals)

    return go(treedef)


def leaf_paths(tree: Any, prefix: str = "") -> list[str]:
    """Readable names of the leaves, in ``flatten`` order: ``w[0]['b']``."""
    out: list[str] = []

    def go(t, p):
        if isinstance(t, dict):
            for k, v in t.items():
                go(v, f"{p}[{k!r}]")
        elif isinstance(t, (list, tuple)):
            for i, v in enumerate(t):
                go(v, f"{p}[{i}]")
        elif t is not None:
            out.append(p)

    go(tree, prefix)
    return out
