"""Implementation of :mod:`funcnet.inputs`: optimizing inputs with the weights held fixed.

* ``_engine``: the one compiled loop (``lax.scan``) every input optimization runs on;
* ``_frozen``: an MLP's forward pass with its weights held fixed, laid out for fast input gradients;
* ``_optimize``: :func:`optimize_input` for any scalar objective;
* ``_projections``: feasible sets (box, norm ball) as pytrees;
* ``_regularizers``: image priors (L1, L2, total variation, blur) as pure functions;
* ``_visualize``: activation maximization for many units in one compiled call;
* ``_adversarial``: FGSM and PGD on the same engine.
"""
