"""Activation functions by name or as callables (see :func:`funcnet.mlp`)."""

from funcnet._activations import (
    elu, get, identity, leaky_relu, log_softmax, names, relu, sigmoid, softmax, softplus, tanh,
)

__all__ = [
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "softmax", "log_softmax",
    "get", "names",
]
