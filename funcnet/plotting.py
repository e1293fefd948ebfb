"""Pictures: training curves, image grids, objective curves (matplotlib, ``pip install "funcnet[plot]"``).

matplotlib is imported only when a function is called.
"""

from __future__ import annotations

import math
import os
import pathlib
from typing import Any, Mapping, Optional, Sequence

import numpy as np

__all__ = ["plot_history", "image_grid", "plot_objective"]

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


def plot_history(history: Any, path: str | os.PathLike | None = None, *, title: str | None = None):
    """Draw train/validation loss per epoch, each metric, and the learning rate when recorded.

    Args:
      history: a :class:`funcnet.History` or its ``to_dict()``.
      path: where to save the figure (PNG by extension); ``None`` only returns it.
      title: optional figure title.

    Returns:
      The matplotlib ``Figure`` (closed after saving when ``path`` is given).
    """
    plt = _pyplot()
    h: Mapping = history if isinstance(history, Mapping) else history.to_dict()
    panels = ["loss", *h.get("metrics", {})] + (["lr"] if h.get("lr") else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "loss":
            ax.plot(range(1, len(h["train_loss"]) + 1), h["train_loss"], label="train")
            if h.get("val_loss"):
                ax.plot(range(1, len(h["val_loss"]) + 1), h["val_loss"], label="validation")
            if h.get("best_epoch") is not None:
                ax.axvline(h["best_epoch"] + 1, color="grey", ls=":", label="best epoch")
            ax.set_ylabel("loss")
            if min(h["train_loss"] + h.get("val_loss", []), default=0) > 0:
                ax.set_yscale("log")
            ax.legend()
        elif panel == "lr":
            ax.plot(range(1, len(h["lr"]) + 1), h["lr"])
            ax.set_ylabel("learning rate")
        else:
            vals = h["metrics"][panel]
            ax.plot(range(1, len(vals) + 1), vals)
            ax.set_ylabel(panel)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100)
        plt.close(fig)
    return fig
