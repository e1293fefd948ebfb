"""The tracer's Array API namespace, and the operators and NumPy protocols of boxes.

``box.__array_namespace__()`` returns :data:`namespace`, so code written as
``xp = array_namespace(x); xp.exp(x)`` runs on boxes exactly as it runs on NumPy or
JAX arrays. Functions here are either primitives of :mod:`._rules` (which have
derivative rules) or compositions of them (``clip``, ``tensordot``, ``logsumexp``,
``expand_dims``, ...), whose gradients therefore come for free. Functions whose
outputs carry no gradient (comparisons, ``argmax``, ``zeros_like``, dtypes,
constructors) work on the plain values.
"""

from __future__ import annotations

import builtins
import math
import types

import numpy as np

from funcnet.tracer import _core as _engine, _rules as R
from funcnet.tracer._core import STATE, Box, Primitive, apply2, strip

__all__ = ["namespace", "asarray"]


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


# ------------------------------------------------------ composite functions

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


def _plain_fn(fun, name):
    def f(*args, **kwargs):
        return fun(*[strip(a) if not isinstance(a, (list, tuple)) else [strip(b) for b in a] for a in args],
                   **{k: strip(v) for k, v in kwargs.items()})
    f.__name__ = name
    return f


def _make_namespace():
    ns = types.SimpleNamespace()
    ns.__name__ = "funcnet.tracer.numpy"
    ns.__doc__ = "The Array API namespace of funcnet.tracer boxes."
    for name, p in R.PRIMITIVES.items():
        if name in ("getitem", "scatter_add"):
            continue
        setattr(ns, name, p)
    composite = dict(
        asarray=asarray, astype=astype, sum=sum, mean=mean, max=max, min=min, var=var, std=std,
        reshape=reshape, permute_dims=permute_dims, transpose=transpose, matrix_transpose=matrix_transpose,
        swapaxes=swapaxes, expand_dims=expand_dims, squeeze=squeeze, broadcast_to=broadcast_to,
        concat=concat, concatenate=concat, stack=stack, clip=clip, tensordot=tensordot, vecdot=vecdot,
        logsumexp=logsumexp, absolute=R.abs, pow=R.power, power=R.power, true_divide=R.divide,
        positive=lambda x: x,
        stop_gradient=strip,    # an extension of the standard: x held constant (see funcnet._boundary.constant)
    )
    for k, v in composite.items():
        setattr(ns, k, v)
    for name in ("zeros", "ones", "full", "empty", "arange", "linspace", "eye"):
        setattr(ns, name, getattr(np, name))
    for name in ("zeros_like", "ones_like", "full_like", "empty_like", "isnan", "isinf", "isfinite",
                 "argmax", "argmin", "argsort", "sort", "equal", "not_equal", "less", "less_equal",
                 "greater", "greater_equal", "logical_and", "logical_or", "logical_not", "any", "all",
                 "floor", "ceil", "round", "result_type", "nonzero", "unique_values"):
        fun = getattr(np, name, None) or getattr(np, name.replace("_values", ""))
        setattr(ns, name, _plain_fn(fun, name))
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
                 "complex64", "complex128", "pi", "e", "inf", "nan", "newaxis", "finfo", "iinfo"):
        setattr(ns, name, getattr(np, name))
    ns.__array_api_version__ = "2023.12"
    return ns


namespace = _make_namespace()


# --------------------------------------------------- NumPy protocol tables

def _np_reduction(fn):
    def f(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        if out is not None:
            raise TypeError("traced values are immutable: out= is not supported")
        return fn(a, axis=axis, keepdims=keepdims)
    return f


NUMPY_FUNCTIONS = {
    np.sum: _np_reduction(sum), np.mean: _np_reduction(mean), np.max: _np_reduction(max),
    np.min: _np_reduction(min), np.amax: _np_reduction(max), np.amin: _np_reduction(min),
    np.reshape: lambda a, shape=None, *args, **kw: reshape(a, shape if shape is not None else kw["newshape"]),
    np.transpose: transpose, np.expand_dims: expand_dims, np.squeeze: squeeze,
    np.swapaxes: swapaxes, np.matrix_transpose: matrix_transpose,
    np.concatenate: lambda arrays, axis=0, **kw: concat(arrays, axis=axis),
    np.concat: lambda arrays, axis=0, **kw: concat(arrays, axis=axis),
    np.stack: lambda arrays, axis=0, **kw: stack(arrays, axis=axis),
    np.where: lambda c, x, y: R.where(_plain(c), x, y), np.clip: lambda a, a_min=None, a_max=None, **kw:
        clip(a, kw.get("min", a_min), kw.get("max", a_max)),
    np.tensordot: tensordot, np.broadcast_to: lambda a, shape, **kw: broadcast_to(a, shape),
    np.var: lambda a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw:
        var(a, axis=axis, correction=ddof, keepdims=keepdims),
    np.std: lambda a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw:
        std(a, axis=axis, correction=ddof, keepdims=keepdims),
    np.shape: lambda a: a.shape, np.ndim: lambda a: a.ndim, np.size: lambda a, axis=None: a.size,
    np.result_type: lambda *a: np.result_type(*[strip(x) for x in a]),
}
for _name in ("zeros_like", "ones_like", "full_like", "empty_like", "isnan", "isinf", "isfinite", "argmax",
              "argmin", "argsort", "sort", "any", "all", "round", "nonzero", "allclose", "isclose",
              "array_equal", "array2string", "array_repr", "array_str", "copyto"):
    if _name != "copyto":
        NUMPY_FUNCTIONS[getattr(np, _name)] = getattr(namespace, _name, None) or _plain_fn(getattr(np, _name), _name)


def _unsupported(what: str) -> NotImplementedError:
    return NotImplementedError(
        f"the tracer has no derivative rule for {what}. Use funcnet.tracer.numpy (the namespace of "
        "traced values), or register a rule, e.g.\n"
        "    from funcnet import tracer\n"
        f"    {what.split('.')[-1].split(' ')[0]} = tracer.defvjp({what.split(' ')[0]}, "
        "lambda g, ans, x, *rest, **kw: ...)   # cotangent of x\n"
        "after which NumPy calls on traced values use the new rule."
    )


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    prim = R.UFUNCS.get(ufunc)
    if prim is not None and method == "__call__" and not kwargs and STATE.depth and STATE.enabled:
        return prim(*inputs)    # the common case: a differentiable ufunc called on traced values
    if kwargs.get("out") is not None:
        raise TypeError(
            f"numpy.{ufunc.__name__}(..., out=...) would modify a traced value in place; traced values "
            "are immutable. Compute a new value instead (y = x + 1, or tracer.numpy.where for updates)."
        )
    if method != "__call__":
        raise _unsupported(f"numpy.{ufunc.__name__}.{method}")
    if ufunc.types and all(t.endswith("?") for t in ufunc.types):  # comparisons, isfinite, ...
        return ufunc(*[strip(a) for a in inputs], **kwargs)
    if not (STATE.depth and STATE.enabled):  # a box outside any live trace is a constant
        return ufunc(*[strip(a) for a in inputs], **kwargs)
    if prim is None:
        raise _unsupported(f"numpy.{ufunc.__name__}")
    if kwargs:
        raise NotImplementedError(f"numpy.{ufunc.__name__} on traced values does not take keyword arguments {sorted(kwargs)}")
    return prim(*inputs)


def _array_function(self, func, types_, args, kwargs):
    impl = NUMPY_FUNCTIONS.get(func) or USER_FUNCTIONS.get(func)
    if impl is None:
        name = getattr(func, "__name__", repr(func))
        raise _unsupported(f"numpy.{name}")
    return impl(*args, **kwargs)


USER_FUNCTIONS: dict = {}  # filled by funcnet.tracer.defvjp for NumPy functions


def _immutable(self, *args):
    raise TypeError(
        "traced values are immutable (in-place assignment would hide the change from the gradient); "
        "build a new value instead, e.g. with tracer.numpy.where(mask, new, x) or tracer.numpy.concat"
    )


def _to_array(self, dtype=None, copy=None):
    raise TypeError(
        "cannot convert a traced value to a NumPy array: the result would lose its gradient. "
        "Use NumPy functions directly on it (they dispatch to the tracer), the namespace "
        "x.__array_namespace__(), or tracer.stop_gradient(x) for its plain value."
    )


def _repr(self):
    v = strip(self)
    return f"Box({np.array2string(np.asarray(v), precision=6, threshold=8)}, trace={self.trace}" + (
        f", op={self.prim.name})" if self.prim is not None else ")")


def _binop(prim, reverse=False):
    if reverse:
        return lambda self, other: apply2(prim, other, self)
    return lambda self, other: apply2(prim, self, other)


def _value_shape(self):
    v = self.value
    if type(v) is np.ndarray:
        return v.shape
    v = strip(v)
    return v.shape if type(v) is np.ndarray else np.shape(v)


def _cmp(op):
    return lambda self, other: op(strip(self), strip(other))


def _iter(self):
    n = _shape(self)
    if not n:
        raise TypeError("iteration over a 0-d traced value")
    return (R.getitem(self, i) for i in range(n[0]))


def _method_reduction(fn):
    return lambda self, axis=None, keepdims=False: fn(self, axis=axis, keepdims=keepdims)


_METHODS = dict(
    __add__=_binop(R.add), __radd__=_binop(R.add, True),
    __sub__=_binop(R.subtract), __rsub__=_binop(R.subtract, True),
    __mul__=_binop(R.multiply), __rmul__=_binop(R.multiply, True),
    __truediv__=_binop(R.divide), __rtruediv__=_binop(R.divide, True),
    __pow__=_binop(R.power), __rpow__=_binop(R.power, True),
    __matmul__=_binop(R.matmul), __rmatmul__=_binop(R.matmul, True),
    __neg__=lambda self: R.negative(self), __pos__=lambda self: self, __abs__=lambda self: R.abs(self),
    __getitem__=lambda self, idx: R.getitem(self, strip(idx) if isinstance(idx, Box) else idx),
    __setitem__=_immutable, __delitem__=_immutable,
    __lt__=_cmp(lambda a, b: a < b), __le__=_cmp(lambda a, b: a <= b),
    __gt__=_cmp(lambda a, b: a > b), __ge__=_cmp(lambda a, b: a >= b),
    __eq__=_cmp(lambda a, b: a == b), __ne__=_cmp(lambda a, b: a != b),
    __hash__=None,
    __bool__=lambda self: bool(strip(self)), __float__=lambda self: float(strip(self)),
    __int__=lambda self: int(strip(self)),
    __len__=lambda self: len(strip(self)), __iter__=_iter,
    __array__=_to_array, __array_ufunc__=_array_ufunc, __array_function__=_array_function,
    __array_namespace__=lambda self, api_version=None: namespace,
    __repr__=_repr,
    shape=property(_value_shape),
    ndim=property(lambda self: len(_value_shape(self))),
    size=property(lambda self: int(np.size(strip(self)))),
    dtype=property(lambda self: np.result_type(strip(self))),
    T=property(lambda self: transpose(self)),
    mT=property(lambda self: matrix_transpose(self)),
    astype=lambda self, dtype, copy=True: R.astype(self, dtype),
    reshape=lambda self, *shape: reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape),
    transpose=lambda self, *axes: transpose(self, (axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes) or None),
    sum=_method_reduction(sum), mean=_method_reduction(mean),
    max=_method_reduction(max), min=_method_reduction(min),
)
for _k, _v in _METHODS.items():
    setattr(Box, _k, _v)
del _k, _v

# the in-place reuse of spent temporaries (see _engine.apply2) compares reference counts against the
# ones a temporary has on this interpreter, measured once the operators exist
_engine.calibrate_spent(R.negative)
