"""Undoing broadcasting: the one place where cotangents are summed back to an input's shape."""

from __future__ import annotations

import numpy as np

from funcnet.tracer import _rules

__all__ = ["unbroadcast"]


def unbroadcast(g, like):
    """Sum ``g`` over the axes that broadcasting added to ``like``.

    NumPy broadcasting (a) prepends new leading axes and (b) stretches size-1 axes.
    The cotangent of a broadcast input is the sum of ``g`` over exactly those axes:
    ``g`` of shape ``(4, 3, 5)`` against ``like`` of shape ``(3, 1)`` is summed over
    axis 0 (new) and axis 2 (stretched), giving shape ``(3, 1)``.

    Works on boxes too (it is written with the ``sum``/``reshape`` primitives), so
    higher-order derivatives see it.
    """
    shape = getattr(like, "shape", ())
    gshape = getattr(g, "shape", ())
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead))
    if 1 in shape:                              # stretched size-1 axes (none for a bias)
        axes += tuple(lead + i for i, n in enumerate(shape) if n == 1 and gshape[lead + i] != 1)
    if type(g) is np.ndarray:                   # plain values (grad's backward pass): no dispatch
        if axes:
            g = np.add.reduce(g, axis=axes)     # ndarray.sum without its Python wrapper
        return g if g.shape == shape else g.reshape(shape)
    if axes:
        g = _rules.sum(g, axis=axes)
    if getattr(g, "shape", ()) != shape:
        g = _rules.reshape(g, shape)
    return g
