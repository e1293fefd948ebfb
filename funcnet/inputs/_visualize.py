r"""Activation maximization: the input that most excites a unit, for many units in one compiled call.

For unit j of layer l, with x = ρ(u) an optional bounded parametrization and T a random jitter,

    u* = argmax_u  E_T[ h_lj(T(ρ(u))) ] - λ₁‖x‖₁ - λ₂‖x‖² - λ_tv TV(x) - λ_b ‖x - G_σ*x‖² - Σ λ_k R_k(x)

solved with Adam (or any optax optimizer) in one ``lax.scan``, ``vmap``-ed over the requested units, inside
one ``jit`` whose static configuration is cached: a second call with the same configuration reuses it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnet import activations as _activations
from funcnet.inputs import _frozen, _loop as _engine, _regularizers

__all__ = ["visualize_units"]

_OBJECTIVES = ("activation", "pre_activation", "logit", "probability", "log_probability")
_PARAMETRIZATIONS = ("sigmoid", "tanh", "clip")


@functools.lru_cache(maxsize=64)
def _adam(learning_rate: float) -> optax.GradientTransformation:
    # One object per learning rate, so that the jit cache (keyed on the static config) hits on repeat calls.
    return optax.adam(learning_rate)


@dataclasses.dataclass(frozen=True)
class _Config:
    model: Any
    layer: int
    objective: str
    steps: int
    tx: Any
    input_shape: tuple
    l1: float
    l2: float
    tv: float
    blur: float
    blur_sigma: float
    jitter: int
    value_range: Optional[tuple]
    parametrization: Optional[str]
    init_scale: float
    regularizers: tuple
    has_init: bool
    with_history: bool


# ------------------------------------------------------------------ parametrization x = ρ(u)
def _to_x(cfg: _Config, u):
    if cfg.value_range is None or cfg.parametrization == "clip":
        return u
    lo, hi = cfg.value_range
    if cfg.parametrization == "sigmoid":
        return lo + (hi - lo) * jax.nn.sigmoid(u)
    return 0.5 * (lo + hi) + 0.5 * (hi - lo) * jnp.tanh(u)          # tanh


def _to_u(cfg: _Config, x):
    if cfg.value_range is None or cfg.parametrization == "clip":
        return x
    lo, hi = cfg.value_range
    t = jnp.clip((x - lo) / (hi - lo), 1e-3, 1 - 1e-3)                # in (0, 1)
    if cfg.parametrization == "sigmoid":
        return jnp.log(t) - jnp.log1p(-t)
    return jnp.arctanh(2.0 * t - 1.0)


def _penalty(cfg: _Config, x):
    r = jnp.zeros((), x.dtype)
    if cfg.l1:
        r = r + cfg.l1 * _regularizers.l1(x)
    if cfg.l2:
        r = r + cfg.l2 * _regularizers.l2(x)
    if cfg.tv:
        r = r + cfg.tv * _regularizers.total_variation(x)
    if cfg.blur:
        r = r + cfg.blur * _regularizers.blur_penalty(x, cfg.blur_sigma)
    for weight, reg in cfg.regularizers:
        r = r + weight * reg(x)
    return r


def _jitter(cfg: _Config, x, key):
    axes = _regularizers.spatial_axes(x)
    shifts = jax.random.randint(key, (len(axes),), -cfg.jitter, cfg.jitter + 1)
    return jnp.roll(x, shifts, axis=axes)


def _unit_value(cfg: _Config, activations, x, unit):
    acts = activations(jnp.reshape(x, (-1,)))
    layer = acts[cfg.layer]
    if cfg.objective == "activation":
        v = layer["a"]
    elif cfg.objective in ("pre_activation", "logit"):
        v = layer["z"]
    elif cfg.objective == "probability":
        v = _activations.softmax(layer["z"])
    else:
        v = _activations.log_softmax(layer["z"])
    return v[unit]


@functools.partial(jax.jit, static_argnames=("cfg",))
def _visualize_jit(params, units, key, x_init, *, cfg: _Config):
    k_init, k_steps = jax.random.split(key)
    n = units.shape[0]
    if cfg.has_init:
        u0 = _to_u(cfg, jnp.broadcast_to(x_init, (n, *cfg.input_shape)))
    else:
        u0 = cfg.init_scale * jax.random.normal(k_init, (n, *cfg.input_shape), x_init.dtype)
        if cfg.value_range is not None and cfg.parametrization == "clip":
            u0 = u0 + 0.5 * (cfg.value_range[0] + cfg.value_range[1])
    project = None
    if cfg.value_range is not None and cfg.parametrization == "clip":
        project = functools.partial(jnp.clip, min=cfg.value_range[0], max=cfg.value_range[1])

    activations = _frozen.frozen_activations(cfg.model, params)   # Wᵀ made once, outside the loop

    def one_unit(unit, u_start, k):
        def objective(u, k_step):
            x = _to_x(cfg, u)
            seen = _jitter(cfg, x, k_step) if cfg.jitter else x
            return _unit_value(cfg, activations, seen, unit) - _penalty(cfg, x)

        u, hist = _engine.run(objective, u_start, steps=cfg.steps, tx=cfg.tx, maximize=True, project=project,
                              key=k if cfg.jitter else None, values=cfg.with_history)
        return _to_x(cfg, u), hist

    return jax.vmap(one_unit)(units, u0, jax.random.split(k_steps, n))


def _hashable_float(v, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a Python float (it is part of the compiled configuration), got {v!r}") from None
    if not math.isfinite(f) or f < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return f


def visualize_units(
    model,
    params,
    *,
    units: Sequence[int] | int,
    layer: int = -1,
    key=None,
    steps: int = 256,
    learning_rate: float = 0.05,
    optimizer: Optional[optax.GradientTransformation] = None,
    objective: str = "activation",
    l1: float = 0.0,
    l2: float = 0.0,
    tv: float = 0.0,
    blur: float = 0.0,
    blur_sigma: float = 1.0,
    jitter: int = 0,
    input_shape: Optional[Sequence[int]] = None,
    value_range: Optional[tuple[float, float]] = None,
    parametrization: Optional[str] = None,
    init=None,
    init_scale: float = 0.01,
    regularizers: Sequence[tuple[float, Callable]] = (),
    return_history: bool = False,
):
    r"""Find, for each requested unit, the input that maximizes it: argmax_x h_lj(x) - λR(x).

    All units are optimized together in one compiled call (``vmap`` over units of a ``lax.scan`` over
    steps). The compiled function is cached on the static configuration (model, layer, objective, steps,
    optimizer, regularizer weights, jitter, shapes), so repeating a call does not recompile; params, units,
    key and init are data.

    Args:
      model: a :class:`funcnet.MLP` (anything with ``sizes`` and ``activations(params, x)``).
      params: the trained parameters (held fixed).
      units: unit indices in the chosen layer (an int, a range or a sequence).
      layer: weight-layer index l in ``-L..L-1``; -1 is the output layer (the class units).
      key: PRNG key for the noise start and the jitter (required for either).
      steps: optimization steps per unit.
      learning_rate: Adam's learning rate (used when ``optimizer`` is None).
      optimizer: an optax transformation to use instead of Adam.
      objective: what to maximize for unit j: ``"activation"`` a_lj (post-activation), ``"pre_activation"``
        z_lj, ``"logit"`` z_Lj (output layer only), ``"probability"`` softmax(z_L)_j, or
        ``"log_probability"`` log softmax(z_L)_j.
      l1, l2, tv, blur: weights of the L1, squared-L2, total-variation and blur penalties
        (see :mod:`funcnet.inputs` regularizers); ``blur_sigma`` is the blur's σ in pixels.
      jitter: transformation robustness: each step the model sees x rolled by a random shift of up to
        ``jitter`` pixels along the spatial axes (0 turns it off).
      input_shape: the input's shape, channels-last: ``(n_0,)``, ``(H, W)`` or ``(H, W, C)``; its size must be
        the model's input width. Default ``(n_0,)``.
      value_range: ``(lo, hi)`` bounds on the input values, enforced by ``parametrization``.
      parametrization: how ``value_range`` is enforced: ``"sigmoid"`` (default; x = lo + (hi-lo)σ(u)),
        ``"tanh"``, or ``"clip"`` (projected gradient ascent).
      init: start input(s): None starts from small noise (``init_scale``; mid-range when bounded);
        an array of shape ``input_shape`` (shared) or ``(len(units), *input_shape)`` starts there
        (deep-dream style).
      regularizers: extra ``(weight, R)`` pairs, ``R(x) -> scalar`` pure, subtracted as weight·R(x).
      return_history: also return the objective per unit and step.

    Returns:
      ``images`` of shape ``(len(units), *input_shape)``; with ``return_history``, ``(images, history)``
      with ``history`` of shape ``(len(units), steps + 1)`` (the regularized objective; with jitter, at the
      jittered inputs).

    Examples:
      >>> import jax, funcnet as fn
      >>> model = fn.mlp([64, 32, 10])
      >>> params = model.init(jax.random.key(0))
      >>> images = fn.inputs.visualize_units(model, params, units=range(10), key=jax.random.key(1), steps=50,
      ...                                    input_shape=(8, 8), value_range=(0, 1), l2=1e-3, tv=0.05)
      >>> images.shape
      (10, 8, 8)
    """
    sizes = tuple(getattr(model, "sizes", ()))
    if len(sizes) < 2 or not hasattr(model, "activations"):
        raise TypeError(f"model must be a funcnet MLP (with sizes and activations), got {type(model).__name__}")
    if hasattr(model, "check_params"):
        model.check_params(params)
    n_layers = len(sizes) - 1
    try:
        layer = operator.index(layer)
    except TypeError:
        raise TypeError(f"layer must be an int, got {type(layer).__name__}") from None
    if not -n_layers <= layer < n_layers:
        raise ValueError(
            f"layer {layer} is out of range for a model with {n_layers} weight layers (sizes {list(sizes)}); "
            f"valid layers are {-n_layers}..{n_layers - 1} (-1 is the output layer)"
        )
    layer %= n_layers
    width = sizes[layer + 1]
    if objective not in _OBJECTIVES:
        raise ValueError(f"objective must be one of {list(_OBJECTIVES)}, got {objective!r}")
    if objective in ("logit", "probability", "log_probability") and layer != n_layers - 1:
        raise ValueError(
            f"objective={objective!r} is defined on the output layer only (layer -1 or {n_layers - 1}), got layer "
            f"{layer}; use 'activation' or 'pre_activation' for hidden units"
        )
    unit_list = np.atleast_1d(np.asarray(units if not isinstance(units, range) else list(units)))
    if unit_list.ndim != 1 or unit_list.size == 0 or not np.issubdtype(unit_list.dtype, np.integer):
        raise ValueError(f"units must be a non-empty int or sequence of ints, got {units!r}")
    bad = unit_list[(unit_list < 0) | (unit_list >= width)]
    if bad.size:
        raise ValueError(
            f"units {bad.tolist()} are out of range for layer {layer}, which has {width} units (valid: 0..{width - 1})"
        )
    input_shape = (sizes[0],) if input_shape is None else tuple(int(s) for s in input_shape)
    if math.prod(input_shape) != sizes[0] or not 1 <= len(input_shape) <= 3:
        raise ValueError(
            f"input_shape {input_shape} does not match the model's input width {sizes[0]}: expected a shape "
            f"with {sizes[0]} elements, such as ({sizes[0]},) or (H, W) / (H, W, C) with H·W·C = {sizes[0]}"
        )
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    jitter = operator.index(jitter)
    if jitter < 0:
        raise ValueError(f"jitter must be an int >= 0 (pixels), got {jitter}")
    if value_range is not None:
        lo, hi = (float(v) for v in value_range)
        if not lo < hi:
            raise ValueError(f"value_range must be (lo, hi) with lo < hi, got {value_range!r}")
        value_range = (lo, hi)
        parametrization = parametrization or "sigmoid"
        if parametrization not in _PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {list(_PARAMETRIZATIONS)}, got {parametrization!r}")
    elif parametrization is not None:
        raise ValueError("parametrization needs value_range=(lo, hi), the bounds it enforces")
    if optimizer is None:
        tx = _adam(_hashable_float(learning_rate, "learning_rate"))
    elif isinstance(optimizer, optax.GradientTransformation):
        tx = optimizer
    else:
        raise TypeError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    regs = tuple((_hashable_float(w, "regularizer weight"), r) for w, r in regularizers)
    for _, r in regs:
        if not callable(r):
            raise TypeError(f"regularizers must be (weight, callable) pairs, got {r!r}")

    dtype = jnp.result_type(*jax.tree.leaves(params))
    if init is not None:
        x_init = jnp.asarray(init, dtype)
        if x_init.shape not in (input_shape, (unit_list.size, *input_shape)):
            raise ValueError(
                f"init must have shape {input_shape} or {(unit_list.size, *input_shape)}, got {x_init.shape}"
            )
    else:
        x_init = jnp.zeros((), dtype)
    if key is None:
        if init is None or jitter:
            raise ValueError("visualize_units needs key=jax.random.key(...) for the noise start and the jitter")
        key = jax.random.key(0)
    cfg = _Config(
        model=model, layer=layer, objective=objective, steps=steps, tx=tx, input_shape=input_shape,
        l1=_hashable_float(l1, "l1"), l2=_hashable_float(l2, "l2"), tv=_hashable_float(tv, "tv"),
        blur=_hashable_float(blur, "blur"), blur_sigma=_hashable_float(blur_sigma, "blur_sigma"), jitter=jitter,
        value_range=value_range, parametrization=parametrization, init_scale=_hashable_float(init_scale, "init_scale"),
        regularizers=regs, has_init=init is not None, with_history=bool(return_history),
    )
    for (_, r) in regs:
        from funcnet.inputs._optimize import check_scalar_objective

        check_scalar_objective(r, jax.ShapeDtypeStruct(input_shape, dtype), where=f"regularizer {r!r}")
    images, history = _visualize_jit(params, jnp.asarray(unit_list, jnp.int32), key, x_init, cfg=cfg)
    return (images, history) if return_history else images
