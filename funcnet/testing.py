r"""Gradient assertions for your own pytest suite.

Two checks, in the manner of ``jax.test_util``:

* `assert_grads_close` computes the gradient of a scalar function with several
  methods (``jax.grad``, funcnet's tracer, finite differences) and raises an
  ``AssertionError`` carrying the `funcnet.check.GradReport` when they disagree.
  A method that cannot run the function is skipped with its reason in the report; if
  fewer than two methods ran, nothing was compared, and that is a failure too.
* `check_grads` checks forward mode (JVP) and reverse mode (VJP) of any function
  along random directions against float64 central differences, up to a given order.

    from funcnet import testing

    def test_my_loss_gradient():
        testing.assert_grads_close(my_loss, params, batch, methods=("jax", "fd"))
        testing.check_grads(my_layer, (params, x), order=2)

Both are deterministic: the same ``seed`` draws the same directions.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

from funcnet._boundary import count, real
from funcnet.check import GradReport, compare_grads

__all__ = ["assert_grads_close", "check_grads", "GradAssertionError"]

_MODES = ("rev", "fwd")
_BACKENDS = ("jax", "tracer")
# (eps, rtol, atol) for check_grads, by the dtype f computes in at float64 inputs
_CHECK_DEFAULTS = {np.dtype(np.float64): (1e-4, 1e-5, 1e-5), np.dtype(np.float32): (1e-2, 2e-2, 2e-2)}


class GradAssertionError(AssertionError):
    """A gradient check failed. ``report`` holds the `funcnet.check.GradReport` (``None`` for
    `check_grads`, whose message states the numbers)."""

    def __init__(self, message: str, report: GradReport | None = None):
        super().__init__(message)
        self.report = report


# ----------------------------------------------------------------------------- assert_grads_close
def assert_grads_close(f: Callable, *args, argnums: int | Sequence[int] = 0,
                       methods: Sequence[str] = ("jax", "tracer", "fd"), rtol: float | None = None,
                       atol: float | None = None, fd_rtol: float | None = None, fd_atol: float | None = None,
                       eps: float | None = None, has_aux: bool = False) -> GradReport:
    r"""Assert that every method that can run ``f`` gives the same gradient.

    Runs `funcnet.check.compare_grads` (everything in float64) and checks, for
    every leaf and every pair of methods that ran, ``|a - b| <= atol + rtol·max(|a|, |b|)``
    element by element.

    Methods: ``"jax"`` (``jax.grad``), ``"tracer"`` (`funcnet.tracer.grad`),
    ``"fd"`` (float64 central differences), ``"manual"`` (the delta rule, for
    `funcnet.manual.mlp_loss` losses). A method that cannot run ``f`` (the tracer on
    a Flax model or on code that calls ``jax.numpy`` directly) is skipped and named in the
    report with its error: ``tracer: cannot run (TypeError: ...)``.

    Args:
      f: a scalar function of ``args`` (``(value, aux)`` with ``has_aux=True``).
      *args: the point; pytrees of float arrays.
      argnums: which argument(s) to differentiate, as in ``jax.grad``.
      methods: two or more method names.
      rtol, atol: tolerance for every pair of methods (default for float64:
        rtol=1e-8, atol=1e-10 between exact methods, 1e-5/1e-6 with finite differences).
      fd_rtol, fd_atol: tolerance for the pairs with finite differences, if different
        from ``rtol``/``atol``.
      eps: finite-difference step (default: per dtype, see `funcnet.check.numerical_grad`).
      has_aux: ``f`` returns ``(value, aux)``; only the value is differentiated.

    Returns:
      The `funcnet.check.GradReport`, when the check passes.

    Raises:
      GradAssertionError: (an ``AssertionError``) the gradients disagree, a method returned
        something that is not a gradient, or fewer than two methods could run ``f``. The
        message is the report (first differing leaf named); ``.report`` holds it.
      TypeError, ValueError: bad arguments (as `funcnet.check.compare_grads`).

    Examples:
      >>> import numpy as np
      >>> from funcnet import testing
      >>> r = testing.assert_grads_close(lambda w: (w ** 3).sum(), np.array([0.5, -1.0]))
      >>> r.ran
      ('jax', 'tracer', 'numerical')
    """
    report = compare_grads(
        f, *args, argnums=argnums, methods=methods, eps=eps, rtol=rtol, atol=atol,
        numerical_rtol=fd_rtol if fd_rtol is not None else rtol,
        numerical_atol=fd_atol if fd_atol is not None else atol, has_aux=has_aux)
    if len(report.ran) < 2:
        raise GradAssertionError(
            f"assert_grads_close: only {len(report.ran)} of the methods {report.methods} could run f, so no "
            f"gradients were compared (a check that compares nothing fails):\n{report}", report)
    if not report.ok:
        bad = report.first_mismatch
        what = (f"gradients disagree at leaf {bad.leaf} ({bad.methods[0]} vs {bad.methods[1]})" if bad
                else f"a method failed: {', '.join(report.failures)}")
        raise GradAssertionError(f"assert_grads_close: {what}\n{report}", report)
    return report


# ----------------------------------------------------------------------------- check_grads
class _Backend(NamedTuple):
    """How one autodiff system evaluates, linearizes forward and pulls back."""

    name: str
    asarray: Callable          # float64 leaf -> the array type f is called with
    jvp: Callable              # (f, primals tuple, tangents tuple) -> (out, tangent_out)
    vjp: Callable              # (f, primals tuple) -> (out, vjp_fn); vjp_fn(ct) -> tuple like primals


def _jax_backend() -> _Backend:
    import jax.numpy as jnp

    return _Backend("jax", lambda a: jnp.asarray(a, jnp.float64), jax.jvp, lambda f, p: jax.vjp(f, *p))


def _tracer_backend() -> _Backend:
    from funcnet import tracer

    return _Backend("tracer", lambda a: np.asarray(a, np.float64),
                    lambda f, p, t: tracer.jvp(f, p, t), lambda f, p: tracer.vjp(f, *p))


class _Settings(NamedTuple):
    backend: _Backend
    modes: tuple
    eps: float
    rtol: float
    atol: float
    rng: np.random.Generator


def _named_leaves(tree, name: str) -> list[tuple[str, Any]]:
    return [(name + jax.tree_util.keystr(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _float_tree(tree, name: str, where: str):
    """Check that every leaf of ``tree`` is a finite real float array; return it as float64 NumPy."""
    for path, leaf in _named_leaves(tree, name):
        arr = np.asarray(leaf)
        if not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"check_grads: {where} must be real float arrays, but {path} has dtype {arr.dtype}; "
                            "cast it with .astype(float) or close over it instead of passing it")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"check_grads: {where} must be finite, but {path} holds "
                             f"{int((~np.isfinite(arr)).sum())} non-finite value(s)")
    return jax.tree_util.tree_map(lambda l: np.asarray(l, np.float64), tree)


def _random_like(tree, rng: np.random.Generator):
    return jax.tree_util.tree_map(lambda l: rng.standard_normal(np.shape(l)), tree)


def _inner(a, b) -> float:
    return float(sum(np.sum(np.asarray(x, np.float64) * np.asarray(y, np.float64))
                     for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))))


def _numerical_jvp(f, args, v, s: _Settings):
    """(f(x + εv) - f(x - εv)) / 2ε, leaf by leaf, in float64."""
    def at(sign):
        moved = jax.tree_util.tree_map(lambda x, d: s.backend.asarray(np.asarray(x) + sign * s.eps * d), args, v)
        return jax.tree_util.tree_map(lambda o: np.asarray(o, np.float64), f(*moved))
    return jax.tree_util.tree_map(lambda p, m: (p - m) / (2 * s.eps), at(1.0), at(-1.0))


def _close(a, b, s: _Settings):
    """(max |a - b|, max of the bound, ok) over all elements."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    bound = s.atol + s.rtol * np.maximum(np.abs(a), np.abs(b))
    err = np.abs(a - b)
    return float(np.max(err, initial=0.0)), bool(np.all(err <= bound) and np.all(np.isfinite(a)))


def _check_fwd(f, args, out, level: int, s: _Settings, where: str) -> None:
    v = _random_like(args, s.rng)
    _, t = s.backend.jvp(f, tuple(args), tuple(jax.tree_util.tree_map(s.backend.asarray, v)))
    fd = _numerical_jvp(f, args, v, s)
    if jax.tree_util.tree_structure(t) != jax.tree_util.tree_structure(out):
        raise GradAssertionError(f"check_grads ({s.backend.name}): the JVP of {where} (derivative order {level}) returned "
                                 f"a tangent of structure {jax.tree_util.tree_structure(t)}, expected the output's "
                                 f"{jax.tree_util.tree_structure(out)}")
    for (path, a), b in zip(_named_leaves(t, "out"), jax.tree_util.tree_leaves(fd)):
        if np.shape(a) != np.shape(b):
            raise GradAssertionError(f"check_grads ({s.backend.name}): JVP of {where}: tangent {path} has shape "
                                     f"{np.shape(a)}, the output has {np.shape(b)}")
        err, ok = _close(a, b, s)
        if not ok:
            raise GradAssertionError(
                f"check_grads ({s.backend.name}): forward mode (JVP) of {where} disagrees with float64 central "
                f"differences at output {path}: max |JVP - FD| = {err:.3g} > atol {s.atol:g} + rtol {s.rtol:g}·|FD| "
                f"(eps={s.eps:g}, derivative order {level}; JVP {np.ravel(a)[:4]}, FD {np.ravel(b)[:4]})")


def _check_rev(f, args, out, level: int, s: _Settings, where: str):
    u = _random_like(out, s.rng)
    v = _random_like(args, s.rng)
    _, vjp_fn = s.backend.vjp(f, tuple(args))
    u_in = jax.tree_util.tree_map(s.backend.asarray, u)
    ct = vjp_fn(u_in)
    if [np.shape(c) for c in jax.tree_util.tree_leaves(ct)] != [np.shape(a) for a in jax.tree_util.tree_leaves(args)]:
        raise GradAssertionError(f"check_grads ({s.backend.name}): the VJP of {where} returned cotangents of shapes "
                                 f"{[np.shape(c) for c in jax.tree_util.tree_leaves(ct)]}, expected the arguments' "
                                 f"{[np.shape(a) for a in jax.tree_util.tree_leaves(args)]}")
    lhs = _inner(ct, v)                                       # <J^T u, v>
    rhs = _inner(u, _numerical_jvp(f, args, v, s))            # <u, J v>, J v by central differences
    err, ok = _close(lhs, rhs, s)
    if not ok:
        raise GradAssertionError(
            f"check_grads ({s.backend.name}): reverse mode (VJP) of {where} disagrees with float64 central "
            f"differences: <VJP(u), v> = {lhs:.10g} but <u, FD(v)> = {rhs:.10g} (|diff| {err:.3g} > atol "
            f"{s.atol:g} + rtol {s.rtol:g}·|value|; eps={s.eps:g}, derivative order {level})")
    return u_in


def _check(f, args, order: int, s: _Settings, where: str, level: int = 1) -> None:
    """Check the first derivatives of ``f`` at ``args``, then recurse on its JVP / VJP for ``order - 1``.

    ``level`` is the order of the derivative of the original ``f`` being checked (for messages).
    """
    out = _float_tree(f(*args), "out", f"the outputs of {where}")
    if "fwd" in s.modes:
        _check_fwd(f, args, out, level, s, where)
        if order > 1:
            v = tuple(jax.tree_util.tree_map(s.backend.asarray, _random_like(args, s.rng)))
            _check(lambda *a: s.backend.jvp(f, a, v)[1], args, order - 1, s, f"the JVP of {where}", level + 1)
    if "rev" in s.modes:
        u = _check_rev(f, args, out, level, s, where)
        if order > 1:
            _check(lambda *a: s.backend.vjp(f, a)[1](u), args, order - 1, s, f"the VJP of {where}", level + 1)


def _parse_modes(modes) -> tuple:
    modes = (modes,) if isinstance(modes, str) else modes
    try:
        modes = tuple(modes)
    except TypeError:
        raise TypeError(f"check_grads: modes must be a tuple from {_MODES}, got {type(modes).__name__} "
                        f"{modes!r}") from None
    if not modes or any(m not in _MODES for m in modes):
        raise ValueError(f"check_grads: modes must be a non-empty tuple from {_MODES}, got {modes!r}")
    return modes


def check_grads(f: Callable, args: Sequence, order: int = 2, modes: Sequence[str] = ("rev", "fwd"),
                eps: float | None = None, rtol: float | None = None, atol: float | None = None,
                backend: str = "jax", seed: int = 0) -> None:
    r"""Check ``f``'s forward and reverse derivatives along random directions, up to ``order``.

    As ``jax.test_util.check_grads``. With random directions v (like the arguments)
    and u (like the output), drawn from N(0, 1) with ``seed``:

    * ``"fwd"``: the JVP ``J v`` equals the float64 central difference
      ``(f(x + εv) - f(x - εv)) / 2ε``, element by element;
    * ``"rev"``: the VJP satisfies the dot-product identity ⟨Jᵀu, v⟩ = ⟨u, J v⟩, with
      ``J v`` from the same central difference.

    An element passes when ``|a - b| <= atol + rtol·max(|a|, |b|)``. For ``order > 1``
    the same checks run on ``x ↦ J(x) v`` and on ``x ↦ J(x)ᵀu`` (fixed v, u), so
    ``order=2`` checks the derivatives of the derivatives (Hessian-vector products).
    The central difference has error ε²|f'''|/6 + 10⁻¹⁶|f|/ε.

    Args:
      f: a function of the arguments in ``args``, returning any pytree of float arrays.
      args: the point: a tuple (or list) of ``f``'s positional arguments, pytrees of float
        arrays. All of them are differentiated.
      order: how many times to differentiate (an int >= 1).
      modes: ``"rev"`` (VJP), ``"fwd"`` (JVP), or both.
      eps: the finite-difference step (default 1e-4; 1e-2 if ``f`` computes in float32).
      rtol, atol: tolerances (default 1e-5 each; 2e-2 if ``f`` computes in float32).
      backend: ``"jax"`` (``jax.jvp``/``jax.vjp`` on float64 JAX arrays) or ``"tracer"``
        (``funcnet.tracer.jvp``/``vjp`` on float64 NumPy arrays).
      seed: seed of the random directions.

    Raises:
      GradAssertionError: (an ``AssertionError``) a derivative disagrees with finite
        differences; the message names the mode, the order, the numbers and the step.
      TypeError: ``args`` not a tuple or list, non-float leaves, a bad ``order`` kind.
      ValueError: an unknown mode or backend, ``order < 1``, a non-finite point or output.

    Examples:
      >>> import jax.numpy as jnp, numpy as np
      >>> from funcnet import testing
      >>> testing.check_grads(lambda x: jnp.sin(x) * x, (np.array([0.3, -1.2]),), order=2)   # passes: None
    """
    if not callable(f):
        raise TypeError(f"check_grads: f must be a function, got {type(f).__name__} {f!r:.60}")
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"check_grads: args must be a tuple of f's positional arguments, got "
                        f"{type(args).__name__}; write check_grads(f, (x,)) for one argument")
    if not args:
        raise ValueError("check_grads: args is empty; f needs at least one argument to differentiate")
    order = count(order, "order", where="check_grads")
    modes = _parse_modes(modes)
    if backend not in _BACKENDS:
        raise ValueError(f"check_grads: backend must be one of {_BACKENDS}, got {backend!r}")
    eps = None if eps is None else real(eps, "eps", minimum=0.0, where="check_grads")
    if eps == 0.0:
        raise ValueError("check_grads: eps must be > 0, got 0.0")
    rtol = None if rtol is None else real(rtol, "rtol", minimum=0.0, where="check_grads")
    atol = None if atol is None else real(atol, "atol", minimum=0.0, where="check_grads")
    seed = count(seed, "seed", minimum=0, where="check_grads")
    args64 = _float_tree(tuple(args), "args", "the arguments")
    with jax.enable_x64(True):
        b = _jax_backend() if backend == "jax" else _tracer_backend()
        point = tuple(jax.tree_util.tree_map(b.asarray, args64))
        raw = f(*point)
        _float_tree(raw, "out", "the outputs of f")
        dtype = np.result_type(*[np.asarray(o).dtype for o in jax.tree_util.tree_leaves(raw)] or [np.float64])
        d_eps, d_rtol, d_atol = _CHECK_DEFAULTS.get(np.dtype(dtype), _CHECK_DEFAULTS[np.dtype(np.float32)])
        s = _Settings(b, modes, d_eps if eps is None else eps, d_rtol if rtol is None else rtol,
                      d_atol if atol is None else atol, np.random.default_rng(seed))
        _check(f, point, order, s, "f")
