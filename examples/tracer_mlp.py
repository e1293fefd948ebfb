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

    # forward mode and second order on a small batch: a directional derivative (jvp) and a
    # Hessian-vector product (hvp, forward over reverse) along a random direction v, against JAX
    xs, ys = X[:16], y[:16]
    rng = np.random.default_rng(0)
    v = jax.tree.map(lambda a: rng.normal(size=a.shape), params)
    f = lambda p: loss(p, xs, ys)  # noqa: E731
    _, dir_tracer = tracer.jvp(f, (params,), (v,))
    hv_tracer = tracer.hvp(f, (params,), (v,))
    with jax.enable_x64(True):
        pj, vj = jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, v)
        fj = lambda p: loss(p, jnp.asarray(xs), jnp.asarray(ys))  # noqa: E731
        _, dir_jax = jax.jvp(fj, (pj,), (vj,))
        hv_jax = jax.jvp(jax.grad(fj), (pj,), (vj,))[1]
    print(f"directional derivative along v: tracer.jvp {float(dir_tracer):.15g}, jax.jvp {float(dir_jax):.15g}")
    hv_diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in
                  zip(jax.tree.leaves(hv_tracer), jax.tree.leaves(hv_jax)))
    print(f"max |tracer.hvp - jax hvp| over all parameters: {hv_diff:.2e}")

    vg = tracer.value_and_grad(loss)
    for step in range(steps + 1):
        value, g = vg(params, X, y)
        if step % 10 == 0:
            print(f"step {step:3d}  loss {float(value):.4f}")
        params = jax.tree.map(lambda p, d: p - 0.5 * d, params, g)


if __name__ == "__main__":
    main()
