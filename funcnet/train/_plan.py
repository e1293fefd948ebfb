"""What ``fit`` resolves from its arguments before it compiles anything: the `Plan`, and every check.

Each check raises at the API boundary, in funcnet's words, before the first compile: ``TypeError`` for the
wrong kind of argument, ``ValueError`` for a wrong value (see `funcnet._boundary`).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnet import sharding as _sharding
from funcnet import _boundary
from funcnet._boundary import count, leading_length
from funcnet.train._step import check_loss_fn, check_optimizer, scalar_loss

__all__ = ["Plan", "make_plan", "check_inputs", "probe_descent", "set_hyperparams", "lr_path"]

MODES = ("stop", "skip", "ignore")
RESERVED = ("train_loss", "val_loss", "lr", "epoch_time")


class Plan(NamedTuple):
    """What `fit` resolved from its arguments (checked; nothing compiled yet)."""

    n: int                          # training examples
    layout: _sharding.EpochLayout   # batch size, full steps, short last batch (one layout for 1 or D devices)
    epochs: int
    key: Any                        # PRNG key of the shuffles
    on_nonfinite: str
    patience: int | None
    metrics: tuple                  # ((name, fn), ...) in the caller's order
    checkpoint: str | None
    checkpoint_every: int
    resume: bool
    callbacks: tuple
    mesh: Any                       # a jax.sharding.Mesh, or None
    has_val: bool

    @property
    def steps(self) -> int:
        """Optimizer steps in a full epoch."""
        return self.layout.steps


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _check_params(params: Any) -> None:
    """Every leaf of ``params`` is a float array (fit differentiates with respect to all of them)."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if not leaves:
        raise ValueError("params holds no arrays; pass the model's parameters, e.g. model.init(key)")
    for path, leaf in leaves:
        try:
            dtype = jnp.result_type(leaf)
        except TypeError:
            raise TypeError(f"params{jax.tree_util.keystr(path)} is a {type(leaf).__name__}, not an array; "
                            "params must be a pytree of float arrays") from None
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"params{jax.tree_util.keystr(path)} has dtype {dtype}; params must be float arrays (fit "
                "differentiates every leaf): convert it, e.g. jnp.asarray(x, jnp.float32)"
            )


def _check_key(key: Any, needed: bool):
    """A PRNG key (see `funcnet._boundary.prng_key`); only full-batch training may go without one."""
    if key is None:
        if needed:
            raise ValueError("mini-batch training reshuffles every epoch and needs key=jax.random.key(seed)")
        return jax.random.key(0)  # unused: the full batch has nothing to shuffle
    return _boundary.prng_key(key)


def _check_metrics(metrics: Any) -> tuple:
    if metrics is None:
        return ()
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict name -> f(params, data) -> scalar, got {type(metrics).__name__}")
    for name, m in metrics.items():
        if not isinstance(name, str):
            raise TypeError(f"metric names must be str, got {name!r}")
        if not callable(m):
            raise TypeError(f"metrics[{name!r}] must be callable (params, data) -> scalar, got {type(m).__name__}")
        if name in RESERVED:
            raise ValueError(f"metric name {name!r} is reserved (one of {RESERVED}); choose another")
    return tuple(metrics.items())


def _check_callbacks(callbacks: Any) -> tuple:
    if callbacks is None:
        return ()
    if callable(callbacks) or isinstance(callbacks, (str, bytes)):
        raise TypeError("callbacks must be a list of callables (epoch, metrics, params) -> stop?; wrap one in [...]")
    callbacks = tuple(callbacks)
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] must be callable (epoch, metrics, params) -> stop?, got "
                            f"{type(cb).__name__}")
    return callbacks


def _check_checkpoint(path: Any) -> str:
    """The checkpoint path as a str; its folder must exist and be writable (checked now, not after an epoch)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a file path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"checkpoint={path!r} is a folder; pass a file path inside it, e.g. {path}/fit.ck.npz")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"the checkpoint folder {folder} does not exist; create it first (os.makedirs)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"the checkpoint folder {folder} is not writable")
    return path


def _batch_size(batch_size: Any, n: int) -> int:
    if batch_size is None:
        return n
    b = count(batch_size, "batch_size", minimum=1)
    if b > n:
        raise ValueError(
            f"batch_size={b} is larger than the training data ({n} examples); "
            f"use batch_size<={n}, or batch_size=None for full-batch gradient descent"
        )
    return b


def _check_data(data: Any, val_data: Any) -> int:
    n = leading_length(data, "data")
    if val_data is not None:
        leading_length(val_data, "val_data")
        if jax.tree.structure(val_data) != jax.tree.structure(data):
            raise ValueError(f"val_data must have the structure of data: {jax.tree.structure(data)}, "
                             f"got {jax.tree.structure(val_data)}")
    return n


def make_plan(loss_fn, params, data, *, optimizer, epochs, batch_size, key, val_data, patience, metrics,
              drop_last, on_nonfinite, checkpoint, checkpoint_every, resume, callbacks, mesh) -> Plan:
    """Check every argument of `fit` that needs no tracing, and resolve them into a `Plan`."""
    check_loss_fn(loss_fn)
    check_optimizer(optimizer)
    epochs = count(epochs, "epochs")
    checkpoint_every = count(checkpoint_every, "checkpoint_every")
    if patience is not None:
        patience = count(patience, "patience")
        if val_data is None:
            raise ValueError("early stopping (patience=...) watches the validation loss: pass val_data too")
    if on_nonfinite not in MODES:
        raise ValueError(f"on_nonfinite must be 'stop', 'skip' or 'ignore', got {on_nonfinite!r}")
    drop_last, resume = _check_bool(drop_last, "drop_last"), _check_bool(resume, "resume")
    if checkpoint is not None:
        checkpoint = _check_checkpoint(checkpoint)
    elif resume:
        raise ValueError("resume=True needs checkpoint=PATH to resume from")
    metrics, callbacks = _check_metrics(metrics), _check_callbacks(callbacks)
    _check_params(params)
    n = _check_data(data, val_data)
    b = _batch_size(batch_size, n)
    key = _check_key(key, needed=b < n)
    n_devices = 1
    if mesh is not None:
        mesh = _sharding.resolve_mesh(mesh)
        n_devices = _sharding.axis_size(mesh)
    layout = _sharding.sharded_epoch_layout(n, None if batch_size is None else b, n_devices, drop_last=drop_last)
    return Plan(n=n, layout=layout, epochs=epochs, key=key, on_nonfinite=on_nonfinite, patience=patience,
                metrics=metrics, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                callbacks=callbacks, mesh=mesh, has_val=val_data is not None)


# ------------------------------------------------------------------------------- traced checks


def _host_array(leaf):
    """``leaf`` as a NumPy array when that costs no device transfer (NumPy input, a CPU array); else None."""
    if not isinstance(leaf, jax.Array):
        return np.asarray(leaf)
    if leaf.is_fully_addressable and all(d.platform == "cpu" for d in leaf.devices()):
        return np.asarray(leaf)
    return None


@jax.jit
def _all_finite_on_device(leaves):
    return [jnp.all(jnp.isfinite(a)) for a in leaves]


def _check_finite_data(data: Any, name: str) -> None:
    """Raise if any float leaf of ``data`` holds NaN or inf (host leaves with NumPy, the others in one jit)."""
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


def _abstract(tree: Any, rows: int | None = None) -> Any:
    def one(a):
        shape = np.shape(a) if rows is None else (rows, *np.shape(a)[1:])
        return jax.ShapeDtypeStruct(shape, jnp.result_type(a))

    return jax.tree.map(one, tree)


def _check_loss_on(loss_fn, params, data, name: str) -> None:
    """Trace ``loss_fn`` on the concrete ``data`` with abstract parameters: data errors surface now, nothing runs.

    The data stay concrete, so checks that need their values (the label-range check of
    `funcnet.losses`, skipped under ``jit``) see the real labels; the parameters are abstract, so
    the model's arithmetic is only traced, never executed or compiled.
    """
    try:
        jax.eval_shape(lambda p: loss_fn(p, data), _abstract(params))
    except (ValueError, TypeError, IndexError) as e:
        e.add_note(f"(raised by loss_fn on {name}, checked before training)")
        raise


def _frozen(tree: Any, rows: int | None = None) -> tuple:
    """A hashable abstract value of ``tree``: its structure and the shapes/dtypes of its leaves."""
    leaves, treedef = jax.tree.flatten(_abstract(tree, rows))
    return treedef, tuple(leaves)


@functools.lru_cache(maxsize=256)
def _output_shapes(f, params: tuple, data: tuple) -> list:
    """The output shapes of ``f(params, data)`` traced on abstract values, cached: a repeated ``fit`` with the
    same functions and shapes traces nothing here."""
    out = jax.eval_shape(f, jax.tree.unflatten(*params), jax.tree.unflatten(*data))
    return [tuple(o.shape) for o in jax.tree.leaves(out)]


def _check_metric_shapes(metrics: tuple, params, eval_data, name: str) -> None:
    """Each metric returns a scalar on ``eval_data`` (traced with abstract values: nothing runs)."""
    for metric_name, metric in metrics:
        try:
            shapes = _output_shapes(metric, _frozen(params), _frozen(eval_data))
        except (ValueError, TypeError, IndexError) as e:
            e.add_note(f"(raised by metrics[{metric_name!r}] on {name}, checked before training)")
            raise
        if shapes != [()]:
            raise ValueError(f"metrics[{metric_name!r}] must return a scalar, got shape(s) {shapes} on {name}; "
                             "reduce it, e.g. with jnp.mean")


def check_inputs(plan: Plan, loss_fn, params, data, val_data, *, check_data: bool) -> None:
    """The checks that trace: the loss on the data (concrete data, abstract params), the metrics' shapes.

    With ``check_data=False`` only abstract traces run, cached per (function, shapes).
    """
    if check_data:
        checked = scalar_loss(loss_fn)
        _check_finite_data(data, "data")
        _check_loss_on(checked, params, data, "data")
        if val_data is not None:
            _check_finite_data(val_data, "val_data")
            _check_loss_on(checked, params, val_data, "val_data")
    else:  # still catch a non-scalar loss without running anything
        _check_scalar_loss(loss_fn, _frozen(params), _frozen(data, plan.layout.batch_size))
    eval_data, name = (val_data, "val_data") if val_data is not None else (data, "data")
    _check_metric_shapes(plan.metrics, params, eval_data, name)


@functools.lru_cache(maxsize=256)
def _check_scalar_loss(loss_fn, params: tuple, data: tuple) -> None:
    jax.eval_shape(scalar_loss(loss_fn), jax.tree.unflatten(*params), jax.tree.unflatten(*data))


# ------------------------------------------------------------------------------- the optimizer


def lr_path(opt_state) -> tuple | None:
    """The tree path of ``hyperparams['learning_rate']`` in an ``optax.inject_hyperparams`` state, or None."""
    for path, _ in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        names = [getattr(k, "name", getattr(k, "key", None)) for k in path]
        if len(names) >= 2 and names[-1] == "learning_rate" and names[-2] == "hyperparams":
            return path
    return None


def set_hyperparams(opt_state, hyperparams: Mapping | None):
    """``opt_state`` of an ``optax.inject_hyperparams`` optimizer with ``hyperparams`` set (same dtypes).

    The values are data of the compiled program, so one compiled epoch serves every value (a learning-rate
    sweep compiles once).
    """
    if not hyperparams:
        return opt_state
    if not isinstance(hyperparams, Mapping):
        raise TypeError(f"hyperparams must be a dict name -> number, got {type(hyperparams).__name__}")
    current = getattr(opt_state, "hyperparams", None)
    if not isinstance(current, dict):
        raise ValueError("hyperparams=... needs an optimizer made with optax.inject_hyperparams, e.g. "
                         "optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)")
    unknown = sorted(set(hyperparams) - set(current))
    if unknown:
        raise ValueError(f"hyperparams {unknown} are not in the optimizer's hyperparameters {sorted(current)}")
    new = {k: jnp.asarray(hyperparams[k], jnp.result_type(current[k])) if k in hyperparams else v
           for k, v in current.items()}
    return opt_state._replace(hyperparams=new)


def _tiny_like(tree: Any) -> Any:
    """``tree`` with every array leaf replaced by zeros of shape (1, ..., 1): same structure, ranks and dtypes."""
    return jax.tree.map(lambda a: np.zeros((1,) * np.ndim(a), jnp.result_type(a)), tree)


@functools.lru_cache(maxsize=64)
def _probe_program(optimizer):
    """One jitted first step on a tiny tree, cached per optimizer (its shapes are jit's own cache key)."""

    def first_step(zeros, hyperparams):
        ones = jax.tree.map(jnp.ones_like, zeros)
        state = set_hyperparams(optimizer.init(zeros), hyperparams)
        if isinstance(optimizer, optax.GradientTransformationExtraArgs):
            updates, _ = optimizer.update(ones, state, zeros, value=jnp.zeros(()), grad=ones,
                                          value_fn=lambda p: jnp.zeros(()))
        else:
            updates, _ = optimizer.update(ones, state, zeros)
        path = lr_path(state)
        lr = None
        for p, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
            lr = leaf if p == path else lr
        return updates, lr

    return jax.jit(first_step)


def probe_descent(optimizer, params, hyperparams=None) -> None:
    """Raise if the optimizer's first step goes uphill (a negative learning rate) or is not finite (NaN).

    Runs one step (a gradient of ones) on a copy of ``params`` whose leaves have size 1: one tiny
    compilation per optimizer and tree structure, independent of the model's size. Optimizers whose update
    cannot run on such a tree are not checked here (the epoch's own guard still watches them).
    """
    try:
        updates, lr = _probe_program(optimizer)(_tiny_like(params), dict(hyperparams or {}))
    except (TypeError, ValueError, IndexError):  # e.g. an optimizer that needs matrices larger than 1x1
        return
    leaves = [np.asarray(u) for u in jax.tree.leaves(updates)]
    got = f" (learning_rate={float(np.asarray(lr))})" if lr is not None else ""
    if not all(np.isfinite(u).all() for u in leaves):
        raise ValueError(f"the optimizer's first update for a gradient of ones is not finite{got}; "
                         "check the learning rate and the optimizer's settings")
    if leaves and all(u.size and np.all(u > 0) for u in leaves):
        raise ValueError(
            f"the optimizer ascends the loss (a gradient of ones gives positive updates{got}); "
            "the learning rate must be >= 0"
        )
