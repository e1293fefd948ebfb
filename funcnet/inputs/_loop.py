"""The loop every input optimization runs on: gradient steps on x with θ fixed, as one ``lax.scan``.

One step, for an objective f, an optax transformation T with state s and a step scale γ:

    g      = ∇_x (±f)(x_t)                  (minus sign when maximizing)
    u, s   = T.update(g, s, x_t)
    x_t+1  = Π(x_t + γ · u)                 (Π: an optional projection onto the feasible set)

Plain gradient descent is T = scale(-1) with γ the learning rate; an optax optimizer carries its own
learning rate and runs with γ = 1. The function here is traceable, not jitted: the public functions jit
it with their own static configuration, and ``visualize_units`` vmaps it over units.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

# Search directions shared by every call, so that jit caches keyed on them hit.
DESCENT = optax.scale(-1.0)                                  # u = -g
SIGN_DESCENT = optax.chain(optax.scale_by_sign(), optax.scale(-1.0))   # u = -sign(g)


def run(
    objective: Callable[[Any, Any], Any],
    x0,
    *,
    steps: int,
    tx: optax.GradientTransformation,
    scale=1.0,
    maximize: bool = False,
    project: Optional[Callable[[Any], Any]] = None,
    key=None,
    final_value: bool = True,
    values: bool = True,
):
    """Optimize ``objective(x, key) -> scalar`` over x from ``x0``; traceable (call it inside ``jit``).

    Args:
      objective: ``(x, key) -> scalar``; ``key`` is a fresh PRNG key per step when ``key`` is given
        (for stochastic objectives such as jitter), else ``None``.
      x0: start point, an array (or pytree) of floats.
      steps: number of gradient steps (a Python int).
      tx: the optax transformation giving the update direction u from the gradient.
      scale: γ multiplying u (the learning rate for ``DESCENT``/``SIGN_DESCENT``).
      maximize: ascend instead of descend.
      project: applied to x0 and after every step.
      key: PRNG key split into one key per step, or ``None``.
      final_value: also evaluate f at the last iterate.
      values: record the objective values. With ``False`` only the gradient is formed at each step (no
        forward reduction that only the value needs) and ``history`` is ``None``.

    Returns:
      ``(x, history)``: the last iterate and the objective values f(x_0), ..., f(x_{steps-1}) (the values
      the gradients were taken at), followed by f(x_steps) when ``final_value``; ``history`` is ``None``
      when ``values`` is ``False``.
    """
    sign = -1.0 if maximize else 1.0
    if project is not None:
        x0 = project(x0)
    keys = None if key is None else jax.random.split(key, steps + 1)

    def loss(x, k):
        return sign * objective(x, k)

    def step(carry, k):
        x, state = carry
        if values:
            value, g = jax.value_and_grad(loss)(x, k)
        else:
            value, g = None, jax.grad(loss)(x, k)
        u, state = tx.update(g, state, x)
        x = jax.tree.map(lambda xi, ui: xi + jnp.asarray(scale, xi.dtype) * ui.astype(xi.dtype), x, u)
        if project is not None:
            x = project(x)
        return (x, state), None if value is None else sign * value

    (x, _), history = jax.lax.scan(step, (x0, tx.init(x0)), None if keys is None else keys[:-1], length=steps)
    if not values:
        return x, None
    if final_value:
        last = objective(x, None if keys is None else keys[-1])
        history = jnp.concatenate([history, jnp.reshape(last, (1,)).astype(history.dtype)])
    return x, history
