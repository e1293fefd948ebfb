"""fit and make_train_step against hand-written reference loops."""

from __future__ import annotations

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnet as fn
import funcnet.train._fit as _train  # noqa: F401

RTOL = 1e-5  # float32 compiled vs float32 eager: same maths, possibly different summation order
ATOL = 1e-6


def _regression(n=50, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, 1)).astype(np.float32)
    Y = (X @ w + 0.1 * rng.normal(size=(n, 1))).astype(np.float32)
    return jnp.asarray(X), jnp.asarray(Y)


MODEL = fn.mlp([3, 4, 1], activation="tanh")


def _loss(p, batch):
    x, y = batch
    return fn.losses.mse(MODEL.apply(p, x), y)


def _params(seed=0):
    return MODEL.init(jax.random.key(seed))


def _close(a, b, rtol=RTOL, atol=ATOL):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _reference_epoch(loss_fn, params, opt, opt_state, data, perm, bs, drop_last=False):
    """The lectures' loop, one batch at a time in Python, no jit."""
    n = len(perm)
    stops = range(0, n, bs)
    losses, sizes = [], []
    for start in stops:
        idx = perm[start:start + bs]
        if drop_last and len(idx) < bs:
            break
        batch = jax.tree.map(lambda a: a[idx], data)
        loss, g = jax.value_and_grad(loss_fn)(params, batch)
        upd, opt_state = opt.update(g, opt_state, params)
        params = optax.apply_updates(params, upd)
        losses.append(float(loss))
        sizes.append(len(idx))
    return params, opt_state, float(np.dot(losses, sizes) / np.sum(sizes))


# ------------------------------------------------------------------ make_train_step


def test_train_step_matches_manual_sgd_and_compiles_once():
    X, Y = _regression()
    opt = optax.sgd(0.1)
    loss = chex.assert_max_traces(_loss, n=1)
    step = fn.make_train_step(loss, opt)
    params = _params()
    ref = _params()
    state = opt.init(params)
    for i in range(3):
        batch = (X[10 * i:10 * i + 10], Y[10 * i:10 * i + 10])
        ref_loss, g = jax.value_and_grad(_loss)(ref, batch)
        ref = jax.tree.map(lambda p, gi: p - 0.1 * gi, ref, g)
        params, state, l = step(params, state, batch)
        np.testing.assert_allclose(float(l), float(ref_loss), rtol=RTOL)
    _close(params, ref)


def test_train_step_donates_buffers():
    X, Y = _regression()
    opt = optax.adam(1e-2)
    step = fn.make_train_step(_loss, opt)
    params = _params()
    state = opt.init(params)
    new_params, _, _ = step(params, state, (X, Y))
    assert params[0]["w"].is_deleted()
    assert not new_params[0]["w"].is_deleted()


def test_train_step_non_scalar_loss_is_a_clear_error():
    step = fn.make_train_step(lambda p, b: (b[0] * p - b[1]) ** 2, optax.sgd(0.1))
    with pytest.raises(ValueError, match="must return a scalar"):
        step(jnp.zeros(()), optax.sgd(0.1).init(jnp.zeros(())), (jnp.ones(3), jnp.ones(3)))


# ------------------------------------------------------------------------------ fit


@pytest.mark.parametrize("opt", [optax.sgd(0.1), optax.adam(1e-2)], ids=["sgd", "adam"])
def test_fit_first_epoch_matches_reference_loop(opt):
    X, Y = _regression(n=50)
    key = jax.random.key(3)
    bs = 16  # 3 full batches and a ragged one of 2
    params, hist = fn.fit(_loss, _params(), (X, Y), optimizer=opt, epochs=1, batch_size=bs, key=key,
                          progress=False)
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), 50))
    ref, _, ref_loss = _reference_epoch(_loss, _params(), opt, opt.init(_params()), (X, Y), perm, bs)
    _close(params, ref)
    np.testing.assert_allclose(hist.train_loss[0], ref_loss, rtol=RTOL)


def test_fit_drop_last_skips_the_short_batch():
    X, Y = _regression(n=50)
    key = jax.random.key(4)
    opt = optax.sgd(0.1)
    params, hist = fn.fit(_loss, _params(), (X, Y), optimizer=opt, epochs=1, batch_size=16, key=key,
                          drop_last=True, progress=False)
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), 50))
    ref, _, ref_loss = _reference_epoch(_loss, _params(), opt, opt.init(_params()), (X, Y), perm, 16, drop_last=True)
    _close(params, ref)
    np.testing.assert_allclose(hist.train_loss[0], ref_loss, rtol=RTOL)


def test_fit_full_batch_is_gradient_descent():
    X, Y = _regression(n=20)
    params, hist = fn.fit(_loss, _params(), (X, Y), optimizer=optax.sgd(0.2), epochs=3, batch_size=None,
                          progress=False)
    ref = _params()
    losses = []
    for _ in range(3):
        loss, g = jax.value_and_grad(_loss)(ref, (X, Y))
        losses.append(float(loss))
        ref = jax.tree.map(lambda p, gi: p - 0.2 * gi, ref, g)
    _close(params, ref)
    np.testing.assert_allclose(hist.train_loss, losses, rtol=RTOL)


def test_fit_single_example_sgd():
    X, Y = _regression(n=6)
    key = jax.random.key(5)
    opt = optax.sgd(0.05)
    params, _ = fn.fit(_loss, _params(), (X, Y), optimizer=opt, epochs=2, batch_size=1, key=key, progress=False)
    ref, state = _params(), opt.init(_params())
    for e in range(2):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, e), 6))
        ref, state, _ = _reference_epoch(_loss, ref, opt, state, (X, Y), perm, 1)
    _close(params, ref)


def test_fit_does_not_recompile_per_epoch():
    X, Y = _regression(n=50)
    calls = []

    def count(epochs):
        def counting_loss(p, b):  # a new function per call: fit's program cache cannot serve it
            calls.append(1)
            return _loss(p, b)

        calls.clear()
        fn.fit(counting_loss, _params(), (X, Y), optimizer=optax.sgd(0.1), epochs=epochs, batch_size=16,
               key=jax.random.key(0), val_data=(X[:10], Y[:10]), progress=False, check_data=False)
        return len(calls)

    assert count(1) == count(5) > 0


def test_fit_is_bit_reproducible_and_history_is_json():
    X, Y = _regression(n=40)

    def run():
        return fn.fit(_loss, _params(), (X, Y), optimizer=optax.adam(1e-2), epochs=3, batch_size=7,
                      key=jax.random.key(9), val_data=(X[:8], Y[:8]), progress=False)

    (p1, h1), (p2, h2) = run(), run()
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert h1.train_loss == h2.train_loss and h1.val_loss == h2.val_loss
    d = json.loads(json.dumps(h1.to_dict()))
    assert d["train_loss"] == h1.train_loss and d["best_epoch"] == h1.best_epoch
    assert fn.History.from_dict(d).to_dict() == d


def test_fit_does_not_touch_callers_params():
    X, Y = _regression(n=20)
    params = _params()
    before = jax.tree.map(np.asarray, params)
    fn.fit(_loss, params, (X, Y), optimizer=optax.sgd(0.1), epochs=2, batch_size=5, key=jax.random.key(0),
           progress=False)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(before)):
        np.testing.assert_array_equal(np.asarray(a), b)


def test_early_stopping_restores_best_params():
    # train towards y = 2x while the validation data say y = 0: val loss rises from epoch 0 on
    X = jnp.linspace(-1.0, 1.0, 16)[:, None]
    loss = lambda w, b: jnp.mean((b[0] * w - b[1]) ** 2)
    kw = dict(optimizer=optax.sgd(0.1), batch_size=4, key=jax.random.key(0), progress=False)
    w, hist = fn.fit(loss, jnp.zeros(()), (X, 2 * X), epochs=20, val_data=(X, 0 * X), patience=2, **kw)
    w_ref, _ = fn.fit(loss, jnp.zeros(()), (X, 2 * X), epochs=1, **kw)
    assert hist.stopped_early and hist.best_epoch == 1 and hist.best_index == 0 and len(hist.train_loss) == 3
    np.testing.assert_array_equal(np.asarray(w), np.asarray(w_ref))
    np.testing.assert_allclose(hist.val_loss[0], float(jnp.mean((X * w_ref) ** 2)), rtol=RTOL)


def test_metrics_and_val_loss_are_computed_on_val_data():
    X, y = fn.datasets.moons(jax.random.key(0), 64, 0.1)
    model = fn.mlp([2, 8, 2])
    loss = lambda p, b: fn.losses.softmax_cross_entropy(model.apply(p, b[0]), b[1])
    acc = lambda p, b: fn.accuracy(model.apply(p, b[0]), b[1])
    Xv, yv = X[:20], y[:20]
    params, hist = fn.fit(loss, model.init(jax.random.key(1)), (X, y), optimizer=optax.adam(1e-2), epochs=2,
                          batch_size=16, key=jax.random.key(2), val_data=(Xv, yv), metrics={"accuracy": acc},
                          progress=False)
    logits = np.asarray(model.apply(params, Xv), dtype=np.float64)
    ref_acc = np.mean(np.argmax(logits, 1) == np.asarray(yv))
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    ref_loss = -np.mean(logp[np.arange(20), np.asarray(yv)])
    np.testing.assert_allclose(hist.metrics["accuracy"][-1], ref_acc, atol=1e-7)
    np.testing.assert_allclose(hist.val_loss[-1], ref_loss, rtol=1e-5)


def test_learning_rate_is_recorded_from_inject_hyperparams():
    X, Y = _regression(n=32)
    sched = optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.9)
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=sched)
    _, hist = fn.fit(_loss, _params(), (X, Y), optimizer=opt, epochs=3, batch_size=8, key=jax.random.key(0),
                     progress=False)
    # after k updates the state holds the rate used by the k-th one: schedule(k - 1); 4 steps per epoch
    np.testing.assert_allclose(hist.lr, [0.1 * 0.9 ** (4 * (e + 1) - 1) for e in range(3)], rtol=1e-5)


def test_progress_switch(capsys):
    X, Y = _regression(n=16)
    kw = dict(optimizer=optax.sgd(0.1), epochs=2, batch_size=8, key=jax.random.key(0))
    fn.fit(_loss, _params(), (X, Y), progress=True, **kw)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "compiling the epoch program…"  # a new optimizer object: its first epoch compiles
    assert len(lines) == 3 and lines[1].startswith("epoch 1/2") and lines[2].startswith("epoch 2/2")
    fn.fit(_loss, _params(), (X, Y), progress=False, **kw)
    assert capsys.readouterr().err == ""
    fn.fit(_loss, _params(), (X, Y), progress=True, **kw)  # cached: nothing to compile, nothing announced
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2")


# ---------------------------------------------------------------- every optax optimizer

OPTIMIZERS = {
    "momentum": optax.sgd(0.05, momentum=0.9),
    "adamw": optax.adamw(3e-2, weight_decay=1e-4),
    "ema_momentum": fn.optim.ema_momentum(0.2, alpha=0.9),
    "plateau": optax.chain(optax.adam(3e-2), optax.contrib.reduce_on_plateau(patience=2)),  # extra-args optimizer
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optax_optimizers_lower_the_loss(name):
    X, Y = _regression(n=32)
    p0 = _params()
    initial = float(_loss(p0, (X, Y)))
    params, hist = fn.fit(_loss, p0, (X, Y), optimizer=OPTIMIZERS[name], epochs=20, progress=False)
    assert float(_loss(params, (X, Y))) < 0.9 * initial


# ---------------------------------------------------------------------- accuracy


def test_accuracy_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(30, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=30)
    ref = np.mean(np.argmax(logits, 1) == labels)
    np.testing.assert_allclose(float(fn.accuracy(logits, labels)), ref, atol=1e-7)
    np.testing.assert_allclose(float(fn.accuracy(logits, np.eye(4)[labels])), ref, atol=1e-7)
    z = rng.normal(size=(30, 1)).astype(np.float32)
    t = rng.integers(0, 2, size=(30, 1)).astype(np.float32)
    np.testing.assert_allclose(float(fn.accuracy(z, t)), np.mean((z > 0) == (t > 0.5)), atol=1e-7)


# ------------------------------------------------------------------------ selection


def test_select_hyperparameters_chooses_on_validation_and_tests_once():
    X, Y = _regression(n=40)
    (Xtr, Ytr), (Xva, Yva), (Xte, Yte) = fn.datasets.split(jax.random.key(0), (X, Y), (0.6, 0.2, 0.2))
    test_calls = []

    def train(lr):
        return fn.fit(_loss, _params(), (Xtr, Ytr), optimizer=optax.sgd(lr), epochs=3, progress=False)

    def val_score(p):
        return float(_loss(p, (Xva, Yva)))

    def test_score(p):
        test_calls.append(1)
        return float(_loss(p, (Xte, Yte)))

    lrs = [1e-4, 1e-1]
    sel = fn.select_hyperparameters(train, lrs, val_score=val_score, test_score=test_score, higher_is_better=False)
    ref_scores = [val_score(train(lr)[0]) for lr in lrs]
    np.testing.assert_allclose(sel.val_scores, ref_scores, rtol=1e-6)
    assert sel.best_index == int(np.argmin(ref_scores)) and sel.best_config == lrs[sel.best_index]
    assert len(test_calls) == 1
    np.testing.assert_allclose(sel.test_score, float(_loss(sel.best_params, (Xte, Yte))), rtol=1e-6)
