"""funcnet: functional differentiable programming with JAX.

MLPs are pure functions with pytree parameters; training is compiled and
functional; inputs can be optimized as well as weights; and a from-scratch
reverse-mode tracer (`funcnet.tracer`) shows how autodiff works and is
checked against ``jax.grad``.

    import funcnet as fn
    model = fn.mlp([64, 128, 10])
    params = model.init(jax.random.key(0))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Names resolved on first use, so that `import funcnet` (and `funcnet --help`) does not import JAX,
# and the optional parts (plots, the tracer, the CLI) load only when asked for.
_LAZY_MODULES = ("activations", "datasets", "losses", "models", "tracer", "check", "manual", "inputs", "optim",
                 "sharding", "plotting", "train", "checkpoint", "testing")
_LAZY_ATTRS = {
    "MLP": "funcnet.models",
    "mlp": "funcnet.models",
    "param_count": "funcnet.models",
    "make_train_step": "funcnet.train",
    "fit": "funcnet.train",
    "History": "funcnet.train",
    "NonFiniteLossWarning": "funcnet.train",
    "select_hyperparameters": "funcnet.train",
    "accuracy": "funcnet.train",
    "per_example_grads": "funcnet.train",
    "save": "funcnet.checkpoint",
    "load": "funcnet.checkpoint",
}

__all__ = [
    *_LAZY_MODULES, *_LAZY_ATTRS, "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        module = importlib.import_module(f"funcnet.{name}")
    elif name in _LAZY_ATTRS:
        module = getattr(importlib.import_module(_LAZY_ATTRS[name]), name)
    else:
        raise AttributeError(f"module 'funcnet' has no attribute {name!r}")
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
