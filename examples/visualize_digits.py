"""Which input does each class unit of a digits MLP like best? Activation maximization in one compiled call.

    python examples/visualize_digits.py [--epochs 30] [--steps 200] [--out DIR]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import funcnet as fn


def train_digits(model, data, key, epochs):
    """Train ``model`` on ``data = (X, y)`` with Adam and ``fn.fit``; returns the parameters."""
    k_init, k_fit = jax.random.split(key)
    loss_fn = lambda p, b: fn.losses.softmax_cross_entropy(model.apply(p, b[0]), b[1])
    params, _ = fn.fit(loss_fn, model.init(k_init), data, optimizer=optax.adam(3e-3), epochs=epochs,
                       batch_size=64, key=k_fit, progress=False)
    return params


def class_images(model, params, key, steps, **options):
    """The 10 class images of ``model`` (margin objective, shift/zoom/rotation; Fourier space unless ``options``
    say otherwise)."""
    return fn.inputs.visualize_units(model, params, units=range(10), key=key, steps=steps, input_shape=(8, 8),
                                     value_range=(0.0, 1.0), return_history=True, **options)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--out", default=None, help="folder for the PNG grids (needs matplotlib)")
    args = ap.parse_args(argv)

    (Xtr, ytr), _, _ = jax.tree.map(jnp.asarray, fn.datasets.split(jax.random.key(0), fn.datasets.digits()))
    model = fn.mlp([64, args.hidden, 10], activation="relu")
    params = train_digits(model, (Xtr, ytr), jax.random.key(1), args.epochs)
    other = train_digits(model, (Xtr, ytr), jax.random.key(7), args.epochs)      # a second seed, for transfer

    # The data as the prior: the images live in the training digits' principal components, z = μ + Σ^{1/2}u,
    # with the Gaussian log-prior ½‖u‖² (weight 0.3) against drifting far from typical digits.
    basis = fn.inputs.pca_basis(Xtr, value_range=(0.0, 1.0))
    classes, history = class_images(model, params, jax.random.key(2), args.steps, space="pca", basis=basis,
                                    prior=0.3)
    probs = np.asarray(jax.nn.softmax(model.apply(params, classes.reshape(10, 64))))
    print("class image -> predicted class (confidence):")
    print("  " + "  ".join(f"{k}->{probs[k].argmax()} ({probs[k, k]:.2f})" for k in range(10)))
    scores = fn.inputs.class_image_scores(classes, Xtr, ytr, lambda x: model.apply(other, x))
    print(f"principal components + prior: {scores}")
    fourier, _ = class_images(model, params, jax.random.key(2), args.steps)
    fourier_scores = fn.inputs.class_image_scores(fourier, Xtr, ytr, lambda x: model.apply(other, x))
    print(f"data-free defaults (Fourier): {fourier_scores}")
    old, _ = class_images(model, params, jax.random.key(2), args.steps, objective="logit", l2=1e-3, tv=0.05,
                          space="pixel", jitter=0, scale=0, rotate=0)
    old_scores = fn.inputs.class_image_scores(old, Xtr, ytr, lambda x: model.apply(other, x))
    print(f"pixel space, logit, no transforms: {old_scores}")
    recipe = dict(key=jax.random.key(2), steps=args.steps, input_shape=(8, 8), value_range=(0.0, 1.0))

    hidden = fn.inputs.visualize_units(model, params, units=range(10), layer=0, objective="pre_activation",
                                       **recipe)
    z_vis = np.asarray(model.activations(params, hidden.reshape(10, 64))[0]["z"]).diagonal()
    z_data = np.asarray(model.activations(params, Xtr)[0]["z"])[:, :10].max(0)
    print("hidden units 0-9: pre-activation at the visualization vs. best over the training data")
    print("  " + "  ".join(f"{v:.1f}/{d:.1f}" for v, d in zip(z_vis, z_data)))
    if args.out:
        fn.plotting.image_grid(classes, [str(k) for k in range(10)], f"{args.out}/digits_class_units.png",
                               vmin=0, vmax=1, title="the input each class unit likes best (pixel values)",
                               caption=f"network confidence in the image's own class: min {probs.diagonal().min():.2f}; "
                                       f"mean correlation with the class mean image {scores.mean_correlation:.2f} "
                                       f"({scores.mean_centered:.2f} centered on the data mean)")
        fn.plotting.image_grid(fourier, [str(k) for k in range(10)], f"{args.out}/digits_class_units_fourier.png",
                               vmin=0, vmax=1, title="the same, data-free defaults (Fourier 1/f², no data prior)",
                               caption=f"mean correlation with the class mean image "
                                       f"{fourier_scores.mean_correlation:.2f} "
                                       f"({fourier_scores.mean_centered:.2f} centered on the data mean)")
        fn.plotting.image_grid(old, [str(k) for k in range(10)], f"{args.out}/digits_class_units_plain.png",
                               vmin=0, vmax=1, title="the same, pixel space, logit objective, no transforms",
                               caption=f"mean correlation with the class mean image {old_scores.mean_correlation:.2f} "
                                       f"({old_scores.mean_centered:.2f} centered on the data mean)")
        fn.plotting.image_grid(hidden, [f"unit {u}" for u in range(10)], f"{args.out}/digits_hidden_units.png",
                               vmin=0, vmax=1, title="inputs maximizing hidden units 0-9 (pre-activation)")
        fn.plotting.plot_objective(history, f"{args.out}/digits_objective.png", labels=[str(k) for k in range(10)],
                                 title="class logit - penalties over steps")
        print(f"wrote PNGs to {args.out}")
    return classes, probs, scores, old_scores, fourier_scores


if __name__ == "__main__":
    main()
