"""Regression y = x² + noise with a 1-8-1 ReLU network and Adam.

    python examples/regression_x2.py [--plot out.png]
"""

import os
import sys

import jax
import jax.numpy as jnp
import optax

import funcnet as fn

SMOKE = bool(os.environ.get("FUNCNET_SMOKE"))

k_x, k_noise, k_init, k_fit = jax.random.split(jax.random.key(0), 4)
x = jax.random.uniform(k_x, (256, 1), minval=-2.0, maxval=2.0)
y = x**2 + 0.1 * jax.random.normal(k_noise, x.shape)

model = fn.mlp([1, 8, 1], activation="relu")


def loss_fn(params, batch):
    xb, yb = batch
    return fn.losses.mse(model.apply(params, xb), yb)


params, history = fn.fit(loss_fn, model.init(k_init), (x, y), optimizer=optax.adam(1e-2),
                         epochs=3 if SMOKE else 300, batch_size=32, key=k_fit)
grid = jnp.linspace(-2, 2, 9)[:, None]
print(f"final train MSE {history.train_loss[-1]:.4f} (noise variance 0.01)")
for xi, yi in zip(grid[:, 0], model.apply(params, grid)[:, 0]):
    print(f"  x = {float(xi):+.1f}   h(x) = {float(yi):6.3f}   x² = {float(xi) ** 2:6.3f}")

if "--plot" in sys.argv:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fine = jnp.linspace(-2, 2, 200)[:, None]
    plt.scatter(x[:, 0], y[:, 0], s=5, alpha=0.4, label="data")
    plt.plot(fine[:, 0], model.apply(params, fine)[:, 0], "r", label="1-8-1 ReLU MLP")
    plt.legend()
    plt.savefig(sys.argv[sys.argv.index("--plot") + 1])
