"""Multilayer perceptrons as pure functions.

An MLP with layer sizes ``[n_0, n_1, ..., n_L]`` computes, for an input
``x`` of shape ``(..., n_0)``,

    a^[0] = x
    z^[l] = a^[l-1] W^[l] + b^[l]        W^[l]: (n_{l-1}, n_l),  b^[l]: (n_l,)
    a^[l] = g_l(z^[l])

and returns ``a^[L]`` of shape ``(..., n_L)``. This is the lectures'
h(x) = g2(W2 g1(W1 x + b1) + b2) with the weights stored transposed
(``(in, out)``), so that a batch of row vectors multiplies on the left.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jax.nn import initializers as jinit

from funcnet import activations as _activations
from funcnet import _boundary
from funcnet._boundary import array_namespace

Params = list  # list of {"w": (in, out), "b": (out,)}

__all__ = ["MLP", "mlp", "param_count"]


# ------------------------------------------------------------ initialisation schemes
# Weight initialisation schemes.
# 
# Each scheme is a JAX initializer ``(key, shape, dtype) -> array`` for a weight
# matrix of shape ``(fan_in, fan_out)``. Biases always start at zero.
# 
# =========== ======================================================== =====================
# name        distribution                                             Var[w]
# =========== ======================================================== =====================
# ``he``      truncated normal (He et al. 2015)                        2 / fan_in
# ``xavier``  uniform U(-a, a), a = √(6 / (fan_in + fan_out)) (Glorot) 2 / (fan_in + fan_out)
# ``lecun``   truncated normal (LeCun 1998)                            1 / fan_in
# ``uniform`` U(-0.1, 0.1)                                             0.01 / 3
# ``normal``  N(0, σ²) with σ = 0.01                                   1e-4
# ``zeros``   all zeros (shows the symmetry problem)                   0
# ``constant`` all 0.1 (shows the symmetry problem)                    0
# =========== ======================================================== =====================

Initializer = Callable[[Any, tuple, Any], jax.Array]
InitSpec = Union[str, Initializer]

CONSTANT_VALUE = 0.1


def _uniform(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, minval=-0.1, maxval=0.1)


_REGISTRY: dict[str, Initializer] = {
    "he": jinit.he_normal(),
    "xavier": jinit.glorot_uniform(),
    "glorot": jinit.glorot_uniform(),
    "lecun": jinit.lecun_normal(),
    "uniform": _uniform,
    "normal": jinit.normal(stddev=0.01),
    "zeros": jinit.zeros,
    "constant": jinit.constant(CONSTANT_VALUE),
}


def init_names() -> tuple[str, ...]:
    """The init scheme names accepted by `funcnet.mlp`."""
    return tuple(_REGISTRY)


def initializer(spec: InitSpec) -> Initializer:
    """Resolve an init scheme by name or pass a callable ``(key, shape, dtype) -> array`` through."""
    if isinstance(spec, str):
        try:
            return _REGISTRY[spec]
        except KeyError:
            raise ValueError(
                f"unknown init scheme {spec!r}; expected one of {sorted(_REGISTRY)} "
                "or a callable (key, shape, dtype) -> array"
            ) from None
    if callable(spec):
        return spec
    raise TypeError(f"init must be a name or a callable; got {type(spec).__name__}: {spec!r}")


def _act_name(spec) -> Any:
    return spec if isinstance(spec, str) or spec is None else getattr(spec, "__name__", repr(spec))


@dataclasses.dataclass(frozen=True)
class MLP:
    """A multilayer perceptron: static config plus the pure functions ``init``, ``apply``, ``activations``.

    Build one with `funcnet.mlp`. Instances are immutable and hashable, so a
    model can be passed to ``jax.jit`` as a static argument or closed over.

    Attributes:
      sizes: layer widths ``(n_0, ..., n_L)``; ``n_0`` is the input width.
      hidden_activations: one activation (name or callable) per hidden layer.
      output_activation: activation of the last layer (``None`` means identity).
      init_scheme: weight initializer (name or callable).
    """

    sizes: tuple[int, ...]
    hidden_activations: tuple[Any, ...]
    output_activation: Any
    init_scheme: Any

    @functools.cached_property
    def _param_shapes(self) -> tuple:
        return tuple(((i, o), (o,)) for i, o in zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def num_layers(self) -> int:
        """Number of weight layers L (``len(sizes) - 1``)."""
        return len(self.sizes) - 1

    @functools.cached_property
    def layer_activations(self) -> tuple[Callable, ...]:
        """The resolved activation function of every layer, output layer last."""
        return tuple(_activations.get(a) for a in (*self.hidden_activations, self.output_activation))

    # ------------------------------------------------------------------ init
    def init(self, key, dtype=None) -> Params:
        """Draw initial parameters.

        Args:
          key: a JAX PRNG key (``jax.random.key(0)``; legacy ``PRNGKey`` accepted).
          dtype: float dtype of the parameters; default float32 (float64 when
            ``jax_enable_x64`` is on).

        Returns:
          A list of ``{"w": (n_{l-1}, n_l), "b": (n_l,)}`` dicts, one per layer.
          Weights follow ``init_scheme``; biases are zero.
        """
        key = _boundary.prng_key(key, where="MLP.init")
        dtype = jnp.asarray(0.0).dtype if dtype is None else _boundary.float_dtype(dtype, where="MLP.init")
        init_fn = initializer(self.init_scheme)
        keys = jax.random.split(key, self.num_layers)
        params = []
        for k, n_in, n_out in zip(keys, self.sizes[:-1], self.sizes[1:]):
            params.append({"w": init_fn(k, (n_in, n_out), dtype), "b": jnp.zeros((n_out,), dtype)})
        return params

    # ----------------------------------------------------------- validation
    def check_params(self, params: Any) -> None:
        """Raise ``ValueError`` unless ``params`` is a list of ``{"w", "b"}`` dicts of this model's shapes."""
        expected = self._param_shapes
        if type(params) is list and len(params) == len(expected):     # the common case, checked quickly
            try:
                for layer, (ws, bs) in zip(params, expected):
                    w, b = layer["w"], layer["b"]
                    if not (type(layer) is dict and len(layer) == 2 and w.shape == ws and b.shape == bs
                            and w.dtype.kind == "f" and b.dtype.kind == "f"):
                        break
                else:
                    return
            except (KeyError, AttributeError):
                pass                                                  # described below
        if not isinstance(params, (list, tuple)) or len(params) != len(expected):
            got = f"{type(params).__name__} of length {len(params)}" if isinstance(params, (list, tuple)) else type(params).__name__
            raise ValueError(
                f"params do not match the model with sizes {list(self.sizes)}: expected a list of "
                f"{len(expected)} layer dicts {{'w': (in, out), 'b': (out,)}}, got {got}"
            )
        for l, (layer, (ws, bs)) in enumerate(zip(params, expected)):
            if not isinstance(layer, dict) or set(layer) != {"w", "b"}:
                keys = sorted(layer) if isinstance(layer, dict) else type(layer).__name__
                raise ValueError(f"params[{l}] must be a dict with keys ['b', 'w'], got {keys}")
            for name, shape in (("w", ws), ("b", bs)):
                got = tuple(getattr(layer[name], "shape", ()))
                if got != shape:
                    raise ValueError(
                        f"params[{l}][{name!r}] has shape {got}, expected {shape} "
                        f"for the model with sizes {list(self.sizes)}"
                    )
                dtype = getattr(layer[name], "dtype", None)
                if dtype is None or np.dtype(dtype).kind != "f":
                    raise TypeError(f"params[{l}][{name!r}] has dtype {dtype}; parameters must be real float arrays "
                                    "(e.g. model.init(key), or jnp.asarray(w, jnp.float32))")

    def _check_input(self, x) -> None:
        if np.dtype(x.dtype).kind not in "fiub":
            raise TypeError(f"inputs must be real numbers (float, int or bool arrays), got dtype {x.dtype}")
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) == 0 or shape[-1] != self.sizes[0]:
            raise ValueError(
                f"layer 0 expects inputs of width {self.sizes[0]} (shape (..., {self.sizes[0]})), "
                f"got an input of shape {shape}"
            )

    # --------------------------------------------------------------- forward
    def activations(self, params: Params, x) -> list[dict[str, Any]]:
        """Every layer's pre-activation and activation.

        Args:
          params: as returned by `init`.
          x: input of shape ``(n_0,)`` or ``(..., n_0)``.

        Returns:
          A list with one ``{"z": z^[l], "a": a^[l]}`` per layer l = 1..L, each of
          shape ``(..., n_l)``.
        """
        self.check_params(params)
        if not hasattr(x, "shape"):
            x = array_namespace(params, x).asarray(x)
        self._check_input(x)
        if np.dtype(x.dtype).kind != "f":           # int/bool inputs (XOR, pixel counts) in the weights' dtype
            x = x.astype(params[0]["w"].dtype)
        return self._forward(params, x, _product)

    def _forward(self, params, x, product: Callable) -> list[dict[str, Any]]:
        """The layer loop of `activations`, unchecked, with ``product(a, layer)`` giving a·W.

        funcnet.inputs passes a product whose VJP uses a transposed copy of W (weights held fixed).
        """
        out = []
        a = x
        for layer, g in zip(params, self.layer_activations):
            z = product(a, layer) + layer["b"]
            a = g(z)
            out.append({"z": z, "a": a})
        return out

    def apply(self, params: Params, x):
        """The network function h(x): input ``(n_0,)`` or ``(..., n_0)`` -> output ``(n_L,)`` or ``(..., n_L)``.

        Pure; runs under ``jax.jit``/``grad``/``vmap``, on NumPy arrays and under
        `funcnet.tracer`, in the namespace chosen from ``params`` and ``x`` together.
        """
        return self.activations(params, x)[-1]["a"]

    __call__ = apply

    def __repr__(self) -> str:
        acts = [_act_name(a) for a in self.hidden_activations]
        return (f"MLP(sizes={list(self.sizes)}, hidden_activations={acts}, "
                f"output_activation={_act_name(self.output_activation)!r}, init={_act_name(self.init_scheme)!r})")


def _product(a, layer):
    return a @ layer["w"]


def mlp(
    sizes: Sequence[int],
    activation: Any = "relu",
    output_activation: Any = None,
    init: Any = "he",
) -> MLP:
    """Build a multilayer perceptron.

    Args:
      sizes: layer widths ``[n_0, n_1, ..., n_L]``, at least two positive ints.
      activation: hidden-layer activation: a name from
        `funcnet.activations.names`, a callable, or a list with one entry per
        hidden layer (``len(sizes) - 2`` entries).
      output_activation: activation of the last layer; ``None`` gives raw outputs
        (logits), which is what `funcnet.losses` expects.
      init: weight init scheme name (``"he"``, ``"xavier"``, ``"lecun"``,
        ``"uniform"``, ``"normal"``, ``"zeros"``, ``"constant"``) or a callable
        ``(key, shape, dtype) -> array``.

    Returns:
      An `MLP`.

    Examples:
      >>> import jax, funcnet as fn
      >>> model = fn.mlp([100, 2000, 10])
      >>> fn.param_count(model.init(jax.random.key(0)))
      222010
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise TypeError(f"sizes must be a sequence of ints [n_in, ..., n_out], got {type(sizes).__name__} {sizes!r}")
    if len(sizes) < 2:
        raise ValueError(f"sizes must hold at least two positive widths [n_in, ..., n_out], got {list(sizes)}")
    sizes = tuple(_boundary.count(s, f"sizes[{i}]", where="mlp") for i, s in enumerate(sizes))
    n_hidden = len(sizes) - 2
    if isinstance(activation, (list, tuple)):
        if len(activation) != n_hidden:
            raise ValueError(
                f"activation list must have one entry per hidden layer ({n_hidden} for sizes "
                f"{list(sizes)}), got {len(activation)}"
            )
        hidden = tuple(activation)
    else:
        hidden = (activation,) * n_hidden
    for a in (*hidden, output_activation, *(() if isinstance(activation, (list, tuple)) else (activation,))):
        _activations.get(a)  # validate names now, not at the first call (even with no hidden layer)
    initializer(init)
    return MLP(sizes, hidden, output_activation, init)


def param_count(params: Any) -> int:
    """Total number of scalars in a pytree of arrays (e.g. ``[100, 2000, 10]`` -> 222010)."""
    return int(sum(math.prod(getattr(leaf, "shape", ())) for leaf in jax.tree_util.tree_leaves(params)))
