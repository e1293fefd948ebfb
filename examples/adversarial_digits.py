"""Adversarial digits: FGSM and PGD move each test image within an ε-ball until the MLP misreads it.

    python examples/adversarial_digits.py [--epochs 30] [--out DIR]
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--pgd-steps", type=int, default=20)
    ap.add_argument("--out", default=None, help="folder for the PNG grid (needs matplotlib)")
    args = ap.parse_args(argv)

    (Xtr, ytr), _, (Xte, yte) = jax.tree.map(jnp.asarray, fn.datasets.split(jax.random.key(0), fn.datasets.digits()))
    model = fn.mlp([64, 64, 10], activation="relu")
    params = train_digits(model, (Xtr, ytr), jax.random.key(1), args.epochs)
    logits_fn = lambda x: model.apply(params, x)       # reuse one function object: one compile per attack

    def accuracy(X):
        return float(jnp.mean(jnp.argmax(logits_fn(X), -1) == yte))

    rows = [("clean", 0.0, accuracy(Xte))]
    for eps in (0.05, 0.1, 0.2):
        rows.append(("FGSM", eps, accuracy(fn.inputs.fgsm(logits_fn, Xte, yte, eps, clip=(0.0, 1.0)))))
        x_pgd = fn.inputs.pgd(logits_fn, Xte, yte, eps, args.pgd_steps, random_start=True,
                              key=jax.random.key(3), clip=(0.0, 1.0))
        rows.append((f"PGD-{args.pgd_steps}", eps, accuracy(x_pgd)))
    print("| attack | ε (L∞) | test accuracy |\n|---|---:|---:|")
    for name, eps, acc in rows:
        print(f"| {name} | {eps:.2f} | {acc:.3f} |")
    if args.out:
        x_adv = fn.inputs.fgsm(logits_fn, Xte[:8], yte[:8], 0.1, clip=(0.0, 1.0))
        pred = np.asarray(jnp.argmax(logits_fn(x_adv), -1))
        labels = [f"clean: {int(t)}" for t in yte[:8]] + [f"FGSM: {int(p)}" for p in pred]
        fn.plotting.image_grid(jnp.concatenate([Xte[:8], x_adv]), labels, f"{args.out}/digits_adversarial.png",
                             ncols=8, normalize="none")
        print(f"wrote {args.out}/digits_adversarial.png")
    return rows


if __name__ == "__main__":
    main()
