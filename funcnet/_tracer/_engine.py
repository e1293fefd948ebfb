"""The tracing engine: boxes, primitives and the backward walk. No maths lives here.

A *box* wraps a value and remembers how it was made: the primitive, the (unboxed)
arguments, and its parent boxes. Every nested ``grad`` opens a new trace with a
larger id; a primitive applied to boxes of several traces boxes its result for
the innermost (largest) one and calls itself again on the unboxed arguments, so
outer traces record what inner traces compute. That is all higher-order
differentiation needs, provided derivative rules are written with primitives
(see :mod:`funcnet._tracer._rules`).

The backward walk (:func:`backward`) visits the graph in reverse topological order
with an explicit stack (no recursion), frees each cotangent as soon as it is
consumed, and sums cotangents where a value fans out. Boxes hold their parents and
never their children, so graphs contain no reference cycles and are freed by
reference counting alone.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np

__all__ = ["Box", "Primitive", "primitive", "backward", "new_trace", "end_trace", "strip", "is_box"]


class _State:
    __slots__ = ("depth", "enabled", "ids")

    def __init__(self):
        self.depth = 0          # number of traces currently recording
        self.enabled = True     # False inside ``no_grad()``
        self.ids = itertools.count(1)


STATE = _State()


def new_trace() -> int:
    """Open a trace; returns its id (larger than every id before it)."""
    STATE.depth += 1
    return next(STATE.ids)


def end_trace() -> None:
    """Close the innermost trace (its boxes become constants for later work)."""
    STATE.depth -= 1


def recording() -> bool:
    return STATE.depth > 0 and STATE.enabled


class Box:
    """A traced value: ``value`` plus the primitive application that produced it.

    Attributes:
      value: the underlying value, a NumPy array/scalar or (under nested traces) a box of an outer trace.
      trace: id of the trace that recorded this box.
      prim: the :class:`Primitive` that produced it (``None`` for an input).
      args, kwargs: the primitive's arguments, with this trace's boxes replaced by their values.
      parents: ``((argnum, parent_box), ...)`` for the arguments that were boxes of this trace.
      label: an optional name used by :func:`funcnet.tracer.trace`.
    """

    __slots__ = ("value", "trace", "prim", "args", "kwargs", "parents", "label", "__weakref__")

    def __init__(self, value, trace, prim=None, args=(), kwargs=None, parents=()):
        self.value = value
        self.trace = trace
        self.prim = prim
        self.args = args
        self.kwargs = kwargs
        self.parents = parents
        self.label = None

    # Operators, properties, and the NumPy protocols are attached by _namespace.py.


def is_box(x) -> bool:
    return isinstance(x, Box)


def strip(x):
    """The plain value under every layer of boxes."""
    while isinstance(x, Box):
        x = x.value
    return x


class Primitive:
    """A function that boxes record. ``fun`` works on plain values; rules live in :mod:`._rules`.

    Calling a primitive on plain values calls ``fun``. With boxes among the positional
    arguments, the result is boxed for the innermost trace and the application recorded.
    """

    __slots__ = ("fun", "name", "vjps", "argnum_vjp", "broadcasts", "differentiable")

    def __init__(self, fun: Callable, name: str | None = None):
        self.fun = fun
        self.name = name or getattr(fun, "__name__", repr(fun))
        self.vjps: tuple | None = None       # one rule per positional argument
        self.argnum_vjp: Callable | None = None  # or one rule taking the argnum first
        self.broadcasts = False              # elementwise n-ary: undo broadcasting of cotangents
        self.differentiable = True

    def __repr__(self) -> str:
        return f"<tracer primitive {self.name}>"

    def __call__(self, *args, **kwargs):
        if STATE.depth == 0 or not STATE.enabled:
            if STATE.enabled:
                return self.fun(*args, **kwargs)
            return self.fun(*[strip(a) for a in args], **kwargs)
        top = 0
        for a in args:
            if type(a) is Box and a.trace > top:
                top = a.trace
        if top == 0:
            return self.fun(*args, **kwargs)
        raw = list(args)
        parents = []
        for i, a in enumerate(args):
            if type(a) is Box and a.trace == top:
                raw[i] = a.value
                parents.append((i, a))
        if STATE.depth == 1:
            ans = self.fun(*raw, **kwargs)
        else:
            ans = self(*raw, **kwargs)
        if not self.differentiable:
            return ans
        return Box(ans, top, self, raw, kwargs, tuple(parents))


def primitive(fun: Callable, name: str | None = None) -> Primitive:
    """Wrap ``fun`` (which works on NumPy values) as a primitive that the tracer records."""
    return fun if isinstance(fun, Primitive) else Primitive(fun, name)


def _missing_rule(prim: Primitive):
    return NotImplementedError(
        f"the tracer has no derivative rule for primitive {prim.name!r}; register one with "
        f"funcnet.tracer.defvjp({prim.name}, lambda g, ans, *args, **kwargs: ...) giving the "
        "cotangent of each positional argument"
    )


def toposort(roots) -> list:
    """Boxes reachable from ``roots`` (all of one trace), children before parents."""
    counts: dict[int, int] = {}
    stack = list(roots)
    for r in roots:
        counts[id(r)] = 0
    # count, for every node, how many children reach it (each node expanded once)
    expanded = set()
    while stack:
        node = stack.pop()
        if id(node) in expanded:
            continue
        expanded.add(id(node))
        for _, p in node.parents:
            pid = id(p)
            if pid in counts:
                counts[pid] += 1
            else:
                counts[pid] = 1
                stack.append(p)
    order = []
    ready = list({id(r): r for r in roots if counts[id(r)] == 0}.values())
    while ready:
        node = ready.pop()
        order.append(node)
        for _, p in node.parents:
            pid = id(p)
            c = counts[pid] - 1
            counts[pid] = c
            if c == 0:
                ready.append(p)
    return order


def backward(roots, cotangents, record: Callable | None = None) -> dict:
    """Reverse-mode sweep from ``roots`` seeded with ``cotangents``.

    Returns ``{id(box): cotangent}`` for every reached box that has no parents (the
    inputs). ``record(event, node, *info)`` (optional) sees every step; used by
    :func:`funcnet.tracer.trace`.
    """
    from funcnet._tracer._unbroadcast import unbroadcast

    cts: dict[int, Any] = {}
    for r, c in zip(roots, cotangents):
        rid = id(r)
        cts[rid] = c if rid not in cts else cts[rid] + c
    leaves: dict[int, Any] = {}
    for node in toposort(roots):
        g = cts.pop(id(node), None)
        if g is None:
            continue  # no path from this node to the output: nothing to do, no zeros made
        if record is not None:
            record("node", node, g)
        prim = node.prim
        if prim is None:
            leaves[id(node)] = g
            continue
        rules = prim.vjps
        if rules is None and prim.argnum_vjp is None:
            raise _missing_rule(prim)
        ans, args, kw = node.value, node.args, node.kwargs
        for argnum, parent in node.parents:
            if rules is not None:
                rule = rules[argnum] if argnum < len(rules) else None
                if rule is None:
                    raise NotImplementedError(
                        f"primitive {prim.name!r} has no derivative rule for its argument {argnum}; "
                        "register one with funcnet.tracer.defvjp"
                    )
                c = rule(g, ans, *args, **kw)
            else:
                c = prim.argnum_vjp(argnum, g, ans, *args, **kw)
            if prim.broadcasts:
                c = unbroadcast(c, parent.value)
            pid = id(parent)
            prev = cts.get(pid)
            if prev is None:
                cts[pid] = c
                if record is not None:
                    record("edge", node, parent, argnum, c, None)
            else:
                cts[pid] = prev + c
                if record is not None:
                    record("edge", node, parent, argnum, c, prev)
    return leaves
