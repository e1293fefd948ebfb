"""`funcnet demo`: the main job, on the bundled digits.

Trains an MLP, checks its gradient four ways, draws what each class unit wants to see, and attacks it with
FGSM; everything lands in one output folder.
"""

from __future__ import annotations

import time

from funcnet.cli import _common


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="the main job: train on the bundled digits, check gradients, visualize units, attack",
        description="On the bundled 8x8 digits: train a 64-128-10 ReLU MLP with fn.fit (progress shown), report "
                    "test accuracy, compare its gradient by jax.grad, the funcnet tracer, finite differences and "
                    "the hand-derived delta rule, visualize the 10 class units in one compiled call, and show the "
                    "accuracy drop under FGSM. Writes PNGs and summary.json to the output folder.")
    _common.add_out(p, "funcnet-out/demo")
    _common.add_seed(p)
    p.add_argument("--epochs", type=int, default=40, help="training epochs, with early stopping (default: 40)")
    p.add_argument("--hidden", type=int, default=128, help="hidden width (default: 128)")
    p.add_argument("--steps", type=int, default=200, help="unit-visualization steps (default: 200)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run)


def run(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import funcnet as fn

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    say = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k, flush=True))
    if args.epochs < 1 or args.steps < 1 or args.hidden < 1:
        print("funcnet demo: error: --epochs, --steps and --hidden must be positive")
        return 2
    out = _common.out_dir(args.out)
    k_split, k_train, k_vis = jax.random.split(jax.random.key(args.seed), 3)
    train, val, (Xte, yte) = _common.digits_splits(k_split)
    model = fn.mlp([64, args.hidden, 10], activation="relu")

    # 1. train -----------------------------------------------------------------------------------------
    say(f"[1/4] training {model!r} on {train[0].shape[0]} digits (Adam, batch 32, early stopping) ...")
    t = time.perf_counter()
    params, history = _common.train_digits(model, train, val, k_train, epochs=args.epochs,
                                           progress=False if args.quiet else True)
    timings["train"] = time.perf_counter() - t
    test_acc = float(fn.accuracy(model.apply(params, Xte), yte))
    say(f"      test accuracy {test_acc:.4f} (best epoch {history.best_epoch + 1 if history.best_epoch is not None else '-'}"
        f" of {history.epochs}, {timings['train']:.1f} s)")
    history.to_json(out / "history.json")
    files = ["history.json"]
    try:
        from funcnet.plotting import plot_history

        plot_history(history, out / "history.png")
        files.append("history.png")
    except ImportError as e:
        say(f"      (no plots: {e})")

    # 2. gradient check --------------------------------------------------------------------------------
    say("[2/4] checking the gradient of the loss on 16 test digits: jax.grad vs tracer vs finite differences "
        "vs hand-derived backprop ...")
    t = time.perf_counter()
    probe = fn.mlp([64, 16, 10], activation="relu")  # small enough for 2n finite-difference evaluations
    probe_params = [{"w": l["w"][:, :16] if i == 0 else l["w"][:16], "b": l["b"][:16] if i == 0 else l["b"]}
                    for i, l in enumerate(params)]
    f = fn.manual.mlp_loss(probe, Xte[:16], yte[:16], "softmax_cross_entropy")
    report = fn.check.compare_grads(f, probe_params)
    timings["gradcheck"] = time.perf_counter() - t
    say(str(report))
    (out / "gradcheck.txt").write_text(str(report) + "\n")
    files.append("gradcheck.txt")

    # 3. unit visualization ----------------------------------------------------------------------------
    say(f"[3/4] visualizing the 10 class units ({args.steps} steps each, one compiled call) ...")
    t = time.perf_counter()
    images = fn.inputs.visualize_units(model, params, units=range(10), key=k_vis, steps=args.steps,
                                       learning_rate=0.05, objective="logit", l2=1e-3, tv=0.05,
                                       input_shape=(8, 8), value_range=(0.0, 1.0))
    probs = np.asarray(jax.nn.softmax(model.apply(params, images.reshape(10, 64))))
    timings["visualize"] = time.perf_counter() - t
    say("      model's confidence in each image's own class: "
        + " ".join(f"{k}:{probs[k, k]:.2f}" for k in range(10)))

    # 4. adversarial inputs ----------------------------------------------------------------------------
    say("[4/4] attacking the test set with FGSM (L-inf ball, pixels kept in [0, 1]) ...")
    t = time.perf_counter()
    logits_fn = lambda x: model.apply(params, x)  # one function object: one compile for every eps
    fgsm_rows = []
    x_adv = None
    for eps in (0.05, 0.1, 0.2):
        x_eps = fn.inputs.fgsm(logits_fn, Xte, yte, eps, clip=(0.0, 1.0))
        fgsm_rows.append({"eps": eps, "accuracy": float(fn.accuracy(logits_fn(x_eps), yte))})
        if eps == 0.1:
            x_adv = x_eps
        say(f"      eps {eps:.2f}: test accuracy {test_acc:.4f} -> {fgsm_rows[-1]['accuracy']:.4f}")
    timings["fgsm"] = time.perf_counter() - t

    try:
        from funcnet import plotting as _plot_images

        _plot_images.image_grid(images, [f"{k}: p={probs[k, k]:.2f}" for k in range(10)], out / "class_units.png",
                                normalize="none", title="inputs that maximize each class logit")
        pred_adv = np.asarray(jnp.argmax(logits_fn(x_adv[:8]), -1))
        pairs = jnp.concatenate([Xte[:8], x_adv[:8]]).reshape(16, 8, 8)
        labels = [f"clean: {int(y)}" for y in yte[:8]] + [f"eps 0.1 -> {p}" for p in pred_adv]
        _plot_images.image_grid(pairs, labels, out / "fgsm_examples.png", ncols=8, normalize="none",
                                title="test digits (top) and their FGSM versions (bottom)")
        files += ["class_units.png", "fgsm_examples.png"]
    except ImportError as e:
        say(f"      (no plots: {e})")

    seconds = time.perf_counter() - t0
    summary = {
        "model": repr(model),
        "test_accuracy": test_acc,
        "epochs_run": history.epochs,
        "best_epoch": history.best_epoch,
        "gradcheck_ok": report.ok,
        "gradcheck_max_rel_error": report.max_rel_error,
        "class_unit_confidence": probs.diagonal(),
        "class_unit_predicted": probs.argmax(-1),
        "fgsm": fgsm_rows,
        "timings_s": timings,
        "seconds": seconds,
        "files": files + ["summary.json"],
    }
    _common.write_json(out / "summary.json", summary)
    say(f"done in {seconds:.1f} s; wrote {', '.join(summary['files'])} to {out}")
    return 0 if report.ok else 1
