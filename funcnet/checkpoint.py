"""Checkpoints of any pytree, written atomically.

A checkpoint is one ``.npz`` file: the leaves as arrays ``"0"``, ``"1"``, ...
(in ``jax.tree.leaves`` order) and a JSON description of the tree under
``"__meta__"``. It is written to a temporary file in the same folder, flushed
to disk and renamed over the target, so a crash mid-write leaves the previous
checkpoint intact. Nothing is pickled: loading never runs code from the file.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["save", "load"]

_FORMAT = "funcnet-checkpoint"
_VERSION = 1


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


class _Encoder:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def leaf(self, x) -> dict:
        i = str(len(self.arrays))
        if _is_key(x):
            self.arrays[i] = np.asarray(jax.random.key_data(x))
            return {"t": "leaf", "kind": "key", "impl": str(jax.random.key_impl(x))}
        if isinstance(x, str):
            self.arrays[i] = np.frombuffer(x.encode(), dtype=np.uint8)
            return {"t": "leaf", "kind": "str"}
        if isinstance(x, bool):
            kind = "bool"
        elif isinstance(x, int):
            kind = "int"
        elif isinstance(x, float):
            kind = "float"
        elif isinstance(x, complex):
            kind = "complex"
        elif isinstance(x, jax.Array):
            kind = "jax"
        elif isinstance(x, (np.ndarray, np.generic)):
            kind = "numpy"
        else:
            raise TypeError(
                f"save: cannot store a leaf of type {type(x).__name__}; leaves must be arrays, "
                "PRNG keys, Python numbers or strings"
            )
        arr = np.asarray(x)
        if arr.dtype == object:
            raise TypeError(f"save: leaf of type {type(x).__name__} converts to an object array")
        self.arrays[i] = arr
        return {"t": "leaf", "kind": kind}

    def node(self, x) -> dict:
        if x is None:
            return {"t": "none"}
        if isinstance(x, dict):
            try:
                keys = sorted(x)  # jax.tree.leaves order
            except TypeError:
                raise TypeError(f"save: dict keys must be sortable, got {list(x)}") from None
            for k in keys:
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise TypeError(f"save: dict keys must be str or int, got {k!r}")
            return {"t": "dict", "keys": [[type(k).__name__, k] for k in keys], "c": [self.node(x[k]) for k in keys]}
        if _is_namedtuple(x):
            cls = type(x)
            return {"t": "namedtuple", "cls": f"{cls.__module__}:{cls.__qualname__}", "fields": list(cls._fields),
                    "c": [self.node(v) for v in x]}
        if type(x) in (list, tuple):
            return {"t": type(x).__name__, "c": [self.node(v) for v in x]}
        leaves, treedef = jax.tree_util.tree_flatten(x)
        if treedef.num_nodes == 1 and treedef.num_leaves == 1:  # x is itself a leaf
            return self.leaf(x)
        # another registered pytree node: store its leaves; loading needs `like`
        return {"t": "opaque", "treedef": str(treedef), "c": [self.leaf(v) for v in leaves]}


def save(path: str | os.PathLike, tree: Any) -> str:
    """Write a pytree to ``path`` atomically.

    Args:
      path: file to write (conventionally ending in ``.npz``); its folder must exist.
      tree: any pytree of arrays (JAX or NumPy), typed PRNG keys, Python numbers,
        strings and ``None``, in dicts, lists, tuples and NamedTuples (e.g.
        ``{"params": params, "opt_state": opt_state, "key": key, "step": 10}``).
        Other registered pytree nodes are stored too, and need ``like`` to load.

    Returns:
      The path written.

    The file appears complete or not at all: it is written to a temporary file in
    the same folder, flushed to disk and renamed over ``path``.

    Examples:
      >>> import jax, jax.numpy as jnp, funcnet as fn, tempfile, os
      >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
      >>> _ = fn.save(path, {"w": jnp.arange(3.0), "step": 7})
      >>> fn.load(path)
      {'step': 7, 'w': Array([0., 1., 2.], dtype=float32)}
    """
    path = os.fspath(path)
    enc = _Encoder()
    meta = {"format": _FORMAT, "version": _VERSION, "tree": enc.node(tree)}
    arrays = dict(enc.arrays)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _write(f: io.BufferedWriter, arrays: dict[str, np.ndarray]) -> None:
    np.savez(f, **arrays)


# ------------------------------------------------------------------------ loading


def _read(path: str) -> tuple[dict, list[np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            n = len(z.files) - 1
            arrays = [z[str(i)] for i in range(n)]
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    except (KeyError, ValueError, OSError) as e:
        raise ValueError(f"{path} is not a funcnet checkpoint (written by funcnet.save): {e}") from None
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a funcnet checkpoint (written by funcnet.save)")
    if meta.get("version", 0) > _VERSION:
        raise ValueError(f"{path} was written by a newer funcnet (format version {meta['version']})")
    return meta, arrays


def _leaf_specs(node: dict, out: list) -> list:
    t = node["t"]
    if t == "leaf":
        out.append(node)
    elif "c" in node:
        for c in node["c"]:
            _leaf_specs(c, out)
    return out


def _restore_leaf(spec: dict, arr: np.ndarray):
    kind = spec["kind"]
    if kind == "key":
        return jax.random.wrap_key_data(jnp.asarray(arr), impl=spec["impl"])
    if kind == "str":
        return bytes(arr).decode()
    if kind in ("bool", "int", "float", "complex"):
        return {"bool": bool, "int": int, "float": float, "complex": complex}[kind](arr.item())
    if kind == "numpy":
        return arr
    return jnp.asarray(arr)


def _namedtuple_class(spec: str, fields: list):
    module, _, qualname = spec.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    if isinstance(obj, type) and issubclass(obj, tuple) and list(getattr(obj, "_fields", ())) == fields:
        return obj
    return None


def _rebuild(node: dict, leaves: list, path: str):
    t = node["t"]
    if t == "none":
        return None
    if t == "leaf":
        return leaves.pop(0)
    if t == "dict":
        keys = [int(k) if kt == "int" else k for kt, k in node["keys"]]
        return {k: _rebuild(c, leaves, f"{path}[{k!r}]") for k, c in zip(keys, node["c"])}
    if t in ("list", "tuple"):
        items = [_rebuild(c, leaves, f"{path}[{i}]") for i, c in enumerate(node["c"])]
        return items if t == "list" else tuple(items)
    if t == "namedtuple":
        items = [_rebuild(c, leaves, f"{path}.{f}") for f, c in zip(node["fields"], node["c"])]
        cls = _namedtuple_class(node["cls"], node["fields"])
        return cls(*items) if cls is not None else dict(zip(node["fields"], items))
    raise ValueError(
        f"load: the checkpoint holds a custom pytree node ({node.get('treedef', t)}) at {path or 'the root'}; "
        "pass like=<a tree of the same structure> to restore it"
    )


def load(path: str | os.PathLike, like: Any = None) -> Any:
    """Read a pytree written by :func:`save`.

    Args:
      path: the checkpoint file.
      like: optional template pytree with the saved structure (e.g. freshly
        initialized params and optimizer state). With it, the result has exactly
        ``like``'s structure and container types, and every leaf's shape and dtype
        is checked against ``like``. Without it, dicts, lists, tuples, NamedTuples
        (re-imported by name; a dict if the class is gone), keys, arrays and Python
        numbers are rebuilt from the file.

    Returns:
      The restored pytree: JAX arrays where JAX arrays were saved, NumPy arrays for
      NumPy ones, typed PRNG keys, Python numbers.

    Raises:
      ValueError: the file is not a checkpoint, or it does not match ``like``.
    """
    path = os.fspath(path)
    meta, arrays = _read(path)
    specs = _leaf_specs(meta["tree"], [])
    if len(specs) != len(arrays):
        raise ValueError(f"{path} is corrupt: {len(specs)} leaves described, {len(arrays)} stored")
    if like is None:
        leaves = [_restore_leaf(s, a) for s, a in zip(specs, arrays)]
        return _rebuild(meta["tree"], leaves, "")

    like_leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    if len(like_leaves) != len(arrays):
        raise ValueError(
            f"{path} holds {len(arrays)} leaves but like has {len(like_leaves)}; "
            "like must have the structure of the saved tree"
        )
    out = []
    for (kpath, ref), spec, arr in zip(like_leaves, specs, arrays):
        where = jax.tree_util.keystr(kpath) or "the root"
        if _is_key(ref):
            if spec["kind"] != "key":
                raise ValueError(f"load: like{where} is a PRNG key but the checkpoint holds an array there")
            out.append(_restore_leaf(spec, arr))
            continue
        if spec["kind"] == "key":
            raise ValueError(f"load: the checkpoint holds a PRNG key at {where}, but like has {type(ref).__name__}")
        if isinstance(ref, str) or spec["kind"] == "str":
            if not (isinstance(ref, str) and spec["kind"] == "str"):
                raise ValueError(f"load: {where} is a string in one of the checkpoint and like but not the other")
            out.append(_restore_leaf(spec, arr))
            continue
        if isinstance(ref, (bool, int, float, complex)) and not isinstance(ref, np.generic):
            out.append(type(ref)(arr.item()))
            continue
        ref_shape = np.shape(ref)
        ref_dtype = np.dtype(ref.dtype) if hasattr(ref, "dtype") else np.result_type(ref)
        if tuple(arr.shape) != tuple(ref_shape):
            raise ValueError(f"load: {where} has shape {tuple(arr.shape)} in the checkpoint, like has {tuple(ref_shape)}")
        if arr.dtype != ref_dtype:
            raise ValueError(f"load: {where} has dtype {arr.dtype} in the checkpoint, like has {ref_dtype}")
        out.append(arr if isinstance(ref, (np.ndarray, np.generic)) else jnp.asarray(arr))
    return jax.tree_util.tree_unflatten(treedef, out)
