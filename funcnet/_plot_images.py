"""Pictures for input optimization: PNG image grids with labels, and objective-over-steps plots.

matplotlib is optional (``pip install "funcnet[plot]"``); it is imported on first use with the
non-interactive 'Agg' backend, so these run headless.
"""

from __future__ import annotations

import math
import pathlib
from typing import Optional, Sequence

import numpy as np

__all__ = ["image_grid", "plot_objective"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError('writing pictures needs matplotlib: pip install "funcnet[plot]"') from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _as_images(images, image_shape):
    arr = np.asarray(images, dtype=float)
    if arr.ndim == 1:
        arr = arr[None]
    if image_shape is not None:
        arr = arr.reshape((arr.shape[0], *image_shape))
    elif arr.ndim == 2:
        side = math.isqrt(arr.shape[1])
        if side * side != arr.shape[1]:
            raise ValueError(
                f"flat images of width {arr.shape[1]} are not square; pass image_shape=(H, W) or (H, W, C)"
            )
        arr = arr.reshape(arr.shape[0], side, side)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"images must be (n, H, W), (n, H, W, 1|3|4) or flat squares (n, H*W); got {arr.shape}")
    return arr


def _save(plt, fig, path, *, dpi: int) -> pathlib.Path:
    """Lay out, write ``fig`` as ``path`` (creating its folder), close it; return the path."""
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def image_grid(
    images,
    labels: Optional[Sequence[str]] = None,
    path=None,
    *,
    ncols: Optional[int] = None,
    image_shape: Optional[Sequence[int]] = None,
    normalize: str = "each",
    cmap: str = "gray",
    title: Optional[str] = None,
    scale: float = 1.4,
):
    """Write a grid of images (one panel per image, labelled) to a PNG.

    Args:
      images: ``(n, H, W)``, ``(n, H, W, C)`` (C = 1, 3, 4; channels-last) or flat squares ``(n, H*W)``.
      labels: one caption per image (e.g. ``"unit 3"``), or None.
      path: where to write the PNG (parent folders are created).
      ncols: panels per row (default: up to 10).
      image_shape: reshape each image to this shape first (for flat non-square inputs).
      normalize: ``"each"`` rescales every image to its own [min, max]; ``"all"`` uses one range for all;
        ``"none"`` shows values as they are (clipped to [0, 1] for colour).
      cmap: colormap for grayscale images.
      title: figure title.

    Returns:
      The path written, as a ``pathlib.Path``.
    """
    if path is None:
        raise ValueError("image_grid needs path= the PNG file to write")
    arr = _as_images(images, image_shape)
    n = arr.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} images")
    if normalize == "each":
        lo = arr.reshape(n, -1).min(1).reshape((n,) + (1,) * (arr.ndim - 1))
        hi = arr.reshape(n, -1).max(1).reshape((n,) + (1,) * (arr.ndim - 1))
        arr = (arr - lo) / np.where(hi > lo, hi - lo, 1.0)
    elif normalize == "all":
        lo, hi = arr.min(), arr.max()
        arr = (arr - lo) / (hi - lo if hi > lo else 1.0)
    elif normalize != "none":
        raise ValueError(f"normalize must be 'each', 'all' or 'none', got {normalize!r}")
    plt = _pyplot()
    ncols = ncols or min(n, 10)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, (scale + (0.3 if labels is not None else 0.0)) * nrows + (0.4 if title else 0.0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = np.clip(arr[i], 0, 1) if arr.ndim == 4 else arr[i]
            ax.imshow(img, cmap=None if arr.ndim == 4 else cmap, vmin=0, vmax=1, interpolation="nearest")
            if labels is not None:
                ax.set_title(str(labels[i]), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(plt, fig, path, dpi=80)


def plot_objective(history, path=None, *, labels: Optional[Sequence[str]] = None, title: str = "objective",
                   ylabel: str = "objective", logy: bool = False):
    """Plot objective values over steps to a PNG.

    Args:
      history: ``(steps + 1,)`` for one run, or ``(n, steps + 1)`` for n runs (one line each, e.g. per unit).
      path: the PNG to write.
      labels: one legend entry per line.
      logy: logarithmic y axis (for objectives decreasing to 0, such as the quadratic example).

    Returns:
      The path written.
    """
    if path is None:
        raise ValueError("plot_objective needs path= the PNG file to write")
    h = np.atleast_2d(np.asarray(history, dtype=float))
    if h.ndim != 2:
        raise ValueError(f"history must be (steps,) or (n, steps), got shape {np.shape(history)}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, row in enumerate(h):
        ax.plot(np.arange(row.size), row, lw=1.2, label=None if labels is None else str(labels[i]))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if labels is not None:
        ax.legend(fontsize=7, ncol=2)
    return _save(plt, fig, path, dpi=90)
