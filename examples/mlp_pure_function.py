"""An MLP is a pure function: build one, apply it, differentiate it, count its parameters.

Run: python examples/mlp_pure_function.py
"""

import jax
import jax.numpy as jnp

import funcnet as fn

model = fn.mlp([4, 3, 2], activation="tanh")
params = model.init(jax.random.key(0))
x = jnp.array([0.5, -1.0, 2.0, 0.0])

print("h(x) =", model.apply(params, x))
print("batched:", model.apply(params, jnp.stack([x, -x])).shape)

grads = jax.grad(lambda p: jnp.sum(model.apply(p, x) ** 2))(params)
print("dL/dW1 shape:", grads[0]["w"].shape)
print("parameters of [100, 2000, 10]:", fn.param_count(fn.mlp([100, 2000, 10]).init(jax.random.key(0))))
