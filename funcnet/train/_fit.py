"""``fit``: the lectures' training loop, one compiled program per epoch, in named parts.

    plan = make_plan(...)                       # every argument checked, nothing compiled
    programs = programs(loss_fn, optimizer, spec)   # compiled once per (loss, optimizer, spec), cached
    for epoch in 1..epochs:
        state, stats = run_epoch(programs.epoch, state, ...)      # one device call, one host read
        guard (on_nonfinite="stop") -> record -> early stopping -> callbacks -> checkpoint
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnet.train._callbacks import call_callbacks, make_progress
from funcnet.train._epoch import EpochSpec, Programs, get_programs, host_stats, tree_finite
from funcnet.train._history import EpochStats, History, NonFiniteLossWarning
from funcnet.train._plan import Plan, _check_bool, check_inputs, lr_path, make_plan, probe_descent, set_hyperparams
from funcnet.train._step import LossFn

__all__ = ["fit", "run_epoch", "TrainState", "EarlyStopping", "FitResult"]


class TrainState(NamedTuple):
    """What an epoch updates: the parameters and the optimizer state."""

    params: Any
    opt_state: Any


class EarlyStopping(NamedTuple):
    """Early-stopping state: the lowest validation loss so far, its parameters, and epochs waited since."""

    best_value: float = math.inf
    best_params: Any = None
    waited: int = 0


class FitResult(NamedTuple):
    """``(params, history)`` as of the last completed epoch; attached as ``.fit_result`` to an exception
    (Ctrl-C, or one raised by a callback) that ends `fit`."""

    params: Any
    history: History


class _Snapshot(NamedTuple):
    """The start of an epoch (``on_nonfinite="stop"`` does not donate it): where a replay starts."""

    state: TrainState
    key: Any
    epoch: int          # 1-based


class _Guarded(NamedTuple):
    """The guard's verdict on an epoch with a non-finite value."""

    state: TrainState               # the parameters to return (their training loss is finite)
    stats: EpochStats | None        # the epoch record to keep (None: no step applied)
    where: str                      # "epoch E, step K of S"
    what: str                       # "loss" or "gradient or update"
    back: bool                      # the record replaces the previous epoch's


def run_epoch(program: Callable, state: TrainState, data, val, key, spec: EpochSpec, *limit) -> tuple:
    """One compiled epoch (or replay, with ``limit``) and its statistics, read in one host transfer."""
    params, opt_state, stats = program(state.params, state.opt_state, data, val, key, *limit)
    return TrainState(params, opt_state), host_stats(stats, spec)


def _guard(progs: Programs, spec: EpochSpec, snap: _Snapshot, prev: _Snapshot | None, data, val):
    """Replay an epoch that met a non-finite value; None when the replay finds none (an overflowing sum).

    The result is the parameters after the last finite step whose successor's loss was finite: with the
    first bad step k, θ_k when only its gradient or update was non-finite (its loss was finite), else
    θ_{k-1} — one step further back, into the previous epoch when k is its first step. While the loss of
    that candidate on the whole training set is not finite either (a blow-up), one more step back.
    """
    steps = spec.layout.steps
    _, r = run_epoch(progs.replay, snap.state, data, val, snap.key, spec, np.int32(steps))
    if not r.stopped:
        return None
    base, limit = snap, r.first_bad - 1 if r.bad_loss else r.first_bad
    if limit < 0 and prev is not None:
        base, limit = prev, steps - 1
    limit = max(limit, 0)
    while True:
        state, kept = run_epoch(progs.replay, base.state, data, val, base.key, spec, np.int32(limit))
        if limit == 0 or bool(progs.loss_finite(state.params, data)):
            break
        limit -= 1
    where = f"epoch {snap.epoch}, step {r.first_bad + 1} of {steps}"
    record = kept._replace(skipped=1, first_bad=r.first_bad) if kept.applied else None
    return _Guarded(state, record, where, "loss" if r.bad_loss else "gradient or update", back=base is prev)


def _record(history: History, stats: EpochStats, seconds: float, show, epoch: int) -> dict:
    history.record(stats, seconds)
    values = {**stats.values(), "epoch_time": seconds}
    show.epoch(epoch, values)
    return values


def _watch(stopping: EarlyStopping, history: History, stats: EpochStats, state: TrainState, epoch: int,
           plan: Plan) -> EarlyStopping:
    """Early stopping: a lower validation loss becomes the best (its parameters kept with ``patience``)."""
    if stats.val_loss is None:
        return stopping
    if stats.val_loss < stopping.best_value:
        history.best_epoch = epoch
        kept = None
        if plan.patience is not None:  # the donating modes hand params to the next epoch: keep a copy there
            kept = _fresh_copy(state.params) if plan.on_nonfinite != "stop" else state.params
        return EarlyStopping(float(stats.val_loss), kept, 0)
    return stopping._replace(waited=stopping.waited + 1)


def _train(plan: Plan, progs: Programs, spec: EpochSpec, state: TrainState, start: int, history: History,
           stopping: EarlyStopping, data, val, show) -> tuple:
    """The epoch loop. Returns ``(state, stopping)``; ``history`` is filled in place."""
    prev = None
    for e in range(start, plan.epochs):
        epoch, t0 = e + 1, time.perf_counter()
        snap = _Snapshot(state, jax.random.fold_in(plan.key, e), epoch)
        state, stats = run_epoch(progs.epoch, state, data, val, snap.key, spec)
        if plan.on_nonfinite == "stop" and (stats.stopped or not stats.end_finite):
            verdict = _guard(progs, spec, snap, prev, data, val)
            if verdict is not None:
                _stop_nonfinite(verdict, history, plan, time.perf_counter() - t0, show)
                return verdict.state, stopping
        values = _record(history, stats, time.perf_counter() - t0, show, epoch)
        if stats.applied == 0:
            warnings.warn(f"every step of epoch {epoch} met a non-finite loss, gradient or update and was skipped; "
                          "its train_loss is recorded as NaN", NonFiniteLossWarning, stacklevel=3)
        stopping = _watch(stopping, history, stats, state, epoch, plan)
        asked = call_callbacks(plan.callbacks, epoch, values, state.params, FitResult(state.params, history))
        if plan.checkpoint is not None and ((epoch - start) % plan.checkpoint_every == 0 or epoch == plan.epochs):
            _save_fit_checkpoint(plan.checkpoint, state, epoch, history, stopping)
        if asked is not None:
            history.stop_reason = f"the callback {asked} asked to stop after epoch {epoch}"
            break
        if plan.patience is not None and stopping.waited >= plan.patience:
            history.stopped_early = True
            history.stop_reason = (f"early stopping: no lower validation loss for {plan.patience} epochs "
                                   f"(best {stopping.best_value:.6g} at epoch {history.best_epoch})")
            break
        prev = snap if plan.on_nonfinite == "stop" else None
    return state, stopping


def _stop_nonfinite(verdict: _Guarded, history: History, plan: Plan, seconds: float, show) -> None:
    if verdict.back:
        history.drop_last()
    if verdict.stats is not None:
        epoch = history.epochs + 1
        _record(history, verdict.stats, seconds, show, epoch)
    history.stop_reason = f"non-finite {verdict.what} at {verdict.where}"
    kept = "the starting parameters" if not history.steps else (
        f"the parameters after {history.steps[-1]} step(s) of epoch {history.epochs}")
    warnings.warn(
        f"training stopped: {history.stop_reason}; returning {kept}, the last whose training loss was finite. "
        "Lower the learning rate, check the data, or pass on_nonfinite='skip' to skip such steps.",
        NonFiniteLossWarning, stacklevel=4,
    )


# ------------------------------------------------------------------------------- set-up


def _place(tree: Any, mesh=None) -> Any:
    """Put a data pytree on the device(s). The one place that decides data placement."""
    if tree is None:
        return None
    if mesh is not None:  # the whole set on every device; each step gathers its own rows (take_batch)
        from funcnet.sharding import replicate

        return replicate(tree, mesh)
    return jax.tree.map(jnp.asarray, tree)


def _fresh_copy(tree: Any) -> Any:
    """Device copies, so that donating them never deletes the caller's arrays (a transfer each, no compilation)."""
    return jax.tree.map(lambda a: jax.device_put(a, may_alias=False) if isinstance(a, jax.Array) else jnp.asarray(a),
                        tree)


def _initial_state(plan: Plan, optimizer, params, hyperparams) -> tuple:
    """``(state, first epoch index, history, early stopping)``: fresh, or resumed from the checkpoint."""
    if plan.mesh is None:
        params = jax.tree.map(jnp.asarray, params)  # NumPy leaves to the device (JAX arrays as they are)
    state = TrainState(params, set_hyperparams(optimizer.init(params), hyperparams))
    if plan.on_nonfinite != "stop" and plan.mesh is None:  # donating modes work on copies (states alias leaves)
        state = TrainState(*_fresh_copy(tuple(state)))
    start, history, stopping = 0, History(steps_per_epoch=plan.steps), EarlyStopping()
    if plan.resume and os.path.exists(plan.checkpoint):
        state, start, history, stopping = _load_fit_checkpoint(plan.checkpoint, state)
        if start > plan.epochs:
            raise ValueError(f"the checkpoint {plan.checkpoint} is from epoch {start}, past epochs={plan.epochs}; "
                             f"pass epochs>={start} to continue it, or another checkpoint path to start afresh")
    if plan.mesh is not None:  # checkpoints hold plain arrays: any run's checkpoint resumes on any mesh
        from funcnet.sharding import replicate

        state = TrainState(*replicate(tuple(state), plan.mesh))
    return state, start, history, stopping


def _params_alive(params) -> bool:
    return not any(isinstance(a, jax.Array) and a.is_deleted() for a in jax.tree.leaves(params))


# ----------------------------------------------------------------------------------- fit


def fit(
    loss_fn: LossFn,
    params: Any,
    data: Any,
    *,
    optimizer: optax.GradientTransformation,
    epochs: int,
    batch_size: int | None = None,
    key: Any = None,
    val_data: Any = None,
    patience: int | None = None,
    metrics: Mapping[str, Callable[[Any, Any], Any]] | None = None,
    drop_last: bool = False,
    on_nonfinite: str = "stop",
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    progress: Any = None,
    check_data: bool = True,
    mesh: Any = None,
    callbacks: Any = None,
    hyperparams: Mapping[str, Any] | None = None,
) -> tuple[Any, History]:
    r"""Mini-batch gradient descent over epochs, one compiled call per epoch; returns ``(params, history)``.

    Each epoch reshuffles the n examples (key ``fold_in(key, epoch)``) into ⌈n / batch_size⌉ batches B and
    steps ``θ ← θ + optimizer.update(∇ loss_fn(θ, B))`` for each; a short last batch is a step of its own
    shape. Programs are cached on (``loss_fn``, ``optimizer``, static plan): a repeated call with the same
    objects and shapes compiles nothing. The "Training" docs page details every option and failure mode.

    Args:
      loss_fn: ``(params, batch) -> scalar``; params: float pytree (not modified); data: arrays of length n.
      optimizer: any optax optimizer; epochs: >= 1; batch_size: ``None`` = full batch; key: ``jax.random.key``.
      val_data, patience, metrics: validation data, early stopping on its loss, ``name -> f(params, data)``.
      drop_last: skip the short batch. on_nonfinite: ``"stop"`` (return the parameters after the last finite
        step whose successor's loss was finite, and warn), ``"skip"`` or ``"ignore"``.
      checkpoint, checkpoint_every, resume: save every k epochs (`funcnet.save`); continue from it.
      progress: ``None``, ``True``, ``False``, ``"tqdm"``, ``"rich"`` or ``f(epoch, epochs, values)``.
      check_data: check and trace the data first. mesh: a ``Mesh`` with a ``"data"`` axis.
      callbacks: ``[f(epoch, values, params) -> stop?]``. hyperparams: set in an ``inject_hyperparams`` state.

    Raises:
      TypeError: an argument of the wrong kind (a non-float params leaf, an int ``key``, ...).
      ValueError: a wrong value (sizes, a non-scalar loss or metric, a NaN or negative learning rate, a
        missing checkpoint folder, a checkpoint past ``epochs``).

    Examples:
      >>> import jax, jax.numpy as jnp, optax, funcnet as fn
      >>> X = jnp.linspace(-1, 1, 32)[:, None]; Y = 3 * X
      >>> loss_fn = lambda w, b: jnp.mean((b[0] * w - b[1]) ** 2)
      >>> w, hist = fn.fit(loss_fn, jnp.zeros(()), (X, Y), optimizer=optax.sgd(0.5), epochs=30,
      ...                  batch_size=8, key=jax.random.key(0), progress=False)
      >>> print(round(float(w), 3), len(hist.train_loss))
      3.0 30
    """
    t_start = time.perf_counter()
    plan = make_plan(loss_fn, params, data, optimizer=optimizer, epochs=epochs, batch_size=batch_size, key=key,
                     val_data=val_data, patience=patience, metrics=metrics, drop_last=drop_last,
                     on_nonfinite=on_nonfinite, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                     resume=resume, callbacks=callbacks, mesh=mesh)
    show = make_progress(progress, plan.epochs)
    data, val = _place(data, plan.mesh), _place(val_data, plan.mesh)
    check_inputs(plan, loss_fn, params, data, val, check_data=_check_bool(check_data, "check_data"))
    probe_descent(optimizer, params, hyperparams)
    state, start, history, stopping = _initial_state(plan, optimizer, params, hyperparams)
    spec = EpochSpec(plan.layout, plan.on_nonfinite, plan.has_val, plan.metrics, lr_path(state.opt_state), plan.mesh)
    progs, new = get_programs(loss_fn, optimizer, spec)
    if new and start < plan.epochs:
        show.compiling()
    try:
        state, stopping = _train(plan, progs, spec, state, start, history, stopping, data, val, show)
    except KeyboardInterrupt as e:  # Ctrl-C: the last completed epoch's parameters, where still valid
        e.fit_result = FitResult(state.params if _params_alive(state.params) else None, history)
        raise
    finally:
        show.close()
    params = stopping.best_params if plan.patience is not None and stopping.best_params is not None else state.params
    if plan.on_nonfinite == "ignore" and not bool(tree_finite(params)):
        warnings.warn("fit(on_nonfinite='ignore') returns non-finite parameters", NonFiniteLossWarning, stacklevel=2)
    history.wall_time = time.perf_counter() - t_start
    return params, history


# --------------------------------------------------------------------------- checkpoints


def _save_fit_checkpoint(path, state: TrainState, epoch: int, history: History, stopping: EarlyStopping) -> None:
    from funcnet.checkpoint import save

    save(path, {
        "params": state.params,
        "opt_state": state.opt_state,
        "epoch": epoch,
        "history": json.dumps(history.to_dict()),
        "best_val": float(stopping.best_value),
        "best_params": stopping.best_params,
        "wait": stopping.waited,
    })


def _load_fit_checkpoint(path, state: TrainState) -> tuple:
    from funcnet.checkpoint import load

    raw = load(path)
    if not isinstance(raw, dict) or not {"params", "opt_state", "epoch", "history"} <= set(raw):
        raise ValueError(f"{os.fspath(path)} is not a checkpoint written by fit")
    like = {**raw, "params": state.params, "opt_state": state.opt_state,
            "best_params": state.params if raw.get("best_params") is not None else None}
    try:
        restored = load(path, like=like)
    except ValueError as e:
        raise ValueError(f"checkpoint {os.fspath(path)} does not match this run's parameters/optimizer: {e}") from e
    history = History.from_dict(json.loads(raw["history"]))
    stopping = EarlyStopping(float(raw["best_val"]), restored["best_params"], int(raw["wait"]))
    return TrainState(restored["params"], restored["opt_state"]), int(raw["epoch"]), history, stopping
