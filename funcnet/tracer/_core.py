"""The core of the tracer: boxes, traces, primitives and the backward walk. No maths lives here.

Read this file top to bottom; it is all of automatic differentiation that is not a derivative rule.

* A `Box` wraps a value that depends on the inputs being differentiated, and belongs to one
  `Trace`. A reverse trace's box also remembers how it was made (the primitive, its
  arguments, its parent boxes), so the graph can be walked backwards; a forward trace's box
  carries a *tangent*, the directional derivative of its value, computed as the value is.
* A `Primitive` is a function of plain values with derivative rules (kept in ``vjps`` and
  ``jvps``, one per positional argument, filled in by ``_rules.py``). Calling it on boxes
  *binds* it: it finds the innermost trace among its arguments and lets that trace process the
  call (`bind`).
* Traces nest: each new trace has a larger ``level``. A trace unboxes only its own boxes and calls
  the primitive again on what is left, so the outer traces record what the inner one computes.
  Rules are written with primitives too, so the derivative computations of an inner trace are
  themselves recorded by the outer ones. That is all higher order needs: ``grad(grad(f))``,
  ``jvp`` of a ``grad`` (forward over reverse), ``grad`` of a ``jvp``.
* `backward` visits a reverse trace's graph from the output back to the inputs in reverse
  topological order, calling each node's VJP rules and summing cotangents where a value fans out.

Boxes hold their parents and never their children, and traces hold no boxes, so graphs have no
reference cycles and are freed by reference counting alone. What a trace does beyond this (reusing
memory, narrating the graph) is added by subclasses and observers outside this file.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any, Callable

__all__ = ["Box", "Trace", "ReverseTrace", "ForwardTrace", "Primitive", "MissingRuleError",
           "bind", "backward", "strip", "recording"]

_SEQ = itertools.count()      # creation order of boxes: parents are always created before children
_LEVELS = itertools.count(1)  # nesting order of traces: a trace opened later is inner


class _Switch:
    """``enabled`` is False inside ``tracer.no_grad()``: primitives then run on plain values."""

    __slots__ = ("enabled",)

    def __init__(self):
        self.enabled = True


recording = _Switch()


class MissingRuleError(NotImplementedError):
    """A primitive was differentiated with respect to an argument it has no rule for."""


# --8<-- [start:box]
class Box:
    """A traced value. The box is also the graph node (one object per operation, as in micrograd).

    Attributes:
      value: the value, a NumPy array or scalar, or a box of an outer trace.
      trace: the `Trace` that made this box.
      prim, raw, kwargs: the primitive that produced it and the arguments it was called with, this
        trace's boxes replaced by their values (what the rules receive); ``prim`` is None for an input.
      parents: one entry per positional argument: the argument's box in this trace, or None for a
        constant (reverse traces only).
      tangent: the directional derivative of ``value`` (forward traces only; None means zero).
      seq: creation number; sorting by it is a topological order.
      label: a name for `funcnet.tracer.trace` (None unless set).
    """

    __slots__ = ("value", "trace", "prim", "raw", "kwargs", "parents", "tangent", "seq", "label")

    def __init__(self, value, trace, prim=None, raw=(), kwargs=None, parents=(), tangent=None):
        self.value = value
        self.trace = trace
        self.prim = prim
        self.raw = raw
        self.kwargs = kwargs
        self.parents = parents
        self.tangent = tangent
        self.seq = next(_SEQ)
        self.label = None


def strip(x):
    """The plain value under every layer of boxes (``stop_gradient`` for one value)."""
    while isinstance(x, Box):
        x = x.value
    return x
# --8<-- [end:box]


# --8<-- [start:primitive]
class Primitive:
    """A function of plain values that traces record, with a derivative rule per positional argument.

    ``vjps[i](g, ans, *args, **kwargs)`` is the cotangent of argument ``i`` given the output's
    cotangent ``g``; ``jvps[i](t, ans, *args, **kwargs)`` is the output's tangent due to the tangent
    ``t`` of argument ``i``. ``reads`` says what the reverse rules read (``"ans"``, ``"args"``,
    ``"shape"``), so that a memory policy knows what a graph may let go of.
    """

    __slots__ = ("fun", "name", "vjps", "jvps", "reads")

    def __init__(self, fun: Callable, name: str | None = None):
        self.fun = fun
        self.name = name or getattr(fun, "__name__", repr(fun))
        self.vjps: Any = ()
        self.jvps: Any = ()
        self.reads = frozenset(("ans", "args"))

    def __repr__(self) -> str:
        return f"<tracer primitive {self.name}>"

    def __call__(self, *args, **kwargs):
        for a in args:
            if isinstance(a, Box):
                return bind(self, args, kwargs)
        return self.fun(*args, **kwargs)        # plain values: nothing to record

    def rule(self, kind: str, i: int) -> Callable:
        """The ``"vjp"`` or ``"jvp"`` rule of argument ``i``; `MissingRuleError` if there is none."""
        rules = self.vjps if kind == "vjp" else self.jvps
        rule = rules[i] if i < len(rules) else None
        if rule is None:
            raise MissingRuleError(
                f"the tracer has no {kind.upper()} rule for argument {i} of primitive {self.name!r}; "
                f"register one with funcnet.tracer.def{kind}({self.name}, ...) (see docs/autodiff.md, "
                "'Adding a primitive')")
        return rule


def bind(prim: Primitive, args: tuple, kwargs: dict):
    """Apply ``prim`` to arguments some of which are boxes: the innermost live trace processes it."""
    top = None
    for a in args:
        if isinstance(a, Box):
            t = a.trace
            if top is None or t.level > top.level:
                top = t
    if top is None:
        return prim.fun(*args, **kwargs)
    if not recording.enabled:
        return prim.fun(*[strip(a) for a in args], **kwargs)
    if not top.live:            # a box that outlived its trace is a constant
        return prim(*[a.value if isinstance(a, Box) and a.trace is top else a for a in args], **kwargs)
    return top.process(prim, args, kwargs)
# --8<-- [end:primitive]


# --8<-- [start:trace]
class Trace:
    """One level of differentiation. Subclasses decide what a box of theirs remembers.

    ``box_type`` is the class of the boxes it makes (``funcnet.tracer``'s array box, whose class body
    holds the operators); ``live`` turns False when the trace ends, after which its boxes are constants.
    """

    def __init__(self, box_type: type = Box):
        self.level = next(_LEVELS)
        self.box_type = box_type
        self.live = True

    def new_input(self, value, tangent=None) -> Box:
        """A box for an input of the function being differentiated."""
        return self.box_type(value, self, tangent=tangent)

    def end(self) -> None:
        self.live = False

    def unbox(self, args) -> tuple[tuple, tuple]:
        """``(raw, mine)``: the arguments with this trace's boxes replaced by their values, and those boxes."""
        mine = tuple([a if isinstance(a, Box) and a.trace is self else None for a in args])
        return tuple([a if b is None else b.value for a, b in zip(args, mine)]), mine

    def process(self, prim: Primitive, args: tuple, kwargs: dict) -> Box:
        raise NotImplementedError


class ReverseTrace(Trace):
    """Records every primitive application, so that `backward` can walk it in reverse."""

    def process(self, prim, args, kwargs):
        raw, parents = self.unbox(args)
        ans = prim(*raw, **kwargs)           # outer traces record this call, if raw holds their boxes
        return self.box_type(ans, self, prim, raw, kwargs or None, parents)
# --8<-- [end:trace]


# --8<-- [start:forward]
class ForwardTrace(Trace):
    """Pushes tangents forward: each output's tangent is made at once from the JVP rules.

    ``observer(box, args)``, when given, sees every box made (used to narrate a forward pass).
    """

    def __init__(self, box_type: type = Box, observer: Callable | None = None):
        super().__init__(box_type)
        self.observer = observer

    def process(self, prim, args, kwargs):
        raw, mine = self.unbox(args)
        ans = prim(*raw, **kwargs)
        tangent = None
        for i, box in enumerate(mine):
            if box is not None and box.tangent is not None:
                t = prim.rule("jvp", i)(box.tangent, ans, *raw, **kwargs)
                tangent = t if tangent is None else tangent + t
        out = self.box_type(ans, self, prim, tangent=tangent)
        if self.observer is not None:
            self.observer(out, args)
        return out
# --8<-- [end:forward]


# --8<-- [start:backward]
def backward(roots, cotangents, observer: Any = None) -> dict:
    """Reverse-mode sweep from ``roots`` (boxes of one reverse trace) seeded with ``cotangents``.

    Nodes are visited in decreasing creation order (a max-heap on ``seq``): a reverse topological
    order, so each node is processed after every node that sends it a cotangent. A node enters the
    heap when it first receives a cotangent, so parts of the graph that do not lead to the output
    are never visited. Where a value fans out, its cotangents are summed. The walk is a loop, not a
    recursion, so a graph of any depth works.

    Returns ``{box.seq: cotangent}`` for every input box reached (a box without a primitive).

    ``observer`` (optional) is told about every step: ``observer.visit(node, g)`` once the walk has
    read the node's parents and arguments and before its rules run, and ``observer.edge(node,
    parent, i, c, previous)`` (if it has that method) for each cotangent sent. ``tracer.trace``
    narrates the walk this way, and grad's memory policy (``_memory.py``) unlinks each node as it
    is visited, so that every forward value is freed right after its last use.
    """
    visit = observer.visit if observer is not None else None
    edge = getattr(observer, "edge", None)
    cts: dict[int, Any] = {}
    heap = []
    for r, c in zip(roots, cotangents):
        if r.seq in cts:
            cts[r.seq] = cts[r.seq] + c
        else:
            cts[r.seq] = c
            heap.append((-r.seq, r))
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        node = pop(heap)[1]
        prim = node.prim
        if prim is None:                    # an input: its cotangent stays in cts, to be returned
            if visit is not None:
                visit(node, cts[node.seq])
            continue
        g = cts.pop(node.seq)
        parents, raw, kw, rules = node.parents, node.raw, node.kwargs, prim.vjps
        if visit is not None:
            visit(node, g)
        for i, parent in enumerate(parents):
            if parent is None:
                continue                    # a constant, or a box of an outer trace
            rule = rules[i] if i < len(rules) else None
            if rule is None:
                rule = prim.rule("vjp", i)  # raises MissingRuleError
            c = rule(g, node.value, *raw) if kw is None else rule(g, node.value, *raw, **kw)
            prev = cts.get(parent.seq)
            if prev is None:
                cts[parent.seq] = c
                if parent.prim is not None or visit is not None:
                    push(heap, (-parent.seq, parent))
            else:
                cts[parent.seq] = prev + c  # fan-out: the cotangents of every use add up
            if edge is not None:
                edge(node, parent, i, c, prev)
        parents = raw = kw = parent = c = prev = None   # this loop's locals keep no value alive
    return cts
# --8<-- [end:backward]
