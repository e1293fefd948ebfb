"""Functional, compiled training: ``fit``, ``make_train_step``, callbacks, per-example gradients, model selection.

    step = fn.make_train_step(loss_fn, optax.sgd(0.1))          # jitted (params, opt_state, batch) -> ...
    params, history = fn.fit(loss_fn, params, (X, Y), optimizer=optax.adam(1e-3), epochs=20, key=key,
                             callbacks=[fn.train.CSVLogger("log.csv")])

The most used names are also available at the top level (``fn.fit``). Inside: ``_plan`` (fit's arguments,
checked, as a ``Plan``), ``_epoch`` (the compiled epoch and its cache), ``_fit`` (the loop, the non-finite
guard, checkpoints), ``_history``, ``_callbacks`` (loggers, progress), ``_step`` (``make_train_step``),
``_select``, ``_per_example``.
"""

from funcnet.train._callbacks import CSVLogger, JSONLinesLogger
from funcnet.train._fit import EarlyStopping, FitResult, TrainState, fit, run_epoch
from funcnet.train._history import EpochStats, History, NonFiniteLossWarning
from funcnet.train._per_example import per_example_grads
from funcnet.train._plan import Plan
from funcnet.train._select import Selection, accuracy, select_hyperparameters
from funcnet.train._step import make_train_step

__all__ = [
    "fit", "make_train_step", "History", "NonFiniteLossWarning", "accuracy", "select_hyperparameters",
    "Selection", "per_example_grads", "CSVLogger", "JSONLinesLogger", "FitResult", "Plan", "TrainState",
    "EarlyStopping", "EpochStats", "run_epoch",
]
