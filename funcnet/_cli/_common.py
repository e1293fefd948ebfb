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
    os.replace(tmp, path)
    return path


def add_seed(parser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default: 0)")


def add_out(parser, default: str) -> None:
    parser.add_argument("--out", default=default, help=f"output folder (default: {default})")
