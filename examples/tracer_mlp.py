"""One MLP definition, two autodiff engines: funcnet.tracer on NumPy and jax.grad on JAX.

Run: python examples/tracer_mlp.py
"""

import jax
import jax.numpy as jnp
import numpy as np

import funcnet as fn
from funcnet import tracer


def main(steps: int = 30, n: int = 256):
    X, y = fn.datasets.digits()
    X, y = np.asarray(X[:n], np.float64), np.asarray(y[:n])
    model = fn.mlp([64, 32, 10], activation="tanh")
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), model.init(jax.random.key(0)))

    def loss(p, x, labels):
        return fn.losses.softmax_cross_entropy(model.apply(p, x), labels)

    g_tracer = tracer.grad(loss)(params, X, y)
    with jax.enable_x64(True):
        g_jax = jax.grad(loss)(jax.tree.map(jnp.asarray, params), jnp.asarray(X), jnp.asarray(y))
    diff = max(float(np.max(np.abs(a - np.asarray(b)))) for a, b in
               zip(jax.tree.leaves(g_tracer), jax.tree.leaves(g_jax)))
    print(f"max |tracer.grad - jax.grad| over all parameters: {diff:.2e}")

    vg = tracer.value_and_grad(loss)
    for step in range(steps + 1):
        value, g = vg(params, X, y)
        if step % 10 == 0:
            print(f"step {step:3d}  loss {float(value):.4f}")
        params = jax.tree.map(lambda p, d: p - 0.5 * d, params, g)


if __name__ == "__main__":
    main()
