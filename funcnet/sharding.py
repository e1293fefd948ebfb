"""Data-parallel training on a device mesh and across hosts, with JAX's own sharding.

The batch is split along a mesh's ``"data"`` axis, parameters and optimizer state are replicated, and XLA
inserts the gradient all-reduce; across hosts, :func:`initialize_distributed` wraps
:func:`jax.distributed.initialize`. See the "Scaling out" docs page.

    mesh = fn.sharding.resolve_mesh(jax.devices())          # 1-D mesh, axis "data"
    params = fn.sharding.replicate(params, mesh)
    batch = fn.sharding.shard_batch((X[:256], y[:256]), mesh)
"""

from __future__ import annotations

from funcnet._sharding import (
    DATA_AXIS,
    EpochLayout,
    axis_size,
    check_divisible,
    check_placement,
    constrain_batch,
    data_parallel_jit,
    data_sharding,
    global_batch_from_local,
    initialize_distributed,
    pad_to_multiple,
    process_slice,
    replicate,
    replicated,
    resolve_mesh,
    shard_batch,
    sharded_epoch_layout,
    take_batch,
    to_host,
    train_step_shardings,
)

__all__ = [
    "DATA_AXIS", "resolve_mesh", "axis_size", "data_sharding", "replicated", "shard_batch", "replicate",
    "check_divisible", "check_placement", "pad_to_multiple", "constrain_batch", "take_batch",
    "EpochLayout", "sharded_epoch_layout", "data_parallel_jit", "train_step_shardings",
    "initialize_distributed", "global_batch_from_local", "process_slice", "to_host",
]
