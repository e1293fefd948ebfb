"""Helpers shared by the sub-commands: flag types, output folders, strict JSON, progress, the model file.

Nothing here imports JAX at module level: building the parser and printing ``--help`` stay fast.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import pathlib
import sys
import tempfile
from typing import Any, NamedTuple

# Init scheme names of funcnet.mlp (funcnet.models.init_names(), which imports JAX; a test keeps them equal).
INIT_NAMES = ("he", "xavier", "glorot", "lecun", "uniform", "normal", "zeros", "constant")
MODEL_KIND = "funcnet-mlp"  # the "kind" entry of a model checkpoint written by `train` and `demo`


class UsageError(Exception):
    """A flag's value is wrong: reported in argparse's convention (``funcnet CMD: error: ...``, exit 2)."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"argument {flag}: {message}")
        self.flag = flag


def activation_names() -> tuple[str, ...]:
    from funcnet import activations  # NumPy only

    return activations.names()


def distinct_activations() -> tuple[str, ...]:
    """One name per activation function (aliases such as ``linear`` for ``identity`` dropped)."""
    from funcnet import activations

    seen: dict = {}
    for name in activations.names():
        seen.setdefault(id(activations.get(name)), name)
    return tuple(seen.values())


# ------------------------------------------------------------------ flag types (argparse `type=`)


def int_at_least(minimum: int):
    """An argparse type: an integer ``>= minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def real(minimum: float | None = None, *, positive: bool = False, below: float | None = None):
    """An argparse type: a finite float, ``> 0`` if ``positive``, ``>= minimum``, ``< below``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum:g}, got {value:g}")
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"must be < {below:g}, got {value:g}")
        return value
    parse.__name__ = "number"
    return parse


def widths(text: str) -> list[int]:
    """An argparse type: comma-separated positive layer widths, ``""`` for none."""
    parts = [t.strip() for t in text.split(",") if t.strip()]
    try:
        values = [int(t) for t in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"every width must be >= 1, got {text!r}")
    return values


def add_seed(parser) -> None:
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="PRNG seed, >= 0 (default: 0)")


def add_out(parser, default: str) -> None:
    parser.add_argument("--out", default=default, help=f"output folder (default: {default})")


def add_quiet(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress output; the final result line is printed")


# ------------------------------------------------------------------ output folder, file names, JSON


def prepare_out(path: str, flag: str = "--out") -> pathlib.Path:
    """Create the output folder and prove it writable, or raise `UsageError` (before any work)."""
    p = pathlib.Path(path).expanduser().resolve()
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except FileExistsError:
        raise UsageError(flag, f"{p} exists and is not a folder") from None
    except OSError as e:
        raise UsageError(flag, f"cannot write to {p}: {e.strerror or e}") from None
    return p


def file_name(name: str, flag: str = "--name") -> str:
    """A base file name that stays inside the output folder (no folders, no ``..``), or `UsageError`."""
    if (not name or name in (".", "..") or "/" in name or (os.altsep and os.altsep in name) or os.sep in name
            or "\0" in name or name.startswith(".")):
        raise UsageError(flag, f"must be a plain file name inside --out (no '/', '..' or leading '.'), got {name!r}")
    return name


def strict_json(obj: Any) -> Any:
    """``obj`` as plain JSON values; NaN and infinities become ``None`` (JSON has no such numbers)."""
    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "tolist"):  # NumPy / JAX arrays and scalars
        return strict_json(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: pathlib.Path, obj: Any) -> pathlib.Path:
    """Write ``obj`` as strict, indented JSON atomically (temp file + rename); non-finite numbers as null."""
    path = pathlib.Path(path)
    text = json.dumps(strict_json(obj), indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------ progress and results


class Reporter(NamedTuple):
    """Progress lines (hidden by ``--quiet``) and result lines (always printed), flushed at once."""

    quiet: bool

    def say(self, *parts: Any) -> None:
        if not self.quiet:
            print(*parts, flush=True)

    def result(self, *parts: Any) -> None:
        print(*parts, flush=True)


def best_epoch(history) -> int | None:
    """``history.best_epoch`` as `funcnet.History` counts it: the one number console and JSON both show."""
    return history.best_epoch


def describe_best(history) -> str:
    """``"best epoch 3 of 10"``, the console form of `best_epoch` (1-based, as History counts epochs)."""
    best = best_epoch(history)
    if best is None:
        return f"{history.epochs} epochs, no validation loss"
    return f"best epoch {best} of {history.epochs}"


# ------------------------------------------------------------------ the model file: train/demo write, visualize reads


class ModelFile(NamedTuple):
    """A trained MLP as ``train`` and ``demo`` save it."""

    params: Any
    sizes: list
    activation: str
    data: str
    seed: int | None  # the --seed of the run: with it, `visualize` splits digits as training did


def save_model(path: pathlib.Path, params, sizes, activation: str, data: str, seed: int) -> pathlib.Path:
    """Save a trained MLP as one checkpoint: ``{"kind", "params", "sizes", "activation", "data", "seed"}``."""
    import funcnet as fn

    fn.save(path, {"kind": MODEL_KIND, "params": params, "sizes": [int(s) for s in sizes],
                   "activation": activation, "data": data, "seed": int(seed)})
    return pathlib.Path(path)


def load_model(path: str) -> ModelFile:
    """Read a model checkpoint written by ``train``/``demo`` (or a bare list of ``{"w", "b"}`` layers).

    Raises:
      ValueError: not a checkpoint, not a model, or parameters that do not match the recorded sizes.
    """
    import funcnet as fn

    tree = fn.load(path)
    if isinstance(tree, list):  # a bare parameter list (fn.save(path, params)): a ReLU MLP of unknown data
        tree = {"kind": MODEL_KIND, "params": tree, "activation": "relu", "data": "unknown",
                "sizes": _sizes_of(tree, path)}
    if not isinstance(tree, dict) or tree.get("kind") != MODEL_KIND:
        raise ValueError(f"{path} is a funcnet checkpoint but not a model saved by `funcnet train` or "
                         "`funcnet demo` (expected kind 'funcnet-mlp' with params, sizes, activation, data)")
    sizes, activation = tree.get("sizes"), tree.get("activation")
    if activation not in activation_names():
        raise ValueError(f"{path}: unknown activation {activation!r}")
    if _sizes_of(tree.get("params"), path) != sizes:
        raise ValueError(f"{path}: its parameters do not match its recorded layer sizes {sizes}")
    seed = tree.get("seed")
    return ModelFile(tree["params"], list(sizes), activation, str(tree.get("data", "unknown")),
                     seed if isinstance(seed, int) and seed >= 0 else None)


def _sizes_of(params, path) -> list[int]:
    ok = isinstance(params, list) and params and all(
        isinstance(layer, dict) and set(layer) == {"w", "b"} and getattr(layer["w"], "ndim", 0) == 2
        and getattr(layer["b"], "ndim", 0) == 1 and layer["b"].shape[0] == layer["w"].shape[1] for layer in params)
    if not ok or any(a["w"].shape[1] != b["w"].shape[0] for a, b in zip(params, params[1:])):
        raise ValueError(f"{path}: the parameters are not an MLP's list of {{'w': (in, out), 'b': (out,)}} layers "
                         "with matching widths")
    return [int(params[0]["w"].shape[0])] + [int(layer["w"].shape[1]) for layer in params]


# ------------------------------------------------------------------ the digits recipe shared by demo and visualize


def run_keys(seed: int):
    """``(k_split, k_train, k_vis)``: the keys every command derives from ``--seed`` (the same data split)."""
    import jax

    return tuple(jax.random.split(jax.random.key(seed), 3))


def digits_splits(key):
    """The bundled digits split 80/10/10 as JAX arrays: ``((Xtr, ytr), (Xva, yva), (Xte, yte))``."""
    import jax
    import jax.numpy as jnp

    import funcnet as fn

    return jax.tree.map(jnp.asarray, fn.datasets.split(key, fn.datasets.digits()))


@functools.lru_cache(maxsize=16)
def _digits_recipe(model, learning_rate: float):
    """``(loss_fn, optimizer, metrics)`` for ``model``, one set of objects per (model, learning rate).

    `fn.fit` caches its compiled epoch on these objects, so a second network of the same shape (the transfer
    score's judge) trains without compiling again.
    """
    import optax

    import funcnet as fn

    def loss_fn(p, batch):
        return fn.losses.softmax_cross_entropy(model.apply(p, batch[0]), batch[1])

    def accuracy(p, batch):
        return fn.accuracy(model.apply(p, batch[0]), batch[1])

    return loss_fn, optax.adam(learning_rate), (("accuracy", accuracy),)


def train_digits(model, train, val, key, *, epochs: int, batch_size: int = 32, learning_rate: float = 3e-3,
                 patience: int | None = 10, progress: bool | None = None):
    """Train ``model`` on digits with ``fn.fit`` (Adam, softmax cross-entropy, accuracy on ``val``).

    Returns ``(params, history)``. The one training recipe the sub-commands share.
    """
    import jax

    import funcnet as fn

    loss_fn, optimizer, metrics = _digits_recipe(model, float(learning_rate))
    k_init, k_fit = jax.random.split(key)
    return fn.fit(
        loss_fn, model.init(k_init), train, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
        key=k_fit, val_data=val, patience=patience, progress=progress, metrics=dict(metrics),
    )


def error_line(exc: BaseException) -> str:
    """An exception's message on one line (funcnet's messages can span lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 2000 else text[:2000] + " ..."


def stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
