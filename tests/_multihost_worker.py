"""One "host" of the two-process data-parallel test (launched by tests/test_multihost.py).

    python tests/_multihost_worker.py --port P --process-id I --num-processes 2 --local-devices 2 --out F.npz

Every process joins the run with ``funcnet.sharding.initialize_distributed`` (gloo CPU collectives over
127.0.0.1), builds one mesh over the devices of all processes, and trains :func:`problem`'s MLP for
``STEPS`` Adam steps; each process feeds only its own rows of every global batch
(``global_batch_from_local``). It writes the final parameters (NumPy, via ``to_host``) to ``--out``.

:func:`problem` and :func:`train_single` are imported by the test for the single-process reference.
"""

from __future__ import annotations

import argparse
import os
import sys

STEPS = 5
GLOBAL_BATCH = 32
SIZES = (12, 16, 3)
LEARNING_RATE = 1e-2


def problem():
    """``(model, params0, batches, optimizer, loss_fn)``: deterministic on every process."""
    import jax
    import numpy as np
    import optax

    import funcnet as fn

    rng = np.random.default_rng(0)
    X = rng.normal(size=(STEPS * GLOBAL_BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], size=STEPS * GLOBAL_BATCH).astype(np.int32)
    batches = [(X[i * GLOBAL_BATCH:(i + 1) * GLOBAL_BATCH], y[i * GLOBAL_BATCH:(i + 1) * GLOBAL_BATCH])
               for i in range(STEPS)]
    model = fn.mlp(list(SIZES), activation="tanh")
    params = model.init(jax.random.key(0))

    def loss_fn(p, batch):
        return fn.losses.softmax_cross_entropy(model.apply(p, batch[0]), batch[1])

    return model, params, batches, optax.adam(LEARNING_RATE), loss_fn


def make_step(loss_fn, optimizer):
    import jax
    import optax

    def step(params, opt_state, batch):
        loss, g = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = optimizer.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--process-id", type=int, required=True)
    ap.add_argument("--num-processes", type=int, default=2)
    ap.add_argument("--local-devices", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    jax.config.update("jax_num_cpu_devices", args.local_devices)
    import numpy as np

    from funcnet import sharding

    sharding.initialize_distributed(f"127.0.0.1:{args.port}", args.num_processes, args.process_id,
                                    initialization_timeout=60, heartbeat_timeout_seconds=30,
                                    shutdown_timeout_seconds=30)
    assert jax.process_count() == args.num_processes, jax.process_count()
    assert jax.device_count() == args.num_processes * args.local_devices, jax.devices()

    mesh = sharding.resolve_mesh(jax.devices())
    _, params, batches, optimizer, loss_fn = problem()
    params = sharding.replicate(params, mesh)
    opt_state = sharding.replicate(optimizer.init(params), mesh)
    step = sharding.data_parallel_jit(make_step(loss_fn, optimizer), mesh, donate_argnums=(0, 1))
    rows = sharding.process_slice(GLOBAL_BATCH, mesh)
    losses = []
    for X, y in batches:
        batch = sharding.global_batch_from_local((X[rows], y[rows]), mesh)
        assert batch[0].shape == (GLOBAL_BATCH, SIZES[0]), batch[0].shape
        params, opt_state, loss = step(params, opt_state, batch)
        losses.append(sharding.to_host(loss))
    host = sharding.to_host(params)
    flat = {f"{i}_{k}": v for i, layer in enumerate(host) for k, v in layer.items()}
    np.savez(args.out, losses=np.asarray(losses), rows=np.asarray([rows.start, rows.stop]), **flat)
    jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
