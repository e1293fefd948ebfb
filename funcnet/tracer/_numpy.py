"""Traced arrays: :class:`ArrayBox` (the box with NumPy's operators and protocols) and the Array API namespace.

``box.__array_namespace__()`` returns :data:`namespace`, so code written as
``xp = array_namespace(x); xp.exp(x)`` runs on boxes exactly as it runs on NumPy or JAX arrays.
NumPy's own functions reach the rule table too: ``np.exp(box)`` through ``__array_ufunc__``,
``np.sort(box)`` through ``__array_function__``, and funcnet functions marked ``overridable``
(``funcnet.activations.log_softmax``) through ``__funcnet_function__``, each found by the function
object in :data:`funcnet.tracer._rules.FUNCTIONS`.

A traced value never leaves its trace silently: ``float(box)``, ``int``, ``bool``, ``np.asarray(box)``,
``box.item()``, ``math.exp(box)``, ``ndarray[i] = box`` raise :class:`ConcretizationError`, and a NumPy
function without a rule raises :class:`~funcnet.tracer._core.MissingRuleError`. Functions whose result
carries no gradient in JAX either (comparisons, ``argmax``, ``floor``, ``isfinite``) run on plain values.
"""

from __future__ import annotations

import math
import operator
import types

import numpy as np

from funcnet.tracer import _rules as R
from funcnet.tracer._core import Box, MissingRuleError, bind, strip

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
    n = R._count(x, _norm_axis(axis, len(_shape(x))))
    return sum(d * d, axis=axis, keepdims=keepdims) / (n - correction)


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
ZERO_GRADIENT_UFUNCS = {np.floor, np.ceil, np.rint, np.trunc}


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
class ArrayBox(Box):
    """A traced array: the operators, attributes and NumPy protocols of ``np.ndarray``, recorded."""

    __slots__ = ()
    __array_priority__ = 100.0

    # arithmetic: each operator binds its primitive (reflected ones with the operands swapped)
    def __add__(self, other): return bind(R.add, (self, other), _NO_KWARGS)
    def __radd__(self, other): return bind(R.add, (other, self), _NO_KWARGS)
    def __sub__(self, other): return bind(R.subtract, (self, other), _NO_KWARGS)
    def __rsub__(self, other): return bind(R.subtract, (other, self), _NO_KWARGS)
    def __mul__(self, other): return bind(R.multiply, (self, other), _NO_KWARGS)
    def __rmul__(self, other): return bind(R.multiply, (other, self), _NO_KWARGS)
    def __truediv__(self, other): return bind(R.divide, (self, other), _NO_KWARGS)
    def __rtruediv__(self, other): return bind(R.divide, (other, self), _NO_KWARGS)
    def __pow__(self, other): return bind(R.power, (self, other), _NO_KWARGS)
    def __rpow__(self, other): return bind(R.power, (other, self), _NO_KWARGS)
    def __matmul__(self, other): return bind(R.matmul, (self, other), _NO_KWARGS)
    def __rmatmul__(self, other): return bind(R.matmul, (other, self), _NO_KWARGS)
    def __neg__(self): return bind(R.negative, (self,), _NO_KWARGS)
    def __pos__(self): return self
    def __abs__(self): return bind(R.abs, (self,), _NO_KWARGS)
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
        return np.asarray(_concrete(self, "np.asarray()/np.array() (conversion to a NumPy array)"), dtype=dtype)

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
