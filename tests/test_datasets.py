"""fn.datasets: bundled digits, moons, xor, split."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import funcnet as fn


def test_digits_shape_range_and_labels():
    X, y = fn.datasets.digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and np.issubdtype(y.dtype, np.integer)
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    # pixel values are multiples of 1/16 (the original 0..16 counts)
    np.testing.assert_allclose(X * 16, np.round(X * 16), atol=1e-5)


def test_moons_deterministic_and_balanced():
    X1, y1 = fn.datasets.moons(jax.random.key(0), 101, 0.1)
    X2, y2 = fn.datasets.moons(jax.random.key(0), 101, 0.1)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert X1.shape == (101, 2) and y1.shape == (101,)
    assert int(y1.sum()) == 51
    # noiseless: the upper moon lies on the unit circle
    X0, y0 = fn.datasets.moons(jax.random.key(1), 50, 0.0)
    up = np.asarray(X0)[np.asarray(y0) == 0]
    np.testing.assert_allclose(np.linalg.norm(up, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        fn.datasets.moons(jax.random.key(0), 10, -1.0)


def test_xor_truth_table():
    X, y = fn.datasets.xor()
    np.testing.assert_array_equal(y[:, 0], np.logical_xor(X[:, 0], X[:, 1]).astype(np.float32))


def test_split_partitions_and_keeps_structure():
    X = np.arange(100, dtype=np.float32).reshape(50, 2)
    data = {"x": X, "y": np.arange(50)}
    train, val, test = fn.datasets.split(jax.random.key(0), data, (0.6, 0.2, 0.2))
    assert [len(p["y"]) for p in (train, val, test)] == [30, 10, 10]
    ids = np.concatenate([p["y"] for p in (train, val, test)])
    np.testing.assert_array_equal(np.sort(ids), np.arange(50))
    np.testing.assert_array_equal(train["x"][:, 0], 2 * train["y"])  # rows stay paired
    again = fn.datasets.split(jax.random.key(0), data, (0.6, 0.2, 0.2))
    np.testing.assert_array_equal(again[0]["y"], train["y"])


def test_split_bad_input():
    with pytest.raises(ValueError, match="must have the same leading length"):
        fn.datasets.split(jax.random.key(0), (np.zeros(3), np.zeros(4)))
    with pytest.raises(ValueError, match="sum to 1"):
        fn.datasets.split(jax.random.key(0), np.zeros(10), (0.5, 0.2))
