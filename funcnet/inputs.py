"""Optimizing inputs instead of weights.

Backprop differentiates with respect to any node of the graph. Holding the parameters θ fixed and moving
the input x gives three tools, all compiled (one ``lax.scan`` per call) and batched:

* :func:`optimize_input` — minimize or maximize any scalar f(x), with optional projection;
* :func:`visualize_units` — activation maximization argmax_x h_lj(x) - λR(x) for many units at once;
* :func:`fgsm`, :func:`pgd` — adversarial inputs within an ε-ball.

Regularizers (:func:`l1`, :func:`l2`, :func:`total_variation`, :func:`blur_penalty`), projections
(:func:`box`, :func:`ball`, :func:`chain`) and pictures (:func:`image_grid`, :func:`plot_objective`) are
small pure pieces that compose with them.
"""

from __future__ import annotations

from funcnet._inputs._adversarial import fgsm, pgd
from funcnet._inputs._optimize import optimize_input
from funcnet._inputs._projections import ball, box, chain
from funcnet._plot_images import image_grid, plot_objective
from funcnet._inputs._regularizers import blur_penalty, gaussian_blur, l1, l2, total_variation
from funcnet._inputs._visualize import visualize_units

__all__ = [
    "optimize_input", "visualize_units", "fgsm", "pgd",
    "box", "ball", "chain",
    "l1", "l2", "total_variation", "blur_penalty", "gaussian_blur",
    "image_grid", "plot_objective",
]
