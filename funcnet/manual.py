r"""Hand-derived backpropagation for `funcnet.MLP` (the delta rule).

No automatic differentiation is used here: every derivative below is written out
by hand, so the result is an independent check on ``jax.grad`` and on
`funcnet.tracer`.

With ``a^[0] = x`` (m rows), ``z^[l] = a^[l-1] W^[l] + b^[l]`` and
``a^[l] = g_l(z^[l])`` (weights stored ``(in, out)``), the lectures' rule is

    δ^[L] = ∂J/∂z^[L]                        from the loss and g_L (below)
    δ^[l] = g_l'(z^[l]) ∘ (δ^[l+1] W^[l+1]ᵀ)   l = L-1, ..., 1
    ∇_{W^[l]} J = a^[l-1]ᵀ δ^[l]              (n_{l-1}, n_l)
    ∇_{b^[l]} J = Σ_i δ^[l]_i                 (n_l,)

Loss derivatives with respect to the network output ŷ = a^[L] (shape (m, K)):

    mse                    2 (ŷ - y) / (m K)
    half_mse               (ŷ - y) / m
    softmax_cross_entropy  (softmax(ŷ) - y) / m        (y one-hot; integer labels are one-hot encoded)
    binary_cross_entropy   (σ(ŷ) - y) / (m K)

The cross-entropies take the network output as *logits*, so with the usual
``output_activation=None`` these are δ^[L] directly. Any other output activation
is chained on by its own hand-written derivative.

Activation derivatives (a = g(z)):

    identity    1
    sigmoid     a (1 - a)
    tanh        1 - a²
    relu        [z > 0]                   (relu'(0) = 0, as jax.nn)
    leaky_relu  [z ≥ 0] + 0.01 [z < 0]    (leaky_relu'(0) = 1, as jax.nn)
    elu         1 for z > 0, a + α = α eᶻ otherwise
    softplus    σ(z)
    softmax     not elementwise: Jᵀu = a ∘ (u - Σ_k u_k a_k)   (per row)
    log_softmax Jᵀu = u - softmax(z) Σ_k u_k                  (per row)

Every built-in activation and all four losses are therefore supported, in any
combination (softmax output with mse, sigmoid output with half_mse, ...).
Custom activation or loss callables raise ``ValueError``: there is no
hand-derived rule for them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from funcnet import activations as _activations, losses as _losses
from funcnet.models import MLP
from funcnet._boundary import array_namespace, check_labels

__all__ = ["mlp_backprop", "mlp_loss", "MLPLoss", "activation_vjp", "loss_output_grad",
           "SUPPORTED_ACTIVATIONS", "SUPPORTED_LOSSES"]

_LOSSES: dict[str, Callable] = {
    "mse": _losses.mse,
    "half_mse": _losses.half_mse,
    "softmax_cross_entropy": _losses.softmax_cross_entropy,
    "binary_cross_entropy": _losses.binary_cross_entropy,
}
SUPPORTED_LOSSES = tuple(_LOSSES)
SUPPORTED_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu",
                         "silu", "softmax", "log_softmax")
_GELU_C, _GELU_K = 0.7978845608028654, 0.044715  # √(2/π) and the cubic term of gelu's tanh approximation
_LEAKY_SLOPE = 0.01  # funcnet.activations.leaky_relu's default slope
_ELU_ALPHA = 1.0  # funcnet.activations.elu's default alpha


def _loss_name(loss: Any) -> str:
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise ValueError(f"unknown loss {loss!r}; mlp_backprop supports {list(SUPPORTED_LOSSES)}")
        return loss
    for name, fn_ in _LOSSES.items():
        if loss is fn_:
            return name
    raise ValueError(
        f"mlp_backprop has hand-derived rules only for the losses {list(SUPPORTED_LOSSES)} "
        f"(by name or as funcnet.losses functions); got {loss!r}. Use jax.grad for a custom loss."
    )


def _activation_name(g: Callable) -> str:
    for name in SUPPORTED_ACTIVATIONS:
        if g is _activations.get(name):
            return name
    raise ValueError(
        f"mlp_backprop has hand-derived derivatives only for the activations {list(SUPPORTED_ACTIVATIONS)}; "
        f"got the custom callable {getattr(g, '__name__', repr(g))!r}. Use jax.grad for custom activations."
    )


def activation_vjp(name: str, z, a, u):
    r"""``uᵀ ∂g(z)/∂z`` for the activation ``name``, written by hand (shapes ``(m, n)``).

    For the elementwise activations this is ``u ∘ g'(z)``; for softmax and
    log_softmax it is the row-wise Jacobian-transpose product.
    """
    xp = array_namespace(z, a, u)
    if name == "identity":
        return u
    if name == "sigmoid":
        return u * a * (1.0 - a)
    if name == "tanh":
        return u * (1.0 - a * a)
    if name == "relu":
        return xp.where(z > 0, u, 0.0)
    if name == "leaky_relu":
        return xp.where(z >= 0, u, _LEAKY_SLOPE * u)
    if name == "elu":
        return xp.where(z > 0, u, u * (a + _ELU_ALPHA))
    if name == "softplus":
        return u * _activations.sigmoid(z)
    if name == "gelu":       # g = ½z(1 + t), t = tanh(c(z + k z³)): g' = ½(1 + t) + ½z(1 - t²)·c(1 + 3k z²)
        t = xp.tanh(_GELU_C * (z + _GELU_K * (z * z * z)))
        return u * (0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _GELU_C * (1.0 + 3.0 * _GELU_K * (z * z)))
    if name == "silu":       # g = z σ(z): g' = σ(z)(1 + z(1 - σ(z)))
        s = _activations.sigmoid(z)
        return u * (s * (1.0 + z * (1.0 - s)))
    if name == "softmax":
        return a * (u - xp.sum(u * a, axis=-1, keepdims=True))
    if name == "log_softmax":
        return u - _activations.softmax(z) * xp.sum(u, axis=-1, keepdims=True)
    raise ValueError(f"no hand-derived derivative for activation {name!r}; supported: {list(SUPPORTED_ACTIVATIONS)}")


def loss_output_grad(loss: Any, out, y):
    r"""∂J/∂ŷ for the loss ``loss`` at the network output ``out`` of shape ``(m, K)``, by hand.

    ``y`` has shape ``(m, K)``, or ``(m,)`` integer labels for ``softmax_cross_entropy``.
    """
    name = _loss_name(loss)
    xp = array_namespace(out, y)
    m, k = out.shape
    if name == "mse":
        return 2.0 * (out - y) / (m * k)
    if name == "half_mse":
        return (out - y) / m
    if name == "binary_cross_entropy":
        return (_activations.sigmoid(out) - y) / (m * k)
    # softmax_cross_entropy
    if np.issubdtype(np.dtype(y.dtype), np.integer):
        y = (y[:, None] == xp.arange(k)).astype(out.dtype)
    return (_activations.softmax(out) - y) / m


def _concrete(a) -> bool:
    """``a`` holds values (NumPy, or a JAX array outside a trace): value checks can run on it."""
    import jax

    return not isinstance(a, jax.core.Tracer)


def _check_targets(name: str, x_shape: tuple, k: int, y) -> None:
    lead = tuple(x_shape[:-1])
    y_shape = tuple(getattr(y, "shape", ()))
    integer = np.issubdtype(np.dtype(getattr(y, "dtype", np.float64)), np.integer)
    if name == "softmax_cross_entropy" and integer:
        if y_shape != lead:
            raise ValueError(f"integer labels for inputs of shape {tuple(x_shape)} must have shape {lead}, got {y_shape}")
        if _concrete(y):
            check_labels(y, k, "labels", where="mlp_backprop")
        return
    if integer:
        raise TypeError(f"{name} needs float targets of shape {lead + (k,)}, got integer targets")
    if name == "softmax_cross_entropy" and y_shape == lead:
        raise TypeError(f"softmax_cross_entropy needs integer class labels of shape {lead} or one-hot float targets "
                        f"of shape {lead + (k,)}; got float targets of shape {y_shape} (dtype {y.dtype}): cast labels "
                        "with .astype(int)")
    if y_shape != lead + (k,):
        raise ValueError(
            f"targets for {name} must have the output's shape {lead + (k,)} (inputs {tuple(x_shape)}), got {y_shape}"
        )
    if _concrete(y):
        arr = np.asarray(y)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"mlp_backprop: the targets hold {int((~np.isfinite(arr)).sum())} non-finite value(s)")
        if name == "binary_cross_entropy" and arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"binary_cross_entropy targets must lie in [0, 1], got values in "
                             f"[{arr.min():g}, {arr.max():g}]")


def mlp_backprop(model: MLP, params, x, y, loss: Any = "mse"):
    r"""Gradient of ``loss(model.apply(params, x), y)`` with respect to ``params``, by the delta rule.

    Args:
      model: an `funcnet.MLP` whose activations are all built-in (see module docs).
      params: the model's parameters, ``[{"w": (n_{l-1}, n_l), "b": (n_l,)}, ...]``.
      x: inputs ``(n_0,)`` or ``(..., n_0)``; all leading axes are examples.
      y: targets of the output's shape ``(..., n_L)``; integer labels ``(...)`` for
        ``softmax_cross_entropy``.
      loss: ``"mse"``, ``"half_mse"``, ``"softmax_cross_entropy"``, ``"binary_cross_entropy"``
        or the matching `funcnet.losses` function.

    Returns:
      The same pytree as ``jax.grad(lambda p: loss(model.apply(p, x), y))(params)``:
      a list of ``{"w", "b"}`` dicts, in the namespace of the inputs (NumPy or JAX).

    Examples:
      The lectures' 2-2-1 tanh network on one example:

      >>> import numpy as np, funcnet as fn
      >>> model = fn.mlp([2, 2, 1], activation="tanh")      # linear output x3 = W1 tanh(W0 x0)
      >>> p = [{"w": np.array([[1.0, 0.2], [-3.0, 1.0]]), "b": np.zeros(2)},
      ...      {"w": np.array([[1.0], [-1.0]]), "b": np.zeros(1)}]
      >>> g = fn.manual.mlp_backprop(model, p, np.array([1.0, 0.1]), np.array([0.5]), loss="half_mse")
      >>> np.round(g[1]["w"].ravel(), 4)
      array([-0.113 , -0.0545])
    """
    if not isinstance(model, MLP):
        raise TypeError(f"mlp_backprop needs a funcnet MLP (fn.mlp(...)), got {type(model).__name__}")
    name = _loss_name(loss)
    act_names = [_activation_name(g) for g in model.layer_activations]
    model.check_params(params)
    xp = array_namespace(params, x, y)
    x = xp.asarray(x)
    y = xp.asarray(y)
    model._check_input(x)
    k = model.sizes[-1]
    _check_targets(name, tuple(x.shape), k, y)

    m = math.prod(x.shape[:-1])
    x2 = xp.reshape(x, (m, model.sizes[0]))
    y2 = xp.reshape(y, (m,) if y.ndim == x.ndim - 1 else (m, k))

    # Forward pass, keeping z^[l] and a^[l].
    layers = model.activations(params, x2)
    a_prev = [x2] + [layer["a"] for layer in layers[:-1]]

    # δ^[L]: the loss's derivative at the output, chained through g_L.
    u = loss_output_grad(name, layers[-1]["a"], y2)
    grads = [None] * len(params)
    for l in range(len(params) - 1, -1, -1):
        delta = activation_vjp(act_names[l], layers[l]["z"], layers[l]["a"], u)      # δ^[l]
        grads[l] = {"w": a_prev[l].T @ delta, "b": xp.sum(delta, axis=0)}
        u = delta @ params[l]["w"].T                                                # δ^[l] W^[l]ᵀ
    return grads


@dataclasses.dataclass(frozen=True)
class MLPLoss:
    """``params -> loss(model.apply(params, x), y)``: an MLP loss that `compare_grads` can also check by hand.

    Build with `mlp_loss`. Calling it runs under JAX and under the tracer.
    """

    model: MLP
    x: Any
    y: Any
    loss: str = "mse"

    def __call__(self, params):
        return _LOSSES[self.loss](self.model.apply(params, self.x), self.y)

    def manual_grad(self, params):
        """The hand-derived gradient (`mlp_backprop`)."""
        return mlp_backprop(self.model, params, self.x, self.y, self.loss)


def mlp_loss(model: MLP, x, y, loss: Any = "mse") -> MLPLoss:
    """Wrap ``loss(model.apply(params, x), y)`` as a function of ``params`` alone.

    Passing the result to `funcnet.check.compare_grads` adds the hand-derived
    ``"manual"`` method to the comparison.

    Examples:
      >>> import jax, numpy as np, funcnet as fn
      >>> model = fn.mlp([3, 4, 2], activation="tanh")
      >>> f = fn.manual.mlp_loss(model, np.ones((5, 3)), np.zeros((5, 2)), loss="half_mse")
      >>> fn.check.compare_grads(f, model.init(jax.random.key(0))).ok
      True
    """
    if not isinstance(model, MLP):
        raise TypeError(f"mlp_loss needs a funcnet MLP (fn.mlp(...)), got {type(model).__name__}")
    return MLPLoss(model, x, y, _loss_name(loss))
