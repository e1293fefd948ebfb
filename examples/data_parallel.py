"""Data-parallel training: the batch split over a device mesh, parameters replicated, XLA all-reduces.

Run on whatever devices you have:          python examples/data_parallel.py
Pretend this CPU has 8 devices:            XLA_FLAGS=--xla_force_host_platform_device_count=8 \\
                                           JAX_PLATFORMS=cpu python examples/data_parallel.py
"""

import jax
import numpy as np
import optax

import funcnet as fn
from funcnet import sharding

X, y = fn.datasets.digits()
model = fn.mlp([64, 64, 10], activation="relu")
opt = optax.adam(3e-3)


def loss_fn(params, batch):
    return fn.losses.softmax_cross_entropy(model.apply(params, batch[0]), batch[1])


def step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


mesh = sharding.resolve_mesh(jax.devices())  # a 1-D mesh with axis "data"
D = sharding.axis_size(mesh)
B = 128  # global batch: a multiple of D
print(f"{D} device(s), mesh axes {dict(mesh.shape)}, global batch {B} = {B // D} rows per device")

sharded_step = sharding.data_parallel_jit(step, mesh, donate_argnums=(0, 1))
params0 = model.init(jax.random.key(0))
params = sharding.replicate(params0, mesh)
opt_state = sharding.replicate(opt.init(params0), mesh)
batches = [(X[i:i + B], y[i:i + B]) for i in range(0, 1664, B)]  # 13 batches of 128
for epoch in range(3):
    for b in batches:
        params, opt_state, loss = sharded_step(params, opt_state, sharding.shard_batch(b, mesh))
    print(f"epoch {epoch}: last batch loss {float(loss):.4f}")

first = sharding.shard_batch(batches[0], mesh)[0]
print("rows of the first batch on each device:", [s.data.shape[0] for s in first.addressable_shards])

# The same steps on one device give the same parameters, up to float summation order.
single = jax.jit(step)
p, s = params0, opt.init(params0)
for epoch in range(3):
    for b in batches:
        p, s, _ = single(p, s, b)
diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(p)))
print(f"max |sharded - single device| over all parameters: {diff:.1e}", "(agree)" if diff < 1e-4 else "(DIFFER)")
print("accuracy:", float(fn.accuracy(model.apply(params, X), y)))
