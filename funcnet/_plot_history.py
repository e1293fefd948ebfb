"""Plot a training :class:`funcnet.History`: loss curves, metrics, learning rate."""

from __future__ import annotations

import os
from typing import Any, Mapping


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError('plotting needs matplotlib: pip install "funcnet[plot]"') from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
