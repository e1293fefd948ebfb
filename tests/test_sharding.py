"""funcnet.sharding on one device, and the 8-device checks in a subprocess.

The 8-device tests live in ``tests/sharding_mesh_cases.py``; :func:`test_eight_device_suite` runs that file
with ``XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu`` in a fresh interpreter, so
this session keeps its single device. Tolerances are stated in that file (float32, rtol=1e-5, atol=1e-6).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh

import funcnet as fn
from funcnet import sharding

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 150


@pytest.mark.slow
def test_eight_device_suite():
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_NUM_CPU_DEVICES",)}
    env.update(XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "tests/sharding_mesh_cases.py"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the 8-device suite did not finish within {TIMEOUT} s:\n{(e.stdout or '')[-3000:]}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    m = re.search(r"(\d+) passed", out)
    assert m and int(m.group(1)) >= 18 and "skipped" not in out, out[-3000:]


def test_public_module_exports():
    assert set(sharding.__all__) >= {"resolve_mesh", "shard_batch", "replicate", "initialize_distributed",
                                     "global_batch_from_local", "data_sharding", "replicated", "check_divisible",
                                     "sharded_epoch_layout", "data_parallel_jit", "to_host"}
    mesh = sharding.resolve_mesh(jax.devices()[:1])
    x = np.arange(6.0, dtype=np.float32).reshape(3, 2)
    placed = sharding.shard_batch(x, mesh)  # behaviour, not presence: the rows land on the mesh unchanged
    assert placed.sharding.is_equivalent_to(sharding.data_sharding(mesh), 2)
    np.testing.assert_array_equal(np.asarray(placed), x)
    rep = sharding.replicate({"w": x}, mesh)["w"]
    assert rep.sharding.is_equivalent_to(sharding.replicated(mesh), 2) and rep is not x
    assert sharding.sharded_epoch_layout(10, 4, 1) == sharding.EpochLayout(10, 4, 1, 2, 2, True)


def test_resolve_mesh_forms():
    m = sharding.resolve_mesh()
    assert m.axis_names == ("data",) and m.devices.size == jax.device_count()
    m1 = sharding.resolve_mesh(jax.devices()[:1], axis="batch")
    assert dict(m1.shape) == {"batch": 1}
    assert sharding.resolve_mesh(m1, axis="batch") is m1


@pytest.mark.parametrize("bad,err,match", [
    ("cpu", TypeError, "mesh must be a jax.sharding.Mesh, a sequence of devices, or None"),
    ([], ValueError, "device list is empty"),
    ([0, 1], TypeError, "must be a jax.Device, got 0"),
    (3, TypeError, "got int"),
])
def test_resolve_mesh_bad_input(bad, err, match):
    with pytest.raises(err, match=match):
        sharding.resolve_mesh(bad)


def test_mesh_without_axis_lists_its_axes():
    m = Mesh(np.array(jax.devices()[:1]), ("model",))
    with pytest.raises(ValueError, match=r"no axis named 'data': its axes are \{'model': 1\}"):
        sharding.resolve_mesh(m)


@pytest.mark.parametrize("n,bs,d,expect", [
    # n, batch_size, devices -> (full_steps, rest, rest_sharded); reference: hand count
    (100, 32, 8, (3, 4, False)),
    (104, 32, 8, (3, 8, True)),
    (96, 32, 8, (3, 0, True)),
    (96, None, 8, (1, 0, True)),
    (7, 1, 1, (7, 0, True)),
])
def test_epoch_layout_table(n, bs, d, expect):
    layout = sharding.sharded_epoch_layout(n, bs, d)
    assert (layout.full_steps, layout.rest, layout.rest_sharded) == expect
    assert layout.steps == expect[0] + (1 if expect[1] else 0)
    full, rest = layout.split(np.arange(n))
    assert full.shape == (expect[0], layout.batch_size) and rest.shape == (expect[1],)
    np.testing.assert_array_equal(np.concatenate([full.ravel(), rest]), np.arange(n))


def test_epoch_layout_drop_last_and_errors():
    assert sharding.sharded_epoch_layout(100, 32, 8, drop_last=True).rest == 0
    with pytest.raises(ValueError, match=r"batch_size=30 cannot be split evenly over 8 devices.*use 24 or 32"):
        sharding.sharded_epoch_layout(100, 30, 8)
    with pytest.raises(ValueError, match=r"the full batch \(batch_size=None: all 100 examples\).*use 96$"):
        sharding.sharded_epoch_layout(100, None, 8)
    with pytest.raises(ValueError, match=r"batch_size must be an int in 1\.\.100"):
        sharding.sharded_epoch_layout(100, 200, 8)


def test_check_divisible_message():
    mesh = sharding.resolve_mesh(jax.devices()[:1])
    sharding.check_divisible(7, mesh)  # one device divides everything: no error
    with pytest.raises(ValueError, match=r"the batch has 7 rows.*4 devices of mesh axis 'data'.*\(e\.g\. 4 or 8\)"):
        sharding.check_divisible_by(7, 4)
    with pytest.raises(ValueError, match=r"x has 3 rows.*multiple of 4 \(e\.g\. 4\)"):
        sharding.check_divisible_by(3, 4, what="x")
    sharding.check_divisible_by(12, 4)  # divides: no error
    with pytest.raises(TypeError, match="n_devices must be an int"):
        sharding.check_divisible_by(8, 2.0)


def test_pad_to_multiple():
    x = np.arange(10.0).reshape(5, 2)
    (xp, yp), mask = sharding.pad_to_multiple((x, jnp.arange(5)), 4)
    np.testing.assert_array_equal(xp, np.concatenate([x, np.repeat(x[-1:], 3, axis=0)]))
    np.testing.assert_array_equal(np.asarray(yp), [0, 1, 2, 3, 4, 4, 4, 4])
    assert mask.tolist() == [True] * 5 + [False] * 3
    same, mask = sharding.pad_to_multiple(x[:4], 4)
    assert same is not None and mask.all()
    with pytest.raises(ValueError, match="same leading"):
        sharding.pad_to_multiple((x, np.arange(3)), 4)


def test_shard_batch_errors_on_scalar_and_ragged_leaves():
    mesh = sharding.resolve_mesh()
    with pytest.raises(ValueError, match=r"batch\[1\] is a scalar"):
        sharding.shard_batch((np.zeros((4, 2)), 3.0), mesh)
    with pytest.raises(ValueError, match=r"same leading \(batch\) size, got batch\[0\]: 4, batch\[1\]: 3"):
        sharding.shard_batch((np.zeros((4, 2)), np.zeros(3)), mesh)


def test_one_device_step_equals_plain_jit():
    """data_parallel_jit on a 1-device mesh is plain jit: same numbers (reference: jax.jit), tol 1e-6."""
    model = fn.mlp([4, 8, 3])
    params = model.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    batch = (rng.normal(size=(6, 4)).astype(np.float32), rng.integers(0, 3, size=6))
    opt = optax.adam(1e-2)

    def step(p, s, b):
        loss, g = jax.value_and_grad(lambda p: fn.losses.softmax_cross_entropy(model.apply(p, b[0]), b[1]))(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    ref = jax.jit(step)(params, opt.init(params), batch)
    mesh = sharding.resolve_mesh()
    got = sharding.data_parallel_jit(step, mesh, donate_argnums=(0, 1))(
        sharding.replicate(params, mesh), sharding.replicate(opt.init(params), mesh), batch)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    assert not params[0]["w"].is_deleted()  # replicate copied: donation never deletes the caller's arrays


def test_data_parallel_jit_argument_checks():
    mesh = sharding.resolve_mesh()
    with pytest.raises(ValueError, match=r"batch_argnums \(3,\) out of range for a function of 3 arguments"):
        sharding.data_parallel_jit(lambda a, b, c: a, mesh, batch_argnums=(3,))
    with pytest.raises(ValueError, match="out_shardings must be"):
        sharding.data_parallel_jit(lambda a, b, c: a, mesh, out_shardings="rows")
    f = sharding.data_parallel_jit(lambda a, b, c: a, mesh)
    with pytest.raises(TypeError, match="takes 3 positional arguments, got 2"):
        f(1.0, 2.0)


def test_initialize_distributed_validates_before_touching_jax():
    with pytest.raises(ValueError, match=r"process_id must be in 0\.\.1 \(num_processes=2\), got 2"):
        sharding.initialize_distributed("127.0.0.1:1234", 2, 2)
    with pytest.raises(ValueError, match="coordinator_address must be 'host:port'"):
        sharding.initialize_distributed("localhost", 2, 0)
    with pytest.raises(ValueError, match="cpu_collectives must be 'gloo', 'mpi' or None"):
        sharding.initialize_distributed("127.0.0.1:1234", 2, 0, cpu_collectives="nccl")
    with pytest.raises(ValueError, match="num_processes must be >= 1"):
        sharding.initialize_distributed("127.0.0.1:1234", 0, 0)


def test_to_host_and_global_batch_single_process():
    x = np.arange(6.0, dtype=np.float32).reshape(3, 2)
    mesh = sharding.resolve_mesh()
    g = sharding.global_batch_from_local(x, mesh)
    np.testing.assert_array_equal(sharding.to_host(g), x)
    assert sharding.process_slice(3, mesh) == slice(0, 3)
    k = sharding.to_host(jax.random.key(3))
    np.testing.assert_array_equal(jax.random.key_data(k), jax.random.key_data(jax.random.key(3)))


@pytest.mark.slow
def test_data_parallel_example_on_four_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "data_parallel.py")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout
    assert "4 device(s), mesh axes {'data': 4}, global batch 128 = 32 rows per device" in out
    assert "rows of the first batch on each device: [32, 32, 32, 32]" in out
    assert "(agree)" in out  # sharded vs single device, max abs difference < 1e-4
