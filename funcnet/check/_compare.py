r"""Gradient checking: finite differences, and one report comparing every way to get a gradient.

"I do not trust math, I want to verify with a machine": `compare_grads`
computes the same gradient with ``jax.grad``, with funcnet's from-scratch
`funcnet.tracer`, by finite differences and (for an MLP loss built with
`funcnet.manual.mlp_loss`) by the hand-derived delta rule, and reports how far
apart they are, leaf by leaf.
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import itertools
import math
import warnings
from typing import Callable, Sequence

import jax
import numpy as np

from funcnet._boundary import argnums_tuple, real
from funcnet.manual import MLPLoss

__all__ = ["numerical_grad", "compare_grads", "GradReport", "LeafComparison", "GradCheckWarning",
           "default_step", "METHODS"]

METHODS = ("jax", "tracer", "numerical", "manual")
_ALIASES = {"fd": "numerical"}
_EXACT_TOL = {np.dtype(np.float64): (1e-8, 1e-10), np.dtype(np.float32): (1e-4, 1e-6)}
_NUMERICAL_TOL = {np.dtype(np.float64): (1e-5, 1e-6), np.dtype(np.float32): (2e-2, 2e-3)}


class GradCheckWarning(UserWarning):
    """A gradient check ran, but with a setting (such as the step) that makes it unreliable."""


# ----------------------------------------------------------------------------- helpers
def _single(argnums) -> bool:
    """``argnums`` given as one index (the gradient is then not wrapped in a tuple, as in ``jax.grad``)."""
    return isinstance(argnums, (int, np.integer)) and not isinstance(argnums, (bool, np.bool_))


def _value_of(out, has_aux: bool, what: str = "f"):
    """The differentiated value of ``f``'s output: ``out`` itself, or ``out[0]`` of ``(value, aux)``."""
    if not has_aux:
        if isinstance(out, (tuple, list)):
            raise TypeError(
                f"{what} returned a {type(out).__name__} of length {len(out)}, not a scalar; if it returns "
                "(value, aux), pass has_aux=True")
        return out
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        arrived = (f"a {type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list))
                   else f"a single {type(out).__name__} of shape {np.shape(out)}")
        raise TypeError(f"has_aux=True expects {what} to return a pair (value, aux), got {arrived}; "
                        "pass has_aux=False for a function that returns the value alone")
    return out[0]


def _drop_aux(f, has_aux: bool):
    """``f`` returning its value alone (the aux output checked and dropped)."""
    if not has_aux:
        return f
    return lambda *a: _value_of(f(*a), True)


def _is_float_leaf(leaf) -> bool:
    dt = getattr(leaf, "dtype", None)
    if dt is None:
        return isinstance(leaf, float)
    return np.issubdtype(np.dtype(dt), np.floating)


def _to_f64_numpy(tree):
    """Float leaves -> float64 NumPy arrays; other array leaves -> NumPy arrays; the rest unchanged."""

    def conv(leaf):
        if _is_float_leaf(leaf):
            return np.asarray(leaf, dtype=np.float64)
        if hasattr(leaf, "dtype") and hasattr(leaf, "shape"):
            return np.asarray(leaf)
        return leaf

    return jax.tree_util.tree_map(conv, tree)


def _leaf_names(tree, arg: str) -> list[str]:
    """Leaf names like ``[0]['w']``; a bare array argument is called by its parameter name (or ``arg<i>``)."""
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    return [p or arg for p in paths]


def _param_names(f, nargs: int) -> list[str]:
    names = [f"arg{i}" for i in range(nargs)]
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        return names
    for i, p in enumerate(params[:nargs]):
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names[i] = p.name
        else:
            break
    return names


def _diff_leaves(args: Sequence, argnums: tuple[int, ...], single: bool, f=None):
    """Flatten the differentiated arguments, validating their dtypes and values."""
    diff = args[argnums[0]] if single else tuple(args[i] for i in argnums)
    leaves, treedef = jax.tree_util.tree_flatten(diff)
    names = _names_for(diff, argnums, single, _param_names(f, len(args)))
    if not leaves:
        raise ValueError(f"argument(s) {argnums} hold no array leaves to differentiate")
    for name, leaf in zip(names, leaves):
        dt = np.asarray(leaf).dtype
        if np.issubdtype(dt, np.complexfloating):
            raise TypeError(f"gradient checks need real float arguments; leaf {name} is complex ({dt})")
        if not np.issubdtype(dt, np.floating):
            raise TypeError(
                f"gradients are only defined for float arguments, but the differentiated leaf {name} has dtype "
                f"{dt} (value {np.asarray(leaf)!r:.60}); cast it with .astype(float) or leave it out of argnums"
            )
        arr = np.asarray(leaf, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))
            raise ValueError(
                f"the point is not finite: leaf {name} holds {int((~np.isfinite(arr)).sum())} non-finite value(s) "
                f"(first at index {tuple(int(i) for i in bad[0])}: {arr[tuple(bad[0])]}); gradients there are undefined"
            )
    return diff, leaves, treedef, names


def _names_for(diff, argnums, single, params) -> list[str]:
    if single:
        return _leaf_names(diff, params[argnums[0]])
    out = []
    for i, sub in zip(argnums, diff):
        out += [n if n == params[i] else f"{params[i]}{n}" for n in _leaf_names(sub, params[i])]
    return out


def _replace_diff(args: Sequence, argnums: tuple[int, ...], single: bool, diff) -> list:
    new = list(args)
    if single:
        new[argnums[0]] = diff
    else:
        for i, sub in zip(argnums, diff):
            new[i] = sub
    return new


def _scalar_value(out, what: str = "f") -> float:
    arr = np.asarray(_value_of(out, False, what))
    if arr.shape != ():
        raise TypeError(
            f"{what} must return a scalar (shape ()) to have a gradient, got shape {arr.shape}; "
            "check each output separately or use jax.jacobian"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{what} must return a float scalar, got dtype {arr.dtype}")
    return arr


def default_step(dtype=np.float64, method: str = "central") -> float:
    r"""The finite-difference step factor for ``dtype``: ε^(1/3) for central, ε^(1/2) for forward differences.

    ε is the machine epsilon of ``dtype``. The step for an element x is
    ``h = default_step(dtype, method) * max(1, |x|)``, which balances truncation
    error (O(h²) central, O(h) forward) against rounding error (O(ε|f|/h)).

    ========  ============  ============
    dtype     central       forward
    ========  ============  ============
    float64   6.06e-06      1.49e-08
    float32   4.92e-03      3.45e-04
    float16   9.92e-02      3.13e-02
    ========  ============  ============
    """
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise TypeError(f"default_step needs a float dtype, got {np.dtype(dtype).name}")
    eps = float(np.finfo(np.dtype(dtype)).eps)
    if method == "central":
        return eps ** (1.0 / 3.0)
    if method == "forward":
        return eps ** 0.5
    raise ValueError(f"method must be 'central' or 'forward', got {method!r}")


def _warn_about_eps(eps, leaves, factor: float, dtype, method: str) -> None:
    """Warn when a user step vanishes next to some elements, or is so small that rounding error dominates."""
    if eps is None:
        return
    if any(np.any((leaf + eps) - leaf == 0.0) for leaf in leaves):
        warnings.warn(
            f"eps={eps:g} vanishes next to some elements (x + eps == x in float64); used the default step "
            f"{factor:.3g}·max(1, |x|) there instead", GradCheckWarning, stacklevel=3)
    elif eps < 1e-3 * factor:
        warnings.warn(
            f"eps={eps:g} is too small for {np.dtype(dtype).name} {method} differences: rounding error "
            f"(about {float(np.finfo(dtype).eps):.1e}·|f|/eps) dominates. Using eps={eps:g} as asked; the "
            f"default step is {factor:.3g}·max(1, |x|).", GradCheckWarning, stacklevel=3)


def _fd_leaf(call, leaves, li: int, name: str, factor: float, eps, method: str, f0: float) -> np.ndarray:
    """The finite-difference gradient of one leaf, perturbing ``leaves[li]`` in place one element at a time."""
    leaf = leaves[li]
    g = np.zeros_like(leaf)
    flat = leaf.reshape(-1)  # a view: edits perturb `leaves[li]` in place
    for i in range(flat.size):
        x = flat[i]
        h = factor * max(1.0, abs(x)) if eps is None else eps
        step = (x + h) - x
        if step == 0.0:  # warned about by _warn_about_eps
            step = (x + factor * max(1.0, abs(x))) - x
        flat[i] = x + step
        fp = float(call(leaves))
        if method == "central":
            flat[i] = x - step
            fm = float(call(leaves))
            d = (fp - fm) / (2.0 * step)
        else:
            fm = f0
            d = (fp - f0) / step
        flat[i] = x
        if not (math.isfinite(fp) and math.isfinite(fm)):
            raise ValueError(
                f"f is not finite one step (h={step:.3g}) away from the point, at leaf {name} index "
                f"{np.unravel_index(i, leaf.shape) if leaf.shape else ()}: f(x+h)={fp}, f(x-h or x)={fm}; "
                "the step crosses a singularity or overflow — pass a smaller eps"
            )
        g.reshape(-1)[i] = d
    return g


# ----------------------------------------------------------------------------- numerical_grad
def numerical_grad(f: Callable, *args, argnums: int | Sequence[int] = 0, eps: float | None = None,
                   method: str = "central", has_aux: bool = False):
    r"""Gradient of a scalar function by finite differences, over pytrees, in float64.

    For every element x_i of the differentiated arguments,

        central:  ∂f/∂x_i ≈ (f(x + h e_i) - f(x - h e_i)) / (2h)     error O(h²)
        forward:  ∂f/∂x_i ≈ (f(x + h e_i) - f(x)) / h                 error O(h)

    so a gradient costs 2n (central) or n + 1 (forward) evaluations of ``f`` for n
    parameters — the reason backpropagation exists.

    Precision: float leaves of *all* arguments are converted to float64 NumPy arrays
    and ``f`` runs with ``jax_enable_x64`` on. The step is chosen for the dtype that
    ``f`` actually returns at that point (float64 normally; float32 if ``f`` casts
    down): ``h_i = default_step(dtype, method) * max(1, |x_i|)``, i.e.
    ε^(1/3)·max(1, |x_i|) ≈ 6.1e-6·max(1, |x_i|) for central differences in float64,
    ε^(1/2) ≈ 1.5e-8 for forward ones (see `default_step`). The step actually
    used is the representable ``(x + h) - x``.

    Args:
      f: a function returning a float scalar; JAX or NumPy code (it is called with
        NumPy float64 arrays).
      *args: its positional arguments (pytrees of arrays).
      argnums: which argument(s) to differentiate, as in ``jax.grad``.
      eps: an absolute step instead of the per-dtype default. A step so small that
        rounding error dominates (below 1e-3 of the default) gives a
        `GradCheckWarning` naming the step used; one that vanishes
        (``x + eps == x``) is replaced by the default step, with a warning.
      method: ``"central"`` (default) or ``"forward"``.
      has_aux: ``f`` returns ``(value, aux)``; only the value is differentiated.

    Returns:
      The gradient with the structure of ``args[argnums]`` (a tuple of such for a
      tuple ``argnums``), as float64 NumPy arrays.

    Raises:
      TypeError: integer/bool/complex differentiated leaves, a non-scalar output, an ``argnums``
        that is not an int or a tuple of ints, ``has_aux=True`` without a ``(value, aux)`` pair.
      ValueError: an ``argnums`` out of range or repeated, a non-finite point, a non-finite ``f`` at the point or at a step.

    Examples:
      >>> import numpy as np, funcnet as fn
      >>> g = fn.check.numerical_grad(lambda w: np.sum(w ** 3), np.array([1.0, 2.0]))
      >>> np.round(g, 6)
      array([ 3., 12.])
    """
    if method not in ("central", "forward"):
        raise ValueError(f"method must be 'central' or 'forward', got {method!r}")
    if not callable(f):
        raise TypeError(f"numerical_grad: f must be a function, got {type(f).__name__} {f!r:.60}")
    if not args:
        raise TypeError("numerical_grad needs the point: numerical_grad(f, *args)")
    if eps is not None:
        eps = real(eps, "eps", where="numerical_grad")
        if not eps > 0:
            raise ValueError(f"eps must be a positive finite step, got {eps}")
    argnums_t = argnums_tuple(argnums, len(args))
    single = _single(argnums)
    f = _drop_aux(f, has_aux)
    _, leaves, treedef, names = _diff_leaves(args, argnums_t, single, f)
    base_args = _to_f64_numpy(list(args))
    leaves = [np.array(leaf, dtype=np.float64) for leaf in leaves]  # owned copies

    with jax.enable_x64(True), np.errstate(all="ignore"):  # non-finite values are reported in words
        def call(lvs) -> float:
            diff = jax.tree_util.tree_unflatten(treedef, lvs)
            return _scalar_value(f(*_replace_diff(base_args, argnums_t, single, diff)))

        f0 = call(leaves)
        if not np.isfinite(f0):
            raise ValueError(f"f is not finite at the point (f = {float(f0)}); gradients there are undefined")
        dtype = f0.dtype if f0.dtype in (np.float16, np.float32, np.float64) else np.dtype(np.float64)
        factor = default_step(dtype, method)
        _warn_about_eps(eps, leaves, factor, dtype, method)
        grads = [_fd_leaf(call, leaves, li, names[li], factor, eps, method, float(f0)) for li in range(len(leaves))]
    return jax.tree_util.tree_unflatten(treedef, grads)


# ----------------------------------------------------------------------------- the report
@dataclasses.dataclass(frozen=True)
class LeafComparison:
    """One row of a `GradReport`: two methods compared on one leaf.

    ``max_abs_error`` = max |a - b|; ``max_rel_error`` = max |a - b| / max(|a|, |b|)
    over the elements where either is non-zero; ``ok`` means
    |a - b| ≤ atol + rtol·max(|a|, |b|) for every element.
    """

    leaf: str
    shape: tuple
    methods: tuple[str, str]
    max_abs_error: float
    max_rel_error: float
    rtol: float
    atol: float
    ok: bool


@dataclasses.dataclass
class GradReport:
    """What `compare_grads` found. ``print(report)`` shows a text table; in a notebook it shows as HTML.

    Attributes:
      ok: at least two methods ran, none failed, and every comparison is within tolerance.
      max_abs_error, max_rel_error: the largest errors over all rows.
      rows: one `LeafComparison` per leaf and pair of methods.
      grads: each method's gradient (float64 NumPy pytrees), by method name.
      value: f at the point.
      dtype: the dtype ``f`` computes in at float64 inputs (tolerances follow it).
      tolerances: ``{"exact": (rtol, atol), "numerical": (rtol, atol)}``; "exact" applies
        between jax, tracer and manual, "numerical" to any pair with finite differences.
      failures: methods that ran but returned something that is not a gradient of the
        arguments (wrong structure or shapes), with what arrived.
      cannot_run: methods that could not run ``f`` at all (e.g. the tracer on a function
        that calls ``jax.numpy`` directly), with the error they raised. They are reported,
        not counted as a mismatch; the other methods are still compared.
      first_bad_node: when tracer and jax disagree, the first node of the traced graph
        (in backward order) whose gradient differs, described in words; else ``None``.
      notes: anything else worth knowing.
    """

    ok: bool
    max_abs_error: float
    max_rel_error: float
    rows: list
    grads: dict
    value: float
    dtype: str
    methods: tuple
    tolerances: dict
    failures: dict = dataclasses.field(default_factory=dict)
    cannot_run: dict = dataclasses.field(default_factory=dict)
    first_bad_node: str | None = None
    notes: list = dataclasses.field(default_factory=list)

    @property
    def ran(self) -> tuple:
        """The methods that computed a gradient."""
        return tuple(m for m in self.methods if m in self.grads)

    @property
    def first_mismatch(self) -> LeafComparison | None:
        """The first row (in leaf order) outside its tolerance, or ``None``."""
        return next((r for r in self.rows if not r.ok), None)

    def _cells(self) -> tuple[tuple, list]:
        header = ("leaf", "shape", "methods", "max abs err", "max rel err", "rtol", "atol", "")
        body = [(r.leaf, str(r.shape), f"{r.methods[0]} vs {r.methods[1]}", f"{r.max_abs_error:.2e}",
                 f"{r.max_rel_error:.2e}", f"{r.rtol:.0e}", f"{r.atol:.0e}", "ok" if r.ok else "MISMATCH")
                for r in self.rows]
        return header, body

    def _messages(self) -> list[str]:
        """The lines after the table: methods that could not run or failed, the diagnosis, notes, verdict."""
        lines = [f"{m}: cannot run ({msg})" for m, msg in self.cannot_run.items()]
        lines += [f"FAILED {m}: {msg}" for m, msg in self.failures.items()]
        bad = self.first_mismatch
        if bad is not None:
            lines.append(f"first differing leaf: {bad.leaf} ({bad.methods[0]} vs {bad.methods[1]}: max abs error "
                         f"{bad.max_abs_error:.2e}, max rel error {bad.max_rel_error:.2e})")
        if self.first_bad_node:
            lines.append(f"first differing node: {self.first_bad_node}")
        lines += [f"note: {n}" for n in self.notes]
        verdict = "OK" if self.ok else "MISMATCH" if bad is not None else "FAILED"
        lines.append(f"{verdict}: max abs error {self.max_abs_error:.2e}, max rel error "
                     f"{self.max_rel_error:.2e}; {len(self.ran)} of {len(self.methods)} methods ran")
        return lines

    def _head(self) -> str:
        t = self.tolerances
        return (f"compare_grads: {', '.join(self.methods)}; f = {self.value:.6g} ({self.dtype}); "
                f"tolerances exact rtol={t['exact'][0]:.0e} atol={t['exact'][1]:.0e}, "
                f"numerical rtol={t['numerical'][0]:.0e} atol={t['numerical'][1]:.0e}")

    def table(self) -> str:
        """The comparison as an aligned text table."""
        header, body = self._cells()
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        fmt = lambda row: "  ".join(c.ljust(w) if i < 3 or i == 7 else c.rjust(w)  # noqa: E731
                                    for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        lines = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(row) for row in body]
        return "\n".join(lines)

    def __str__(self) -> str:
        return "\n".join([self._head(), self.table(), *self._messages()])

    def _repr_html_(self) -> str:
        """An HTML table for notebooks (Jupyter calls this); ``str(report)`` stays the text table."""
        esc = html.escape
        header, body = self._cells()
        th = "".join(f"<th>{esc(h)}</th>" for h in header)
        tr = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" if c != "MISMATCH" else f"<td><b>{c}</b></td>"
                                      for c in row) + "</tr>" for row in body)
        msgs = "".join(f"<li>{esc(line)}</li>" for line in self._messages())
        return (f"<div class=\"funcnet-gradreport\"><p>{esc(self._head())}</p>"
                f"<table><thead><tr>{th}</tr></thead><tbody>{tr}</tbody></table><ul>{msgs}</ul></div>")

    def __repr__(self) -> str:
        return (f"GradReport(ok={self.ok}, methods={self.methods}, max_abs_error={self.max_abs_error:.3g}, "
                f"max_rel_error={self.max_rel_error:.3g})")

    def __bool__(self) -> bool:
        """``bool(report)`` is `ok`, so ``assert compare_grads(...)`` checks what it says."""
        return self.ok

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` with the table unless `ok`."""
        if not self.ok:
            raise AssertionError("gradients disagree:\n" + str(self))

    def to_dict(self) -> dict:
        """A JSON-friendly summary (no gradients)."""
        return {
            "ok": self.ok, "max_abs_error": self.max_abs_error, "max_rel_error": self.max_rel_error,
            "value": self.value, "dtype": self.dtype, "methods": list(self.methods),
            "tolerances": {k: list(v) for k, v in self.tolerances.items()},
            "failures": dict(self.failures), "cannot_run": dict(self.cannot_run),
            "first_bad_node": self.first_bad_node, "notes": list(self.notes),
            "rows": [dict(dataclasses.asdict(r), shape=list(r.shape), methods=list(r.methods)) for r in self.rows],
        }


def _compare(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> tuple[float, float, bool]:
    diff = np.abs(a - b)
    scale = np.maximum(np.abs(a), np.abs(b))
    if diff.size == 0:
        return 0.0, 0.0, True
    nz = scale > 0
    rel = float(np.max(diff[nz] / scale[nz])) if nz.any() else 0.0
    ok = bool(np.all(diff <= atol + rtol * scale)) and bool(np.all(np.isfinite(a)) and np.all(np.isfinite(b)))
    return float(np.max(diff)), rel, ok


# ----------------------------------------------------------------------------- compare_grads
def _run_jax(f, args, argnums):
    """``jax.grad`` on JAX float64 arrays: compiled once with ``jit``; eagerly if ``f`` cannot be jitted."""
    import jax.numpy as jnp

    jargs = jax.tree_util.tree_map(lambda l: jnp.asarray(l) if hasattr(l, "dtype") else l, args)
    static = tuple(i for i, a in enumerate(args) if not jax.tree_util.tree_leaves(a)
                   or not all(hasattr(l, "dtype") for l in jax.tree_util.tree_leaves(a)))
    try:
        return jax.jit(jax.grad(f, argnums=argnums), static_argnums=static)(*jargs)
    except Exception:  # a user function: value-dependent Python control flow, unhashable static args, ...
        return jax.grad(f, argnums=argnums)(*jargs)


def _run_tracer(f, args, argnums):
    from funcnet import tracer

    return tracer.grad(f, argnums=argnums)(*args)


def _parse_methods(methods, is_mlp: bool) -> tuple[str, ...]:
    """The requested methods as canonical names (``"fd"`` is ``"numerical"``), at least two, distinct."""
    if methods is None:
        return ("jax", "tracer", "numerical") + (("manual",) if is_mlp else ())
    methods = (methods,) if isinstance(methods, str) else methods
    try:
        methods = tuple(methods)
    except TypeError:
        raise TypeError(f"methods must be a tuple of names from {METHODS}, got {type(methods).__name__} "
                        f"{methods!r}") from None
    if any(not isinstance(m, str) for m in methods):
        raise TypeError(f"methods must be a tuple of names from {METHODS}, got {methods!r}")
    canon = tuple(_ALIASES.get(m, m) for m in methods)
    if any(m not in METHODS for m in canon) or len(set(canon)) != len(canon):
        raise ValueError(f"methods must be distinct names from {METHODS} (or 'fd' for 'numerical'), "
                         f"got {methods!r}")
    if len(canon) < 2:
        raise ValueError(f"compare_grads needs at least two methods to compare, got {methods!r}; "
                         "e.g. methods=('jax', 'numerical')")
    return canon


def _tolerances(dtype, rtol, atol, numerical_rtol, numerical_atol) -> dict:
    given = {"rtol": rtol, "atol": atol, "numerical_rtol": numerical_rtol, "numerical_atol": numerical_atol}
    for name, v in given.items():
        if v is not None:
            real(v, name, minimum=0.0, where="compare_grads")
    return {"exact": (_EXACT_TOL[dtype][0] if rtol is None else float(rtol),
                      _EXACT_TOL[dtype][1] if atol is None else float(atol)),
            "numerical": (_NUMERICAL_TOL[dtype][0] if numerical_rtol is None else float(numerical_rtol),
                          _NUMERICAL_TOL[dtype][1] if numerical_atol is None else float(numerical_atol))}


def _run_methods(methods, runners, ref_leaves):
    """Run every method: ``(leaves by method, gradient pytrees by method, failures, cannot_run)``."""
    leaves_by, failures, cannot_run = {}, {}, {}
    shapes = [np.shape(r) for r in ref_leaves]
    for m in methods:
        try:
            g = runners[m]()
        except ImportError:
            raise
        except Exception as e:  # the user's function under this method: it cannot run there; said by name
            cannot_run[m] = f"{type(e).__name__}: {e}"
            continue
        lv = [np.asarray(leaf, dtype=np.float64) for leaf in jax.tree_util.tree_leaves(g)]
        if len(lv) != len(ref_leaves) or any(a.shape != s for a, s in zip(lv, shapes)):
            failures[m] = f"returned leaves of shapes {[a.shape for a in lv]}, expected the arguments' {shapes}"
            continue
        leaves_by[m] = lv
    return leaves_by, failures, cannot_run


def _report(methods, names, ref_leaves, treedef, leaves_by, failures, cannot_run, tols) -> GradReport:
    """Compare every pair of methods that ran on every leaf; the report (value and dtype filled in by the caller)."""
    ran = [m for m in methods if m in leaves_by]
    rows = []
    for li, name in enumerate(names):
        for a, b in itertools.combinations(ran, 2):
            tol = tols["numerical"] if "numerical" in (a, b) else tols["exact"]
            mabs, mrel, ok = _compare(leaves_by[a][li], leaves_by[b][li], *tol)
            rows.append(LeafComparison(name, tuple(np.shape(ref_leaves[li])), (a, b), mabs, mrel, tol[0], tol[1], ok))
    notes = [] if len(ran) >= 2 else [f"only {len(ran)} method(s) ran ({', '.join(ran) or 'none'}): "
                                      "nothing was compared, so this is not a pass"]
    return GradReport(
        ok=not failures and all(r.ok for r in rows) and len(ran) >= 2,
        max_abs_error=max((r.max_abs_error for r in rows), default=0.0),
        max_rel_error=max((r.max_rel_error for r in rows), default=0.0),
        rows=rows, grads={m: jax.tree_util.tree_unflatten(treedef, leaves_by[m]) for m in ran},
        value=float("nan"), dtype="", methods=methods, tolerances=tols,
        failures=failures, cannot_run=cannot_run, notes=notes,
    )


def compare_grads(f: Callable, *args, argnums: int | Sequence[int] = 0, methods: Sequence[str] | None = None,
                  eps: float | None = None, rtol: float | None = None, atol: float | None = None,
                  numerical_rtol: float | None = None, numerical_atol: float | None = None,
                  has_aux: bool = False) -> GradReport:
    r"""Compute the gradient of ``f`` every way funcnet knows and report how far apart they are.

    The methods are:
      ``"jax"``: ``jax.grad``; ``"tracer"``: `funcnet.tracer.grad` (NumPy inputs);
      ``"numerical"`` (or ``"fd"``): `numerical_grad` (central differences);
      ``"manual"``: the hand-derived delta rule, when ``f`` is an MLP loss built with
      `funcnet.manual.mlp_loss`.

    Everything runs in float64 (``jax_enable_x64`` on, float leaves cast up), so the
    comparison measures the methods, not float32 rounding. Every pair of methods is
    compared on every leaf: an element passes when
    ``|a - b| <= atol + rtol * max(|a|, |b|)``. Default tolerances, for ``f``
    computing in float64: rtol=1e-8, atol=1e-10 between the exact methods (jax,
    tracer, manual); rtol=1e-5, atol=1e-6 for pairs with finite differences. If ``f``
    computes in float32 even at float64 inputs: 1e-4/1e-6 and 2e-2/2e-3.

    A method that cannot run ``f`` (the tracer on a function that calls ``jax.numpy``
    directly or on a Flax model; ``jax.grad`` on NumPy-only code) is listed in
    `GradReport.cannot_run` with the error it raised — ``tracer: cannot run
    (TypeError: ...)`` in the text — and the others are still compared. The report is
    ``ok`` only if at least two methods ran: a comparison of one method is no check.

    When ``tracer`` and ``jax`` disagree, `GradReport.first_bad_node` names the
    first node of the traced graph (in backward order) whose gradient differs from
    JAX's — the node whose consumers' derivative rules are suspect.

    Args:
      f: scalar function of ``args``, written against the array namespace of its
        inputs (funcnet models and losses are) so that it runs under JAX and the tracer.
      *args: the point (pytrees of arrays).
      argnums: which argument(s) to differentiate, as in ``jax.grad``.
      methods: two or more of ``("jax", "tracer", "numerical", "manual")``. Default:
        jax, tracer and numerical, plus manual for an `MLPLoss`.
      eps: finite-difference step (default: per dtype, see `numerical_grad`).
      rtol, atol, numerical_rtol, numerical_atol: override the tolerances above.
      has_aux: ``f`` returns ``(value, aux)``; only the value is differentiated.

    Returns:
      A `GradReport`; ``print(report)`` shows the table.

    Raises:
      TypeError: a bad ``argnums`` or ``methods`` kind, non-float differentiated leaves,
        a non-scalar output, ``has_aux=True`` without a ``(value, aux)`` pair.
      ValueError: unknown or fewer than two methods, ``argnums`` out of range, a
        non-finite point or value, a negative tolerance.

    Examples:
      >>> import numpy as np, funcnet as fn
      >>> r = fn.check.compare_grads(lambda w: (w ** 3).sum(), np.array([0.5, -1.0]),
      ...                            methods=("jax", "numerical"))
      >>> r.ok, [row.methods for row in r.rows]
      (True, [('jax', 'numerical')])
    """
    if not callable(f):
        raise TypeError(f"compare_grads: f must be a function, got {type(f).__name__} {f!r:.60}")
    if not args:
        raise TypeError("compare_grads needs the point: compare_grads(f, *args)")
    argnums_t = argnums_tuple(argnums, len(args))
    single = _single(argnums)
    is_mlp = isinstance(f, MLPLoss)
    methods = _parse_methods(methods, is_mlp)
    if "manual" in methods and not (is_mlp and argnums_t == (0,) and len(args) == 1):
        raise ValueError(
            "the 'manual' method needs an MLP loss of the parameters alone: build f with "
            "fn.manual.mlp_loss(model, x, y, loss) and call compare_grads(f, params)"
        )

    _, ref_leaves, treedef, names = _diff_leaves(args, argnums_t, single, f)
    args64 = _to_f64_numpy(list(args))
    f64 = dataclasses.replace(f, x=_to_f64_numpy(f.x), y=_to_f64_numpy(f.y)) if is_mlp else _drop_aux(f, has_aux)
    jax_argnums = argnums_t[0] if single else argnums_t

    with jax.enable_x64(True):
        with np.errstate(all="ignore"):  # a non-finite value is reported below, in words
            value = _scalar_value(f64(*args64))
        if not np.isfinite(value):
            raise ValueError(f"f is not finite at the point (f = {float(value)}); gradients there are undefined")
        dtype = np.dtype(value.dtype) if value.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        tols = _tolerances(dtype, rtol, atol, numerical_rtol, numerical_atol)
        runners = {
            "jax": lambda: _run_jax(f64, args64, jax_argnums),
            "tracer": lambda: _run_tracer(f64, args64, jax_argnums),
            "numerical": lambda: numerical_grad(f64, *args64, argnums=jax_argnums, eps=eps),
            "manual": lambda: f64.manual_grad(args64[0]),
        }
        leaves_by, failures, cannot_run = _run_methods(methods, runners, ref_leaves)

    report = _report(methods, names, ref_leaves, treedef, leaves_by, failures, cannot_run, tols)
    report.value, report.dtype = float(value), dtype.name
    if "jax" in leaves_by and "tracer" in leaves_by and any(
            not r.ok for r in report.rows if set(r.methods) == {"jax", "tracer"}):
        report.first_bad_node = _diagnose(f64, args64, argnums_t)
    return report

def _diagnose(f, args, argnums_t: tuple) -> str | None:
    """Name the first node of the traced graph, in backward order, whose gradient is wrong.

    The tracer's gradient of every node (``tracer.trace(...).nodes[k].grad``) is
    checked against a float64 central difference along a random direction r:
    ``<g_k, r>`` vs ``(F(v_k + h r) - F(v_k - h r)) / 2h``, where F replays the
    recorded graph downstream of node k with node k's value moved. Walking from the
    output towards the inputs, the first node that fails received its gradient from
    a wrong derivative rule of one of its consumers, which are named.
    """
    try:
        return _first_bad_node(f, args, argnums_t)
    except Exception as e:  # the diagnosis is a courtesy: never let it hide the report
        return f"(no diagnosis: {type(e).__name__}: {e})"


def _first_bad_node(f, args, argnums_t) -> str | None:
    from funcnet import tracer

    graph = tracer.trace(f, *args, argnums=argnums_t)
    base = [np.asarray(n.value) for n in graph.nodes]

    def replay(k: int, delta) -> float:
        return float(graph.replay({k: base[k] + delta}))

    rng = np.random.default_rng(0)
    f0 = float(base[graph.nodes.index(graph.output)])
    for k in range(len(graph.nodes) - 1, -1, -1):
        node, v = graph.nodes[k], base[k]
        if not np.issubdtype(v.dtype, np.floating):
            continue
        r = rng.standard_normal(v.shape)
        h = default_step(np.float64) * max(1.0, float(np.max(np.abs(v), initial=0.0)))
        fd = (replay(k, h * r) - replay(k, -h * r)) / (2 * h)
        g = 0.0 if node.grad is None else np.asarray(node.grad, dtype=np.float64)
        tr = float(np.sum(g * r))
        if abs(fd - tr) <= 1e-5 * max(abs(fd), abs(tr)) + 1e-6 * max(1.0, abs(f0)):
            continue
        consumers = graph.consumers(k)
        desc = "input" if node.op == "input" else f"{node.op}({', '.join(node.inputs)})"
        used = "; ".join(f"{c.name} = {c.op}({', '.join(c.inputs)})" for c in consumers) or "none"
        return (f"{node.name} = {desc}, shape {v.shape}: the tracer's gradient d{graph.output.name}/d{node.name} "
                f"disagrees with finite differences along a random direction ({tr:.6g} vs {fd:.6g}) while every "
                f"node after it agrees; suspect the derivative rule of its consumer(s): {used}")
    return ("every node of the traced graph agrees with finite differences: the tracer looks right; "
            "suspect the JAX side (e.g. a custom_vjp) or the function's use of jnp")
