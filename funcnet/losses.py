"""Loss functions ``(prediction, target) -> scalar``, written once against the Array API.

All losses average over the batch, run under JAX and under `funcnet.tracer`,
and pick their namespace from both arguments.

Notation: m examples, K outputs; ŷ = prediction (m, K), y = target.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcnet import activations as _activations
from funcnet._boundary import array_namespace, overridable

__all__ = ["mse", "half_mse", "binary_cross_entropy", "softmax_cross_entropy",
           "softmax_cross_entropy_with_integer_labels", "l2_penalty"]


def _check_same_shape(name: str, pred, target) -> None:
    ps, ts = tuple(getattr(pred, "shape", ())), tuple(getattr(target, "shape", ()))
    if ps != ts:
        raise ValueError(f"{name}: prediction and target must have the same shape, got {ps} and {ts}")
    _check_nonempty(name, pred)


def _check_nonempty(name: str, pred) -> None:
    shape = tuple(getattr(pred, "shape", ()))
    if 0 in shape:
        raise ValueError(f"{name}: empty batch (shape {shape}); the mean over no examples is undefined")


def _concrete(x):
    """``x`` as a NumPy array when its values are known (NumPy, a concrete JAX array), else None.

    Inside ``jit`` (a JAX tracer) or funcnet's tracer (a traced value) the values are unknown at this
    point, and ``np.asarray`` raises a ``TypeError`` subclass for both.
    """
    if type(x) is np.ndarray:
        return x
    try:
        return np.asarray(x)
    except TypeError:
        return None


def mse(pred, target):
    r"""Mean squared error over every element: (1 / (m·K)) Σ_i Σ_k (ŷ_ik - y_ik)².

    Shapes: ``pred`` and ``target`` equal, any shape. Gradient: 2(ŷ - y) / (m·K).
    """
    _check_same_shape("mse", pred, target)
    xp = array_namespace(pred, target)
    return xp.mean((pred - target) ** 2)


def half_mse(pred, target):
    r"""The lectures' squared error J = 1/(2m) Σ_i ‖ŷ_i - y_i‖².

    Summed over the output axis (the last axis), averaged over the m examples
    (all leading axes); a single example ``(K,)`` or a scalar gives ½‖ŷ - y‖².
    Gradient: (ŷ - y) / m.
    """
    _check_same_shape("half_mse", pred, target)
    xp = array_namespace(pred, target)
    sq = (pred - target) ** 2
    if getattr(sq, "ndim", 0) == 0:
        return 0.5 * sq
    return 0.5 * xp.mean(xp.sum(sq, axis=-1))


def binary_cross_entropy(logits, targets):
    r"""Sigmoid cross-entropy on logits, averaged over every element.

    ℓ(z, y) = -y log σ(z) - (1 - y) log(1 - σ(z)) = max(z, 0) - z·y + log(1 + e^{-|z|}),
    finite for any z. Shapes: ``logits`` and ``targets`` (in [0, 1]) equal.
    Gradient: (σ(z) - y) / count.
    """
    _check_same_shape("binary_cross_entropy", logits, targets)
    y = _concrete(targets)
    if y is not None and y.size and not (np.min(y) >= 0 and np.max(y) <= 1):
        raise ValueError(f"binary_cross_entropy: targets must lie in [0, 1] (labels or probabilities), "
                         f"got values in [{np.min(y)}, {np.max(y)}]")
    xp = array_namespace(logits, targets)
    return xp.mean(_activations.softplus(logits) - logits * targets)


def softmax_cross_entropy(logits, labels):
    r"""Softmax cross-entropy, averaged over the batch: -(1/m) Σ_i log softmax(z_i)[y_i].

    Args:
      logits: ``(..., K)`` raw scores.
      labels: integer class indices ``(...)`` in ``[0, K)``, or one-hot /
        probability targets ``(..., K)`` of a float dtype.

    Uses log-sum-exp with the max subtracted, so logits of 1e4 stay finite. The
    gradient with respect to the logits is (softmax(z) - y) / m.
    """
    xp = array_namespace(logits, labels)
    lshape = tuple(getattr(logits, "shape", ()))
    if len(lshape) == 0:
        raise ValueError("softmax_cross_entropy: logits must have a class axis (..., K), got a scalar")
    _check_nonempty("softmax_cross_entropy", logits)
    k = lshape[-1]
    yshape = tuple(getattr(labels, "shape", ()))
    dtype = getattr(labels, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind in "iu":     # integer class labels
        if yshape != lshape[:-1]:
            raise ValueError(
                f"softmax_cross_entropy: integer labels must have shape {lshape[:-1]} "
                f"(logits shape {lshape} without the class axis), got {yshape}"
            )
        _check_label_range(labels, k)
        return softmax_cross_entropy_with_integer_labels(logits, labels)
    else:
        if yshape != lshape:
            raise ValueError(
                f"softmax_cross_entropy: one-hot/probability targets must have the logits' shape {lshape}, "
                f"got {yshape} (pass integer labels of shape {lshape[:-1]} instead)"
            )
        onehot = labels
        logp = _activations.log_softmax(logits)
    nll = -xp.sum(onehot * logp, axis=-1)
    return xp.mean(nll)


@overridable
def softmax_cross_entropy_with_integer_labels(logits, labels):
    r"""-(1/m) Σ_i log softmax(z_i)[y_i] for integer ``labels`` ``(...)`` and ``logits`` ``(..., K)``; unchecked.

    `softmax_cross_entropy` checks the shapes and the label range, then calls this. It picks
    log p[y] with a gather (as optax does), so no one-hot product is differentiated; funcnet's tracer
    records it as one node whose rule is the lectures' delta (softmax(z) - onehot(y)) / m.
    """
    xp = array_namespace(logits, labels)
    logp = _activations.log_softmax(logits)
    take = getattr(xp, "take_along_axis", None)
    if take is not None:
        return -xp.mean(take(logp, labels[..., None], axis=-1))
    k = logits.shape[-1]
    onehot = (labels[..., None] == array_namespace(labels).arange(k)).astype(logits.dtype)
    return -xp.mean(xp.sum(onehot * logp, axis=-1))


def _check_label_range(labels, k: int) -> None:
    """Check concrete integer labels lie in [0, k); traced labels are not checked."""
    arr = _concrete(labels)
    if arr is None:      # values unknown at trace time
        return
    if arr.size and (np.minimum.reduce(arr, axis=None) < 0 or np.maximum.reduce(arr, axis=None) >= k):
        raise ValueError(
            f"labels must lie in [0, {k}) for logits with {k} classes, got values in [{arr.min()}, {arr.max()}]"
        )


def l2_penalty(params: Any):
    r"""Weight decay term ½ Σ_l ‖W^[l]‖²_F over every leaf except biases.

    Leaves stored under a ``"b"`` key are not penalised (the lectures' convention);
    every other array leaf is. Multiply by λ yourself: ``loss + lam * l2_penalty(params)``.
    """
    import jax

    leaves = [
        leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
        if not (path and getattr(path[-1], "key", None) == "b")
    ]
    if not leaves:
        raise ValueError("l2_penalty: params hold no weight leaves")
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if not isinstance(leaf, float) and np.dtype(getattr(leaf, "dtype", object)).kind not in "fc":
            raise TypeError(f"l2_penalty: params{jax.tree_util.keystr(path)} is a {type(leaf).__name__} "
                            f"of dtype {getattr(leaf, 'dtype', None)}; every leaf must be a float array")
    xp = array_namespace(leaves)
    total = 0.0
    for leaf in leaves:
        total = total + xp.sum(leaf * leaf)
    return 0.5 * total
