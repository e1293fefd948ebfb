"""grad's memory policy: what makes ``tracer.grad`` as lean and fast as hand-written backprop.

A plug-in, kept out of the core. ``tracer.grad`` records its graph with a `MemoryTrace`
(a `funcnet.tracer._core.ReverseTrace` subclass) when it is the outermost trace, and walks it
backwards with a `Spender` observer (`MemoryTrace.finish`). The graph is used exactly once, which allows three things
a general graph cannot do, each only for arrays of at least `SETTINGS` ``.min_bytes`` (64 KiB;
smaller values are not worth the bookkeeping):

1. **Keep only what rules read.** A node keeps its arguments only if its VJP rules read them
   (``Primitive.reads``), just their shapes for ``"shape"``.
2. **Reuse spent temporaries.** In ``(a @ w) + b`` nothing can read ``a @ w`` again, so ``b`` is added
   in its buffer (what NumPy's temporary elision does for plain arrays). Whether a box is such a
   temporary is read from CPython's reference counts, compared against the counts a temporary has
   on the running interpreter, measured once on first use (`calibrate`).
3. **Release after the forward pass, and during the backward pass.** A value that no rule reads and
   nothing outside the graph holds is dropped when the forward pass ends (`release_forward`);
   the backward walk unlinks each node as it visits it, so every forward value is freed right after
   its last use. A graph of small values only is walked without the observer and freed as a whole.

Speed is also this module's business: `MemoryTrace.process` is the core's ``ReverseTrace.process``
written out for one and two arguments (every operator), and `lean` boxes keep two parents in slots,
so that one operation leaves one object for the garbage collector to track.

Where reference counts are not exact (CPython 3.14 may borrow references), 2 and 3 switch themselves off.
"""

from __future__ import annotations

import contextlib
import operator
import sys
from sys import getrefcount

import numpy as np

from funcnet.tracer import _rules as R
from funcnet.tracer._core import _SEQ, Box, ReverseTrace

__all__ = ["SETTINGS", "threshold", "MemoryTrace", "Spender", "release_forward", "calibrate", "INTO"]

EXACT_REFCOUNTS = sys.version_info < (3, 14)
ndarray = np.ndarray


class _Settings:
    """``min_bytes``: the smallest array the policy acts on. ``calibrated``: refcounts measured yet."""

    __slots__ = ("min_bytes", "box_refs", "array_refs", "release_refs")

    def __init__(self):
        self.min_bytes = 1 << 16
        self.box_refs = self.array_refs = self.release_refs = None   # measured on first use


SETTINGS = _Settings()

# primitive -> ``f(x, y)`` computing it in x's buffer; only for rules that read no argument's value
INTO = {R.add: lambda x, y: np.add(x, y, out=x), R.subtract: lambda x, y: np.subtract(x, y, out=x)}


@contextlib.contextmanager
def threshold(min_bytes: int):
    """Within this block the policy acts on arrays of at least ``min_bytes`` (tests lower it to 0)."""
    old = SETTINGS.min_bytes
    SETTINGS.min_bytes = int(min_bytes)
    try:
        yield
    finally:
        SETTINGS.min_bytes = old


class _ShapeOnly:
    """What a node keeps of an argument whose rules read only its shape and dtype."""

    __slots__ = ("shape", "dtype")

    def __init__(self, a):
        self.shape, self.dtype = a.shape, a.dtype


_LEAN: dict = {}


def lean(box_type: type) -> type:
    """``box_type`` keeping the parents of a one- or two-argument operation in two slots, not a tuple.

    A box is then the only object such an operation leaves that the garbage collector tracks (its
    ``raw`` tuple holds plain values, so CPython untracks it), which halves the collections on long
    graphs. ``parents`` reads the slots back as a tuple in C (`operator.attrgetter`), without a
    Python frame; operations of three or more arguments make plain ``box_type`` boxes.
    """
    if box_type not in _LEAN:
        class LeanBox(box_type):
            __slots__ = ("p0", "p1")
            parents = property(operator.attrgetter("p0", "p1"))

            def __init__(self, value, trace, prim=None, raw=(), kwargs=None, p0=None, p1=None, tangent=None):
                self.value = value
                self.trace = trace
                self.prim = prim
                self.raw = raw
                self.kwargs = kwargs
                self.p0 = p0
                self.p1 = p1
                self.tangent = tangent
                self.label = None
                self.seq = next(_SEQ)

        LeanBox.__name__ = LeanBox.__qualname__ = box_type.__name__
        _LEAN[box_type] = LeanBox
    return _LEAN[box_type]


def _nothing(a):
    return None


class MemoryTrace(ReverseTrace):
    """A reverse trace for a graph differentiated once (see the module docstring).

    After the forward pass, `finish` releases what the backward pass will not read and gives the
    observer for `funcnet.tracer._core.backward` that spends the graph as it is walked.
    """

    def __init__(self, box_type=Box):
        super().__init__(box_type)
        self.lean = lean(box_type)
        self.large = False               # recorded an array of at least SETTINGS.min_bytes
        self.releasable = False          # ... whose value no rule reads
        if SETTINGS.box_refs is None:
            calibrate(box_type)

    def new_input(self, value, tangent=None):
        return self.lean(value, self, tangent=tangent)

    def process(self, prim, args, kwargs):
        # as ReverseTrace.process, written out for one and two arguments (every operator): the
        # parents go straight into the box's slots, and ``x (op) y`` may reuse a spent ``x``
        bt = self.lean
        wide = self.box_type
        n = len(args)
        if n == 2:
            x, y = args
            p0 = x if (type(x) is bt or type(x) is wide) and x.trace is self else None
            p1 = y if (type(y) is bt or type(y) is wide) and y.trace is self else None
            xv = x if p0 is None else x.value
            raw = (xv, y if p1 is None else y.value)
            if (p0 is not None and type(xv) is ndarray and xv.nbytes >= SETTINGS.min_bytes and not kwargs
                    and prim in INTO and _spent(p0, raw[1])):
                ans = INTO[prim](xv, raw[1])
            else:
                ans = prim.fun(*raw, **kwargs) if kwargs else prim.fun(*raw)
        elif n == 1:
            x = args[0]
            p0 = x if (type(x) is bt or type(x) is wide) and x.trace is self else None
            raw, p1 = (x if p0 is None else x.value,), None
            ans = prim.fun(*raw, **kwargs) if kwargs else prim.fun(*raw)
        else:
            raw, parents = self.unbox(args)
            ans = prim.fun(*raw, **kwargs)
            if type(ans) is ndarray and ans.nbytes >= SETTINGS.min_bytes:
                raw = self._kept(prim, raw)
            return self.box_type(ans, self, prim, raw, kwargs or None, parents)
        if type(ans) is ndarray and ans.nbytes >= SETTINGS.min_bytes:
            raw = self._kept(prim, raw)
        return bt(ans, self, prim, raw, kwargs or None, p0, p1)

    def unbox(self, args):
        mine = tuple([a if isinstance(a, Box) and a.trace is self else None for a in args])
        return tuple([a if b is None else b.value for a, b in zip(args, mine)]), mine

    def finish(self, out: Box) -> Spender | None:
        """After the forward pass of ``out``: release unread values; the backward walk's observer, if needed."""
        if not self.large:
            return None                  # small values only: nothing worth freeing early
        if self.releasable:
            release_forward(out)
        return Spender()

    def _kept(self, prim, raw):
        """What a node with a large answer keeps of its arguments: what its rules read (``reads``)."""
        reads = prim.reads
        self.large = True
        if "ans" not in reads:
            self.releasable = True
        if "args" in reads:
            return raw
        # float/complex array arguments become their shapes, or nothing; others (axes, integer and boolean
        # index arrays, shapes) stay: the rules of getitem, take_along_axis and their transposes read them
        keep = _ShapeOnly if "shape" in reads else _nothing
        return tuple([keep(a) if type(a) is np.ndarray and a.dtype.kind in "fc" else a for a in raw])


def _spent(x: Box, y) -> bool:
    """Whether ``x``'s value may be overwritten by ``x (op) y``: no one can read it again.

    True only when the box is a temporary that nothing else holds, its array is referenced by the
    box alone, its own rules never read its value, and ``y`` keeps the result's shape and dtype
    equal to ``x``'s (a Python float, or an array of ``x``'s dtype whose shape is a suffix of ``x``'s).
    """
    if not EXACT_REFCOUNTS or x.prim is None or "ans" in x.prim.reads:
        return False
    xv = x.value
    if xv.base is not None or not xv.flags.writeable:
        return False
    if getrefcount(x) > SETTINGS.box_refs or getrefcount(xv) > SETTINGS.array_refs:
        return False
    if type(y) is np.ndarray:
        return y.dtype == xv.dtype and y.ndim <= xv.ndim and y.shape == xv.shape[xv.ndim - y.ndim:]
    return type(y) is float and xv.dtype.kind == "f"


def calibrate(box_type) -> None:
    """Measure the reference counts of a temporary on this interpreter, by running ``-box + 1.0``.

    The probe replaces `_spent` for one call along the operator path that user code takes, so
    the counts include every frame of that path. 0 (never spent) where counts are not exact.
    """
    global _spent
    seen = []

    def probe(x, y):                     # the same frame layout as _spent: two parameters, one local
        xv = x.value
        seen.append((getrefcount(x), getrefcount(xv)))
        return False

    real, old_min = _spent, SETTINGS.min_bytes
    SETTINGS.box_refs = SETTINGS.array_refs = 0
    trace = MemoryTrace(box_type)
    try:
        _spent, SETTINGS.min_bytes = probe, 0
        -trace.new_input(np.zeros(8)) + 1.0
    finally:
        _spent, SETTINGS.min_bytes = real, old_min
        trace.end()
    ok = EXACT_REFCOUNTS and len(seen) == 1
    SETTINGS.box_refs, SETTINGS.array_refs = seen[0] if ok else (0, 0)
    probe_list = [Box(None, trace)]
    for box in probe_list:
        SETTINGS.release_refs = getrefcount(box)       # the list, the loop variable, getrefcount's argument


def release_forward(out: Box) -> None:
    """After the forward pass: drop the large values that no rule reads and nothing else holds.

    Counts each box's consumers in the graph of ``out``. A box whose rules never read its value and
    whose reference count is exactly its consumers' links plus this function's own drops its value;
    a stored intermediate or a ``has_aux`` output is held elsewhere and keeps it.
    """
    if not EXACT_REFCOUNTS:
        return
    consumers: dict[int, int] = {}
    candidates = []
    stack = [out]
    while stack:
        node = stack.pop()
        for parent in node.parents:
            if parent is None:
                continue
            if parent.seq in consumers:
                consumers[parent.seq] += 1
                continue
            consumers[parent.seq] = 1
            stack.append(parent)
            v = parent.value
            if (parent.prim is not None and "ans" not in parent.prim.reads and type(v) is np.ndarray
                    and v.nbytes >= SETTINGS.min_bytes):
                candidates.append(parent)
    node = parent = v = None
    for box in candidates:
        if getrefcount(box) == consumers[box.seq] + SETTINGS.release_refs:
            box.value = None


class Spender:
    """The backward-walk observer of grad's graph: frees forward values as soon as they are spent."""

    __slots__ = ()

    def visit(self, node, g):
        if node.prim is None:
            return
        # the walk has read this node's links: unlink it, so that each forward value is freed right
        # after its last use (the graph is differentiated once)
        node.raw, node.kwargs = (), None
        if hasattr(node, "p0"):
            node.p0 = node.p1 = None
        else:
            node.parents = ()
        # a node whose rules never read its value, that no one outside the walk can reach (the walk's
        # local, this parameter, getrefcount's argument), frees it before its rules allocate
        if EXACT_REFCOUNTS and "ans" not in node.prim.reads and getrefcount(node) == 3:
            node.value = None
