"""Pictures: training curves, image grids, objective curves (matplotlib, ``pip install "funcnet[plot]"``).

matplotlib is imported only when a function is called, and pyplot never is: every function draws on a
``matplotlib.figure.Figure`` of its own (saved through the Agg canvas, so it works headless) or into the
``ax=`` you pass, and leaves your backend and your pyplot figures alone — inline notebook plots keep working.
"""

from __future__ import annotations

import math
import os
import pathlib
from typing import Any, Mapping, Optional, Sequence

import numpy as np

__all__ = ["plot_history", "image_grid", "plot_objective"]


def _new_figure(figsize):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('drawing pictures needs matplotlib: pip install "funcnet[plot]"') from None
    return Figure(figsize=figsize)


def _save(fig, path, *, dpi: int) -> pathlib.Path:
    """Write ``fig`` as ``path`` (creating its folder) through the Agg canvas; return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = pathlib.Path(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(fig.canvas, FigureCanvasAgg) and type(fig.canvas).__name__ == "FigureCanvasBase":
        FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _check_ax(ax, where: str):
    if ax is not None and not all(hasattr(ax, a) for a in ("imshow", "plot", "figure")):
        raise TypeError(f"{where}: ax must be a matplotlib Axes, got {type(ax).__name__}")


def _as_images(images, image_shape):
    try:
        arr = np.asarray(images, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"image_grid: images must be a numeric array, got {type(images).__name__}") from None
    if arr.ndim == 1:
        arr = arr[None]
    if image_shape is not None:
        size = math.prod(image_shape)
        if arr.size % size or arr.ndim < 2:
            raise ValueError(f"image_grid: images of shape {arr.shape} cannot be split into images of shape "
                             f"{tuple(image_shape)}")
        arr = arr.reshape((arr.size // size, *image_shape))
    elif arr.ndim == 2:
        side = math.isqrt(arr.shape[1])
        if side * side != arr.shape[1]:
            raise ValueError(f"image_grid: flat images of width {arr.shape[1]} are not square; pass "
                             "image_shape=(H, W) or (H, W, C)")
        arr = arr.reshape(arr.shape[0], side, side)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (3, 4)) or arr.shape[0] == 0:
        raise ValueError(f"image_grid: images must be (n, H, W), (n, H, W, 1|3|4) or flat squares (n, H*W) with "
                         f"n >= 1; got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("image_grid: images contain NaN or infinite values")
    return arr


def _normalized(arr, normalize: str, vmin, vmax):
    """The images on one colour scale, and that scale's (lo, hi)."""
    n = arr.shape[0]
    if normalize == "each":
        lo = arr.reshape(n, -1).min(1).reshape((n,) + (1,) * (arr.ndim - 1))
        hi = arr.reshape(n, -1).max(1).reshape((n,) + (1,) * (arr.ndim - 1))
        return (arr - lo) / np.where(hi > lo, hi - lo, 1.0), (0.0, 1.0)
    if normalize != "none":
        raise ValueError(f"image_grid: normalize must be 'none' (one shared value scale) or 'each', got {normalize!r}")
    lo = float(arr.min()) if vmin is None else float(vmin)
    hi = float(arr.max()) if vmax is None else float(vmax)
    return arr, (lo, hi if hi > lo else lo + 1.0)


def _mosaic(arr, ncols: int, pad_y: int):
    n, h, w = arr.shape[:3]
    nrows = math.ceil(n / ncols)
    out = np.full((nrows * (h + pad_y), ncols * (w + 1) - 1, *arr.shape[3:]), np.nan)
    for i in range(n):
        r, c = divmod(i, ncols)
        out[r * (h + pad_y): r * (h + pad_y) + h, c * (w + 1): c * (w + 1) + w] = arr[i]
    return out, nrows


def image_grid(images, labels: Optional[Sequence[str]] = None, path=None, *, ncols: Optional[int] = None,
               image_shape: Optional[Sequence[int]] = None, normalize: str = "none", vmin=None, vmax=None,
               cmap: str = "gray", title: Optional[str] = None, caption: Optional[str] = None,
               colorbar: bool = True, scale: float = 1.2, ax=None):
    """Draw images side by side on one shared colour scale, with a colour bar, labels, title and caption.

    Args:
      images: ``(n, H, W)``, ``(n, H, W, C)`` (C = 1, 3, 4; channels-last) or flat squares ``(n, H*W)``.
      labels: one short label per image (e.g. ``"3"``), drawn under it; or None.
      path: write a PNG there (parent folders are created); None only draws.
      ncols: images per row (default: up to 10).
      image_shape: reshape each image to this shape first (for flat non-square inputs).
      normalize: ``"none"`` (default) shows the values on one scale from ``vmin`` to ``vmax`` (default: the
        images' min and max) — the colour bar reads values; ``"each"`` rescales every image to its own
        [min, max] (shapes only: no colour bar, and the caption says so).
      cmap: colormap for grayscale images.
      title: what the user is looking at (e.g. "inputs that maximize each class").
      caption: a line under the grid (e.g. the network's confidence, stated once).
      colorbar: draw the colour bar (grayscale, ``normalize="none"``).
      ax: a matplotlib Axes to draw into (its figure gets the colour bar); default: a new Figure.

    Returns:
      The path written when ``path`` is given, else the ``Figure``.

    Examples:
      >>> import numpy as np, funcnet as fn
      >>> fig = fn.plotting.image_grid(np.eye(4).reshape(1, 4, 4), ["I"], title="identity")
      >>> len(fig.axes)                     # the grid and its colour bar
      2
    """
    _check_ax(ax, "image_grid")
    arr = _as_images(images, image_shape)
    n = arr.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"image_grid: got {len(labels)} labels for {n} images")
    ncols = min(n, 10) if ncols is None else int(ncols)
    if ncols < 1:
        raise ValueError(f"image_grid: ncols must be >= 1, got {ncols}")
    shown, (lo, hi) = _normalized(arr, normalize, vmin, vmax)
    h, w = arr.shape[1:3]
    pad_y = max(1, round(h / 4)) if labels is not None else 0
    mosaic, nrows = _mosaic(shown, ncols, pad_y)
    if ax is None:
        fig = _new_figure((scale * ncols + 1.2, scale * nrows + 0.5 + 0.3 * bool(title) + 0.3 * bool(caption)))
        ax = fig.add_subplot()
    fig = ax.figure
    rgb = arr.ndim == 4
    im = ax.imshow(np.clip((mosaic - lo) / (hi - lo), 0, 1) if rgb else mosaic, cmap=None if rgb else cmap,
                   vmin=None if rgb else lo, vmax=None if rgb else hi, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    for i, text in enumerate(labels or []):
        r, c = divmod(i, ncols)
        ax.text(c * (w + 1) + (w - 1) / 2, r * (h + pad_y) + h - 0.5 + pad_y / 2, str(text), ha="center",
                va="center", fontsize=8)
    if colorbar and not rgb and normalize == "none":
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="value")
    if title:
        ax.set_title(title, fontsize=10)
    notes = [caption] if caption else []
    if normalize == "each":
        notes.append("each image rescaled to its own range (no shared scale)")
    if notes:
        ax.set_xlabel("\n".join(notes), fontsize=8)
    return _save(fig, path, dpi=100) if path is not None else fig


def plot_objective(history, path=None, *, labels: Optional[Sequence[str]] = None, title: str = "objective",
                   ylabel: str = "objective", logy: bool = False, ax=None):
    """Plot objective values over steps.

    Args:
      history: ``(steps + 1,)`` for one run, or ``(n, steps + 1)`` for n runs (one line each, e.g. per unit).
      path: write a PNG there; None only draws.
      labels: one legend entry per line.
      logy: logarithmic y axis (for objectives decreasing to 0, such as the quadratic example).
      ax: a matplotlib Axes to draw into; default: a new Figure.

    Returns:
      The path written when ``path`` is given, else the ``Figure``.
    """
    _check_ax(ax, "plot_objective")
    try:
        h = np.atleast_2d(np.asarray(history, dtype=float))
    except (TypeError, ValueError):
        raise TypeError(f"plot_objective: history must be a numeric array, got {type(history).__name__}") from None
    if h.ndim != 2 or h.shape[1] == 0:
        raise ValueError(f"plot_objective: history must be (steps,) or (n, steps) with steps >= 1, got shape "
                         f"{np.shape(history)}")
    if labels is not None and len(labels) != h.shape[0]:
        raise ValueError(f"plot_objective: got {len(labels)} labels for {h.shape[0]} lines")
    if ax is None:
        ax = _new_figure((5, 3.2)).add_subplot()
    for i, row in enumerate(h):
        ax.plot(np.arange(row.size), row, lw=1.2, label=None if labels is None else str(labels[i]))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if labels is not None:
        ax.legend(fontsize=7, ncol=2)
    return _save(ax.figure, path, dpi=90) if path is not None else ax.figure


def _history_panels(h: Mapping) -> list[str]:
    return ["loss", *h.get("metrics", {})] + (["lr"] if h.get("lr") else [])


def _draw_panel(ax, h: Mapping, panel: str) -> None:
    epochs = lambda v: range(1, len(v) + 1)          # noqa: E731  (epochs counted from 1)
    best = h.get("best_epoch")
    if panel == "loss":
        ax.plot(epochs(h["train_loss"]), h["train_loss"], label="train")
        if h.get("val_loss"):
            ax.plot(epochs(h["val_loss"]), h["val_loss"], label="validation")
        ax.set_ylabel("loss")
        values = [v for v in list(h["train_loss"]) + list(h.get("val_loss") or []) if v is not None]
        if values and min(values) > 0:
            ax.set_yscale("log")
    elif panel == "lr":
        ax.plot(epochs(h["lr"]), h["lr"])
        ax.set_ylabel("learning rate")
    else:
        ax.plot(epochs(h["metrics"][panel]), h["metrics"][panel])
        ax.set_ylabel(panel)
    if best is not None:
        ax.axvline(int(best), color="grey", ls=":", label=f"best epoch ({int(best)})")
    if panel == "loss":
        ax.legend()
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def plot_history(history: Any, path: str | os.PathLike | None = None, *, title: str | None = None, ax=None):
    """Draw train/validation loss per epoch, each metric, and the learning rate when recorded.

    Epochs are counted from 1; the best epoch (``history.best_epoch``, 1-based like every epoch number funcnet shows) is marked on every
    panel and named in the legend.

    Args:
      history: a `funcnet.History` or its ``to_dict()``.
      path: where to save the figure (PNG by extension); ``None`` only draws.
      title: optional figure title.
      ax: an Axes (draws the loss panel only) or a sequence of Axes, one per panel (loss, each metric, lr).

    Returns:
      The ``Figure`` drawn on.
    """
    if not isinstance(history, Mapping):
        if not hasattr(history, "to_dict"):
            raise TypeError(f"plot_history: history must be a funcnet History or its to_dict(), got "
                            f"{type(history).__name__}")
        history = history.to_dict()
    if "train_loss" not in history:
        raise ValueError(f"plot_history: history has no 'train_loss'; got keys {sorted(history)}")
    panels = _history_panels(history)
    if ax is None:
        fig = _new_figure((4.2 * len(panels), 3.4))
        axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]
    else:
        axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
        for a in axes:
            _check_ax(a, "plot_history")
        panels = panels[: len(axes)]
        fig = axes[0].figure
    for a, panel in zip(axes, panels):
        _draw_panel(a, history, panel)
    if title:
        fig.suptitle(title)
    if path is not None:
        _save(fig, path, dpi=100)
    return fig
