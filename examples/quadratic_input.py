"""Optimize an input, not weights: the lectures' quadratic f(x) = (xᵀAx + bᵀx + c)².

    python examples/quadratic_input.py [--steps 200] [--out DIR]
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp

import funcnet as fn

A = jnp.array([[0.0, 2.0], [2.0, 0.0]])
b = jnp.array([-0.5, 0.5])
c = -2.0


def f(x):
    return (x @ A @ x + b @ x + c) ** 2


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", default=None, help="folder for objective.png (needs matplotlib)")
    args = ap.parse_args(argv)
    x, history = fn.inputs.optimize_input(f, jnp.array([1.0, 1.0]), steps=args.steps, learning_rate=1e-3)
    x1, _ = fn.inputs.optimize_input(f, jnp.array([1.0, 1.0]), steps=1, learning_rate=1e-3)
    print(f"f(x0) = {float(history[0]):.4f}")
    print(f"after one step: x = {[round(float(v), 3) for v in x1]}, f = {float(history[1]):.4f}")
    print(f"after {args.steps} steps: x = {[round(float(v), 4) for v in x]}, f = {float(history[-1]):.2e}")
    if args.out:
        path = fn.plotting.plot_objective(history, f"{args.out}/quadratic_objective.png", logy=True,
                                        title="f(x) = (xᵀAx + bᵀx + c)², gradient descent on x")
        print(f"wrote {path}")
    return x, history


if __name__ == "__main__":
    main()
