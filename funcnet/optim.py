"""Optimizers in the lectures' notation, built from optax pieces."""

from __future__ import annotations

from typing import Any

import optax

__all__ = ["ema_momentum"]


def _check_nonnegative(name: str, value: Any) -> None:
    """Raise for a concrete negative value; schedules and traced values are not checked."""
    if callable(value):
        return
    try:
        v = float(value)
    except Exception:  # a tracer (inside inject_hyperparams under jit): value unknown now
        return
    if not v >= 0:
        raise ValueError(f"{name} must be >= 0 (training descends the loss), got {v}")


def ema_momentum(learning_rate: Any, alpha: float = 0.9, *, accumulator_dtype: Any = None) -> optax.GradientTransformation:
    r"""The lectures' momentum: an exponential moving average of the gradients.

    With gradient g_t, velocity Δ (Δ_0 = 0), decay α and learning rate γ:

        Δ_t = α Δ_{t-1} + (1 - α) g_t
        θ_t = θ_{t-1} - γ Δ_t

    Unlike ``optax.sgd(γ, momentum=α)`` (Δ ← αΔ + g), the gradient is scaled by
    (1 - α), so Δ is an average of recent gradients with the units of a gradient.
    Built as ``optax.chain(optax.ema(α, debias=False), optax.scale_by_learning_rate(γ))``.

    Args:
      learning_rate: γ >= 0, a float or an optax schedule ``step -> γ``.
      alpha: α in [0, 1); 0 gives plain gradient descent.
      accumulator_dtype: optional dtype of Δ (default: the gradients' dtype).

    Returns:
      An ``optax.GradientTransformation``; wrap it in ``optax.inject_hyperparams``
      to record the learning rate in `funcnet.History`.

    Examples:
      >>> import jax.numpy as jnp, optax, funcnet as fn
      >>> opt = fn.optim.ema_momentum(0.1, alpha=0.5)
      >>> state = opt.init(jnp.zeros(1))
      >>> updates, state = opt.update(jnp.ones(1), state)   # Δ = 0.5·0 + 0.5·1
      >>> print(updates)                                    # -γΔ
      [-0.05]
    """
    _check_nonnegative("learning_rate", learning_rate)
    try:
        a = float(alpha)
    except Exception:
        a = None
    if a is not None and not 0.0 <= a < 1.0:
        raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
    return optax.chain(
        optax.ema(decay=alpha, debias=False, accumulator_dtype=accumulator_dtype),
        optax.scale_by_learning_rate(learning_rate),
    )
