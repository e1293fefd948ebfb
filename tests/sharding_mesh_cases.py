"""Data parallelism on 8 devices: runs only where 8 devices exist.

``tests/test_sharding.py`` runs this file in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu``, so the rest of the suite keeps
one device; the file is not named test_*.py, so the normal (one-device) session does not collect it.

Reference: the same computation with plain ``jax.jit`` on one device (device 0, uncommitted inputs).
Tolerance: float32, rtol=1e-5, atol=1e-6: sharding only changes the order in which the gradient's
per-example terms are summed (8 partial sums, then an all-reduce).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import funcnet as fn
from funcnet import sharding

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices; run by test_sharding.py in a subprocess")

RTOL, ATOL = 1e-5, 1e-6
D = 8


@pytest.fixture(scope="module")
def mesh():
    return sharding.resolve_mesh(jax.devices()[:D])


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(104, 20)).astype(np.float32)
    y = rng.integers(0, 5, size=104).astype(np.int32)
    model = fn.mlp([20, 32, 5], activation="relu")

    def loss_fn(p, batch):
        return fn.losses.softmax_cross_entropy(model.apply(p, batch[0]), batch[1])

    return model, model.init(jax.random.key(0)), (X, y), loss_fn


def _step(loss_fn, opt):
    def step(params, opt_state, batch):
        loss, g = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def _assert_trees_close(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(want)[0], jax.tree.leaves(got)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=RTOL, atol=ATOL,
                                   err_msg=jax.tree_util.keystr(path))


def _run(step, params, opt_state, batches):
    losses = []
    for b in batches:
        params, opt_state, loss = step(params, opt_state, b)
        losses.append(float(loss))
    return params, opt_state, np.asarray(losses)


@pytest.mark.parametrize("opt", [optax.sgd(0.1), optax.adam(1e-2)], ids=["sgd", "adam"])
def test_sharded_steps_match_one_device(mesh, problem, opt):
    _, params, (X, y), loss_fn = problem
    batches = [(X[i:i + 32], y[i:i + 32]) for i in (0, 32, 64)] * 2  # 6 steps, global batch 32 = 4 per device
    ref = _run(jax.jit(_step(loss_fn, opt)), params, opt.init(params), batches)
    step = sharding.data_parallel_jit(_step(loss_fn, opt), mesh, donate_argnums=(0, 1))
    p = sharding.replicate(params, mesh)
    got = _run(step, p, sharding.replicate(opt.init(p), mesh), [sharding.shard_batch(b, mesh) for b in batches])
    np.testing.assert_allclose(got[2], ref[2], rtol=RTOL, atol=ATOL)
    _assert_trees_close(got[0], ref[0])
    _assert_trees_close(got[1], ref[1])
    assert np.max(np.abs(np.asarray(ref[0][0]["w"]) - np.asarray(params[0]["w"]))) > 1e-3  # it trained
    # parameters come back replicated; NumPy batches are placed by the step itself
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(got[0]))
    p2, _, loss = step(sharding.replicate(params, mesh), sharding.replicate(opt.init(params), mesh), batches[0])
    np.testing.assert_allclose(float(loss), ref[2][0], rtol=RTOL, atol=ATOL)


def test_batch_is_split_and_gradients_all_reduced(mesh, problem):
    _, params, (X, y), loss_fn = problem
    batch = sharding.shard_batch((X[:32], y[:32]), mesh)
    assert [s.data.shape for s in batch[0].addressable_shards] == [(4, 20)] * D
    assert {s.device for s in batch[0].addressable_shards} == set(mesh.devices.flat)
    opt = optax.sgd(0.1)
    step = sharding.data_parallel_jit(_step(loss_fn, opt), mesh)
    hlo = step.jitted.lower(params, opt.init(params), batch).compile().as_text()
    assert "all-reduce" in hlo  # XLA inserted the gradient sum across the 8 shards


def test_make_mesh_explicit_axes_and_device_list(problem):
    explicit = jax.make_mesh((D,), ("data",), devices=jax.devices()[:D])
    m = sharding.resolve_mesh(explicit)
    assert m.axis_names == ("data",) and list(m.devices.flat) == list(explicit.devices.flat)
    assert all(t == jax.sharding.AxisType.Auto for t in m.axis_types)
    m4 = sharding.resolve_mesh(jax.devices()[:4])
    assert dict(m4.shape) == {"data": 4}
    two_d = Mesh(np.array(jax.devices()[:D]).reshape(4, 2), ("data", "model"))
    b = sharding.shard_batch(np.zeros((8, 3), np.float32), two_d)
    assert b.sharding.spec == P("data") and b.addressable_shards[0].data.shape == (2, 3)


def test_mesh_without_data_axis_is_a_clear_error():
    m = Mesh(np.array(jax.devices()[:D]).reshape(2, 4), ("x", "y"))
    with pytest.raises(ValueError, match=r"no axis named 'data': its axes are \{'x': 2, 'y': 4\}"):
        sharding.resolve_mesh(m)
    with pytest.raises(ValueError, match="no axis named 'data'"):
        sharding.shard_batch(np.zeros((8, 2)), m)
    assert dict(sharding.resolve_mesh(m, axis="y").shape) == {"x": 2, "y": 4}


def test_non_divisible_batch_is_a_clear_error(mesh, problem):
    _, params, (X, y), loss_fn = problem
    with pytest.raises(ValueError, match=r"has 10 rows.*8 devices of mesh axis 'data'.*multiple of 8 \(e\.g\. 8 or 16\)"):
        sharding.shard_batch((X[:10], y[:10]), mesh)
    opt = optax.sgd(0.1)
    step = sharding.data_parallel_jit(_step(loss_fn, opt), mesh)
    with pytest.raises(ValueError, match=r"batch argument 'batch' has 12 rows"):
        step(params, opt.init(params), (X[:12], y[:12]))
    with pytest.raises(ValueError, match=r"batch_size=30 cannot be split evenly over 8 devices.*use 24 or 32"):
        sharding.sharded_epoch_layout(104, 30, D)


def test_mismatched_sharding_on_resume_is_a_clear_error(mesh, problem):
    _, params, (X, y), loss_fn = problem
    opt = optax.sgd(0.1)
    step = sharding.data_parallel_jit(_step(loss_fn, opt), mesh)
    wrong = sharding.replicate(params, mesh)
    wrong[0]["b"] = jax.device_put(params[0]["b"], NamedSharding(mesh, P("data")))  # split, not replicated
    with pytest.raises(ValueError, match=r"params\[0\]\['b'\] is laid out as P\('data',\) on the mesh, but this step expects P\(\) \(replicated\).*replicate\(tree, mesh\)"):
        step(wrong, opt.init(params), (X[:32], y[:32]))
    # arrays on another device set are simply copied over by jit (no error): here one device
    one = jax.device_put(params, jax.devices()[3])
    _, _, loss = step(one, opt.init(params), (X[:32], y[:32]))
    np.testing.assert_allclose(float(loss), float(jax.jit(loss_fn)(params, (X[:32], y[:32]))), rtol=RTOL, atol=ATOL)


def test_checkpoint_sharded_to_single_device_and_back(mesh, problem, tmp_path):
    _, params, (X, y), loss_fn = problem
    opt = optax.adam(1e-2)
    batches = [(X[i:i + 32], y[i:i + 32]) for i in (0, 32, 64)]
    single = jax.jit(_step(loss_fn, opt))
    sharded = sharding.data_parallel_jit(_step(loss_fn, opt), mesh)
    # reference: 6 steps on one device without interruption
    ref = _run(single, params, opt.init(params), batches * 2)

    # sharded run for 3 steps -> checkpoint -> single-device run for 3 more
    p, s, _ = _run(sharded, sharding.replicate(params, mesh), sharding.replicate(opt.init(params), mesh), batches)
    fn.save(tmp_path / "sharded.ckpt", {"params": p, "opt_state": s})
    loaded = fn.load(tmp_path / "sharded.ckpt")  # like=None: the saved structure (optax NamedTuples included)
    assert jax.tree.structure(loaded) == jax.tree.structure({"params": params, "opt_state": opt.init(params)})
    assert all(len(leaf.devices()) == 1 for leaf in jax.tree.leaves(loaded))
    got = _run(single, loaded["params"], loaded["opt_state"], batches)
    _assert_trees_close(got[0], ref[0])

    # single-device run for 3 steps -> checkpoint -> replicated onto the mesh for 3 more
    p, s, _ = _run(single, params, opt.init(params), batches)
    fn.save(tmp_path / "single.ckpt", {"params": p, "opt_state": s})
    loaded = fn.load(tmp_path / "single.ckpt")
    placed = sharding.replicate(loaded, mesh)
    got = _run(sharded, placed["params"], placed["opt_state"], [sharding.shard_batch(b, mesh) for b in batches])
    _assert_trees_close(got[0], ref[0])
    assert all(leaf.sharding.is_fully_replicated and len(leaf.devices()) == D for leaf in jax.tree.leaves(got[0]))


def _epoch_fn(loss_fn, opt, layout, mesh):
    """One epoch as fit compiles it (scan over shuffled index batches, short last batch its own step),
    with the batch gathered by ``take_batch``: split over the mesh, or plain when ``mesh`` is None."""
    vg = jax.value_and_grad(loss_fn)

    def update(carry, batch):
        p, s = carry
        _, g = vg(p, batch)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    def epoch(p, s, data, key):
        full, rest = layout.split(jax.random.permutation(key, layout.n))
        carry = jax.lax.scan(lambda c, idx: (update(c, sharding.take_batch(data, idx, mesh)), None), (p, s), full)[0]
        if layout.rest:
            m = mesh if layout.rest_sharded else None  # replicated short batch: plain gather
            carry = update(carry, sharding.take_batch(data, rest, m))
        return carry

    return jax.jit(epoch)


@pytest.mark.parametrize("n,bs", [(104, 32), (100, 32)], ids=["rest8-sharded", "rest4-replicated"])
def test_sharded_epoch_layout_matches_one_device(mesh, problem, n, bs):
    _, params, (X, y), loss_fn = problem
    data = (X[:n], y[:n])
    opt = optax.sgd(0.05, momentum=0.9)
    layout = sharding.sharded_epoch_layout(n, bs, D)
    assert layout.rest == n % bs and layout.rest_sharded == (layout.rest % D == 0)
    ref_p, _ = _epoch_fn(loss_fn, opt, layout, None)(params, opt.init(params), data, jax.random.key(1))
    p = sharding.replicate(params, mesh)
    got_p, _ = _epoch_fn(loss_fn, opt, layout, mesh)(p, sharding.replicate(opt.init(p), mesh),
                                                    sharding.replicate(data, mesh), jax.random.key(1))
    _assert_trees_close(got_p, ref_p)
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(got_p))


def test_sharded_gather_is_local(mesh):
    """take_batch from replicated data with split indices compiles without any collective."""
    data = sharding.replicate(jnp.arange(64.0).reshape(32, 2), mesh)
    idx = jnp.arange(31, -1, -1)[:16]
    f = jax.jit(lambda d, i: sharding.take_batch(d, i, mesh))
    out = f(data, idx)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(data)[np.asarray(idx)])
    assert out.sharding.spec == P("data")
    hlo = f.lower(data, idx).compile().as_text()
    assert not any(c in hlo for c in ("all-gather", "all-reduce", "all-to-all", "collective-permute"))


def test_padded_per_example_work_matches_one_device(mesh, problem):
    """The pgd / visualize_units pattern: pad 13 rows to 16, split, run a per-example update, slice back."""
    model, params, (X, y), loss_fn = problem

    def fgsm_like(p, xb, yb):
        g = jax.grad(lambda x: fn.losses.softmax_cross_entropy(model.apply(p, x), yb) * xb.shape[0])(xb)
        return xb + 0.1 * jnp.sign(g)

    x, t = X[:13], y[:13]
    ref = jax.jit(fgsm_like)(params, x, t)
    (xp, tp), mask = sharding.pad_to_multiple((x, t), D)
    assert xp.shape[0] == 16 and int(mask.sum()) == 13
    f = sharding.data_parallel_jit(fgsm_like, mesh, batch_argnums=(1, 2), out_shardings="data")
    out = f(params, xp, tp)
    assert out.sharding.spec == P("data")
    np.testing.assert_allclose(np.asarray(out)[mask], np.asarray(ref), rtol=RTOL, atol=ATOL)


def test_global_batch_from_local_single_process_equals_shard_batch(mesh):
    x = np.arange(48, dtype=np.float32).reshape(16, 3)
    a = sharding.global_batch_from_local(x, mesh)
    b = sharding.shard_batch(x, mesh)
    np.testing.assert_array_equal(np.asarray(a), x)
    assert a.sharding.is_equivalent_to(b.sharding, 2)
    assert sharding.process_slice(16, mesh) == slice(0, 16)
    np.testing.assert_array_equal(sharding.to_host(a), x)


@pytest.mark.parametrize("bs", [32, None, 16], ids=["bs32-ragged-replicated", "full-batch", "bs16-ragged-split"])
def test_fit_with_mesh_matches_one_device(mesh, problem, bs):
    """fn.fit(mesh=...) follows the single-device trajectory (reference: the same fit without a mesh)."""
    model, params, (X, y), loss_fn = problem
    n = 96 if bs is None else 104   # 104 = 3*32 + 8 (short batch of 8 splits), = 6*16 + 8
    data = (X[:n], y[:n])
    kw = dict(optimizer=optax.adam(1e-2), epochs=3, batch_size=bs, key=jax.random.key(3), progress=False)
    want, h_want = fn.fit(loss_fn, params, data, **kw)
    got, h_got = fn.fit(loss_fn, params, data, mesh=mesh, **kw)
    _assert_trees_close(got, want)
    np.testing.assert_allclose(h_got.train_loss, h_want.train_loss, rtol=RTOL, atol=ATOL)
    assert got[0]["w"].sharding.is_fully_replicated


def test_fit_with_mesh_rejects_non_divisible_batch(mesh, problem):
    model, params, data, loss_fn = problem
    with pytest.raises(ValueError, match="30"):
        fn.fit(loss_fn, params, data, optimizer=optax.sgd(0.1), epochs=1, batch_size=30,
               key=jax.random.key(0), mesh=mesh, progress=False)


def test_make_train_step_with_mesh_matches_one_device(mesh, problem):
    model, params, (X, y), loss_fn = problem
    opt = optax.sgd(0.1)
    batches = [(X[i:i + 32], y[i:i + 32]) for i in (0, 32, 64)]
    want = _run(jax.jit(_step(loss_fn, opt)), params, opt.init(params), batches)
    step = fn.make_train_step(loss_fn, opt, mesh=mesh)
    p, s = sharding.replicate((params, opt.init(params)), mesh)
    got = _run(step, p, s, batches)
    _assert_trees_close(got[0], want[0])
    np.testing.assert_allclose(got[2], want[2], rtol=RTOL, atol=ATOL)
