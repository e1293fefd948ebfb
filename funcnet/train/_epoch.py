"""One epoch as one compiled program, and the cache that compiles it once per (loss, optimizer, plan).

The lectures' loop for one epoch::

    perm = shuffle(n)                                   # reshuffle every epoch
    for batch in minibatches(data, perm, batch_size):   # the last batch may be short
        loss, g = value_and_grad(loss_fn)(θ, batch)
        updates, state = optimizer.update(g, state, θ)
        θ = θ + updates

runs as a ``lax.scan`` over the shuffled index rows of an `funcnet.sharding.EpochLayout` (the
one layout for one device and for a mesh), the short last batch as one more step of its own fixed shape.
The statistics come back as two small vectors (`DeviceStats`), read once per epoch.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnet import sharding as _sharding
from funcnet.train._history import EpochStats
from funcnet.train._step import apply_optimizer, scalar_loss

__all__ = ["EpochSpec", "Programs", "programs", "get_programs", "host_stats", "tree_finite", "find_lr"]


class EpochSpec(NamedTuple):
    """The static values an epoch program depends on (hashable: the key of the compile cache)."""

    layout: _sharding.EpochLayout
    on_nonfinite: str               # "stop", "skip" or "ignore"
    has_val: bool
    metrics: tuple                  # ((name, fn), ...)
    lr_path: tuple | None           # where the learning rate sits in the optimizer state
    mesh: Any                       # a jax.sharding.Mesh, or None


class Programs(NamedTuple):
    """The compiled programs of one (loss, optimizer, spec): ``epoch`` and the guard's ``replay``."""

    epoch: Callable     # (params, opt_state, train, val, key) -> (params, opt_state, DeviceStats)
    replay: Callable    # (params, opt_state, train, val, key, limit) -> (params, opt_state, DeviceStats)
    loss_finite: Callable   # (params, train) -> bool scalar: the loss on the whole training set is finite


class DeviceStats(NamedTuple):
    """An epoch's statistics on the device: ``counts`` (int32, 6) and ``losses`` (float, 3), plus metrics."""

    counts: jax.Array   # applied steps, applied examples, skipped, first bad step, bad loss, end finite
    losses: jax.Array   # train loss, val loss (NaN without), learning rate (NaN without)
    metrics: dict


class _Carry(NamedTuple):
    params: Any
    opt_state: Any
    loss_sum: jax.Array     # Σ size · loss over applied steps
    examples: jax.Array     # examples in applied steps
    applied: jax.Array      # applied steps
    skipped: jax.Array      # steps found non-finite and not applied
    first_bad: jax.Array    # index of the first non-finite step, or -1
    bad_loss: jax.Array     # that step's loss was non-finite
    step: jax.Array         # step index within the epoch


def tree_finite(tree: Any) -> jax.Array:
    """One scalar: every element of every inexact leaf of ``tree`` is finite."""
    ok = jnp.array(True)
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            ok = ok & jnp.all(jnp.isfinite(leaf))
    return ok


def find_lr(opt_state, path):
    """The leaf of ``opt_state`` at ``path`` (the learning rate), or None."""
    if path is None:
        return None
    for p, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        if p == path:
            return leaf
    return None


def _check(mode: str, loss, grads, updates, new_state, in_range):
    """``(finite, bad_loss)`` of one step under ``mode``; ``finite`` is True for steps past ``limit``."""
    loss_ok = jnp.isfinite(loss)
    if mode == "stop":          # the unguarded epoch looks at the loss only (a scalar per step)
        return loss_ok, ~loss_ok
    if mode == "skip":          # loss, gradients and the update
        return loss_ok & tree_finite((grads, updates, new_state)), ~loss_ok
    finite = (loss_ok & tree_finite((grads, updates, new_state))) | ~in_range   # replay
    return finite, ~loss_ok & in_range


def _step_fn(loss_fn, optimizer, mode: str):
    """``update(carry, batch, size, limit) -> carry``: one step under ``mode`` ("ignore", "stop", "skip",
    "replay"). "replay" applies only steps before ``limit`` and before the first non-finite one."""
    vg = jax.value_and_grad(loss_fn)

    def update(carry: _Carry, batch, size: int, limit) -> _Carry:
        loss, grads = vg(carry.params, batch)
        updates, new_state = apply_optimizer(optimizer, grads, carry.opt_state, carry.params, loss, loss_fn, batch)
        new_params = optax.apply_updates(carry.params, updates)
        if mode == "ignore":
            return carry._replace(params=new_params, opt_state=new_state, loss_sum=carry.loss_sum + size * loss,
                                  examples=carry.examples + size, applied=carry.applied + 1, step=carry.step + 1)
        in_range = carry.step < limit if mode == "replay" else True
        finite, bad_loss = _check(mode, loss, grads, updates, new_state, in_range)
        stopped = carry.first_bad >= 0
        ok = finite & in_range & (~stopped if mode != "skip" else True)
        if mode != "stop":      # skip and replay keep the old values on a bad step (a select per leaf)
            keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
            new_params = jax.tree.map(keep, new_params, carry.params)
            new_state = jax.tree.map(keep, new_state, carry.opt_state)
        first = (carry.first_bad < 0) & ~finite
        return _Carry(
            params=new_params, opt_state=new_state,
            loss_sum=carry.loss_sum + jnp.where(ok, size * loss, 0.0),
            examples=carry.examples + jnp.where(ok, size, 0),
            applied=carry.applied + ok.astype(jnp.int32),
            skipped=carry.skipped + (~finite & (~stopped if mode != "skip" else True)).astype(jnp.int32),
            first_bad=jnp.where(first & (mode != "skip"), carry.step, carry.first_bad),
            bad_loss=carry.bad_loss | (first & bad_loss),
            step=carry.step + 1,
        )

    return update


def _epoch_fn(loss_fn, optimizer, spec: EpochSpec, mode: str):
    """The Python function of one epoch ``(params, opt_state, train, val, key, limit) -> (params, state, stats)``."""
    lay, mesh = spec.layout, spec.mesh
    update = _step_fn(loss_fn, optimizer, mode)

    def take(data, idx):  # split over the mesh when its size divides; else replicated (a short last batch)
        return _sharding.take_batch(data, idx, mesh if idx.shape[0] % lay.n_devices == 0 else None)

    def epoch(params, opt_state, train, val, key, limit):
        dtype = jnp.result_type(float)
        zero = jnp.zeros((), jnp.int32)
        carry = _Carry(params, opt_state, jnp.zeros((), dtype), zero, zero, zero, jnp.array(-1, jnp.int32),
                       jnp.array(False), zero)
        if lay.batch_size < lay.n:
            full, rest = lay.split(jax.random.permutation(key, lay.n))
            carry, _ = jax.lax.scan(lambda c, idx: (update(c, take(train, idx), lay.batch_size, limit), None),
                                    carry, full)
            if lay.rest:
                carry = update(carry, take(train, rest), lay.rest, limit)
        else:  # full batch: no shuffle, no gather
            carry = update(carry, train if mesh is None else _sharding.constrain_batch(train, mesh), lay.n, limit)
        return carry.params, carry.opt_state, _device_stats(carry, spec, mode, val if spec.has_val else train,
                                                            loss_fn)

    return epoch


def _device_stats(carry: _Carry, spec: EpochSpec, mode: str, eval_data, loss_fn) -> DeviceStats:
    dtype = jnp.result_type(float)
    end_finite = jnp.array(True)
    if mode == "stop":
        # a sum per leaf: NaN and inf propagate into it (an overflow of finite values only costs a replay that
        # finds nothing); one read of params and state per epoch, cheaper than an elementwise isfinite
        sums = [jnp.sum(leaf) for leaf in jax.tree.leaves((carry.params, carry.opt_state))
                if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
        end_finite = tree_finite(sums)
    nan = jnp.array(jnp.nan, dtype)
    train_loss = jnp.where(carry.examples > 0, carry.loss_sum / jnp.maximum(carry.examples, 1).astype(dtype), nan)
    val_loss = loss_fn(carry.params, eval_data).astype(dtype) if spec.has_val else nan
    lr = find_lr(carry.opt_state, spec.lr_path)
    lr = nan if lr is None else jnp.asarray(lr).astype(dtype)
    metrics = {name: jnp.asarray(metric(carry.params, eval_data)) for name, metric in spec.metrics}
    counts = jnp.stack([carry.applied, carry.examples, carry.skipped, carry.first_bad,
                        carry.bad_loss.astype(jnp.int32), end_finite.astype(jnp.int32)])
    return DeviceStats(counts, jnp.stack([train_loss, val_loss, lr]), metrics)


def host_stats(stats: DeviceStats, spec: EpochSpec) -> EpochStats:
    """Fetch an epoch's statistics in one transfer, as an `EpochStats` of Python numbers."""
    stats = jax.device_get(stats)
    applied, examples, skipped, first_bad, bad_loss, end_finite = (int(v) for v in np.asarray(stats.counts))
    train_loss, val_loss, lr = (float(v) for v in np.asarray(stats.losses))
    return EpochStats(applied=applied, applied_examples=examples, skipped=skipped, first_bad=first_bad,
                      bad_loss=bool(bad_loss), end_finite=bool(end_finite), train_loss=train_loss,
                      val_loss=val_loss if spec.has_val else None,
                      lr=lr if spec.lr_path is not None else None,
                      metrics={k: float(np.asarray(v)) for k, v in stats.metrics.items()})


@functools.lru_cache(maxsize=64)
def programs(loss_fn, optimizer, spec: EpochSpec) -> Programs:
    """The compiled epoch and replay for ``(loss_fn, optimizer, spec)``, built once and reused.

    The key is what the programs close over: the loss function and optimizer objects (by identity; optax
    transformations are NamedTuples of functions) and the static `EpochSpec`. Array shapes and dtypes
    are the key of ``jax.jit``'s own cache inside. So repeated ``fit`` calls with the same loss function,
    optimizer and shapes compile nothing after the first.

    The epoch donates ``params``/``opt_state`` except with ``on_nonfinite="stop"``, where the caller's
    start-of-epoch arrays are the snapshot a replay starts from. The replay (compiled on first use) re-runs
    the same epoch checking every step's loss, gradients and update, applying only steps before ``limit``.
    """
    checked = scalar_loss(loss_fn)
    mode = spec.on_nonfinite
    epoch = jax.jit(_epoch_fn(checked, optimizer, spec, mode), donate_argnums=() if mode == "stop" else (0, 1))
    replay = jax.jit(_epoch_fn(checked, optimizer, spec, "replay"))
    loss_finite = jax.jit(lambda p, t: jnp.isfinite(checked(p, t)))
    max_steps = np.int32(spec.layout.steps)
    return Programs(epoch=lambda p, s, t, v, k: epoch(p, s, t, v, k, max_steps), replay=replay,
                    loss_finite=loss_finite)


def get_programs(loss_fn, optimizer, spec: EpochSpec) -> tuple[Programs, bool]:
    """``(programs(loss_fn, optimizer, spec), new)``: ``new`` is True when they were built by this call (so the
    first epoch compiles, unless jit already holds the shapes)."""
    misses = programs.cache_info().misses
    progs = programs(loss_fn, optimizer, spec)
    return progs, programs.cache_info().misses > misses
