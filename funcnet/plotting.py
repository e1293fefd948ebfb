"""Pictures: training curves, image grids, objective curves (matplotlib, ``pip install "funcnet[plot]"``).

matplotlib is imported only when a function is called, with the non-interactive Agg backend.
"""

from funcnet._plot_history import plot_history
from funcnet._plot_images import image_grid, plot_objective

__all__ = ["plot_history", "image_grid", "plot_objective"]
