"""`funcnet gradcheck`: compare jax.grad, the tracer, finite differences and the delta rule on an MLP loss."""

from __future__ import annotations

import argparse

from funcnet.cli import _common

_LOSSES = ("half_mse", "mse", "softmax_cross_entropy", "binary_cross_entropy")
_METHODS = ("jax", "tracer", "numerical", "manual")


def register(sub, parents=()) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "gradcheck", parents=list(parents), help="check an MLP loss's gradient four ways and print the comparison",
        description="Build an MLP of the given sizes, draw parameters and a random batch, and compute the "
                    "loss gradient with jax.grad, funcnet's tracer, central finite differences and the "
                    "hand-derived delta rule, all in float64. Prints a table per parameter leaf and pair of "
                    "methods, writes report.json, and exits with status 1 if any pair disagrees.")
    acts = _common.activation_names()
    p.add_argument("--sizes", type=_common.int_at_least(1), nargs="+", default=[4, 5, 3], metavar="N",
                   help="layer widths n_0 ... n_L, at least two, each >= 1 (default: 4 5 3)")
    p.add_argument("--activation", default="tanh", choices=(*acts, "all"), metavar="NAME",
                   help=f"hidden activation ({', '.join(acts)}), or 'all' to check each in turn (default: tanh)")
    p.add_argument("--output-activation", default="identity", choices=acts, metavar="NAME",
                   help="output activation (default: identity, i.e. logits)")
    p.add_argument("--loss", default="half_mse", choices=_LOSSES, help="loss (default: half_mse)")
    p.add_argument("--batch", type=_common.int_at_least(1), default=8,
                   help="examples in the random batch (default: 8)")
    p.add_argument("--init", default="he", choices=_common.INIT_NAMES, help="weight init scheme (default: he)")
    p.add_argument("--methods", nargs="+", default=None, choices=_METHODS,
                   help="two or more methods to compare (default: all four)")
    p.add_argument("--eps", type=_common.real(positive=True), default=None,
                   help="finite-difference step, > 0 (default: per dtype, 6.1e-6·max(1,|x|) in float64)")
    _common.add_seed(p)
    _common.add_out(p, "funcnet-out/gradcheck")
    return p


def validate(args) -> None:
    if len(args.sizes) < 2:
        raise _common.UsageError("--sizes", f"needs at least two widths (inputs and outputs), got {args.sizes}")
    if args.methods is not None:
        args.methods = list(dict.fromkeys(args.methods))  # each method once
    if args.methods is not None and len(args.methods) < 2:
        raise _common.UsageError("--methods", f"needs two or more different methods to compare, got "
                                              f"{' '.join(args.methods)} (choose from {', '.join(_METHODS)})")
    if args.loss == "softmax_cross_entropy" and args.sizes[-1] < 2:
        raise _common.UsageError("--sizes", "softmax_cross_entropy needs at least 2 output units")
    args.out = _common.prepare_out(args.out)


def _problem(args, activation: str, params=None):
    """The model, its loss as an `funcnet.manual.MLPLoss` on a seeded random batch, and parameters."""
    import jax
    import numpy as np

    import funcnet as fn

    model = fn.mlp(args.sizes, activation=activation, output_activation=args.output_activation, init=args.init)
    if params is None:  # the same draw for every activation (shapes do not depend on it)
        params = jax.tree.map(np.asarray, jax.jit(model.init)(jax.random.key(args.seed)))
    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(args.batch, args.sizes[0]))
    k = args.sizes[-1]
    y = rng.integers(0, k, size=args.batch) if args.loss == "softmax_cross_entropy" else rng.uniform(size=(args.batch, k))
    return model, fn.manual.mlp_loss(model, x, y, args.loss), params


def run(args) -> int:
    import funcnet as fn

    out = args.out
    activations = _common.distinct_activations() if args.activation == "all" else (args.activation,)
    results, all_ok, params = {}, True, None
    for act in activations:
        model, f, params = _problem(args, act, params)
        report = fn.check.compare_grads(f, params, methods=args.methods, eps=args.eps)
        print(f"== {model!r}, loss {args.loss}, batch {args.batch}, "
              f"{fn.param_count(params)} parameters")
        print(report)
        print()
        results[act] = report.to_dict()
        all_ok &= report.ok
    if len(activations) > 1:
        for act, r in results.items():
            print(f"{act:12s} {'ok' if r['ok'] else 'MISMATCH':8s} max rel error {float(r['max_rel_error']):.2e}")
    path = _common.write_json(out / "report.json", {
        "sizes": args.sizes, "loss": args.loss, "output_activation": args.output_activation,
        "batch": args.batch, "seed": args.seed, "ok": all_ok, "reports": results,
    })
    print(f"{'all methods agree' if all_ok else 'GRADIENTS DISAGREE'}; wrote {path}")
    return 0 if all_ok else 1
