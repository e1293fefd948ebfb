"""Traced arrays: `ArrayBox` (the box with NumPy's operators and protocols) and the Array API namespace.

``box.__array_namespace__()`` returns `namespace`, so code written as
``xp = array_namespace(x); xp.exp(x)`` runs on boxes exactly as it runs on NumPy or JAX arrays.
NumPy's own functions reach the rule table too: ``np.exp(box)`` through ``__array_ufunc__``,
``np.sort(box)`` through ``__array_function__``, and funcnet functions marked ``overridable``
(``funcnet.activations.log_softmax``) through ``__funcnet_function__``, each found by the function
object in `funcnet.tracer._rules.FUNCTIONS`.

A traced value never leaves its trace silently: ``float(box)``, ``int``, ``bool``, ``np.asarray(box)``,
``box.item()``, ``math.exp(box)``, ``ndarray[i] = box`` raise `ConcretizationError`, and a NumPy
function without a rule raises `funcnet.tracer._core.MissingRuleError`. Functions whose result
carries no gradient in JAX either (comparisons, ``argmax``, ``floor``, ``isfinite``) run on plain values.
"""

from __future__ import annotations

import math
import operator
import types

import numpy as np

from funcnet.tracer import _rules as R
from funcnet.tracer._core import Box, MissingRuleError, bind, recording, strip

__all__ = ["ArrayBox", "ConcretizationError", "namespace", "asarray"]

_NO_KWARGS: dict = {}


class ConcretizationError(TypeError):
    """A traced value was turned into a plain Python or NumPy value, which would lose its gradient."""


def _live(x) -> bool:
    """Whether any layer of boxes in ``x`` belongs to a trace that is still recording."""
    while isinstance(x, Box):
        if x.trace.live:
            return True
        x = x.value
    return False


def _concrete(self, what: str):
    if _live(self):
        raise ConcretizationError(
            f"{what} on a traced value would lose its gradient: it returns a plain value (JAX raises here too). "
            "Keep computing with the traced value (NumPy functions and operators work on it), or write "
            "tracer.stop_gradient(x) to read its plain value on purpose.")
    return strip(self)


def _plain(x):
    return np.asarray(strip(x))


def _shape(x):
    shape = getattr(x, "shape", None)
    return np.shape(x) if shape is None else shape


def _norm_axis(axis, ndim):
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        return tuple(int(a) % ndim for a in axis)
    return int(axis) % ndim if ndim else int(axis)


def _shape_args(shape):
    return shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


# ------------------------------------------------------ the namespace: composite functions

def asarray(x, dtype=None, copy=None):
    """Boxes pass through (cast when ``dtype`` differs); anything else becomes a NumPy array."""
    if isinstance(x, Box):
        return x if dtype is None or np.dtype(dtype) == x.dtype else R.astype(x, dtype)
    return np.asarray(x, dtype=dtype)


def astype(x, dtype, copy=True):
    return R.astype(x, dtype) if isinstance(x, Box) else np.asarray(x).astype(dtype)


def _reduction(prim):
    def reduce(x, axis=None, keepdims=False):
        ndim = len(_shape(x))
        return prim(x, axis=_norm_axis(axis, ndim), keepdims=bool(keepdims))
    reduce.__name__ = prim.name
    return reduce


sum = _reduction(R.sum)  # noqa: A001
mean = _reduction(R.mean)
max = _reduction(R.max)  # noqa: A001
min = _reduction(R.min)  # noqa: A001


def var(x, axis=None, correction=0.0, keepdims=False):
    m = mean(x, axis=axis, keepdims=True)
    d = x - m
    sq = R.real(d) ** 2 + R.imag(d) ** 2 if R._is_complex(d) else d * d   # |x - mean|², real (as NumPy)
    n = R._count(x, _norm_axis(axis, len(_shape(x))))
    return sum(sq, axis=axis, keepdims=keepdims) / (n - correction)


def std(x, axis=None, correction=0.0, keepdims=False):
    return R.sqrt(var(x, axis=axis, correction=correction, keepdims=keepdims))


def reshape(x, shape, copy=None):
    return R.reshape(x, tuple(shape) if isinstance(shape, (list, tuple)) else (shape,))


def permute_dims(x, axes):
    return R.permute_dims(x, tuple(int(a) for a in axes))


def transpose(x, axes=None):
    nd = len(_shape(x))
    return permute_dims(x, tuple(range(nd))[::-1] if axes is None else axes)


def matrix_transpose(x):
    nd = len(_shape(x))
    axes = list(range(nd))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return permute_dims(x, axes)


def swapaxes(x, axis1, axis2):
    nd = len(_shape(x))
    axes = list(range(nd))
    a, b = axis1 % nd, axis2 % nd
    axes[a], axes[b] = axes[b], axes[a]
    return permute_dims(x, axes)


def expand_dims(x, axis=0):
    shape = list(_shape(x))
    ax = axis % (len(shape) + 1)
    shape.insert(ax, 1)
    return R.reshape(x, tuple(shape))


def squeeze(x, axis=None):
    shape = _shape(x)
    if axis is None:
        axes = {i for i, n in enumerate(shape) if n == 1}
    else:
        axes = set(_norm_axis(axis if isinstance(axis, tuple) else (axis,), len(shape)))
        bad = [a for a in axes if shape[a] != 1]
        if bad:
            raise ValueError(f"squeeze: axis {bad[0]} has size {shape[bad[0]]}, expected 1 (shape {shape})")
    return R.reshape(x, tuple(n for i, n in enumerate(shape) if i not in axes))


def broadcast_to(x, shape):
    return R.broadcast_to(x, tuple(shape))


def concat(arrays, axis=0):
    arrays = list(arrays)
    if axis is None:
        return R.concat(*[reshape(a, (-1,)) for a in arrays], axis=0)
    return R.concat(*arrays, axis=axis)


def stack(arrays, axis=0):
    return R.stack(*list(arrays), axis=axis)


def clip(x, min=None, max=None):  # noqa: A002
    """As ``jnp.clip``: ``minimum(maximum(x, min), max)``, so a value at a bound gets gradient 0.5."""
    if min is not None:
        x = R.maximum(min, x)
    if max is not None:
        x = R.minimum(max, x)
    return x


def tensordot(x, y, axes=2):
    """``tensordot`` as a permute, a reshape and one ``matmul`` (so its gradient needs no rule)."""
    xs, ys = _shape(x), _shape(y)
    if isinstance(axes, int):
        ax = list(range(len(xs) - axes, len(xs)))
        ay = list(range(axes))
    else:
        ax, ay = axes
        ax = [a % len(xs) for a in ([ax] if isinstance(ax, int) else ax)]
        ay = [a % len(ys) for a in ([ay] if isinstance(ay, int) else ay)]
    fx = [i for i in range(len(xs)) if i not in ax]
    fy = [i for i in range(len(ys)) if i not in ay]
    k = math.prod(xs[a] for a in ax)
    x2 = R.reshape(R.permute_dims(x, tuple(fx + ax)), (math.prod(xs[i] for i in fx), k))
    y2 = R.reshape(R.permute_dims(y, tuple(ay + fy)), (k, math.prod(ys[i] for i in fy)))
    return R.reshape(R.matmul(x2, y2), tuple(xs[i] for i in fx) + tuple(ys[i] for i in fy))


def vecdot(x, y, axis=-1):
    return sum(x * y, axis=axis)


def logsumexp(x, axis=None, keepdims=False):
    """log Σ exp(x), stable: the maximum is subtracted (and held constant, as in JAX)."""
    m = R.max(_plain(x), axis=_norm_axis(axis, len(_shape(x))), keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = R.log(sum(R.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else squeeze(out, axis=axis) if axis is not None else reshape(out, ())


def sort(x, axis=-1, descending=False, stable=True):
    """Sorted along ``axis``; the gradient goes back to where each element came from."""
    if axis is None:
        x, axis = reshape(x, (-1,)), -1
    out = R.sort(x, axis=int(axis))
    if descending:
        nd = len(_shape(out))
        out = R.getitem(out, (slice(None),) * (int(axis) % nd) + (slice(None, None, -1),))
    return out


def take_along_axis(x, indices, axis=-1):
    return R.take_along_axis(x, np.asarray(strip(indices)), int(axis))


def _plain_fn(fun, name):
    def f(*args, **kwargs):
        return fun(*[strip(a) if not isinstance(a, (list, tuple)) else [strip(b) for b in a] for a in args],
                   **{k: strip(v) for k, v in kwargs.items()})
    f.__name__ = name
    return f


# results that carry no gradient (as in JAX): computed on the plain values
PLAIN = ("zeros_like", "ones_like", "full_like", "empty_like", "isnan", "isinf", "isfinite", "argmax", "argmin",
         "argsort", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and",
         "logical_or", "logical_not", "any", "all", "floor", "ceil", "round", "trunc", "rint", "result_type",
         "nonzero", "count_nonzero", "allclose", "isclose", "array_equal", "shape", "ndim", "size")
ZERO_GRADIENT_UFUNCS = {np.floor, np.ceil, np.rint, np.trunc, np.less, np.less_equal, np.greater, np.greater_equal,
                        np.equal, np.not_equal, np.isfinite, np.isnan, np.isinf, np.signbit, np.logical_and,
                        np.logical_or, np.logical_not, np.logical_xor}


def _make_namespace():
    ns = types.SimpleNamespace(__name__="funcnet.tracer.numpy", __doc__="The Array API namespace of traced values.")
    for name, p in R.PRIMITIVES.items():
        if name not in ("getitem", "scatter_add", "put_along_axis_add"):
            setattr(ns, name, p)
    composite = dict(
        asarray=asarray, astype=astype, sum=sum, mean=mean, max=max, min=min, var=var, std=std,
        reshape=reshape, permute_dims=permute_dims, transpose=transpose, matrix_transpose=matrix_transpose,
        swapaxes=swapaxes, expand_dims=expand_dims, squeeze=squeeze, broadcast_to=broadcast_to,
        concat=concat, concatenate=concat, stack=stack, clip=clip, tensordot=tensordot, vecdot=vecdot,
        logsumexp=logsumexp, absolute=R.abs, pow=R.power, power=R.power, true_divide=R.divide,
        positive=lambda x: x, sort=sort, take_along_axis=take_along_axis,
    )
    for k, v in composite.items():
        setattr(ns, k, v)
    for name in ("zeros", "ones", "full", "empty", "arange", "linspace", "eye"):
        setattr(ns, name, getattr(np, name))
    for name in PLAIN:
        setattr(ns, name, _plain_fn(getattr(np, name), name))
    ns.unique_values = _plain_fn(np.unique, "unique_values")
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
                 "complex64", "complex128", "pi", "e", "inf", "nan", "newaxis", "finfo", "iinfo"):
        setattr(ns, name, getattr(np, name))
    ns.__array_api_version__ = "2023.12"
    return ns


namespace = _make_namespace()


# --------------------------------------------------- NumPy's functions on traced values
def _np_reduction(fn):
    def f(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        if out is not None:
            raise TypeError("numpy reductions with out= would modify a value in place; traced values are immutable")
        return fn(a, axis=axis, keepdims=keepdims)
    return f


def _np_sort(a, axis=-1, kind=None, order=None, **kw):
    return sort(a, axis=axis)


NUMPY_FUNCTIONS = {
    np.sum: _np_reduction(sum), np.mean: _np_reduction(mean), np.max: _np_reduction(max),
    np.min: _np_reduction(min), np.amax: _np_reduction(max), np.amin: _np_reduction(min),
    np.reshape: lambda a, shape=None, *args, **kw: reshape(a, shape if shape is not None else kw["newshape"]),
    np.transpose: transpose, np.expand_dims: expand_dims, np.squeeze: squeeze,
    np.swapaxes: swapaxes, np.matrix_transpose: matrix_transpose,
    np.concatenate: lambda arrays, axis=0, **kw: concat(arrays, axis=axis),
    np.concat: lambda arrays, axis=0, **kw: concat(arrays, axis=axis),
    np.stack: lambda arrays, axis=0, **kw: stack(arrays, axis=axis),
    np.where: lambda c, x, y: R.where(_plain(c), x, y),
    np.clip: lambda a, a_min=None, a_max=None, **kw: clip(a, kw.get("min", a_min), kw.get("max", a_max)),
    np.tensordot: tensordot, np.broadcast_to: lambda a, shape, **kw: broadcast_to(a, shape),
    np.var: lambda a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw:
        var(a, axis=axis, correction=ddof, keepdims=keepdims),
    np.std: lambda a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw:
        std(a, axis=axis, correction=ddof, keepdims=keepdims),
    np.sort: _np_sort, np.take_along_axis: lambda arr, indices, axis=-1: take_along_axis(arr, indices, axis),
    np.array2string: _plain_fn(np.array2string, "array2string"), np.array_repr: _plain_fn(np.array_repr, "array_repr"),
    np.array_str: _plain_fn(np.array_str, "array_str"),
}
for _name in PLAIN:
    NUMPY_FUNCTIONS.setdefault(getattr(np, _name), getattr(namespace, _name))


def _missing(what: str) -> MissingRuleError:
    short = what.split(".")[-1]
    return MissingRuleError(
        f"the tracer has no derivative rule for {what}. Use funcnet.tracer.numpy (the namespace of "
        "traced values), or register a rule, e.g.\n"
        "    from funcnet import tracer\n"
        f"    tracer.defvjp({what}, lambda g, ans, x, *rest, **kw: ...)   # cotangent of x\n"
        f"after which {short}(...) on traced values uses the new rule.")


# --------------------------------------------------------------------------- the box
def _operators(prim):
    """``(x.__op__, x.__rop__)`` for a binary primitive: ``prim(self, other)`` and ``prim(other, self)``.

    Each is `funcnet.tracer._core.bind` with one shortcut: when ``other`` is a plain value, the
    innermost trace is ``self``'s, which takes the call at once (the scalar chain's every step).
    """
    def op(self, other):
        trace = self.trace
        if trace.live and not isinstance(other, Box) and recording.enabled:
            return trace.process(prim, (self, other), _NO_KWARGS)
        return bind(prim, (self, other), _NO_KWARGS)

    def rop(self, other):
        trace = self.trace
        if trace.live and not isinstance(other, Box) and recording.enabled:
            return trace.process(prim, (other, self), _NO_KWARGS)
        return bind(prim, (other, self), _NO_KWARGS)

    return op, rop


def _unary_operator(prim):
    """``x.__op__()`` for a one-argument primitive, bound as in `_operators`."""
    def op(self):
        trace = self.trace
        if trace.live and recording.enabled:
            return trace.process(prim, (self,), _NO_KWARGS)
        return bind(prim, (self,), _NO_KWARGS)

    return op


class ArrayBox(Box):
    """A traced array: the operators, attributes and NumPy protocols of ``np.ndarray``, recorded."""

    __slots__ = ()
    __array_priority__ = 100.0

    # arithmetic: each operator binds its primitive (reflected ones with the operands swapped)
    __add__, __radd__ = _operators(R.add)
    __sub__, __rsub__ = _operators(R.subtract)
    __mul__, __rmul__ = _operators(R.multiply)
    __truediv__, __rtruediv__ = _operators(R.divide)
    __pow__, __rpow__ = _operators(R.power)
    __matmul__, __rmatmul__ = _operators(R.matmul)
    __neg__ = _unary_operator(R.negative)
    __abs__ = _unary_operator(R.abs)
    def __pos__(self): return self
    def __getitem__(self, idx): return R.getitem(self, strip(idx) if isinstance(idx, Box) else idx)

    # comparisons carry no gradient: plain boolean arrays (so ``if x > 0:`` works, as in NumPy)
    def __lt__(self, other): return strip(self) < strip(other)
    def __le__(self, other): return strip(self) <= strip(other)
    def __gt__(self, other): return strip(self) > strip(other)
    def __ge__(self, other): return strip(self) >= strip(other)
    def __eq__(self, other): return strip(self) == strip(other)
    def __ne__(self, other): return strip(self) != strip(other)
    __hash__ = None

    # leaving the trace is an error (no silent zero gradient)
    def __float__(self): return float(_concrete(self, "float()"))
    def __int__(self): return int(_concrete(self, "int()"))
    def __complex__(self): return complex(_concrete(self, "complex()"))
    def __bool__(self): return bool(_concrete(self, "bool() (an if/while on a traced value)"))
    def __index__(self): return operator.index(_concrete(self, "operator.index() (use as an index)"))
    def item(self, *args): return _concrete(self, "x.item()").item(*args)
    def tolist(self): return np.asarray(_concrete(self, "x.tolist()")).tolist()

    def __array__(self, dtype=None, copy=None):
        return np.asarray(_concrete(self, "np.asarray()/np.array()/np.r_/np.c_ (conversion to a NumPy array; build "
                                          "arrays of traced values with np.stack([...]) or np.concatenate([...]))"),
                          dtype=dtype)

    def __setitem__(self, idx, value):
        raise TypeError("traced values are immutable (in-place assignment would hide the change from the "
                        "gradient); build a new value instead, e.g. with tracer.numpy.where(mask, new, x)")

    __delitem__ = __setitem__

    def __len__(self): return len(strip(self))

    def __iter__(self):
        n = _shape(self)
        if not n:
            raise TypeError("iteration over a 0-d traced value")
        return (R.getitem(self, i) for i in range(n[0]))

    def __repr__(self):
        return (f"ArrayBox({np.array2string(np.asarray(strip(self)), precision=6, threshold=8)}, "
                f"level={self.trace.level}" + (f", op={self.prim.name})" if self.prim is not None else ")"))

    # attributes
    @property
    def shape(self):
        v = self.value
        return v.shape if type(v) is np.ndarray else np.shape(strip(v))

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.size(strip(self))))
    dtype = property(lambda self: np.result_type(strip(self)))
    T = property(lambda self: transpose(self))
    mT = property(lambda self: matrix_transpose(self))

    def astype(self, dtype, copy=True): return R.astype(self, dtype)
    def reshape(self, *shape): return reshape(self, _shape_args(shape))
    def transpose(self, *axes): return transpose(self, _shape_args(axes) or None)
    def sum(self, axis=None, keepdims=False): return sum(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return mean(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return max(self, axis=axis, keepdims=keepdims)
    def min(self, axis=None, keepdims=False): return min(self, axis=axis, keepdims=keepdims)

    # protocols: NumPy's functions, funcnet's overridable functions, the Array API
    def __array_namespace__(self, api_version=None): return namespace

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        prim = R.FUNCTIONS.get(ufunc)
        if prim is not None and method == "__call__" and not kwargs:
            return prim(*inputs)         # the common case: a differentiable ufunc
        if kwargs.get("out") is not None:
            raise TypeError(f"numpy.{ufunc.__name__}(..., out=...) would modify a traced value in place; traced "
                            "values are immutable. Compute a new value instead (y = x + 1).")
        if method == "__call__" and (ufunc in ZERO_GRADIENT_UFUNCS or all(t.endswith("?") for t in ufunc.types)
                                     or not any(_live(a) for a in inputs)):
            return ufunc(*[strip(a) for a in inputs], **kwargs)   # no gradient, as in JAX (or no live trace)
        raise _missing(f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}"))

    def __array_function__(self, func, types_, args, kwargs):
        impl = NUMPY_FUNCTIONS.get(func) or R.FUNCTIONS.get(func)
        if impl is None:
            raise _missing(f"numpy.{getattr(func, '__name__', repr(func))}")
        return impl(*args, **kwargs)

    def __funcnet_function__(self, func, args, kwargs):
        impl = R.FUNCTIONS.get(func)
        return impl(*args, **kwargs) if impl is not None else func.__wrapped__(*args, **kwargs)


    # ===== NumPy breadth (issue 16): methods of ndarray =====
    real = property(lambda self: R.real(self))
    imag = property(lambda self: R.imag(self))
    def conj(self): return R.conj(self)
    conjugate = conj
    def dot(self, other): return namespace.dot(self, other)       # numpy.dot, from the linear-algebra part
    def ravel(self, order="C"): return ravel(self, order)
    def flatten(self, order="C"): return ravel(self, order)
    def squeeze(self, axis=None): return squeeze(self, axis)
    def swapaxes(self, axis1, axis2): return swapaxes(self, axis1, axis2)
    def repeat(self, repeats, axis=None): return repeat(self, repeats, axis)
    def take(self, indices, axis=None, out=None, mode="raise"): return take(self, indices, axis, out, mode)
    def clip(self, min=None, max=None, out=None, **kw): return _np_clip(self, min, max, out=out, **kw)  # noqa: A002
    def prod(self, axis=None, dtype=None, out=None, keepdims=False): return _np_prod(self, axis, keepdims=keepdims, out=out)
    def cumsum(self, axis=None, dtype=None, out=None): return cumsum(self, axis, out=out)
    def cumprod(self, axis=None, dtype=None, out=None): return cumprod(self, axis, out=out)
    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return _np_var(self, axis, out=out, ddof=ddof, keepdims=keepdims)
    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return _np_std(self, axis, out=out, ddof=ddof, keepdims=keepdims)
    def argmax(self, axis=None, **kw): return np.argmax(strip(self), axis=axis, **kw)
    def argmin(self, axis=None, **kw): return np.argmin(strip(self), axis=axis, **kw)
    def argsort(self, axis=-1, **kw): return np.argsort(strip(self), axis=axis, **kw)
    def nonzero(self): return np.nonzero(strip(self))
    def round(self, decimals=0): return np.round(strip(self), decimals)
    def any(self, *args, **kw): return np.any(strip(self), *args, **kw)
    def all(self, *args, **kw): return np.all(strip(self), *args, **kw)
    def copy(self): return self
    def diagonal(self, *args, **kw): return np.diagonal(self, *args, **kw)

    def sort(self, *args, **kw):
        raise TypeError("x.sort() sorts in place, and traced values are immutable; write x = np.sort(x) instead")

    def fill(self, value):
        raise TypeError("x.fill() modifies in place, and traced values are immutable; write np.full_like(x, v) "
                        "or np.where(mask, v, x) instead")


# ===== NumPy breadth (issue 16): composite functions, NumPy dispatch and namespace entries =====
# Each composite is written with primitives of the rule table (R.*), so its derivatives of every order,
# forward and reverse, follow from theirs; none loops over elements.

def _no_out(out, name):
    if out is not None:
        raise TypeError(f"numpy.{name}(..., out=...) would write into an array in place; traced values are "
                        "immutable. Use the returned value instead.")


def _axis_of(x, axis):
    nd = len(_shape(x))
    return int(axis) % nd if nd else int(axis)


def _along(x, axis, index):
    """``x`` indexed by ``index`` (a slice or an integer array) along ``axis``: one getitem."""
    return R.getitem(x, (slice(None),) * _axis_of(x, axis) + (index,))


def ravel(a, order="C"):
    """``a`` flattened: a reshape (``order="F"`` reverses the axes first)."""
    if order == "F":
        a = transpose(a)
    elif order not in ("C", "A", "K"):
        raise ValueError(f"ravel: order must be 'C', 'F', 'A' or 'K', got {order!r}")
    return R.reshape(a, (-1,))


def moveaxis(a, source, destination):
    nd = len(_shape(a))
    src = [int(s) % nd for s in np.atleast_1d(source)]
    dst = [int(d) % nd for d in np.atleast_1d(destination)]
    if len(src) != len(dst):
        raise ValueError(f"moveaxis: source {source!r} and destination {destination!r} need the same length")
    order = [n for n in range(nd) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute_dims(a, order)


def _np_expand_dims(a, axis):
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    nd = len(_shape(a)) + len(axes)
    axes = sorted(int(ax) % nd for ax in axes)
    shape = list(_shape(a))
    for ax in axes:
        shape.insert(ax, 1)
    return R.reshape(a, tuple(shape))


def repeat(a, repeats, axis=None):
    """Each element repeated: a gather with ``np.repeat(arange(n), repeats)`` (its VJP sums the copies)."""
    if axis is None:
        a, axis = ravel(a), 0
    n = _shape(a)[_axis_of(a, axis)]
    return _along(a, axis, np.repeat(np.arange(n), np.asarray(strip(repeats))))


def tile(a, reps):
    """``a`` tiled: one gather whose index on each axis is ``np.tile(arange(n), r)``."""
    reps = (int(reps),) if np.ndim(reps) == 0 else tuple(int(r) for r in reps)
    shape = _shape(a)
    nd = len(shape) if len(shape) > len(reps) else len(reps)
    shape = (1,) * (nd - len(shape)) + tuple(shape)
    reps = (1,) * (nd - len(reps)) + reps
    a = R.reshape(a, shape)
    return R.getitem(a, np.ix_(*[np.tile(np.arange(n), r) for n, r in zip(shape, reps)])) if nd else a


def flip(m, axis=None):
    nd = len(_shape(m))
    axes = range(nd) if axis is None else [int(ax) % nd for ax in np.atleast_1d(axis)]
    idx = [slice(None)] * nd
    for ax in axes:
        idx[ax] = slice(None, None, -1)
    return R.getitem(m, tuple(idx))


def rot90(m, k=1, axes=(0, 1)):
    """Rotated by 90° k times in the plane of ``axes``: flips and a transpose, as NumPy does it."""
    nd = len(_shape(m))
    a0, a1 = int(axes[0]) % nd, int(axes[1]) % nd
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(nd))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    return permute_dims(flip(m, a1), perm) if k == 1 else flip(permute_dims(m, perm), a1)


def roll(a, shift, axis=None):
    """Rolled: a gather with the index ``(arange(n) - shift) % n`` on each axis."""
    if axis is None:
        return R.reshape(roll(ravel(a), shift, 0), _shape(a))
    shifts, axes = np.broadcast_arrays(np.atleast_1d(shift), np.atleast_1d(axis))
    for s, ax in zip(shifts, axes):
        n = _shape(a)[_axis_of(a, ax)]
        a = _along(a, ax, (np.arange(n) - int(s)) % n) if n else a
    return a


def pad(array, pad_width, mode="constant", constant_values=0, **kw):
    """Padded: constant blocks concatenated (``constant``), or a gather by NumPy's own padding of ``arange(n)``.

    The gather serves the modes ``edge``, ``reflect``, ``symmetric`` and ``wrap``; others raise ``NotImplementedError``.
    """
    shape = _shape(array)
    nd = len(shape)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (nd, 2))
    if mode == "constant":
        values = np.broadcast_to(np.asarray(strip(constant_values)), (nd, 2))
        for ax, ((before, after), (cb, ca)) in enumerate(zip(widths, values)):
            s = list(_shape(array))
            parts = []
            if before:
                parts.append(np.full(s[:ax] + [before] + s[ax + 1:], cb, dtype=_dtype_of(array)))
            parts.append(array)
            if after:
                parts.append(np.full(s[:ax] + [after] + s[ax + 1:], ca, dtype=_dtype_of(array)))
            array = R.concat(*parts, axis=ax) if len(parts) > 1 else array
        return array
    if mode not in ("edge", "reflect", "symmetric", "wrap") or kw:
        raise NotImplementedError(f"np.pad(mode={mode!r}{', ' + ', '.join(kw) if kw else ''}) on traced values: "
                                  "the tracer supports the modes constant, edge, reflect, symmetric and wrap")
    for ax, (before, after) in enumerate(widths):
        if before or after:
            array = _along(array, ax, np.pad(np.arange(shape[ax]), (int(before), int(after)), mode=mode))
    return array


def _dtype_of(x):
    return R._dtype(x)


def _tri_mask(x, k, lower):
    n, m = _shape(x)[-2:]
    return np.tri(n, m, k, dtype=bool) if lower else ~np.tri(n, m, k - 1, dtype=bool)


def tril(m, k=0):
    """The lower triangle: ``where(mask, m, 0)`` (the gradient is masked too, as in JAX)."""
    return R.where(_tri_mask(m, k, True), m, np.zeros((), dtype=_dtype_of(m)))


def triu(m, k=0):
    return R.where(_tri_mask(m, k, False), m, np.zeros((), dtype=_dtype_of(m)))


def array_split(ary, indices_or_sections, axis=0):
    """Pieces along ``axis``: one slice (getitem) each, cut where ``np.array_split`` cuts."""
    n = _shape(ary)[_axis_of(ary, axis)]
    if np.ndim(indices_or_sections) == 0:
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError(f"array_split: number of sections must be larger than 0, got {sections}")
        sizes = [n // sections + 1] * (n % sections) + [n // sections] * (sections - n % sections)
        cuts = np.cumsum([0] + sizes)
    else:
        cuts = [0] + [int(i) for i in indices_or_sections] + [n]
    return [_along(ary, axis, slice(int(lo), int(hi))) for lo, hi in zip(cuts[:-1], cuts[1:])]


def split(ary, indices_or_sections, axis=0):
    if np.ndim(indices_or_sections) == 0:
        n = _shape(ary)[_axis_of(ary, axis)]
        if n % int(indices_or_sections):
            raise ValueError(f"array split does not result in an equal division: {n} elements into "
                             f"{int(indices_or_sections)} sections (np.array_split allows that)")
    return array_split(ary, indices_or_sections, axis)


def hsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, 1 if len(_shape(ary)) > 1 else 0)


def vsplit(ary, indices_or_sections):
    if len(_shape(ary)) < 2:
        raise ValueError(f"vsplit only works on arrays of 2 or more dimensions, got shape {_shape(ary)}")
    return split(ary, indices_or_sections, 0)


def dsplit(ary, indices_or_sections):
    if len(_shape(ary)) < 3:
        raise ValueError(f"dsplit only works on arrays of 3 or more dimensions, got shape {_shape(ary)}")
    return split(ary, indices_or_sections, 2)


def _atleast(x, nd):
    s = _shape(x)
    if len(s) >= nd:
        return x
    new = {1: (1,), 2: (1,) + tuple(s) if s else (1, 1), 3: (1, 1, 1) if not s else (1,) + tuple(s) + (1,)
           if len(s) == 1 else tuple(s) + (1,)}[nd]
    return R.reshape(x, new)


def _atleast_fn(nd):
    def atleast(*arys):
        out = [_atleast(a, nd) for a in arys]
        return out[0] if len(out) == 1 else tuple(out)
    atleast.__name__ = f"atleast_{nd}d"
    return atleast


atleast_1d, atleast_2d, atleast_3d = _atleast_fn(1), _atleast_fn(2), _atleast_fn(3)


def hstack(tup, **kw):
    arrs = [_atleast(a, 1) for a in tup]
    return concat(arrs, axis=0 if all(len(_shape(a)) == 1 for a in arrs) else 1)


def vstack(tup, **kw):
    return concat([_atleast(a, 2) for a in tup], axis=0)


def dstack(tup, **kw):
    return concat([_atleast(a, 3) for a in tup], axis=2)


def column_stack(tup):
    return concat([R.reshape(a, (-1, 1)) if len(_shape(a)) < 2 else a for a in tup], axis=1)


def append(arr, values, axis=None):
    if axis is None:
        return concat([ravel(arr), ravel(values)], axis=0)
    return concat([arr, values], axis=axis)


def partition(a, kth, axis=-1, **kw):
    """As ``np.partition``, read through ``np.argpartition`` of the plain values (the gradient follows each element)."""
    if axis is None:
        a, axis = ravel(a), -1
    return R.take_along_axis(a, np.argpartition(np.asarray(strip(a)), kth, axis=axis), int(axis))


def take(a, indices, axis=None, out=None, mode="raise"):
    """Elements at ``indices`` (a gather; ``mode="wrap"``/``"clip"`` adjust the plain indices first)."""
    _no_out(out, "take")
    if axis is None:
        a, axis = ravel(a), 0
    idx = np.asarray(strip(indices))
    n = _shape(a)[_axis_of(a, axis)]
    idx = idx % n if mode == "wrap" else np.clip(idx, 0, n - 1) if mode == "clip" else idx
    return _along(a, axis, idx)


def _np_prod(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _no_out(out, "prod")
    return R.prod(a, axis=_norm_axis(axis, len(_shape(a))), keepdims=bool(keepdims))


def cumsum(a, axis=None, dtype=None, out=None):
    _no_out(out, "cumsum")
    return R.cumsum(a, axis=None if axis is None else _axis_of(a, axis))


def cumprod(a, axis=None, dtype=None, out=None):
    """Running products: a log2(n)-step scan of multiplications (exact derivatives with zeros, as JAX's)."""
    _no_out(out, "cumprod")
    if axis is None:
        a, axis = ravel(a), 0
    if not isinstance(a, Box):
        return np.cumprod(a, axis=axis)
    ax = _axis_of(a, axis)
    moved = moveaxis(a, ax, -1)
    scan = R._exclusive_cumprod_last(moved) * moved
    return moveaxis(scan, -1, ax)


def _np_var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    _no_out(out, "var")
    return var(a, axis=axis, correction=ddof, keepdims=keepdims)


def _np_std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    _no_out(out, "std")
    return std(a, axis=axis, correction=ddof, keepdims=keepdims)


def _np_clip(a, a_min=None, a_max=None, out=None, **kw):
    _no_out(out, "clip")
    return clip(a, kw.get("min", a_min), kw.get("max", a_max))


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """The middle of the sorted values (the mean of the two middle ones for an even count), through ``sort``."""
    _no_out(out, "median")
    s = sort(a, axis=-1 if axis is None else axis)
    ax = -1 if axis is None else _axis_of(a, axis)
    n = _shape(s)[ax]
    mid = mean(_along(s, ax, slice((n - 1) // 2, n // 2 + 1)), axis=ax, keepdims=True)
    if keepdims:
        return mid if axis is not None else R.reshape(mid, (1,) * len(_shape(a)))
    return squeeze(mid, axis=ax) if axis is not None else R.reshape(mid, ())


def average(a, axis=None, weights=None, returned=False, keepdims=False):
    """``sum(a·w, axis) / sum(w, axis)``; 1-D ``weights`` lie along ``axis``, as in NumPy."""
    if weights is None:
        avg = mean(a, axis=axis, keepdims=keepdims)
        scl = np.full(_shape(avg), R._count(a, _norm_axis(axis, len(_shape(a)))), dtype=_dtype_of(avg))
    else:
        w = weights
        if len(_shape(w)) == 1 and len(_shape(a)) > 1 and axis is not None and not isinstance(axis, tuple):
            w = R.reshape(w, tuple(_shape(w)[0] if i == _axis_of(a, axis) else 1 for i in range(len(_shape(a)))))
        scl = sum(R.broadcast_to(w, np.broadcast_shapes(_shape(w), _shape(a))), axis=axis, keepdims=keepdims)
        avg = sum(a * w, axis=axis, keepdims=keepdims) / scl
    return (avg, scl) if returned else avg


def sinc(x):
    """``sin(πx)/(πx)`` with the value 1 at 0, and every derivative at 0 from its Maclaurin series (as ``jnp.sinc``)."""
    at0 = np.asarray(strip(x)) == 0
    pix = np.pi * x
    safe = R.where(at0, 1.0, pix)
    return R.where(at0, R.sinc_maclaurin(pix, 0), R.sin(safe) / safe)


def angle(z, deg=False):
    """The argument of ``z``: ``arctan2(imag z, real z)`` (in degrees when ``deg``)."""
    a = R.arctan2(R.imag(z), R.real(z))
    return a * (180.0 / np.pi) if deg else a


def diff(a, n=1, axis=-1, **kw):
    """Differences of neighbours along ``axis``, ``n`` times: slices and a subtraction."""
    if kw:
        raise NotImplementedError("np.diff(..., prepend=/append=) on traced values: concatenate first, then diff")
    for _ in range(n):
        a = _along(a, axis, slice(1, None)) - _along(a, axis, slice(None, -1))
    return a


def _nan_to(value):
    def f(a, *args, **kw):
        return R.where(np.isnan(np.asarray(strip(a))), value, a)
    return f


# no gradient, as in JAX: NumPy functions computed on the plain values, and ufuncs run on them
_PLAIN_MORE = (np.fix, np.argpartition, np.around, np.searchsorted, np.digitize, np.flatnonzero, np.argwhere,
               np.unique, np.isreal, np.iscomplex, np.isneginf, np.isposinf, np.array_equiv, np.real_if_close)
ZERO_GRADIENT_UFUNCS.update({np.floor_divide, np.heaviside, np.signbit, np.less, np.less_equal, np.greater,
                             np.greater_equal, np.equal, np.not_equal, np.logical_and, np.logical_or,
                             np.logical_xor, np.logical_not, np.isnan, np.isinf, np.isfinite})

NUMPY_FUNCTIONS.update({
    np.prod: _np_prod, np.cumsum: cumsum, np.cumprod: cumprod, np.var: _np_var, np.std: _np_std, np.clip: _np_clip,
    np.ravel: ravel, np.moveaxis: moveaxis, np.expand_dims: _np_expand_dims, np.repeat: repeat, np.tile: tile,
    np.flip: flip, np.fliplr: lambda m: flip(m, 1), np.flipud: lambda m: flip(m, 0), np.rot90: rot90,
    np.roll: roll, np.pad: pad, np.tril: tril, np.triu: triu, np.split: split, np.array_split: array_split,
    np.hsplit: hsplit, np.vsplit: vsplit, np.dsplit: dsplit, np.hstack: hstack, np.vstack: vstack,
    np.dstack: dstack, np.column_stack: column_stack, np.append: append, np.atleast_1d: atleast_1d,
    np.atleast_2d: atleast_2d, np.atleast_3d: atleast_3d, np.partition: partition, np.take: take,
    np.median: median, np.average: average, np.sinc: sinc, np.angle: angle, np.diff: diff,
    np.nansum: lambda a, axis=None, dtype=None, out=None, keepdims=False, **kw:
        _np_reduction(sum)(_nan_to(0.0)(a), axis=axis, out=out, keepdims=keepdims),
    np.nanprod: lambda a, axis=None, dtype=None, out=None, keepdims=False, **kw:
        _np_prod(_nan_to(1.0)(a), axis=axis, out=out, keepdims=keepdims),
})
for _f in _PLAIN_MORE:
    NUMPY_FUNCTIONS.setdefault(_f, _plain_fn(_f, _f.__name__))

for _name, _f in dict(
        prod=_reduction(R.prod), cumsum=cumsum, cumulative_sum=cumsum, cumprod=cumprod, ravel=ravel,
        moveaxis=moveaxis, repeat=repeat, tile=tile, flip=flip, rot90=rot90, roll=roll, pad=pad, tril=tril,
        triu=triu, split=split, array_split=array_split, hsplit=hsplit, vsplit=vsplit, dsplit=dsplit,
        hstack=hstack, vstack=vstack, dstack=dstack, column_stack=column_stack, append=append,
        atleast_1d=atleast_1d, atleast_2d=atleast_2d, atleast_3d=atleast_3d, partition=partition, take=take,
        median=median, average=average, sinc=sinc, angle=angle, diff=diff, conjugate=R.conj, abs=R.abs,
        radians=R.deg2rad, degrees=R.rad2deg, mod=R.remainder, atan2=R.arctan2, asin=R.arcsin, acos=R.arccos,
        asinh=R.arcsinh, acosh=R.arccosh, atanh=R.arctanh, expand_dims=_np_expand_dims, amax=max, amin=min,
        var=lambda x, axis=None, correction=0.0, keepdims=False, ddof=None: var(
            x, axis=axis, correction=correction if ddof is None else ddof, keepdims=keepdims),
        std=lambda x, axis=None, correction=0.0, keepdims=False, ddof=None: std(
            x, axis=axis, correction=correction if ddof is None else ddof, keepdims=keepdims),
        nansum=NUMPY_FUNCTIONS[np.nansum], fix=_plain_fn(np.fix, "fix"), argpartition=_plain_fn(np.argpartition,
                                                                                                 "argpartition"),
        sign=R.sign, floor_divide=_plain_fn(np.floor_divide, "floor_divide")).items():
    setattr(namespace, _name, _f)

# ===== linear algebra (issue 16, part A): loads the table's linear-algebra part, fills the namespace =====
from funcnet.tracer import _linalg as _L  # noqa: E402  (here rather than in _rules.py: no import cycle)

for _name, _f in _L.NAMESPACE.items():
    setattr(namespace, _name, _f)
for _name in [k for k in vars(namespace) if k.startswith("linalg.")]:   # primitives, not namespace functions
    delattr(namespace, _name)
namespace.linalg = types.SimpleNamespace(__name__="funcnet.tracer.numpy.linalg", tensordot=tensordot, **_L.linalg)
namespace.einsum = _L.einsum
NUMPY_FUNCTIONS[np.linalg.tensordot] = tensordot
# ===== end of linear algebra =====

