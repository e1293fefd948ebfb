"""Helpers shared by the sub-commands: output folders, JSON, progress lines."""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any

import numpy as np


def out_dir(path: str) -> pathlib.Path:
    """Create (if needed) and return the output folder."""
    p = pathlib.Path(path).expanduser().resolve()
    p.mkdir(parents=True, exist_ok=True)
    return p


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def write_json(path: pathlib.Path, obj: Any) -> pathlib.Path:
    """Write ``obj`` as indented JSON atomically (temp file + rename)."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(_jsonable(obj), f, indent=2)
        f.write("\n")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
    os.replace(tmp, path)
    return path


def add_seed(parser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default: 0)")


def add_out(parser, default: str) -> None:
    parser.add_argument("--out", default=default, help=f"output folder (default: {default})")


def digits_splits(key):
    """The bundled digits split 80/10/10 as JAX arrays: ``((Xtr, ytr), (Xva, yva), (Xte, yte))``."""
    import jax
    import jax.numpy as jnp

    import funcnet as fn

    return jax.tree.map(jnp.asarray, fn.datasets.split(key, fn.datasets.digits()))


def train_digits(model, train, val, key, *, epochs: int, batch_size: int = 32, learning_rate: float = 3e-3,
                 patience: int | None = 10, progress: bool | None = None):
    """Train ``model`` on digits with ``fn.fit`` (Adam, softmax cross-entropy, accuracy on ``val``).

    Returns ``(params, history)``. The one training recipe the sub-commands share.
    """
    import jax
    import optax

    import funcnet as fn

    def loss_fn(p, batch):
        return fn.losses.softmax_cross_entropy(model.apply(p, batch[0]), batch[1])

    k_init, k_fit = jax.random.split(key)
    return fn.fit(
        loss_fn, model.init(k_init), train, optimizer=optax.adam(learning_rate), epochs=epochs,
        batch_size=batch_size, key=k_fit, val_data=val, patience=patience, progress=progress,
        metrics={"accuracy": lambda p, b: fn.accuracy(model.apply(p, b[0]), b[1])},
    )
