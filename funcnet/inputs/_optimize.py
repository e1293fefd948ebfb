"""optimize_input: gradient descent (or ascent) on the input of a fixed function."""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from funcnet import _boundary
from funcnet.inputs import _loop as _engine
from funcnet.inputs._projections import Projection

__all__ = ["optimize_input"]


def _as_float_array(x, name: str):
    arr = jnp.asarray(x)
    if jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_:
        arr = arr.astype(jnp.asarray(0.0).dtype)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"{name} must be a real float array, got dtype {arr.dtype}")
    return arr


def check_scalar_objective(objective: Callable, *example_args, where: str = "objective") -> None:
    """Raise a clear error unless ``objective(*example_args)`` returns a real scalar (checked abstractly)."""
    try:
        out = jax.eval_shape(objective, *example_args)
    except (TypeError, ValueError, IndexError) as e:
        shapes = [tuple(getattr(a, "shape", ())) for a in example_args]
        raise type(e)(f"{where} failed on arguments of shape {shapes}: {e}") from e
    shape = tuple(getattr(out, "shape", (None,)))
    dtype = getattr(out, "dtype", None)
    if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"{where} must return a real scalar (shape ()), got {type(out).__name__} of shape {shape} and "
            f"dtype {dtype}; reduce it to one number (e.g. jnp.sum), or jax.vmap optimize_input over a batch"
        )


def _split_projection(project):
    """Pytree projections travel as data (no recompile on new bounds); other callables as static config."""
    if project is None:
        return None, None
    if isinstance(project, Projection) and all(
        hasattr(leaf, "dtype") or isinstance(leaf, (int, float)) for leaf in jax.tree.leaves(project)
    ):
        return project, None
    if not callable(project):
        raise TypeError(f"project must be a callable x -> x (e.g. fn.inputs.box(0, 1)), got {type(project).__name__}")
    return None, project


@functools.partial(jax.jit, static_argnames=("objective", "steps", "tx", "maximize", "static_project"))
def _optimize_jit(x0, args, scale, dyn_project, *, objective, steps, tx, maximize, static_project):
    project = dyn_project if dyn_project is not None else static_project
    return _engine.run(
        lambda x, _k: objective(x, *args), x0, steps=steps, tx=tx, scale=scale, maximize=maximize, project=project,
    )


def optimize_input(
    objective: Callable[..., Any],
    x0,
    *,
    steps: int,
    learning_rate: Optional[float] = None,
    optimizer: Optional[optax.GradientTransformation] = None,
    maximize: bool = False,
    project: Optional[Callable[[Any], Any]] = None,
    args: tuple = (),
):
    r"""Optimize the input of a fixed function: x ← x ∓ γ ∇_x f(x), compiled as one ``lax.scan``.

    Backprop gives the gradient with respect to any node of the graph, not only the weights: hold θ fixed
    (close over it, or pass it in ``args``) and move x. With no ``optimizer`` this is plain gradient descent

        x_{t+1} = Π(x_t - γ ∇f(x_t))          (x_t + γ ∇f(x_t) when ``maximize``)

    with Π the optional projection; with an optax ``optimizer`` its update replaces -γ∇f.

    Args:
      objective: ``objective(x, *args) -> scalar``, differentiable in x. Checked abstractly before
        compiling: a non-scalar output raises ``ValueError``.
      x0: start point, a float array of any shape (integers are cast to the default float dtype).
      steps: number of gradient steps.
      learning_rate: γ of plain gradient descent (required when ``optimizer`` is None).
      optimizer: an ``optax.GradientTransformation`` (carrying its own learning rate) used instead.
      maximize: ascend instead of descend.
      project: a projection x -> x applied to x0 and after every step: ``fn.inputs.box(lo, hi)``,
        ``fn.inputs.ball(center, radius, norm)``, ``fn.inputs.chain(...)`` or any pure callable.
      args: extra arguments passed to ``objective`` as traced data (pass parameters here rather than in a
        fresh closure, so that repeated calls reuse the compiled loop).

    Returns:
      ``(x, history)``: the final input (shape and dtype of ``x0``) and the objective values
      ``history[t] = f(x_t)`` for t = 0..steps, shape ``(steps + 1,)``.

    Example (the lectures' quadratic, f(x) = (xᵀAx + bᵀx + c)²):
      >>> import jax.numpy as jnp, funcnet as fn
      >>> A = jnp.array([[0.0, 2.0], [2.0, 0.0]]); b = jnp.array([-0.5, 0.5]); c = -2.0
      >>> f = lambda x: (x @ A @ x + b @ x + c) ** 2
      >>> x, hist = fn.inputs.optimize_input(f, jnp.array([1.0, 1.0]), steps=200, learning_rate=1e-3)
      >>> print(round(float(hist[0]), 4), round(float(hist[1]), 4))
      4.0 3.5007
    """
    if not callable(objective):
        raise TypeError(f"objective must be a callable x -> scalar, got {type(objective).__name__}")
    steps = _boundary.count(steps, "steps", where="optimize_input")
    if learning_rate is not None:
        learning_rate = _boundary.real(learning_rate, "learning_rate", minimum=0, where="optimize_input")
    if optimizer is None and learning_rate is None:
        raise ValueError("give learning_rate (plain gradient descent) or optimizer (an optax transformation)")
    if optimizer is not None and learning_rate is not None:
        raise ValueError(
            "give either learning_rate (plain gradient descent) or optimizer (an optax transformation, which "
            "carries its own learning rate), not both"
        )
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    x0 = _as_float_array(x0, "x0")
    args = tuple(args)
    check_scalar_objective(objective, x0, *args)
    dyn_project, static_project = _split_projection(project)
    tx, scale = (_engine.DESCENT, learning_rate) if optimizer is None else (optimizer, 1.0)
    return _optimize_jit(
        x0, args, jnp.asarray(scale, x0.dtype), dyn_project,
        objective=objective, steps=steps, tx=tx, maximize=bool(maximize), static_project=static_project,
    )
