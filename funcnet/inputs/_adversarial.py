r"""Adversarial inputs: FGSM and PGD, batched and compiled, on the input-optimization engine.

For a classifier with logits h(x) ∈ ℝ^K and loss ℓ(x, y) = -log softmax(h(x))_y, the perturbed input stays
in the ε-ball B = {x' : ‖x' - x‖ ≤ ε} (and, optionally, in the pixel box [lo, hi]):

    FGSM (L∞):  x_adv = clip(x + ε · sign(∇_x ℓ(x, y)))
    PGD:        x_{t+1} = Π_{B ∩ box}(x_t + α · sign(∇_x ℓ(x_t, y)))          (norm="linf")
                x_{t+1} = Π_{B ∩ box}(x_t + α · ∇_x ℓ / ‖∇_x ℓ‖₂)              (norm="l2")

Targeted attacks descend ℓ(x, y_target) instead. Each example is attacked independently: the objective is
Σ_i ℓ(x_i, y_i), whose gradient in x_i is ∇ℓ_i alone, and norms and projections act per example. With
``y=None`` the labels are the model's own predictions argmax h(x); a sequence of ε gives one attack per ε,
stacked on a new leading axis (one compiled program for all of them).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnet import _boundary, activations as _activations
from funcnet.inputs import _loop as _engine
from funcnet.inputs._config import Attack, merge_options
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


class _Unset:
    def __repr__(self):
        return "<default>"


_UNSET = _Unset()


@dataclasses.dataclass(frozen=True)
class _AttackPlan:
    """What the compiled attack depends on (hashable): the model, the static options and the batch rank."""

    logits_fn: Callable
    attack: Attack              # with step_size and clip cleared: those are data
    batch_ndim: int
    has_clip: bool


def _random_start(plan: _AttackPlan, x, eps, key):
    if plan.attack.norm == "linf":
        return x + jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * eps
    k_dir, k_rad = jax.random.split(key)
    direction = jax.random.normal(k_dir, x.shape, x.dtype)
    direction = direction / jnp.maximum(_per_example_norm(direction, plan.batch_ndim), jnp.finfo(x.dtype).tiny)
    radius = jax.random.uniform(k_rad, x.shape[:plan.batch_ndim] + (1,) * (x.ndim - plan.batch_ndim), x.dtype)
    return x + eps * radius * direction


@functools.partial(jax.jit, static_argnames=("plan",))
def _attack_jit(x, y, eps, step_size, key, lo, hi, *, plan: _AttackPlan):
    eps = eps.astype(x.dtype)
    a, batch_ndim = plan.attack, plan.batch_ndim

    def project(z):
        d = z - x
        d = optax.projections.projection_linf_ball(d, eps) if a.norm == "linf" else _project_l2(d, eps, batch_ndim)
        z = x + d
        return jnp.clip(z, lo, hi) if plan.has_clip else z

    def objective(z, _key):
        logits = plan.logits_fn(z)
        return _cross_entropy_sum(logits, y) if a.loss is None else jnp.sum(a.loss(logits, y))

    x0 = _random_start(plan, x, eps, key) if a.random_start else x
    tx = _engine.SIGN_DESCENT if a.norm == "linf" else _l2_ascent(batch_ndim)
    x_adv, history = _engine.run(objective, x0, steps=a.steps, tx=tx, scale=step_size.astype(x.dtype),
                                 maximize=not a.targeted, project=project)
    count = max(1, int(np.prod(x.shape[:batch_ndim], dtype=int)))
    predicted = jnp.argmax(plan.logits_fn(x_adv), axis=-1)
    label = y if jnp.issubdtype(y.dtype, jnp.integer) else jnp.argmax(y, axis=-1)
    success = predicted == label if a.targeted else predicted != label
    return x_adv, history / count, success


def _logits_shape(logits_fn, x, where):
    if not callable(logits_fn):
        raise TypeError(f"{where}: logits_fn must be a callable x -> logits (..., K), got {type(logits_fn).__name__}")
    try:
        out = jax.eval_shape(logits_fn, x)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: logits_fn failed on x of shape {x.shape}: {e}") from e
    if not hasattr(out, "shape") or len(out.shape) == 0:
        raise ValueError(f"{where}: logits_fn must return logits of shape (..., K), got {getattr(out, 'shape', out)}")
    batch_shape = tuple(out.shape[:-1])
    if tuple(x.shape[:len(batch_shape)]) != batch_shape:
        raise ValueError(
            f"{where}: logits of shape {tuple(out.shape)} do not keep the batch axes of x {tuple(x.shape)}; "
            f"logits_fn must map x of shape (*batch, ...) to (*batch, K)"
        )
    return tuple(out.shape)


def _check_labels(logits_fn, x, y, out_shape, targeted, where):
    if y is None:
        if targeted:
            raise ValueError(f"{where}: a targeted attack needs the target labels y; y=None attacks the model's "
                             "own predictions, which only makes sense untargeted")
        return jnp.argmax(logits_fn(x), axis=-1).astype(jnp.int32)
    y = jnp.asarray(y)
    batch_shape, k = out_shape[:-1], out_shape[-1]
    if jnp.issubdtype(y.dtype, jnp.integer):
        if y.shape != batch_shape:
            raise ValueError(f"{where}: integer labels must have shape {batch_shape} (the logits' batch shape), "
                             f"got {y.shape}")
        _boundary.check_labels(y, k, "labels", where=where)
    elif jnp.issubdtype(y.dtype, jnp.floating):
        if y.shape != out_shape:
            raise ValueError(f"{where}: one-hot targets must have the logits' shape {out_shape}, got {y.shape}")
    else:
        raise TypeError(f"{where}: labels must be integers or one-hot floats, got dtype {y.dtype}")
    return y


def _eps_list(eps, where) -> tuple[list[float], bool]:
    if isinstance(eps, (list, tuple)) or (hasattr(eps, "ndim") and getattr(eps, "ndim") == 1):
        values = [_boundary.real(e.item() if hasattr(e, "item") else e, "eps", minimum=0, where=where) for e in eps]
        if not values:
            raise ValueError(f"{where}: eps must be a number >= 0 or a non-empty sequence of them, got {eps!r}")
        return values, True
    if hasattr(eps, "ndim") and getattr(eps, "ndim") == 0:
        eps = eps.item()
    return [_boundary.real(eps, "eps", minimum=0, where=where)], False


def _attack(logits_fn, x, y, eps, options: dict, *, attack, key, where):
    """The shared body of pgd and fgsm: checks, then one compiled attack per ε. Returns (x_adv, hist, success)."""
    attack, rest = merge_options(attack, Attack, options, name="attack", where=where)
    if rest:
        raise TypeError(f"{where}: unexpected keyword(s) {sorted(rest)}; the options are the fields of "
                        f"fn.inputs.Attack {[f.name for f in dataclasses.fields(Attack)]}")
    x = _as_float_array(x, "x")
    out_shape = _logits_shape(logits_fn, x, where)
    eps_values, stacked = _eps_list(eps, where)
    y = _check_labels(logits_fn, x, y, out_shape, attack.targeted, where)
    if attack.random_start and key is None:
        raise ValueError(f"{where}: random_start=True needs key=jax.random.key(...)")
    lo, hi = (0.0, 0.0) if attack.clip is None else attack.clip
    plan = _AttackPlan(logits_fn=logits_fn, attack=dataclasses.replace(attack, step_size=None, clip=None),
                       batch_ndim=len(out_shape) - 1, has_clip=attack.clip is not None)
    key = key if key is not None else jax.random.key(0)
    results = []
    for e in eps_values:
        size = attack.step_size if attack.step_size is not None else 2.5 * e / attack.steps
        results.append(_attack_jit(x, y, jnp.asarray(e, x.dtype), jnp.asarray(size, x.dtype), key,
                                   jnp.asarray(lo, x.dtype), jnp.asarray(hi, x.dtype), plan=plan))
    if stacked:
        return tuple(jnp.stack(parts) for parts in zip(*results))
    return results[0]


def _returns(x_adv, history, success, return_history, return_success):
    if return_history and return_success:
        return x_adv, history, success
    if return_history:
        return x_adv, history
    if return_success:
        return x_adv, success
    return x_adv


def pgd(
    logits_fn: Callable[[Any], Any],
    x,
    y,
    eps: float | Sequence[float],
    steps: int = _UNSET,
    step_size: Optional[float] = _UNSET,
    *,
    attack: Optional[Attack] = None,
    key=None,
    return_history: bool = False,
    return_success: bool = False,
    **options,
):
    r"""Projected gradient descent attack (Madry et al.): ``steps`` steps of size α, projected onto the ε-ball.

    Args:
      logits_fn: ``x -> logits`` of shape ``(*batch, K)`` for x of shape ``(*batch, ...)``, e.g.
        ``lambda x: model.apply(params, x)`` or ``functools.partial(apply, params)`` for any model. Reuse the
        same function object across calls to reuse the compiled attack.
      x: clean inputs ``(*batch, ...)``, floats.
      y: true labels ``(*batch,)`` ints in ``[0, K)`` (or one-hot ``(*batch, K)``); the *target* labels when
        ``targeted``; None attacks the model's own predictions argmax logits_fn(x).
      eps: radius ε ≥ 0 of the ball around each x, in the ``norm``; or a sequence of radii: the results are
        stacked on a new leading axis (one per ε).
      steps: number of steps (default 10).
      step_size: α; default ``2.5 ε / steps``.
      attack: a `Attack` holding the options below (instead of keywords).
      key: PRNG key for the random start.
      return_history: also return the mean loss at every step, shape ``(steps + 1,)`` (per ε).
      return_success: also return the success mask ``(*batch,)`` (per ε): the prediction at x_adv differs
        from y (equals y when ``targeted``).
      **options: the fields of `Attack` as keywords: ``norm`` ("linf" sign steps or "l2" normalized
        steps), ``random_start``, ``targeted``, ``clip=(lo, hi)`` (e.g. ``(0, 1)`` for pixels), ``loss``
        (``(logits, y) -> per-example losses`` instead of softmax cross-entropy, summed over the batch).

    Returns:
      ``x_adv`` of the shape and dtype of ``x`` (``(len(eps), *x.shape)`` for a sequence of ε), with
      ``‖x_adv - x‖ ≤ ε`` per example and ``x_adv`` in the clip box (when ``x`` is); with ``return_history``
      and/or ``return_success``: ``(x_adv, history)``, ``(x_adv, success)`` or ``(x_adv, history, success)``.

    Examples:
      >>> import jax.numpy as jnp, funcnet as fn
      >>> logits_fn = lambda x: x @ jnp.array([[1.0, -1.0], [0.0, 0.0]])   # class 0 iff x[0] > 0
      >>> x = jnp.array([[0.05, 0.5], [0.5, 0.5]])
      >>> x_adv, success = fn.inputs.pgd(logits_fn, x, None, [0.1, 1.0], 5, return_success=True)
      >>> success.tolist()                                                   # one row per eps
      [[True, False], [True, True]]
    """
    opts = dict(options)
    if steps is not _UNSET:
        opts["steps"] = steps
    if step_size is not _UNSET and step_size is not None:
        opts["step_size"] = step_size
    x_adv, history, success = _attack(logits_fn, x, y, eps, opts, attack=attack, key=key, where="pgd")
    return _returns(x_adv, history, success, return_history, return_success)


def fgsm(
    logits_fn: Callable[[Any], Any],
    x,
    y,
    eps: float | Sequence[float],
    *,
    attack: Optional[Attack] = None,
    return_success: bool = False,
    **options,
):
    r"""Fast gradient sign method (Goodfellow et al.): one step of size ε, x_adv = clip(x + ε sign ∇_x ℓ(x, y)).

    The one-step case of `pgd` (``steps=1, step_size=eps``, no random start); same arguments
    (``y=None``, a sequence of ε, ``return_success``; options ``norm, targeted, clip, loss``). With
    ``norm="l2"`` it is the fast gradient method, x + ε ∇ℓ/‖∇ℓ‖₂.

    Examples:
      >>> import jax.numpy as jnp, funcnet as fn
      >>> logits_fn = lambda x: x @ jnp.array([[1.0, -1.0], [0.0, 0.0]])   # class 0 iff x[0] > 0
      >>> x = jnp.array([[0.05, 0.5]]); y = jnp.array([0])
      >>> x_adv = fn.inputs.fgsm(logits_fn, x, y, eps=0.1)                 # one signed step up the loss
      >>> print(x_adv, logits_fn(x_adv).argmax(-1))
      [[-0.05  0.5 ]] [1]
    """
    where = "fgsm"
    bad = sorted({"steps", "step_size", "random_start"} & options.keys())
    if bad:
        raise TypeError(f"{where}: unexpected keyword(s) {bad}: FGSM is one step of size eps; use pgd for more")
    config, rest = merge_options(attack, Attack, options, name="attack", where=where)
    if rest:
        raise TypeError(f"{where}: unexpected keyword(s) {sorted(rest)}; the options are norm, targeted, clip, loss")
    if config.random_start:
        raise ValueError(f"{where}: FGSM has no random start; use pgd(..., random_start=True, key=...)")
    eps_values, stacked = _eps_list(eps, where)
    results = [_attack(logits_fn, x, y, e, {}, attack=dataclasses.replace(config, steps=1, step_size=e), key=None,
                       where=where) for e in eps_values]
    x_adv, _, success = tuple(jnp.stack(p) for p in zip(*results)) if stacked else results[0]
    return (x_adv, success) if return_success else x_adv
