"""Losses ``(prediction, target) -> scalar mean``, pure, for JAX and :mod:`funcnet.tracer`."""

from funcnet._losses import binary_cross_entropy, half_mse, l2_penalty, mse, softmax_cross_entropy

__all__ = ["mse", "half_mse", "binary_cross_entropy", "softmax_cross_entropy", "l2_penalty"]
