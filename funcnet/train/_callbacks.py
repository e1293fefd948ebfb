"""Per-epoch user code for ``fit``: callbacks, the CSV and JSON-lines loggers, and the progress display.

A callback is any callable ``(epoch, metrics, params) -> stop?``, called after every recorded epoch with
the epoch number (1-based, as printed), a dict of that epoch's values (``train_loss``, ``val_loss``, the
metrics, ``lr``, ``epoch_time``) and the parameters; a truthy return stops training after that epoch.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import sys
import threading
import time
from typing import Any, Callable

__all__ = ["CSVLogger", "JSONLinesLogger", "make_progress", "call_callbacks"]


def _name(cb: Any) -> str:
    return getattr(cb, "__qualname__", None) or type(cb).__name__


class _FileLogger:
    """Shared by the loggers: the file is (re)created by the first call and appended to (closed) each epoch,
    so every completed epoch is on disk even if training is interrupted."""

    def __init__(self, path: str | os.PathLike, *, append: bool = False):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{type(self).__name__} needs a file path, got {type(path).__name__}")
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ValueError(f"{type(self).__name__}: the folder {folder} does not exist")
        self._started = append and os.path.exists(self.path)

    def _open(self):
        mode = "a" if self._started else "w"
        self._started = True
        return open(self.path, mode, newline="")


class CSVLogger(_FileLogger):
    """A callback that appends one CSV row per epoch: ``epoch``, then each value (``train_loss``, ...).

    The columns are those of the first epoch (written as a header line); NaN is written as ``nan``.

    Examples:
      >>> import pathlib, tempfile
      >>> log = CSVLogger(pathlib.Path(tempfile.mkdtemp()) / "log.csv")
      >>> log(1, {"train_loss": 0.5, "val_loss": 0.25}, None)
      >>> print(pathlib.Path(log.path).read_text().strip())
      epoch,train_loss,val_loss
      1,0.5,0.25
    """

    def __init__(self, path, *, append: bool = False):
        super().__init__(path, append=append)
        self.columns: list[str] | None = None

    def __call__(self, epoch: int, metrics: dict, params: Any) -> None:
        with self._open() as f:
            writer = csv.writer(f)
            if self.columns is None:
                self.columns = list(metrics)
                if f.tell() == 0:
                    writer.writerow(["epoch", *self.columns])
            writer.writerow([epoch, *(metrics.get(c, math.nan) for c in self.columns)])


class JSONLinesLogger(_FileLogger):
    """A callback that appends one strict-JSON object per epoch: ``{"epoch": 1, "train_loss": ..., ...}``.

    NaN and infinities are written as ``null``, so every line parses with any JSON reader.
    """

    def __call__(self, epoch: int, metrics: dict, params: Any) -> None:
        row = {"epoch": epoch, **{k: (v if math.isfinite(v) else None) for k, v in metrics.items()}}
        with self._open() as f:
            f.write(json.dumps(row, allow_nan=False) + "\n")


def call_callbacks(callbacks: tuple, epoch: int, metrics: dict, params: Any, result: Any = None) -> str | None:
    """Run every callback; the name of the first that asked to stop, or None.

    An exception from a callback propagates, with a note naming the callback and the epoch, and
    ``result`` (fit's `FitResult` of this epoch) attached as ``.fit_result``.
    """
    stop = None
    for cb in callbacks:
        try:
            wants_stop = cb(epoch, dict(metrics), params)
        except Exception as e:  # user code: say whose it was, then let it propagate
            e.add_note(f"raised by the fit callback {_name(cb)} after epoch {epoch}; the parameters and history "
                       "of that epoch are in this exception's .fit_result")
            e.fit_result = result
            raise
        if wants_stop and stop is None:
            stop = _name(cb)
    return stop


# -------------------------------------------------------------------------------- progress


class _Line:
    """The default display: one line per epoch on stderr (``progress=None``: once a run has taken 2 s)."""

    def __init__(self, always: bool, epochs: int, stream=None):
        self.always, self.epochs = always, epochs
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self._timer = None

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def compiling(self) -> None:
        """Announce the first epoch's compilation (at once when always on; after 2 s of silence otherwise)."""
        text = "compiling the epoch program…"
        if self.always:
            self._print(text)
        else:
            self._timer = threading.Timer(2.0, self._print, (text,))
            self._timer.daemon = True
            self._timer.start()

    def epoch(self, epoch: int, values: dict) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.always and time.perf_counter() - self.t0 < 2.0:
            return
        parts = [f"epoch {epoch:>{len(str(self.epochs))}}/{self.epochs}"]
        for k, v in values.items():
            if k == "epoch_time":
                continue
            label = "loss" if k == "train_loss" else k
            parts.append(f"{label} {v:.3g}" if k == "lr" else f"{label} {v:.4g}")
        parts.append(f"{values['epoch_time']:.2f}s")
        self._print("  ".join(parts))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _Silent:
    def compiling(self) -> None:
        pass

    def epoch(self, epoch: int, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


class _Callable(_Silent):
    """``progress=f``: ``f(epoch, epochs, values)`` after every epoch."""

    def __init__(self, fn: Callable, epochs: int):
        self.fn, self.epochs = fn, epochs

    def epoch(self, epoch: int, values: dict) -> None:
        self.fn(epoch, self.epochs, dict(values))


class _Tqdm(_Silent):
    def __init__(self, epochs: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=epochs, desc="fit", unit="epoch")

    def compiling(self) -> None:
        self.bar.set_postfix_str("compiling the epoch program…")

    def epoch(self, epoch: int, values: dict) -> None:
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k != "epoch_time"})
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class _Rich(_Silent):
    def __init__(self, epochs: int):
        from rich.progress import Progress

        self.bar = Progress()
        self.bar.start()
        self.task = self.bar.add_task("fit", total=epochs)

    def compiling(self) -> None:
        self.bar.update(self.task, description="fit (compiling the epoch program…)")

    def epoch(self, epoch: int, values: dict) -> None:
        text = "  ".join(f"{k} {v:.4g}" for k, v in values.items() if k != "epoch_time")
        self.bar.update(self.task, advance=1, description=f"fit  {text}")

    def close(self) -> None:
        self.bar.stop()


def make_progress(progress: Any, epochs: int):
    """The display for ``fit(progress=...)``: ``None`` (auto), ``True``, ``False``, ``"tqdm"``, ``"rich"`` or a
    callable ``(epoch, epochs, values)``. ``"tqdm"``/``"rich"`` fall back to the line display when the
    package is not installed."""
    if progress is None or isinstance(progress, bool):
        return _Silent() if progress is False else _Line(progress is True, epochs)
    if isinstance(progress, str):
        if progress not in ("tqdm", "rich"):
            raise ValueError(f"progress must be True, False, None, 'tqdm', 'rich' or a callable, got {progress!r}")
        if importlib.util.find_spec(progress) is None:
            return _Line(True, epochs)
        return _Tqdm(epochs) if progress == "tqdm" else _Rich(epochs)
    if callable(progress):
        return _Callable(progress, epochs)
    raise TypeError(f"progress must be True, False, None, 'tqdm', 'rich' or a callable, got {type(progress).__name__}")
