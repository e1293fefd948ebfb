"""save/load round trips, atomic writes, and resuming fit on the same trajectory."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnet as fn
import funcnet.checkpoint as _ckpt


def _assert_tree_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert type(x) is type(y) or (isinstance(x, jax.Array) and isinstance(y, jax.Array))
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            np.testing.assert_array_equal(np.asarray(jax.random.key_data(x)), np.asarray(jax.random.key_data(y)))
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
            assert np.asarray(x).dtype == np.asarray(y).dtype


def _state():
    params = fn.mlp([3, 4, 2]).init(jax.random.key(0))
    opt_state = optax.adam(1e-3).init(params)
    return {"params": params, "opt_state": opt_state, "key": jax.random.key(7), "step": 12, "lr": 0.5,
            "np": np.arange(4, dtype=np.int16), "none": None, "name": "run-1", "legacy": jax.random.PRNGKey(3)}


def test_round_trip_without_like(tmp_path):
    tree = _state()
    path = fn.save(tmp_path / "c.npz", tree)
    _assert_tree_equal(fn.load(path), tree)


def test_round_trip_with_like_and_float64(tmp_path):
    with jax.enable_x64(True):
        tree = {"w": jnp.linspace(0, 1, 5, dtype=jnp.float64), "opt": optax.sgd(0.1, momentum=0.9).init(jnp.zeros(5))}
        fn.save(tmp_path / "c.npz", tree)
        _assert_tree_equal(fn.load(tmp_path / "c.npz", like=tree), tree)


def test_like_mismatch_is_a_clear_error(tmp_path):
    fn.save(tmp_path / "c.npz", {"w": jnp.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"\['w'\] has shape \(2, 3\) in the checkpoint, like has \(3, 2\)"):
        fn.load(tmp_path / "c.npz", like={"w": jnp.zeros((3, 2))})
    with pytest.raises(ValueError, match="holds 1 leaves but like has 2"):
        fn.load(tmp_path / "c.npz", like={"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)})


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a funcnet checkpoint"):
        fn.load(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError):
        fn.load(tmp_path / "missing.npz")


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    fn.save(path, {"step": 1, "w": jnp.ones(3)})

    def crash(f, arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(_ckpt, "_write", crash)
    with pytest.raises(KeyboardInterrupt):
        fn.save(path, {"step": 2, "w": jnp.zeros(3)})
    monkeypatch.undo()
    _assert_tree_equal(fn.load(path), {"step": 1, "w": jnp.ones(3)})
    assert os.listdir(tmp_path) == ["c.npz"]  # no temporary file left behind


def test_resume_follows_the_uninterrupted_trajectory(tmp_path):
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(30, 3)), jnp.float32)
    Y = jnp.asarray(rng.normal(size=(30, 1)), jnp.float32)
    model = fn.mlp([3, 4, 1])
    loss = lambda p, b: fn.losses.mse(model.apply(p, b[0]), b[1])
    p0 = model.init(jax.random.key(0))
    kw = dict(optimizer=optax.adam(1e-2), batch_size=8, key=jax.random.key(1), val_data=(X, Y), patience=10,
              progress=False)
    full, h_full = fn.fit(loss, p0, (X, Y), epochs=4, **kw)
    ckpt = tmp_path / "fit.npz"
    fn.fit(loss, p0, (X, Y), epochs=2, checkpoint=ckpt, **kw)          # "interrupted" after 2 epochs
    resumed, h_res = fn.fit(loss, p0, (X, Y), epochs=4, checkpoint=ckpt, resume=True, **kw)
    _assert_tree_equal(resumed, full)
    assert h_res.train_loss == h_full.train_loss and h_res.val_loss == h_full.val_loss
    assert fn.load(ckpt)["epoch"] == 4


# ------------------------------------------------------------------ faults: kills, debris, durability

_KILLED_WRITER = """
import sys
import numpy as np
import funcnet.checkpoint as ck
print("ready", flush=True)
ck.save(sys.argv[1], {"step": 2, "big": np.ones(12_500_000)})   # 100 MB: killed part-way
"""


def test_sigkill_during_save_keeps_the_old_checkpoint_and_leaves_no_debris(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "c.npz"
    fn.save(path, {"step": 1, "w": np.arange(5.0)})
    tmp = tmp_path / ".c.npz.tmp"
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(fn.__file__))}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], env=env, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 60
        while not (tmp.exists() and tmp.stat().st_size > 1_000_000) and time.monotonic() < deadline:
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert tmp.exists()  # the kill landed mid-write: the temporary file is the only debris
    _assert_tree_equal(fn.load(path), {"step": 1, "w": np.arange(5.0)})
    fn.save(path, {"step": 3})
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]  # the next save reused the name and renamed it away
    assert fn.load(path) == {"step": 3}


def test_next_save_removes_random_named_temporaries_of_older_versions(tmp_path):
    path = tmp_path / "c.npz"
    (tmp_path / ".c.npz.a1B2c3D4.tmp").write_bytes(b"PK\x03\x04 orphan of a killed save")
    (tmp_path / ".other.npz.a1B2c3D4.tmp").write_bytes(b"another target's: kept")
    fn.save(path, {"step": 1})
    assert sorted(os.listdir(tmp_path)) == [".other.npz.a1B2c3D4.tmp", "c.npz"]


def test_save_fsyncs_the_file_and_the_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    fn.save(tmp_path / "c.npz", {"w": np.zeros(3)})
    assert synced == [str(tmp_path / ".c.npz.tmp"), str(tmp_path)]  # the data, then the rename


def test_save_into_a_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the folder .*nope does not exist"):
        fn.save(tmp_path / "nope" / "c.npz", {"w": np.zeros(3)})


# ------------------------------------------------------------------ what load refuses


def _crafted(path, meta, **arrays):
    np.savez(path, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return path


def _nt_meta(cls_name):
    return {"format": "funcnet-checkpoint", "version": 1,
            "tree": {"t": "namedtuple", "cls": cls_name, "fields": ["a"], "c": [{"t": "leaf", "kind": "numpy"}]}}


def test_truncated_file_is_a_value_error_naming_the_file(tmp_path):
    path = fn.save(tmp_path / "c.npz", {"w": np.arange(1000.0)})
    data = pathlib.Path(path).read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        (tmp_path / "t.npz").write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"t\.npz is not a funcnet checkpoint .*truncated or corrupt"):
            fn.load(tmp_path / "t.npz")


@pytest.mark.parametrize("content", [b"garbage", bytes(range(256)) * 40, b"\x80\x04\x95 pickle-ish", b""])
def test_random_bytes_are_a_value_error_that_never_mentions_pickle(tmp_path, content):
    (tmp_path / "x.npz").write_bytes(content)
    with pytest.raises(ValueError, match=r"x\.npz is not a funcnet checkpoint") as e:
        fn.load(tmp_path / "x.npz")
    assert "pickle" not in str(e.value).lower()


def test_plain_npz_and_object_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.zeros(3))
    with pytest.raises(ValueError, match=r"plain\.npz .*plain \.npz, not written by funcnet\.save"):
        fn.load(tmp_path / "plain.npz")
    meta = {"format": "funcnet-checkpoint", "version": 1, "tree": {"t": "leaf", "kind": "numpy"}}
    _crafted(tmp_path / "obj.npz", meta, **{"0": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match=r"obj\.npz .*member '0\.npy' is not a plain numeric array") as e:
        fn.load(tmp_path / "obj.npz")
    assert "pickle" not in str(e.value).lower()


@pytest.mark.parametrize("tree, words", [
    ({"t": "leaf", "kind": "pickle"}, "unknown leaf kind 'pickle'"),
    ({"t": "leaf", "kind": "key", "impl": "os.system"}, "unknown PRNG key implementation"),
    ({"t": "list", "c": [{"t": "leaf", "kind": "numpy"}, {"t": "leaf", "kind": "numpy"}]}, "2 leaves described, 1"),
    ({"t": "dict", "keys": [["bytes", "x"]], "c": [{"t": "leaf", "kind": "numpy"}]}, "malformed dict keys"),
    ({"t": "eval", "c": []}, "malformed tree node"),
    ("not a node", "malformed tree node"),
])
def test_malformed_descriptions_are_value_errors(tmp_path, tree, words):
    meta = {"format": "funcnet-checkpoint", "version": 1, "tree": tree}
    _crafted(tmp_path / "m.npz", meta, **{"0": np.zeros(2)})
    with pytest.raises(ValueError, match=r"m\.npz is not a funcnet checkpoint") as e:
        fn.load(tmp_path / "m.npz")
    assert words in str(e.value)


def test_deeply_nested_description_is_a_value_error_not_a_recursion_error(tmp_path):
    for depth in (300, 50_000):  # past funcnet's limit; past Python's recursion limit in json itself
        tree = '{"t": "list", "c": [' * depth + '{"t": "leaf", "kind": "numpy"}' + "]}" * depth
        meta = '{"format": "funcnet-checkpoint", "version": 1, "tree": ' + tree + "}"
        path = tmp_path / "deep.npz"
        np.savez(path, __meta__=np.frombuffer(meta.encode(), np.uint8), **{"0": np.zeros(1)})
        with pytest.raises(ValueError, match=r"deep\.npz is not a funcnet checkpoint"):
            fn.load(path)


def test_a_crafted_class_name_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    (tmp_path / "evil_side_effect_mod.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\nclass Thing(tuple):\n    _fields = ('a',)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("evil_side_effect_mod:Thing", "os:system", "funcnet.evil_side_effect_mod:Thing",
                 "optax:adam", "subprocess:Popen"):
        path = _crafted(tmp_path / "nt.npz", _nt_meta(name), **{"0": np.zeros(2)})
        with pytest.raises(ValueError, match=r"nt\.npz holds a NamedTuple of class .* pass like=") as e:
            fn.load(path)
        assert name in str(e.value)
    assert not marker.exists()
    assert "evil_side_effect_mod" not in sys.modules and "funcnet.evil_side_effect_mod" not in sys.modules


class _Pair(NamedTuple):
    a: Any
    b: Any


def test_namedtuples_come_from_like_or_the_registry(tmp_path, monkeypatch):
    path = fn.save(tmp_path / "c.npz", {"s": _Pair(np.ones(2), 3)})
    with pytest.raises(ValueError, match=r"class tests\.test_checkpoint:_Pair|class test_checkpoint:_Pair"):
        fn.load(path)
    got = fn.load(path, like={"s": _Pair(np.zeros(2), 0)})
    assert type(got["s"]) is _Pair and got["s"].b == 3
    monkeypatch.setattr(_ckpt, "_REGISTRY", {})
    fn.checkpoint.register(_Pair)
    got = fn.load(path)
    assert type(got["s"]) is _Pair
    np.testing.assert_array_equal(got["s"].a, np.ones(2))
    with pytest.raises(TypeError, match="expected a NamedTuple class"):
        fn.checkpoint.register(dict)


def test_optax_states_load_without_like(tmp_path):
    state = optax.adam(1e-3).init({"w": jnp.ones(3)})
    path = fn.save(tmp_path / "opt.npz", state)
    _assert_tree_equal(fn.load(path), state)  # optax's classes: looked up in the imported module, not imported
