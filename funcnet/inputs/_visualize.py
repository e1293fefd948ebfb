r"""Activation maximization: the input that most excites a unit, for many units in one compiled call.

For unit j, with x = ρ(u) the parametrization (`Parametrization`) and T a random transformation drawn at
every step (`Regularizers`' jitter, scale, rotate),

    u* = argmax_u  E_T[ f(out(T(ρ(u))), j) ] - R(ρ(u))

where f is the objective (a name or a composable `Objective`) and R the weighted penalties. Solved with
Adam (or any optax optimizer) in one ``lax.scan``, ``vmap``-ed over the requested units, inside one ``jit``
whose static configuration is cached: a second call with the same configuration reuses it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnet import _boundary
from funcnet.inputs import _frozen, _image, _loop as _engine, _objectives, _regularizers
from funcnet.inputs._config import Parametrization, Regularizers, merge_options

__all__ = ["visualize_units"]

_WHERE = "visualize_units"


@functools.lru_cache(maxsize=64)
def _adam(learning_rate: float) -> optax.GradientTransformation:
    # One object per learning rate, so that the jit cache (keyed on the static config) hits on repeat calls.
    return optax.adam(learning_rate)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The static configuration of one compiled visualization (hashable: the jit cache key)."""

    model: Any                      # a funcnet MLP, or an apply(params, x) function
    is_mlp: bool
    objective: _objectives.Objective
    steps: int
    tx: Any
    input_shape: tuple
    regs: Regularizers
    param: Parametrization
    has_init: bool
    with_history: bool


def _penalty(plan: _Plan, x):
    r, lr = plan.regs, plan.param.value_range
    total = jnp.zeros((), x.dtype)
    for weight, fn in ((r.l1, _regularizers.l1), (r.l2, _regularizers.l2), (r.tv, _regularizers.total_variation)):
        if weight:
            total = total + weight * fn(x)
    if r.blur:
        total = total + r.blur * _regularizers.blur_penalty(x, r.blur_sigma)
    if r.edge:
        s = jnp.clip((2.0 * x - lr[0] - lr[1]) / (lr[1] - lr[0]), -1 + 1e-6, 1 - 1e-6)
        total = total - r.edge * jnp.sum(jnp.log1p(-s * s))
    for weight, reg in r.extra:
        total = total + weight * reg(x)
    return total


def _start(plan: _Plan, key, x_init, n: int):
    shape = plan.input_shape
    if plan.has_init:
        x0 = jnp.broadcast_to(x_init, (n, *shape))
        return jax.vmap(lambda x: _image.to_u(plan.param, shape, x))(x0)
    u0 = plan.param.init_scale * jax.random.normal(key, (n, *_image.u_shape(plan.param, shape)), x_init.dtype)
    if plan.param.value_range is not None and plan.param.squash == "clip":
        u0 = u0 + 0.5 * sum(plan.param.value_range)
    return u0


@functools.partial(jax.jit, static_argnames=("plan",))
def _visualize_jit(params, units, key, x_init, *, plan: _Plan):
    k_init, k_steps = jax.random.split(key)
    n, shape, p = units.shape[0], plan.input_shape, plan.param
    u0 = _start(plan, k_init, x_init, n)
    project = None
    if p.value_range is not None and p.squash == "clip":
        project = functools.partial(jnp.clip, min=p.value_range[0], max=p.value_range[1])
    if plan.is_mlp:
        acts = _frozen.frozen_activations(plan.model, params)     # Wᵀ made once, outside the loop
        forward = lambda x: acts(jnp.reshape(x, (-1,)))
    else:
        forward = lambda x: plan.model(params, x)
    random = plan.regs.transforms

    def one_unit(unit, u_start, k):
        def objective(u, k_step):
            x = _image.to_x(p, shape, u)
            seen = _image.transform(plan.regs, x, k_step) if random else x
            value = plan.objective(forward(seen), unit) - _penalty(plan, x)
            return value - 0.5 * p.prior * jnp.sum(u * u) if p.prior else value

        u, hist = _engine.run(objective, u_start, steps=plan.steps, tx=plan.tx, maximize=True, project=project,
                              key=k if random else None, values=plan.with_history)
        return _image.to_x(p, shape, u), hist

    return jax.vmap(one_unit)(units, u0, jax.random.split(k_steps, n))


# ------------------------------------------------------------------ boundary checks
def _input_shape(input_shape, width: Optional[int]):
    if input_shape is None:
        if width is None:
            raise ValueError(f"{_WHERE}: a model given as an apply(params, x) function needs input_shape=(...), "
                             "the shape of one input x")
        return (width,)
    try:
        shape = tuple(_boundary.count(s, "input_shape entry", where=_WHERE) for s in input_shape)
    except TypeError:
        raise TypeError(f"{_WHERE}: input_shape must be a tuple of positive ints, got {input_shape!r}") from None
    if not 1 <= len(shape) <= 3 or (width is not None and math.prod(shape) != width):
        raise ValueError(
            f"{_WHERE}: input_shape {shape} does not match the model's input width {width}: expected a shape "
            f"with {width} elements, such as ({width},) or (H, W) / (H, W, C) with H·W·C = {width}"
            if width is not None else f"{_WHERE}: input_shape must have 1 to 3 axes, got {shape}"
        )
    return shape


def _mlp_layer(model, params, layer):
    if hasattr(model, "check_params"):
        model.check_params(params)
    sizes = tuple(model.sizes)
    n_layers = len(sizes) - 1
    try:
        layer = operator.index(layer)
    except TypeError:
        raise TypeError(f"{_WHERE}: layer must be an int, got {type(layer).__name__} {layer!r}") from None
    if not -n_layers <= layer < n_layers:
        raise ValueError(
            f"{_WHERE}: layer {layer} is out of range for a model with {n_layers} weight layers (sizes "
            f"{list(sizes)}); valid layers are {-n_layers}..{n_layers - 1} (-1 is the output layer)"
        )
    layer %= n_layers
    return layer, sizes[layer + 1], layer == n_layers - 1


def _apply_width(model, params, shape, dtype):
    try:
        out = jax.eval_shape(model, params, jax.ShapeDtypeStruct(shape, dtype))
    except (TypeError, ValueError, IndexError) as e:
        raise type(e)(f"{_WHERE}: the model apply(params, x) failed on x of shape {shape}: {e}") from e
    return out.shape[0] if hasattr(out, "shape") and len(out.shape) == 1 else None


def _resolve_objective(objective, layer, is_output: bool):
    if objective is None:
        objective = "margin" if is_output else "activation"
    if isinstance(objective, str):
        if objective not in _objectives.NAMED:
            raise ValueError(f"{_WHERE}: objective must be one of {list(_objectives.NAMED)} or a callable "
                             f"(out, unit) -> scalar, got {objective!r}")
        if objective in _objectives.OUTPUT_ONLY and not is_output:
            raise ValueError(
                f"{_WHERE}: objective={objective!r} is defined on the output layer only (layer -1), got layer "
                f"{layer}; use 'activation' or 'pre_activation' for hidden units"
            )
        return _objectives.named(objective, layer), True
    return _objectives.objective(objective), False


def _units(units, width: Optional[int], layer):
    unit_list = np.atleast_1d(np.asarray(list(units) if isinstance(units, range) else units))
    if unit_list.ndim != 1 or unit_list.size == 0 or not np.issubdtype(unit_list.dtype, np.integer):
        raise TypeError(f"{_WHERE}: units must be a non-empty int or sequence of ints, got {units!r}")
    bad = unit_list[(unit_list < 0) | (unit_list >= (width if width is not None else np.inf))]
    if bad.size:
        raise ValueError(f"{_WHERE}: units {bad.tolist()} are out of range for layer {layer}, which has {width} "
                         f"units (valid: 0..{width - 1})")
    return unit_list


def _optimizer(optimizer, learning_rate):
    if optimizer is None:
        return _adam(_boundary.real(learning_rate, "learning_rate", minimum=0, where=_WHERE))
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    raise TypeError(f"{_WHERE}: optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")


def _configs(regularizers, parametrization, options):
    if isinstance(parametrization, str):           # the squash name, as in earlier versions
        options = {**options, "squash": parametrization}
        parametrization = None
    if options.get("squash") == "clip" and parametrization is None:
        options = {"space": "pixel", **options}     # projected ascent acts on pixels
    regs, rest = merge_options(regularizers, Regularizers, options, name="regularizers", where=_WHERE)
    param, rest = merge_options(parametrization, Parametrization, rest, name="parametrization", where=_WHERE)
    if rest:
        raise TypeError(f"{_WHERE}: unexpected keyword(s) {sorted(rest)}; the options are the fields of "
                        f"fn.inputs.Regularizers {[f.name for f in dataclasses.fields(Regularizers)]} and "
                        f"fn.inputs.Parametrization {[f.name for f in dataclasses.fields(Parametrization)]}")
    if regs.edge and param.value_range is None:
        raise ValueError(f"{_WHERE}: edge={regs.edge} needs value_range=(lo, hi), the box whose edges it avoids")
    return regs, param


def _check_callables(plan: _Plan, params, units, x_dtype, named: bool):
    x_spec = jax.ShapeDtypeStruct(plan.input_shape, x_dtype)
    from funcnet.inputs._optimize import check_scalar_objective

    for _, r in plan.regs.extra:
        check_scalar_objective(r, x_spec, where=f"{_WHERE}: regularizer {r!r}")
    if not named:
        fwd = (lambda x: plan.model.activations(params, jnp.reshape(x, (-1,)))) if plan.is_mlp else \
            (lambda x: plan.model(params, x))
        check_scalar_objective(lambda x: plan.objective(fwd(x), jnp.asarray(units[0])), x_spec,
                               where=f"{_WHERE}: objective")


def _resolve_model(model, params, layer, input_shape, objective):
    """Check the model and what to maximize; returns (is_mlp, shape, objective, named, width, layer, dtype)."""
    is_mlp = hasattr(model, "activations") and hasattr(model, "sizes")
    if not is_mlp and not callable(model):
        raise TypeError(f"{_WHERE}: model must be a funcnet MLP or an apply(params, x) function, got "
                        f"{type(model).__name__}")
    dtype = jnp.result_type(*jax.tree.leaves(params)) if jax.tree.leaves(params) else jnp.float32
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.asarray(0.0).dtype
    if is_mlp:
        layer, width, is_output = _mlp_layer(model, params, layer)
        shape = _input_shape(input_shape, model.sizes[0])
    else:
        if layer != -1:
            raise ValueError(f"{_WHERE}: layer={layer!r} needs a funcnet MLP; with an apply function the "
                             "objective reads its output (write a callable objective for anything else)")
        shape = _input_shape(input_shape, None)
        width, is_output, layer = _apply_width(model, params, shape, dtype), True, None
    obj, named = _resolve_objective(objective, layer, is_output)
    if named and not is_mlp and width is None:
        raise ValueError(f"{_WHERE}: a named objective needs an apply function returning a vector (K,); "
                         "write a callable objective (out, unit) -> scalar for other outputs")
    return is_mlp, shape, obj, named, width, layer, dtype


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
    objective=None,
    input_shape: Optional[Sequence[int]] = None,
    init=None,
    regularizers: Optional[Regularizers] = None,
    parametrization: Optional[Parametrization | str] = None,
    return_history: bool = False,
    **options,
):
    r"""Find, for each requested unit, the input that maximizes it: argmax_x f(out(T(x)), j) - R(x).

    All units are optimized together in one compiled call (``vmap`` over units of a ``lax.scan`` over steps),
    cached on the static configuration: repeating a call with new params, units, key or init does not recompile.

    Args:
      model: a `funcnet.MLP`, or any ``apply(params, x) -> out`` function (x of ``input_shape``;
        params any pytree — a Flax or Equinox model's apply and parameters work the same way).
      params: the trained parameters (held fixed).
      units: unit indices (an int, a range or a sequence); for a named objective, indices into layer ``layer``
        (an MLP) or into the output vector (an apply function).
      layer: weight-layer index of an MLP in ``-L..L-1``; -1 is the output layer (the class units).
      key: PRNG key for the noise start and the random transformations (required for either).
      steps: optimization steps per unit (an int ≥ 1).
      learning_rate: Adam's learning rate (used when ``optimizer`` is None).
      optimizer: an optax transformation to use instead of Adam.
      objective: a name — ``"margin"`` (the default on the output layer: z_j - log Σ_{k≠j} e^{z_k}), ``"logit"``,
        ``"probability"``, ``"log_probability"``, ``"activation"`` (the default on hidden layers),
        ``"pre_activation"`` — or a callable ``f(out, unit) -> scalar`` / `Objective` (objectives add and
        scale); ``out`` is ``model.activations(params, x)`` for an MLP and ``apply(params, x)`` otherwise.
      input_shape: the input's shape, channels-last: ``(n_0,)``, ``(H, W)`` or ``(H, W, C)``; for an MLP its size
        must be the input width (default ``(n_0,)``); required for an apply function.
      init: start input(s): None starts from small noise; an array of shape ``input_shape`` (shared) or
        ``(len(units), *input_shape)`` starts there (deep-dream style).
      regularizers: a `Regularizers` (penalties and random transformations).
      parametrization: a `Parametrization` (pixel or Fourier space, value range and squash); a string
        is taken as the squash name.
      return_history: also return the objective per unit and step.
      **options: any field of `Regularizers` (``l1, l2, tv, blur, blur_sigma, edge, jitter, scale,
        rotate, extra``; ``regularizers=[(w, R), ...]`` as ``extra``) or of `Parametrization` (``space,
        value_range, squash, decay, init_scale``) as a flat keyword, changing that field of the default recipe.
        Giving a field both here and in a config object is a ``TypeError``.

    Returns:
      ``images`` of shape ``(len(units), *input_shape)``; with ``return_history``, ``(images, history)`` with
      ``history`` of shape ``(len(units), steps + 1)`` (the regularized objective, at the transformed inputs).

    Examples:
      >>> import jax, funcnet as fn
      >>> model = fn.mlp([64, 32, 10])
      >>> params = model.init(jax.random.key(0))
      >>> images = fn.inputs.visualize_units(model, params, units=range(10), key=jax.random.key(1), steps=50,
      ...                                    input_shape=(8, 8), value_range=(0, 1))
      >>> images.shape
      (10, 8, 8)
    """
    if isinstance(regularizers, (list, tuple)):          # earlier versions: regularizers=[(w, R), ...]
        options, regularizers = {**options, "extra": regularizers}, None
    regs, param = _configs(regularizers, parametrization, options)
    is_mlp, shape, obj, named, width, layer, dtype = _resolve_model(model, params, layer, input_shape, objective)
    unit_list = _units(units, width if named else None, layer)
    if param.space == "pca" and param.basis.size != math.prod(shape):
        raise ValueError(f"{_WHERE}: the pca basis has {param.basis.size} values per input but input_shape {shape} "
                         f"has {math.prod(shape)}; build it from data shaped like the model's inputs")
    steps = _boundary.count(steps, "steps", where=_WHERE)
    x_init = jnp.zeros((), dtype) if init is None else jnp.asarray(init, dtype)
    if init is not None and x_init.shape not in (shape, (unit_list.size, *shape)):
        raise ValueError(f"{_WHERE}: init must have shape {shape} or {(unit_list.size, *shape)}, got {x_init.shape}")
    if key is None:
        if init is None or regs.transforms:
            raise ValueError(f"{_WHERE} needs key=jax.random.key(...) for the noise start and the random "
                             "transformations (jitter, scale, rotate)")
        key = jax.random.key(0)
    plan = _Plan(model=model, is_mlp=is_mlp, objective=obj, steps=steps, tx=_optimizer(optimizer, learning_rate),
                 input_shape=shape, regs=regs, param=param, has_init=init is not None,
                 with_history=bool(return_history))
    _check_callables(plan, params, unit_list, dtype, named)
    images, history = _visualize_jit(params, jnp.asarray(unit_list, jnp.int32), key, x_init, plan=plan)
    return (images, history) if return_history else images
