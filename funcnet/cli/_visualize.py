"""`funcnet visualize`: activation maximization on a digits MLP, written as PNG grids."""

from __future__ import annotations

import time

from funcnet.cli import _common


def register(sub) -> None:
    p = sub.add_parser(
        "visualize", help="draw the inputs that maximize class and hidden units of a digits MLP",
        description="Train (or load with --params) a 64-H-10 ReLU MLP on the bundled 8x8 digits, then optimize "
                    "the input, with the weights fixed, to maximize each of the 10 class units and the first "
                    "hidden units of a layer. Writes class_units.png, hidden_units.png, objective.png and "
                    "summary.json to the output folder.")
    _common.add_out(p, "funcnet-out/visualize")
    _common.add_seed(p)
    p.add_argument("--params", default=None, help="load parameters with fn.load instead of training "
                                                  "(a list of {'w', 'b'} layers with input width 64)")
    p.add_argument("--hidden", type=int, default=64, help="hidden width of the trained model (default: 64)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    p.add_argument("--layer", type=int, default=0, help="hidden layer whose units to draw (default: 0)")
    p.add_argument("--hidden-units", type=int, default=20, help="how many hidden units to draw (default: 20)")
    p.add_argument("--objective", default="logit", choices=["logit", "probability", "log_probability", "activation"],
                   help="class-unit objective (default: logit)")
    p.add_argument("--steps", type=int, default=200, help="optimization steps (default: 200)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default: 0.05)")
    p.add_argument("--l2", type=float, default=1e-3, help="L2 penalty weight (default: 1e-3)")
    p.add_argument("--tv", type=float, default=0.05, help="total-variation penalty weight (default: 0.05)")
    p.add_argument("--jitter", type=int, default=0, help="random shift in pixels per step (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run)


def run(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import funcnet as fn
    from funcnet import plotting as _plot_images

    t0 = time.perf_counter()
    if args.steps < 1 or args.hidden_units < 1:
        print("funcnet visualize: error: --steps and --hidden-units must be positive")
        return 2
    say = (lambda *a: None) if args.quiet else print
    out = _common.out_dir(args.out)
    key = jax.random.key(args.seed)
    k_split, k_train, k_vis = jax.random.split(key, 3)
    (Xtr, ytr), val, (Xte, yte) = _common.digits_splits(k_split)
    if args.params:
        params = fn.load(args.params)
        sizes = [params[0]["w"].shape[0]] + [layer["w"].shape[1] for layer in params]
        model = fn.mlp(sizes, activation="relu")
        model.check_params(params)
        say(f"loaded {args.params}: {model!r}")
    else:
        model = fn.mlp([64, args.hidden, 10], activation="relu")
        say(f"training {model!r} for {args.epochs} epochs ...")
        params, _ = _common.train_digits(model, (Xtr, ytr), val, k_train, epochs=args.epochs,
                                         progress=False if args.quiet else None)
    if not -model.num_layers < args.layer < model.num_layers - 1:
        print(f"funcnet visualize: error: --layer {args.layer} is not a hidden layer of {model!r}; "
              f"hidden layers are 0..{model.num_layers - 2} (or {-model.num_layers}..-2)")
        return 2
    test_acc = float(jnp.mean(jnp.argmax(model.apply(params, Xte), -1) == yte))
    say(f"test accuracy {test_acc:.4f}")

    common = dict(key=k_vis, steps=args.steps, learning_rate=args.lr, l2=args.l2, tv=args.tv, jitter=args.jitter,
                  input_shape=(8, 8), value_range=(0.0, 1.0))
    say(f"visualizing 10 class units ({args.steps} steps, one compiled call) ...")
    classes, hist = fn.inputs.visualize_units(model, params, units=range(10), layer=-1, objective=args.objective,
                                              return_history=True, **common)
    probs = np.asarray(jax.nn.softmax(model.apply(params, classes.reshape(10, 64))))
    labels = [f"{k}: p={probs[k, k]:.2f}" for k in range(10)]
    _plot_images.image_grid(classes, labels, out / "class_units.png", normalize="none",
                            title=f"inputs maximizing each class ({args.objective})")
    _plot_images.plot_objective(hist, out / "objective.png", labels=[str(k) for k in range(10)],
                                title="class-unit objective over steps")

    units = list(range(min(args.hidden_units, model.sizes[args.layer % model.num_layers + 1])))
    say(f"visualizing {len(units)} units of layer {args.layer} ...")
    hidden = fn.inputs.visualize_units(model, params, units=units, layer=args.layer, objective="pre_activation", **common)
    acts = np.asarray(model.activations(params, hidden.reshape(len(units), 64))[args.layer]["z"])[np.arange(len(units)), units]
    data_max = np.asarray(model.activations(params, Xtr)[args.layer]["z"])[:, units].max(0)
    _plot_images.image_grid(hidden, [f"unit {u}" for u in units], out / "hidden_units.png", normalize="none",
                            title=f"inputs maximizing layer {args.layer} units")
    summary = {
        "model": repr(model), "test_accuracy": test_acc, "objective": args.objective, "steps": args.steps,
        "class_confidence": probs.diagonal(), "class_predicted": probs.argmax(-1),
        "hidden_layer": args.layer, "hidden_units": units, "hidden_pre_activation": acts,
        "hidden_pre_activation_data_max": data_max, "seconds": time.perf_counter() - t0,
        "files": ["class_units.png", "hidden_units.png", "objective.png"],
    }
    _common.write_json(out / "summary.json", summary)
    say(f"class confidence min {probs.diagonal().min():.3f}; wrote {out}/class_units.png, hidden_units.png, "
        f"objective.png, summary.json ({summary['seconds']:.1f} s)")
    return 0
