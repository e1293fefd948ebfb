r"""Data parallelism on JAX's own machinery: ``jax.sharding`` meshes and ``jax.distributed``.

Nothing here is home-made communication. A 1-D (or larger) `jax.sharding.Mesh` names its devices
along axes; this module only decides *where arrays live*:

* the batch (leading axis of every leaf) is split along the mesh's data axis,
  ``NamedSharding(mesh, P("data"))``: with D devices on the axis, device d holds rows
  ``[d·B/D, (d+1)·B/D)`` of a global batch of B rows;
* parameters and optimizer state are replicated, ``NamedSharding(mesh, P())``.

Under ``jax.jit`` XLA's SPMD partitioner then runs the forward and backward pass on each shard and inserts
the all-reduce that sums the per-shard gradient contributions. For a mean loss over the global batch,

    ∇J(θ) = (1/B) Σ_{i<B} ∇ℓ_i(θ) = Σ_d (1/B) Σ_{i∈shard d} ∇ℓ_i(θ)

so the result equals the single-device gradient up to floating-point summation order.

Divisibility rule (the one place it is decided, `check_divisible`): a sharded batch must have a
leading size that is a multiple of the data-axis size D. `sharded_epoch_layout` applies it to an
epoch: the mini-batch size must be a multiple of D (else ``ValueError``); the short last batch of
n mod batch_size examples is sharded when it is a multiple of D and otherwise computed *replicated* (every
device computes the whole short batch; same numbers as one device, no padding, no masking, so any
``loss_fn`` that averages over its batch stays exact).

Multi-host: `initialize_distributed` wraps `jax.distributed.initialize` (and selects the gloo
CPU collectives when running on CPU); `global_batch_from_local` builds a global batch from each
process's local rows with `jax.make_array_from_process_local_data`; `to_host` brings
replicated results back as NumPy arrays on every process (for checkpoints).
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from funcnet._boundary import count

__all__ = [
    "DATA_AXIS", "resolve_mesh", "axis_size", "data_sharding", "replicated", "check_divisible", "check_divisible_by",
    "shard_batch", "replicate", "constrain_batch", "take_batch", "pad_to_multiple",
    "EpochLayout", "sharded_epoch_layout", "data_parallel_jit", "train_step_shardings",
    "check_placement", "to_host", "initialize_distributed", "global_batch_from_local", "process_slice",
]

DATA_AXIS = "data"


# ------------------------------------------------------------------------------------ meshes


def resolve_mesh(mesh_or_devices: Any = None, axis: str = DATA_AXIS) -> Mesh:
    """A `jax.sharding.Mesh` with a data axis named ``axis``.

    Args:
      mesh_or_devices: ``None`` (all of ``jax.devices()`` in a 1-D mesh), a `jax.sharding.Mesh`
        (used as is; it must have an axis named ``axis``), or a sequence of devices (a 1-D mesh over them,
        in that order).
      axis: the name of the data axis.

    Returns:
      The mesh. Its axes are ``Auto`` (sharding by annotation): a mesh from `jax.make_mesh`, whose
      axes are ``Explicit`` by default, is rebuilt over the same devices and names with ``Auto`` axes.

    Raises:
      ValueError: the mesh has no axis named ``axis`` (the message lists its axes), or an empty device list.
      TypeError: anything else.

    Examples:
      >>> mesh = resolve_mesh(jax.devices()[:1])
      >>> print(dict(mesh.shape))
      {'data': 1}
    """
    if not isinstance(axis, str) or not axis:
        raise TypeError(f"axis must be a non-empty str naming the mesh's data axis, got {axis!r}")
    if mesh_or_devices is None:
        return Mesh(np.array(jax.devices()), (axis,))
    if isinstance(mesh_or_devices, Mesh):
        mesh = mesh_or_devices
        if axis not in mesh.axis_names:
            raise ValueError(
                f"the mesh has no axis named {axis!r}: its axes are {dict(mesh.shape)}; build it with a data "
                f"axis, e.g. Mesh(np.array(jax.devices()), ({axis!r},)), or pass axis=<one of "
                f"{list(mesh.axis_names)}>"
            )
        types = getattr(mesh, "axis_types", None)
        if types is not None and any(t != jax.sharding.AxisType.Auto for t in types):
            mesh = Mesh(mesh.devices, mesh.axis_names, axis_types=(jax.sharding.AxisType.Auto,) * len(types))
        return mesh
    if isinstance(mesh_or_devices, (str, bytes)) or not isinstance(mesh_or_devices, Sequence | np.ndarray):
        raise TypeError(
            f"mesh must be a jax.sharding.Mesh, a sequence of devices, or None (all devices); "
            f"got {type(mesh_or_devices).__name__}"
        )
    devices = list(np.asarray(mesh_or_devices, dtype=object).ravel())
    if not devices:
        raise ValueError("the device list is empty; pass e.g. jax.devices() or jax.devices()[:4]")
    bad = [d for d in devices if not isinstance(d, jax.Device)]
    if bad:
        raise TypeError(f"every entry of the device list must be a jax.Device, got {bad[0]!r}")
    if len(set(devices)) != len(devices):
        raise ValueError(f"the device list names a device twice: {devices}")
    return Mesh(np.array(devices, dtype=object), (axis,))


def axis_size(mesh: Mesh, axis: str = DATA_AXIS) -> int:
    """Number of devices along ``axis`` (the number of batch shards)."""
    resolve_mesh(mesh, axis)  # validates the axis name
    return int(mesh.shape[axis])


def data_sharding(mesh: Mesh, axis: str = DATA_AXIS) -> NamedSharding:
    """``NamedSharding(mesh, P(axis))``: leading axis split over ``axis``, the rest replicated."""
    mesh = resolve_mesh(mesh, axis)
    return NamedSharding(mesh, P(axis))


def replicated(mesh: Mesh) -> NamedSharding:
    """``NamedSharding(mesh, P())``: a full copy on every device of the mesh."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"replicated needs a jax.sharding.Mesh, got {type(mesh).__name__}")
    return NamedSharding(resolve_mesh(mesh, mesh.axis_names[0]), P())


# ------------------------------------------------------------------------------- placement


def check_divisible(size: int, mesh: Mesh, axis: str = DATA_AXIS, *, what: str = "the batch") -> None:
    """Raise ``ValueError`` unless ``size`` (a leading batch size) is a multiple of the data-axis size.

    The message says the size, the axis size and the nearest valid sizes (`check_divisible_by`).
    """
    check_divisible_by(size, axis_size(mesh, axis), axis, what=what)


def check_divisible_by(size: int, n_devices: int, axis: str = DATA_AXIS, *, what: str = "the batch") -> None:
    """The arithmetic of `check_divisible`: ``size`` rows split over ``n_devices`` devices, or ``ValueError``.

    Examples:
      >>> check_divisible_by(7, 4)
      Traceback (most recent call last):
      ...
      ValueError: the batch has 7 rows, which cannot be split evenly over the 4 devices of mesh axis 'data'; use a size that is a multiple of 4 (e.g. 4 or 8), or pad it with funcnet.sharding.pad_to_multiple and mask the padded rows
    """
    d = count(n_devices, "n_devices")
    if size % d:
        lo, hi = size // d * d, -(-size // d) * d
        options = f"{lo} or {hi}" if lo else f"{hi}"
        raise ValueError(
            f"{what} has {size} rows, which cannot be split evenly over the {d} devices of mesh axis "
            f"{axis!r}; use a size that is a multiple of {d} (e.g. {options}), or pad it with "
            f"funcnet.sharding.pad_to_multiple and mask the padded rows"
        )


def _leading_size(tree: Any, name: str) -> int:
    sizes = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        shape = np.shape(leaf)
        where = f"{name}{jax.tree_util.keystr(path)}"
        if not shape:
            raise ValueError(f"{where} is a scalar; every leaf of a sharded batch needs a leading batch axis")
        sizes[where] = shape[0]
    if not sizes:
        raise ValueError(f"{name} holds no arrays")
    if len(set(sizes.values())) != 1:
        raise ValueError(
            f"every leaf of {name} must have the same leading (batch) size, got "
            + ", ".join(f"{k}: {v}" for k, v in sizes.items())
        )
    return next(iter(sizes.values()))


def _fresh(tree: Any) -> Any:
    """Copies of the JAX arrays in ``tree`` (NumPy leaves as they are).

    ``jax.device_put`` onto a mesh reuses the caller's buffer for the shard on the array's own device, even
    with ``may_alias=False`` (jax 0.10), so a donating step would delete the caller's array; placing a copy
    avoids that.
    """
    return jax.tree.map(lambda a: a.copy() if isinstance(a, jax.Array) else a, tree)


def shard_batch(tree: Any, mesh: Mesh, axis: str = DATA_AXIS) -> Any:
    """Place a batch pytree on the mesh with its leading axis split over ``axis``.

    Args:
      tree: pytree of arrays (NumPy or JAX) sharing a leading size B, e.g. ``(X (B, n_0), y (B,))``.
      mesh: the mesh (see `resolve_mesh`).
      axis: the data axis.

    Returns:
      The same pytree of global ``jax.Array`` s, each device holding B/D rows. NumPy input goes from the host
      straight to the shards (one transfer per device, no copy through device 0).

    Raises:
      ValueError: B is not a multiple of the axis size D, or a leaf is a scalar / leaves disagree on B.
    """
    mesh = resolve_mesh(mesh, axis)
    check_divisible(_leading_size(tree, "batch"), mesh, axis)
    return jax.device_put(_fresh(tree), data_sharding(mesh, axis))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a pytree (parameters, optimizer state) on every device of ``mesh``, from wherever it is.

    Works from NumPy arrays (e.g. a loaded checkpoint), from single-device arrays, and from arrays on
    another mesh; PRNG key arrays are placed too. The result never shares buffers with ``tree``, so a step
    that donates its arguments cannot delete the caller's arrays.
    """
    return jax.device_put(_fresh(tree), replicated(mesh))


def constrain_batch(tree: Any, mesh: Mesh, axis: str = DATA_AXIS) -> Any:
    """Inside ``jit``: annotate every leaf of ``tree`` as split along ``axis`` on its leading dimension."""
    return jax.lax.with_sharding_constraint(tree, data_sharding(mesh, axis))


def take_batch(data: Any, idx: jax.Array, mesh: Mesh | None = None, axis: str = DATA_AXIS) -> Any:
    """Inside ``jit``: gather rows ``idx`` of every leaf of ``data``, the result split along ``axis``.

    With ``data`` replicated on the mesh and ``idx`` (shape ``(B,)``) split along ``axis``, every device
    gathers its own B/D rows from its local copy: no communication and no host round-trip per step. With
    ``mesh=None`` this is a plain ``jnp.take``. B must be a multiple of D (checked at trace time).
    """
    if mesh is None:
        return jax.tree.map(lambda a: jnp.take(a, idx, axis=0), data)
    check_divisible(idx.shape[0], mesh, axis)
    idx = jax.lax.with_sharding_constraint(idx, data_sharding(mesh, axis))
    return constrain_batch(jax.tree.map(lambda a: jnp.take(a, idx, axis=0), data), mesh, axis)


def pad_to_multiple(tree: Any, multiple: int) -> tuple[Any, np.ndarray]:
    """Pad the leading axis of every leaf up to a multiple of ``multiple`` by repeating the last row.

    Returns:
      ``(padded, mask)`` with ``mask`` a NumPy bool array of shape ``(B_padded,)``, True on the B real rows.
      Use it to weight a loss (``jnp.sum(mask * ℓ) / jnp.sum(mask)``) or to slice results back
      (``out[:B]``) when rows are independent, e.g. per-example attacks or per-unit visualizations.

    Examples:
      >>> x, mask = pad_to_multiple(np.arange(5.0), 4)
      >>> print(x.tolist(), mask.tolist())
      [0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0] [True, True, True, True, True, False, False, False]
    """
    multiple = count(multiple, "multiple")
    b = _leading_size(tree, "tree")
    padded = -(-b // multiple) * multiple
    mask = np.arange(padded) < b
    if padded == b:
        return tree, mask
    xp = lambda a: jnp if isinstance(a, jax.Array) else np  # noqa: E731
    pad = lambda a: xp(a).concatenate([a, xp(a).repeat(a[-1:], padded - b, axis=0)], axis=0)  # noqa: E731
    return jax.tree.map(pad, tree), mask


# ----------------------------------------------------------------------------- epoch layout


class EpochLayout(NamedTuple):
    """How one epoch of ``n`` examples is cut into sharded steps (see `sharded_epoch_layout`).

    Attributes:
      n: examples in the data set.
      batch_size: global mini-batch size B (a multiple of ``n_devices``).
      n_devices: data-axis size D.
      full_steps: ⌊n / B⌋ steps of B examples, each split B/D per device.
      rest: size of the short last batch (0 when none or ``drop_last``).
      rest_sharded: True when ``rest`` is a multiple of D (split like the others); False means the short
        batch is computed replicated (every device computes all ``rest`` rows).
    """

    n: int
    batch_size: int
    n_devices: int
    full_steps: int
    rest: int
    rest_sharded: bool

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch."""
        return self.full_steps + (1 if self.rest else 0)

    def split(self, perm: Any) -> tuple[Any, Any]:
        """Cut a permutation of ``range(n)`` into ``(full (full_steps, B), rest (rest,))`` index arrays."""
        cut = self.full_steps * self.batch_size
        full = perm[:cut].reshape(self.full_steps, self.batch_size)
        return full, perm[cut:cut + self.rest]


def sharded_epoch_layout(n: int, batch_size: int | None, n_devices: int, *, drop_last: bool = False) -> EpochLayout:
    """Lay out an epoch for data-parallel training; the rule for sizes that do not divide.

    * ``batch_size`` (``None`` = full batch, B = n) must be a multiple of ``n_devices``, else ``ValueError``
      (suggesting the nearest multiples);
    * the ⌊n / B⌋ full batches are split B/D rows per device;
    * the short last batch (n mod B rows, unless ``drop_last``) keeps fit's single-device convention (it is
      one step of its own size, and ``loss_fn`` averages over its real rows); it is split over the devices
      when its size is a multiple of D, otherwise computed replicated. No padding rows ever reach ``loss_fn``,
      so the parameters match a single-device run up to summation order.

    Examples:
      >>> print(sharded_epoch_layout(100, 32, 8))
      EpochLayout(n=100, batch_size=32, n_devices=8, full_steps=3, rest=4, rest_sharded=False)
    """
    n = count(n, "n")
    n_devices = count(n_devices, "n_devices")
    b = n if batch_size is None else count(batch_size, "batch_size")
    if b > n:
        raise ValueError(f"batch_size must be an int in 1..{n} (or None for the full batch), got {batch_size!r}")
    if b % n_devices:
        lo, hi = b // n_devices * n_devices, -(-b // n_devices) * n_devices
        options = " or ".join(str(v) for v in (lo, hi) if 1 <= v <= n) or "a smaller device count"
        what = f"the full batch (batch_size=None: all {n} examples)" if batch_size is None else f"batch_size={b}"
        raise ValueError(
            f"{what} cannot be split evenly over {n_devices} devices; data-parallel training needs a global "
            f"batch size that is a multiple of the data-axis size: use {options}"
        )
    full, rest = n // b, (0 if drop_last else n % b)
    return EpochLayout(int(n), int(b), int(n_devices), int(full), int(rest), rest % n_devices == 0)


# ------------------------------------------------------------------------------- sharded jit


def train_step_shardings(mesh: Mesh, axis: str = DATA_AXIS):
    """``(in_shardings, out_shardings)`` for a step ``(params, opt_state, batch) -> (params, opt_state, loss)``.

    Parameters and optimizer state replicated, the batch split along ``axis``, the loss replicated.
    """
    rep, dat = replicated(mesh), data_sharding(mesh, axis)
    return (rep, rep, dat), (rep, rep, rep)


def data_parallel_jit(
    fn: Callable,
    mesh: Mesh,
    axis: str = DATA_AXIS,
    *,
    batch_argnums: Sequence[int] = (2,),
    out_shardings: Any = "replicated",
    donate_argnums: Sequence[int] = (),
) -> Callable:
    """``jax.jit`` of ``fn`` with its batch arguments split along ``axis`` and the others replicated.

    Args:
      fn: a pure function of positional arguments only, e.g. a train step ``(params, opt_state, batch)``.
      mesh: the mesh; ``axis`` its data axis.
      batch_argnums: positions of the batch arguments (every leaf split on its leading axis).
      out_shardings: ``"replicated"`` (every output replicated, e.g. new params and the loss), ``"data"``
        (every output split like the batch, e.g. adversarial examples), or any ``jax.jit`` out_shardings.
      donate_argnums: as in ``jax.jit``.

    Returns:
      The jitted function. Calling it checks that each batch's leading size is a multiple of the axis size
      (a ``ValueError`` saying what to do) and that no argument is already laid out differently on the mesh
      (a ``ValueError`` naming the leaf; `check_placement`). NumPy and uncommitted arguments are
      placed by ``jit`` itself. ``.jitted`` is the underlying ``jax.jit`` object (for ``.lower``).
    """
    mesh = resolve_mesh(mesh, axis)
    try:
        n_args = len([p for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
    except (TypeError, ValueError):  # builtins / callables without a signature
        raise TypeError(f"data_parallel_jit needs a function with a Python signature, got {fn!r}") from None
    batch_argnums = tuple(batch_argnums)
    for i in batch_argnums:
        if not 0 <= i < n_args:
            raise ValueError(f"batch_argnums {batch_argnums} out of range for a function of {n_args} arguments")
    rep, dat = replicated(mesh), data_sharding(mesh, axis)
    in_shardings = tuple(dat if i in batch_argnums else rep for i in range(n_args))
    if isinstance(out_shardings, str):
        if out_shardings not in ("replicated", "data"):
            raise ValueError(f"out_shardings must be 'replicated', 'data' or jit shardings, got {out_shardings!r}")
        out_shardings = rep if out_shardings == "replicated" else dat
    jitted = jax.jit(fn, in_shardings=in_shardings, out_shardings=out_shardings,
                     donate_argnums=tuple(donate_argnums))
    names = list(inspect.signature(fn).parameters)[:n_args]

    @functools.wraps(fn)
    def call(*args):
        if len(args) != n_args:
            raise TypeError(f"{getattr(fn, '__name__', 'fn')} takes {n_args} positional arguments, got {len(args)}")
        for i, a in enumerate(args):
            if i in batch_argnums:
                check_divisible(_leading_size(a, names[i]), mesh, axis, what=f"the batch argument {names[i]!r}")
            check_placement(a, in_shardings[i], names[i])
        return jitted(*args)

    call.jitted = jitted
    call.mesh = mesh
    return call


def check_placement(tree: Any, sharding: NamedSharding, name: str = "argument") -> None:
    """Raise ``ValueError`` if a leaf of ``tree`` is laid out differently on the same devices as ``sharding``.

    This is the resume / wrong-layout case: e.g. parameters split along the data axis (or restored onto a
    mesh with other axis names) handed to a step that expects them replicated. ``jit`` cannot reinterpret
    such arrays; the message says which leaf, both layouts, and what to call. NumPy arrays, uncommitted
    JAX arrays and arrays on other devices (``jit`` copies those over) pass.
    """
    devices = sharding.device_set
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not isinstance(leaf, jax.Array) or not getattr(leaf, "committed", False):
            continue
        if leaf.sharding.device_set != devices or leaf.sharding.is_equivalent_to(sharding, leaf.ndim):
            continue
        got = getattr(leaf.sharding, "spec", leaf.sharding)
        fix = ("funcnet.sharding.replicate(tree, mesh)" if sharding.spec == P()
               else "funcnet.sharding.shard_batch(tree, mesh)")
        raise ValueError(
            f"{name}{jax.tree_util.keystr(path)} is laid out as {got} on the mesh, but this step expects "
            f"{sharding.spec} ({'replicated' if sharding.spec == P() else 'split along the data axis'}); "
            f"re-place it with {fix}, or pass NumPy arrays (e.g. a loaded checkpoint) and let the step place them"
        )


# ------------------------------------------------------------------------------- multi-host


def to_host(tree: Any) -> Any:
    """NumPy copies of every leaf, on every process: for saving checkpoints and comparing results.

    Fully addressable arrays (single process) are copied directly; replicated global arrays are read from a
    local replica; sharded global arrays spanning several processes are all-gathered
    (``jax.experimental.multihost_utils.process_allgather``, a collective: call it on every process).
    """
    from jax.experimental import multihost_utils

    def one(x):
        if not isinstance(x, jax.Array):
            return np.asarray(x)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(jnp.asarray(to_host(jax.random.key_data(x))),
                                            impl=jax.random.key_impl(x))
        if x.is_fully_addressable:
            return np.asarray(x)
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(one, tree)


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: int | Sequence[int] | None = None,
    cpu_collectives: str | None = "gloo",
    initialization_timeout: int = 300,
    **kwargs,
) -> None:
    """Join a multi-process JAX run: `jax.distributed.initialize`, plus CPU collectives.

    Call it once per process, before any other JAX call that touches devices. Afterwards
    ``jax.devices()`` lists the devices of *all* processes, ``jax.local_devices()`` this process's own,
    and a mesh over ``jax.devices()`` spans every host; ``jit`` computations on it are SPMD programs that every
    process runs in lock step (each must make the same calls in the same order).

    Args:
      coordinator_address: ``"host:port"`` of process 0, reachable from every process (all processes pass the
        same value). May be None on clusters that JAX auto-detects (Slurm, Open MPI, TPU pods).
      num_processes: total number of processes.
      process_id: this process's index, 0..num_processes-1 (0 runs the coordinator).
      local_device_ids: restrict this process to some of its local devices (GPU pinning).
      cpu_collectives: cross-process collectives for the CPU backend: ``"gloo"`` (TCP, default, needs
        nothing installed) or ``"mpi"``; ``None`` leaves JAX's setting alone. Sets
        ``jax_cpu_collectives_implementation``; without it a CPU mesh cannot span processes.
      initialization_timeout: seconds to wait for every process to connect.
      **kwargs: passed on to `jax.distributed.initialize` (e.g. ``heartbeat_timeout_seconds``).

    Raises:
      ValueError: bad ``num_processes`` / ``process_id`` / ``coordinator_address``.
      RuntimeError: already initialized, or JAX's backends were created before this call.

    Example (two processes on one machine, each in its own shell)::

        # process 0                                      # process 1
        initialize_distributed("127.0.0.1:12345", 2, 0)  initialize_distributed("127.0.0.1:12345", 2, 1)
        mesh = resolve_mesh(jax.devices())               # the same on both: every device of both processes
    """
    if num_processes is not None:
        num_processes = count(num_processes, "num_processes")
    if process_id is not None:
        process_id = count(process_id, "process_id", minimum=0)
        if num_processes is not None and not 0 <= process_id < num_processes:
            raise ValueError(f"process_id must be in 0..{num_processes - 1} (num_processes={num_processes}), "
                             f"got {process_id}")
    if coordinator_address is not None and (not isinstance(coordinator_address, str) or ":" not in coordinator_address):
        raise ValueError(f"coordinator_address must be 'host:port' (e.g. '10.0.0.1:12345'), got {coordinator_address!r}")
    if jax.distributed.is_initialized():
        raise RuntimeError("jax.distributed is already initialized in this process; call initialize_distributed once")
    if cpu_collectives is not None:
        if cpu_collectives not in ("gloo", "mpi"):
            raise ValueError(f"cpu_collectives must be 'gloo', 'mpi' or None, got {cpu_collectives!r}")
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(coordinator_address, num_processes, process_id, local_device_ids=local_device_ids,
                               initialization_timeout=initialization_timeout, **kwargs)


def global_batch_from_local(local_tree: Any, mesh: Mesh, axis: str = DATA_AXIS) -> Any:
    """Assemble a global batch from every process's local rows (multi-host data feeding).

    Each process passes its own ``local`` rows (NumPy, leading size b, a multiple of its number of devices
    on the mesh); the result is a global ``jax.Array`` of leading size b × (number of processes on the
    axis), split along ``axis``, whose rows are the processes' local batches in process order (for a mesh
    built from ``jax.devices()``). No data crosses hosts: each process's rows go to its own devices
    (`jax.make_array_from_process_local_data`). With one process this equals `shard_batch`.

    Raises:
      ValueError: the local leading size is not a multiple of this process's device count on the mesh.
    """
    mesh = resolve_mesh(mesh, axis)
    b = _leading_size(local_tree, "local batch")
    local = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
    if local == 0:
        raise ValueError(f"process {jax.process_index()} has no devices on the mesh {dict(mesh.shape)}")
    if b % local:
        raise ValueError(
            f"the local batch has {b} rows, which cannot be split over this process's {local} devices on mesh "
            f"axis {axis!r}; use a local batch size that is a multiple of {local}"
        )
    sharding = data_sharding(mesh, axis)
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), local_tree)


def process_slice(global_size: int, mesh: Mesh | None = None, axis: str = DATA_AXIS) -> slice:
    """The rows ``[start, stop)`` of a global batch that this process feeds (see `global_batch_from_local`).

    Assumes the mesh lists each process's devices contiguously (true for ``jax.devices()``).
    """
    mesh = resolve_mesh(mesh, axis)
    check_divisible(global_size, mesh, axis, what="the global batch")
    devs = list(mesh.devices.flat)
    per = global_size // len(devs)
    mine = [i for i, d in enumerate(devs) if d.process_index == jax.process_index()]
    if not mine or mine != list(range(mine[0], mine[-1] + 1)):
        raise ValueError("this process's devices are not contiguous on the mesh; build it from jax.devices()")
    return slice(mine[0] * per, (mine[-1] + 1) * per)
