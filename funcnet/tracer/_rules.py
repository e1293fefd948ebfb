"""The derivative table: every primitive the tracer knows, with its vector-Jacobian product.

Each rule receives the incoming gradient ``g`` (the cotangent of the output), the
output ``ans`` and the primitive's arguments, and returns the cotangent of one
argument. Rules are written with operators and these same primitives, never with
bare NumPy calls, so that they are themselves traced when a higher-order trace is
active (``grad(grad(f))``); in a plain first-order ``grad`` nothing is recording
during the backward pass and every call below is a direct NumPy call.

Broadcasting is undone by the engine for primitives marked ``broadcasts=True``
(see :mod:`._unbroadcast`), so the elementwise rules below ignore it.

Conventions at non-differentiable points follow ``jax.grad``:

* ``abs'(0) = 1``; ``sign' = 0`` everywhere;
* ``maximum``/``minimum`` at a tie give each argument half the gradient
  (so ``clip`` at a bound gives 0.5, as ``jnp.clip``);
* ``max``/``min`` reductions split the gradient equally among tied elements;
* ``where(c, x, y)`` sends the gradient to the chosen branch only
  (so ``relu`` written as ``where(z > 0, z, 0)`` has derivative 0 at 0);
* ``x ** y`` with respect to ``y`` at ``x = 0`` is 0 (``log`` of a zero base is replaced by 0).
"""

from __future__ import annotations

import operator

import numpy as np

from funcnet.tracer._core import Box, Primitive

__all__ = ["defvjp", "defvjp_argnum", "PRIMITIVES", "UFUNCS"]

PRIMITIVES: dict[str, Primitive] = {}
UFUNCS: dict = {}  # NumPy ufunc -> primitive, for __array_ufunc__ dispatch


def defvjp(prim, *rules, broadcasts: bool = False) -> Primitive:
    """Register one VJP rule per positional argument of ``prim`` (``None``: not differentiable).

    ``rule(g, ans, *args, **kwargs)`` returns the cotangent of its argument. ``prim``
    may be a :class:`Primitive` or a plain function (it is wrapped); the primitive is returned.
    """
    if not isinstance(prim, Primitive):
        prim = Primitive(prim)
    prim.vjps = tuple(rules)
    prim.broadcasts = broadcasts
    return prim


def defvjp_argnum(prim, rule, broadcasts: bool = False) -> Primitive:
    """Register one rule ``rule(argnum, g, ans, *args, **kwargs)`` for every argument (variadic primitives)."""
    if not isinstance(prim, Primitive):
        prim = Primitive(prim)
    prim.argnum_vjp = rule
    prim.vjps = None
    prim.broadcasts = broadcasts
    return prim


def _prim(fun, name, ufunc=None):
    p = Primitive(fun, name)
    PRIMITIVES[name] = p
    if ufunc is not None:
        UFUNCS[ufunc] = p
    return p


def _ufunc(uf, name=None, fun=None):
    # ``fun``: the Python operator where one exists; it equals the ufunc on arrays and is
    # much faster on NumPy scalars.
    return _prim(fun or uf, name or uf.__name__, uf)


# --------------------------------------------------------------- primitives
negative = _ufunc(np.negative, fun=operator.neg)
exp = _ufunc(np.exp)
log = _ufunc(np.log)
log1p = _ufunc(np.log1p)
expm1 = _ufunc(np.expm1)
sqrt = _ufunc(np.sqrt)
sin = _ufunc(np.sin)
cos = _ufunc(np.cos)
tan = _ufunc(np.tan)
sinh = _ufunc(np.sinh)
cosh = _ufunc(np.cosh)
tanh = _ufunc(np.tanh)
arctan = _ufunc(np.arctan)
abs = _ufunc(np.absolute, "abs")  # noqa: A001 - Array API name
sign = _ufunc(np.sign)
square = _ufunc(np.square)

add = _ufunc(np.add, fun=operator.add)
subtract = _ufunc(np.subtract, fun=operator.sub)
add.into = lambda x, y: np.add(x, y, out=x)              # their rules read only the operands' shapes
subtract.into = lambda x, y: np.subtract(x, y, out=x)
multiply = _ufunc(np.multiply, fun=operator.mul)
divide = _ufunc(np.divide, "divide", operator.truediv)
power = _ufunc(np.power, "pow", operator.pow)
maximum = _ufunc(np.maximum)
minimum = _ufunc(np.minimum)
matmul = _ufunc(np.matmul, fun=operator.matmul)
where = _prim(np.where, "where")

def _reduction(ufunc, generic):
    # float arrays go straight to the ufunc's reduce (what np.sum/np.max call, minus their Python wrapper)
    def fun(x, axis=None, keepdims=False):
        if type(x) is np.ndarray and x.dtype.kind == "f":
            return ufunc.reduce(x, axis=axis, keepdims=keepdims)
        return generic(x, axis=axis, keepdims=keepdims)
    return fun


def _mean_fun(x, axis=None, keepdims=False):
    if type(x) is np.ndarray and x.dtype.kind == "f" and x.dtype.itemsize >= 4:   # np.mean: float16 sums in float32
        return np.add.reduce(x, axis=axis, keepdims=keepdims) / _count(x, axis)
    return np.mean(x, axis=axis, keepdims=keepdims)


sum = _prim(_reduction(np.add, np.sum), "sum")  # noqa: A001
mean = _prim(_mean_fun, "mean")
max = _prim(_reduction(np.maximum, np.max), "max")  # noqa: A001
min = _prim(_reduction(np.minimum, np.min), "min")  # noqa: A001


def _minus_max(x, axis=-1):
    """x minus its maximum along ``axis`` (kept), the stable shift of log-sum-exp; a new array."""
    return x - np.maximum.reduce(x, axis=axis, keepdims=True)


def _log_softmax_fun(x, axis=-1):
    shifted = _minus_max(x, axis)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


# One node for z - log Σ exp(z) (funcnet.activations.log_softmax uses it on traced values): its rule is
# the softmax cross-entropy delta of the lectures, g - softmax(z) Σ g, instead of six composed rules.
log_softmax = _prim(_log_softmax_fun, "log_softmax")


def _sce_rows(z, labels):
    """Logits as rows ``(n, K)`` and their integer labels ``(n,)``."""
    if z.ndim == 2 and type(labels) is np.ndarray:
        return z, labels
    return z.reshape(-1, z.shape[-1]), np.asarray(labels).reshape(-1)


def _sce_fun(z, labels):
    z2, lab = _sce_rows(z, labels)
    n = z2.shape[0]
    s = _minus_max(z2)
    lse = np.log(np.add.reduce(np.exp(s), axis=-1))
    return np.add.reduce(lse - s[np.arange(n), lab]) / n


# Softmax cross-entropy with integer labels, -(1/n) Σ_i log softmax(z_i)[y_i], as one node (funcnet's
# losses use it on traced logits): its rule is the lectures' delta (softmax(z) - onehot(y)) g / n.
softmax_cross_entropy_with_integer_labels = _prim(_sce_fun, "softmax_cross_entropy_with_integer_labels")

reshape = _prim(lambda x, shape: np.reshape(x, shape), "reshape")
permute_dims = _prim(lambda x, axes: np.transpose(x, axes), "permute_dims")
broadcast_to = _prim(lambda x, shape: np.broadcast_to(x, shape), "broadcast_to")
getitem = _prim(operator.getitem, "getitem")
concat = _prim(lambda *xs, axis=0: np.concatenate(xs, axis=axis), "concat")
stack = _prim(lambda *xs, axis=0: np.stack(xs, axis=axis), "stack")
astype = _prim(lambda x, dtype: np.asarray(x).astype(dtype), "astype")


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


scatter_add = _prim(_scatter_add_fun, "scatter_add")  # the transpose of getitem


# -------------------------------------------------------------- helpers

def _shape(x):
    return getattr(x, "shape", ())


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axis = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % ndim for a in axis) if ndim else ()


def _restore(g, x, axis, keepdims):
    """Reshape a reduction's output cotangent so it broadcasts against the input ``x``."""
    shape = _shape(x)
    if keepdims or axis is None:
        return g
    kept = list(shape)
    for a in _axes(axis, len(shape)):
        kept[a] = 1
    return reshape(g, tuple(kept))


def _count(x, axis):
    shape = _shape(x)
    n = 1
    for a in _axes(axis, len(shape)):
        n *= shape[a]
    return n


def _half_if_tied(x, ans, other):
    """Where ``x`` won a maximum/minimum: 1, or 0.5 on a tie with ``other``; 0 elsewhere (as JAX)."""
    xv, av, ov = np.asarray(_strip(x)), np.asarray(_strip(ans)), np.asarray(_strip(other))
    return np.where(xv == av, np.where(ov == av, 0.5, 1.0), 0.0).astype(np.result_type(av))


def _strip(x):
    from funcnet.tracer._core import strip
    return strip(x)


def _swap_last(x):
    n = len(_shape(x))
    axes = list(range(n))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return permute_dims(x, tuple(axes))


def _unbroadcast(g, like):
    from funcnet.tracer._unbroadcast import unbroadcast
    return unbroadcast(g, like)


def _matmul_vjp(argnum, g, ans, x, y):
    xs, ys = _shape(x), _shape(y)
    if len(xs) == 2 and len(ys) == 2:           # the common case, without reshapes
        if argnum == 0:
            return g @ (y.T if type(y) is np.ndarray else _swap_last(y))
        return (x.T if type(x) is np.ndarray else _swap_last(x)) @ g
    # promote 1-D operands to matrices as matmul does, then undo
    x2 = reshape(x, (1,) + xs) if len(xs) == 1 else x
    y2 = reshape(y, ys + (1,)) if len(ys) == 1 else y
    gs = _shape(g)
    if len(xs) == 1 and len(ys) == 1:
        g2 = reshape(g, (1, 1))
    elif len(xs) == 1:
        g2 = reshape(g, gs[:-1] + (1,) + gs[-1:])
    elif len(ys) == 1:
        g2 = reshape(g, gs + (1,))
    else:
        g2 = g
    if argnum == 0:
        return reshape(_unbroadcast(g2 @ _swap_last(y2), x2), xs)
    return reshape(_unbroadcast(_swap_last(x2) @ g2, y2), ys)


def _concat_vjp(argnum, g, ans, *xs, axis=0):
    nd = len(_shape(g))
    ax = axis % nd
    start = 0
    for x in xs[:argnum]:
        start += _shape(x)[ax]
    idx = (slice(None),) * ax + (slice(start, start + _shape(xs[argnum])[ax]),)
    return getitem(g, idx)


def _stack_vjp(argnum, g, ans, *xs, axis=0):
    ax = axis % len(_shape(g))
    return getitem(g, (slice(None),) * ax + (argnum,))


def _dtype(x):
    d = getattr(x, "dtype", None)
    return d if d is not None else np.result_type(x)


# ------------------------------------------------------------- the table
defvjp(negative, lambda g, ans, x: -g)
defvjp(exp, lambda g, ans, x: g * ans)
defvjp(log, lambda g, ans, x: g / x)
defvjp(log1p, lambda g, ans, x: g / (1.0 + x))
defvjp(expm1, lambda g, ans, x: g * (ans + 1.0))
defvjp(sqrt, lambda g, ans, x: g / (2.0 * ans))
defvjp(sin, lambda g, ans, x: g * cos(x))
defvjp(cos, lambda g, ans, x: -(g * sin(x)))
defvjp(tan, lambda g, ans, x: g * (1.0 + ans * ans))
defvjp(sinh, lambda g, ans, x: g * cosh(x))
defvjp(cosh, lambda g, ans, x: g * sinh(x))
# g·(1 − ans²): two passes over the temporary ans², which NumPy reuses in place (temporary elision)
defvjp(tanh, lambda g, ans, x: g * (1.0 - ans * ans))
defvjp(arctan, lambda g, ans, x: g / (1.0 + x * x))
defvjp(abs, lambda g, ans, x: where(np.asarray(_strip(x)) >= 0, g, -g))
defvjp(sign, lambda g, ans, x: g * 0.0)
defvjp(square, lambda g, ans, x: g * (2.0 * x))

defvjp(add, lambda g, ans, x, y: g, lambda g, ans, x, y: g, broadcasts=True)
defvjp(subtract, lambda g, ans, x, y: g, lambda g, ans, x, y: -g, broadcasts=True)
defvjp(multiply, lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x, broadcasts=True)
defvjp(divide, lambda g, ans, x, y: g / y, lambda g, ans, x, y: -(g * ans) / y, broadcasts=True)
defvjp(
    power,
    lambda g, ans, x, y: g * (y * x ** (y - 1)),
    lambda g, ans, x, y: g * (log(where(np.asarray(_strip(x)) == 0, 1.0, x)) * ans),
    broadcasts=True,
)
defvjp(maximum, lambda g, ans, x, y: g * _half_if_tied(x, ans, y),
       lambda g, ans, x, y: g * _half_if_tied(y, ans, x), broadcasts=True)
defvjp(minimum, lambda g, ans, x, y: g * _half_if_tied(x, ans, y),
       lambda g, ans, x, y: g * _half_if_tied(y, ans, x), broadcasts=True)
defvjp(where, None, lambda g, ans, c, x, y: where(c, g, 0.0),
       lambda g, ans, c, x, y: where(c, 0.0, g), broadcasts=True)
defvjp_argnum(matmul, _matmul_vjp)

defvjp(sum, lambda g, ans, x, axis=None, keepdims=False: broadcast_to(_restore(g, x, axis, keepdims), _shape(x)))
defvjp(mean, lambda g, ans, x, axis=None, keepdims=False:
       broadcast_to(_restore(g, x, axis, keepdims), _shape(x)) / _count(x, axis))


def _chooser_vjp(g, ans, x, axis=None, keepdims=False):
    # the gradient goes to the elements equal to the result, split equally among ties (as JAX)
    hit = np.asarray(_strip(x)) == np.asarray(_strip(_restore(ans, x, axis, keepdims)))
    share = hit / np.sum(hit, axis=axis, keepdims=True)
    return _restore(g, x, axis, keepdims) * share.astype(_dtype(_strip(x)))


defvjp(max, _chooser_vjp)
defvjp(min, _chooser_vjp)

defvjp(log_softmax, lambda g, ans, x, axis=-1: g - exp(ans) * sum(g, axis=axis, keepdims=True))


def _sce_vjp(g, ans, z, labels):
    if type(z) is np.ndarray and not isinstance(g, Box):
        # first order (nothing records): softmax, minus 1 at each label, scaled, in one buffer
        z2, lab = _sce_rows(z, labels)
        n = z2.shape[0]
        p = _minus_max(z2)
        np.exp(p, out=p)
        p /= np.add.reduce(p, axis=-1, keepdims=True)
        p[np.arange(n), lab] -= 1.0
        p *= g / n
        return p if z2 is z else p.reshape(z.shape)
    # inside an outer trace: the same formula in recorded primitives (higher derivatives)
    shape = _shape(z)
    n = _count(z, None) // shape[-1]
    onehot = (np.asarray(labels)[..., None] == np.arange(shape[-1])).astype(_dtype(_strip(z)))
    return (exp(log_softmax(z)) - onehot) * (g / n)


defvjp(softmax_cross_entropy_with_integer_labels, _sce_vjp, None)
defvjp(reshape, lambda g, ans, x, shape: reshape(g, _shape(x)))
defvjp(permute_dims, lambda g, ans, x, axes: permute_dims(g, tuple(np.argsort(axes))))
defvjp(broadcast_to, lambda g, ans, x, shape: _unbroadcast(g, x))
defvjp(getitem, lambda g, ans, x, idx: scatter_add(g, idx, _shape(x)))
defvjp(scatter_add, lambda g, ans, h, idx, shape: getitem(g, idx))
defvjp_argnum(concat, _concat_vjp)
defvjp_argnum(stack, _stack_vjp)
defvjp(astype, lambda g, ans, x, dtype: astype(g, _dtype(x)))

# rules above that read no argument's value (only g and ans), or only the arguments' shapes: grad's graph
# keeps nothing, or only the shapes, of those arguments
for _p in (negative, exp, expm1, sqrt, tan, tanh, log_softmax):
    _p.uses_args = False
for _p in (add, subtract):
    _p.uses_args = "shape"

# rules above that never read ``ans``: grad may free those outputs before running them
for _p in (negative, add, subtract, multiply, matmul, where, sum, mean, reshape, permute_dims,
           broadcast_to, getitem, scatter_add, concat, stack, astype, softmax_cross_entropy_with_integer_labels):
    _p.uses_ans = False
