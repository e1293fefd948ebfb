"""What ``fit`` records: the `History` of a run and the statistics of one epoch.

Epoch numbers count from 1, as the progress line prints them ("epoch 3/10"): ``history.best_epoch == 3``
means the third epoch, whose values are ``history.val_loss[2]`` (``history.best_index``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping, NamedTuple

__all__ = ["History", "NonFiniteLossWarning", "EpochStats"]


class NonFiniteLossWarning(RuntimeWarning):
    """Training met a NaN or infinite loss, gradient, update or parameter."""


class EpochStats(NamedTuple):
    """The host copy of one epoch's statistics (one device-to-host transfer per epoch).

    Attributes:
      applied: optimizer steps applied in the epoch.
      applied_examples: examples in the applied steps (the weights of ``train_loss``).
      skipped: steps skipped for a non-finite value (``on_nonfinite="skip"``) or, after a stop, not taken.
      first_bad: 0-based index of the first step found non-finite (a loss, or in a replay also a gradient,
        an update or the new parameters/state), or -1.
      bad_loss: the first bad step's *loss* was non-finite (so the parameters it was evaluated at are not
        a safe result either).
      end_finite: the parameters and optimizer state at the end of the epoch are finite.
      train_loss: example-weighted mean of the applied steps' losses; NaN when no step was applied.
      val_loss: loss on ``val_data`` after the epoch, or None.
      lr: learning rate in the optimizer state after the epoch, or None.
      metrics: ``name -> float``.
    """

    applied: int
    applied_examples: int
    skipped: int
    first_bad: int
    bad_loss: bool
    end_finite: bool
    train_loss: float
    val_loss: float | None
    lr: float | None
    metrics: dict

    @property
    def stopped(self) -> bool:
        """A non-finite step was met."""
        return self.first_bad >= 0

    def values(self) -> dict:
        """The per-epoch numbers a user sees: ``train_loss``, ``val_loss`` (if any), the metrics, ``lr``."""
        out = {"train_loss": self.train_loss}
        if self.val_loss is not None:
            out["val_loss"] = self.val_loss
        out.update(self.metrics)
        if self.lr is not None:
            out["lr"] = self.lr
        return out


def _json_float(v) -> float | None:
    """A float for strict JSON: NaN and infinities become None (``null``)."""
    v = float(v)
    return v if math.isfinite(v) else None


def _from_json_float(v) -> float:
    return math.nan if v is None else float(v)


@dataclasses.dataclass
class History:
    """What `fit` saw, one entry per recorded epoch.

    Attributes:
      train_loss: example-weighted mean of the mini-batch losses over the epoch (each computed before its
        update), i.e. the running training loss; NaN for an epoch in which no step was applied.
      val_loss: loss on ``val_data`` after the epoch (empty without ``val_data``).
      metrics: ``name -> list``, each metric after the epoch, on ``val_data`` when given, else on the
        training data.
      lr: learning rate at the end of each epoch, when the optimizer state exposes one
        (``optax.inject_hyperparams``); else empty.
      epoch_time: wall seconds per epoch (the first includes compilation).
      skipped_steps: steps skipped (``on_nonfinite="skip"``) or not taken after a stop, per epoch.
      steps: optimizer steps applied per epoch; an entry below ``steps_per_epoch`` marks a partial epoch
        (training stopped inside it).
      steps_per_epoch: optimizer steps in a full epoch.
      best_epoch: the epoch number (1-based, as printed) with the lowest ``val_loss``, or None.
      stopped_early: True when early stopping ended the run.
      stop_reason: why training ended before ``epochs`` (early stopping, a non-finite value, a callback),
        or None.
      wall_time: total seconds spent in `fit` (setup and compilation included).

    ``to_dict``/``to_json`` write strict JSON: a NaN or infinite value is written as ``null``.
    """

    train_loss: list = dataclasses.field(default_factory=list)
    val_loss: list = dataclasses.field(default_factory=list)
    metrics: dict = dataclasses.field(default_factory=dict)
    lr: list = dataclasses.field(default_factory=list)
    epoch_time: list = dataclasses.field(default_factory=list)
    skipped_steps: list = dataclasses.field(default_factory=list)
    steps: list = dataclasses.field(default_factory=list)
    steps_per_epoch: int = 0
    best_epoch: int | None = None
    stopped_early: bool = False
    stop_reason: str | None = None
    wall_time: float = 0.0

    @property
    def epochs(self) -> int:
        """Number of recorded epochs (the last may be partial, see `partial`)."""
        return len(self.train_loss)

    @property
    def partial(self) -> bool:
        """True when the last recorded epoch was cut short (fewer than ``steps_per_epoch`` steps)."""
        return bool(self.steps) and self.steps[-1] < self.steps_per_epoch

    @property
    def best_index(self) -> int | None:
        """``best_epoch - 1``: the list index of the best epoch (``history.val_loss[history.best_index]``)."""
        return None if self.best_epoch is None else self.best_epoch - 1

    def record(self, stats: EpochStats, seconds: float) -> None:
        """Append one epoch's statistics."""
        self.train_loss.append(float(stats.train_loss))
        if stats.val_loss is not None:
            self.val_loss.append(float(stats.val_loss))
        for name, v in stats.metrics.items():
            self.metrics.setdefault(name, []).append(float(v))
        if stats.lr is not None:
            self.lr.append(float(stats.lr))
        self.epoch_time.append(float(seconds))
        self.skipped_steps.append(int(stats.skipped))
        self.steps.append(int(stats.applied))

    def drop_last(self) -> None:
        """Remove the last recorded epoch (the guard replaces it by its partial replay)."""
        n = self.epochs
        for values in (self.train_loss, self.val_loss, self.lr, self.epoch_time, self.skipped_steps, self.steps,
                       *self.metrics.values()):
            if len(values) == n:
                values.pop()
        if self.best_epoch is not None and self.best_epoch > len(self.steps):
            self.best_epoch = None

    def to_dict(self) -> dict:
        """A dict for strict JSON (plain floats and lists; NaN and infinities as None)."""
        floats = lambda vs: [_json_float(v) for v in vs]  # noqa: E731
        return {
            "train_loss": floats(self.train_loss),
            "val_loss": floats(self.val_loss),
            "metrics": {k: floats(vs) for k, vs in self.metrics.items()},
            "lr": floats(self.lr),
            "epoch_time": floats(self.epoch_time),
            "skipped_steps": [int(v) for v in self.skipped_steps],
            "steps": [int(v) for v in self.steps],
            "steps_per_epoch": int(self.steps_per_epoch),
            "best_epoch": self.best_epoch,
            "stopped_early": bool(self.stopped_early),
            "stop_reason": self.stop_reason,
            "wall_time": float(self.wall_time),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "History":
        """Inverse of `to_dict` (``null`` values come back as NaN)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {k: v for k, v in d.items() if k in fields}
        for name in ("train_loss", "val_loss", "lr", "epoch_time"):
            kw[name] = [_from_json_float(v) for v in kw.get(name, [])]
        kw["metrics"] = {k: [_from_json_float(v) for v in vs] for k, vs in kw.get("metrics", {}).items()}
        return cls(**kw)

    def to_json(self, path) -> None:
        """Write `to_dict` as strict JSON."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2, allow_nan=False)
            f.write("\n")
