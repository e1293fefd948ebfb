"""save/load round trips, atomic writes, and resuming fit on the same trajectory."""

from __future__ import annotations

import os
import warnings

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
