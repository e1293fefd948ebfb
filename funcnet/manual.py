"""Hand-derived backpropagation (the delta rule) for funcnet MLPs, independent of any autodiff.

    g = fn.manual.mlp_backprop(model, params, x, y, loss="half_mse")   # same pytree as jax.grad

See :func:`mlp_backprop` for the equations and the supported activations and losses.
"""

from funcnet._manual import (
    SUPPORTED_ACTIVATIONS,
    SUPPORTED_LOSSES,
    MLPLoss,
    activation_vjp,
    loss_output_grad,
    mlp_backprop,
    mlp_loss,
)

__all__ = ["mlp_backprop", "mlp_loss", "MLPLoss", "activation_vjp", "loss_output_grad",
           "SUPPORTED_ACTIVATIONS", "SUPPORTED_LOSSES"]
