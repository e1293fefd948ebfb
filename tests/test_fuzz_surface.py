"""Differential fuzz over the tracer's whole NumPy surface, complex intermediates included.

Hypothesis draws random straight-line programs whose operations come from the table ``OPS`` below:
elementwise unary and broadcasting binary functions, reductions (``axis`` ints and tuples, ``keepdims``,
``ddof``), cumulative operations, shapes and indexing, products (random valid ``einsum`` subscripts among
them), ``numpy.linalg`` on well-conditioned generated matrices, and complex intermediates in real-valued
programs. Every operation carries a domain guard (``log(1 + x²)``, ``arcsin(0.9 tanh x)``, SPD matrices for
``cholesky``, a spread spectrum for ``eigh`` and ``svd``) so programs stay differentiable at random inputs.

A program is written once against ``xp``: the tracer runs it on NumPy arrays (``xp = numpy``), JAX on its own
(``xp = jax.numpy``). Compared in float64, at ``EXACT_RTOL = 1e-9`` relative:

- first order: ``tracer.grad`` vs ``jax.grad`` (and vs central differences for programs without kinks);
- second order: ``tracer.hessian`` vs ``jax.hessian`` of the program on its flattened inputs;
- forward mode: ``tracer.jvp`` vs ``jax.jvp`` with random tangents;

each with grad's memory policy at its default threshold or lowered to every array (drawn per program).

Budget: derandomized; ``FUNCNET_FUZZ_EXAMPLES`` (default 300, shared with ``test_fuzz.py``) sets the number of
programs: an eighth at first order, a thirtieth at second order, a twentieth in forward mode (JAX's side is
jitted: one compile per program, ~0.3 s, is the cost); e.g.
``FUNCNET_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz_surface.py`` for a long fuzz. ``FUNCNET_FUZZ_SEED`` changes
the sequence.
"""

from __future__ import annotations

import dataclasses
import math
import os
from contextlib import nullcontext
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from funcnet import check, tracer
from funcnet.tracer import _memory

EXAMPLES = int(os.environ.get("FUNCNET_FUZZ_EXAMPLES", 300))
_SALT = int(os.environ.get("FUNCNET_FUZZ_SEED", 0))
FUZZ = settings(max_examples=max(EXAMPLES // 8, 5), derandomize=True, deadline=None, database=None,
                print_blob=True, suppress_health_check=list(HealthCheck))

# float64 throughout. tracer vs jax: two exact methods, different summation order.
EXACT_RTOL, EXACT_ATOL = 1e-9, 1e-12
# vs central differences (funcnet.check.numerical_grad): truncation ~h²|f'''|, rounding ~1e-11|f|.
FD_RTOL, FD_ATOL = 1e-5, 1e-6
MAX_SIZE = 36          # no value holds more elements (keeps Hessians and finite differences cheap)


# ---------------------------------------------------------------------------------------------- helpers

def fit(xp, y, shape):
    """Any value as an array of ``shape``: its elements in order, cycled (concatenate, slice, reshape)."""
    n, m = math.prod(shape), math.prod(y.shape)
    flat = xp.reshape(y, (-1,))
    if n > m:
        flat = xp.concatenate([flat] * -(-n // m))
    return xp.reshape(flat[:n], shape)


def weights(shape):
    """Fixed non-uniform weights, so a sum of products sees every element differently."""
    return np.cos(np.arange(math.prod(shape)) * 1.3 + 0.4).reshape(shape)


def spread(shape):
    """A fixed offset that makes copies distinct (std, sort of broadcast values): 0.3·index."""
    return 0.3 * np.arange(math.prod(shape), dtype=np.float64).reshape(shape)


def general(xp, x, n):
    """n×n, σ_min > n: (2n+1)·I + outer(tanh u, sin u) + diag(tanh u / 2), u = x fitted to (n,)."""
    u = fit(xp, x, (n,))
    return (2 * n + 1) * xp.eye(n) + xp.outer(xp.tanh(u), xp.sin(u)) + xp.diag(0.5 * xp.tanh(u))


def symmetric(xp, x, n):
    """n×n symmetric, eigenvalues within 0.2 of 2, 4, ..., 2n (distinct)."""
    u = fit(xp, x, (n,))
    t = xp.outer(xp.tanh(u), xp.cos(u)) / n
    return xp.diag(2.0 * xp.arange(1, n + 1)) + 0.1 * (t + t.T)


def spectral(xp, x, p, q):
    """p×q, singular values within 0.45 of 1, 2, 3 (distinct, non-zero)."""
    d = np.zeros((p, q))
    d[np.arange(min(p, q)), np.arange(min(p, q))] = np.arange(1.0, min(p, q) + 1)
    return d + 0.15 * xp.tanh(fit(xp, x, (p, q)))


class Op(NamedTuple):
    """One operation: ``arity``, ``params(draw, *shapes)`` (None: not applicable), ``fn(xp, params, *xs)``."""

    arity: int
    params: Callable
    fn: Callable
    kinked: bool = False      # a kink or jump somewhere (finite differences may straddle it)


def _none(draw, *shapes):
    return ()


def _nd(k):
    """Applicable to values of at least ``k`` dimensions."""
    return lambda draw, *shapes: () if len(shapes[0]) >= k else None


def _axis(draw, shape, allow_none=True, allow_tuple=True):
    choices = ["none"] * allow_none + ["int"] * bool(shape) + ["tuple"] * (allow_tuple and len(shape) >= 2)
    kind = draw(st.sampled_from(choices)) if choices else "none"
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-len(shape), len(shape) - 1))
    return tuple(sorted(draw(st.sets(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape)))))


def _reduce_params(draw, shape):
    return _axis(draw, shape), draw(st.booleans())


def _count(shape, axis):
    """How many elements a reduction over ``axis`` combines."""
    axes = range(len(shape)) if axis is None else (axis,) if isinstance(axis, int) else axis
    return math.prod(shape[a] for a in axes)


def _ddof_params(draw, shape, least=1):
    """axis, keepdims, ddof; None where fewer than ``least`` elements meet (std of one value has no derivative)."""
    axis, keepdims = _reduce_params(draw, shape)
    n = _count(shape, axis)
    return (axis, keepdims, draw(st.integers(0, n - least))) if n >= least else None


def _one_axis(draw, shape):
    return draw(st.integers(-len(shape), len(shape) - 1)) if shape else None


def _complex(draw):
    """(a + bj, c + dj) with the line x·(a+bj) passing the offset c+dj at distance >= 0.3."""
    a, b, c, d = (draw(st.sampled_from([-1.5, -0.7, 0.4, 1.0, 2.0])) for _ in range(4))
    assume(abs(a * d - b * c) / math.hypot(a, b) >= 0.3)
    return complex(a, b), complex(c, d)


# ------------------------------------------------------------------------------------ the operations
U = lambda f, kinked=False: Op(1, _none, lambda xp, p, x: f(xp, x), kinked)       # noqa: E731
B = lambda f, kinked=False: Op(2, _none, lambda xp, p, x, y: f(xp, x, y), kinked)  # noqa: E731

ELEMENTWISE = {
    "exp": U(lambda xp, x: xp.exp(xp.tanh(x))),
    "expm1": U(lambda xp, x: xp.expm1(xp.tanh(x))),
    "exp2": U(lambda xp, x: xp.exp2(xp.tanh(x))),
    "log": U(lambda xp, x: xp.log(1.0 + x * x)),
    "log1p": U(lambda xp, x: xp.log1p(xp.square(x))),
    "log2": U(lambda xp, x: xp.log2(1.5 + xp.sin(x))),
    "log10": U(lambda xp, x: xp.log10(2.0 + xp.tanh(x))),
    "sqrt": U(lambda xp, x: xp.sqrt(1.0 + x ** 2)),
    "cbrt": U(lambda xp, x: xp.cbrt(0.5 + x * x)),
    "reciprocal": U(lambda xp, x: xp.reciprocal(1.5 + xp.sin(x))),
    "sin": U(lambda xp, x: xp.sin(x)),
    "cos": U(lambda xp, x: xp.cos(x)),
    "tan": U(lambda xp, x: xp.tan(0.6 * xp.tanh(x))),
    "tanh": U(lambda xp, x: xp.tanh(x)),
    "sinh-cosh": U(lambda xp, x: xp.sinh(xp.tanh(x)) + xp.cosh(xp.tanh(x))),
    "arcsin": U(lambda xp, x: xp.arcsin(0.9 * xp.tanh(x))),
    "arccos": U(lambda xp, x: xp.arccos(0.9 * xp.tanh(x))),
    "arctan": U(lambda xp, x: xp.arctan(x)),
    "arcsinh": U(lambda xp, x: xp.arcsinh(x)),
    "arccosh": U(lambda xp, x: xp.arccosh(1.5 + x * x)),
    "arctanh": U(lambda xp, x: xp.arctanh(0.9 * xp.tanh(x))),
    "sinc": U(lambda xp, x: xp.sinc(x)),
    "square-negative": U(lambda xp, x: xp.negative(xp.square(x))),
    "deg2rad-rad2deg": U(lambda xp, x: xp.sin(xp.deg2rad(xp.rad2deg(x) * 2.0))),
    "power-const": U(lambda xp, x: xp.power(1.2 + x * x, 0.7) + x ** 3),
    "abs": U(lambda xp, x: xp.abs(x) + xp.fabs(x - 0.3), kinked=True),
    "sign": U(lambda xp, x: xp.sign(x) * x ** 2, kinked=True),
    "floor-ceil": U(lambda xp, x: x * xp.floor(2 * x) + xp.ceil(x) * x, kinked=True),
    "round-rint-trunc": U(lambda xp, x: x * (xp.round(2 * x) + xp.rint(x) + xp.trunc(3 * x)), kinked=True),
    "clip": U(lambda xp, x: xp.clip(x, -0.5, 0.7), kinked=True),
    "where": U(lambda xp, x: xp.where(x > 0.1, 2.0 * x, xp.sin(x)), kinked=True),
    "add": B(lambda xp, x, y: x + y),
    "subtract": B(lambda xp, x, y: xp.subtract(x, y)),
    "multiply": B(lambda xp, x, y: x * y),
    "divide": B(lambda xp, x, y: x / (1.0 + y * y)),
    "true_divide": B(lambda xp, x, y: xp.true_divide(y, 2.0 + xp.cos(x))),
    "power": B(lambda xp, x, y: xp.power(1.2 + x * x, xp.tanh(y))),
    "arctan2": B(lambda xp, x, y: xp.arctan2(x, y), kinked=True),
    "hypot": B(lambda xp, x, y: xp.hypot(x, y)),
    "logaddexp": B(lambda xp, x, y: xp.logaddexp(x, y) + xp.logaddexp2(y, 2 * x)),
    "maximum-minimum": B(lambda xp, x, y: xp.maximum(x, y) - 0.5 * xp.minimum(x, 2 * y), kinked=True),
    "fmax-fmin": B(lambda xp, x, y: xp.fmax(x, y) + 0.3 * xp.fmin(y, x), kinked=True),
    "mod": B(lambda xp, x, y: xp.mod(x, 1.5 + y * y) + xp.remainder(y, -0.7), kinked=True),
    "fmod": B(lambda xp, x, y: xp.fmod(x, 1.5 + y * y), kinked=True),
}


def _reduction(name):
    return Op(1, lambda draw, s: _reduce_params(draw, s),
              lambda xp, p, x: getattr(xp, name)(x, axis=p[0], keepdims=p[1]), kinked=name in ("max", "min", "amax",
                                                                                              "amin"))


def _cumulative(name):
    return Op(1, lambda draw, s: _one_axis(draw, s) if draw(st.booleans()) else "flat",
              lambda xp, p, x: getattr(xp, name)(x) if p == "flat" else getattr(xp, name)(x, axis=p))


def _norm_params(draw, s):
    if draw(st.booleans()):   # a vector norm of the value's elements
        return "vector", draw(st.sampled_from([None, 1, 2, 3, -1, np.inf, -np.inf, 0.5]))
    return "matrix", draw(st.sampled_from([None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf])), \
        draw(st.integers(1, 3)), draw(st.integers(1, 3))


def _norm(xp, p, x):
    if p[0] == "vector":
        return xp.linalg.norm(xp.ravel(x) + spread((math.prod(x.shape),)), p[1])
    return xp.linalg.norm(spectral(xp, x, p[2], p[3]), p[1])


REDUCTIONS = {
    **{name: _reduction(name) for name in ("sum", "mean", "prod", "max", "min", "amax", "amin")},
    "var": Op(1, lambda draw, s: _ddof_params(draw, s),
              lambda xp, p, x: xp.var(x + spread(x.shape), axis=p[0], keepdims=p[1], ddof=p[2])),
    "std": Op(1, lambda draw, s: _ddof_params(draw, s, least=2),
              lambda xp, p, x: xp.std(x + spread(x.shape), axis=p[0], keepdims=p[1], ddof=p[2])),
    "median": Op(1, lambda draw, s: _one_axis(draw, s), lambda xp, p, x: xp.median(x, axis=p)),
    "average": Op(1, lambda draw, s: (_one_axis(draw, s),) if s else None,
                  lambda xp, p, x: xp.average(x, axis=p[0], weights=1.0 + weights((x.shape[p[0]],)) ** 2)),
    "cumsum": _cumulative("cumsum"),
    "cumprod": _cumulative("cumprod"),
    "norm": Op(1, _norm_params, _norm, kinked=True),
}


def _reshape_params(draw, s):
    n = math.prod(s)
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    a = draw(st.sampled_from(divisors))
    return draw(st.sampled_from([(n,), (a, n // a), (a, 1, n // a), (n // a, -1)]))


def _pad_params(draw, s):
    mode = draw(st.sampled_from(["constant", "edge", "reflect"]))
    top = 1 if mode != "reflect" else max(0, min(s) - 1) if s else 0
    widths = tuple((draw(st.integers(0, top)), draw(st.integers(0, top))) for _ in s)
    return widths, mode


def _index_params(draw, s):
    kind = draw(st.sampled_from(["int", "pair", "bool", "slice", "take", "take_along"]))
    if kind == "int":
        return kind, tuple(draw(st.lists(st.integers(-s[0], s[0] - 1), min_size=1, max_size=4)))
    if kind == "pair" and len(s) >= 2:
        k = draw(st.integers(1, 4))
        return kind, (tuple(draw(st.integers(0, s[0] - 1)) for _ in range(k)),
                      tuple(draw(st.integers(0, s[1] - 1)) for _ in range(k)))
    if kind == "bool":
        mask = draw(st.lists(st.booleans(), min_size=s[0], max_size=s[0]))
        return (kind, tuple(mask)) if any(mask) else None
    if kind == "slice":
        return kind, tuple(slice(draw(st.sampled_from([None, 1])), None, draw(st.sampled_from([1, -1, 2])))
                           for _ in s)
    axis = draw(st.integers(0, len(s) - 1))
    idx = np.asarray(draw(st.lists(st.integers(0, s[axis] - 1), min_size=1, max_size=4)))
    if kind == "take":
        return kind, (tuple(idx), axis)
    shape = list(s)
    shape[axis] = len(idx)
    return "take_along", (fit(np, idx, tuple(shape)), axis)


def _index(xp, p, x):
    kind, q = p
    if kind in ("int", "pair"):
        return x[xp.asarray(q)] if kind == "int" else x[list(q[0]), list(q[1])]
    if kind == "bool":
        return x[np.asarray(q)]
    if kind == "slice":
        return x[q]
    if kind == "take":
        return xp.take(x, xp.asarray(q[0]), axis=q[1])
    return xp.take_along_axis(x, xp.asarray(q[0]), axis=q[1])


def _split_params(draw, s):
    axis = draw(st.integers(0, len(s) - 1))
    divisors = [d for d in range(1, s[axis] + 1) if s[axis] % d == 0]
    name = draw(st.sampled_from(["split", "array_split"]))
    k = draw(st.sampled_from(divisors)) if name == "split" else draw(st.integers(1, s[axis]))
    return name, k, axis, draw(st.integers(0, k - 1))


def _broadcasts(t, s) -> bool:
    """Whether shape ``t`` broadcasts to shape ``s``."""
    try:
        return np.broadcast_shapes(s, t) == s
    except ValueError:
        return False


def _stack_params(draw, s, t):
    if not _broadcasts(t, s):
        return None
    ok = ["stack", "append"] + ["concatenate", "hstack", "vstack", "column_stack"] * bool(s) + ["dstack"] * (len(s) >= 2)
    return draw(st.sampled_from(ok)), _one_axis(draw, s)


def _stack(xp, p, x, y):
    name, axis = p
    y = xp.broadcast_to(xp.sin(y), x.shape)
    if name == "stack":
        return xp.stack([x, y], axis=axis if axis is not None else 0)
    if name == "append":
        return xp.append(x, y)
    if name == "concatenate":
        return xp.concatenate([x, y], axis=axis)
    return getattr(xp, name)([x, y])


def _tile_params(draw, s):
    reps = tuple(draw(st.integers(1, 2)) for _ in range(draw(st.integers(1, 3))))
    return reps if math.prod(s) * math.prod(reps) <= MAX_SIZE else None


SHAPES = {
    "reshape": Op(1, _reshape_params, lambda xp, p, x: xp.reshape(x, p)),
    "ravel-flatten": Op(1, _none, lambda xp, p, x: xp.ravel(x) + x.flatten() * 0.5),
    "transpose": Op(1, lambda draw, s: tuple(draw(st.permutations(range(len(s))))),
                    lambda xp, p, x: xp.transpose(x, p) if p else x.T),
    "transpose-method": Op(1, lambda draw, s: tuple(draw(st.permutations(range(len(s))))) if len(s) >= 2 else None,
                           lambda xp, p, x: x.transpose(*p)),
    "swapaxes": Op(1, lambda draw, s: (_one_axis(draw, s), _one_axis(draw, s)) if s else None,
                   lambda xp, p, x: xp.swapaxes(x, *p)),
    "moveaxis": Op(1, lambda draw, s: (_one_axis(draw, s), _one_axis(draw, s)) if s else None,
                   lambda xp, p, x: xp.moveaxis(x, *p)),
    "expand_dims": Op(1, lambda draw, s: draw(st.integers(-len(s) - 1, len(s))) if len(s) < 3 else None,
                      lambda xp, p, x: xp.expand_dims(x, p)),
    "squeeze": Op(1, lambda draw, s: () if 1 in s else None, lambda xp, p, x: xp.squeeze(x)),
    "atleast": Op(1, lambda draw, s: draw(st.sampled_from([1, 2, 3])) if len(s) <= 2 else None,
                  lambda xp, p, x: getattr(xp, f"atleast_{p}d")(x)),
    "flip": Op(1, lambda draw, s: _one_axis(draw, s), lambda xp, p, x: xp.flip(x, p)),
    "rot90": Op(1, lambda draw, s: draw(st.integers(-1, 3)) if len(s) >= 2 else None,
                lambda xp, p, x: xp.rot90(x, p)),
    "roll": Op(1, lambda draw, s: (draw(st.integers(-3, 3)), _one_axis(draw, s)),
               lambda xp, p, x: xp.roll(x, p[0], axis=p[1])),
    "repeat": Op(1, lambda draw, s: (draw(st.integers(1, 3)), _one_axis(draw, s)) if math.prod(s) <= 12 else None,
                 lambda xp, p, x: xp.repeat(x, p[0], axis=p[1])),
    "tile": Op(1, _tile_params, lambda xp, p, x: xp.tile(x, p)),
    "pad": Op(1, lambda draw, s: _pad_params(draw, s) if s else None,
              lambda xp, p, x: xp.pad(x, p[0], mode=p[1])),
    "tril-triu": Op(1, lambda draw, s: draw(st.integers(-1, 1)) if len(s) >= 2 else None,
                    lambda xp, p, x: xp.tril(x, p) + 0.5 * xp.triu(x, -p)),
    "diag-diagonal-trace": Op(1, lambda draw, s: draw(st.integers(-1, 1)) if len(s) == 2 else None,
                              lambda xp, p, x: xp.sum(xp.diag(x, p)) * xp.diagonal(x) + xp.trace(x)),
    "diag-build": Op(1, lambda draw, s: () if len(s) == 1 else None, lambda xp, p, x: xp.diag(x)),
    "split": Op(1, lambda draw, s: _split_params(draw, s) if s else None,
                lambda xp, p, x: getattr(xp, p[0])(x, p[1], axis=p[2])[p[3]]),
    "hsplit-vsplit": Op(1, lambda draw, s: draw(st.sampled_from(["hsplit", "vsplit"])) if len(s) == 2 else None,
                        lambda xp, p, x: getattr(xp, p)(x, 1)[0]),
    "stack": Op(2, _stack_params, _stack),
    "index": Op(1, lambda draw, s: _index_params(draw, s) if s else None, _index),
    "sort": Op(1, lambda draw, s: _one_axis(draw, s) if s else None,
               lambda xp, p, x: xp.sort(x, axis=p), kinked=True),
    "partition": Op(1, lambda draw, s: (draw(st.integers(0, s[-1] - 1)),) if s else None,
                    lambda xp, p, x: xp.take(xp.partition(x, p[0], axis=-1), xp.asarray([p[0]]), axis=-1), kinked=True),
}


def _einsum_params(draw, s, t):
    """Random valid subscripts: x's axes get letters (equal sizes may share one: a diagonal), the second
    operand (fitted to the shape its letters need) reuses some of x's letters; the output is explicit (any
    subset of the letters, in any order) or implicit."""
    letters, sizes = [], {}
    for n in s:
        same = [c for c in letters if sizes[c] == n]
        c = draw(st.sampled_from(same)) if same and draw(st.integers(0, 3)) == 0 else "abcdef"[len(sizes)]
        letters.append(c)
        sizes[c] = n
    other = []
    for _ in range(draw(st.integers(0, 3))):
        c = draw(st.sampled_from(sorted(sizes) + ["g", "h"]))
        if c in ("g", "h") and c not in sizes:
            sizes[c] = draw(st.integers(1, 3))
        if c not in other:
            other.append(c)
    everything = sorted(set(letters) | set(other))
    if draw(st.booleans()):
        out = "->" + "".join(draw(st.permutations(draw(st.sets(st.sampled_from(everything), max_size=3)))))
    else:
        out = ""
    return f"{''.join(letters)},{''.join(other)}{out}", tuple(sizes[c] for c in other)


def _product_params(draw, s, t):
    name = draw(st.sampled_from(["dot", "matmul", "vdot", "inner", "outer", "tensordot", "kron", "cross",
                                 "einsum"]))
    if name == "einsum":
        return name, _einsum_params(draw, s, t)
    if name in ("outer", "kron") and math.prod(s) * math.prod(t) > MAX_SIZE:
        return None
    if name == "tensordot":
        k = draw(st.integers(0, min(2, len(s))))
        return name, (k, s[len(s) - k:] + (draw(st.integers(1, 2)),))
    if name == "cross":
        return name, (draw(st.integers(1, 3)),)
    if name in ("dot", "matmul", "inner") and s:
        return name, (s[-1], draw(st.integers(1, 3))) if draw(st.booleans()) else (s[-1],)
    return (name, None) if name in ("vdot", "outer", "kron") else None


def _product(xp, p, x, y):
    name, q = p
    if name == "einsum":
        return xp.einsum(q[0], x, fit(xp, y, q[1]))
    if name == "tensordot":
        return xp.tensordot(x, fit(xp, y, q[1]), axes=q[0])
    if name == "cross":
        return xp.cross(fit(xp, x, (q[0], 3)), fit(xp, y, (q[0], 3)))
    if name == "vdot":
        return xp.vdot(x, fit(xp, y, x.shape))
    if name in ("outer", "kron"):
        return getattr(xp, name)(x, y)
    y = fit(xp, y, q[::-1] if name == "inner" and len(q) == 2 else q)
    return x @ y if name == "matmul" else getattr(xp, name)(x, y)


def _n(draw, *shapes):
    return draw(st.integers(1, 4))


def _eigh(xp, n, x):
    w, v = xp.linalg.eigh(symmetric(xp, x, n))
    return w + (v * v) @ weights((n,))           # eigenvectors only through sign-invariant v²


def _slogdet(xp, n, x):
    sign, logdet = xp.linalg.slogdet(general(xp, x, n))
    return sign * logdet + xp.linalg.det(general(xp, xp.sin(x), n)) / (3 * n) ** n


LINALG = {
    "inv": Op(1, _n, lambda xp, n, x: xp.linalg.inv(general(xp, x, n)) * (3 * n)),
    "solve": Op(2, lambda draw, s, t: (draw(st.integers(1, 4)), draw(st.sampled_from([(), (1,), (2,)]))),
                lambda xp, p, a, b: xp.linalg.solve(general(xp, a, p[0]), fit(xp, b, (p[0],) + p[1]))),
    "det-slogdet": Op(1, _n, _slogdet),
    "cholesky": Op(1, _n, lambda xp, n, x: xp.linalg.cholesky(general(xp, x, n) @ general(xp, x, n).T / n ** 2)),
    "eigh": Op(1, _n, _eigh),
    "eigvalsh": Op(1, _n, lambda xp, n, x: xp.linalg.eigvalsh(symmetric(xp, x, n))),
    "svd": Op(1, lambda draw, *s: (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
              lambda xp, p, x: xp.linalg.svd(spectral(xp, x, *p), compute_uv=False)),
    "product": Op(2, _product_params, _product),
}


def _cplx(f, arity=1, kinked=False):
    """A real-valued operation through complex intermediates; params: two complex constants."""
    return Op(arity, lambda draw, *s: _complex(draw), f, kinked)


def _complex_ddof_params(draw, s):
    reduction = _ddof_params(draw, s, least=2)
    return None if reduction is None else (_complex(draw), reduction)


COMPLEX = {
    "c-exp": _cplx(lambda xp, p, x: xp.real(xp.exp(1j * x) * p[0]) + xp.imag(xp.exp(p[1] * xp.tanh(x)))),
    "c-abs": _cplx(lambda xp, p, x: xp.abs(x * p[0] + p[1])),
    "c-angle": _cplx(lambda xp, p, x: xp.angle(x * p[0] + p[1]), kinked=True),
    "c-conj": _cplx(lambda xp, p, x: xp.imag(xp.conj(x * p[0]) * xp.exp(1j * x)) + (x * p[1]).conj().real),
    "c-square": _cplx(lambda xp, p, x: xp.real((x * p[0] + p[1]) ** 2) * 0.5),
    "c-log": _cplx(lambda xp, p, x: xp.real(xp.log(x * p[0] + p[1])) + xp.imag(xp.sqrt(x * p[0] + p[1] * 3j)),
                   kinked=True),
    "c-divide": _cplx(lambda xp, p, x: xp.real(p[0] / (x * p[1] + p[0])) + xp.imag(1.0 / (x * p[0] + p[1]))),
    "c-var-std": Op(1, _complex_ddof_params,
                    lambda xp, p, x: xp.var((x + spread(x.shape)) * p[0][0] + p[0][1], axis=p[1][0], ddof=p[1][2])
                    + xp.std((x - spread(x.shape)) * p[0][1], axis=p[1][0], keepdims=p[1][1])),
    "c-pair": _cplx(lambda xp, p, x, y: xp.abs(x + 1j * y + p[1]) + xp.real((x + 1j * y) * p[0]) ** 2
                    + xp.angle(x * p[0] + p[1] + 1j * y * 0.1), arity=2, kinked=True),
    "c-matmul": Op(2, lambda draw, s, t: (_complex(draw), draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                   lambda xp, p, x, y: xp.real((fit(xp, x, (p[1], 2)) * p[0][0]) @ (fit(xp, y, (2, p[2])) * p[0][1]))
                   + xp.abs(xp.sum(fit(xp, x, (p[1], p[2])) * p[0][0] + p[0][1], axis=0))),
}

OPS = {**ELEMENTWISE, **REDUCTIONS, **SHAPES, **LINALG, **COMPLEX}


# ----------------------------------------------------------------------------------------- programs

@dataclasses.dataclass(frozen=True)
class Program:
    """Inputs of given shapes, then operations ``(name, operand indices, params)`` on earlier values."""

    input_shapes: tuple
    ops: tuple
    seed: int

    def inputs(self):
        rng = np.random.default_rng(self.seed)
        return [rng.uniform(-1.5, 1.5, size=s) for s in self.input_shapes]

    def __call__(self, *xs):
        xp = jnp if isinstance(xs[0], jax.Array) else np
        vals = list(xs)
        for name, idx, params in self.ops:
            vals.append(OPS[name].fn(xp, params, *(vals[i] for i in idx)))
        # the last value, plus a little of every other one: fan-out everywhere, all inputs reach the output
        out = xp.sum(vals[-1] * weights(np.shape(vals[-1])))
        for v in vals[:-1]:
            out = out + 0.1 * xp.mean(v)
        return out

    @property
    def kinked(self) -> bool:
        return any(OPS[name].kinked for name, _, _ in self.ops)

    def describe(self) -> str:
        lines = [f"inputs {list(self.input_shapes)} (seed {self.seed})"]
        n = len(self.input_shapes)
        for k, (name, idx, params) in enumerate(self.ops):
            lines.append(f"  v{n + k} = {name}({', '.join(f'v{i}' for i in idx)}; {params!r})")
        return "\n".join(lines)


def _sample(shape):
    return np.linspace(-0.9, 1.1, math.prod(shape)).reshape(shape)


@st.composite
def programs(draw, names=tuple(sorted(OPS))):
    base = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    options = sorted({base, (1, base[1]), (base[0], 1), (base[1],), (), (1, 1), (2,) + base})
    shapes = [base] + [draw(st.sampled_from(options)) for _ in range(draw(st.integers(0, 2)))]
    shapes = draw(st.permutations(shapes))
    cur, ops = list(shapes), []
    while len(ops) < draw(st.integers(1, 6)):
        name = draw(st.sampled_from(names))
        op = OPS[name]
        idx = tuple(draw(st.integers(0, len(cur) - 1)) for _ in range(op.arity))
        if op.arity == 2 and (name in ELEMENTWISE or name == "c-pair"):   # the shapes must broadcast
            try:
                np.broadcast_shapes(cur[idx[0]], cur[idx[1]])
            except ValueError:
                idx = (idx[0], idx[0])
        params = op.params(draw, *(cur[i] for i in idx))
        if params is None:
            continue
        shape = np.shape(op.fn(np, params, *(_sample(cur[i]) for i in idx)))
        if 0 < math.prod(shape) <= MAX_SIZE and len(shape) <= 3:
            ops.append((name, idx, params))
            cur.append(shape)
    return Program(tuple(shapes), tuple(ops), draw(st.integers(0, 2 ** 31 - 1)) ^ _SALT)


def _close(got, want, rtol, atol, what, prog):
    got, want = np.asarray(got), np.asarray(want)
    assert not np.iscomplexobj(got), f"{what}: the tracer returned a complex gradient\n{prog.describe()}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}\n{prog.describe()}"
    err = np.abs(got - want)
    bound = atol + rtol * np.maximum(np.abs(got), np.abs(want))
    assert np.all(err <= bound), (
        f"{what}: max abs error {err.max():.3e} (bound {bound.flat[np.argmax(err - bound)]:.3e})\n{prog.describe()}")


def _checked_inputs(prog):
    xs = prog.inputs()
    with np.errstate(all="ignore"):
        value = float(prog(*xs))
    assume(np.isfinite(value) and abs(value) < 1e6)
    return xs, tuple(range(len(xs))), max(1.0, abs(value))


def _policy(lowered: bool):
    """grad's memory policy on every array (threshold 0) or at its default (64 KiB: off for these sizes)."""
    return _memory.threshold(0) if lowered else nullcontext()


def _jax(f, *args):
    """``jax.jit(f)(*args)`` in float64, as NumPy arrays."""
    with jax.enable_x64(True):
        return jax.tree.map(np.asarray, jax.jit(f)(*[jax.tree.map(jnp.asarray, a) for a in args]))


def _flat(prog, shapes):
    """The program as a function of one vector holding all its inputs (for a single Hessian)."""
    sizes = np.cumsum([0] + [math.prod(s) for s in shapes])

    def f(z):
        xp = jnp if isinstance(z, jax.Array) else np
        return prog(*(xp.reshape(z[a:b], s) for a, b, s in zip(sizes[:-1], sizes[1:], shapes)))
    return f


# ------------------------------------------------------------------------------------------- tests

def test_lowered_memory_policy_keeps_integer_and_boolean_index_arrays():
    """Found by the fuzz: with the policy on, a node's index array became its shape, so the backward
    scatter (getitem, take_along_axis) and the second-order gather (scatter_add) failed with IndexError."""
    x, w = np.arange(6.0).reshape(3, 2) / 5, np.array([[2.0, -1.0]])
    cases = [lambda x, xp: x[np.array([0, 2, 2])] * w,
             lambda x, xp: x[np.array([True, False, True])] * w,
             lambda x, xp: xp.take_along_axis(x, np.array([[1, 0]]), axis=0) * w]
    for f in cases:
        g = lambda z: np.sum(f(z, np) ** 3)                                         # noqa: E731
        want = _jax(jax.grad(lambda z: jnp.sum(f(z, jnp) ** 3)), x)
        want2 = _jax(jax.hessian(lambda z: jnp.sum(f(z, jnp) ** 3)), x)
        with _memory.threshold(0):
            np.testing.assert_allclose(tracer.grad(g)(x), want, rtol=EXACT_RTOL, atol=EXACT_ATOL)
            np.testing.assert_allclose(tracer.hessian(g)(x), want2, rtol=EXACT_RTOL, atol=EXACT_ATOL)


@FUZZ
@given(prog=programs(), lowered=st.booleans())
def test_surface_programs_grad_matches_jax(prog, lowered):
    xs, argnums, scale = _checked_inputs(prog)
    with _policy(lowered):
        got = tracer.grad(prog, argnums=argnums)(*xs)
    want = _jax(jax.grad(prog, argnums=argnums), *xs)
    for k in argnums:
        _close(got[k], want[k], EXACT_RTOL, EXACT_ATOL * scale, f"tracer vs jax.grad, input {k}", prog)
    if not prog.kinked:   # an independent third opinion where no finite difference can straddle a kink
        num = check.numerical_grad(prog, *xs, argnums=argnums)
        for k in argnums:
            _close(want[k], num[k], FD_RTOL, FD_ATOL * scale, f"jax vs finite differences, input {k}", prog)


# jax.hessian compiles for ~0.7 s per program: a thirtieth of the budget; forward mode a twentieth
@settings(FUZZ, max_examples=max(EXAMPLES // 30, 3))
@given(prog=programs(), lowered=st.booleans())
def test_surface_programs_hessian_matches_jax(prog, lowered):
    xs, _, scale = _checked_inputs(prog)
    f, z = _flat(prog, prog.input_shapes), np.concatenate([np.ravel(x) for x in xs])
    with _policy(lowered):
        got = tracer.hessian(f)(z)
    want = _jax(jax.hessian(f), z)
    assert np.all(np.isfinite(want)), prog.describe()
    _close(got, want, EXACT_RTOL, EXACT_ATOL * scale, "tracer.hessian vs jax.hessian", prog)


@settings(FUZZ, max_examples=max(EXAMPLES // 20, 3))
@given(prog=programs(), lowered=st.booleans())
def test_surface_programs_jvp_matches_jax(prog, lowered):
    xs, _, scale = _checked_inputs(prog)
    ts = [np.random.default_rng(prog.seed + 1).normal(size=np.shape(x)) for x in xs]
    with _policy(lowered):
        value, tangent = tracer.jvp(prog, tuple(xs), tuple(ts))
    want_value, want_tangent = _jax(lambda p, t: jax.jvp(prog, p, t), tuple(xs), tuple(ts))
    _close(value, want_value, EXACT_RTOL, EXACT_ATOL * scale, "tracer.jvp value vs jax.jvp", prog)
    _close(tangent, want_tangent, EXACT_RTOL, EXACT_ATOL * scale, "tracer.jvp tangent vs jax.jvp", prog)
