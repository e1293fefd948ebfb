"""Functional, compiled training: ``fit``, ``make_train_step``, per-example gradients, model selection.

    step = fn.make_train_step(loss_fn, optax.sgd(0.1))          # jitted (params, opt_state, batch) -> ...
    params, history = fn.fit(loss_fn, params, (X, Y), optimizer=optax.adam(1e-3), epochs=20, key=key)

Every name here is also available at the top level (``fn.fit``). Inside: ``_fit`` (the epoch loop and
``fit``), ``_per_example`` (one gradient per example with ``vmap``).
"""

from funcnet.train._fit import (
    History,
    NonFiniteLossWarning,
    Selection,
    accuracy,
    fit,
    make_train_step,
    select_hyperparameters,
)
from funcnet.train._per_example import per_example_grads

__all__ = [
    "fit", "make_train_step", "History", "NonFiniteLossWarning", "accuracy", "select_hyperparameters",
    "Selection", "per_example_grads",
]
