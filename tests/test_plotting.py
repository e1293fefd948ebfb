"""fn.plotting: never switches the backend, draws into ax=, shared colour scale with a colour bar, best epoch."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")

import funcnet as fn  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _calls(tmp_path):
    imgs = np.linspace(0, 2, 3 * 16).reshape(3, 4, 4)
    hist = {"train_loss": [1.0, 0.5, 0.4], "val_loss": [1.0, 0.6, 0.7], "best_epoch": 2, "metrics": {}}
    return [
        lambda: fn.plotting.image_grid(imgs, ["a", "b", "c"], tmp_path / "g.png", title="t", caption="c"),
        lambda: fn.plotting.plot_objective(np.arange(5.0), tmp_path / "o.png"),
        lambda: fn.plotting.plot_history(hist, tmp_path / "h.png"),
    ]


def test_no_backend_switch_and_no_pyplot_figures(tmp_path):
    import sys

    before = matplotlib.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    for call in _calls(tmp_path):
        call()
    assert matplotlib.get_backend() == before
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules      # pyplot state untouched: never even imported
    for name in ("g.png", "o.png", "h.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ax_draws_into_the_given_axes():
    fig = Figure()
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    assert fn.plotting.plot_objective(np.ones((2, 4)), ax=ax1) is fig and len(ax1.lines) == 2
    hist = {"train_loss": [1.0, 0.5], "val_loss": [1.0, 0.6], "best_epoch": 0, "metrics": {}}
    fn.plotting.plot_history(hist, ax=ax2)
    assert len(ax2.lines) == 3                              # train, validation, best-epoch marker
    fig2 = Figure()
    ax3 = fig2.add_subplot()
    fn.plotting.image_grid(np.zeros((2, 3, 3)), ax=ax3)
    assert len(ax3.images) == 1 and len(fig2.axes) == 2    # the mosaic and its colour bar


def test_image_grid_one_shared_scale_and_colour_bar():
    imgs = np.stack([np.zeros((4, 4)), np.full((4, 4), 0.5), np.full((4, 4), 2.0)])
    fig = fn.plotting.image_grid(imgs, ["a", "b", "c"], title="what you see", caption="confidence 0.99")
    ax, bar = fig.axes
    assert ax.images[0].get_clim() == (0.0, 2.0)            # the data's value range, shared by all panels
    assert bar.get_ylabel() == "value" and ax.get_title() == "what you see"
    assert "confidence 0.99" in ax.get_xlabel()
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c"]
    fixed = fn.plotting.image_grid(imgs, vmin=0, vmax=1)
    assert fixed.axes[0].images[0].get_clim() == (0.0, 1.0)
    each = fn.plotting.image_grid(imgs, normalize="each")
    assert len(each.axes) == 1 and "own range" in each.axes[0].get_xlabel()


def test_best_epoch_is_drawn_as_users_count_epochs():
    hist = {"train_loss": [1.0, 0.5, 0.4], "val_loss": [1.0, 0.6, 0.7], "best_epoch": 2, "metrics": {}}
    fig = fn.plotting.plot_history(hist)
    marker = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("best epoch")][0]
    assert marker.get_xdata()[0] == 2      # History.best_epoch is 1-based (epoch 2 has the lowest val loss)
    assert marker.get_label() == "best epoch (2)"
