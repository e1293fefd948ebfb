"""`funcnet train`: train an MLP on a bundled data set with fn.fit; write history, plot and model checkpoint."""

from __future__ import annotations

import argparse
import time

from funcnet.cli import _common

_DATASETS = ("digits", "moons", "xor")
_OPTIMIZERS = ("adam", "sgd", "momentum", "ema_momentum", "rmsprop", "adamw")


def register(sub, parents=()) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train", parents=list(parents),
        help="train an MLP with funcnet.fit and write history, loss curves and a model checkpoint",
        description="Train an MLP on a bundled data set (split 80/10/10 into train/validation/test) with "
                    "mini-batch SGD, then write history.json, history.png, checkpoint.npz (the model: params, "
                    "sizes, activation, data; `funcnet visualize --params` reads it) and summary.json "
                    "to the output folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", choices=_DATASETS, default="digits", help="data set")
    p.add_argument("--hidden", type=_common.widths, default="128",
                   help="hidden layer widths, comma-separated (input and output widths come from the data); "
                        "'' for none")
    p.add_argument("--activation", default="relu", choices=_common.activation_names(), metavar="NAME",
                   help=f"hidden activation, one of {', '.join(_common.activation_names())}")
    p.add_argument("--optimizer", choices=_OPTIMIZERS, default="adam", help="optimizer")
    p.add_argument("--lr", type=_common.real(positive=True), default=3e-3, help="learning rate (> 0)")
    p.add_argument("--momentum", type=_common.real(0.0, below=1.0), default=0.9,
                   help="momentum / alpha for momentum optimizers, in [0, 1)")
    p.add_argument("--epochs", type=_common.int_at_least(1), default=40, help="epochs (>= 1)")
    p.add_argument("--batch-size", type=_common.int_at_least(0), default=32, help="mini-batch size; 0 for full batch")
    p.add_argument("--patience", type=_common.int_at_least(1), default=None,
                   help="early-stopping patience in epochs (>= 1; default: no early stopping)")
    _common.add_seed(p)
    _common.add_out(p, "funcnet-out/train")
    _common.add_quiet(p)
    return p


def validate(args) -> None:
    args.out = _common.prepare_out(args.out)


def _optimizer(name: str, lr: float, momentum: float):
    import optax

    import funcnet as fn

    factory = {
        "adam": optax.adam,
        "adamw": optax.adamw,
        "sgd": optax.sgd,
        "rmsprop": optax.rmsprop,
        "momentum": lambda learning_rate: optax.sgd(learning_rate, momentum=momentum),
        "ema_momentum": lambda learning_rate: fn.optim.ema_momentum(learning_rate, alpha=momentum),
    }[name]
    return optax.inject_hyperparams(factory)(learning_rate=lr)  # records the lr per epoch


def _data(name: str, k_data, k_split):
    """``(train, val, test, n_classes)`` for a bundled data set, as JAX arrays."""
    import jax
    import jax.numpy as jnp

    import funcnet as fn

    if name == "digits":
        X, y = fn.datasets.digits()
    elif name == "moons":
        X, y = fn.datasets.moons(k_data, 400, 0.15)
    else:
        X, y = fn.datasets.xor()
        y = y[:, 0].astype("int32")
    n_classes = int(jnp.max(jnp.asarray(y))) + 1
    if name == "xor":  # four points: train, validate and test on all of them
        train = val = test = (jnp.asarray(X), jnp.asarray(y))
    else:
        train, val, test = jax.tree.map(jnp.asarray, fn.datasets.split(k_split, (X, y)))
    return train, val, test, n_classes


def run(args) -> int:
    import jax

    import funcnet as fn
    from funcnet.plotting import plot_history

    t0 = time.perf_counter()
    report = _common.Reporter(args.quiet)
    out = args.out
    k_split, k_train, k_data = _common.run_keys(args.seed)  # digits: the split demo and visualize use
    k_init, k_fit = jax.random.split(k_train)
    train, val, test, n_classes = _data(args.data, k_data, k_split)
    sizes = [int(train[0].shape[1]), *args.hidden, n_classes]
    model = fn.mlp(sizes, activation=args.activation)

    def loss_fn(p, batch):
        return fn.losses.softmax_cross_entropy(model.apply(p, batch[0]), batch[1])

    def acc(p, batch):
        return fn.accuracy(model.apply(p, batch[0]), batch[1])

    batch_size = None if args.batch_size == 0 else min(args.batch_size, train[0].shape[0])
    report.say(f"training {model!r} on {args.data} ({train[0].shape[0]} examples) for up to {args.epochs} epochs; "
               "the first epoch includes compilation ...")
    params, history = fn.fit(
        loss_fn, model.init(k_init), train, optimizer=_optimizer(args.optimizer, args.lr, args.momentum),
        epochs=args.epochs, batch_size=batch_size, key=k_fit, val_data=val, patience=args.patience,
        metrics={"accuracy": acc}, progress=not args.quiet,
    )
    _common.save_model(out / "checkpoint.npz", params, sizes, args.activation, args.data, args.seed)
    _common.write_json(out / "history.json", history.to_dict())
    plot_history(history, out / "history.png", title=f"{args.data}: MLP {sizes}, {args.optimizer}")
    test_acc = float(acc(params, test))
    summary = {"model": repr(model), "sizes": sizes, "activation": args.activation, "data": args.data,
               "optimizer": args.optimizer, "lr": args.lr, "epochs_run": history.epochs,
               "best_epoch": _common.best_epoch(history), "stop_reason": history.stop_reason,
               "test_accuracy": test_acc, "seconds": time.perf_counter() - t0}
    _common.write_json(out / "summary.json", summary)
    report.result(f"test accuracy {test_acc:.4f} ({_common.describe_best(history)}); wrote history.json, "
                  f"history.png, checkpoint.npz, summary.json to {out}")
    return 0
