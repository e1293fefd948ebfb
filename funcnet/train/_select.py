"""Model selection the lectures' way (choose on validation, test once) and the accuracy metric."""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from funcnet.train._history import History

__all__ = ["accuracy", "select_hyperparameters", "Selection"]


def accuracy(logits, labels) -> jax.Array:
    r"""Fraction of correct predictions: mean over examples of [argmax_k z_k = y].

    Args:
      logits: ``(..., K)`` scores. With K = 1 (one logit for a binary task) the prediction is ``z > 0``.
      labels: integer classes ``(...)``, one-hot ``(..., K)``, or for K = 1 targets ``(..., 1)`` / ``(...)``
        in {0, 1}.

    Raises:
      ValueError: scalar logits, or labels whose shape fits neither form.

    Examples:
      >>> import jax.numpy as jnp, funcnet as fn
      >>> print(round(float(fn.accuracy(jnp.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), jnp.array([0, 1, 1]))), 4))
      0.6667
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    if logits.ndim == 0:
        raise ValueError("accuracy: logits need a class axis (..., K), got a scalar")
    if logits.shape[-1] == 1:
        pred = (logits[..., 0] > 0).astype(jnp.int32)
        target = labels[..., 0] if labels.shape == logits.shape else labels
        if target.shape != pred.shape:
            raise ValueError(f"accuracy: labels of shape {labels.shape} do not match logits of shape {logits.shape}")
        return jnp.mean(pred == jnp.round(target).astype(jnp.int32))
    if labels.shape == logits.shape:
        labels = jnp.argmax(labels, axis=-1)
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"accuracy: integer labels must have shape {logits.shape[:-1]} (or one-hot {logits.shape}), got {labels.shape}"
        )
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


class Selection(NamedTuple):
    """Result of `select_hyperparameters`."""

    best_config: Any
    best_index: int
    best_params: Any
    val_scores: list
    test_score: float | None
    histories: list


def _better(score: float, best: float | None, higher_is_better: bool) -> bool:
    if math.isnan(score):
        return False
    return best is None or (score > best if higher_is_better else score < best)


def select_hyperparameters(
    train: Callable[[Any], Any],
    configs: Sequence[Any],
    *,
    val_score: Callable[[Any], float],
    test_score: Callable[[Any], float] | None = None,
    higher_is_better: bool = True,
) -> Selection:
    """Model selection the lectures' way: choose on validation, report test once.

    For every configuration c: ``params = train(c)`` (fit on the training set only), score it with
    ``val_score(params)`` on the validation set; keep the configuration with the best validation score;
    only then evaluate ``test_score`` once, on that single model. The test set never influences the
    choice, so the test score stays an unbiased estimate.

    A sweep over learning rates compiles once when every ``train(c)`` calls `fit` with the same
    loss function object and one ``optax.inject_hyperparams`` optimizer, passing the rate as
    ``fit(..., hyperparams={"learning_rate": c["lr"]})`` (see ``examples/select_hyperparameters.py``).

    Args:
      train: ``config -> params`` or ``config -> (params, History)``.
      configs: the candidates, e.g. a list of dicts.
      val_score: ``params -> float`` on the validation data.
      test_score: ``params -> float`` on the test data, called once, on the winner.
      higher_is_better: True for accuracy, False for a loss.

    Returns:
      A `Selection` with ``best_config``, ``best_index``, ``best_params``, ``val_scores`` (one per
      config), ``test_score`` and ``histories``.

    Raises:
      TypeError: ``train``, ``val_score`` or ``test_score`` is not callable.
      ValueError: no configuration, or every validation score is NaN.
    """
    for name, f in (("train", train), ("val_score", val_score)):
        if not callable(f):
            raise TypeError(f"select_hyperparameters: {name} must be callable, got {type(f).__name__}")
    if test_score is not None and not callable(test_score):
        raise TypeError(f"select_hyperparameters: test_score must be callable, got {type(test_score).__name__}")
    configs = list(configs)
    if not configs:
        raise ValueError("select_hyperparameters needs at least one configuration")
    scores, histories = [], []
    best_i, best_params = None, None
    for i, config in enumerate(configs):
        out = train(config)
        hist = None
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], History):
            out, hist = out
        score = float(val_score(out))
        scores.append(score)
        histories.append(hist)
        if _better(score, None if best_i is None else scores[best_i], higher_is_better):
            best_i, best_params = i, out
    if best_i is None:
        raise ValueError(f"every configuration gave a NaN validation score: {scores}")
    test = float(test_score(best_params)) if test_score is not None else None
    return Selection(configs[best_i], best_i, best_params, scores, test, histories)
