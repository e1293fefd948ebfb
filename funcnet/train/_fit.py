"""Functional training: a compiled step, a compiled epoch, and the loop around them.

The lectures' loop, written by hand::

    for epoch in range(epochs):
        perm = shuffle(n)                                   # reshuffle every epoch
        for batch in minibatches(data, perm, batch_size):   # last batch may be short
            loss, g = value_and_grad(loss_fn)(params, batch)
            updates, opt_state = optimizer.update(g, opt_state, params)
            params = params + updates
        val_loss = loss_fn(params, val_data)                # early stopping watches this

`fit` runs exactly this, one compiled call per epoch: the batches are a
``lax.scan`` over the shuffled indices with the data on the device, the short
last batch is one more step of its own (fixed) shape, and the host reads the
results once per epoch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "make_train_step", "fit", "History", "NonFiniteLossWarning", "accuracy",
    "select_hyperparameters", "Selection",
]

LossFn = Callable[[Any, Any], jax.Array]


class NonFiniteLossWarning(RuntimeWarning):
    """Training met a NaN or infinite loss or gradient."""


# ---------------------------------------------------------------------------- step


def _scalar_loss(loss_fn: LossFn) -> LossFn:
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


def _apply_optimizer(optimizer, grads, opt_state, params, loss, loss_fn, batch):
    """One optimizer update; extra-args optimizers (L-BFGS, reduce_on_plateau) get value/grad/value_fn."""
    if isinstance(optimizer, optax.GradientTransformationExtraArgs):
        try:
            return optimizer.update(grads, opt_state, params, value=loss, grad=grads,
                                    value_fn=lambda p: loss_fn(p, batch))
        except TypeError as e:
            if "unexpected keyword" not in str(e):
                raise
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
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (params, batch) -> scalar, got {type(loss_fn).__name__}")
    _check_optimizer(optimizer)
    checked = _scalar_loss(loss_fn)

    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(checked)(params, batch)
        updates, opt_state = _apply_optimizer(optimizer, grads, opt_state, params, loss, checked, batch)
        return optax.apply_updates(params, updates), opt_state, loss

    if mesh is not None:
        from funcnet import sharding as _sharding

        return _sharding.data_parallel_jit(step, _sharding.resolve_mesh(mesh), batch_argnums=(2,),
                                           donate_argnums=(0, 1) if donate else ())
    return jax.jit(step, donate_argnums=(0, 1) if donate else ())


def _check_optimizer(optimizer) -> None:
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation (with init and update), got {type(optimizer).__name__}; "
            "e.g. optimizer=optax.adam(1e-3)"
        )


# ------------------------------------------------------------------------ history


@dataclasses.dataclass
class History:
    """What `fit` saw, one entry per completed epoch.

    Attributes:
      train_loss: example-weighted mean of the mini-batch losses over the epoch
        (each computed before its update), i.e. the running training loss.
      val_loss: loss on ``val_data`` after the epoch (empty without ``val_data``).
      metrics: ``name -> list``, each metric after the epoch, on ``val_data`` when
        given, else on the training data.
      lr: learning rate at the end of each epoch, when the optimizer state exposes
        one (``optax.inject_hyperparams``); else empty.
      epoch_time: wall seconds per epoch (the first includes compilation).
      skipped_steps: steps skipped for a non-finite loss per epoch (``on_nonfinite="skip"``).
      best_epoch: index (0-based) of the epoch with the lowest ``val_loss``, or None.
      stopped_early: True when early stopping ended the run.
      stop_reason: why training ended before ``epochs`` (early stopping, non-finite loss), or None.
      wall_time: total seconds spent in `fit` (setup and compilation included).
    """

    train_loss: list = dataclasses.field(default_factory=list)
    val_loss: list = dataclasses.field(default_factory=list)
    metrics: dict = dataclasses.field(default_factory=dict)
    lr: list = dataclasses.field(default_factory=list)
    epoch_time: list = dataclasses.field(default_factory=list)
    skipped_steps: list = dataclasses.field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    stop_reason: str | None = None
    wall_time: float = 0.0

    @property
    def epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.train_loss)

    def to_dict(self) -> dict:
        """A JSON-ready dict (plain floats and lists)."""
        return {
            "train_loss": [float(v) for v in self.train_loss],
            "val_loss": [float(v) for v in self.val_loss],
            "metrics": {k: [float(v) for v in vs] for k, vs in self.metrics.items()},
            "lr": [float(v) for v in self.lr],
            "epoch_time": [float(v) for v in self.epoch_time],
            "skipped_steps": [int(v) for v in self.skipped_steps],
            "best_epoch": self.best_epoch,
            "stopped_early": bool(self.stopped_early),
            "stop_reason": self.stop_reason,
            "wall_time": float(self.wall_time),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "History":
        """Inverse of `to_dict`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        return cls(**{**kw, "metrics": {k: list(v) for k, v in kw.get("metrics", {}).items()}})

    def to_json(self, path) -> None:
        """Write `to_dict` as JSON."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")


# -------------------------------------------------------------------- validation


def _leading_length(data: Any, name: str) -> int:
    leaves_with_path = jax.tree_util.tree_flatten_with_path(data)[0]
    if not leaves_with_path:
        raise ValueError(f"{name} holds no arrays; pass e.g. (X, y) with X of shape (n, features)")
    lengths = {}
    for path, leaf in leaves_with_path:
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise ValueError(
                f"every array in {name} needs a leading example axis, but {name}{jax.tree_util.keystr(path)} is a scalar"
            )
        lengths[f"{name}{jax.tree_util.keystr(path)}"] = shape[0]
    if len(set(lengths.values())) != 1:
        listing = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise ValueError(f"every array in {name} must have the same leading length (number of examples), got {listing}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError(f"{name} is empty (0 examples)")
    return int(n)


def _host_array(leaf):
    """``leaf`` as a NumPy array when that costs no device transfer (NumPy input, or a CPU-resident array); else None."""
    if not isinstance(leaf, jax.Array):
        return np.asarray(leaf)
    try:
        if all(d.platform == "cpu" for d in leaf.devices()) and leaf.is_fully_addressable:
            return np.asarray(leaf)
    except Exception:  # deleted or otherwise unreadable: let the device path report it
        pass
    return None


@jax.jit
def _all_finite_on_device(leaves):
    return [jnp.all(jnp.isfinite(a)) for a in leaves]


def _check_finite_data(data: Any, name: str) -> None:
    """Raise if any float leaf of ``data`` holds NaN or inf.

    Host-resident leaves are checked with NumPy (no compilation); the others in one
    jitted reduction for all of them together.
    """
    on_device = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(data)[0]:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            continue
        host = _host_array(leaf)
        if host is None:
            on_device.append((path, leaf))
        elif not np.isfinite(host).all():
            raise ValueError(f"{name}{jax.tree_util.keystr(path)} contains NaN or inf values")
    if on_device:
        ok = jax.device_get(_all_finite_on_device([leaf for _, leaf in on_device]))
        for (path, _), good in zip(on_device, ok):
            if not good:
                raise ValueError(f"{name}{jax.tree_util.keystr(path)} contains NaN or inf values")


def _check_loss_on(loss_fn: LossFn, params: Any, data: Any, name: str) -> None:
    """Trace ``loss_fn`` on the concrete ``data`` with abstract parameters: data errors surface now, nothing runs.

    The parameters are abstract (``jax.eval_shape``), so the model's arithmetic is
    only traced, never executed or compiled, whatever the size of ``data``. The data
    stay concrete, so checks that need their values, e.g. the label-range check of
    the losses in `funcnet.losses` (skipped under ``jit``, where labels are
    traced), see the real labels. The scalar-output check of ``loss_fn`` runs too.
    """
    try:
        jax.eval_shape(lambda p: loss_fn(p, data), params)
    except (ValueError, TypeError, IndexError) as e:
        if "must return a" in str(e):  # _scalar_loss's own message: already says what to do
            raise
        raise type(e)(f"loss_fn failed on {name} before training: {e}") from e


def _tiny_like(tree: Any) -> Any:
    """``tree`` with every array leaf replaced by zeros of shape (1, ..., 1): same structure, ranks and dtypes."""
    return jax.tree.map(lambda a: np.zeros((1,) * np.ndim(a), jnp.result_type(a)), tree)


def _probe_descent(optimizer, params) -> None:
    """Raise if the optimizer's first step moves every parameter uphill (a negative learning rate).

    Runs one step (gradient of ones) on a copy of ``params`` whose leaves have size 1:
    one tiny compilation, independent of the model's size. Optimizers whose update
    cannot run on such a tree (or needs more than a gradient) are not checked.
    """
    if not any(jnp.issubdtype(jnp.result_type(leaf), jnp.floating) for leaf in jax.tree.leaves(params)):
        return
    zeros = _tiny_like(params)

    def first_step(zeros, extra: bool):
        ones = jax.tree.map(jnp.ones_like, zeros)
        state = optimizer.init(zeros)
        if extra:
            updates, _ = optimizer.update(ones, state, zeros, value=jnp.zeros(()), grad=ones,
                                          value_fn=lambda p: jnp.zeros(()))
        else:
            updates, _ = optimizer.update(ones, state, zeros)
        return updates, _find_lr(state)

    try:
        try:
            updates, lr = jax.jit(first_step, static_argnums=1)(zeros, True)
        except TypeError:
            updates, lr = jax.jit(first_step, static_argnums=1)(zeros, False)
        leaves = [np.asarray(u) for u in jax.tree.leaves(updates)]
    except Exception:  # optimizers that need more than a gradient to take a step: nothing to check here
        return
    if leaves and all(u.size and np.all(u > 0) for u in leaves):
        got = f"learning_rate={float(np.asarray(lr))}" if lr is not None else "an update along +gradient"
        raise ValueError(
            f"the optimizer ascends the loss (a gradient of ones gives positive updates; {got}); "
            "the learning rate must be >= 0"
        )


def _lr_path(opt_state) -> tuple | None:
    for path, _ in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        names = [getattr(k, "name", getattr(k, "key", None)) for k in path]
        if len(names) >= 2 and names[-1] == "learning_rate" and names[-2] == "hyperparams":
            return path
    return None


def _find_lr(opt_state):
    path = _lr_path(opt_state)
    if path is None:
        return None
    for p, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        if p == path:
            return leaf
    return None


def _batch_size(batch_size, n: int) -> int:
    if batch_size is None:
        return n
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be a positive int or None (full batch), got {batch_size!r}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size > n:
        raise ValueError(
            f"batch_size={batch_size} is larger than the training data ({n} examples); "
            f"use batch_size<={n}, or batch_size=None for full-batch gradient descent"
        )
    return int(batch_size)


# ------------------------------------------------------------------ data placement


def _place(tree: Any, mesh=None) -> Any:
    """Put a data pytree on the device(s). The one place that decides data placement."""
    if mesh is not None:  # the whole set on every device; each step gathers its own rows (take_batch)
        from funcnet.sharding import replicate

        return replicate(tree, mesh)
    return jax.tree.map(jnp.asarray, tree)


def _fresh_copy(tree: Any) -> Any:
    """Device copies, so that donating them never deletes the caller's arrays (a transfer each, no compilation)."""
    return jax.tree.map(lambda a: jax.device_put(a, may_alias=False) if isinstance(a, jax.Array) else jnp.asarray(a),
                        tree)


# ---------------------------------------------------------------------- the epoch


class _Carry(NamedTuple):
    params: Any
    opt_state: Any
    stopped: jax.Array      # bool: a non-finite step was met (on_nonfinite="stop")
    loss_sum: jax.Array     # Σ batch_size · loss over applied steps
    count: jax.Array        # number of examples in applied steps
    skipped: jax.Array      # number of skipped steps
    first_bad: jax.Array    # index of the first non-finite step in the epoch, or -1
    step: jax.Array         # step index within the epoch


def _all_finite(loss, grads) -> jax.Array:
    """One scalar: the loss and every gradient element are finite."""
    return jnp.isfinite(loss) & _tree_finite(grads)


def _tree_finite(tree) -> jax.Array:
    """One scalar: every element of every inexact leaf of ``tree`` is finite."""
    ok = jnp.array(True)
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            ok = ok & jnp.all(jnp.isfinite(leaf))
    return ok


def _epoch_program(loss_fn, optimizer, *, n, bs, drop_last, on_nonfinite, metrics, has_val, lr_path, mesh,
                   replay: bool):
    """The Python function of one epoch, ``(params, opt_state, train, val, key[, limit]) -> (params, opt_state, stats)``.

    How the steps treat a non-finite loss or gradient:

    - ``"ignore"``: they do not look.
    - ``"skip"``: a select per step keeps the old parameters and state when the loss or a gradient is not finite.
    - ``"stop"``: the parameters are updated unconditionally (no per-step select, no reduction over the
      gradients); scalars record the first step whose *loss* is not finite, and at the end of the epoch one
      reduction checks that the parameters and optimizer state are finite (``end_finite``). The
      caller keeps the start-of-epoch state and, when either check fails, runs the ``replay`` program.
    - ``replay=True``: the same epoch again (same shuffle) with the ``"stop"`` check of every step on the loss
      *and* the gradients, applying only steps before the first non-finite one and before ``limit``; its
      parameters are the last finite ones. Compiled only when a run meets a non-finite value.
    """
    from funcnet import sharding as _sharding

    n_full = n // bs
    rest = 0 if drop_last else n - n_full * bs
    shuffle = bs < n
    vg = jax.value_and_grad(loss_fn)
    n_dev = 1 if mesh is None else _sharding.axis_size(mesh)

    def take(data, idx):  # split over the mesh when its size divides; else replicated (the short last batch)
        return _sharding.take_batch(data, idx, mesh if idx.shape[0] % n_dev == 0 else None)

    def update(carry: _Carry, batch, size: int, limit) -> _Carry:
        loss, grads = vg(carry.params, batch)
        updates, new_state = _apply_optimizer(optimizer, grads, carry.opt_state, carry.params, loss, loss_fn, batch)
        new_params = optax.apply_updates(carry.params, updates)
        if on_nonfinite == "ignore":
            return carry._replace(params=new_params, opt_state=new_state, loss_sum=carry.loss_sum + size * loss,
                                  count=carry.count + size, step=carry.step + 1)
        if replay:  # steps from ``limit`` on are neither looked at nor applied
            in_range = carry.step < limit
            finite = _all_finite(loss, grads) | ~in_range
            ok = finite & ~carry.stopped & in_range
        elif on_nonfinite == "stop":  # the loss only; parameters are checked once, at the end of the epoch
            finite = jnp.isfinite(loss)
            ok = finite & ~carry.stopped
        else:  # skip
            finite = _all_finite(loss, grads)
            ok = finite
        if replay or on_nonfinite == "skip":
            keep = lambda new, old: jnp.where(ok, new, old)
            new_params = jax.tree.map(keep, new_params, carry.params)
            new_state = jax.tree.map(keep, new_state, carry.opt_state)
        return _Carry(
            params=new_params,
            opt_state=new_state,
            stopped=carry.stopped | (~finite if on_nonfinite == "stop" else False),
            loss_sum=carry.loss_sum + jnp.where(ok, size * loss, 0.0),
            count=carry.count + jnp.where(ok, size, 0),
            skipped=carry.skipped + (~finite & ~carry.stopped).astype(jnp.int32),
            first_bad=jnp.where((carry.first_bad < 0) & ~finite, carry.step, carry.first_bad),
            step=carry.step + 1,
        )

    def evaluate(params, data):
        out = {}
        if has_val:
            out["val_loss"] = loss_fn(params, data)
        for name, metric in metrics.items():
            out[name] = jnp.asarray(metric(params, data))
        return out

    def epoch(params, opt_state, train, val, key, limit=None):
        loss_dtype = jnp.result_type(float)
        carry = _Carry(params, opt_state, jnp.array(False), jnp.zeros((), loss_dtype), jnp.zeros((), jnp.int32),
                       jnp.zeros((), jnp.int32), jnp.array(-1, jnp.int32), jnp.zeros((), jnp.int32))
        if shuffle:
            perm = jax.random.permutation(key, n)
            full = perm[: n_full * bs].reshape(n_full, bs)
            carry, _ = jax.lax.scan(lambda c, idx: (update(c, take(train, idx), bs, limit), None), carry, full)
            if rest:
                carry = update(carry, take(train, perm[n_full * bs:]), rest, limit)
        else:  # full batch: no shuffle, no gather
            carry = update(carry, train if mesh is None else _sharding.constrain_batch(train, mesh), n, limit)
        end_finite = jnp.array(True)
        if on_nonfinite == "stop" and not replay:
            # a sum per leaf: NaN and inf propagate into it (an overflow of finite values only costs a replay
            # that finds nothing); one read of params and state per epoch, cheaper than an elementwise isfinite
            sums = [jnp.sum(leaf) for leaf in jax.tree.leaves((carry.params, carry.opt_state))
                    if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
            end_finite = _tree_finite(sums)
        evaluated = evaluate(carry.params, val if has_val else train)
        losses = [carry.loss_sum / jnp.maximum(carry.count, 1).astype(loss_dtype)]
        if has_val:
            losses.append(evaluated.pop("val_loss"))
        if lr_path is not None:
            losses.append(_find_lr(carry.opt_state))
        # two small vectors (plus the metrics) instead of a dict of scalars: fewer outputs to fetch per epoch
        stats = {
            "counts": jnp.stack([carry.count, carry.stopped.astype(jnp.int32), carry.skipped, carry.first_bad,
                                 end_finite.astype(jnp.int32)]),
            "losses": jnp.stack([jnp.asarray(v).astype(loss_dtype) for v in losses]),  # widening: exact
            **evaluated,
        }
        return carry.params, carry.opt_state, stats

    return epoch, n_full + (1 if rest else 0)


def _unpack_stats(stats: Mapping, has_val: bool, has_lr: bool) -> dict:
    """The host copy of an epoch's stats as one flat dict of NumPy scalars."""
    applied, stopped, skipped, first_bad, end_finite = np.asarray(stats["counts"])
    losses = list(np.asarray(stats["losses"]))
    out = {"applied": applied, "stopped": bool(stopped), "skipped": skipped, "first_bad": first_bad,
           "end_finite": bool(end_finite), "train_loss": losses.pop(0)}
    if has_val:
        out["val_loss"] = losses.pop(0)
    if has_lr:
        out["lr"] = losses.pop(0)
    out.update({k: v for k, v in stats.items() if k not in ("counts", "losses")})
    return out


def _build_epoch(loss_fn, optimizer, *, n, bs, drop_last, on_nonfinite, metrics, has_val, lr_path, mesh=None):
    """The compiled epoch ``(params, opt_state, train, val, key) -> (params, opt_state, stats)`` and its step count.

    ``params`` and ``opt_state`` are donated, except with ``on_nonfinite="stop"``: there the caller's
    start-of-epoch arrays stay valid, the snapshot a replay starts from (see `_build_replay`).
    """
    epoch, steps = _epoch_program(loss_fn, optimizer, n=n, bs=bs, drop_last=drop_last, on_nonfinite=on_nonfinite,
                                  metrics=metrics, has_val=has_val, lr_path=lr_path, mesh=mesh, replay=False)
    donate = () if on_nonfinite == "stop" else (0, 1)
    return jax.jit(epoch, donate_argnums=donate), steps


def _build_replay(loss_fn, optimizer, *, n, bs, drop_last, metrics, has_val, lr_path, mesh=None):
    """The compiled replay ``(params, opt_state, train, val, key, limit)``: the same epoch, steps ``< limit`` only."""
    epoch, _ = _epoch_program(loss_fn, optimizer, n=n, bs=bs, drop_last=drop_last, on_nonfinite="stop",
                              metrics=metrics, has_val=has_val, lr_path=lr_path, mesh=mesh, replay=True)
    return jax.jit(epoch)


# ------------------------------------------------------------------------ progress


class _Progress:
    def __init__(self, mode, epochs: int, stream=None):
        self.mode = mode  # None: auto (after 2 s), True: always, False: never
        self.epochs = epochs
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()

    def __call__(self, e: int, history: History) -> None:
        if self.mode is False:
            return
        if self.mode is None and time.perf_counter() - self.t0 < 2.0:
            return
        parts = [f"epoch {e + 1:>{len(str(self.epochs))}}/{self.epochs}", f"loss {history.train_loss[-1]:.4g}"]
        if history.val_loss:
            parts.append(f"val_loss {history.val_loss[-1]:.4g}")
        parts += [f"{k} {v[-1]:.4g}" for k, v in history.metrics.items()]
        if history.lr:
            parts.append(f"lr {history.lr[-1]:.3g}")
        parts.append(f"{history.epoch_time[-1]:.2f}s")
        print("  ".join(parts), file=self.stream, flush=True)


# ----------------------------------------------------------------------------- fit


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
    progress: bool | None = None,
    check_data: bool = True,
    mesh: Any = None,
) -> tuple[Any, History]:
    r"""Mini-batch gradient descent over epochs, compiled; returns ``(params, history)``.

    Every epoch reshuffles the n examples (key ``fold_in(key, epoch)``), cuts them
    into ⌈n / batch_size⌉ mini-batches and takes one optimizer step per batch:

        for each batch B:  J_B = loss_fn(θ, B);  θ ← θ + optimizer.update(∇J_B)

    The whole epoch is one compiled call (``lax.scan`` over the batch indices, the
    data on the device). A short last batch (n mod batch_size examples) is one more
    step with its own fixed shape, so ``loss_fn`` averages over its real examples
    only and nothing recompiles between epochs.

    Args:
      loss_fn: ``(params, batch) -> scalar`` mean loss; ``batch`` has the structure
        of ``data`` with the leading axis cut to the batch.
      params: the initial parameter pytree (not modified; fit works on a copy).
      data: pytree of arrays sharing the leading length n, e.g. ``(X, y)``.
      optimizer: any optax optimizer, e.g. ``optax.adam(1e-3)`` or
        `funcnet.optim.ema_momentum`. Wrap it in ``optax.inject_hyperparams``
        to record the learning rate per epoch.
      epochs: number of passes over the data (>= 1).
      batch_size: examples per step; ``None`` for full-batch gradient descent,
        1 for single-example SGD. Must not exceed n.
      key: PRNG key for the shuffles (required unless ``batch_size`` is None). The
        same key gives bit-identical parameters and history.
      val_data: optional held-out pytree like ``data``; its loss is recorded after
        every epoch.
      patience: stop after this many epochs without a lower validation loss and
        return the parameters of the best epoch (needs ``val_data``). With
        ``patience`` set, the best parameters are returned even without stopping.
      metrics: ``name -> f(params, data) -> scalar``, evaluated after every epoch on
        ``val_data`` (else on ``data``), e.g.
        ``{"accuracy": lambda p, b: fn.accuracy(model.apply(p, b[0]), b[1])}``.
      drop_last: skip the short last batch instead of stepping on it (the examples
        left out differ every epoch, since the data are reshuffled).
      on_nonfinite: what a NaN/inf loss or gradient does: ``"stop"`` (default) ends
        training with a `NonFiniteLossWarning` and returns the last finite
        parameters; ``"skip"`` skips those steps (counted in
        ``history.skipped_steps``); ``"ignore"`` applies them unchecked.
        ``"stop"`` costs (almost) nothing per step: the compiled epoch checks every
        step's loss (a scalar) and, once at its end, the parameters and optimizer
        state; when either is not finite, the epoch is replayed from its start,
        checking every step's loss *and* gradients, up to the first bad step. So a
        non-finite gradient stops training when it reaches the parameters or the
        optimizer state (it always does unless the optimizer discards it, e.g.
        ``optax.zero_nans``). ``"skip"`` selects per step between the new and the
        old parameters and state, which costs memory traffic on every step.
      checkpoint: file to save ``(params, opt_state, epoch, history)`` to every
        ``checkpoint_every`` epochs and at the end, atomically (`funcnet.save`).
      checkpoint_every: epochs between checkpoints.
      resume: continue from ``checkpoint`` if it exists: training picks up after the
        saved epoch and follows the same trajectory as an uninterrupted run with the
        same key.
      progress: ``None`` prints one line per epoch to stderr once a run has taken
        more than 2 s; ``True`` always; ``False`` never.
      check_data: before compiling, check that the float data are finite and trace
        ``loss_fn`` on the (concrete) data with abstract parameters, so that data
        errors (e.g. labels out of range, which the losses in `funcnet.losses`
        check on concrete labels) are reported clearly. Nothing is computed but the
        finite check: the cost does not grow with the model.
      mesh: data-parallel training on a ``jax.sharding.Mesh`` with a ``"data"`` axis (or a list of
        devices): the data are replicated on every device, each mini-batch is split along ``"data"``, params
        and optimizer state are replicated and XLA all-reduces the gradients; same results as one device up
        to summation order. ``batch_size`` (n with ``None``) must be a multiple of the axis size; a short last
        batch that is not is computed replicated. See the "Scaling out" docs page.

    Returns:
      ``(params, history)``: the trained (or best, with ``patience``) parameters and a
      `History`.

    Raises:
      ValueError: mismatched leading lengths, empty data, ``batch_size`` larger than
        the data, a non-scalar loss, a negative learning rate, labels out of range.

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
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (params, batch) -> scalar, got {type(loss_fn).__name__}")
    _check_optimizer(optimizer)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if on_nonfinite not in ("stop", "skip", "ignore"):
        raise ValueError(f"on_nonfinite must be 'stop', 'skip' or 'ignore', got {on_nonfinite!r}")
    if patience is not None:
        if val_data is None:
            raise ValueError("early stopping (patience=...) watches the validation loss: pass val_data too")
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
            raise ValueError(f"patience must be a positive int, got {patience!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH to resume from")
    metrics = dict(metrics or {})
    for name, m in metrics.items():
        if not callable(m):
            raise TypeError(f"metrics[{name!r}] must be callable (params, data) -> scalar, got {type(m).__name__}")
        if name in ("train_loss", "val_loss", "lr", "applied", "stopped", "skipped", "first_bad", "end_finite",
                    "counts", "losses"):
            raise ValueError(f"metric name {name!r} is reserved; choose another")
    n = _leading_length(data, "data")
    if val_data is not None:
        _leading_length(val_data, "val_data")
        if jax.tree.structure(val_data) != jax.tree.structure(data):
            raise ValueError(
                f"val_data must have the structure of data: {jax.tree.structure(data)}, got {jax.tree.structure(val_data)}"
            )
    bs = _batch_size(batch_size, n)
    if bs < n and key is None:
        raise ValueError("mini-batch training reshuffles every epoch and needs key=jax.random.key(seed)")
    if key is None:
        key = jax.random.key(0)  # unused: full batch has nothing to shuffle
    if mesh is not None:
        from funcnet import sharding as _sharding

        mesh = _sharding.resolve_mesh(mesh)
        _sharding.sharded_epoch_layout(n, batch_size, _sharding.axis_size(mesh), drop_last=drop_last)  # size rule

    data = _place(data, mesh)
    val = _place(val_data, mesh) if val_data is not None else None
    checked = _scalar_loss(loss_fn)
    if check_data:
        _check_finite_data(data, "data")
        _check_loss_on(checked, params, data, "data")
        if val is not None:
            _check_finite_data(val, "val_data")
            _check_loss_on(checked, params, val, "val_data")
    else:  # still catch a non-scalar loss without running anything
        jax.eval_shape(checked, params, jax.tree.map(lambda a: jax.ShapeDtypeStruct((bs, *a.shape[1:]), a.dtype), data))
    _probe_descent(optimizer, params)

    # With on_nonfinite="stop" the epoch does not donate its inputs (they are the snapshot a replay starts
    # from), so nothing needs copying; the donating modes work on copies, never on the caller's arrays.
    # replicate() copies already.
    donating = on_nonfinite != "stop"
    if mesh is None:
        params = jax.tree.map(jnp.asarray, params)  # NumPy leaves to the device (JAX arrays as they are)
    opt_state = optimizer.init(params)
    if donating and mesh is None:
        params, opt_state = _fresh_copy((params, opt_state))  # distinct buffers: some states alias leaves
    history = History()
    start_epoch = 0
    best = (math.inf, None, 0)  # (best val loss, best params, epochs since it)
    if resume and os.path.exists(checkpoint):
        params, opt_state, start_epoch, history, best = _load_fit_checkpoint(checkpoint, params, opt_state)
    if mesh is not None:  # checkpoints hold plain arrays: any run's checkpoint resumes on any mesh
        params, opt_state = _sharding.replicate((params, opt_state), mesh)

    lr_path = _lr_path(opt_state)
    epoch_kw = dict(n=n, bs=bs, drop_last=drop_last, metrics=metrics, has_val=val is not None, lr_path=lr_path,
                    mesh=mesh)
    epoch_fn, steps = _build_epoch(checked, optimizer, on_nonfinite=on_nonfinite, **epoch_kw)
    show = _Progress(progress, epochs)
    show.t0 = t_start
    replay = None  # compiled on the first non-finite epoch
    stat_names = ["train_loss"] + (["val_loss"] if val is not None else []) + list(metrics)

    for e in range(start_epoch, epochs):
        t0 = time.perf_counter()
        epoch_key = jax.random.fold_in(key, e)
        new_params, new_state, stats = epoch_fn(params, opt_state, data, val, epoch_key)
        stats = _unpack_stats(jax.device_get(stats), val is not None, lr_path is not None)  # one host sync
        bad = int(stats["first_bad"])
        stopped = bool(stats["stopped"])
        if on_nonfinite == "stop" and (stopped or not stats["end_finite"]):
            # a non-finite loss at step ``bad``, or non-finite parameters at the end: redo the epoch from its
            # start (kept: this epoch does not donate) checking every step's loss and gradients, up to ``bad``
            if bad == 0:
                new_params, new_state = params, opt_state
            else:
                replay = replay or _build_replay(checked, optimizer, **epoch_kw)
                limit = np.int32(bad if stopped else steps)
                r_params, r_state, r_stats = replay(params, opt_state, data, val, epoch_key, limit)
                r_stats = _unpack_stats(jax.device_get(r_stats), val is not None, lr_path is not None)
                if r_stats["stopped"] or stopped:
                    new_params, new_state, stats = r_params, r_state, {**r_stats, "skipped": 1}
                    bad = int(r_stats["first_bad"]) if r_stats["stopped"] else bad
                    stopped = True
        params, opt_state = new_params, new_state
        dt = time.perf_counter() - t0
        if int(stats["applied"]) == 0 and stopped:
            # the very first step of the epoch was non-finite: nothing to record for it
            history.stop_reason = f"non-finite loss or gradient at epoch {e}, step 0"
        else:
            for name in stat_names:
                target = history.metrics.setdefault(name, []) if name in metrics else getattr(history, name)
                target.append(float(stats[name]))
            if lr_path is not None:
                history.lr.append(float(stats["lr"]))
            history.epoch_time.append(dt)
            history.skipped_steps.append(int(stats["skipped"]))
            show(e, history)
        if stopped:
            history.stop_reason = history.stop_reason or f"non-finite loss or gradient at epoch {e}, step {bad}"
            warnings.warn(
                f"training stopped: {history.stop_reason} (of {steps} steps per epoch); returning the last finite "
                "parameters. Lower the learning rate, check the data, or pass on_nonfinite='skip' to skip such steps.",
                NonFiniteLossWarning, stacklevel=2,
            )
            break
        if val is not None and history.val_loss:
            v = history.val_loss[-1]
            if v < best[0]:
                history.best_epoch = e
                # the next epoch donates params in the donating modes: keep a copy there, a reference otherwise
                kept = (_fresh_copy(params) if donating else params) if patience is not None else None
                best = (v, kept, 0)
            else:
                best = (best[0], best[1], best[2] + 1)
        if checkpoint is not None and ((e + 1 - start_epoch) % checkpoint_every == 0 or e + 1 == epochs):
            _save_fit_checkpoint(checkpoint, params, opt_state, e + 1, history, best)
        if patience is not None and best[2] >= patience:
            history.stopped_early = True
            history.stop_reason = (f"early stopping: no lower validation loss for {patience} epochs "
                                   f"(best {best[0]:.6g} at epoch {history.best_epoch})")
            break

    if patience is not None and best[1] is not None:
        params = best[1]
    history.wall_time = time.perf_counter() - t_start
    return params, history


# ------------------------------------------------------------------ fit checkpoints


def _save_fit_checkpoint(path, params, opt_state, epoch, history, best) -> None:
    from funcnet.checkpoint import save

    best_val, best_params, wait = best
    tree = {
        "params": params,
        "opt_state": opt_state,
        "epoch": epoch,
        "history": json.dumps(history.to_dict()),
        "best_val": float(best_val),
        "best_params": best_params,
        "wait": wait,
    }
    save(path, tree)


def _load_fit_checkpoint(path, params, opt_state):
    from funcnet.checkpoint import load

    raw = load(path)
    if not isinstance(raw, dict) or not {"params", "opt_state", "epoch", "history"} <= set(raw):
        raise ValueError(f"{os.fspath(path)} is not a checkpoint written by fit")
    like = {**raw, "params": params, "opt_state": opt_state,
            "best_params": params if raw.get("best_params") is not None else None}
    try:
        restored = load(path, like=like)
    except ValueError as e:
        raise ValueError(f"checkpoint {os.fspath(path)} does not match this run's parameters/optimizer: {e}") from e
    history = History.from_dict(json.loads(raw["history"]))
    best = (float(raw["best_val"]), restored["best_params"], int(raw["wait"]))
    return restored["params"], restored["opt_state"], int(raw["epoch"]), history, best


# ------------------------------------------------------------------------ metrics


def accuracy(logits, labels) -> jax.Array:
    r"""Fraction of correct predictions: mean over examples of [argmax_k z_k = y].

    Args:
      logits: ``(..., K)`` scores. With K = 1 (one logit for a binary task) the
        prediction is ``z > 0``.
      labels: integer classes ``(...)``, one-hot ``(..., K)``, or for K = 1 targets
        ``(..., 1)`` / ``(...)`` in {0, 1}.

    Examples:
      >>> import jax.numpy as jnp, funcnet as fn
      >>> print(round(float(fn.accuracy(jnp.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), jnp.array([0, 1, 1]))), 4))
      0.6667
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    if logits.ndim == 0:
        raise ValueError("accuracy: logits need a class axis (..., K), got a scalar")
    if logits.shape[-1] == 1:
        pred = (logits[..., 0] > 0).astype(jnp.int32)
        target = labels[..., 0] if labels.shape == logits.shape else labels
        if target.shape != pred.shape:
            raise ValueError(f"accuracy: labels of shape {labels.shape} do not match logits of shape {logits.shape}")
        return jnp.mean(pred == jnp.round(target).astype(jnp.int32))
    if labels.shape == logits.shape:
        labels = jnp.argmax(labels, axis=-1)
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"accuracy: integer labels must have shape {logits.shape[:-1]} (or one-hot {logits.shape}), got {labels.shape}"
        )
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


# --------------------------------------------------------- hyperparameter selection


class Selection(NamedTuple):
    """Result of `select_hyperparameters`."""

    best_config: Any
    best_index: int
    best_params: Any
    val_scores: list
    test_score: float | None
    histories: list


def select_hyperparameters(
    train: Callable[[Any], Any],
    configs: Sequence[Any],
    *,
    val_score: Callable[[Any], float],
    test_score: Callable[[Any], float] | None = None,
    higher_is_better: bool = True,
) -> Selection:
    """Model selection the lectures' way: choose on validation, report test once.

    For every configuration c: ``params = train(c)`` (fit on the training set
    only), score it with ``val_score(params)`` on the validation set; keep the
    configuration with the best validation score; only then evaluate
    ``test_score`` once, on that single model. The test set never influences
    the choice, so the test score stays an unbiased estimate.

    Args:
      train: ``config -> params`` or ``config -> (params, History)``.
      configs: the candidates, e.g. a list of dicts.
      val_score: ``params -> float`` on the validation data.
      test_score: ``params -> float`` on the test data, called once, on the winner.
      higher_is_better: True for accuracy, False for a loss.

    Returns:
      A `Selection` with ``best_config``, ``best_index``, ``best_params``,
      ``val_scores`` (one per config), ``test_score`` and ``histories``.
    """
    configs = list(configs)
    if not configs:
        raise ValueError("select_hyperparameters needs at least one configuration")
    scores, histories, all_params = [], [], []
    best_i = None
    for i, config in enumerate(configs):
        out = train(config)
        hist = None
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], History):
            out, hist = out
        score = float(val_score(out))
        scores.append(score)
        histories.append(hist)
        if not math.isnan(score) and (
            best_i is None or (score > scores[best_i] if higher_is_better else score < scores[best_i])
        ):
            best_i = i
            all_params = out
    if best_i is None:
        raise ValueError(f"every configuration gave a NaN validation score: {scores}")
    test = float(test_score(all_params)) if test_score is not None else None
    return Selection(configs[best_i], best_i, all_params, scores, test, histories)
