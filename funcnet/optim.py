"""Optimizers for :func:`funcnet.fit`: the lectures' update rules as optax transformations.

Any optax optimizer works in :func:`funcnet.fit` and :func:`funcnet.make_train_step`;
this module adds the ones written the lectures' way.
"""

from funcnet._optim import ema_momentum

__all__ = ["ema_momentum"]
