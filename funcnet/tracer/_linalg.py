"""The linear-algebra part of the rule table: products, ``einsum``, and ``numpy.linalg``.

Nine primitives carry all of it; everything else is composed from them and the primitives of
``_rules.py``, so every function here has a VJP and a JVP rule, at any order:

====================  ==========================================================================
primitive             rules (``g``: output cotangent, ``t``: input tangent; ᵀ swaps the last two axes)
====================  ==========================================================================
``einsum``            linear in each operand: the cotangent of operand *k* is one ``einsum`` of ``g``
                      with the other operands (an identity matrix per repeated index, a vector of
                      ones per index summed only in operand *k*); the tangent is ``einsum`` with
                      ``t`` in place of operand *k*
``linalg.inv``        ``Ā = -Xᵀ g Xᵀ``, ``dX = -X t X``  (``X = A⁻¹``)
``linalg.det``        ``Ā = g det(A) A⁻ᵀ``, ``d det = det(A) tr(A⁻¹ t)``
``linalg.logabsdet``  ``Ā = g A⁻ᵀ``, ``d = tr(A⁻¹ t)`` (``slogdet``'s second result; its sign is constant)
``linalg.solve``      ``B̄ = A⁻ᵀ g``, ``Ā = -B̄ Xᵀ``; ``dX = A⁻¹ (t_B - t_A X)``
``linalg.cholesky``   ``dL = L Φ(L⁻¹ S L⁻ᵀ)``, ``S = (t + tᵀ)/2``, Φ: lower triangle, diagonal halved;
                      ``Ā = sym(L⁻ᵀ Φ(Lᵀ ḡ) L⁻¹)``
``linalg.eigh``       ``A = V diag(w) Vᵀ``: ``dw = diag(Vᵀ S V)``, ``dV = V (F ∘ Vᵀ S V)``,
                      ``F_ij = 1/(w_j - w_i)``; ``Ā = sym(V (diag(w̄) + F ∘ Vᵀ V̄) Vᵀ)``
``linalg.svd``        ``A = U diag(s) Vᵀ`` (thin): the rule of ``jax.numpy.linalg.svd`` and its transpose
``linalg.pinv``       ``dP = -P t P + P Pᵀ tᵀ (I - A P) + (I - P A) tᵀ Pᵀ P`` (Golub-Pereyra; rank constant),
                      ``Ā = -Pᵀ g Pᵀ + (I - A P) gᵀ P Pᵀ + Pᵀ P gᵀ (I - P A)``
====================  ==========================================================================

``eigh`` and ``svd`` have several results; each primitive returns them packed in one array
(``eigh``: ``w`` on top of ``V``, shape ``(..., n + 1, n)``; ``svd``: ``U``, ``s``, ``V`` stacked,
``(..., m + 1 + n, k)``) and the public functions slice it, so one decomposition serves every result and
the cotangents of the unused results are zero.

Conventions (as JAX; where JAX's value is not the derivative, the table says so):

==========================  ======================================================================
function                    convention
==========================  ======================================================================
complex ``dot/einsum/...``  no conjugation in the rules (the cotangent is the transpose of the
                            JVP, as ``jax.vjp``); ``vdot`` conjugates its first argument
``cholesky``, ``eigh``      the input is taken as symmetric: the gradient is symmetrised
                            ``(Ā + Āᵀ)/2``; NumPy itself reads one triangle only, so finite
                            differences of a non-symmetric perturbation differ
``eigh``/``svd`` vectors    no derivative at a repeated eigen/singular value (or ``s = 0`` for a
                            non-square ``svd``): ``nan`` where the vectors' cotangent couples the
                            repeated pair (JAX: ``inf``/``nan``); values alone stay finite
``svd(full_matrices=True)`` of a non-square matrix: no derivative of the extra columns (JAX raises too)
``norm(x, 0)``              a count: gradient zero
``norm`` at ``x = 0``       2-norm and ``'fro'``: ``nan`` (as JAX); 1-norm: ``sign`` with
                            ``abs'(0) = 1``; ``inf``/``-inf``/``2``/``-2``: ties share equally
``det`` of a singular A     ``det · A⁻ᵀ`` is ``inf``/``nan`` (JAX returns the adjugate)
``slogdet``, ``cholesky``,  real inputs only (a ``TypeError`` for complex ones)
``eigh``, ``svd``, ``pinv``
==========================  ======================================================================
"""

from __future__ import annotations

import functools
import string
from typing import Any, NamedTuple

import numpy as np

from funcnet.tracer._core import Box, MissingRuleError, strip
from funcnet.tracer import _rules as R
from funcnet.tracer._rules import FUNCTIONS, EveryArgument, define, unbroadcast

__all__ = ["einsum", "dot", "vdot", "inner", "outer", "kron", "cross", "trace", "diagonal", "diag", "diagflat",
           "linalg", "NUMPY_NAMES", "SlogdetResult", "EighResult", "SVDResult"]


# ------------------------------------------------------------------ small helpers
def _shape(x) -> tuple:
    return tuple(getattr(x, "shape", np.shape(strip(x))))


def _ndim(x) -> int:
    return len(_shape(x))


def _dtype(x):
    dtype = getattr(x, "dtype", None)
    return dtype if dtype is not None else np.result_type(strip(x))


def _is_complex(x) -> bool:
    return np.issubdtype(_dtype(x), np.complexfloating)


def _conj(x):
    """``conj(x)``: ``x`` itself when real; else NumPy's ``conjugate`` (dispatched to the table on traced values)."""
    return np.conjugate(x) if _is_complex(x) else x


if np.conjugate not in FUNCTIONS:   # the elementwise part of the table defines it; a stand-in until it is loaded
    define(np.conjugate, "conjugate", dispatch=np.conjugate, reads=(),
           vjp=lambda g, ans, x: np.conjugate(g), jvp=lambda t, ans, x: np.conjugate(t))


def _mT(x):
    """Swap the last two axes."""
    nd = _ndim(x)
    return R.permute_dims(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def _expand(x, n: int):
    """Append ``n`` axes of size 1 (a batch of scalars against a batch of matrices)."""
    return R.reshape(x, _shape(x) + (1,) * n)


def _real_only(name: str, *xs):
    for x in xs:
        if _is_complex(x):
            raise TypeError(f"{name}: the tracer differentiates it for real inputs only; got dtype {_dtype(x)}")


def _square(name: str, a):
    s = _shape(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ValueError(f"{name}: expected a square matrix or a stack of them, shape (..., n, n); got shape {s}")


# ------------------------------------------------------------------ einsum: parsing
_LETTERS = string.ascii_letters


def _fresh(used: str):
    return (c for c in _LETTERS if c not in used)


@functools.lru_cache(maxsize=512)
def _normalize(subscripts: str, shapes: tuple) -> str:
    """``subscripts`` made explicit: every ``...`` spelled out in letters and the output written after ``->``.

    ``"...ij,...j"`` on shapes ``(2, 3, 4), (2, 4)`` becomes ``"Aij,Aj->Ai"``. The implicit output is NumPy's:
    the broadcast (ellipsis) axes, then the letters used once, in alphabetical order.
    """
    subscripts = subscripts.replace(" ", "")
    lhs, arrow, rhs = subscripts.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {len(ins)} operand subscripts in {subscripts!r} but {len(shapes)} operands")
    fresh = _fresh(subscripts)
    n_ell = max([len(s) - len(t.replace("...", "")) for t, s in zip(ins, shapes) if "..." in t], default=0)
    ell = "".join(next(fresh) for _ in range(n_ell))
    out_ins = []
    for t, s in zip(ins, shapes):
        k = len(s) - len(t.replace("...", ""))
        if k < 0 or ("..." not in t and k != 0):
            raise ValueError(f"einsum: subscripts {t!r} do not fit an operand of shape {s}")
        out_ins.append(t.replace("...", ell[n_ell - k:]) if "..." in t else t)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        letters = "".join(out_ins)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
    return ",".join(out_ins) + "->" + out


def _sublist_to_letters(sub) -> str:
    return "".join("..." if a is Ellipsis else _LETTERS[int(a)] for a in sub)


def _split_interleaved(args) -> tuple[str, list]:
    """``einsum(op0, sublist0, op1, sublist1, ..., [sublistout])`` as ``(subscripts, operands)``."""
    ops, subs = list(args[0::2]), [_sublist_to_letters(s) for s in args[1::2]]
    out = None
    if len(ops) > len(subs):
        out = _sublist_to_letters(ops.pop())
    return ",".join(subs) + ("" if out is None else "->" + out), ops


# ------------------------------------------------------------------ einsum: the primitive
def _einsum_fun(*operands, spec):
    # NumPy's contraction-order search (BLAS for pairs) pays off for three operands or more, or large ones
    big = len(operands) > 2 or sum(np.size(o) for o in operands) > 4096
    return np.einsum(spec, *operands, optimize=big)


def _einsum_vjp(k, g, ans, *ops, spec):
    """The cotangent of operand ``k``: ``einsum`` of ``g`` with the other operands, into operand ``k``'s axes.

    A letter repeated in operand ``k`` (``"ii"``) gets a fresh letter per extra occurrence, tied to the
    first by an identity matrix (the diagonal embedding); a letter summed in operand ``k`` alone (``"ij->i"``)
    comes from a vector of ones (the broadcast); an axis of size 1 that broadcast against a longer one is
    summed back.
    """
    lhs, out = spec.split("->")
    ins = lhs.split(",")
    sk, shape_k = ins[k], _shape(ops[k])
    others = [(s, o) for j, (s, o) in enumerate(zip(ins, ops)) if j != k]
    fresh, dtype = _fresh(spec), _dtype(g)
    target, extra_subs, extra_ops, seen = [], [], [], set()
    for ax, c in enumerate(sk):
        if c in seen:
            d = next(fresh)
            target.append(d)
            extra_subs.append(c + d)
            extra_ops.append(np.eye(shape_k[ax], dtype=dtype))
        else:
            seen.add(c)
            target.append(c)
    reached = set(out).union(*[s for s, _ in others])
    for ax, c in enumerate(sk):
        if c not in reached:
            reached.add(c)
            extra_subs.append(c)
            extra_ops.append(np.ones(shape_k[ax], dtype=dtype))
    subs = [out] + [s for s, _ in others] + extra_subs
    h = einsum_p(g, *[o for _, o in others], *extra_ops, spec=",".join(subs) + "->" + "".join(target))
    return unbroadcast(h, ops[k]) if _shape(h) != shape_k else h


def _einsum_jvp(k, t, ans, *ops, spec):
    return einsum_p(*[t if j == k else o for j, o in enumerate(ops)], spec=spec)


einsum_p = define(_einsum_fun, "einsum", reads="args", vjp=EveryArgument(_einsum_vjp), jvp=EveryArgument(_einsum_jvp))


def einsum(*args, optimize=None, out=None, dtype=None, order="K", casting="safe"):
    """``numpy.einsum`` on traced values: any subscripts (repeated, implicit, ``...``), or the interleaved form.

    Example: ``einsum("ii", a)`` is the trace, ``einsum("bij,bjk->bik", x, y)`` a batched matmul.
    """
    if out is not None:
        raise TypeError("einsum(..., out=...) would modify a value in place; traced values are immutable")
    if isinstance(args[0], str):
        subscripts, ops = args[0], list(args[1:])
    else:
        subscripts, ops = _split_interleaved(args)
    if dtype is not None:
        ops = [R.astype(o, dtype) for o in ops]
    spec = _normalize(subscripts, tuple(_shape(o) for o in ops))
    return einsum_p(*ops, spec=spec)


# ------------------------------------------------------------------ products built on einsum and matmul
def dot(a, b, out=None):
    """``numpy.dot``: a product for scalars, ``matmul`` up to 2-D, else the sum over ``a``'s last and ``b``'s
    second-to-last axis."""
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return R.multiply(a, b)
    if na <= 2 and nb <= 2:
        return R.matmul(a, b)
    la, lb = _LETTERS[:na], _LETTERS[na:na + nb]
    lb = lb[:-2] + la[-1] + lb[-1] if nb >= 2 else la[-1]
    return einsum_p(a, b, spec=f"{la},{lb}->{la[:-1]}{lb[:-2]}{lb[-1:] if nb >= 2 else ''}")


def vdot(a, b):
    """``numpy.vdot``: ``Σ conj(a) b`` over the flattened arrays (the first argument is conjugated)."""
    return R.matmul(_conj(R.reshape(a, (-1,))), R.reshape(b, (-1,)))


def inner(a, b):
    """``numpy.inner``: the sum over the last axes, ``out[i..., j...] = Σ_k a[i..., k] b[j..., k]``."""
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return R.multiply(a, b)
    la, lb = _LETTERS[:na - 1], _LETTERS[na - 1:na + nb - 2]
    k = _LETTERS[na + nb]
    return einsum_p(a, b, spec=f"{la}{k},{lb}{k}->{la}{lb}")


def outer(a, b, out=None):
    """``numpy.outer``: ``out[i, j] = a.ravel()[i] * b.ravel()[j]``."""
    return R.multiply(R.reshape(a, (-1, 1)), R.reshape(b, (1, -1)))


def kron(a, b):
    """``numpy.kron``: the block matrix ``[a[i, j] * b]``, as a broadcast product of interleaved axes, reshaped."""
    sa, sb = _shape(a), _shape(b)
    nd = max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + sa, (1,) * (nd - len(sb)) + sb
    a2 = R.reshape(a, tuple(x for n in sa for x in (n, 1)))
    b2 = R.reshape(b, tuple(x for n in sb for x in (1, n)))
    return R.reshape(R.multiply(a2, b2), tuple(p * q for p, q in zip(sa, sb)))


def _moveaxis_last(x, axis):
    nd = _ndim(x)
    axis %= nd
    return R.permute_dims(x, tuple(i for i in range(nd) if i != axis) + (axis,))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """``numpy.cross`` of 3-vectors (a 2-vector has a zero third component; two 2-vectors give the z part)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _moveaxis_last(a, axisa), _moveaxis_last(b, axisb)
    na, nb = _shape(a)[-1], _shape(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(f"cross: vectors must have 2 or 3 components, got {na} and {nb}")
    comp = [[a[..., i] for i in range(na)], [b[..., i] for i in range(nb)]]
    if na == nb == 2:
        return comp[0][0] * comp[1][1] - comp[0][1] * comp[1][0]
    (a0, a1, *a2), (b0, b1, *b2) = comp
    a2, b2 = (a2 or [0.0])[0], (b2 or [0.0])[0]
    c = R.stack(a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0, axis=-1)
    nd = _ndim(c)
    axisc %= nd
    return R.permute_dims(c, tuple(range(axisc)) + (nd - 1,) + tuple(range(axisc, nd - 1)))


def diagonal(a, offset=0, axis1=0, axis2=1):
    """``numpy.diagonal``: the ``offset`` diagonal of the ``(axis1, axis2)`` planes, as the last axis."""
    nd = _ndim(a)
    ax1, ax2 = axis1 % nd, axis2 % nd
    if ax1 == ax2:
        raise ValueError("diagonal: axis1 and axis2 cannot be the same")
    x = R.permute_dims(a, tuple(i for i in range(nd) if i not in (ax1, ax2)) + (ax1, ax2))
    rows, cols = _shape(x)[-2:]
    r0, c0 = max(-offset, 0), max(offset, 0)
    n = max(min(rows - r0, cols - c0), 0)
    x = R.getitem(x, (Ellipsis, slice(r0, r0 + n), slice(c0, c0 + n)))
    return einsum_p(x, spec=_normalize("...ii->...i", (_shape(x),)))


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """``numpy.trace``: the sum of :func:`diagonal`."""
    if out is not None:
        raise TypeError("trace(..., out=...) would modify a value in place; traced values are immutable")
    d = diagonal(a, offset, axis1, axis2)
    d = R.sum(d, axis=_ndim(d) - 1)
    return d if dtype is None else R.astype(d, dtype)


def diag(v, k=0):
    """``numpy.diag``: a 2-D ``v`` gives its ``k``-th diagonal; a 1-D ``v`` gives the matrix with ``v`` there."""
    nd = _ndim(v)
    if nd == 2:
        return diagonal(v, k)
    if nd != 1:
        raise ValueError(f"diag: input must be 1-D or 2-D, got shape {_shape(v)}")
    n, a = _shape(v)[0], abs(k)
    m = R.reshape(v, (n, 1)) * np.eye(n, dtype=_dtype(v))      # v on the diagonal of an n x n matrix
    if a == 0:
        return m
    zeros = np.zeros((n, a), dtype=m.dtype)                      # then k zero columns and rows around it
    m = R.concat(zeros, m, axis=1) if k > 0 else R.concat(m, zeros, axis=1)
    zeros = np.zeros((a, n + a), dtype=m.dtype)
    return R.concat(m, zeros, axis=0) if k > 0 else R.concat(zeros, m, axis=0)


def diagflat(v, k=0):
    """``numpy.diagflat``: :func:`diag` of ``v`` flattened."""
    return diag(R.reshape(v, (-1,)), k)


def _trace_last(x):
    """The trace of each matrix in a stack ``(..., n, n)``."""
    return einsum_p(x, spec=_normalize("...ii->...", (_shape(x),)))


# ------------------------------------------------------------------ numpy.linalg: inverse, determinants, solve
def _sym(x):
    return (x + _mT(x)) * 0.5


inv_p = define(np.linalg.inv, "linalg.inv", reads="ans",
               vjp=lambda g, ans, a: -(_mT(ans) @ g @ _mT(ans)),
               jvp=lambda t, ans, a: -(ans @ t @ ans))

det_p = define(np.linalg.det, "linalg.det",
               vjp=lambda g, ans, a: _expand(g * ans, 2) * _mT(inv_p(a)),
               jvp=lambda t, ans, a: ans * _trace_last(solve_p(a, t)))

logabsdet_p = define(lambda a: np.linalg.slogdet(a)[1], "linalg.logabsdet", reads="args",
                     vjp=lambda g, ans, a: _expand(g, 2) * _mT(inv_p(a)),
                     jvp=lambda t, ans, a: _trace_last(solve_p(a, t)))


def _as_columns(x, b):
    """``x`` with a trailing axis of size 1 when ``b`` is a vector (``solve``'s two kinds of right-hand side)."""
    return _expand(x, 1) if _ndim(b) == 1 else x


def _solve_vjp_b(g, ans, a, b):
    bbar = solve_p(_mT(a), _as_columns(g, b))
    return unbroadcast(bbar[..., 0] if _ndim(b) == 1 else bbar, b)


def _solve_vjp_a(g, ans, a, b):
    bbar = solve_p(_mT(a), _as_columns(g, b))
    return unbroadcast(-(bbar @ _mT(_as_columns(ans, b))), a)


def _solve_jvp_a(t, ans, a, b):
    dx = solve_p(a, t @ _as_columns(ans, b))
    return -(dx[..., 0] if _ndim(b) == 1 else dx)


solve_p = define(np.linalg.solve, "linalg.solve", vjp=(_solve_vjp_a, _solve_vjp_b),
                 jvp=(_solve_jvp_a, lambda t, ans, a, b: solve_p(a, t)))


def _pinv_vjp(g, ans, a, **kw):
    p, pt, gt = ans, _mT(ans), _mT(g)
    m, n = _shape(a)[-2:]
    return (-(pt @ g @ pt) + (np.eye(m, dtype=_dtype(a)) - a @ p) @ gt @ p @ pt
            + pt @ p @ gt @ (np.eye(n, dtype=_dtype(a)) - p @ a))


def _pinv_jvp(t, ans, a, **kw):
    p, pt, tt = ans, _mT(ans), _mT(t)
    m, n = _shape(a)[-2:]
    return (-(p @ t @ p) + p @ pt @ tt @ (np.eye(m, dtype=_dtype(a)) - a @ p)
            + (np.eye(n, dtype=_dtype(a)) - p @ a) @ tt @ pt @ p)


# the Golub-Pereyra derivative of the pseudo-inverse, valid where the rank does not change (as JAX)
pinv_p = define(np.linalg.pinv, "linalg.pinv", vjp=_pinv_vjp, jvp=_pinv_jvp)


# ------------------------------------------------------------------ cholesky
@functools.lru_cache(maxsize=64)
def _phi_mask(n: int, dtype) -> np.ndarray:
    """Φ as a mask: the lower triangle, the diagonal halved."""
    return (np.tril(np.ones((n, n))) - 0.5 * np.eye(n)).astype(dtype)


def _cholesky_vjp(g, ans, a):
    lt = _mT(ans)
    p = _phi_mask(_shape(ans)[-1], _dtype(ans)) * (lt @ g)
    y = solve_p(lt, p)                       # L⁻ᵀ P
    return _sym(_mT(solve_p(lt, _mT(y))))    # sym(L⁻ᵀ P L⁻¹)


def _cholesky_jvp(t, ans, a):
    w = solve_p(ans, _sym(t))                # L⁻¹ S
    x = _mT(solve_p(ans, _mT(w)))            # L⁻¹ S L⁻ᵀ
    return ans @ (_phi_mask(_shape(ans)[-1], _dtype(ans)) * x)


cholesky_p = define(np.linalg.cholesky, "linalg.cholesky", reads="ans", vjp=_cholesky_vjp, jvp=_cholesky_jvp)


# ------------------------------------------------------------------ eigh and svd (results packed in one array)
def _divide_gaps(num, den):
    """``num / den`` where ``den != 0``; where ``den == 0``: 0 if ``num`` is 0 there, else ``nan`` (no derivative)."""
    dv, nv = np.asarray(strip(den)), np.asarray(strip(num))
    gap = np.broadcast_to(dv == 0, np.broadcast_shapes(dv.shape, nv.shape))
    if not gap.any():
        return num / den
    dtype = np.result_type(dv, nv)
    out = (num / (den + gap.astype(dtype))) * (~gap).astype(dtype)
    return out + np.where(gap & (nv != 0), np.nan, 0.0).astype(dtype)


def _couple(d, m):
    """``F ∘ m`` with ``F_ij = 1 / d_ij`` off the diagonal and 0 on it (``nan`` where a repeated pair couples)."""
    n = _shape(m)[-1]
    eye = np.eye(n, dtype=_dtype(m))
    return _divide_gaps(m * (1.0 - eye), d + eye)


def _eigh_fun(a, UPLO="L"):
    w, v = np.linalg.eigh(a, UPLO=UPLO)
    return np.concatenate([w[..., None, :], v], axis=-2)


def _eigh_vjp(g, ans, a, UPLO="L"):
    w, v, gw, gv = ans[..., 0, :], ans[..., 1:, :], g[..., 0, :], g[..., 1:, :]
    n = _shape(w)[-1]
    d = w[..., None, :] - w[..., :, None]                    # d_ij = w_j - w_i
    middle = gw[..., :, None] * np.eye(n, dtype=_dtype(ans)) + _couple(d, _mT(v) @ gv)
    return _sym(v @ middle @ _mT(v))


def _eigh_jvp(t, ans, a, UPLO="L"):
    w, v = ans[..., 0, :], ans[..., 1:, :]
    m = _mT(v) @ _sym(t) @ v
    dw = einsum_p(m, spec=_normalize("...ii->...i", (_shape(m),)))
    dv = v @ _couple(w[..., None, :] - w[..., :, None], m)
    return R.concat(dw[..., None, :], dv, axis=-2)


eigh_p = define(_eigh_fun, "linalg.eigh", reads="ans", vjp=_eigh_vjp, jvp=_eigh_jvp)


def _svd_fun(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return np.concatenate([u, s[..., None, :], np.swapaxes(vh, -1, -2)], axis=-2)


def _svd_parts(p, m):
    return p[..., :m, :], p[..., m, :], p[..., m + 1:, :]


def _svd_vjp(g, ans, a):
    m, n = _shape(a)[-2:]
    (u, s, v), (gu, gs, gv) = _svd_parts(ans, m), _svd_parts(g, m)
    srow, scol = s[..., None, :], s[..., :, None]
    d = srow * srow - scol * scol                            # d_ij = s_j² - s_i²
    j, k = _couple(d, _mT(u) @ gu), _couple(d, _mT(v) @ gv)
    sigma = gs[..., :, None] * np.eye(min(m, n), dtype=_dtype(ans)) + (j + _mT(j)) * srow + scol * (k + _mT(k))
    out = u @ sigma @ _mT(v)
    if m > n:
        out = out + _divide_gaps(gu - u @ (_mT(u) @ gu), srow) @ _mT(v)
    if n > m:
        out = out + u @ _mT(_divide_gaps(gv - v @ (_mT(v) @ gv), srow))
    return out


def _svd_jvp(t, ans, a):
    m, n = _shape(a)[-2:]
    u, s, v = _svd_parts(ans, m)
    srow, scol = s[..., None, :], s[..., :, None]
    d = srow * srow - scol * scol
    ds_mat = _mT(u) @ t @ v
    ds = einsum_p(ds_mat, spec=_normalize("...ii->...i", (_shape(ds_mat),)))
    du = u @ _couple(d, ds_mat * srow + scol * _mT(ds_mat))
    dv = v @ _couple(d, scol * ds_mat + _mT(ds_mat) * srow)
    if m > n:
        tv = t @ v
        du = du + _divide_gaps(tv - u @ (_mT(u) @ tv), srow)
    if n > m:
        tu = _mT(t) @ u
        dv = dv + _divide_gaps(tu - v @ (_mT(v) @ tu), srow)
    return R.concat(du, ds[..., None, :], dv, axis=-2)


svd_p = define(_svd_fun, "linalg.svd", reads=("ans", "shape"), vjp=_svd_vjp, jvp=_svd_jvp)


# ------------------------------------------------------------------ the public numpy.linalg functions
class SlogdetResult(NamedTuple):
    sign: Any
    logabsdet: Any


class EighResult(NamedTuple):
    eigenvalues: Any
    eigenvectors: Any


class SVDResult(NamedTuple):
    U: Any
    S: Any
    Vh: Any


def inv(a):
    """``numpy.linalg.inv`` of a matrix or a stack ``(..., n, n)``."""
    _square("inv", a)
    return inv_p(a)


def det(a):
    """``numpy.linalg.det`` of a matrix or a stack ``(..., n, n)``."""
    _square("det", a)
    return det_p(a)


def slogdet(a):
    """``numpy.linalg.slogdet``: ``(sign, log|det a|)``; the sign is a constant (gradient 0, as JAX)."""
    _square("slogdet", a)
    _real_only("slogdet", a)
    return SlogdetResult(np.linalg.slogdet(np.asarray(strip(a)))[0], logabsdet_p(a))


def solve(a, b):
    """``numpy.linalg.solve``: ``x`` with ``a @ x = b``; ``b`` of shape ``(n,)`` is a vector, else ``(..., n, k)``."""
    _square("solve", a)
    return solve_p(a, b)


def cholesky(a, upper=False):
    """``numpy.linalg.cholesky``: lower ``L`` with ``a = L Lᵀ`` (``upper=True``: ``Lᵀ``); gradient symmetrised."""
    _square("cholesky", a)
    _real_only("cholesky", a)
    low = cholesky_p(a)
    return _mT(low) if upper else low


def eigh(a, UPLO="L"):
    """``numpy.linalg.eigh``: ``(eigenvalues, eigenvectors)`` of a symmetric matrix; gradient symmetrised."""
    _square("eigh", a)
    _real_only("eigh", a)
    packed = eigh_p(a, UPLO=UPLO)
    return EighResult(packed[..., 0, :], packed[..., 1:, :])


def eigvalsh(a, UPLO="L"):
    """``numpy.linalg.eigvalsh``: the eigenvalues of :func:`eigh`."""
    return eigh(a, UPLO)[0]


def svdvals(x):
    """The singular values, descending (``numpy.linalg.svdvals``)."""
    _real_only("svd", x)
    if _ndim(x) < 2:
        raise ValueError(f"svd: expected a matrix or a stack of them, shape (..., m, n); got shape {_shape(x)}")
    return svd_p(x)[..., _shape(x)[-2], :]


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """``numpy.linalg.svd``: ``(U, S, Vh)``, or ``S`` alone with ``compute_uv=False``.

    ``full_matrices=True`` of a non-square traced matrix has no derivative (the extra columns of ``U`` or
    ``Vh`` are not unique; JAX raises too): pass ``full_matrices=False``.
    """
    if not isinstance(a, Box):                 # plain values: NumPy's own answer
        return np.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv, hermitian=hermitian)
    if not compute_uv:
        return svdvals(a)
    _real_only("svd", a)
    m, n = _shape(a)[-2:]
    if full_matrices and m != n:
        raise MissingRuleError(
            f"svd(full_matrices=True) of a non-square traced matrix (shape {_shape(a)}) has no derivative: the "
            "extra columns of U or Vh are not unique (jax.grad raises too). Pass full_matrices=False.")
    packed = svd_p(a)
    u, s, v = _svd_parts(packed, m)
    return SVDResult(u, s, _mT(v))


def pinv(a, rcond=None, hermitian=False, *, rtol=None):
    """``numpy.linalg.pinv``: the Moore-Penrose pseudo-inverse ``(..., n, m)`` of ``(..., m, n)``."""
    _real_only("pinv", a)
    kw = {"hermitian": hermitian, "rcond": rcond, "rtol": rtol}
    return pinv_p(a, **{k: v for k, v in kw.items() if v is not None})


def cond(x, p=None):
    """``numpy.linalg.cond``: ``s_max / s_min`` for ``p`` in (None, 2), ``s_min / s_max`` for -2, else
    ``norm(x, p) * norm(inv(x), p)``."""
    if p in (None, 2, -2):
        s = svdvals(x)
        big, small = s[..., 0], s[..., -1]
        return small / big if p == -2 else big / small
    return norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))


def matrix_rank(a, *args, **kwargs):
    """``numpy.linalg.matrix_rank``: an integer, computed on the plain value (no gradient, as JAX)."""
    return np.linalg.matrix_rank(np.asarray(strip(a)), *args, **kwargs)


def matrix_power(a, n):
    """``numpy.linalg.matrix_power``: ``a @ a @ ... @ a`` by repeated squaring (``inv(a)`` for ``n < 0``)."""
    _square("matrix_power", a)
    if n < 0:
        a, n = inv_p(a), -n
    result = None
    while n:
        if n & 1:
            result = a if result is None else result @ a
        n >>= 1
        if n:
            a = a @ a
    if result is None:
        return np.broadcast_to(np.eye(_shape(a)[-1], dtype=_dtype(a)), _shape(a)).copy()
    return result


def multi_dot(arrays, out=None):
    """``numpy.linalg.multi_dot``: ``dot`` of the arrays left to right (1-D first and last arrays allowed)."""
    result = arrays[0]
    for x in arrays[1:]:
        result = dot(result, x)
    return result


# ------------------------------------------------------------------ norms
def _abs2(x):
    return np.real(x * np.conjugate(x)) if _is_complex(x) else x * x


def _kept(r, x, axes, keepdims):
    if not keepdims:
        return r
    shape = tuple(1 if i in axes else n for i, n in enumerate(_shape(x)))
    return R.reshape(r, shape)


def vector_norm(x, axis=None, keepdims=False, ord=2):  # noqa: A002
    """``numpy.linalg.vector_norm``: ``(Σ |x|^p)^(1/p)`` over ``axis`` (all axes by default).

    ``ord``: ``2`` (default), ``1``, ``inf`` (max |x|), ``-inf`` (min |x|), ``0`` (the count of nonzeros:
    gradient 0, as JAX), or any other number ``p``.
    """
    nd = _ndim(x)
    axes = tuple(range(nd)) if axis is None else tuple(a % nd for a in (axis if isinstance(axis, tuple) else (axis,)))
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
    if ord is None or ord == 2:
        r = R.sqrt(R.sum(_abs2(x), axis=axes))
    elif ord == 0:
        r = np.sum(np.asarray(strip(x)) != 0, axis=axes).astype(np.real(np.zeros((), _dtype(x))).dtype)
    elif ord == 1:
        r = R.sum(np.abs(x), axis=axes)
    elif ord == np.inf:
        r = R.max(np.abs(x), axis=axes)
    elif ord == -np.inf:
        r = R.min(np.abs(x), axis=axes)
    else:
        r = R.sum(np.abs(x) ** ord, axis=axes) ** (1.0 / ord)
    return _kept(r, x, axes, keepdims)


def matrix_norm(x, ord="fro", keepdims=False, axis=(-2, -1)):  # noqa: A002
    """``numpy.linalg.matrix_norm`` over the two ``axis`` (rows, columns).

    ``ord``: ``'fro'``, ``'nuc'`` (Σ singular values), ``2``/``-2`` (largest/smallest singular value),
    ``1``/``-1`` (max/min column sum of |x|), ``inf``/``-inf`` (max/min row sum of |x|).
    """
    nd = _ndim(x)
    row, col = axis[0] % nd, axis[1] % nd
    if row == col:
        raise ValueError(f"norm: duplicate axes given: {axis}")
    if ord in (None, "fro", "f"):
        r = R.sqrt(R.sum(_abs2(x), axis=(row, col)))
    elif ord in ("nuc", 2, -2):
        moved = R.permute_dims(x, tuple(i for i in range(nd) if i not in (row, col)) + (row, col))
        s = svdvals(moved)
        r = R.sum(s, axis=_ndim(s) - 1) if ord == "nuc" else (R.max if ord == 2 else R.min)(s, axis=_ndim(s) - 1)
    elif ord in (1, -1, np.inf, -np.inf):
        summed, kept = (row, col) if ord in (1, -1) else (col, row)
        kept -= kept > summed
        r = (R.max if ord > 0 else R.min)(R.sum(np.abs(x), axis=summed), axis=kept)
    else:
        raise ValueError(f"norm: invalid norm order {ord!r} for matrices")
    return _kept(r, x, (row, col), keepdims)


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002
    """``numpy.linalg.norm``: a vector norm over one axis, a matrix norm over two (see :func:`vector_norm`,
    :func:`matrix_norm`); with ``ord=None, axis=None``, the 2-norm of the flattened array."""
    nd = _ndim(x)
    if axis is None:
        if ord is None:
            return _kept(R.sqrt(R.sum(_abs2(x))), x, tuple(range(nd)), keepdims)
        if nd not in (1, 2):
            raise ValueError(f"norm: improper number of dimensions to norm with ord={ord!r}: {nd} (expected 1 or 2)")
        axis = tuple(range(nd))
    axis = tuple(axis) if isinstance(axis, (tuple, list)) else (int(axis),)
    if len(axis) == 1:
        return vector_norm(x, axis=axis, keepdims=keepdims, ord=2 if ord is None else ord)
    if len(axis) == 2:
        return matrix_norm(x, ord="fro" if ord is None else ord, keepdims=keepdims, axis=axis)
    raise ValueError(f"norm: improper number of dimensions to norm: axis {axis}")


# ------------------------------------------------------------------ the Array API's linalg (last two axes)
def _api_trace(x, offset=0, dtype=None):
    return trace(x, offset, -2, -1, dtype=dtype)


def _api_diagonal(x, offset=0):
    return diagonal(x, offset, -2, -1)


def _api_outer(a, b):
    if _ndim(a) != 1 or _ndim(b) != 1:
        raise ValueError(f"linalg.outer: expected two vectors, got shapes {_shape(a)} and {_shape(b)}")
    return outer(a, b)


def _api_cross(a, b, axis=-1):
    return cross(a, b, axis=axis)


linalg = dict(
    inv=inv, det=det, slogdet=slogdet, solve=solve, cholesky=cholesky, eigh=eigh, eigvalsh=eigvalsh, svd=svd,
    svdvals=svdvals, norm=norm, vector_norm=vector_norm, matrix_norm=matrix_norm, matrix_power=matrix_power,
    multi_dot=multi_dot, pinv=pinv, cond=cond, matrix_rank=matrix_rank,
    trace=_api_trace, diagonal=_api_diagonal, outer=_api_outer, cross=_api_cross,
    matmul=lambda x1, x2: x1 @ x2, matrix_transpose=_mT,
    vecdot=lambda x1, x2, axis=-1: R.sum(_conj(x1) * x2, axis=axis % max(_ndim(x1), _ndim(x2))),
)
NAMESPACE = dict(einsum=einsum, dot=dot, vdot=vdot, inner=inner, outer=outer, kron=kron, cross=cross, trace=trace,
                 diagonal=diagonal, diag=diag, diagflat=diagflat)

# NumPy's functions on traced values (through __array_function__)
for _name, _f in NAMESPACE.items():
    FUNCTIONS[getattr(np, _name)] = _f
for _name, _f in linalg.items():
    if hasattr(np.linalg, _name):            # the Array API names are in NumPy >= 2.0
        FUNCTIONS[getattr(np.linalg, _name)] = _f
NUMPY_NAMES = sorted([f"numpy.{k}" for k in NAMESPACE] + [f"numpy.linalg.{k}" for k in linalg])
