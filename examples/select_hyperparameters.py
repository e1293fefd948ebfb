"""Hyperparameter selection the lectures' way: choose on the validation set, report the test score once."""

import os

import jax
import optax

import funcnet as fn

SMOKE = bool(os.environ.get("FUNCNET_SMOKE"))
(Xtr, ytr), (Xva, yva), (Xte, yte) = fn.datasets.split(jax.random.key(0), fn.datasets.digits())


# one optimizer object: the learning rate is data of the compiled program (fit(..., hyperparams=...)), and
# one loss function per hidden size: fit compiles once per hidden size, not once per configuration
OPTIMIZER = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
LOSSES = {}


def loss_for(hidden):
    if hidden not in LOSSES:
        model = fn.mlp([64, hidden, 10])
        LOSSES[hidden] = model, lambda params, b: fn.losses.softmax_cross_entropy(model.apply(params, b[0]), b[1])
    return LOSSES[hidden]


def train(config):
    model, loss_fn = loss_for(config["hidden"])
    params, history = fn.fit(loss_fn, model.init(jax.random.key(1)), (Xtr, ytr), optimizer=OPTIMIZER,
                             hyperparams={"learning_rate": config["lr"]}, epochs=2 if SMOKE else 30,
                             batch_size=32, key=jax.random.key(2), progress=False)
    return (model, params), history


def score(model_params, X, y):
    model, params = model_params
    return float(fn.accuracy(model.apply(params, X), y))


configs = [{"hidden": h, "lr": lr} for h in (32, 128) for lr in (1e-3, 1e-2)]
if SMOKE:
    configs = configs[:2]
sel = fn.select_hyperparameters(train, configs, val_score=lambda mp: score(mp, Xva, yva),
                                test_score=lambda mp: score(mp, Xte, yte))
for config, s in zip(configs, sel.val_scores):
    print(f"{config}  val accuracy {s:.4f}")
print(f"chosen {sel.best_config}; test accuracy (reported once) {sel.test_score:.4f}")
