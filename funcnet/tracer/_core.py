"""The tracing engine: boxes, primitives and the backward walk. No maths lives here.

A *box* wraps a value and remembers how it was made: the primitive, the (unboxed)
arguments, and its parent boxes. Every nested ``grad`` opens a new trace with a
larger id; a primitive applied to boxes of several traces boxes its result for
the innermost (largest) one and calls itself again on the unboxed arguments, so
outer traces record what inner traces compute. That is all higher-order
differentiation needs, provided derivative rules are written with primitives
(see :mod:`funcnet.tracer._rules`).

The backward walk (:func:`backward`) visits the graph in reverse topological order
with an explicit stack (no recursion), frees each cotangent as soon as it is
consumed, and sums cotangents where a value fans out. Boxes hold their parents and
never their children, so graphs contain no reference cycles and are freed by
reference counting alone.
"""

from __future__ import annotations

import heapq
import itertools
import sys
from sys import getrefcount
from typing import Any, Callable

import numpy as np

__all__ = ["Box", "Primitive", "primitive", "apply2", "backward", "new_trace", "end_trace", "strip", "is_box"]


class _State:
    __slots__ = ("depth", "enabled", "ids", "stack", "top", "overwrite", "releasable")

    def __init__(self):
        self.depth = 0          # number of traces currently recording
        self.enabled = True     # False inside ``no_grad()``
        self.ids = itertools.count(1)
        self.stack = [0]        # ids of the live traces, innermost last
        self.top = 0
        self.overwrite = 0      # id of the trace whose spent temporaries may be overwritten (see apply2)
        self.releasable = False  # whether that trace recorded a large value no rule reads (see release_forward)


STATE = _State()


def new_trace() -> int:
    """Open a trace; returns its id (larger than every id before it)."""
    tid = next(STATE.ids)
    STATE.stack.append(tid)
    STATE.top = tid
    STATE.depth += 1
    return tid


def end_trace(tid: int) -> None:
    """Close trace ``tid`` (its boxes become constants for later work)."""
    STATE.stack.remove(tid)
    STATE.top = STATE.stack[-1]
    STATE.depth -= 1


def recording() -> bool:
    return STATE.depth > 0 and STATE.enabled


class Box:
    """A traced value: ``value`` plus the primitive application that produced it.

    Attributes:
      value: the underlying value, a NumPy array/scalar or (under nested traces) a box of an outer trace.
      trace: id of the trace that recorded this box.
      prim: the :class:`Primitive` that produced it (``None`` for an input).
      raw, kwargs: the primitive's arguments, with this trace's boxes replaced by their
        values (what the derivative rules receive); ``kwargs`` is ``None`` when empty.
      p0, p1, more: the parent boxes (of this trace) of argument 0, of argument 1, and of
        arguments 2, 3, ... (a tuple, usually empty), ``None`` where an argument is a constant.
      seq: creation number; a box is always created after its parents, so sorting by
        ``seq`` is a topological order.
      label: an optional name used by :func:`funcnet.tracer.trace` (unset by default).

    One box is the only object an operation leaves behind that the garbage collector
    tracks (``raw`` holds plain values, so CPython untracks it at its first collection).
    Parents are therefore kept in slots rather than in a tuple: a 10,000-op graph is
    10,000 tracked objects, not 20,000 or 30,000, and collections come that much less often.
    """

    __slots__ = ("value", "trace", "prim", "raw", "kwargs", "p0", "p1", "more", "seq", "label")

    def __init__(self, value, trace, prim=None, raw=(), kwargs=None, p0=None, p1=None, more=()):
        self.value = value
        self.trace = trace
        self.prim = prim
        self.raw = raw
        self.kwargs = kwargs
        self.p0 = p0
        self.p1 = p1
        self.more = more
        self.seq = next(_SEQ)

    @property
    def parents(self) -> tuple:
        """``((argnum, parent_box), ...)`` for the arguments that are boxes of this box's trace."""
        return tuple((i, a) for i, a in enumerate((self.p0, self.p1) + self.more) if a is not None)

    # Operators, properties, and the NumPy protocols are attached by _namespace.py.


_SEQ = itertools.count()
# getrefcount counts every reference up to 3.13; 3.14 may borrow references from the stack
_EXACT_REFCOUNTS = sys.version_info < (3, 14)
_NO_KWARGS: dict = {}


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

    __slots__ = ("fun", "name", "vjps", "argnum_vjp", "broadcasts", "differentiable", "uses_ans", "uses_args",
                 "into")

    def __init__(self, fun: Callable, name: str | None = None):
        self.fun = fun
        self.name = name or getattr(fun, "__name__", repr(fun))
        self.vjps: tuple | None = None       # one rule per positional argument
        self.argnum_vjp: Callable = self._no_rule  # or one rule taking the argnum first
        self.broadcasts = False              # elementwise n-ary: undo broadcasting of cotangents
        self.differentiable = True
        self.uses_ans = True                 # False: no rule reads ``ans`` (lets grad free it early)
        self.uses_args = True                # False: the rules read no argument's value ("shape": only shapes)
        self.into = None                     # ``into(x, y)`` computes ``fun(x, y)`` in x's buffer, when the
        #                                      rules read only x's shape (see apply2)

    def __repr__(self) -> str:
        return f"<tracer primitive {self.name}>"

    def _no_rule(self, argnum, *args, **kwargs):
        raise NotImplementedError(
            f"the tracer has no derivative rule for argument {argnum} of primitive {self.name!r}; "
            f"register one with funcnet.tracer.defvjp({self.name}, lambda g, ans, *args, **kwargs: ...) "
            "giving the cotangent of each positional argument (None for a non-differentiable one)"
        )

    def __call__(self, *args, **kwargs):
        st = STATE
        if st.depth == 0 and st.enabled:
            return self.fun(*args, **kwargs)    # nothing records (e.g. rules run by grad's backward pass)
        n = len(args)
        if n == 2:
            return apply2(self, args[0], args[1], kwargs)
        if n == 1 and st.depth == 1 and st.enabled:
            # the common case, one live trace: unbox, call fun, box the answer
            x = args[0]
            if type(x) is Box and x.trace == st.top:
                raw = (x.value,)
                ans = self.fun(*raw, **kwargs)
                if st.overwrite == x.trace and type(ans) is np.ndarray and ans.nbytes >= _SPENT_MIN_BYTES:
                    return _record_spent_graph(self, ans, x.trace, raw, kwargs, x, None)
                return Box(ans, x.trace, self, raw, kwargs or None, x)
        return self._call(args, kwargs)

    def _call(self, args, kwargs):
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
        raw = tuple([a.value if type(a) is Box and a.trace == top else a for a in args])
        ans = self(*raw, **kwargs)  # records in outer traces, if their boxes are among raw
        if not self.differentiable:
            return ans
        ps = [a if type(a) is Box and a.trace == top else None for a in args] + [None, None]
        return Box(ans, top, self, raw, kwargs or None, ps[0], ps[1], tuple(ps[2:len(args)]))


def apply2(prim: Primitive, x, y, kwargs=None):
    """``prim(x, y, **kwargs)``; the Box operators call this directly (no argument packing)."""
    st = STATE
    if st.depth == 1 and st.enabled:
        # the common case, one live trace: unbox its boxes, call fun, box the answer
        top = st.top
        if type(x) is Box and x.trace == top:
            p0 = x
            if type(y) is Box and y.trace == top:
                p1, raw = y, (x.value, y.value)
            else:
                p1, raw = None, (x.value, y)
        elif type(y) is Box and y.trace == top:
            p0, p1, raw = None, y, (x, y.value)
        else:
            return prim._call((x, y), kwargs or {})
        if kwargs:
            return Box(prim.fun(*raw, **kwargs), top, prim, raw, kwargs, p0, p1)
        if st.overwrite != top:
            return Box(prim.fun(*raw), top, prim, raw, None, p0, p1)
        if (prim.into is not None and p0 is not None
                and type(raw[0]) is np.ndarray and raw[0].nbytes >= _SPENT_MIN_BYTES and _spent(x, raw[1])):
            # ``(a @ w) + b`` under grad: nothing can read a @ w any more, so b is added in its buffer
            # (what NumPy's temporary elision does for plain arrays): one fewer large array per layer
            ans = prim.into(raw[0], raw[1])
        else:
            ans = prim.fun(*raw)
        if type(ans) is np.ndarray and ans.nbytes >= _SPENT_MIN_BYTES:
            return _record_spent_graph(prim, ans, top, raw, None, p0, p1)
        return Box(ans, top, prim, raw, None, p0, p1)
    return prim._call((x, y), kwargs or {})


class _ShapeOnly:
    """What a rule that reads only its argument's shape and dtype keeps of it (``uses_args == "shape"``)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, a):
        self.shape, self.dtype = a.shape, a.dtype


def _record_spent_graph(prim, ans, trace, raw, kwargs, p0, p1) -> Box:
    """Box a large ``ans`` (at least ``_SPENT_MIN_BYTES``) for grad's graph, which is differentiated once.

    Arguments that no rule of ``prim`` reads are not kept (only their shapes, for ``uses_args == "shape"``),
    and a value that the box's own rules never read is noted for :func:`release_forward`. Smaller values
    are recorded as they are: letting them go early would not be worth the bookkeeping.
    """
    uses_args = prim.uses_args
    if uses_args is not True:
        if not uses_args:
            raw = (None,) * len(raw)
        else:                               # "shape"
            raw = tuple([_ShapeOnly(a) if type(a) is np.ndarray else a for a in raw])
    if not prim.uses_ans:
        STATE.releasable = True
    return Box(ans, trace, prim, raw, kwargs or None, p0, p1)


def release_forward(out: Box) -> None:
    """After grad's forward pass: let go of the large values that no rule reads, as hand-written backprop does.

    Walks the graph of ``out`` (which keeps its value) and counts each box's consumers in it. A box whose
    rules never read its value (``uses_ans`` False) and which nothing outside the graph holds (its reference
    count is exactly its consumers' links plus this function's own, ``_RELEASE_REFS``) drops its reference to
    the value; a stored intermediate or a ``has_aux`` output keeps it. Consumers whose rules read the value
    hold it in their own argument tuples, and the others (``uses_args``) do not, so each forward value is
    freed right after its last use instead of when the backward pass reaches the box.
    """
    if not _EXACT_REFCOUNTS:
        return
    consumers: dict[int, int] = {}
    candidates = []
    stack = [out]
    while stack:
        node = stack.pop()
        for parent in (node.p0, node.p1) + node.more:
            if parent is None:
                continue
            s = parent.seq
            if s in consumers:
                consumers[s] += 1
                continue
            consumers[s] = 1
            stack.append(parent)
            prim, v = parent.prim, parent.value
            if prim is not None and not prim.uses_ans and type(v) is np.ndarray and v.nbytes >= _SPENT_MIN_BYTES:
                candidates.append(parent)
    node = parent = v = None
    for box in candidates:
        if getrefcount(box) == consumers[box.seq] + _RELEASE_REFS:
            box.value = None


def _release_refs() -> int:
    probe = [Box(None, 0)]
    for box in probe:
        return getrefcount(box)          # the list, the loop variable, getrefcount's argument


_RELEASE_REFS = _release_refs()


_SPENT_MIN_BYTES = 1 << 16
# References a temporary left operand has when _spent sees it along the operator path ``tmp + y``, and
# references to its array. On CPython 3.11 these are 6 (the caller's evaluation stack, ``self`` of the
# Box operator, ``x`` and ``p0`` of apply2, ``x`` of _spent, getrefcount's argument) and 4 (``box.value``,
# the new node's ``raw``, ``xv`` of _spent, getrefcount's argument); calibrate_spent measures them on
# the running interpreter when the operators are attached. A box or array that anything else holds (a
# variable, another node) has more, and so does one passed through ``Primitive.__call__`` (its ``args``
# tuple). 0 disables the reuse.
_SPENT_BOX_REFS = 0
_SPENT_ARRAY_REFS = 0


def calibrate_spent(temporary: Callable[[Box], Box]) -> None:
    """Measure the reference counts _spent compares against, by running ``temporary(box) + 1.0``."""
    global _SPENT_BOX_REFS, _SPENT_ARRAY_REFS, _spent
    seen = []

    def probe(x, y):  # the same frame layout as _spent: two parameters, one local for the value
        xv = x.value
        seen.append((getrefcount(x), getrefcount(xv)))
        return False

    real, old, old_list = _spent, STATE.overwrite, STATE.releasable
    tid = new_trace()
    try:
        _spent, STATE.overwrite, STATE.releasable = probe, tid, False
        temporary(Box(np.zeros(_SPENT_MIN_BYTES // 8), tid)) + 1.0
    finally:
        _spent, STATE.overwrite, STATE.releasable = real, old, old_list
        end_trace(tid)
    _SPENT_BOX_REFS, _SPENT_ARRAY_REFS = seen[0] if len(seen) == 1 and _EXACT_REFCOUNTS else (0, 0)


def _spent(x: Box, y) -> bool:
    """Whether ``x``'s value may be overwritten by ``x (op) y``: no one can read it again.

    True only when the box is a temporary that nothing else holds (not a variable, not a parent of
    another node), its array is referenced by the box alone, its rule never reads its own value
    (``uses_ans``), and ``y`` keeps the result's shape and dtype equal to ``x``'s (a scalar, or an
    array of ``x``'s dtype whose shape is a suffix of ``x``'s, like a bias).
    """
    if not _EXACT_REFCOUNTS or x.prim is None or x.prim.uses_ans:
        return False
    xv = x.value                             # an array of at least _SPENT_MIN_BYTES (checked by apply2)
    if xv.base is not None:
        return False
    if getrefcount(x) > _SPENT_BOX_REFS or getrefcount(xv) > _SPENT_ARRAY_REFS or not xv.flags.writeable:
        return False
    if type(y) is np.ndarray:
        return y.dtype == xv.dtype and y.ndim <= xv.ndim and y.shape == xv.shape[xv.ndim - y.ndim:]
    return type(y) is float and xv.dtype.kind == "f"


def primitive(fun: Callable, name: str | None = None) -> Primitive:
    """Wrap ``fun`` (which works on NumPy values) as a primitive that the tracer records."""
    return fun if isinstance(fun, Primitive) else Primitive(fun, name)


def toposort(roots) -> list:
    """Boxes of the roots' trace reachable from ``roots``, children before parents."""
    seen = {}
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node.seq in seen:
            continue
        seen[node.seq] = node
        stack.extend(p for _, p in node.parents)
    return [seen[s] for s in sorted(seen, reverse=True)]


def backward(roots, cotangents, record: Callable | None = None, release: bool = False) -> dict:
    """Reverse-mode sweep from ``roots`` (boxes of one trace) seeded with ``cotangents``.

    Nodes are visited in decreasing creation order (a max-heap on ``seq``), which is a
    reverse topological order: a node is processed after every child that sends it a
    cotangent. A node enters the heap when it first receives a cotangent, so parts of
    the graph that do not lead to the output are never visited and no zero gradients
    are made. Each cotangent is dropped as soon as it has been consumed.

    Returns ``{box.seq: cotangent}`` for every reached input box (a box without a
    primitive). ``record(event, ...)`` (optional) sees every step; used by
    :func:`funcnet.tracer.trace`.

    ``release=True`` (used by ``grad``, whose graph is used once) spends the graph as
    it goes: each processed node drops its links to its parents and arguments, so a
    forward value is freed as soon as the last node that needs it has been
    differentiated, and a node whose rules never read ``ans`` (``Primitive.uses_ans``)
    and that nothing outside this loop can reach has its value freed before its rules
    run. Peak memory then stays close to a hand-written backprop's, and large buffers
    are reused by the allocator instead of being returned to the OS and faulted back.
    Boxes the caller still holds keep their values.
    """
    from funcnet.tracer._unbroadcast import unbroadcast

    cts: dict[int, Any] = {}
    heap = []
    for r, c in zip(roots, cotangents):
        s = r.seq
        if s in cts:
            cts[s] = cts[s] + c
        else:
            cts[s] = c
            heap.append((-s, r))
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        node = pop(heap)[1]
        prim = node.prim
        if prim is None:
            # an input box: it only collects cotangents, and its sum stays in cts (enters the heap
            # only for ``record``, or as a root)
            if record is not None:
                record("node", node, cts[node.seq])
            continue
        g = cts.pop(node.seq)
        if record is not None:
            record("node", node, g)
        rules, broadcasts = prim.vjps, prim.broadcasts
        raw, ans, kw = node.raw, node.value, node.kwargs
        if release and not prim.uses_ans and _EXACT_REFCOUNTS and getrefcount(node) == 2:
            # no one else can reach this box and its rules never read its value: free it now,
            # before the rules allocate (a box seen only by this loop dies at the next pop anyway)
            node.value = ans = None
        for i, a in enumerate((node.p0, node.p1) + node.more):
            if a is None:
                continue  # a constant, or a box of an outer trace
            if rules is None:
                c = prim.argnum_vjp(i, g, ans, *raw, **(kw or _NO_KWARGS))
            else:
                rule = rules[i] if i < len(rules) else None
                if rule is None:
                    prim._no_rule(i)
                c = rule(g, ans, *raw) if kw is None else rule(g, ans, *raw, **kw)
            if broadcasts and getattr(c, "shape", ()) != getattr(raw[i], "shape", ()):
                c = unbroadcast(c, raw[i])
            s = a.seq
            prev = cts.get(s)
            if prev is None:
                cts[s] = c
                if a.prim is not None or record is not None:
                    push(heap, (-s, a))
            else:
                cts[s] = prev + c
            if record is not None:
                record("edge", node, a, i, c, prev)
        if release:
            # the graph above this node is spent: unlink it, so that each forward value is
            # freed as soon as its last consumer has been differentiated
            node.raw, node.kwargs, node.p0, node.p1, node.more = (), None, None, None, ()
            a = c = prev = None  # nor may this loop's locals keep a parent or a value alive
    return cts                       # every other node has been popped: what is left are the inputs'
