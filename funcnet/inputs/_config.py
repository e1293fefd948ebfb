r"""Grouped options of the input optimizers, as small frozen (hashable) config objects.

Each is checked when it is built — a bad value raises there, before anything compiles — and is hashable, so it
serves as a static argument of the compiled programs:

* `Regularizers` — what keeps an activation-maximization image natural: penalties on x (L1, L2, total
  variation, blur, closeness to the box edges) and transformation robustness (random shift, scale and rotation
  of the input the model sees at every step);
* `Parametrization` — how the optimized variable u becomes the input x = ρ(u): pixel or Fourier space
  (with 1/f^decay scaling of the frequencies), and the squash that keeps x inside ``value_range``;
* `Attack` — the options of `fgsm` / `pgd` besides the data and ε.

The public functions also take every field as a flat keyword (``l2=1e-3``); flat keywords build the config, and
giving one option both ways is an error.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

from funcnet import _boundary

__all__ = ["Regularizers", "Parametrization", "Attack", "merge_options"]

_SPACES = ("pixel", "fourier", "pca")
_SQUASHES = ("sigmoid", "tanh", "clip")
_NORMS = ("linf", "l2")


def _pair(value: Any, name: str, where: str) -> tuple[float, float]:
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise TypeError(f"{where}: {name} must be a pair (lo, hi) of numbers, got {value!r}") from None
    lo = _boundary.real(lo, f"{name}[0]", where=where)
    hi = _boundary.real(hi, f"{name}[1]", where=where)
    if not lo < hi:
        raise ValueError(f"{where}: {name} must be (lo, hi) with lo < hi, got {value!r}")
    return lo, hi


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


@dataclasses.dataclass(frozen=True)
class Regularizers:
    r"""Penalties on the input and transformation robustness for `visualize_units`.

    The objective maximized for unit j is, with x = ρ(u) and T a random transformation drawn at every step,

        h_j(T(x)) - l1·Σ|x| - l2·Σx² - tv·TV(x) - blur·Σ(x - G_σ*x)² - edge·Σ -log(1 - s²) - Σ_k w_k R_k(x)

    where s = (2x - lo - hi)/(hi - lo) ∈ (-1, 1) is x's position in ``value_range`` (the edge barrier is 0 at
    mid-range and grows without bound at the box edges; it needs a ``value_range``).

    Attributes:
      l1, l2, tv, blur: weights (≥ 0) of the L1, squared-L2, total-variation and blur penalties.
      blur_sigma: σ (pixels, > 0) of the blur penalty's Gaussian.
      edge: weight (≥ 0) of the barrier that keeps pixels off the box edges.
      jitter: largest random shift in pixels (≥ 0, fractional shifts by bilinear resampling) per step.
      scale: largest relative random zoom (0 ≤ scale < 1): the model sees x zoomed by 1 ± scale.
      rotate: largest random rotation in degrees (0..180) per step, for inputs with two spatial axes.
      extra: more ``(weight, R)`` pairs, ``R(x) -> scalar`` pure, subtracted as weight·R(x).

    The defaults are the recipe measured in ``docs/inputs.md`` (L2 0.1, shifts of ≤ 0.5 px, zoom 1 ± 0.1,
    rotations of ≤ 10°); ``Regularizers(l2=0, jitter=0, scale=0, rotate=0)`` turns everything off.

    Examples:
      >>> import funcnet as fn
      >>> fn.inputs.Regularizers(l2=0.01, jitter=1).l2
      0.01
    """

    l1: float = 0.0
    l2: float = 0.1
    tv: float = 0.0
    blur: float = 0.0
    blur_sigma: float = 1.0
    edge: float = 0.0
    jitter: float = 0.5
    scale: float = 0.1
    rotate: float = 10.0
    extra: tuple = ()

    def __post_init__(self):
        where = "Regularizers"
        for name in ("l1", "l2", "tv", "blur", "edge", "jitter", "scale", "rotate"):
            _set(self, name, _boundary.real(getattr(self, name), name, minimum=0, where=where))
        sigma = _boundary.real(self.blur_sigma, "blur_sigma", minimum=0, where=where)
        if sigma == 0:
            raise ValueError(f"{where}: blur_sigma must be > 0 (pixels), got 0.0")
        _set(self, "blur_sigma", sigma)
        if self.scale >= 1:
            raise ValueError(f"{where}: scale must be < 1 (a relative zoom 1 ± scale), got {self.scale}")
        if self.rotate > 180:
            raise ValueError(f"{where}: rotate must be <= 180 degrees, got {self.rotate}")
        try:
            pairs = tuple(tuple(p) for p in self.extra)
        except TypeError:
            raise TypeError(f"{where}: extra must be a sequence of (weight, R) pairs, got {self.extra!r}") from None
        checked = []
        for pair in pairs:
            if len(pair) != 2 or not callable(pair[1]):
                raise TypeError(f"{where}: extra must hold (weight, callable R) pairs, got {pair!r}")
            checked.append((_boundary.real(pair[0], "extra weight", minimum=0, where=where), pair[1]))
        _set(self, "extra", tuple(checked))

    @property
    def transforms(self) -> bool:
        """Whether any random transformation is on."""
        return bool(self.jitter or self.scale or self.rotate)


@dataclasses.dataclass(frozen=True)
class Parametrization:
    r"""How the optimized variable u becomes the input x = ρ(u).

    ``space="pixel"``: z = u, one variable per input value. ``space="pca"``: z = μ + Σ_k u_k s_k v_k in the
    principal components of the training data (``basis=fn.inputs.pca_basis(X, value_range=...)``, see
    `pca_basis`): the data's own covariance as the prior, u = 0 its mean. ``space="fourier"``: u holds the real and imaginary
    parts of the spatial spectrum and z = F⁻¹(u · f^-decay) (frequencies f in cycles per pixel, the lowest
    nonzero frequency standing in for f = 0, scaled so that max = 1): with decay > 0 gradient steps move low
    frequencies more than high ones — a decorrelated, smoother image (Olah et al., "Feature Visualization").
    With a ``value_range`` (lo, hi), ``squash`` keeps x inside it: ``"sigmoid"`` x = lo + (hi-lo)σ(z),
    ``"tanh"`` x = mid + half·tanh(z), or ``"clip"`` (projected ascent, pixel space only).

    The defaults (Fourier space, decay 2) are the recipe measured in ``docs/inputs.md``.

    Attributes:
      space: ``"pixel"`` or ``"fourier"``.
      value_range: ``(lo, hi)`` bounds on x, or None (unbounded).
      squash: ``"sigmoid"`` (the default when bounded), ``"tanh"`` or ``"clip"``; needs ``value_range``.
      decay: the Fourier scaling exponent (≥ 0; 0 is plain Fourier space).
      init_scale: standard deviation (≥ 0) of the noise u starts from.
      basis: a `Basis` from `pca_basis` (``space="pca"`` only).
      prior: weight (≥ 0) of the Gaussian log-prior ½‖u‖² subtracted from the objective; with ``space="pca"``
        and ``power=1`` it is ½ the squared Mahalanobis distance of z from the data's mean, so the optimum
        balances the unit against how typical the input is, and does not drift with the number of steps.

    Examples:
      >>> import funcnet as fn
      >>> fn.inputs.Parametrization(space="fourier", value_range=(0, 1)).squash
      'sigmoid'
    """

    space: str = "fourier"
    value_range: Optional[tuple] = None
    squash: Optional[str] = None
    decay: float = 2.0
    init_scale: float = 0.01
    basis: Any = None
    prior: float = 0.0

    def __post_init__(self):
        where = "Parametrization"
        if self.space not in _SPACES:
            raise ValueError(f"{where}: space must be one of {list(_SPACES)}, got {self.space!r}")
        if self.value_range is not None:
            _set(self, "value_range", _pair(self.value_range, "value_range", where))
            _set(self, "squash", "sigmoid" if self.squash is None else self.squash)
            if self.squash not in _SQUASHES:
                raise ValueError(f"{where}: squash must be one of {list(_SQUASHES)}, got {self.squash!r}")
            if self.squash == "clip" and self.space == "fourier":
                raise ValueError(f"{where}: squash='clip' projects pixels and needs space='pixel'; use 'sigmoid' "
                                 "or 'tanh' with space='fourier'")
        elif self.squash is not None:
            raise ValueError(f"{where}: squash={self.squash!r} needs value_range=(lo, hi), the bounds it enforces")
        _set(self, "decay", _boundary.real(self.decay, "decay", minimum=0, where=where))
        _set(self, "init_scale", _boundary.real(self.init_scale, "init_scale", minimum=0, where=where))
        _set(self, "prior", _boundary.real(self.prior, "prior", minimum=0, where=where))
        self._check_basis(where)

    def _check_basis(self, where: str) -> None:
        from funcnet.inputs._basis import Basis

        if self.space != "pca":
            if self.basis is not None:
                raise ValueError(f"{where}: basis= is used by space='pca' only, got space={self.space!r}")
            return
        if not isinstance(self.basis, Basis):
            raise TypeError(f"{where}: space='pca' needs basis=fn.inputs.pca_basis(X, ...), got "
                            f"{type(self.basis).__name__}")
        if self.squash == "clip":
            raise ValueError(f"{where}: squash='clip' projects pixels and needs space='pixel'; use 'sigmoid' "
                             "with space='pca'")
        if self.basis.value_range != self.value_range or self.squash not in (None, "sigmoid"):
            raise ValueError(
                f"{where}: the basis was computed for value_range={self.basis.value_range} (the sigmoid's "
                f"pre-image when set) but the parametrization has value_range={self.value_range}, squash="
                f"{self.squash!r}; build it with fn.inputs.pca_basis(X, value_range={self.value_range})"
            )


@dataclasses.dataclass(frozen=True)
class Attack:
    r"""Options of `pgd` and `fgsm` besides the model, the data and ε.

    Attributes:
      steps: number of PGD steps (an int ≥ 1; FGSM is one step).
      step_size: α (> 0), or None for 2.5 ε / steps.
      norm: ``"linf"`` (sign steps) or ``"l2"`` (normalized-gradient steps).
      random_start: start from a uniform random point of the ε-ball (needs a key).
      targeted: move towards the labels (descend their loss) instead of away from them.
      clip: ``(lo, hi)`` valid input range, or None.
      loss: ``(logits, y) -> per-example losses`` instead of softmax cross-entropy, or None.

    Examples:
      >>> import funcnet as fn
      >>> fn.inputs.Attack(steps=20, norm="l2").norm
      'l2'
    """

    steps: int = 10
    step_size: Optional[float] = None
    norm: str = "linf"
    random_start: bool = False
    targeted: bool = False
    clip: Optional[tuple] = None
    loss: Optional[Callable] = None

    def __post_init__(self):
        where = "Attack"
        _set(self, "steps", _boundary.count(self.steps, "steps", where=where))
        if self.step_size is not None:
            size = _boundary.real(self.step_size, "step_size", minimum=0, where=where)
            _set(self, "step_size", size)
        if self.norm not in _NORMS:
            raise ValueError(f"{where}: norm must be 'linf' or 'l2', got {self.norm!r}")
        for name in ("random_start", "targeted"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{where}: {name} must be True or False, got {getattr(self, name)!r}")
        if self.clip is not None:
            if not isinstance(self.clip, (tuple, list)) or len(self.clip) != 2:
                raise TypeError(f"{where}: clip must be None or a pair (lo, hi) of numbers, got {self.clip!r}")
            lo = _boundary.real(self.clip[0], "clip[0]", where=where)
            hi = _boundary.real(self.clip[1], "clip[1]", where=where)
            if lo > hi:
                raise ValueError(f"{where}: clip=(lo, hi) needs lo <= hi, got {self.clip!r}")
            _set(self, "clip", (lo, hi))
        if self.loss is not None and not callable(self.loss):
            raise TypeError(f"{where}: loss must be a callable (logits, y) -> per-example losses, got "
                            f"{type(self.loss).__name__}")


def merge_options(config, cls, options: dict, *, name: str, where: str):
    """``config`` (an instance of ``cls`` or None) with the flat keyword ``options`` that belong to ``cls``.

    Returns ``(config, rest)``: the options naming fields of ``cls`` are consumed. A field given both in
    ``config`` and as a keyword is an error (``TypeError``), as is a ``config`` of the wrong type.
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    mine = {k: v for k, v in options.items() if k in fields}
    rest = {k: v for k, v in options.items() if k not in fields}
    if config is None:
        return cls(**mine), rest
    if not isinstance(config, cls):
        raise TypeError(f"{where}: {name} must be a fn.inputs.{cls.__name__}, got {type(config).__name__}")
    if mine:
        raise TypeError(
            f"{where}: {sorted(mine)} given both as keywords and through {name}=; give each option one way "
            f"(e.g. {name}=fn.inputs.{cls.__name__}(..., {next(iter(sorted(mine)))}=...))"
        )
    return config, rest
