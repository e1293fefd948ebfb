"""Differential testing: random programs, differentiated by tracer.grad, jax.grad and finite differences.

Hypothesis draws a random DAG over the tracer's primitives — elementwise functions,
broadcasting binary operations, reductions (with and without ``keepdims``),
``broadcast_to`` and matrix products — on inputs whose shapes broadcast against
each other. Each value may feed several later operations (fan-out), and the
output sums every intermediate, so every rule's fan-out accumulation is used.
The program is written once against the array namespace of its inputs, so the
same code runs under ``jax.numpy``, the tracer and NumPy.

Budget: ``FUNCNET_FUZZ_EXAMPLES`` programs (default 300, derandomized so CI is
reproducible) against finite differences, a third of that many also against
``jax.grad``, and a sixth as many random MLPs (delta rule vs tracer); e.g. ``FUNCNET_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py`` for a
long fuzz. ``FUNCNET_FUZZ_SEED`` changes the derandomized sequence.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import pytest

import funcnet as fn
from funcnet import tracer
from funcnet._boundary import array_namespace
from funcnet.tracer import _memory, _rules


@pytest.fixture(autouse=True, scope="module")
def memory_policy_on_small_arrays():
    """grad's memory policy acts on arrays of >= 64 KiB; fuzz arrays are <= 3x3, so lower it to every array."""
    with _memory.threshold(0):
        yield


def test_the_lowered_threshold_reaches_the_memory_policy(monkeypatch):
    # a spent temporary plus a bias, on 2x3 arrays: added in place only because the threshold is lowered
    calls = []
    into = _memory.INTO[_rules.add]
    monkeypatch.setitem(_memory.INTO, _rules.add, lambda x, y: (calls.append(x.shape), into(x, y))[1])
    a, b = np.arange(6.0).reshape(2, 3) / 7, np.array([0.1, -0.2, 0.3])
    g = tracer.grad(lambda w: np.sum(np.tanh(a * w + b)))(np.ones((2, 3)))
    t = np.tanh(a + b)
    np.testing.assert_allclose(g, a * (1 - t * t), rtol=1e-14)        # closed form
    assert calls == ([(2, 3)] if _memory.EXACT_REFCOUNTS else [])

EXAMPLES = int(os.environ.get("FUNCNET_FUZZ_EXAMPLES", 300))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_SALT = int(os.environ.get("FUNCNET_FUZZ_SEED", 0))

# Tolerances (float64 throughout). tracer vs jax: two exact methods, different summation order.
EXACT_RTOL, EXACT_ATOL = 1e-9, 1e-12
# vs central differences with h = 6e-6·max(1,|x|): truncation ~h²|f'''|, rounding ~1e-11|f|.
FD_RTOL, FD_ATOL = 1e-5, 1e-6

# name -> function of (xp, *operands). All smooth except maximum and max, whose kinks random inputs
# reach with probability ~0 (ties of distinct values within a finite-difference step).
UNARY = {
    "neg": lambda xp, x: -x,
    "tanh": lambda xp, x: xp.tanh(x),
    "sin": lambda xp, x: xp.sin(x),
    "cos": lambda xp, x: xp.cos(x),
    "exp": lambda xp, x: xp.exp(xp.tanh(x)),          # bounded argument: no overflow
    "log": lambda xp, x: xp.log(1.0 + x * x),
    "sqrt": lambda xp, x: xp.sqrt(1.0 + x * x),
    "square": lambda xp, x: x * x,
    "cube": lambda xp, x: x ** 3,
    "affine": lambda xp, x: 2.5 * x - 0.75,
    "rsub": lambda xp, x: 1.5 - x,
    "sigmoid": lambda xp, x: fn.activations.sigmoid(x),
    "softplus": lambda xp, x: fn.activations.softplus(x),
    "softmax": lambda xp, x: fn.activations.softmax(x),          # over the last axis (max, exp, sum)
    "log_softmax": lambda xp, x: fn.activations.log_softmax(x),
}
BINARY = {
    "add": lambda xp, x, y: x + y,
    "sub": lambda xp, x, y: x - y,
    "mul": lambda xp, x, y: x * y,
    "div": lambda xp, x, y: x / (1.0 + y * y),
    # kinked where x == y; exact ties only arise from a value meeting itself (maximum(v, v)), where the
    # tie-splitting rules of JAX and the tracer and the finite difference all give the same total
    "maximum": lambda xp, x, y: xp.maximum(x, y),
}


@dataclasses.dataclass(frozen=True)
class Program:
    """A random straight-line program: inputs of given shapes, then ops on earlier values."""

    base: tuple            # the full broadcast shape (a, b)
    input_shapes: tuple    # each broadcasts to base
    ops: tuple             # (kind, name, operand indices, extra)
    seed: int

    def inputs(self):
        rng = np.random.default_rng(self.seed)
        return [rng.uniform(-1.5, 1.5, size=s) for s in self.input_shapes]

    def __call__(self, *xs):
        xp = array_namespace(*xs)
        vals = list(xs)
        for kind, name, idx, extra in self.ops:
            if kind == "unary":
                v = UNARY[name](xp, vals[idx[0]])
            elif kind == "binary":
                v = BINARY[name](xp, vals[idx[0]], vals[idx[1]])
            elif kind == "reduce":
                axis, keepdims = extra
                v = getattr(xp, name)(vals[idx[0]], axis=axis, keepdims=keepdims)
            elif kind == "matmul":  # (a, b) @ (b, a) @ (a, b) -> (a, b), from broadcast operands
                a = xp.broadcast_to(vals[idx[0]], self.base)
                b = xp.broadcast_to(vals[idx[1]], self.base)
                v = (a @ xp.matrix_transpose(b)) @ a / 4.0
            else:  # pragma: no cover
                raise AssertionError(kind)
            vals.append(v)
        # the last value, plus a little of every other one: fan-out everywhere, all inputs reach the output
        out = xp.sum(vals[-1])
        for v in vals[:-1]:
            out = out + 0.1 * xp.mean(v)
        return out

    def describe(self) -> str:
        lines = [f"inputs {list(self.input_shapes)} (base {self.base}, seed {self.seed})"]
        n = len(self.input_shapes)
        for k, (kind, name, idx, extra) in enumerate(self.ops):
            lines.append(f"  v{n + k} = {name}({', '.join(f'v{i}' for i in idx)}{', ' + str(extra) if extra else ''})")
        return "\n".join(lines)


def _sub_shapes(base):
    """Shapes that broadcast to ``base`` = (a, b): each axis kept, set to 1, or (leading ones) dropped."""
    a, b = base
    return sorted({(a, b), (1, b), (a, 1), (b,), (1,), (), (1, 1)})


@st.composite
def programs(draw):
    base = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    options = _sub_shapes(base)
    n_in = draw(st.integers(1, 3))
    shapes = [base] + [draw(st.sampled_from(options)) for _ in range(n_in - 1)]
    shapes = draw(st.permutations(shapes))
    cur = list(shapes)
    ops = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "reduce", "matmul"]))
        pick = lambda: draw(st.integers(0, len(cur) - 1))  # noqa: E731  (any earlier value: fan-out)
        if kind == "unary":
            i = pick()
            # softmax needs a class axis (JAX refuses axis=-1 on a 0-d array; NumPy does not)
            names = sorted(UNARY) if cur[i] else sorted(set(UNARY) - {"softmax", "log_softmax"})
            ops.append(("unary", draw(st.sampled_from(names)), (i,), None))
            cur.append(cur[i])
        elif kind == "binary":
            i, j = pick(), pick()
            ops.append(("binary", draw(st.sampled_from(sorted(BINARY))), (i, j), None))
            cur.append(np.broadcast_shapes(cur[i], cur[j]))
        elif kind == "reduce":
            i = pick()
            shape = cur[i]
            if len(shape) == 0:
                ops.append(("unary", "tanh", (i,), None))
                cur.append(shape)
                continue
            keepdims = draw(st.booleans())
            # dropping an axis keeps broadcasting with base only for the leading one
            axis = draw(st.integers(-len(shape), len(shape) - 1)) if keepdims else 0
            ops.append(("reduce", draw(st.sampled_from(["sum", "mean", "max"])), (i,), (axis, keepdims)))
            red = list(shape)
            if keepdims:
                red[axis] = 1
            else:
                del red[0]
            cur.append(tuple(red))
        else:
            i, j = pick(), pick()
            ops.append(("matmul", "matmul", (i, j), None))
            cur.append(base)
    seed = draw(st.integers(0, 2 ** 31 - 1)) ^ _SALT
    return Program(base, tuple(shapes), tuple(ops), seed)


def _close(got, want, rtol, atol, what, prog):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}\n{prog.describe()}"
    err = np.abs(got - want)
    bound = atol + rtol * np.maximum(np.abs(got), np.abs(want))
    assert np.all(err <= bound), (
        f"{what}: max abs error {err.max():.3e} (bound {bound.flat[np.argmax(err - bound)]:.3e})\n{prog.describe()}")


def _checked_inputs(prog):
    xs = prog.inputs()
    value = float(prog(*xs))
    assume(np.isfinite(value) and abs(value) < 1e6)
    return xs, tuple(range(len(xs))), max(1.0, abs(value))


@FUZZ
@given(programs())
def test_random_programs_tracer_vs_finite_differences(prog):
    xs, argnums, scale = _checked_inputs(prog)
    g_tracer = tracer.grad(prog, argnums=argnums)(*xs)
    g_num = fn.check.numerical_grad(prog, *xs, argnums=argnums)
    for k, (gt, gn) in enumerate(zip(g_tracer, g_num)):
        assert np.shape(gt) == np.shape(xs[k]), f"tracer grad shape {np.shape(gt)} for input {np.shape(xs[k])}"
        _close(gt, gn, FD_RTOL, FD_ATOL * scale, f"tracer vs finite differences, input {k}", prog)


# jax.grad, jitted, compiles one backward computation per random program (~0.05-0.3 s), so it sees a third of
# the budget; the tracer and finite differences above, which cost milliseconds, see all of it.
@settings(FUZZ, max_examples=max(EXAMPLES // 3, 10))
@given(programs())
def test_random_programs_tracer_vs_jax_vs_finite_differences(prog):
    xs, argnums, scale = _checked_inputs(prog)
    g_tracer = tracer.grad(prog, argnums=argnums)(*xs)
    with jax.enable_x64(True):
        g_jax = jax.jit(jax.grad(prog, argnums=argnums))(*[jnp.asarray(x) for x in xs])   # one compile: ~3x eager
    g_num = fn.check.numerical_grad(prog, *xs, argnums=argnums)
    for k, (gt, gj, gn) in enumerate(zip(g_tracer, g_jax, g_num)):
        _close(gt, gj, EXACT_RTOL, EXACT_ATOL * scale, f"tracer vs jax, input {k}", prog)
        _close(gj, gn, FD_RTOL, FD_ATOL * scale, f"jax vs finite differences, input {k}", prog)


ACTS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "softmax", "log_softmax")
LOSSES = ("mse", "half_mse", "softmax_cross_entropy", "binary_cross_entropy")


@settings(max_examples=max(EXAMPLES // 6, 10), derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(1, 4), min_size=2, max_size=4),
       hidden=st.sampled_from(ACTS), output=st.sampled_from(ACTS), loss=st.sampled_from(LOSSES),
       batch=st.integers(1, 4), seed=st.integers(0, 2 ** 16))
def test_random_mlps_manual_vs_tracer(sizes, hidden, output, loss, batch, seed):
    """The hand-derived delta rule against the tracer on random MLPs (both independent of JAX's autodiff)."""
    model = fn.mlp(sizes, activation=hidden, output_activation=output)
    rng = np.random.default_rng(seed ^ _SALT)
    params = [{"w": rng.normal(size=(i, o)), "b": rng.normal(size=o) * 0.1}
              for i, o in zip(sizes[:-1], sizes[1:])]
    x = rng.normal(size=(batch, sizes[0]))
    k = sizes[-1]
    y = rng.integers(0, k, size=batch) if loss == "softmax_cross_entropy" else rng.uniform(size=(batch, k))
    f = fn.manual.mlp_loss(model, x, y, loss)
    g_manual = f.manual_grad(params)
    g_tracer = tracer.grad(f)(params)
    for gm, gt in zip(jax.tree.leaves(g_manual), jax.tree.leaves(g_tracer)):
        # both exact in float64; the bound is relative to the leaf's largest entry (exact zeros of dead units)
        np.testing.assert_allclose(gm, gt, rtol=1e-9, atol=1e-12 * max(1.0, float(np.abs(gt).max())))
