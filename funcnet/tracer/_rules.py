"""The rule table: every primitive the tracer knows, with its VJP and JVP rules side by side.

Adding a primitive (for contributors)
-------------------------------------
One entry gives the NumPy function, the rules, and what the reverse rules read::

    exp = unary(np.exp, lambda ans, x: ans, reads="ans")        # d exp(x)/dx = exp(x) = ans

``unary``/``binary`` take the *local derivative* of an elementwise function and derive both rules:
the VJP ``g * d`` and the JVP ``t * d`` (``binary`` also undoes broadcasting). Anything else uses
`define`, with one rule per positional argument::

    reshape = define(lambda x, shape: np.reshape(x, shape), "reshape",
                     vjp=lambda g, ans, x, shape: reshape(g, _shape(x)),
                     jvp=lambda t, ans, x, shape: reshape(t, shape), reads="shape")

Conventions:

* ``vjp(g, ans, *args, **kwargs)`` returns the cotangent of its argument (the output's cotangent
  ``g`` pulled back); ``jvp(t, ans, *args, **kwargs)`` returns the output's tangent caused by the
  tangent ``t`` of its argument. ``None`` marks an argument as not differentiable (integer indices,
  labels); differentiating it raises `funcnet.tracer._core.MissingRuleError` naming the
  primitive and argument. A variadic primitive gives one rule ``rule(i, g, ans, *args)`` wrapped in
  `EveryArgument`.
* Rules are written with the primitives of this file and operators, never bare NumPy on their
  inputs, so an outer trace records them (higher order). Masks of plain values (``x >= 0``) are fine.
* ``broadcasts=True`` (elementwise n-ary primitives): the VJP's result is summed back to its
  argument's shape by `unbroadcast`, and the JVP's result is broadcast to the output's shape.
* ``reads`` declares what the VJP rules read: ``"ans"`` (the output), ``"args"`` (argument values),
  ``"shape"`` (only the arguments' shapes and dtypes). grad's memory policy (``_memory.py``) drops
  whatever is not read. Undeclared means ``("ans", "args")``: safe, never wrong.
* ``dispatch=`` lists the functions that become the primitive when called on traced values: NumPy
  functions and ufuncs (``np.exp(box)``, through NumPy's protocols) and funcnet functions marked
  ``overridable`` (``funcnet.activations.log_softmax``); `FUNCTIONS` maps each to the primitive.
* At kinks the rules follow ``jax.grad``: ``abs'(0) = 1``; ``sign' = 0``; ``maximum``/``minimum``
  split a tie half and half (so ``clip`` at a bound gives 0.5); ``max``/``min`` reductions split
  the gradient equally among ties; ``where`` sends it to the chosen branch only; ``x ** y`` with
  respect to ``y`` at ``x = 0`` is 0.
"""

from __future__ import annotations

import functools
import operator
import sys

import numpy as np

from funcnet import activations as _activations, losses as _losses
from funcnet._boundary import constant as _constant
from funcnet.tracer._core import Primitive, strip

__all__ = ["define", "unary", "binary", "EveryArgument", "unbroadcast", "PRIMITIVES", "FUNCTIONS"]

PRIMITIVES: dict[str, Primitive] = {}   # name -> primitive (the tracer's array namespace is built from it)
FUNCTIONS: dict = {}                    # NumPy function, ufunc or funcnet function -> primitive


class EveryArgument:
    """The rules of a variadic primitive: ``rule(i, ...)`` serves argument ``i``, for every ``i``."""

    def __init__(self, rule):
        self.rule = rule

    def __len__(self):
        return sys.maxsize

    def __getitem__(self, i):
        return functools.partial(self.rule, i)


def _as_rules(rules) -> tuple | EveryArgument:
    if rules is None or isinstance(rules, EveryArgument):
        return rules if rules is not None else ()
    return tuple(rules) if isinstance(rules, (tuple, list)) else (rules,)


def define(fun, name=None, *, vjp=None, jvp=None, reads=("ans", "args"), broadcasts=False, dispatch=()) -> Primitive:
    """Make ``fun`` a primitive (or give an existing one its rules) and enter it in the table."""
    prim = fun if isinstance(fun, Primitive) else Primitive(fun, name)
    vjps, jvps = _as_rules(vjp), _as_rules(jvp)
    if broadcasts:
        vjps = tuple(None if r is None else _unbroadcasting(r, i) for i, r in enumerate(vjps))
        jvps = tuple(None if r is None else _broadcasting(r) for r in jvps)
    if vjp is not None:
        prim.vjps = vjps
    if jvp is not None:
        prim.jvps = jvps
    prim.reads = frozenset((reads,) if isinstance(reads, str) else reads)
    PRIMITIVES.setdefault(prim.name, prim)
    for f in (dispatch if isinstance(dispatch, (tuple, list)) else (dispatch,)):
        FUNCTIONS[f] = prim
    return prim


def unary(uf, deriv, reads, name=None, fun=None) -> Primitive:
    """An elementwise function with local derivative ``deriv(ans, x)``: VJP ``g·d``, JVP ``t·d``."""
    return define(fun or uf, name or uf.__name__, dispatch=uf, reads=reads,
                  vjp=lambda g, ans, x: g * deriv(ans, x), jvp=lambda t, ans, x: t * deriv(ans, x))


def binary(uf, dx, dy, reads="args", name=None, fun=None) -> Primitive:
    """A broadcasting elementwise function with local derivatives ``dx(ans, x, y)``, ``dy(ans, x, y)``.

    Each VJP is one function, ``g·d`` made fit for its argument by `to_argument` (broadcasting undone, the
    real part for a real argument); each JVP ``t·d`` is broadcast to the output's shape.
    """
    def vjp_x(g, ans, x, y):
        return to_argument(g * dx(ans, x, y), x)

    def vjp_y(g, ans, x, y):
        return to_argument(g * dy(ans, x, y), y)

    return define(fun or uf, name or uf.__name__, dispatch=uf, reads=reads, vjp=(vjp_x, vjp_y),
                  jvp=(_broadcasting(lambda t, ans, x, y: t * dx(ans, x, y)),
                       _broadcasting(lambda t, ans, x, y: t * dy(ans, x, y))))


def _shape(x):
    return getattr(x, "shape", ())


def unbroadcast(g, like):
    """Sum ``g`` over the axes that broadcasting added to ``like``: the one place this is undone.

    NumPy broadcasting prepends new leading axes and stretches size-1 axes. ``g`` of shape
    ``(4, 3, 5)`` against ``like`` of shape ``(3, 1)`` is summed over axis 0 (new) and axis 2
    (stretched), giving ``(3, 1)``. Written with primitives, so higher orders see it.
    """
    shape, gshape = _shape(like), _shape(g)
    g = _real_like(g, like)                     # a real argument's cotangent is real (complex numbers)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and gshape[lead + i] != 1)
    if type(g) is np.ndarray:                   # plain values (grad's backward pass): no dispatch
        g = np.add.reduce(g, axis=axes) if axes else g
        return g if g.shape == shape else g.reshape(shape)
    g = sum(g, axis=axes) if axes else g
    return g if _shape(g) == shape else reshape(g, shape)


def _two_arguments(rule) -> bool:
    """Whether ``rule`` is a plain ``rule(g, ans, x, y)`` (so its wrapper needs no ``*args``)."""
    code = getattr(rule, "__code__", None)
    return code is not None and code.co_argcount == 4 and not code.co_flags & 0x0C   # no *args, **kwargs


def to_argument(c, x):
    """A cotangent ``c`` made fit for argument ``x``: broadcast axes summed back (`unbroadcast`), and for a
    real ``x`` the real part (a real value times a complex one gets a complex ``c``; JAX's convention)."""
    if getattr(c, "shape", ()) != getattr(x, "shape", ()):
        return unbroadcast(c, x)
    return _real_like(c, x)


def _unbroadcasting(rule, i):
    """The VJP ``rule`` of argument ``i``, its result made fit for that argument (`to_argument`)."""
    if _two_arguments(rule) and i < 2:          # binary operators: every step of most graphs
        if i == 0:
            def vjp(g, ans, x, y):
                return to_argument(rule(g, ans, x, y), x)
        else:
            def vjp(g, ans, x, y):
                return to_argument(rule(g, ans, x, y), y)
        return vjp

    def vjp(g, ans, *args, **kwargs):
        return to_argument(rule(g, ans, *args, **kwargs), args[i])
    return vjp


def _broadcasting(rule):
    """The JVP ``rule``, its result broadcast to the output's shape."""
    if _two_arguments(rule):
        def jvp(t, ans, x, y):
            out = rule(t, ans, x, y)
            return out if _shape(out) == _shape(ans) else broadcast_to(out, _shape(ans))
        return jvp

    def jvp(t, ans, *args, **kwargs):
        out = rule(t, ans, *args, **kwargs)
        return out if _shape(out) == _shape(ans) else broadcast_to(out, _shape(ans))
    return jvp


# ------------------------------------------------------------------ helpers for the rules below
def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axis = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % ndim for a in axis) if ndim else ()


def _count(x, axis):
    shape, n = _shape(x), 1
    for a in _axes(axis, len(shape)):
        n *= shape[a]
    return n


def _restore(g, x, axis, keepdims):
    """A reduction's output (or its cotangent) reshaped so that it broadcasts against the input ``x``."""
    if keepdims or axis is None:
        return g
    kept = list(_shape(x))
    for a in _axes(axis, len(kept)):
        kept[a] = 1
    return reshape(g, tuple(kept))


def _dtype(x):
    x = strip(x)
    return x.dtype if hasattr(x, "dtype") else np.result_type(x)


def _half_if_tied(x, ans, other):
    """Where ``x`` won a maximum/minimum: 1, or 0.5 on a tie with ``other``; 0 elsewhere (as JAX)."""
    xv, av, ov = np.asarray(strip(x)), np.asarray(strip(ans)), np.asarray(strip(other))
    return np.where(xv == av, np.where(ov == av, 0.5, 1.0), 0.0).astype(np.result_type(av))


def _share(ans, x, axis, keepdims):
    """The max/min reduction's weights: 1/k on each of the k elements equal to the result, else 0."""
    hit = np.asarray(strip(x)) == np.asarray(strip(_restore(ans, x, axis, keepdims)))
    return (hit / np.sum(hit, axis=axis, keepdims=True)).astype(_dtype(x))


def _reduction(ufunc, generic):
    def fun(x, axis=None, keepdims=False):      # float arrays go straight to ufunc.reduce (no wrapper)
        if type(x) is np.ndarray and x.dtype.kind == "f":
            return ufunc.reduce(x, axis=axis, keepdims=keepdims)
        return generic(x, axis=axis, keepdims=keepdims)
    return fun


def _mean_fun(x, axis=None, keepdims=False):
    if type(x) is np.ndarray and x.dtype.kind == "f" and x.dtype.itemsize >= 4:
        return np.add.reduce(x, axis=axis, keepdims=keepdims) / _count(x, axis)
    return np.mean(x, axis=axis, keepdims=keepdims)


def _swap_last(x):
    axes = list(range(len(_shape(x))))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return permute_dims(x, tuple(axes))


def _matmul_vjp(i, g, ans, x, y):
    xs, ys = _shape(x), _shape(y)
    if len(xs) == 2 and len(ys) == 2:           # the common case, without reshapes
        if i == 0:
            return g @ (y.T if type(y) is np.ndarray else _swap_last(y))
        return (x.T if type(x) is np.ndarray else _swap_last(x)) @ g
    x2 = reshape(x, (1,) + xs) if len(xs) == 1 else x   # promote 1-D operands as matmul does, then undo
    y2 = reshape(y, ys + (1,)) if len(ys) == 1 else y
    gs = _shape(g)
    g2 = (reshape(g, (1, 1)) if len(xs) == 1 and len(ys) == 1 else reshape(g, gs[:-1] + (1,) + gs[-1:])
          if len(xs) == 1 else reshape(g, gs + (1,)) if len(ys) == 1 else g)
    if i == 0:
        return reshape(unbroadcast(g2 @ _swap_last(y2), x2), xs)
    return reshape(unbroadcast(_swap_last(x2) @ g2, y2), ys)


def _is_basic_index(idx) -> bool:
    items = idx if isinstance(idx, tuple) else (idx,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items)


def _scatter_add_fun(g, idx, shape):
    out = np.zeros(shape, dtype=np.result_type(g))
    if _is_basic_index(idx):
        out[idx] = g
    else:
        np.add.at(out, idx, g)
    return out


def _along_axis_index(idx, axis):
    """The full index tuple that ``take_along_axis(x, idx, axis)`` reads."""
    grids = list(np.ogrid[tuple(slice(n) for n in idx.shape)])
    grids[axis] = idx
    return tuple(grids)


def _put_along_axis_add_fun(g, idx, axis, shape):
    out = np.zeros(shape, dtype=np.result_type(g))
    np.add.at(out, _along_axis_index(idx, axis % len(shape)), g)
    return out


def _concat_vjp(i, g, ans, *xs, axis=0):
    ax = axis % len(_shape(g))
    start = int(np.sum([_shape(x)[ax] for x in xs[:i]], dtype=int))
    return getitem(g, (slice(None),) * ax + (slice(start, start + _shape(xs[i])[ax]),))


def _zeros_like(x):
    return np.zeros(_shape(x), dtype=_dtype(x))


def _sort_fun(x, axis=-1):
    return np.sort(x, axis=axis)


def _minus_max(x, axis=-1):
    return x - np.maximum.reduce(x, axis=axis, keepdims=True)


def _log_softmax_fun(z, axis=-1):
    shifted = _minus_max(z, axis)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _sce_rows(z, labels):
    if z.ndim == 2 and type(labels) is np.ndarray:
        return z, labels
    return z.reshape(-1, z.shape[-1]), np.asarray(labels).reshape(-1)


def _sce_fun(z, labels):
    z2, lab = _sce_rows(z, labels)
    s = _minus_max(z2)
    lse = np.log(np.add.reduce(np.exp(s), axis=-1))
    return np.add.reduce(lse - s[np.arange(z2.shape[0]), lab]) / z2.shape[0]


def _sce_delta(z, labels):
    """(softmax(z) - onehot(labels)) / n, the lectures' delta: fused on plain values, else in primitives."""
    if type(z) is np.ndarray:
        z2, lab = _sce_rows(z, labels)
        p = _minus_max(z2)
        np.exp(p, out=p)
        p /= np.add.reduce(p, axis=-1, keepdims=True)
        p[np.arange(z2.shape[0]), lab] -= 1.0
        p /= z2.shape[0]
        return p if z2 is z else p.reshape(z.shape)
    k = _shape(z)[-1]
    onehot = (np.asarray(labels)[..., None] == np.arange(k)).astype(_dtype(z))
    return (exp(log_softmax(z)) - onehot) / (_count(z, None) // k)


# ================================================================== the table
# elementwise, one argument: the local derivative d(ans, x)
negative = define(operator.neg, "negative", dispatch=np.negative, reads=(), vjp=lambda g, ans, x: -g,
                  jvp=lambda t, ans, x: -t)
exp = unary(np.exp, lambda ans, x: ans, reads="ans")
log = unary(np.log, lambda ans, x: 1.0 / x, reads="args")
log1p = unary(np.log1p, lambda ans, x: 1.0 / (1.0 + x), reads="args")
expm1 = unary(np.expm1, lambda ans, x: ans + 1.0, reads="ans")
sqrt = unary(np.sqrt, lambda ans, x: 0.5 / ans, reads="ans")
sin = unary(np.sin, lambda ans, x: cos(x), reads="args")
cos = unary(np.cos, lambda ans, x: -sin(x), reads="args")
tan = unary(np.tan, lambda ans, x: 1.0 + ans * ans, reads="ans")
sinh = unary(np.sinh, lambda ans, x: cosh(x), reads="args")
cosh = unary(np.cosh, lambda ans, x: sinh(x), reads="args")
tanh = unary(np.tanh, lambda ans, x: 1.0 - ans * ans, reads="ans")
arctan = unary(np.arctan, lambda ans, x: 1.0 / (1.0 + x * x), reads="args")
abs = define(np.absolute, "abs", dispatch=np.absolute, vjp=lambda g, ans, x: _abs_vjp(g, ans, x),  # noqa: A001
             jvp=lambda t, ans, x: _abs_jvp(t, ans, x))
sign = unary(np.sign, lambda ans, x: np.zeros_like(np.asarray(strip(x))), reads="args")
square = unary(np.square, lambda ans, x: 2.0 * x, reads="args")

# elementwise, two broadcasting arguments
add = define(operator.add, "add", dispatch=np.add, reads="shape", broadcasts=True,
             vjp=(lambda g, ans, x, y: g, lambda g, ans, x, y: g), jvp=(lambda t, ans, x, y: t, lambda t, ans, x, y: t))
subtract = define(operator.sub, "subtract", dispatch=np.subtract, reads="shape", broadcasts=True,
                  vjp=(lambda g, ans, x, y: g, lambda g, ans, x, y: -g),
                  jvp=(lambda t, ans, x, y: t, lambda t, ans, x, y: -t))
multiply = define(operator.mul, "multiply", dispatch=np.multiply, reads="args", broadcasts=True,
                  vjp=(lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x),
                  jvp=(lambda t, ans, x, y: t * y, lambda t, ans, x, y: x * t))
divide = define(operator.truediv, "divide", dispatch=(np.divide, np.true_divide), broadcasts=True,
                vjp=(lambda g, ans, x, y: g / y, lambda g, ans, x, y: -(g * ans) / y),
                jvp=(lambda t, ans, x, y: t / y, lambda t, ans, x, y: -(t * ans) / y))
power = binary(np.power, lambda ans, x, y: y * x ** (y - 1),
               lambda ans, x, y: log(where(np.asarray(strip(x)) == 0, 1.0, x)) * ans,
               reads=("ans", "args"), name="pow", fun=operator.pow)
maximum = binary(np.maximum, lambda ans, x, y: _half_if_tied(x, ans, y), lambda ans, x, y: _half_if_tied(y, ans, x),
                 reads=("ans", "args"))
minimum = binary(np.minimum, lambda ans, x, y: _half_if_tied(x, ans, y), lambda ans, x, y: _half_if_tied(y, ans, x),
                 reads=("ans", "args"))
where = define(np.where, "where", reads="args", broadcasts=True,
               vjp=(None, lambda g, ans, c, x, y: where(c, g, 0.0), lambda g, ans, c, x, y: where(c, 0.0, g)),
               jvp=(None, lambda t, ans, c, x, y: where(c, t, 0.0), lambda t, ans, c, x, y: where(c, 0.0, t)))
matmul = define(operator.matmul, "matmul", dispatch=np.matmul, reads="args",
                vjp=EveryArgument(lambda i, g, ans, x, y: _real_like(_matmul_vjp(i, g, ans, x, y), (x, y)[i])),
                jvp=(lambda t, ans, x, y: t @ y, lambda t, ans, x, y: x @ t))

# reductions
sum = define(_reduction(np.add, np.sum), "sum", reads="shape",  # noqa: A001
             vjp=lambda g, ans, x, axis=None, keepdims=False: broadcast_to(_restore(g, x, axis, keepdims), _shape(x)),
             jvp=lambda t, ans, x, axis=None, keepdims=False: sum(t, axis=axis, keepdims=keepdims))
mean = define(_mean_fun, "mean", reads="shape",
              vjp=lambda g, ans, x, axis=None, keepdims=False:
                  broadcast_to(_restore(g, x, axis, keepdims), _shape(x)) / _count(x, axis),
              jvp=lambda t, ans, x, axis=None, keepdims=False: mean(t, axis=axis, keepdims=keepdims))
max = define(_reduction(np.maximum, np.max), "max",  # noqa: A001
             vjp=lambda g, ans, x, axis=None, keepdims=False: _restore(g, x, axis, keepdims) * _share(ans, x, axis, keepdims),
             jvp=lambda t, ans, x, axis=None, keepdims=False: sum(t * _share(ans, x, axis, keepdims), axis=axis,
                                                                  keepdims=keepdims))
min = define(_reduction(np.minimum, np.min), "min", vjp=max.vjps, jvp=max.jvps)  # noqa: A001

# shapes and indexing (linear: each JVP is the primitive itself applied to the tangent)
reshape = define(lambda x, shape: np.reshape(x, shape), "reshape", reads="shape",
                 vjp=lambda g, ans, x, shape: reshape(g, _shape(x)), jvp=lambda t, ans, x, shape: reshape(t, shape))
permute_dims = define(lambda x, axes: np.transpose(x, axes), "permute_dims", reads=(),
                      vjp=lambda g, ans, x, axes: permute_dims(g, tuple(np.argsort(axes))),
                      jvp=lambda t, ans, x, axes: permute_dims(t, axes))
broadcast_to = define(lambda x, shape: np.broadcast_to(x, shape), "broadcast_to", reads="shape",
                      vjp=lambda g, ans, x, shape: unbroadcast(g, x), jvp=lambda t, ans, x, shape: broadcast_to(t, shape))
getitem = define(operator.getitem, "getitem", reads="shape",
                 vjp=lambda g, ans, x, idx: scatter_add(g, idx, _shape(x)), jvp=lambda t, ans, x, idx: getitem(t, idx))
scatter_add = define(_scatter_add_fun, "scatter_add", reads=(),           # the transpose of getitem
                     vjp=lambda g, ans, h, idx, shape: getitem(g, idx),
                     jvp=lambda t, ans, h, idx, shape: scatter_add(t, idx, shape))
take_along_axis = define(lambda x, idx, axis: np.take_along_axis(x, idx, axis), "take_along_axis", reads="shape",
                         vjp=lambda g, ans, x, idx, axis: put_along_axis_add(g, idx, axis, _shape(x)),
                         jvp=lambda t, ans, x, idx, axis: take_along_axis(t, idx, axis))
put_along_axis_add = define(_put_along_axis_add_fun, "put_along_axis_add", reads=(),   # its transpose
                            vjp=lambda g, ans, h, idx, axis, shape: take_along_axis(g, idx, axis),
                            jvp=lambda t, ans, h, idx, axis, shape: put_along_axis_add(t, idx, axis, shape))
concat = define(lambda *xs, axis=0: np.concatenate(xs, axis=axis), "concat", reads="shape",
                vjp=EveryArgument(_concat_vjp),
                jvp=EveryArgument(lambda i, t, ans, *xs, axis=0:
                                  concat(*[t if j == i else _zeros_like(x) for j, x in enumerate(xs)], axis=axis)))
stack = define(lambda *xs, axis=0: np.stack(xs, axis=axis), "stack", reads="shape",
               vjp=EveryArgument(lambda i, g, ans, *xs, axis=0: getitem(g, (slice(None),) * (axis % len(_shape(g))) + (i,))),
               jvp=EveryArgument(lambda i, t, ans, *xs, axis=0:
                                 stack(*[t if j == i else _zeros_like(x) for j, x in enumerate(xs)], axis=axis)))
astype = define(lambda x, dtype: np.asarray(x).astype(dtype), "astype", reads="shape",
                vjp=lambda g, ans, x, dtype: astype(_real_like(g, x), _dtype(x)),
                jvp=lambda t, ans, x, dtype: astype(_real_like(t, ans), dtype))
# sort: the gradient is permuted back to where each element came from (as jax.grad does)
sort = define(_sort_fun, "sort", reads="args",
              vjp=lambda g, ans, x, axis=-1: put_along_axis_add(g, np.argsort(np.asarray(strip(x)), axis=axis, kind="stable"),
                                                                axis, _shape(x)),
              jvp=lambda t, ans, x, axis=-1: take_along_axis(t, np.argsort(np.asarray(strip(x)), axis=axis, kind="stable"),
                                                             axis))

# fused rules for funcnet's own functions: each call is one node with the lectures' delta as its rule
log_softmax = define(_log_softmax_fun, "log_softmax", reads="ans", dispatch=_activations.log_softmax,
                     vjp=lambda g, ans, z, axis=-1: g - exp(ans) * sum(g, axis=axis, keepdims=True),
                     jvp=lambda t, ans, z, axis=-1: t - sum(exp(ans) * t, axis=axis, keepdims=True))
softmax_cross_entropy_with_integer_labels = define(
    _sce_fun, "softmax_cross_entropy_with_integer_labels", reads="args",
    dispatch=_losses.softmax_cross_entropy_with_integer_labels,
    vjp=(lambda g, ans, z, labels: _sce_delta(z, labels) * g, None),
    jvp=(lambda t, ans, z, labels: sum(_sce_delta(z, labels) * t), None))
FUNCTIONS[_constant] = lambda xp, x: strip(x)   # a value held constant: plain for every trace


# ===== NumPy breadth (issue 16) =====
# Elementwise functions, binary functions, reductions and complex numbers beyond what an MLP needs. The
# composite functions of the NumPy surface (shapes, splits, median, ...) are in _numpy.py; they are written
# with the primitives of this table, so they need no rules of their own.
_LN2, _LN10 = float(np.log(2.0)), float(np.log(10.0))


def _plainv(x):
    return np.asarray(strip(x))


def _is_complex(x) -> bool:
    return _dtype(x).kind == "c"


def _real_like(g, x):
    """A real argument's cotangent (or a real output's tangent) is real: the real part, as JAX's transposes give."""
    t = type(g)
    if (t is np.ndarray and g.dtype.kind != "c") or t is np.float64 or t is float:   # the common cases, at once
        return g
    return real(g) if _is_complex(g) and not _is_complex(x) else g


def _complex_like(g, x):
    """A complex argument's cotangent is complex (``g + 0j``), as JAX's ``real`` transpose gives."""
    return astype(g, _dtype(x)) if _is_complex(x) and not _is_complex(g) else g


def _nonzero(ans):
    """``ans`` with its zeros replaced by 1 (a divisor that is safe; the zeros are handled by a mask)."""
    return where(_plainv(ans) == 0, 1.0, ans)


def _abs_vjp(g, ans, x):
    if _is_complex(x):                  # |z|: conj(z)/|z|, and 0 at z = 0 (as JAX)
        return g * (conj(x) / _nonzero(ans))
    return g * np.where(_plainv(x) >= 0, 1.0, -1.0).astype(_dtype(x))


def _abs_jvp(t, ans, x):
    if _is_complex(x):
        return real(t * (conj(x) / _nonzero(ans)))
    return t * np.where(_plainv(x) >= 0, 1.0, -1.0).astype(_dtype(x))


def _sinc_maclaurin_fun(x, k):
    """The k-th derivative of sin(u)/u at u = 0, shaped like ``x``: (-1)^(k/2)/(k+1) for even k, 0 for odd k."""
    c = 0.0 if k % 2 else (-1.0) ** (k // 2) / (k + 1)
    return np.zeros_like(x) + c


def _fmax_mask(x, y):        # where fmax takes x (ties and a NaN in y go to y and x as jnp.fmax)
    xv, yv = _plainv(x), _plainv(y)
    return ((xv > yv) | np.isnan(yv)).astype(np.result_type(xv, yv))


def _fmin_mask(x, y):
    xv, yv = _plainv(x), _plainv(y)
    return ((xv < yv) | np.isnan(yv)).astype(np.result_type(xv, yv))


def _flip_last(x):
    return getitem(x, (Ellipsis, slice(None, None, -1)))


def _exclusive_cumprod_last(x):
    """``out[..., i] = prod(x[..., :i])`` by log2(n) vectorized multiplications (a Hillis-Steele scan)."""
    shape = _shape(x)
    n = shape[-1]
    out = concat(np.ones(shape[:-1] + (1,), dtype=_dtype(x)), getitem(x, (Ellipsis, slice(None, n - 1))), axis=-1)
    s = 1
    while s < n:
        ones = np.ones(shape[:-1] + (s,), dtype=_dtype(x))
        out = out * concat(ones, getitem(out, (Ellipsis, slice(None, n - s))), axis=-1)
        s *= 2
    return out


def _others_product(x, axis):
    """Each element's partner in ``prod(x, axis)``: the product of the other elements of its slice.

    Exact when the slice holds zeros (no division), and built from multiplications, so every order of
    derivative is exact too (as JAX's product rule).
    """
    shape = _shape(x)
    nd = len(shape)
    red = _axes(axis, nd)
    if not red or 0 in [shape[a] for a in red]:
        return np.ones(shape, dtype=_dtype(x))
    keep = tuple(a for a in range(nd) if a not in red)
    perm = keep + red
    moved = permute_dims(x, perm) if perm != tuple(range(nd)) else x
    flat = reshape(moved, tuple(shape[a] for a in keep) + (_count(x, red),))
    others = _exclusive_cumprod_last(flat) * _flip_last(_exclusive_cumprod_last(_flip_last(flat)))
    others = reshape(others, tuple(shape[a] for a in perm))
    return permute_dims(others, tuple(np.argsort(perm))) if perm != tuple(range(nd)) else others


def _flip_axis(x, axis):
    return getitem(x, (slice(None),) * axis + (slice(None, None, -1),))


def _cumsum_fun(x, axis=None):
    return np.cumsum(x, axis=axis)


def _cumsum_vjp(g, ans, x, axis=None):
    if axis is None:                    # cumsum of the flattened input
        return reshape(_flip_axis(cumsum(_flip_axis(g, 0), axis=0), 0), _shape(x))
    return _flip_axis(cumsum(_flip_axis(g, axis), axis=axis), axis)


def _prod_fun(x, axis=None, keepdims=False):
    return np.prod(x, axis=axis, keepdims=keepdims)


# elementwise, one argument
reciprocal = unary(np.reciprocal, lambda ans, x: -(ans * ans), reads="ans")
exp2 = unary(np.exp2, lambda ans, x: ans * _LN2, reads="ans")
log2 = unary(np.log2, lambda ans, x: 1.0 / (x * _LN2), reads="args")
log10 = unary(np.log10, lambda ans, x: 1.0 / (x * _LN10), reads="args")
arcsin = unary(np.arcsin, lambda ans, x: 1.0 / sqrt(1.0 - x * x), reads="args")
arccos = unary(np.arccos, lambda ans, x: -1.0 / sqrt(1.0 - x * x), reads="args")
arcsinh = unary(np.arcsinh, lambda ans, x: 1.0 / sqrt(x * x + 1.0), reads="args")
arccosh = unary(np.arccosh, lambda ans, x: 1.0 / sqrt((x - 1.0) * (x + 1.0)), reads="args")
arctanh = unary(np.arctanh, lambda ans, x: 1.0 / ((1.0 + x) * (1.0 - x)), reads="args")
cbrt = unary(np.cbrt, lambda ans, x: 1.0 / (3.0 * ans * ans), reads="ans")
fabs = unary(np.fabs, lambda ans, x: np.where(_plainv(x) >= 0, 1.0, -1.0).astype(_dtype(x)), reads="args")
deg2rad = unary(np.deg2rad, lambda ans, x: np.pi / 180.0, reads=())
rad2deg = unary(np.rad2deg, lambda ans, x: 180.0 / np.pi, reads=())
FUNCTIONS[np.radians], FUNCTIONS[np.degrees] = deg2rad, rad2deg
# sinc's derivatives at 0, order k (sinc itself is a composite in _numpy.py, as jnp.sinc)
sinc_maclaurin = define(_sinc_maclaurin_fun, "sinc_maclaurin", reads="args",
                        vjp=lambda g, ans, x, k: g * sinc_maclaurin(x, k + 1),
                        jvp=lambda t, ans, x, k: t * sinc_maclaurin(x, k + 1))

# complex numbers: JAX's transposes (a cotangent is not conjugated; real and imag send g and -i·g back)
real = define(np.real, "real", dispatch=np.real, reads="shape",
              vjp=lambda g, ans, x: _complex_like(g, x), jvp=lambda t, ans, x: real(t))
imag = define(np.imag, "imag", dispatch=np.imag, reads="shape",
              vjp=lambda g, ans, x: -1j * g if _is_complex(x) else g * 0.0, jvp=lambda t, ans, x: imag(t))
conj = define(np.conjugate, "conj", dispatch=np.conjugate, reads=(),
              vjp=lambda g, ans, x: conj(g), jvp=lambda t, ans, x: conj(t))

# elementwise, two broadcasting arguments
arctan2 = binary(np.arctan2, lambda ans, y, x: x / (x * x + y * y), lambda ans, y, x: -y / (x * x + y * y))
hypot = binary(np.hypot, lambda ans, x, y: where(_plainv(ans) == 0, 0.5, x / _nonzero(ans)),
               lambda ans, x, y: where(_plainv(ans) == 0, 0.5, y / _nonzero(ans)), reads=("ans", "args"))
logaddexp = binary(np.logaddexp, lambda ans, x, y: exp(x - ans), lambda ans, x, y: exp(y - ans), reads=("ans", "args"))
logaddexp2 = binary(np.logaddexp2, lambda ans, x, y: exp2(x - ans), lambda ans, x, y: exp2(y - ans),
                    reads=("ans", "args"))
fmax = binary(np.fmax, lambda ans, x, y: _fmax_mask(x, y), lambda ans, x, y: 1.0 - _fmax_mask(x, y))
fmin = binary(np.fmin, lambda ans, x, y: _fmin_mask(x, y), lambda ans, x, y: 1.0 - _fmin_mask(x, y))
remainder = binary(np.remainder, lambda ans, x, y: 1.0, lambda ans, x, y: -np.floor(_plainv(x) / _plainv(y)))
fmod = binary(np.fmod, lambda ans, x, y: 1.0, lambda ans, x, y: -np.trunc(_plainv(x) / _plainv(y)))

# reductions
prod = define(_prod_fun, "prod", reads="args",
              vjp=lambda g, ans, x, axis=None, keepdims=False: _restore(g, x, axis, keepdims) * _others_product(x, axis),
              jvp=lambda t, ans, x, axis=None, keepdims=False: sum(t * _others_product(x, axis), axis=axis,
                                                                   keepdims=keepdims))
cumsum = define(_cumsum_fun, "cumsum", reads="shape", vjp=_cumsum_vjp,
                jvp=lambda t, ans, x, axis=None: cumsum(t, axis=axis))
