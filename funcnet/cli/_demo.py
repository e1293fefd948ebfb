"""`funcnet demo`: the main job, on the bundled digits.

Trains an MLP, checks its gradient four ways, draws what each class unit wants to see (scored against the class
mean images and a second network), and attacks it with FGSM; everything lands in one output folder.
"""

from __future__ import annotations

import argparse
import time

from funcnet.cli import _common

_FULL = {"epochs": 40, "hidden": 128, "steps": 200}
_QUICK = {"epochs": 3, "hidden": 32, "steps": 30}


def register(sub, parents=()) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo", parents=list(parents),
        help="the main job: train on the bundled digits, check gradients, visualize units, attack",
        description="On the bundled 8x8 digits: train a 64-H-10 ReLU MLP with fn.fit (progress shown), report "
                    "test accuracy, compare the gradient of that trained network's loss by jax.grad, the funcnet "
                    "tracer, finite differences and the hand-derived delta rule, visualize the 10 class units in "
                    "one compiled call and score the images (correlation with each class's mean image; how many "
                    "a second network trained from another seed classifies as their class), and show the "
                    "accuracy drop under FGSM. Writes checkpoint.npz (the model, "
                    "for `funcnet visualize --params`), PNGs, gradcheck.txt and summary.json to the output folder.")
    _common.add_out(p, "funcnet-out/demo")
    _common.add_seed(p)
    p.add_argument("--epochs", type=_common.int_at_least(1), default=None,
                   help="training epochs, with early stopping (default: 40; 3 with --quick)")
    p.add_argument("--hidden", type=_common.int_at_least(1), default=None,
                   help="hidden width (default: 128; 32 with --quick)")
    p.add_argument("--steps", type=_common.int_at_least(1), default=None,
                   help="unit-visualization steps (default: 200; 30 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke size, a few seconds after start-up: 3 epochs, hidden width 32, 30 steps")
    _common.add_quiet(p)
    return p


def validate(args) -> None:
    size = _QUICK if args.quick else _FULL
    for flag, value in size.items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)
    args.out = _common.prepare_out(args.out)


def _gradcheck(model, params, X, y, report, out):
    """compare_grads on the trained network's loss over 16 test digits; writes gradcheck.txt."""
    import funcnet as fn

    sizes = "-".join(map(str, model.sizes))
    report.say(f"[2/4] checking the gradient of the trained {sizes} network's loss on 16 test digits: "
               "jax.grad vs tracer vs finite differences vs hand-derived backprop ...")
    f = fn.manual.mlp_loss(model, X[:16], y[:16], "softmax_cross_entropy")
    result = fn.check.compare_grads(f, params)
    header = (f"Gradient check of the trained network {model!r} (layer sizes {sizes}, "
              f"{fn.param_count(params)} parameters): softmax cross-entropy on 16 test digits, float64.")
    report.say(str(result))
    (out / "gradcheck.txt").write_text(header + "\n\n" + str(result) + "\n")
    return result


def run(args) -> int:
    import funcnet as fn

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    report = _common.Reporter(args.quiet)
    out = args.out
    k_split, k_train, k_vis = _common.run_keys(args.seed)
    report.say("loading the bundled digits ...")
    train, val, (Xte, yte) = _common.digits_splits(k_split)
    model = fn.mlp([64, args.hidden, 10], activation="relu")

    # 1. train -----------------------------------------------------------------------------------------
    report.say(f"[1/4] training {model!r} on {train[0].shape[0]} digits (Adam, batch 32, early stopping); "
               "the first epoch includes compilation ...")
    t = time.perf_counter()
    params, history = _common.train_digits(model, train, val, k_train, epochs=args.epochs, progress=not args.quiet)
    timings["train"] = time.perf_counter() - t
    test_acc = float(fn.accuracy(model.apply(params, Xte), yte))
    report.say(f"      test accuracy {test_acc:.4f} ({_common.describe_best(history)}, {timings['train']:.1f} s)")
    _common.save_model(out / "checkpoint.npz", params, model.sizes, "relu", "digits", args.seed)
    _common.write_json(out / "history.json", history.to_dict())
    from funcnet.plotting import plot_history

    plot_history(history, out / "history.png")

    # 2. gradient check, 3. unit visualization, 4. adversarial inputs ------------------------------------
    t = time.perf_counter()
    check = _gradcheck(model, params, Xte, yte, report, out)
    timings["gradcheck"] = time.perf_counter() - t
    t = time.perf_counter()
    units, scores = _visualize_classes(model, params, (train, val), k_train, k_vis, args, report, out)
    timings["visualize"] = time.perf_counter() - t
    t = time.perf_counter()
    fgsm_rows = _fgsm(model, params, Xte, yte, test_acc, report, out)
    timings["fgsm"] = time.perf_counter() - t

    seconds = time.perf_counter() - t0
    files = ["checkpoint.npz", "history.json", "history.png", "gradcheck.txt", "class_units.png",
             "fgsm_examples.png", "summary.json"]
    summary = {
        "model": repr(model), "sizes": list(model.sizes), "test_accuracy": test_acc, "epochs_run": history.epochs,
        "best_epoch": _common.best_epoch(history), "gradcheck_ok": check.ok,
        "gradcheck_max_rel_error": check.max_rel_error, "class_unit_confidence": units.probs.diagonal(),
        "class_unit_predicted": units.probs.argmax(-1), "class_image_scores": scores, "fgsm": fgsm_rows,
        "timings_s": timings, "seconds": seconds, "files": files,
    }
    _common.write_json(out / "summary.json", summary)
    verdict = "gradients agree" if check.ok else "GRADIENTS DISAGREE (see gradcheck.txt)"
    report.result(f"test accuracy {test_acc:.4f}, {verdict}, class images: correlation with the class mean images "
                  f"{scores['mean_correlation']:.2f}, transfer {scores['transfer']}/10; FGSM eps 0.1 accuracy "
                  f"{fgsm_rows[1]['accuracy']:.4f}; done in {seconds:.1f} s; wrote {', '.join(files)} to {out}")
    return 0 if check.ok else 1


def _visualize_classes(model, params, data, k_train, k_vis, args, report, out):
    """The 10 class-unit images (one compiled call, visualize_units' defaults), scored against the class mean
    images and a second network trained from another seed, drawn to class_units.png."""
    from funcnet.cli import _class_units

    train, val = data
    report.say(f"[3/4] training a second {'-'.join(map(str, model.sizes))} network from another seed (it judges "
               f"the class images), then visualizing the 10 class units (compiling, then {args.steps} steps in "
               "one call) ...")
    other = _class_units.second_network(model, train, val, k_train, epochs=args.epochs)
    units = _class_units.class_units(model, params, other, k_vis, train, steps=args.steps)
    report.say("      model's confidence in each image's own class: "
               + " ".join(f"{k}:{units.probs[k, k]:.2f}" for k in range(10)))
    report.say(f"      class images: {_class_units.describe(units)}")
    _class_units.draw(units, model, out / "class_units.png", objective="margin")
    return units, _class_units.summary(units)


def _fgsm(model, params, X, y, test_acc: float, report, out) -> list[dict]:
    """Accuracy under FGSM for three eps; eight examples at eps 0.1 drawn to fgsm_examples.png."""
    import jax.numpy as jnp
    import numpy as np

    import funcnet as fn
    from funcnet import plotting

    report.say("[4/4] attacking the test set with FGSM (L-inf ball, pixels kept in [0, 1]) ...")
    logits_fn = lambda x: model.apply(params, x)  # one function object: one compile for every eps
    rows, x_adv = [], None
    for eps in (0.05, 0.1, 0.2):
        x_eps = fn.inputs.fgsm(logits_fn, X, y, eps, clip=(0.0, 1.0))
        rows.append({"eps": eps, "accuracy": float(fn.accuracy(logits_fn(x_eps), y))})
        x_adv = x_eps if eps == 0.1 else x_adv
        report.say(f"      eps {eps:.2f}: test accuracy {test_acc:.4f} -> {rows[-1]['accuracy']:.4f}")
    pred_adv = np.asarray(jnp.argmax(logits_fn(x_adv[:8]), -1))
    pairs = jnp.concatenate([X[:8], x_adv[:8]]).reshape(16, 8, 8)
    labels = [f"clean: {int(v)}" for v in y[:8]] + [f"eps 0.1 -> {p}" for p in pred_adv]
    plotting.image_grid(pairs, labels, out / "fgsm_examples.png", ncols=8, normalize="none",
                        title="test digits (top) and their FGSM versions (bottom)")
    return rows
