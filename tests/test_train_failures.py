"""Issue 17's fit defects, each with the message it must show; callbacks, loggers, compile caching.

References: closed forms (SGD on a linear model), Python loops over the same batches, and the files the
loggers wrote compared with the returned History.
"""

from __future__ import annotations

import csv
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax._src import monitoring

import funcnet as fn
import funcnet.train._fit as _fit

MODEL = fn.mlp([3, 8, 1], activation="tanh")
RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 3)).astype(np.float32)
Y = np.sin(X[:, :1]).astype(np.float32)
P0 = MODEL.init(jax.random.key(0))
KEY = jax.random.key(0)


def _loss(p, b):
    return fn.losses.mse(MODEL.apply(p, b[0]), b[1])


def _finite(tree) -> bool:
    return all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(tree))


@pytest.fixture
def no_compile(monkeypatch):
    """Fail the test if fit gets as far as building its compiled epoch."""

    def boom(*a, **k):
        raise AssertionError("fit reached compilation")

    monkeypatch.setattr(_fit, "get_programs", boom)


class _Compiles:
    """Counts XLA backend compilations (jax.monitoring's compile event) while active."""

    def __init__(self):
        self.n = 0
        monitoring.register_event_duration_secs_listener(self._on)

    def _on(self, event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            self.n += 1


COMPILES = _Compiles()


# ----------------------------------------------------------------------------- non-finite guard


def test_nan_update_with_finite_loss_and_gradient_stops_with_finite_params():
    # adam with eps=0: a leaf whose gradient is exactly 0 gets the update 0/0 = NaN on the first step
    params = {"net": P0, "unused": jnp.zeros(2)}
    loss = lambda p, b: _loss(p["net"], b) + 0.0 * jnp.sum(jax.lax.stop_gradient(p["unused"]))
    with pytest.warns(fn.NonFiniteLossWarning, match=r"non-finite gradient or update at epoch 1, step 1 of 4"):
        got, hist = fn.fit(loss, params, (X, Y), optimizer=optax.adam(1e-3, eps=0.0), epochs=2, batch_size=8,
                           key=KEY, progress=False)
    assert _finite(got)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params)):  # no step could be applied
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert hist.epochs == 0 and "gradient or update" in hist.stop_reason


def test_nan_learning_rate_is_refused_before_compiling(no_compile):
    with pytest.raises(ValueError, match="first update for a gradient of ones is not finite"):
        fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(float("nan")), epochs=1, batch_size=8, key=KEY)


def test_learning_rate_turning_nan_mid_run_stops_at_that_step():
    # a schedule that is 0.1 for 5 steps, then NaN: step 6 has a finite loss and gradient, a NaN update
    sched = lambda count: jnp.where(count < 5, 0.1, jnp.nan)
    with pytest.warns(fn.NonFiniteLossWarning, match=r"gradient or update at epoch 2, step 2 of 4"):
        got, hist = fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(sched), epochs=3, batch_size=8, key=KEY,
                           progress=False)
    ref, _ = fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(0.1), epochs=2, batch_size=8, key=KEY, progress=False,
                    callbacks=[lambda e, v, p: e == 1])  # epoch 1 in full, then stop: 4 steps
    assert _finite(got) and hist.steps == [4, 1] and hist.partial
    assert not np.allclose(np.asarray(got[0]["w"]), np.asarray(ref[0]["w"]))  # one more step than ref


def test_blow_up_returns_params_whose_training_loss_is_finite():
    for lr in (1e6, 1e3):
        with pytest.warns(fn.NonFiniteLossWarning, match="non-finite loss at epoch 1"):
            got, hist = fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(lr), epochs=5, batch_size=4, key=KEY,
                               progress=False)
        assert _finite(got) and math.isfinite(float(_loss(got, (X, Y))))
        assert hist.partial and all(math.isfinite(v) for v in hist.train_loss)


def test_skip_records_nan_for_an_epoch_with_every_step_skipped():
    loss = lambda w, b: jnp.mean(b) * w + jnp.nan
    with pytest.warns(fn.NonFiniteLossWarning, match=r"every step of epoch \d .* recorded as NaN"):
        w, hist = fn.fit(loss, jnp.ones(()), jnp.arange(8.0), optimizer=optax.sgd(0.1), epochs=2, batch_size=4,
                         key=KEY, on_nonfinite="skip", progress=False, check_data=False)
    assert float(w) == 1.0 and all(math.isnan(v) for v in hist.train_loss)
    assert hist.skipped_steps == [2, 2] and hist.steps == [0, 0]
    assert json.loads(json.dumps(hist.to_dict(), allow_nan=False))["train_loss"] == [None, None]


def test_ignore_warns_when_it_returns_non_finite_params():
    loss = lambda w, b: jnp.mean(b) * w
    with pytest.warns(fn.NonFiniteLossWarning, match="returns non-finite parameters"):
        fn.fit(loss, jnp.ones(()), jnp.arange(8.0), optimizer=optax.sgd(lambda c: jnp.where(c < 1, 0.1, jnp.inf)),
               epochs=1, batch_size=4, key=KEY, on_nonfinite="ignore", progress=False)


# ------------------------------------------------------------------- checks before the first compile


@pytest.mark.parametrize("kw, error, words", [
    (dict(checkpoint_every=0, checkpoint="/tmp/x.npz"), ValueError, "checkpoint_every must be >= 1, got 0"),
    (dict(checkpoint="/no/such/folder/fit.npz"), ValueError, "checkpoint folder /no/such/folder does not exist"),
    (dict(metrics={"vec": lambda p, b: MODEL.apply(p, b[0])[:, 0]}), ValueError,
     r"metrics\['vec'\] must return a scalar, got shape\(s\) \[\(32,\)\]"),
    (dict(key=0), TypeError, r"key must be a PRNG key, e.g. key=jax.random.key\(0\)"),
    (dict(key=np.int64(3)), TypeError, r"jax.random.key\(0\)"),
    (dict(optimizer=optax.GradientTransformation(lambda: None, lambda u, s, p: (u, s))), TypeError,
     r"optimizer.init must have optax's signature init\(params\)"),
    (dict(optimizer=optax.GradientTransformation(lambda p: (), lambda u: u)), TypeError,
     r"update\(updates, state, params\)"),
    (dict(epochs=2.0), TypeError, "epochs must be an int >= 1, got float"),
    (dict(epochs=True), TypeError, "epochs must be an int >= 1, got bool"),
    (dict(patience=0, val_data=(X, Y)), ValueError, "patience must be >= 1"),
    (dict(callbacks=lambda e, v, p: None), TypeError, r"wrap one in \[\.\.\.\]"),
    (dict(callbacks=[1]), TypeError, r"callbacks\[0\] must be callable"),
    (dict(progress="bar"), ValueError, "progress must be True, False, None, 'tqdm', 'rich'"),
    (dict(hyperparams={"learning_rate": 0.1}), ValueError, "optax.inject_hyperparams"),
])
def test_argument_errors_before_compiling(no_compile, kw, error, words):
    args = dict(optimizer=optax.sgd(0.1), epochs=1, batch_size=8, key=KEY, progress=False) | kw
    with pytest.raises(error, match=words):
        fn.fit(_loss, P0, (X, Y), **args)


def test_int_leaf_in_params_is_named(no_compile):
    params = [{"w": P0[0]["w"], "b": jnp.zeros(8, jnp.int32)}, P0[1]]
    with pytest.raises(TypeError, match=r"params\[0\]\['b'\] has dtype int32; params must be float"):
        fn.fit(_loss, params, (X, Y), optimizer=optax.sgd(0.1), epochs=1, batch_size=8, key=KEY)


def test_empty_batch_is_refused(no_compile):
    with pytest.raises(ValueError, match=r"data is empty \(0 examples\)"):
        fn.fit(_loss, P0, (X[:0], Y[:0]), optimizer=optax.sgd(0.1), epochs=1, key=KEY)


def test_numpy_integers_are_accepted_everywhere(tmp_path):
    _, hist = fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(0.1), epochs=np.int64(2), batch_size=np.int64(8),
                     key=KEY, val_data=(X, Y), patience=np.int32(5), checkpoint=tmp_path / "ck.npz",
                     checkpoint_every=np.int64(1), progress=False)
    assert hist.epochs == 2 and hist.steps == [4, 4]


def test_resume_from_past_the_requested_epochs_is_an_error(tmp_path):
    ck = tmp_path / "fit.ck.npz"
    kw = dict(optimizer=optax.sgd(0.1), batch_size=8, key=KEY, progress=False, checkpoint=ck)
    fn.fit(_loss, P0, (X, Y), epochs=4, **kw)
    with pytest.raises(ValueError, match=r"is from epoch 4, past epochs=2"):
        fn.fit(_loss, P0, (X, Y), epochs=2, resume=True, **kw)


# ----------------------------------------------------------------------------------- compile once


def test_repeated_fit_compiles_and_traces_nothing_after_the_first_call():
    traces = []

    def counting(p, b):
        traces.append(1)
        return _loss(p, b)

    opt = optax.adam(1e-2)
    kw = dict(optimizer=opt, epochs=1, batch_size=8, progress=False, check_data=False)
    fn.fit(counting, P0, (X, Y), key=jax.random.key(0), **kw)
    first, compiles = len(traces), COMPILES.n
    for seed in range(1, 4):  # other keys, other (same-shaped) data: the same programs
        fn.fit(counting, P0, (X + seed, Y), key=jax.random.key(seed), **kw)
    assert first > 0 and len(traces) == first  # the loss is traced 0 more times
    assert COMPILES.n == compiles              # and XLA compiles nothing


def test_learning_rate_sweep_compiles_once_with_hyperparams():
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    kw = dict(optimizer=opt, epochs=1, batch_size=8, key=KEY, progress=False, check_data=False)
    p_a, h_a = fn.fit(_loss, P0, (X, Y), hyperparams={"learning_rate": 0.05}, **kw)
    compiles = COMPILES.n
    p_b, h_b = fn.fit(_loss, P0, (X, Y), hyperparams={"learning_rate": 0.2}, **kw)
    assert COMPILES.n == compiles
    np.testing.assert_allclose(h_a.lr, [0.05]) and np.testing.assert_allclose(h_b.lr, [0.2])
    ref, _ = fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(0.2), epochs=1, batch_size=8, key=KEY, progress=False)
    for a, b in zip(jax.tree.leaves(p_b), jax.tree.leaves(ref)):  # same maths as sgd(0.2)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


# -------------------------------------------------------------------------------------- callbacks


def test_callbacks_see_each_epoch_and_can_stop(tmp_path):
    seen = []

    def watch(epoch, values, params):
        seen.append((epoch, dict(values), float(_loss(params, (X, Y)))))
        return epoch == 3

    csv_log, jsonl_log = fn.train.CSVLogger(tmp_path / "log.csv"), fn.train.JSONLinesLogger(tmp_path / "log.jsonl")
    acc = {"neg_mse": lambda p, b: -_loss(p, b)}
    params, hist = fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(0.1), epochs=10, batch_size=8, key=KEY,
                          val_data=(X, Y), metrics=acc, callbacks=[watch, csv_log, jsonl_log], progress=False)
    assert [s[0] for s in seen] == [1, 2, 3] and hist.epochs == 3 and "watch" in hist.stop_reason
    assert [s[1]["val_loss"] for s in seen] == hist.val_loss
    np.testing.assert_allclose(seen[-1][2], hist.val_loss[-1], rtol=1e-6)  # the params after that epoch
    rows = list(csv.DictReader((tmp_path / "log.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    np.testing.assert_allclose([float(r["train_loss"]) for r in rows], hist.train_loss, rtol=1e-6)
    np.testing.assert_allclose([float(r["neg_mse"]) for r in rows], hist.metrics["neg_mse"], rtol=1e-6)
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [d["epoch"] for d in lines] == [1, 2, 3] and [d["val_loss"] for d in lines] == hist.val_loss


def test_a_raising_callback_is_named_and_keeps_the_params():
    def broken(epoch, values, params):
        if epoch == 2:
            raise ZeroDivisionError("user bug")

    with pytest.raises(ZeroDivisionError, match="user bug") as info:
        fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(0.1), epochs=5, batch_size=8, key=KEY, callbacks=[broken],
               progress=False)
    assert any("callback" in n and "broken" in n and "epoch 2" in n for n in info.value.__notes__)
    params, hist = info.value.fit_result
    assert hist.epochs == 2 and _finite(params)
    ref, _ = fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(0.1), epochs=2, batch_size=8, key=KEY, progress=False)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_progress_callable_and_missing_tqdm_fall_back(capsys):
    calls = []
    fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(0.1), epochs=2, batch_size=8, key=KEY,
           progress=lambda e, total, values: calls.append((e, total, sorted(values))))
    assert [c[:2] for c in calls] == [(1, 2), (2, 2)] and "train_loss" in calls[0][2]
    fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(0.1), epochs=1, batch_size=8, key=KEY, progress="tqdm")
    err = capsys.readouterr().err
    assert "epoch 1/1" in err or "fit" in err  # tqdm's bar where installed, else the one-line display


def test_best_epoch_is_one_based_everywhere(tmp_path):
    # val data say y = 0 while training pulls towards y = sin(x): val loss is lowest after epoch 1
    _, hist = fn.fit(_loss, P0, (X, Y), optimizer=optax.sgd(0.5), epochs=3, batch_size=8, key=KEY,
                     val_data=(X, 0 * Y), progress=False)
    i = int(np.argmin(hist.val_loss))
    assert hist.best_epoch == i + 1 and hist.best_index == i
    hist.to_json(tmp_path / "h.json")
    assert json.loads((tmp_path / "h.json").read_text())["best_epoch"] == i + 1
