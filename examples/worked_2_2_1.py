"""The lectures' worked example: one backprop iteration of a 2-2-1 tanh network, reproduced four ways.

    x0 = [1, 0.1]          W0 = [[1, -3], [0.2, 1]]   (lecture layout: out x in)
    x1 = W0 x0             W1 = [[1, -1]]             no biases
    x2 = tanh(x1)          y = 0.5
    x3 = W1 x2             L = ½ (x3 - y)²

Backprop by hand, then the same gradient from funcnet's delta rule, jax.grad, the
tracer and finite differences, then one gradient-descent step W ← W - η ∇W.

    python examples/worked_2_2_1.py
"""

import jax
import numpy as np

import funcnet as fn
from funcnet import tracer

W0 = np.array([[1.0, -3.0], [0.2, 1.0]])  # (out, in), as on the slides
W1 = np.array([[1.0, -1.0]])
X0 = np.array([1.0, 0.1])
Y = 0.5
LEARNING_RATE = 0.1


def loss(W0, W1):
    """L(W0, W1) in the lecture's notation; runs on NumPy, JAX and the tracer (named nodes for trace)."""
    x1 = tracer.name(W0 @ X0, "x1")
    x2 = tracer.name(fn.activations.tanh(x1), "x2")
    x3 = tracer.name((W1 @ x2)[0], "x3")
    return tracer.name(0.5 * (x3 - Y) ** 2, "L")


def by_hand():
    """The chain rule, one line per node, exactly as on paper."""
    x1 = W0 @ X0
    x2 = np.tanh(x1)
    x3 = (W1 @ x2)[0]
    L = 0.5 * (x3 - Y) ** 2
    dx3 = x3 - Y                      # dL/dx3
    dW1 = dx3 * x2[None, :]           # dL/dW1 = dL/dx3 · x2ᵀ
    dx2 = dx3 * W1[0]                 # dL/dx2 = W1ᵀ dL/dx3
    dx1 = dx2 * (1.0 - x2 ** 2)       # tanh' = 1 - tanh²
    dW0 = np.outer(dx1, X0)           # dL/dW0 = dL/dx1 · x0ᵀ
    return {"x1": x1, "x2": x2, "x3": x3, "L": L}, (dW0, dW1)


def main() -> dict:
    np.set_printoptions(precision=6, suppress=True)
    values, (dW0, dW1) = by_hand()
    print("forward:", ", ".join(f"{k} = {v}" for k, v in values.items()))
    print(f"by hand:        dL/dW0 = {dW0.tolist()}\n                dL/dW1 = {dW1.tolist()}")

    # funcnet's MLP stores weights (in, out): W0ᵀ, W1ᵀ; a linear output and no biases (zeros).
    model = fn.mlp([2, 2, 1], activation="tanh")
    params = [{"w": W0.T.copy(), "b": np.zeros(2)}, {"w": W1.T.copy(), "b": np.zeros(1)}]
    g = fn.manual.mlp_backprop(model, params, X0, np.array([Y]), loss="half_mse")
    print(f"delta rule:     dL/dW0 = {g[0]['w'].T.tolist()}\n                dL/dW1 = {g[1]['w'].T.tolist()}")

    report = fn.check.compare_grads(loss, W0, W1, argnums=(0, 1))
    print(report)

    graph = tracer.trace(loss, W0, W1)
    print("tracer graph:", ", ".join(f"{n.name}" for n in graph.nodes))

    new_W0, new_W1 = W0 - LEARNING_RATE * dW0, W1 - LEARNING_RATE * dW1
    new_L = float(loss(new_W0, new_W1))
    print(f"one step with η = {LEARNING_RATE}: W0 = {new_W0.tolist()}, W1 = {new_W1.tolist()}")
    print(f"loss {values['L']:.6f} -> {new_L:.6f}")
    return {"dW0": dW0, "dW1": dW1, "delta_rule": g, "report": report, "loss_before": float(values["L"]),
            "loss_after": new_L}


if __name__ == "__main__":
    with jax.enable_x64(True):
        raise SystemExit(0 if main()["report"].ok else 1)
