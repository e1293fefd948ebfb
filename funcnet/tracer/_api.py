"""The tracer's user-facing functions: reverse mode (grad, vjp), forward mode (jvp), and their compositions.

Each opens one trace, boxes the inputs, runs the function, and either walks the graph backwards
(`funcnet.tracer._core.backward`) or reads the output's tangent. Nesting them nests traces,
so any order of any mode works: ``grad(grad(f))``, ``jacfwd(jacrev(f))``, ``grad`` of a ``jvp``.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Sequence

import numpy as np

from funcnet._boundary import argnums_tuple
from funcnet.tracer import _memory, _rules
from funcnet.tracer._core import Box, ForwardTrace, Primitive, ReverseTrace, backward, recording, strip
from funcnet.tracer._numpy import ArrayBox, NUMPY_FUNCTIONS
from funcnet.tracer._tree import flatten, map_leaves, unflatten

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev", "hessian", "hvp", "stop_gradient",
           "no_grad", "defvjp", "defjvp", "name", "primitive"]

_OPEN: list = []   # traces opened by this module and not yet ended, innermost last


def _check_leaf(leaf, where: str):
    dtype = np.result_type(strip(leaf))
    if not np.issubdtype(dtype, np.inexact):
        raise TypeError(
            f"the tracer requires float inputs (a sub-dtype of np.inexact) for the arguments it "
            f"differentiates, but {where} has dtype {dtype}. Convert it with x.astype(float), or leave "
            "that argument out of argnums (integer inputs have no gradient, as in jax.grad).")


def _box_arg(trace, tree, argnum: int, tangents=None) -> tuple[Any, list]:
    """``tree`` with every leaf boxed for ``trace`` (float leaves only), and the boxes in leaf order."""
    boxes: list = []
    tleaves = None if tangents is None else flatten(tangents)[0]

    def box(leaf):
        if not (type(leaf) is np.ndarray and leaf.dtype.kind in "fc"):
            _check_leaf(leaf, f"argument {argnum}" + (f" (leaf {len(boxes)})" if len(flatten(tree)[0]) > 1 else ""))
            if not isinstance(leaf, (Box, np.ndarray, np.generic)):
                leaf = np.asarray(leaf)          # a Python float, or a nested list of floats
        b = trace.new_input(leaf, None if tleaves is None else tleaves[len(boxes)])
        boxes.append(b)
        return b

    return map_leaves(box, tree), boxes


@contextlib.contextmanager
def _opened(trace):
    _OPEN.append(trace)
    try:
        yield trace
    finally:
        trace.end()
        _OPEN.remove(trace)


class _Forward:
    """``f`` run on boxed inputs in a new reverse trace: the output and the input boxes per argnum."""

    def __init__(self, f, args, argnums, kwargs, once: bool = False):
        # grad's graph, differentiated once and not nested in another trace, gets the memory policy
        self.trace = _memory.MemoryTrace(ArrayBox) if once and not _OPEN else ReverseTrace(ArrayBox)
        with _opened(self.trace):
            args = list(args)
            self.argnums, self.inputs, self.trees = argnums, [], []
            for a in argnums:
                args[a], boxes = _box_arg(self.trace, args[a], a)
                self.inputs.append(boxes)
                self.trees.append(args[a])
            self.out = f(*args, **kwargs)

    def traced(self, value) -> bool:
        return isinstance(value, Box) and value.trace is self.trace

    def grads(self, roots, cts, observer=None) -> list:
        leaves = backward(roots, cts, observer) if roots else {}
        # arrays no gradient may be: the inputs, the caller's cotangents, and each gradient already given
        given = {id(b.value) for boxes in self.inputs for b in boxes}
        given.update(map(id, cts))
        return [map_leaves(lambda b: _grad_of(b, leaves, given), tree) for tree in self.trees]


def _grad_of(b: Box, leaves: dict, given: set):
    """The gradient for input box ``b``: its cotangent as a fresh array like its value, or zeros."""
    g = leaves.get(b.seq)
    if g is None:
        return np.zeros_like(strip(b.value))
    g = _rules._real_like(g, b.value)      # a real input's gradient is real (complex intermediates: JAX's convention)
    if isinstance(g, Box):
        return g
    xr = strip(b.value)
    dtype = getattr(xr, "dtype", None)
    if isinstance(xr, np.ndarray):
        if type(g) is not np.ndarray or id(g) in given or not g.flags.writeable or g.dtype != dtype or g.base is not None:
            g = np.array(g, dtype=dtype)
        given.add(id(g))
    elif dtype is not None and getattr(g, "dtype", dtype) != dtype:
        g = dtype.type(g)
    return g


def _scalar_output(out, who: str, holomorphic: bool = False):
    raw = strip(out)
    if not holomorphic and (type(raw) in (np.float64, np.float32)
                            or (type(raw) is np.ndarray and raw.shape == () and raw.dtype.kind == "f")):
        return out                               # the common case: a real float scalar
    if np.shape(raw) != ():
        raise TypeError(
            f"{who} requires a scalar output, but the function returned shape {np.shape(raw)}. For a non-scalar "
            "output use out, vjp_fn = funcnet.tracer.vjp(f, *args) and call vjp_fn(cotangent) with a "
            "cotangent of the output's shape (e.g. numpy.ones_like(out)), or tracer.jacrev(f).")
    dtype = np.result_type(raw)
    if holomorphic and dtype.kind != "c":
        raise TypeError(f"{who} with holomorphic=True requires a complex output, got dtype {dtype}")
    if not holomorphic and dtype.kind == "c":
        raise TypeError(
            f"{who} requires a real-valued output, got dtype {dtype} (as jax.grad). For a holomorphic function "
            "pass holomorphic=True; otherwise differentiate a real function of it, e.g. abs(z) ** 2 or z.real.")
    if not holomorphic and not np.issubdtype(dtype, np.floating):
        raise TypeError(f"{who} requires a real float output, got dtype {dtype}")
    return out


def _check_holomorphic_inputs(fw) -> None:
    for a, boxes in zip(fw.argnums, fw.inputs):
        for b in boxes:
            dtype = np.result_type(strip(b.value))
            if dtype.kind != "c":
                raise TypeError(f"tracer.grad with holomorphic=True requires complex inputs, but argument {a} has "
                                f"dtype {dtype}; convert it with x.astype(complex)")


def _one(value):
    raw = strip(value)
    dtype = getattr(raw, "dtype", None)
    return dtype.type(1) if dtype is not None else np.ones((), dtype=np.result_type(raw))[()]


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
                   holomorphic: bool = False) -> Callable:
    """Like `grad`, but the function returns ``(f(*args), gradient)``.

    With ``has_aux=True``, ``f`` returns ``(value, aux)`` and the result is ``((value, aux), gradient)``,
    as in ``jax.value_and_grad``. ``holomorphic=True`` as in `grad`.
    """

    @functools.wraps(f)
    def vg(*args, **kwargs):
        fw = _Forward(f, args, argnums_tuple(argnums, len(args)), kwargs, once=True)
        if holomorphic:
            _check_holomorphic_inputs(fw)
        if has_aux and not (isinstance(fw.out, (tuple, list)) and len(fw.out) == 2):
            got = (f"an array of shape {fw.out.shape}" if hasattr(fw.out, "shape")
                   else f"{type(fw.out).__name__} {fw.out!r}")
            raise TypeError(f"has_aux=True needs f to return a pair (value, aux), got {got}")
        out, aux = fw.out if has_aux else (fw.out, None)
        out = _scalar_output(out, "tracer.grad", holomorphic)
        fw.out = None
        if fw.traced(out):
            trace = fw.trace
            observer = trace.finish(out) if isinstance(trace, _memory.MemoryTrace) else None
            gs = fw.grads([out], [_one(out.value)], observer)
            value = out.value
        else:
            gs, value = fw.grads([], []), out
        g = gs[0] if isinstance(argnums, (int, np.integer)) else tuple(gs)
        return ((value, _strip_tree(aux, fw)) if has_aux else value), g

    return vg


def _strip_tree(tree, fw):
    leaves, tdef = flatten(tree)
    return unflatten(tdef, [leaf.value if fw.traced(leaf) else leaf for leaf in leaves])


def grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False, holomorphic: bool = False) -> Callable:
    r"""The gradient of a scalar function, by reverse-mode automatic differentiation.

    ``grad(f)(x)`` is ∂f/∂x with the same pytree structure as ``x`` (dicts, lists, tuples, NamedTuples,
    and any container JAX knows as a pytree, with float NumPy arrays or scalars as leaves). ``argnums``
    picks the positional arguments to differentiate: an int gives one gradient, a tuple gives a tuple.
    Every gradient leaf is a new writeable array of its input's dtype, shared with no input and no
    other gradient, so it may be updated in place.

    The output must be a real scalar (a complex one raises `TypeError`, as in ``jax.grad``), unless
    ``holomorphic=True``: then inputs and output are complex and the result is ``f'(z)``, as
    ``jax.grad(f, holomorphic=True)``.

    Examples:
      >>> import numpy as np
      >>> from funcnet import tracer
      >>> tracer.grad(lambda x: (x ** 2).sum())(np.array([1.0, 2.0]))
      array([2., 4.])

    Raises:
      TypeError: for integer or boolean inputs, a non-scalar or complex output (use `vjp` or `jacrev`, or
        ``holomorphic=True``), or ``argnums`` that is not an int or a tuple of ints.
      ValueError: ``argnums`` out of range or repeated.
    """
    vg = value_and_grad(f, argnums, has_aux, holomorphic)

    @functools.wraps(f)
    def g(*args, **kwargs):
        value, g_ = vg(*args, **kwargs)
        return (g_, value[1]) if has_aux else g_

    return g


def vjp(f: Callable, *primals) -> tuple[Any, Callable]:
    """``out, vjp_fn = vjp(f, *primals)``: ``vjp_fn(ct)`` returns ``ct``ᵀ·∂f/∂primals, one entry per primal.

    ``out`` may be any pytree of arrays; ``ct`` must have its structure and shapes. ``vjp_fn`` can be
    called many times (the graph is kept as long as ``vjp_fn`` is).
    """
    fw = _Forward(f, primals, tuple(range(len(primals))), {})
    out_leaves, out_def = flatten(fw.out)
    out_value = unflatten(out_def, [leaf.value if fw.traced(leaf) else leaf for leaf in out_leaves])

    def vjp_fn(ct):
        ct_leaves, _ = flatten(ct)
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


def jvp(f: Callable, primals: Sequence, tangents: Sequence) -> tuple[Any, Any]:
    """Forward mode: ``(f(*primals), ∂f/∂primals · tangents)`` in one pass, as ``jax.jvp``.

    ``primals`` and ``tangents`` are tuples of the same pytree structure (one entry per argument of
    ``f``); the output tangent has the structure of the output. No graph is kept: each operation's
    tangent is computed from its JVP rule as the value is.

    Example:
      >>> from funcnet import tracer
      >>> tracer.jvp(lambda x, y, z: (x + y) * z, (-2.0, 5.0, -4.0), (1.0, 0.0, 0.0))
      (np.float64(-12.0), np.float64(-4.0))
    """
    out, tangent, _ = _jvp(f, primals, tangents)
    return out, tangent


def _jvp(f, primals, tangents, observer=None):
    """`jvp`, plus the input boxes; ``observer`` sees every box the forward trace makes."""
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents; give one tangent per primal")
    trace = ForwardTrace(ArrayBox, observer)
    inputs: list = []
    with _opened(trace):
        args = []
        for i, (p, t) in enumerate(zip(primals, tangents)):
            pl, tl = flatten(p), flatten(t)
            if pl[1] != tl[1] or [np.shape(strip(x)) for x in pl[0]] != [np.shape(strip(x)) for x in tl[0]]:
                raise ValueError(f"jvp: tangent {i} must have the structure and shapes of primal {i}")
            arg, boxes = _box_arg(trace, p, i, t)
            args.append(arg)
            inputs.extend(boxes)
        out = f(*args)
    leaves, tdef = flatten(out)
    values = [leaf.value if isinstance(leaf, Box) and leaf.trace is trace else leaf for leaf in leaves]
    tans = [_tangent(leaf, trace) for leaf in leaves]
    return unflatten(tdef, values), unflatten(tdef, tans), inputs


def _tangent(leaf, trace):
    if isinstance(leaf, Box) and leaf.trace is trace:
        t = leaf.tangent
        if t is None:
            return np.zeros_like(np.asarray(strip(leaf.value)))
        shape = np.shape(strip(leaf.value))
        return t if np.shape(strip(t)) == shape else _rules.broadcast_to(t, shape)
    return np.zeros_like(np.asarray(strip(leaf)), dtype=np.result_type(strip(leaf), np.float64)
                         if not np.issubdtype(np.result_type(strip(leaf)), np.inexact) else None)


def _jacobian(f, argnums, mode):
    """``jacfwd``/``jacrev``: the Jacobian of every output leaf against each argnum's array, column or row at a time."""

    def jac(*args):
        nums = argnums_tuple(argnums, len(args))
        results = []
        for a in nums:
            x = np.asarray(strip(args[a])) if not isinstance(args[a], Box) else args[a]
            shape = np.shape(strip(x))
            n = int(np.prod(shape))

            def fa(xa, a=a):
                full = list(args)
                full[a] = xa
                return f(*full)

            if mode == "fwd":
                cols = [jvp(fa, (x,), (np.eye(n, dtype=np.result_type(strip(x)))[k].reshape(shape),))[1] for k in range(n)]
                out = _stack_last(cols, shape)
            else:
                y, pull = vjp(fa, x)
                ys = np.shape(strip(y))
                m = int(np.prod(ys))
                rows = [pull(np.eye(m, dtype=np.result_type(strip(y)))[k].reshape(ys))[0] for k in range(m)]
                out = _rules.reshape(_stack_first(rows), ys + shape)
            results.append(out)
        return results[0] if isinstance(argnums, (int, np.integer)) else tuple(results)

    return jac


def _stack_first(items):
    return _rules.stack(*items, axis=0) if any(isinstance(i, Box) for i in items) else np.stack(items)


def _stack_last(cols, in_shape):
    s = _stack_first(cols)                      # (n, *out_shape) -> (*out_shape, *in_shape)
    out_shape = np.shape(strip(s))[1:]
    nd = len(out_shape)
    moved = _rules.permute_dims(s, tuple(range(1, nd + 1)) + (0,))
    return _rules.reshape(moved, out_shape + tuple(in_shape))


def jacfwd(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Jacobian by forward mode (one `jvp` per input element), shape ``out.shape + x.shape``."""
    return _jacobian(f, argnums, "fwd")


def jacrev(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Jacobian by reverse mode (one VJP per output element), shape ``out.shape + x.shape``."""
    return _jacobian(f, argnums, "rev")


def hessian(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Hessian of a scalar function, forward over reverse: ``jacfwd(jacrev(f))``, shape ``x.shape * 2``."""
    return jacfwd(jacrev(f, argnums), argnums)


def hvp(f: Callable, primals: Sequence, tangents: Sequence):
    """The Hessian-vector product ``∇²f(x)·v`` without forming the Hessian: ``jvp`` of ``grad`` (forward over reverse).

    ``primals``/``tangents`` as in `jvp`; ``f`` is scalar. Returns the product with the
    structure of the primals (a tuple for several arguments, as ``jax.jvp(jax.grad(f, argnums), ...)``).
    """
    nums = tuple(range(len(primals)))
    g = grad(f, argnums=nums[0] if len(nums) == 1 else nums)
    return jvp(g, primals, tangents)[1]


def stop_gradient(x):
    """The value of ``x`` (any pytree), treated as a constant by every trace (``jax.lax.stop_gradient``)."""
    leaves, tdef = flatten(x)
    return unflatten(tdef, [strip(leaf) for leaf in leaves])


@contextlib.contextmanager
def no_grad():
    """Within this block nothing is recorded; operations on traced values give plain NumPy values."""
    old = recording.enabled
    recording.enabled = False
    try:
        yield
    finally:
        recording.enabled = old


def name(x, label: str):
    """Label a traced value for `funcnet.tracer.trace` (``q = name(x + y, "q")``); returns ``x``."""
    if isinstance(x, Box):
        x.label = label
    return x


def primitive(fun: Callable, name: str | None = None) -> Primitive:
    """Wrap a function of plain NumPy values as a primitive; give it rules with `defvjp`/`defjvp`."""
    return fun if isinstance(fun, Primitive) else Primitive(fun, name)


def _primitive_for(fun) -> Primitive:
    """The primitive for ``fun``: itself, the one registered for a NumPy/funcnet function, or a new one."""
    if isinstance(fun, Primitive):
        return fun
    prim = _rules.FUNCTIONS.get(fun)
    if isinstance(prim, Primitive):
        return prim
    prim = Primitive(getattr(fun, "__wrapped__", fun))
    _rules.FUNCTIONS[fun] = prim
    NUMPY_FUNCTIONS.pop(fun, None)              # the new rule replaces a composite of other primitives
    return prim


def defvjp(prim, *rules, broadcasts: bool = False) -> Primitive:
    """Register reverse-mode rules: one ``rule(g, ans, *args, **kwargs)`` per positional argument.

    Each rule returns the cotangent of its argument given the output cotangent ``g`` and the output
    ``ans``; ``None`` marks an argument as non-differentiable. Write rules with operators and
    ``funcnet.tracer.numpy`` functions so that higher-order derivatives work. ``prim`` may be a
    primitive from `primitive`, a NumPy function such as ``np.cumsum`` (NumPy calls on traced
    values then dispatch to the new primitive), or a function decorated with
    `funcnet.tracer.overridable` (called on traced values, it becomes one node with this rule).
    Returns the primitive.

    Registering a rule for a NumPy function changes it for the whole process (as ``jax.custom_vjp`` would
    for a function you own); give your own functions their own primitive, as below.

    Examples:
      >>> import numpy as np
      >>> from funcnet import tracer
      >>> cube = tracer.defvjp(tracer.primitive(lambda x: x ** 3, "cube"), lambda g, ans, x: g * 3.0 * x ** 2)
      >>> tracer.grad(lambda x: np.sum(cube(x)))(np.array([1.0, 2.0]))            # 3 x²
      array([ 3., 12.])
      >>> tracer.grad(lambda x: tracer.grad(lambda y: np.sum(cube(y)))(x)[0])(np.array([1.0, 2.0]))  # rule traced
      array([6., 0.])
    """
    p = _primitive_for(prim)
    return _rules.define(p, vjp=rules, jvp=p.jvps or None, broadcasts=broadcasts, reads=p.reads)


def defjvp(prim, *rules, broadcasts: bool = False) -> Primitive:
    """Register forward-mode rules: one ``rule(t, ans, *args, **kwargs)`` per positional argument.

    Each rule returns the output's tangent caused by the tangent ``t`` of its argument (the tangents
    of several arguments are added). ``prim`` as in `defvjp`.

    Examples:
      >>> import numpy as np
      >>> from funcnet import tracer
      >>> cube = tracer.primitive(lambda x: x ** 3, "cube")
      >>> _ = tracer.defjvp(cube, lambda t, ans, x: 3.0 * x * x * t)
      >>> tracer.jvp(cube, (2.0,), (1.0,))[1]
      np.float64(12.0)
    """
    p = _primitive_for(prim)
    return _rules.define(p, vjp=p.vjps or None, jvp=rules, broadcasts=broadcasts, reads=p.reads)
