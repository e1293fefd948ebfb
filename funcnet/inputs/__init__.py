"""Optimizing inputs instead of weights.

Backprop differentiates with respect to any node of the graph. Holding the parameters θ fixed and moving
the input x gives three tools, all compiled (one ``lax.scan`` per call) and batched:

* `optimize_input` — minimize or maximize any scalar f(x), with optional projection;
* `visualize_units` — activation maximization argmax_x h_lj(x) - λR(x) for many units at once;
* `fgsm`, `pgd` — adversarial inputs within an ε-ball.

Regularizers (`l1`, `l2`, `total_variation`, `blur_penalty`) and projections
(`box`, `ball`, `chain`) are small pure pieces that compose with them; pictures of the
results are in `funcnet.plotting`.

Inside: ``_loop`` (the one compiled loop every input optimization runs on), ``_frozen`` (an MLP's forward
pass with its weights held fixed), ``_optimize``, ``_projections``, ``_regularizers``, ``_visualize`` and
``_adversarial``.
"""

from __future__ import annotations

from funcnet.inputs._adversarial import fgsm, pgd
from funcnet.inputs._basis import Basis, pca_basis
from funcnet.inputs._config import Attack, Parametrization, Regularizers
from funcnet.inputs._objectives import Objective, objective
from funcnet.inputs._optimize import optimize_input
from funcnet.inputs._projections import ball, box, chain
from funcnet.inputs._scores import ClassImageScores, class_image_scores
from funcnet.inputs._regularizers import blur_penalty, gaussian_blur, l1, l2, total_variation
from funcnet.inputs._visualize import visualize_units

__all__ = [
    "optimize_input", "visualize_units", "fgsm", "pgd",
    "Regularizers", "Parametrization", "Basis", "pca_basis", "Attack", "Objective", "objective", "class_image_scores", "ClassImageScores",
    "box", "ball", "chain",
    "l1", "l2", "total_variation", "blur_penalty", "gaussian_blur",
]
