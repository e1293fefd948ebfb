"""XOR: a perceptron (no hidden layer) cannot separate it; one hidden layer can."""

import os

import jax
import optax

import funcnet as fn

SMOKE = bool(os.environ.get("FUNCNET_SMOKE"))
X, y = fn.datasets.xor()  # y: (4, 1) in {0, 1}


def train(sizes, seed=0):
    model = fn.mlp(sizes, activation="tanh", init="xavier")

    def loss_fn(params, batch):
        return fn.losses.binary_cross_entropy(model.apply(params, batch[0]), batch[1])

    params, history = fn.fit(loss_fn, model.init(jax.random.key(seed)), (X, y), optimizer=optax.adam(0.1),
                             epochs=5 if SMOKE else 300, batch_size=None,  # batch GD on the four points
                             progress=False)
    acc = float(fn.accuracy(model.apply(params, X), y))
    return acc, history.train_loss[-1]


for sizes in ([2, 1], [2, 4, 1]):
    acc, loss = train(sizes)
    name = "perceptron" if len(sizes) == 2 else f"MLP {sizes}"
    print(f"{name:14s} loss {loss:.3f}  accuracy {acc:.2f}")
# a line can classify at most 3 of the 4 XOR points: the perceptron stays at <= 0.75, the MLP reaches 1.00
