"""Checkpoints of any pytree: written atomically, read without running anything from the file.

A checkpoint is one ``.npz`` (zip) file: the leaves as arrays ``"0"``, ``"1"``, ...
(in ``jax.tree.leaves`` order) and a JSON description of the tree under
``"__meta__"``.

Guarantees (see "Failure modes" in the CLI docs):

* **Atomic.** `save` writes to the fixed temporary name ``.<name>.tmp`` next
  to the target, flushes and fsyncs it, renames it over the target with
  ``os.replace`` (atomic on POSIX and Windows) and fsyncs the folder. A reader sees
  the old file or the new one, never a mix.
* **No debris.** A write killed part-way (SIGKILL, power loss) leaves at most that
  one temporary file; the next `save` of the same target reuses the name and
  renames it away, and also removes stray ``.<name>.<random>.tmp`` files left by
  funcnet versions that used random temporary names. One writer per target.
* **Nothing is executed on load.** Arrays are read with ``allow_pickle=False``;
  NamedTuple classes are never imported by the name the file gives: they come from
  ``like=``, from `register`, or from optax/funcnet modules that are already
  imported. Anything that is not a checkpoint written by `save` (a truncated
  file, random bytes, a plain ``.npz``, a malformed description) raises
  ``ValueError`` naming the file.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["save", "load", "register"]

_FORMAT = "funcnet-checkpoint"
_VERSION = 1
_MAX_DEPTH = 200          # nesting of the tree description a file may claim
_KEY_IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")
_LEAF_KINDS = ("key", "str", "bool", "int", "float", "complex", "jax", "numpy")
_ARRAY_KINDS = "biufc"    # bool, ints, floats, complex: the only dtypes a checkpoint holds
# NamedTuple classes loadable without ``like``: those given to register(), and those of these packages when the
# package is already imported (optax's optimizer states, funcnet's own). Looked up, never imported.
_TRUSTED_PACKAGES = ("optax", "funcnet")
_REGISTRY: dict[str, type] = {}


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



def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register(cls: type) -> type:
    """Allow `load` (without ``like``) to rebuild NamedTuples of class ``cls``.

    A checkpoint names the class of each NamedTuple it holds (``"module:QualName"``);
    `load` never imports that module. Register your own state classes once, or
    pass ``like=``. Usable as a decorator; returns ``cls``.

    Examples:
      >>> from typing import NamedTuple
      >>> import funcnet as fn
      >>> @fn.checkpoint.register
      ... class Step(NamedTuple):
      ...     count: int
    """
    if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
        raise TypeError(f"register: expected a NamedTuple class, got {cls!r}")
    _REGISTRY[_class_name(cls)] = cls
    return cls


# ------------------------------------------------------------------------ saving


def _tmp_name(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.tmp")


def _remove_stale_tmp(path: str) -> None:
    """Remove ``.<name>.<8 random chars>.tmp`` files: temporaries of killed saves by older funcnet versions."""
    folder, name = os.path.split(path)
    pattern = re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.tmp")
    for entry in os.listdir(folder or "."):
        if pattern.fullmatch(entry):
            try:
                os.unlink(os.path.join(folder, entry))
            except OSError:
                pass


def _fsync_folder(folder: str) -> None:
    if os.name != "posix":  # Windows cannot open a folder; its rename is durable once it returns
        return
    fd = os.open(folder or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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

    Raises:
      TypeError: a leaf cannot be stored (an object, a dict with non-str/int keys).
      FileNotFoundError: the folder of ``path`` does not exist.

    The file appears complete or not at all: it is written to ``.<name>.tmp`` in the
    same folder, fsynced, renamed over ``path`` and the folder fsynced. A save that is
    killed leaves only that temporary file, which the next save of ``path`` reuses.

    Examples:
      >>> import jax, jax.numpy as jnp, funcnet as fn, tempfile, os
      >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
      >>> _ = fn.save(path, {"w": jnp.arange(3.0), "step": 7})
      >>> fn.load(path)
      {'step': 7, 'w': Array([0., 1., 2.], dtype=float32)}
    """
    path = os.path.abspath(os.fspath(path))
    enc = _Encoder()
    meta = {"format": _FORMAT, "version": _VERSION, "tree": enc.node(tree)}
    arrays = dict(enc.arrays)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: cannot write {path}: the folder {folder} does not exist")
    _remove_stale_tmp(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
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
    _fsync_folder(folder)
    return path


def _write(f, arrays: dict[str, np.ndarray]) -> None:
    np.savez(f, **arrays)


# ------------------------------------------------------------------------ reading


class _NotCheckpoint(Exception):
    """Internal: why a file is not a funcnet checkpoint (turned into a ValueError naming the file)."""


def _read_member(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    try:
        with zf.open(name) as member:
            arr = np.lib.format.read_array(member, allow_pickle=False)
    except ValueError:  # object arrays (NumPy's message suggests allow_pickle: never echoed)
        raise _NotCheckpoint(f"member {name!r} is not a plain numeric array") from None
    if arr.dtype.kind not in _ARRAY_KINDS or arr.dtype.fields is not None:
        raise _NotCheckpoint(f"member {name!r} has dtype {arr.dtype}, not a number type")
    return arr


def _read_archive(path: str) -> tuple[dict, list[np.ndarray]]:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise _NotCheckpoint("not a zip (.npz) archive")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        if "__meta__.npy" not in names:
            raise _NotCheckpoint("it has no funcnet description (__meta__): a plain .npz, not written by funcnet.save")
        n = len(names) - 1
        if names != {"__meta__.npy"} | {f"{i}.npy" for i in range(n)}:
            raise _NotCheckpoint("unexpected members: " + ", ".join(sorted(names)[:5]))
        raw = _read_member(zf, "__meta__.npy")
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise _NotCheckpoint("its description (__meta__) is not UTF-8 bytes")
        meta = json.loads(bytes(raw).decode())
        arrays = [_read_member(zf, f"{i}.npy") for i in range(n)]
    return meta, arrays


def _read(path: str) -> tuple[dict, list[np.ndarray]]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not a checkpoint file")
    try:
        meta, arrays = _read_archive(path)
        _check_meta(meta, len(arrays))
    except _NotCheckpoint as e:
        raise ValueError(f"{path} is not a funcnet checkpoint (written by funcnet.save): {e}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, UnicodeDecodeError, RecursionError) as e:
        reason = "its description is not valid JSON" if isinstance(e, ValueError) else "truncated or corrupt"
        raise ValueError(f"{path} is not a funcnet checkpoint (written by funcnet.save): {reason}") from None
    return meta, arrays


def _check_meta(meta: Any, n_arrays: int) -> None:
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise _NotCheckpoint("its description does not say format 'funcnet-checkpoint'")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _NotCheckpoint(f"bad format version {version!r}")
    if version > _VERSION:
        raise _NotCheckpoint(f"written by a newer funcnet (format version {version}; this one reads {_VERSION})")
    leaves = _check_node(meta.get("tree"), 0)
    if leaves != n_arrays:
        raise _NotCheckpoint(f"corrupt: {leaves} leaves described, {n_arrays} stored")


def _is_str_list(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) for v in x)


def _check_node(node: Any, depth: int) -> int:
    """Validate one node of the tree description; return its number of leaves."""
    if depth > _MAX_DEPTH:
        raise _NotCheckpoint(f"its tree is nested deeper than {_MAX_DEPTH}")
    t = node.get("t") if isinstance(node, dict) else None
    if t == "none":
        return 0
    if t == "leaf":
        if node.get("kind") not in _LEAF_KINDS:
            raise _NotCheckpoint(f"unknown leaf kind {node.get('kind')!r}")
        if node["kind"] == "key" and node.get("impl") not in _KEY_IMPLS:
            raise _NotCheckpoint(f"unknown PRNG key implementation {node.get('impl')!r}")
        return 1
    children = node.get("c") if isinstance(node, dict) else None
    if t not in ("dict", "list", "tuple", "namedtuple", "opaque") or not isinstance(children, list):
        raise _NotCheckpoint(f"malformed tree node {str(node)[:80]}")
    if t == "dict":
        keys = node.get("keys")
        ok = isinstance(keys, list) and len(keys) == len(children) and all(
            isinstance(k, list) and len(k) == 2 and (k[0], type(k[1])) in (("str", str), ("int", int))
            for k in keys)
        if not ok:
            raise _NotCheckpoint("malformed dict keys in its tree")
    if t == "namedtuple" and not (isinstance(node.get("cls"), str) and _is_str_list(node.get("fields"))
                                  and len(node["fields"]) == len(children)):
        raise _NotCheckpoint("malformed NamedTuple node in its tree")
    if t == "opaque" and not all(isinstance(c, dict) and c.get("t") == "leaf" for c in children):
        raise _NotCheckpoint("malformed custom node in its tree")
    return sum(_check_node(c, depth + 1) for c in children)


# ------------------------------------------------------------------------ rebuilding


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


def _leaf_specs(node: dict, out: list) -> list:
    if node["t"] == "leaf":
        out.append(node)
    for c in node.get("c", ()):
        _leaf_specs(c, out)
    return out


def _trusted_class(spec: str, fields: list):
    """The NamedTuple class named ``spec``, if registered or in an already-imported optax/funcnet module.

    Looks names up in module ``__dict__`` s only: no import, no module ``__getattr__``, no code from the file.
    """
    if spec in _REGISTRY:
        cls = _REGISTRY[spec]
    else:
        module, _, qualname = spec.partition(":")
        if module.split(".")[0] not in _TRUSTED_PACKAGES or module not in sys.modules:
            return None
        cls = sys.modules[module]
        for part in qualname.split("."):
            cls = vars(cls).get(part) if hasattr(cls, "__dict__") else None
    ok = isinstance(cls, type) and issubclass(cls, tuple) and list(getattr(cls, "_fields", ())) == fields
    return cls if ok else None


def _rebuild(node: dict, leaves: list, where: str, path: str):
    t = node["t"]
    if t == "none":
        return None
    if t == "leaf":
        return leaves.pop()
    if t == "dict":
        keys = [int(k) if kt == "int" else k for kt, k in node["keys"]]
        return {k: _rebuild(c, leaves, f"{where}[{k!r}]", path) for k, c in zip(keys, node["c"])}
    if t in ("list", "tuple"):
        items = [_rebuild(c, leaves, f"{where}[{i}]", path) for i, c in enumerate(node["c"])]
        return items if t == "list" else tuple(items)
    if t == "namedtuple":
        cls = _trusted_class(node["cls"], node["fields"])
        if cls is None:
            raise ValueError(
                f"load: {path} holds a NamedTuple of class {node['cls']} at {where or 'the root'}; funcnet does not "
                "import classes named by a file: pass like=<a tree of the same structure>, or call "
                "funcnet.checkpoint.register(<the class>) first")
        return cls(*[_rebuild(c, leaves, f"{where}.{f}", path) for f, c in zip(node["fields"], node["c"])])
    raise ValueError(
        f"load: {path} holds a custom pytree node ({str(node.get('treedef', t))[:80]}) at {where or 'the root'}; "
        "pass like=<a tree of the same structure> to restore it")


def _like_leaf(ref, spec: dict, arr: np.ndarray, where: str, path: str):
    """One leaf restored to the kind of ``like``'s leaf ``ref``, with its shape and dtype checked."""
    if _is_key(ref) or spec["kind"] == "key":
        if not (_is_key(ref) and spec["kind"] == "key"):
            held = "a PRNG key" if spec["kind"] == "key" else "an array"
            raise ValueError(f"load: {path} holds {held} at {where}, but like has {type(ref).__name__}")
        return _restore_leaf(spec, arr)
    if isinstance(ref, str) or spec["kind"] == "str":
        if not (isinstance(ref, str) and spec["kind"] == "str"):
            raise ValueError(f"load: {path}: {where} is a string in one of the checkpoint and like but not the other")
        return _restore_leaf(spec, arr)
    if isinstance(ref, (bool, int, float, complex)):
        if arr.size != 1:
            raise ValueError(f"load: {path}: {where} has shape {arr.shape} in the checkpoint, like has a Python {type(ref).__name__}")
        return type(ref)(arr.item())
    ref_shape = tuple(np.shape(ref))
    ref_dtype = np.dtype(ref.dtype) if hasattr(ref, "dtype") else np.result_type(ref)
    if tuple(arr.shape) != ref_shape:
        raise ValueError(f"load: {path}: {where} has shape {tuple(arr.shape)} in the checkpoint, like has {ref_shape}")
    if arr.dtype != ref_dtype:
        raise ValueError(f"load: {path}: {where} has dtype {arr.dtype} in the checkpoint, like has {ref_dtype}")
    return arr if isinstance(ref, (np.ndarray, np.generic)) else jnp.asarray(arr)


def load(path: str | os.PathLike, like: Any = None) -> Any:
    """Read a pytree written by `save`.

    Args:
      path: the checkpoint file.
      like: optional template pytree with the saved structure (e.g. freshly
        initialized params and optimizer state). With it, the result has exactly
        ``like``'s structure and container types, and every leaf's shape and dtype
        is checked against ``like``. Without it, dicts, lists, tuples, keys, arrays
        and Python numbers are rebuilt from the file, and NamedTuples whose class
        is registered (`register`) or belongs to an already imported optax or
        funcnet module; any other NamedTuple or custom node needs ``like``.

    Returns:
      The restored pytree: JAX arrays where JAX arrays were saved, NumPy arrays for
      NumPy ones, typed PRNG keys, Python numbers.

    Raises:
      FileNotFoundError: there is no file at ``path``.
      ValueError: the file is not a checkpoint written by `save` (truncated,
        random bytes, a plain ``.npz``, a malformed description), it holds a class
        that needs ``like``, or it does not match ``like``. The message names the file.
    """
    path = os.fspath(path)
    meta, arrays = _read(path)
    specs = _leaf_specs(meta["tree"], [])
    if like is None:
        leaves = [_restore_leaf(s, a) for s, a in zip(specs, arrays)]
        return _rebuild(meta["tree"], leaves[::-1], "", path)
    like_leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    if len(like_leaves) != len(arrays):
        raise ValueError(f"load: {path} holds {len(arrays)} leaves but like has {len(like_leaves)}; "
                         "like must have the structure of the saved tree")
    out = [_like_leaf(ref, spec, arr, jax.tree_util.keystr(kpath) or "the root", path)
           for (kpath, ref), spec, arr in zip(like_leaves, specs, arrays)]
    return jax.tree_util.tree_unflatten(treedef, out)
