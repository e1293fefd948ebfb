"""Check an MLP's loss gradient four ways: jax.grad, funcnet's tracer, finite differences, the delta rule.

    python examples/gradcheck_mlp.py

Prints the comparison table (one row per parameter leaf and pair of methods) and
exits with status 1 if any pair disagrees beyond the stated tolerances.
"""

import jax
import numpy as np

import funcnet as fn


def main(sizes=(4, 6, 3), activation="tanh", loss="softmax_cross_entropy", batch=8, seed=0) -> bool:
    model = fn.mlp(list(sizes), activation=activation)
    params = model.init(jax.random.key(seed))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, sizes[0]))
    y = rng.integers(0, sizes[-1], size=batch)

    # An MLP loss as a function of the parameters alone; compare_grads adds the hand-derived rule for it.
    f = fn.manual.mlp_loss(model, x, y, loss)
    report = fn.check.compare_grads(f, params)
    print(report)
    return report.ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
