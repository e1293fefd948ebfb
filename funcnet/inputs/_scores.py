r"""How much a set of class images looks like the classes they stand for.

For class images v_k (one per class k, any shape with the data's size) and labelled data (X, y):

* ``correlation[k]`` = Pearson corr(v_k, m_k) with m_k the mean of the images of class k (the class's
  average look, an independent reference: it knows nothing of the network);
* ``centered[k]`` = corr(v_k - μ, m_k - μ) with μ the mean of all the data: the class-specific part only. The
  plain correlation is high for any image near the data's overall mean (on the digits, the mean image itself
  correlates 0.83 with the class means); the centered one is near 0 for it and for an untrained network's
  images, and says whether v_k departs from the average digit in the direction its class does;
* ``nearest[k]`` = argmax_c corr(v_k, m_c), the class whose mean image v_k is closest to;
* ``transfer[k]`` = argmax of another network's logits at v_k (a network trained from another seed: images
  that it classifies as their class are not one network's private noise).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np

from funcnet import _boundary

__all__ = ["ClassImageScores", "class_image_scores"]


class ClassImageScores(NamedTuple):
    """Scores of class images; see `class_image_scores`."""

    correlation: np.ndarray          # (n,) corr(v_k, mean image of class k)
    mean_correlation: float          # its mean over the images
    nearest: np.ndarray              # (n,) the class whose mean image each v_k correlates with most
    transfer_predicted: Optional[np.ndarray]   # (n,) the other network's prediction, or None
    transfer: Optional[int]          # how many images the other network classifies as their class, or None
    centered: Optional[np.ndarray] = None      # (n,) corr(v_k - data mean, m_k - data mean)
    mean_centered: Optional[float] = None      # its mean over the images

    def __str__(self) -> str:
        text = f"correlation with the class mean images: mean {self.mean_correlation:.3f} " \
               f"(min {self.correlation.min():.3f}); nearest mean image is its own class for " \
               f"{int(np.sum(self.nearest == np.arange(len(self.nearest))))}/{len(self.nearest)}"
        if self.mean_centered is not None:
            text += f"; centered on the data mean: {self.mean_centered:.3f}"
        if self.transfer is not None:
            text += f"; a second network classifies {self.transfer}/{len(self.nearest)} as their class"
        return text


def class_image_scores(images, X, y, other_logits_fn: Optional[Callable[[Any], Any]] = None, *,
                       classes: Optional[Sequence[int]] = None) -> ClassImageScores:
    r"""Score class images against the class mean images of (X, y) and, optionally, a second network.

    Args:
      images: ``(n, ...)`` one image per class, each with ``X.shape[1:]``'s number of values.
      X: data ``(m, d)`` (or ``(m, ...)``); y: integer labels ``(m,)``.
      other_logits_fn: ``x (n, d) -> logits (n, K)`` of a second network (trained from another seed), or None.
      classes: the class of each image (default ``0..n-1``).

    Returns:
      `ClassImageScores` (``correlation``, ``mean_correlation``, ``nearest``, ``transfer_predicted``,
      ``transfer``, ``centered``, ``mean_centered``).

    Examples:
      >>> import numpy as np, funcnet as fn
      >>> X = np.array([[1.0, 0, 0], [0.9, 0.1, 0], [0, 0, 1.0]]); y = np.array([0, 0, 1])
      >>> s = fn.inputs.class_image_scores(np.array([[1.0, 0.1, 0], [0, 0.2, 1.0]]), X, y)
      >>> s.nearest.tolist(), round(s.mean_correlation, 3)
      ([0, 1], 0.991)
    """
    v = np.asarray(images, dtype=float)
    data = np.asarray(X, dtype=float)
    n = _boundary.leading_length(v, "images")
    m = _boundary.leading_length((data, np.asarray(y)), "(X, y)")
    v, data = v.reshape(n, -1), data.reshape(m, -1)
    if v.shape[1] != data.shape[1]:
        raise ValueError(f"class_image_scores: images have {v.shape[1]} values each but X has {data.shape[1]} "
                         f"per example")
    labels = np.asarray(y)
    num_classes = int(labels.max()) + 1 if labels.size else 0
    _boundary.check_labels(labels, num_classes, "y", where="class_image_scores")
    cls = np.arange(n) if classes is None else np.asarray(classes)
    _boundary.check_labels(cls, num_classes, "classes", where="class_image_scores")
    if cls.shape != (n,):
        raise ValueError(f"class_image_scores: classes must have shape ({n},), one per image, got {cls.shape}")
    means = np.stack([data[labels == c].mean(0) for c in range(num_classes)])
    corr = np.corrcoef(np.concatenate([v, means]))[:n, n:]           # (n, num_classes)
    own = corr[np.arange(n), cls]
    mu = data.mean(0)
    centered = np.array([np.corrcoef(v[i] - mu, means[c] - mu)[0, 1] for i, c in enumerate(cls)])
    predicted = transfer = None
    if other_logits_fn is not None:
        if not callable(other_logits_fn):
            raise TypeError(f"class_image_scores: other_logits_fn must be a callable x -> logits, got "
                            f"{type(other_logits_fn).__name__}")
        predicted = np.asarray(other_logits_fn(v.astype(np.float32))).argmax(-1)
        transfer = int(np.sum(predicted == cls))
    return ClassImageScores(own, float(own.mean()), corr.argmax(1), predicted, transfer, centered,
                            float(centered.mean()))
