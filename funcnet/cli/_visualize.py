"""`funcnet visualize`: activation maximization on a digits MLP, written as PNG grids."""

from __future__ import annotations

import argparse
import pathlib
import time

from funcnet.cli import _common

_OBJECTIVES = ("margin", "logit", "probability", "log_probability", "activation")
_MAX_JITTER = 7  # pixels, on 8x8 digits
_MAX_ROTATE = 180  # degrees


def register(sub, parents=()) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "visualize", parents=list(parents),
        help="draw the inputs that maximize class and hidden units of a digits MLP",
        description="Load a digits model saved by `funcnet train --data digits` or `funcnet demo` (--params), or "
                    "train a 64-H-10 ReLU MLP on the bundled 8x8 digits, then optimize the input, with the weights "
                    "fixed, to maximize each of the 10 class units (Fourier parametrization, random shift/zoom/rotation, "
                    "margin objective: fn.inputs.visualize_units' defaults) and the first units of a hidden layer. "
                    "Scores the class images against the class mean images and a second network trained from "
                    "another seed. Writes class_units.png, hidden_units.png, objective.png and summary.json to "
                    "the output folder.")
    _common.add_out(p, "funcnet-out/visualize")
    _common.add_seed(p)
    p.add_argument("--params", default=None, metavar="CHECKPOINT",
                   help="a model checkpoint written by `funcnet train --data digits` or `funcnet demo` "
                        "(checkpoint.npz) to visualize instead of training one")
    p.add_argument("--hidden", type=_common.int_at_least(1), default=64,
                   help="hidden width of the model trained without --params (default: 64)")
    p.add_argument("--epochs", type=_common.int_at_least(1), default=30,
                   help="training epochs of the model trained without --params, and of the second network that "
                        "the transfer score needs (default: 30)")
    p.add_argument("--layer", type=int, default=0,
                   help="hidden layer whose units to draw: 0..L-2, or -L..-2 from the end (default: 0)")
    p.add_argument("--hidden-units", type=_common.int_at_least(1), default=20,
                   help="how many hidden units to draw (default: 20)")
    p.add_argument("--objective", default=None, choices=_OBJECTIVES,
                   help="class-unit objective (default: margin, the class logit against log-sum-exp of the others)")
    p.add_argument("--steps", type=_common.int_at_least(1), default=200, help="optimization steps (default: 200)")
    p.add_argument("--lr", type=_common.real(positive=True), default=0.05, help="Adam learning rate (default: 0.05)")
    p.add_argument("--l2", type=_common.real(0.0), default=0.1,
                   help="L2 penalty weight on the class images, >= 0 (default: 0.1)")
    p.add_argument("--tv", type=_common.real(0.0), default=0.0,
                   help="total-variation penalty weight on the class images, >= 0 (default: 0)")
    p.add_argument("--jitter", type=_common.real(0.0), default=0.5,
                   help=f"largest random shift in pixels per step, 0..{_MAX_JITTER} (default: 0.5)")
    p.add_argument("--scale", type=_common.real(0.0, below=1.0), default=0.1,
                   help="largest random relative zoom per step (1 +- scale), in [0, 1) (default: 0.1)")
    p.add_argument("--rotate", type=_common.real(0.0), default=10.0,
                   help=f"largest random rotation in degrees per step, 0..{_MAX_ROTATE} (default: 10)")
    _common.add_quiet(p)
    return p


def validate(args) -> None:
    """Every flag, the model file and the layer checked before any training or optimization."""
    if args.jitter > _MAX_JITTER:
        raise _common.UsageError("--jitter", f"must be at most {_MAX_JITTER} on 8x8 digits, got {args.jitter:g}")
    if args.rotate > _MAX_ROTATE:
        raise _common.UsageError("--rotate", f"must be at most {_MAX_ROTATE} degrees, got {args.rotate:g}")
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


def _hidden_units(model, params, args, key, Xtr, out):
    """The first --hidden-units units of layer --layer, in pixel space without transforms or penalties: for a
    layer-0 unit the exact maximum over the box [0, 1] is known, and the summary compares with the data's maxima."""
    import numpy as np

    import funcnet as fn
    from funcnet import plotting

    units = list(range(min(args.hidden_units, model.sizes[args.layer % model.num_layers + 1])))
    hidden = fn.inputs.visualize_units(model, params, units=units, layer=args.layer, objective="pre_activation",
                                       key=key, steps=args.steps, learning_rate=args.lr, tv=0,
                                       input_shape=(8, 8), value_range=(0.0, 1.0), space="pixel", jitter=0,
                                       scale=0, rotate=0, l2=0)
    z = np.asarray(model.activations(params, hidden.reshape(len(units), 64))[args.layer]["z"])
    data_max = np.asarray(model.activations(params, Xtr)[args.layer]["z"])[:, units].max(0)
    plotting.image_grid(hidden, [f"unit {u}" for u in units], out / "hidden_units.png", vmin=0, vmax=1,
                        title=f"inputs maximizing layer {args.layer} units (pre-activation)",
                        caption=f"pixel space, no transforms; {'-'.join(map(str, model.sizes))} MLP")
    return {"hidden_layer": args.layer, "hidden_units": units,
            "hidden_pre_activation": z[np.arange(len(units)), units], "hidden_pre_activation_data_max": data_max}


def run(args) -> int:
    import jax.numpy as jnp

    from funcnet import plotting
    from funcnet.cli import _class_units

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
    report.say(f"training a second {'-'.join(map(str, model.sizes))} network from another seed for {args.epochs} "
               "epochs (it judges the class images: the transfer score) ...")
    other = _class_units.second_network(model, (Xtr, ytr), val, k_train, epochs=args.epochs)

    objective = args.objective or "margin"
    report.say(f"visualizing 10 class units (compiling, then {args.steps} steps in one call) ...")
    cls = _class_units.class_units(model, params, other, k_vis, (Xtr, ytr), steps=args.steps,
                                   objective=args.objective, learning_rate=args.lr, l2=args.l2, tv=args.tv,
                                   jitter=args.jitter, scale=args.scale, rotate=args.rotate)
    report.say(f"class images: {_class_units.describe(cls)}")
    _class_units.draw(cls, model, out / "class_units.png", objective=objective)
    plotting.plot_objective(cls.history, out / "objective.png", labels=[str(k) for k in range(10)],
                            title=f"class-unit objective ({objective} - penalties) over steps")

    report.say(f"visualizing {min(args.hidden_units, model.sizes[args.layer % model.num_layers + 1])} units of "
               f"hidden layer {args.layer} ...")
    hidden = _hidden_units(model, params, args, k_vis, Xtr, out)
    summary = {
        "model": repr(model), "sizes": list(model.sizes), "params": args.params, "test_accuracy": test_acc,
        "objective": objective, "steps": args.steps,
        "class_recipe": {k: getattr(args, k) for k in ("lr", "l2", "tv", "jitter", "scale", "rotate")},
        "class_confidence": cls.probs.diagonal(),
        "class_predicted": cls.probs.argmax(-1), "class_image_scores": _class_units.summary(cls), **hidden,
        "seconds": time.perf_counter() - t0, "files": ["class_units.png", "hidden_units.png", "objective.png"],
    }
    _common.write_json(out / "summary.json", summary)
    report.result(f"class confidence min {cls.probs.diagonal().min():.3f}; class images: "
                  f"{_class_units.describe(cls)}; wrote class_units.png, hidden_units.png, objective.png, "
                  f"summary.json to {out} ({summary['seconds']:.1f} s)")
    return 0
