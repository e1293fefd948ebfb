r"""Per-example gradients with ``vmap``."""

from __future__ import annotations

from typing import Any, Callable

import jax

from funcnet._boundary import leading_length

__all__ = ["per_example_grads"]


def per_example_grads(loss_fn: Callable[[Any, Any], Any], params: Any, batch: Any) -> Any:
    r"""One gradient pytree per example: ``g_i = ∇_θ loss_fn(θ, batch_i)``, stacked on a leading axis.

    Each example is passed to ``loss_fn`` as a batch of one (leading axis of size 1),
    so the same ``loss_fn(params, batch)`` used for training works unchanged. With a
    mean-reducing loss, the mean of the per-example gradients equals the batch
    gradient. Computed as ``jax.vmap`` of ``jax.grad`` over the examples, in one
    compiled call — no Python loop over the batch.

    Args:
      loss_fn: ``(params, batch) -> scalar``.
      params: a pytree of float arrays.
      batch: a pytree of arrays sharing the leading (example) axis of size n, e.g.
        ``(x (n, d), y (n,))``.

    Returns:
      A pytree shaped like ``params`` with an extra leading axis of size n.

    Raises:
      TypeError: ``loss_fn`` is not callable.
      ValueError: ``batch`` holds no arrays, a scalar leaf, leaves of different leading lengths, or 0 examples.

    Examples:
      >>> import jax.numpy as jnp, funcnet as fn
      >>> loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> g = fn.per_example_grads(loss, jnp.ones(2), (jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.zeros(2)))
      >>> g.tolist()
      [[2.0, 0.0], [0.0, 8.0]]
    """
    if not callable(loss_fn):
        raise TypeError(f"per_example_grads: loss_fn must be callable (params, batch) -> scalar, "
                        f"got {type(loss_fn).__name__}")
    leading_length(batch, "batch")

    def one(example):
        single = jax.tree_util.tree_map(lambda a: a[None], example)
        return jax.grad(loss_fn)(params, single)

    return jax.jit(jax.vmap(one))(batch)
