"""grad, value_and_grad, vjp, stop_gradient, no_grad, defvjp: the tracer's user-facing functions."""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Sequence

import numpy as np

from funcnet.tracer import _core as _engine, _numpy as _namespace, _rules, _tree
from funcnet.tracer._core import STATE, Box, Primitive, backward, end_trace, new_trace, strip
from funcnet.tracer._tree import flatten, map_leaves, unflatten

_tree.LEAF_TYPES.update((np.ndarray, np.float64, np.float32, Box))  # map_leaves maps them without a call

__all__ = ["grad", "value_and_grad", "vjp", "stop_gradient", "no_grad", "defvjp", "name", "primitive"]


def _check_leaf(leaf, where: str):
    dtype = np.result_type(strip(leaf))
    if not np.issubdtype(dtype, np.inexact):
        raise TypeError(
            f"tracer.grad requires float inputs (a sub-dtype of np.inexact) for the arguments it "
            f"differentiates, but {where} has dtype {dtype}. Convert it with x.astype(float), or leave "
            "that argument out of argnums (integer inputs have no gradient, as in jax.grad)."
        )


def _box_leaf(leaf, trace_id):
    if isinstance(leaf, (Box, np.ndarray, np.generic)):
        return Box(leaf, trace_id)
    return Box(np.asarray(leaf), trace_id)  # a Python float, or a nested list of floats


def _argnums_tuple(argnums, nargs):
    if type(argnums) is int and 0 <= argnums < nargs:
        return (argnums,)
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not isinstance(a, int) or not -nargs <= a < nargs:
            raise ValueError(f"argnums {argnums!r} out of range for a function called with {nargs} positional arguments")
    return tuple(a % nargs for a in nums)


def _box_arg(tree, argnum: int, trace_id: int) -> tuple[Any, list]:
    """``tree`` with every leaf boxed for ``trace_id`` (checked: float leaves only), and the boxes."""
    boxes: list = []

    def box(leaf):
        if type(leaf) is np.ndarray and leaf.dtype.kind in "fc":
            b = Box(leaf, trace_id)                  # the common case: a float array
        else:
            many = len(flatten(tree)[0]) > 1
            _check_leaf(leaf, f"argument {argnum}" + (f" (leaf {len(boxes)})" if many else ""))
            b = _box_leaf(leaf, trace_id)
        boxes.append(b)
        return b

    return map_leaves(box, tree), boxes


class _Forward:
    """The result of running ``f`` with boxed inputs: the output and the input boxes per argnum."""

    __slots__ = ("trace_id", "out", "inputs", "trees", "releasable")

    def __init__(self, f, args, argnums, kwargs, overwrite: bool = False):
        outermost = STATE.depth == 0
        self.trace_id = tid = new_trace()
        old, old_list = STATE.overwrite, STATE.releasable
        self.releasable = False
        if overwrite and outermost:
            # grad's graph is used once: spent temporaries may be reused, unread values released
            STATE.overwrite, STATE.releasable = tid, False
        try:
            args = list(args)
            self.inputs, self.trees = [], []
            for a in argnums:
                args[a], boxes = _box_arg(args[a], a, tid)
                self.inputs.append(boxes)
                self.trees.append(args[a])
            self.out = f(*args, **kwargs)
        finally:
            if overwrite and outermost:
                self.releasable = STATE.releasable
            STATE.overwrite, STATE.releasable = old, old_list
            end_trace(tid)

    def traced(self, value):
        return isinstance(value, Box) and value.trace == self.trace_id

    def grads(self, roots, cts, release: bool = False) -> list:
        leaves = backward(roots, cts, release=release) if roots else {}
        # arrays that no gradient may be: the inputs, the caller's cotangents, and each gradient already
        # given (a rule may pass one cotangent to two arguments, as ``a + b`` does)
        given = {id(b.value) for boxes in self.inputs for b in boxes}
        if cts:
            given.update(map(id, cts))
        return [map_leaves(lambda b: _grad_of(b, leaves, given), tree) for tree in self.trees]


def _grad_of(b: Box, leaves: dict, given: set):
    """The gradient for input box ``b``: its cotangent as a fresh array like its value, or zeros.

    Fresh: writeable, and shared with no input, cotangent or other gradient of the call (``given``
    holds their ids), so updating one gradient in place changes nothing else.
    """
    g = leaves.get(b.seq)
    if g is None:
        return np.zeros_like(strip(b.value))
    if isinstance(g, Box):
        return g
    g = _as_like(g, b.value)
    if type(g) is np.ndarray:
        if id(g) in given:
            g = g.copy()
        given.add(id(g))
    return g


def _as_like(g, x):
    """A fresh, writeable gradient of the input's dtype and array type."""
    if type(g) is np.ndarray and type(x) is np.ndarray and g.dtype == x.dtype and g.base is None and g.flags.writeable:
        return g                                  # the common case: a rule's fresh array
    xr = strip(x)
    dtype = getattr(xr, "dtype", None)
    if isinstance(xr, np.ndarray):
        if not isinstance(g, np.ndarray) or not g.flags.writeable or g.dtype != dtype or g.base is not None:
            g = np.array(g, dtype=dtype)
    elif dtype is not None and getattr(g, "dtype", dtype) != dtype:
        g = dtype.type(g)
    return g


def _scalar_output(fw: _Forward, who: str):
    out = fw.out
    raw = strip(out)
    if type(raw) in (np.float64, np.float32) or (type(raw) is np.ndarray and raw.shape == () and raw.dtype.kind == "f"):
        return out                               # the common case: a real float scalar
    shape = np.shape(raw)
    if shape != ():
        raise TypeError(
            f"{who} requires a scalar output, but the function returned shape {shape}. For a non-scalar "
            "output use out, vjp_fn = funcnet.tracer.vjp(f, *args) and call vjp_fn(cotangent) with a "
            "cotangent of the output's shape (e.g. numpy.ones_like(out))."
        )
    if not np.issubdtype(np.result_type(raw), np.inexact):
        raise TypeError(f"{who} requires a float output, got dtype {np.result_type(raw)}")
    return out


def _one(value):
    raw = strip(value)
    dtype = getattr(raw, "dtype", None)
    return dtype.type(1) if dtype is not None else np.ones((), dtype=np.result_type(raw))[()]


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """Like :func:`grad`, but the function returns ``(f(*args), gradient)``.

    With ``has_aux=True``, ``f`` returns ``(value, aux)`` and the result is
    ``((value, aux), gradient)``, as in ``jax.value_and_grad``.
    """

    @functools.wraps(f)
    def vg(*args, **kwargs):
        nums = _argnums_tuple(argnums, len(args))
        fw = _Forward(f, args, nums, kwargs, overwrite=True)
        aux = None
        if has_aux:
            out, aux = fw.out
            fw.out = out
        out = _scalar_output(fw, "tracer.grad")
        if fw.traced(out):
            if fw.releasable:
                _engine.release_forward(out)
            gs = fw.grads([out], [_one(out.value)], release=True)
            value = out.value
        else:
            gs = fw.grads([], [])
            value = out
        g = gs[0] if isinstance(argnums, int) else tuple(gs)
        return ((value, _strip_tree(aux, fw.trace_id)) if has_aux else value), g

    return vg


def _strip_tree(tree, trace_id):
    leaves, tdef = flatten(tree)
    return unflatten(tdef, [l.value if isinstance(l, Box) and l.trace == trace_id else l for l in leaves])


def grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    r"""The gradient of a scalar function, by reverse-mode automatic differentiation.

    ``grad(f)(x)`` is ∂f/∂x with the same pytree structure (dict / list / tuple of
    float NumPy arrays or scalars) as ``x``. ``argnums`` picks the positional
    arguments to differentiate: an int gives one gradient, a tuple gives a tuple.
    Every gradient leaf is a new writeable array of its input's dtype, shared with no
    input and no other gradient, so it may be updated in place.

    Examples:
      >>> import numpy as np
      >>> from funcnet import tracer
      >>> tracer.grad(lambda x: (x ** 2).sum())(np.array([1.0, 2.0]))
      array([2., 4.])

    Raises:
      TypeError: for integer or boolean inputs, or a non-scalar output (use :func:`vjp`).
    """
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def g(*args, **kwargs):
        (value, g_) = vg(*args, **kwargs)
        return (g_, value[1]) if has_aux else g_

    return g


def vjp(f: Callable, *primals) -> tuple[Any, Callable]:
    """``out, vjp_fn = vjp(f, *primals)``: ``vjp_fn(ct)`` returns ``ct``ᵀ·∂f/∂primals, one entry per primal.

    ``out`` may be any pytree of arrays; ``ct`` must have its structure and shapes.
    ``vjp_fn`` can be called many times (the graph is kept until it is released).
    """
    fw = _Forward(f, primals, tuple(range(len(primals))), {})
    out_leaves, out_def = flatten(fw.out)
    out_value = unflatten(out_def, [l.value if fw.traced(l) else l for l in out_leaves])

    def vjp_fn(ct):
        ct_leaves, ct_def = flatten(ct)
        if len(ct_leaves) != len(out_leaves):
            raise ValueError(f"vjp_fn expects a cotangent with {len(out_leaves)} leaves like the output, got {len(ct_leaves)}")
        roots, cts = [], []
        for o, c in zip(out_leaves, ct_leaves):
            if np.shape(strip(c)) != np.shape(strip(o)):
                raise ValueError(f"cotangent of shape {np.shape(strip(c))} does not match output shape {np.shape(strip(o))}")
            if fw.traced(o):
                roots.append(o)
                cts.append(c)
        return tuple(fw.grads(roots, cts))

    return out_value, vjp_fn


def stop_gradient(x):
    """The value of ``x`` (any pytree), treated as a constant by every trace (``jax.lax.stop_gradient``)."""
    leaves, tdef = flatten(x)
    return unflatten(tdef, [strip(l) for l in leaves])


@contextlib.contextmanager
def no_grad():
    """Within this block nothing is recorded; operations on traced values give plain NumPy values."""
    old = STATE.enabled
    STATE.enabled = False
    try:
        yield
    finally:
        STATE.enabled = old


def name(x, label: str):
    """Label a traced value for :func:`funcnet.tracer.trace` (``q = name(x + y, "q")``); returns ``x``."""
    if isinstance(x, Box):
        x.label = label
    return x


def primitive(fun: Callable, name: str | None = None) -> Primitive:
    """Wrap a function of plain NumPy values as a primitive; give it rules with :func:`defvjp`."""
    return _engine.primitive(fun, name)


def defvjp(prim, *rules, broadcasts: bool = False) -> Primitive:
    """Register derivative rules for a primitive: one ``rule(g, ans, *args, **kwargs)`` per positional argument.

    Each rule returns the cotangent of its argument given the output cotangent ``g``
    and the output ``ans``; ``None`` marks an argument as non-differentiable. Write
    rules with operators and ``funcnet.tracer.numpy`` functions so that higher-order
    derivatives work. ``prim`` may be a primitive from :func:`primitive` or a plain
    NumPy function such as ``np.cumsum``; in the latter case NumPy calls on traced
    values (``np.cumsum(x)``) dispatch to the new primitive. Returns the primitive.

    Examples:
      >>> import numpy as np
      >>> from funcnet import tracer
      >>> cumsum = tracer.defvjp(np.cumsum, lambda g, ans, x: np.flip(np.cumsum(np.flip(g))))
      >>> tracer.grad(lambda x: np.cumsum(x)[1])(np.array([1.0, 2.0, 3.0]))
      array([1., 1., 0.])
    """
    fun = prim.fun if isinstance(prim, Primitive) else prim
    p = _rules.defvjp(prim, *rules, broadcasts=broadcasts)
    if not isinstance(prim, Primitive):
        if isinstance(fun, np.ufunc):
            _rules.UFUNCS[fun] = p
        else:
            _namespace.USER_FUNCTIONS[fun] = lambda *a, **k: p(*a, **k)
    return p
