"""Digits classification: a 64-128-10 ReLU MLP trained with fn.fit (about 97-98% test accuracy).

    python examples/train_digits.py            # full run
    FUNCNET_SMOKE=1 python examples/train_digits.py   # a few epochs, for the test suite
"""

import os
import time

import jax
import optax

import funcnet as fn

SMOKE = bool(os.environ.get("FUNCNET_SMOKE"))

t0 = time.perf_counter()
(Xtr, ytr), (Xva, yva), (Xte, yte) = fn.datasets.split(jax.random.key(0), fn.datasets.digits())
model = fn.mlp([64, 128, 10], activation="relu")


def loss_fn(params, batch):
    x, y = batch
    return fn.losses.softmax_cross_entropy(model.apply(params, x), y)


def accuracy(params, batch):
    x, y = batch
    return fn.accuracy(model.apply(params, x), y)


params, history = fn.fit(
    loss_fn, model.init(jax.random.key(1)), (Xtr, ytr),
    optimizer=optax.inject_hyperparams(optax.adam)(learning_rate=3e-3),
    epochs=2 if SMOKE else 40, batch_size=32, key=jax.random.key(2),
    val_data=(Xva, yva), patience=10, metrics={"accuracy": accuracy},
)
test_acc = float(accuracy(params, (Xte, yte)))  # reported once, for the chosen (best-epoch) parameters
print(f"best epoch {history.best_epoch}, val accuracy {history.metrics['accuracy'][history.best_index]:.4f}")
print(f"test accuracy {test_acc:.4f}  ({time.perf_counter() - t0:.1f} s in all)")
