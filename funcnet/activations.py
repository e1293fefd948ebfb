"""Activation functions written once against the Array API.

Every function takes an array ``z`` of any shape and returns an array of the same
shape (``softmax``/``log_softmax`` normalise over the last axis). They run under
JAX (``jit``/``grad``/``vmap``), on NumPy arrays, and under `funcnet.tracer`.
At non-differentiable points they follow ``jax.nn``: relu'(0) = 0,
leaky_relu'(0) = 1, elu'(0) = 1.
"""

from __future__ import annotations

from typing import Any, Callable, Union

from funcnet._boundary import array_namespace, constant, overridable

Activation = Callable[[Any], Any]
ActivationSpec = Union[str, Activation, None]

__all__ = [
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus",
    "softmax", "log_softmax", "gelu", "silu", "get", "names",
]


def identity(z):
    r"""g(z) = z."""
    return z


def sigmoid(z):
    r"""Logistic sigmoid σ(z) = 1 / (1 + e^{-z}), computed as ½(tanh(z/2) + 1).

    The tanh form never overflows; σ'(z) = σ(z)(1 - σ(z)).
    """
    xp = array_namespace(z)
    return 0.5 * (xp.tanh(0.5 * z) + 1.0)


def tanh(z):
    r"""Hyperbolic tangent; tanh'(z) = 1 - tanh(z)²."""
    return array_namespace(z).tanh(z)


def relu(z):
    r"""Rectified linear unit max(z, 0); derivative 1 for z > 0, 0 for z ≤ 0 (as ``jax.nn.relu``)."""
    xp = array_namespace(z)
    return xp.where(z > 0, z, 0.0)


def leaky_relu(z, negative_slope: float = 0.01):
    r"""z for z ≥ 0, ``negative_slope``·z otherwise (as ``jax.nn.leaky_relu``)."""
    xp = array_namespace(z)
    return xp.where(z >= 0, z, negative_slope * z)


def elu(z, alpha: float = 1.0):
    r"""z for z > 0, α(e^z - 1) otherwise (as ``jax.nn.elu``).

    The exponential only sees the non-positive part of z, so large z never
    produces ``inf`` in the unused branch (and no NaN in its gradient).
    """
    xp = array_namespace(z)
    safe = xp.where(z > 0, 0.0, z)
    return xp.where(z > 0, z, alpha * xp.expm1(safe))


def softplus(z):
    r"""log(1 + e^z), computed stably as relu(z) + log1p(e^{-|z|}); softplus'(z) = σ(z).

    -|z| is written as ``where(z > 0, -z, z)`` so that the derivative is σ(z) at
    z = 0 too (0.5, as ``jax.nn.softplus``), whatever convention abs'(0) follows.
    """
    xp = array_namespace(z)
    return relu(z) + xp.log1p(xp.exp(xp.where(z > 0, -z, z)))


def gelu(z, approximate: bool = True):
    r"""Gaussian error linear unit z·Φ(z), as ``jax.nn.gelu``.

    ``approximate=True`` (the default, as JAX): ½z(1 + tanh(√(2/π)(z + 0.044715 z³))).
    ``approximate=False``: ½z(1 + erf(z/√2)), the exact form; pass it as a callable,
    ``activation=functools.partial(fn.activations.gelu, approximate=False)`` (needs JAX or NumPy inputs
    whose namespace has ``erf``; JAX's ``jax.scipy.special.erf`` is used for JAX arrays).
    """
    xp = array_namespace(z)
    if approximate:
        c = 0.7978845608028654                       # √(2/π)
        return 0.5 * z * (1.0 + xp.tanh(c * (z + 0.044715 * (z * z * z))))
    if getattr(xp, "__name__", "").startswith("jax"):
        from jax.scipy.special import erf
    else:
        erf = getattr(xp, "erf", None)
        if erf is None:
            raise TypeError(f"gelu(approximate=False) needs erf, which namespace {getattr(xp, '__name__', xp)!r} "
                            "lacks; use approximate=True or JAX inputs")
    return 0.5 * z * (1.0 + erf(z * 0.7071067811865476))


def silu(z):
    r"""Sigmoid linear unit z·σ(z) (also called swish), as ``jax.nn.silu``; silu'(z) = σ(z)(1 + z(1 - σ(z)))."""
    return z * sigmoid(z)


@overridable
def log_softmax(z):
    r"""log softmax over the last axis: z_k - log Σ_j e^{z_j}, computed with the max subtracted.

    Shapes: (..., K) -> (..., K). Finite for logits of any magnitude. ``overridable``: funcnet's
    tracer records it as one node whose rule is g - softmax(z) Σ g.
    """
    xp = array_namespace(z)
    shifted = z - xp.max(constant(xp, z), axis=-1, keepdims=True)   # the shift cancels: held constant
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def softmax(z):
    r"""softmax over the last axis: e^{z_k} / Σ_j e^{z_j}. Shapes: (..., K) -> (..., K)."""
    xp = array_namespace(z)
    e = xp.exp(z - xp.max(constant(xp, z), axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


_REGISTRY: dict[str, Activation] = {
    "identity": identity,
    "linear": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "softplus": softplus,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "gelu": gelu,
    "silu": silu,
    "swish": silu,
}


def names() -> tuple[str, ...]:
    """The activation names accepted by `get` and `funcnet.mlp`."""
    return tuple(_REGISTRY)


def get(spec: ActivationSpec) -> Activation:
    """Resolve an activation given by name, callable, or ``None`` (identity).

    Raises:
      ValueError: for an unknown name; the message lists the valid ones.
      TypeError: for anything that is neither a string nor a callable.
    """
    if spec is None:
        return identity
    if isinstance(spec, str):
        try:
            return _REGISTRY[spec]
        except KeyError:
            raise ValueError(
                f"unknown activation {spec!r}; expected one of {sorted(_REGISTRY)} or a callable"
            ) from None
    if callable(spec):
        return spec
    raise TypeError(f"activation must be a name, a callable or None; got {type(spec).__name__}: {spec!r}")
