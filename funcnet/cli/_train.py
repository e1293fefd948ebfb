"""`funcnet train`: train an MLP on a bundled data set with fn.fit; write history, plot and checkpoint."""

from __future__ import annotations

import argparse
import time

from funcnet.cli import _common

_DATASETS = ("digits", "moons", "xor")
_OPTIMIZERS = ("adam", "sgd", "momentum", "ema_momentum", "rmsprop", "adamw")


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train an MLP with funcnet.fit and write history, loss curves and a checkpoint",
        description="Train an MLP on a bundled data set (split 80/10/10 into train/validation/test) with "
                    "mini-batch SGD, then write history.json, history.png, checkpoint.npz and summary.json "
                    "to the output folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", choices=_DATASETS, default="digits", help="data set")
    p.add_argument("--hidden", default="128",
                   help="hidden layer widths, comma-separated (input and output widths come from the data); "
                        "'' for none")
    p.add_argument("--activation", default="relu", help="hidden activation (see funcnet.activations)")
    p.add_argument("--optimizer", choices=_OPTIMIZERS, default="adam", help="optimizer")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate (>= 0)")
    p.add_argument("--momentum", type=float, default=0.9, help="momentum / alpha for momentum optimizers")
    p.add_argument("--epochs", type=int, default=40, help="epochs")
    p.add_argument("--batch-size", type=int, default=32, help="mini-batch size; 0 for full batch")
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience (epochs)")
    _common.add_seed(p)
    _common.add_out(p, "funcnet-out/train")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run)


def _optimizer(name: str, lr: float, momentum: float):
    import optax

    import funcnet as fn

    if lr < 0:
        raise SystemExit(f"funcnet train: --lr must be >= 0, got {lr}")
    factory = {
        "adam": optax.adam,
        "adamw": optax.adamw,
        "sgd": optax.sgd,
        "rmsprop": optax.rmsprop,
        "momentum": lambda learning_rate: optax.sgd(learning_rate, momentum=momentum),
        "ema_momentum": lambda learning_rate: fn.optim.ema_momentum(learning_rate, alpha=momentum),
    }[name]
    return optax.inject_hyperparams(factory)(learning_rate=lr)  # records the lr per epoch


def run(args) -> int:
    import jax
    import jax.numpy as jnp

    import funcnet as fn
    from funcnet.plotting import plot_history

    t0 = time.perf_counter()
    out = _common.out_dir(args.out)
    key = jax.random.key(args.seed)
    k_data, k_split, k_init, k_fit = jax.random.split(key, 4)
    if args.data == "digits":
        X, y = fn.datasets.digits()
    elif args.data == "moons":
        X, y = fn.datasets.moons(k_data, 400, 0.15)
    else:
        X, y = fn.datasets.xor()
        y = y[:, 0].astype("int32")
    n_classes = int(jnp.max(jnp.asarray(y))) + 1
    if args.data == "xor":  # four points: train, validate and test on all of them
        train = val = test = (jnp.asarray(X), jnp.asarray(y))
    else:
        train, val, test = jax.tree.map(jnp.asarray, fn.datasets.split(k_split, (X, y)))
    try:
        hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
    except ValueError:
        raise SystemExit(f"funcnet train: --hidden must be comma-separated ints, got {args.hidden!r}") from None
    sizes = [X.shape[1], *hidden, n_classes]
    model = fn.mlp(sizes, activation=args.activation)
    params = model.init(k_init)

    def loss_fn(p, batch):
        return fn.losses.softmax_cross_entropy(model.apply(p, batch[0]), batch[1])

    def acc(p, batch):
        return fn.accuracy(model.apply(p, batch[0]), batch[1])

    batch_size = None if args.batch_size == 0 else min(args.batch_size, train[0].shape[0])
    ckpt = out / "checkpoint.npz"
    params, history = fn.fit(
        loss_fn, params, train, optimizer=_optimizer(args.optimizer, args.lr, args.momentum), epochs=args.epochs,
        batch_size=batch_size, key=k_fit, val_data=val, patience=args.patience, metrics={"accuracy": acc},
        progress=False if args.quiet else True,
    )
    fn.save(ckpt, {"params": params, "sizes": list(sizes), "activation": args.activation})
    _common.write_json(out / "history.json", history.to_dict())
    plot_history(history, out / "history.png", title=f"{args.data}: MLP {sizes}, {args.optimizer}")
    test_acc = float(acc(params, test))
    summary = {"model": repr(model), "data": args.data, "optimizer": args.optimizer, "lr": args.lr,
               "epochs_run": history.epochs, "best_epoch": history.best_epoch, "stop_reason": history.stop_reason,
               "test_accuracy": test_acc, "seconds": time.perf_counter() - t0}
    _common.write_json(out / "summary.json", summary)
    print(f"test accuracy {test_acc:.4f}; wrote history.json, history.png, checkpoint.npz, summary.json to {out}")
    return 0
