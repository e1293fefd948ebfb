"""`funcnet visualize`: activation maximization on a digits MLP, written as PNG grids."""

from __future__ import annotations

import argparse
import pathlib
import time

from funcnet.cli import _common

_OBJECTIVES = ("logit", "probability", "log_probability", "activation")


def register(sub, parents=()) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "visualize", parents=list(parents),
        help="draw the inputs that maximize class and hidden units of a digits MLP",
        description="Load a digits model saved by `funcnet train --data digits` or `funcnet demo` (--params), or "
                    "train a 64-H-10 ReLU MLP on the bundled 8x8 digits, then optimize the input, with the weights "
                    "fixed, to maximize each of the 10 class units and the first units of a hidden layer. Writes "
                    "class_units.png, hidden_units.png, objective.png and summary.json to the output folder.")
    _common.add_out(p, "funcnet-out/visualize")
    _common.add_seed(p)
    p.add_argument("--params", default=None, metavar="CHECKPOINT",
                   help="a model checkpoint written by `funcnet train --data digits` or `funcnet demo` "
                        "(checkpoint.npz) to visualize instead of training one")
    p.add_argument("--hidden", type=_common.int_at_least(1), default=64,
                   help="hidden width of the model trained without --params (default: 64)")
    p.add_argument("--epochs", type=_common.int_at_least(1), default=30,
                   help="training epochs without --params (default: 30)")
    p.add_argument("--layer", type=int, default=0,
                   help="hidden layer whose units to draw: 0..L-2, or -L..-2 from the end (default: 0)")
    p.add_argument("--hidden-units", type=_common.int_at_least(1), default=20,
                   help="how many hidden units to draw (default: 20)")
    p.add_argument("--objective", default="logit", choices=_OBJECTIVES, help="class-unit objective (default: logit)")
    p.add_argument("--steps", type=_common.int_at_least(1), default=200, help="optimization steps (default: 200)")
    p.add_argument("--lr", type=_common.real(positive=True), default=0.05, help="Adam learning rate (default: 0.05)")
    p.add_argument("--l2", type=_common.real(0.0), default=1e-3, help="L2 penalty weight, >= 0 (default: 1e-3)")
    p.add_argument("--tv", type=_common.real(0.0), default=0.05,
                   help="total-variation penalty weight, >= 0 (default: 0.05)")
    p.add_argument("--jitter", type=_common.int_at_least(0), default=0,
                   help="random shift in pixels per step, 0..7 (default: 0)")
    _common.add_quiet(p)
    return p


def validate(args) -> None:
    """Every flag, the model file and the layer checked before any training or optimization."""
    if args.jitter > 7:
        raise _common.UsageError("--jitter", f"must be at most 7 on 8x8 digits, got {args.jitter}")
    if args.params is not None:
        if not pathlib.Path(args.params).is_file():
            raise _common.UsageError("--params", f"no such file: {args.params}")
        try:
            args.model_file = _common.load_model(args.params)
        except ValueError as e:
            raise _common.UsageError("--params", _common.error_line(e)) from None
        sizes = args.model_file.sizes
        if sizes[0] != 64 or sizes[-1] != 10:
            raise _common.UsageError("--params", f"{args.params} holds a {'-'.join(map(str, sizes))} MLP trained on "
                                                 f"{args.model_file.data}; visualize needs a digits model (64 inputs, "
                                                 "10 classes), e.g. from `funcnet train --data digits`")
    else:
        args.model_file = None
        sizes = [64, args.hidden, 10]
    n = len(sizes) - 1  # weight layers; hidden layers are 0..n-2
    if n < 2:
        raise _common.UsageError("--params", f"the model {sizes} has no hidden layer to draw")
    if not (0 <= args.layer <= n - 2 or -n <= args.layer <= -2):
        raise _common.UsageError("--layer", f"{args.layer} is not a hidden layer of the {'-'.join(map(str, sizes))} "
                                            f"MLP; hidden layers are 0..{n - 2} (or {-n}..-2)")
    args.out = _common.prepare_out(args.out)


def _model(args, report, k_train, train, val):
    import funcnet as fn

    if args.model_file is not None:
        m = args.model_file
        model = fn.mlp(m.sizes, activation=m.activation)
        report.say(f"loaded {args.params}: {model!r}, trained on {m.data}")
        return model, m.params
    model = fn.mlp([64, args.hidden, 10], activation="relu")
    report.say(f"training {model!r} for {args.epochs} epochs (the first includes compilation) ...")
    params, _ = _common.train_digits(model, train, val, k_train, epochs=args.epochs, progress=not args.quiet)
    return model, params


def run(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import funcnet as fn
    from funcnet import plotting

    t0 = time.perf_counter()
    report = _common.Reporter(args.quiet)
    out = args.out
    k_split, k_train, k_vis = _common.run_keys(args.seed)
    if args.model_file is not None and args.model_file.seed is not None:  # test on what training held out
        k_split = _common.run_keys(args.model_file.seed)[0]
    (Xtr, ytr), val, (Xte, yte) = _common.digits_splits(k_split)
    model, params = _model(args, report, k_train, (Xtr, ytr), val)
    test_acc = float(jnp.mean(jnp.argmax(model.apply(params, Xte), -1) == yte))
    report.say(f"test accuracy {test_acc:.4f}")

    common = dict(key=k_vis, steps=args.steps, learning_rate=args.lr, l2=args.l2, tv=args.tv, jitter=args.jitter,
                  input_shape=(8, 8), value_range=(0.0, 1.0))
    report.say(f"visualizing 10 class units (compiling, then {args.steps} steps in one call) ...")
    classes, hist = fn.inputs.visualize_units(model, params, units=range(10), layer=-1, objective=args.objective,
                                              return_history=True, **common)
    probs = np.asarray(jax.nn.softmax(model.apply(params, classes.reshape(10, 64))))
    plotting.image_grid(classes, [f"{k}: p={probs[k, k]:.2f}" for k in range(10)], out / "class_units.png",
                        normalize="none", title=f"inputs maximizing each class ({args.objective})")
    plotting.plot_objective(hist, out / "objective.png", labels=[str(k) for k in range(10)],
                            title="class-unit objective over steps")

    units = list(range(min(args.hidden_units, model.sizes[args.layer % model.num_layers + 1])))
    report.say(f"visualizing {len(units)} units of hidden layer {args.layer} ...")
    hidden = fn.inputs.visualize_units(model, params, units=units, layer=args.layer, objective="pre_activation",
                                       **common)
    z = np.asarray(model.activations(params, hidden.reshape(len(units), 64))[args.layer]["z"])
    data_max = np.asarray(model.activations(params, Xtr)[args.layer]["z"])[:, units].max(0)
    plotting.image_grid(hidden, [f"unit {u}" for u in units], out / "hidden_units.png", normalize="none",
                        title=f"inputs maximizing layer {args.layer} units")
    summary = {
        "model": repr(model), "sizes": list(model.sizes), "params": args.params, "test_accuracy": test_acc,
        "objective": args.objective, "steps": args.steps, "class_confidence": probs.diagonal(),
        "class_predicted": probs.argmax(-1), "hidden_layer": args.layer, "hidden_units": units,
        "hidden_pre_activation": z[np.arange(len(units)), units], "hidden_pre_activation_data_max": data_max,
        "seconds": time.perf_counter() - t0, "files": ["class_units.png", "hidden_units.png", "objective.png"],
    }
    _common.write_json(out / "summary.json", summary)
    report.result(f"class confidence min {probs.diagonal().min():.3f}; wrote class_units.png, hidden_units.png, "
                  f"objective.png, summary.json to {out} ({summary['seconds']:.1f} s)")
    return 0
