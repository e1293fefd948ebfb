r"""Adversarial inputs: FGSM and PGD, batched and compiled, on the input-optimization engine.

For a classifier with logits h(x) ∈ ℝ^K and loss ℓ(x, y) = -log softmax(h(x))_y, the perturbed input stays
in the ε-ball B = {x' : ‖x' - x‖ ≤ ε} (and, optionally, in the pixel box [lo, hi]):

    FGSM (L∞):  x_adv = clip(x + ε · sign(∇_x ℓ(x, y)))
    PGD:        x_{t+1} = Π_{B ∩ box}(x_t + α · sign(∇_x ℓ(x_t, y)))          (norm="linf")
                x_{t+1} = Π_{B ∩ box}(x_t + α · ∇_x ℓ / ‖∇_x ℓ‖₂)              (norm="l2")

Targeted attacks descend ℓ(x, y_target) instead. Each example is attacked independently: the objective is
Σ_i ℓ(x_i, y_i), whose gradient in x_i is ∇ℓ_i alone, and norms and projections act per example.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnet import activations as _activations
from funcnet.inputs import _loop as _engine
from funcnet.inputs._optimize import _as_float_array

__all__ = ["fgsm", "pgd"]


def _per_example_norm(v, batch_ndim: int):
    axes = tuple(range(batch_ndim, v.ndim))
    return jnp.sqrt(jnp.sum(v * v, axis=axes, keepdims=True))


@functools.lru_cache(maxsize=None)
def _l2_ascent(batch_ndim: int) -> optax.GradientTransformation:
    """u = -g / ‖g‖₂ per example (the steepest-descent direction in L2); one object per batch rank."""
    normalize = optax.stateless(
        lambda g, params: g / jnp.maximum(_per_example_norm(g, batch_ndim), jnp.finfo(g.dtype).tiny)
    )
    return optax.chain(normalize, optax.scale(-1.0))


def _project_l2(d, eps, batch_ndim: int):
    flat = d.reshape((-1, int(np.prod(d.shape[batch_ndim:], dtype=int))))
    flat = jax.vmap(optax.projections.projection_l2_ball, in_axes=(0, None))(flat, eps)
    return flat.reshape(d.shape)


def _cross_entropy_sum(logits, y):
    logp = _activations.log_softmax(logits)
    if jnp.issubdtype(y.dtype, jnp.integer):
        return -jnp.sum(jnp.take_along_axis(logp, y[..., None], axis=-1))
    return -jnp.sum(y * logp)


@functools.partial(jax.jit, static_argnames=("logits_fn", "loss", "steps", "norm", "targeted", "random_start",
                                             "batch_ndim", "has_clip"))
def _attack_jit(x, y, eps, step_size, key, lo, hi, *, logits_fn, loss, steps, norm, targeted, random_start,
                batch_ndim, has_clip):
    eps = eps.astype(x.dtype)

    def project(z):
        d = z - x
        d = optax.projections.projection_linf_ball(d, eps) if norm == "linf" else _project_l2(d, eps, batch_ndim)
        z = x + d
        return jnp.clip(z, lo, hi) if has_clip else z

    def objective(z, _key):
        logits = logits_fn(z)
        return _cross_entropy_sum(logits, y) if loss is None else jnp.sum(loss(logits, y))

    x0 = x
    if random_start:
        if norm == "linf":
            x0 = x + jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * eps
        else:
            k_dir, k_rad = jax.random.split(key)
            direction = jax.random.normal(k_dir, x.shape, x.dtype)
            direction = direction / jnp.maximum(_per_example_norm(direction, batch_ndim), jnp.finfo(x.dtype).tiny)
            radius = jax.random.uniform(k_rad, x.shape[:batch_ndim] + (1,) * (x.ndim - batch_ndim), x.dtype)
            x0 = x + eps * radius * direction
    tx = _engine.SIGN_DESCENT if norm == "linf" else _l2_ascent(batch_ndim)
    x_adv, history = _engine.run(objective, x0, steps=steps, tx=tx, scale=step_size.astype(x.dtype),
                                 maximize=not targeted, project=project)
    count = max(1, int(np.prod(x.shape[:batch_ndim], dtype=int)))
    return x_adv, history / count


def _check_inputs(logits_fn, x, y, eps, norm, clip, where):
    if not callable(logits_fn):
        raise TypeError(f"{where}: logits_fn must be a callable x -> logits (..., K), got {type(logits_fn).__name__}")
    x = _as_float_array(x, "x")
    try:
        out = jax.eval_shape(logits_fn, x)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: logits_fn failed on x of shape {x.shape}: {e}") from e
    if not hasattr(out, "shape") or len(out.shape) == 0:
        raise ValueError(f"{where}: logits_fn must return logits of shape (..., K), got {getattr(out, 'shape', out)}")
    k = out.shape[-1]
    batch_shape = tuple(out.shape[:-1])
    if tuple(x.shape[:len(batch_shape)]) != batch_shape:
        raise ValueError(
            f"{where}: logits of shape {tuple(out.shape)} do not keep the batch axes of x {tuple(x.shape)}; "
            f"logits_fn must map x of shape (*batch, ...) to (*batch, K)"
        )
    y = jnp.asarray(y)
    if jnp.issubdtype(y.dtype, jnp.integer):
        if y.shape != batch_shape:
            raise ValueError(f"{where}: integer labels must have shape {batch_shape} (the logits' batch shape), got {y.shape}")
        yv = np.asarray(y)
        if yv.size and (yv.min() < 0 or yv.max() >= k):
            raise ValueError(
                f"{where}: labels must lie in [0, {k}) for logits with {k} classes, got values in [{yv.min()}, {yv.max()}]"
            )
    elif jnp.issubdtype(y.dtype, jnp.floating):
        if y.shape != tuple(out.shape):
            raise ValueError(f"{where}: one-hot targets must have the logits' shape {tuple(out.shape)}, got {y.shape}")
    else:
        raise TypeError(f"{where}: labels must be integers or one-hot floats, got dtype {y.dtype}")
    if norm not in ("linf", "l2"):
        raise ValueError(f"{where}: norm must be 'linf' or 'l2', got {norm!r}")
    eps_arr = np.asarray(eps, dtype=float)
    if eps_arr.shape != () or not np.isfinite(eps_arr) or eps_arr < 0:
        raise ValueError(f"{where}: eps must be a finite number >= 0, got {eps!r}")
    if clip is None:
        lo = hi = jnp.zeros((), x.dtype)
    else:
        try:
            lo, hi = clip
        except (TypeError, ValueError):
            raise ValueError(f"{where}: clip must be None or a pair (lo, hi), got {clip!r}") from None
        lo, hi = jnp.asarray(lo, x.dtype), jnp.asarray(hi, x.dtype)
        if bool(jnp.any(lo > hi)):
            raise ValueError(f"{where}: clip=(lo, hi) needs lo <= hi, got {clip!r}")
    return x, y, len(batch_shape), lo, hi


def pgd(
    logits_fn: Callable[[Any], Any],
    x,
    y,
    eps: float,
    steps: int = 10,
    step_size: Optional[float] = None,
    *,
    norm: str = "linf",
    random_start: bool = False,
    key=None,
    targeted: bool = False,
    clip: Optional[tuple] = None,
    loss: Optional[Callable[[Any, Any], Any]] = None,
    return_history: bool = False,
):
    r"""Projected gradient descent attack (Madry et al.): ``steps`` steps of size α, projected onto the ε-ball.

    Args:
      logits_fn: ``x -> logits`` of shape ``(*batch, K)`` for x of shape ``(*batch, ...)``, e.g.
        ``lambda x: model.apply(params, x)``. The number of classes K is read from the logits. Reuse the same
        function object across calls to reuse the compiled attack.
      x: clean inputs ``(*batch, ...)``, floats.
      y: true labels ``(*batch,)`` ints in ``[0, K)`` (or one-hot ``(*batch, K)``); the *target* labels
        when ``targeted``.
      eps: radius ε of the ball around each x, in the ``norm``.
      steps: number of steps.
      step_size: α; default ``2.5 ε / steps``.
      norm: ``"linf"`` (sign steps) or ``"l2"`` (normalized-gradient steps).
      random_start: start from a uniform random point of the ball (needs ``key``).
      key: PRNG key for the random start.
      targeted: move towards the labels ``y`` (descend their loss) instead of away from them.
      clip: ``(lo, hi)`` valid input range, e.g. ``(0, 1)`` for pixels; None for no box.
      loss: ``(logits, y) -> per-example losses`` to use instead of softmax cross-entropy (summed over the batch).
      return_history: also return the mean loss at every step, shape ``(steps + 1,)``.

    Returns:
      ``x_adv`` of the shape and dtype of ``x``, with ``‖x_adv - x‖ ≤ ε`` per example and ``x_adv`` in the clip box
      (when ``x`` is). With ``return_history``: ``(x_adv, history)``.
    """
    x, y, batch_ndim, lo, hi = _check_inputs(logits_fn, x, y, eps, norm, clip, "pgd")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"pgd: steps must be a positive int, got {steps!r}")
    if step_size is None:
        step_size = 2.5 * float(eps) / steps
    if random_start and key is None:
        raise ValueError("pgd: random_start=True needs key=jax.random.key(...)")
    if loss is not None and not callable(loss):
        raise TypeError(f"pgd: loss must be a callable (logits, y) -> per-example losses, got {type(loss).__name__}")
    x_adv, history = _attack_jit(
        x, y, jnp.asarray(eps, x.dtype), jnp.asarray(step_size, x.dtype),
        key if key is not None else jax.random.key(0), lo, hi,
        logits_fn=logits_fn, loss=loss, steps=steps, norm=norm, targeted=bool(targeted),
        random_start=bool(random_start), batch_ndim=batch_ndim, has_clip=clip is not None,
    )
    return (x_adv, history) if return_history else x_adv


def fgsm(
    logits_fn: Callable[[Any], Any],
    x,
    y,
    eps: float,
    *,
    norm: str = "linf",
    targeted: bool = False,
    clip: Optional[tuple] = None,
    loss: Optional[Callable[[Any, Any], Any]] = None,
):
    r"""Fast gradient sign method (Goodfellow et al.): one step of size ε, x_adv = clip(x + ε sign ∇_x ℓ(x, y)).

    The one-step case of :func:`pgd` (``steps=1, step_size=eps``, no random start); same arguments. With
    ``norm="l2"`` it is the fast gradient method, x + ε ∇ℓ/‖∇ℓ‖₂.

    Examples:
      >>> import jax.numpy as jnp, funcnet as fn
      >>> logits_fn = lambda x: x @ jnp.array([[1.0, -1.0], [0.0, 0.0]])   # class 0 iff x[0] > 0
      >>> x = jnp.array([[0.05, 0.5]]); y = jnp.array([0])
      >>> x_adv = fn.inputs.fgsm(logits_fn, x, y, eps=0.1)                 # one signed step up the loss
      >>> print(x_adv, logits_fn(x_adv).argmax(-1))
      [[-0.05  0.5 ]] [1]
    """
    return pgd(logits_fn, x, y, eps, 1, eps, norm=norm, targeted=targeted, clip=clip, loss=loss)
