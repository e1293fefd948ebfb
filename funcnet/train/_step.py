"""One training step: ``loss, g = value_and_grad(loss_fn)(θ, batch)``; ``θ ← θ + optimizer.update(g)``."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

__all__ = ["make_train_step"]

LossFn = Callable[[Any, Any], jax.Array]


def check_loss_fn(loss_fn: Any) -> None:
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (params, batch) -> scalar, got {type(loss_fn).__name__}")


def check_optimizer(optimizer: Any) -> None:
    """Raise ``TypeError`` unless ``optimizer`` has optax's ``init(params)`` and ``update(updates, state, params)``."""
    hint = "e.g. optimizer=optax.adam(1e-3)"
    init, update = getattr(optimizer, "init", None), getattr(optimizer, "update", None)
    if not (callable(init) and callable(update)):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation (with init and update), got "
            f"{type(optimizer).__name__}; {hint}"
        )
    for name, fn, args in (("init", init, (None,)), ("update", update, (None, None, None))):
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):  # builtins without a signature: let them run
            continue
        try:
            sig.bind(*args)
        except TypeError:
            want = "init(params)" if name == "init" else "update(updates, state, params)"
            raise TypeError(
                f"optimizer.{name} must have optax's signature {want}, got {name}{sig}; {hint}"
            ) from None


def scalar_loss(loss_fn: LossFn) -> LossFn:
    """``loss_fn`` with a trace-time check that it returns a float scalar."""

    def checked(params, batch):
        loss = loss_fn(params, batch)
        shape = tuple(jnp.shape(loss))
        if shape != ():
            raise ValueError(
                f"loss_fn must return a scalar (the mean loss over the batch), got an array of shape {shape}; "
                "reduce it, e.g. with jnp.mean"
            )
        if not jnp.issubdtype(jnp.result_type(loss), jnp.floating):
            raise TypeError(f"loss_fn must return a float scalar, got dtype {jnp.result_type(loss)}")
        return loss

    return checked


def apply_optimizer(optimizer, grads, opt_state, params, loss, loss_fn, batch):
    """One optimizer update; extra-args optimizers (L-BFGS, reduce_on_plateau) also get value/grad/value_fn."""
    if isinstance(optimizer, optax.GradientTransformationExtraArgs):
        return optimizer.update(grads, opt_state, params, value=loss, grad=grads,
                                value_fn=lambda p: loss_fn(p, batch))
    return optimizer.update(grads, opt_state, params)


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, *, donate: bool = True,
                    mesh=None):
    r"""One compiled, pure training step.

    ``step(params, opt_state, batch) -> (params, opt_state, loss)`` computes
    ``loss, g = value_and_grad(loss_fn)(params, batch)``, then
    ``updates, opt_state = optimizer.update(g, opt_state, params)`` and
    θ ← θ + updates. ``loss`` is the loss *before* the update.

    Args:
      loss_fn: ``(params, batch) -> scalar``, pure.
      optimizer: any ``optax.GradientTransformation``.
      donate: donate the ``params`` and ``opt_state`` buffers to the step, so the
        update happens in place; the arrays passed in are invalid afterwards
        (always use the returned ones).
      mesh: optional ``jax.sharding.Mesh`` with a ``"data"`` axis (or a list of devices): the batch is split
        along ``"data"`` (its leading size must be a multiple of the axis size), params and opt_state are
        replicated, and XLA all-reduces the gradient. See `funcnet.sharding`.

    Returns:
      The jitted step. It compiles once per input shape/dtype; later calls with
      the same shapes reuse the compiled code.

    Raises:
      TypeError: ``loss_fn`` is not callable, or ``optimizer`` lacks optax's ``init``/``update``.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, funcnet as fn
      >>> loss_fn = lambda w, b: jnp.mean((b[0] * w - b[1]) ** 2)
      >>> opt = optax.sgd(0.1)
      >>> step = fn.make_train_step(loss_fn, opt)
      >>> w = jnp.array(0.0); s = opt.init(w)
      >>> w, s, loss = step(w, s, (jnp.array([1.0, 2.0]), jnp.array([2.0, 4.0])))
      >>> print(float(loss), float(w))    # J(0) = (4 + 16)/2; w = 0 - 0.1·(-10)
      10.0 1.0
    """
    check_loss_fn(loss_fn)
    check_optimizer(optimizer)
    checked = scalar_loss(loss_fn)

    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(checked)(params, batch)
        updates, opt_state = apply_optimizer(optimizer, grads, opt_state, params, loss, checked, batch)
        return optax.apply_updates(params, updates), opt_state, loss

    if mesh is not None:
        from funcnet import sharding as _sharding

        return _sharding.data_parallel_jit(step, _sharding.resolve_mesh(mesh), batch_argnums=(2,),
                                           donate_argnums=(0, 1) if donate else ())
    return jax.jit(step, donate_argnums=(0, 1) if donate else ())
