"""A catalogue of bad inputs to the training area: each gives a clear error (type and key words) at the
boundary, before anything is compiled or run.

Functions covered: fit, make_train_step, per_example_grads, select_hyperparameters, accuracy,
History.from_dict, CSVLogger/JSONLinesLogger, and funcnet.sharding's checks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnet as fn
import funcnet.train._fit as _fit
from funcnet import sharding

MODEL = fn.mlp([2, 3, 3])
P = MODEL.init(jax.random.key(0))
X = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
Y = (np.arange(8) % 3).astype(np.int32)
KEY = jax.random.key(0)


def _loss(p, b):
    return fn.losses.softmax_cross_entropy(MODEL.apply(p, b[0]), b[1])


def _fit_with(**kw):
    args = dict(loss_fn=_loss, params=P, data=(X, Y), optimizer=optax.sgd(0.1), epochs=1, batch_size=4, key=KEY,
                progress=False)
    args.update(kw)
    loss_fn, params, data = args.pop("loss_fn"), args.pop("params"), args.pop("data")
    return lambda: fn.fit(loss_fn, params, data, **args)


FIT = [
    ("loss not callable", _fit_with(loss_fn=3), TypeError, "loss_fn must be callable"),
    ("optimizer a float", _fit_with(optimizer=0.1), TypeError, "optax.GradientTransformation"),
    ("optimizer update 1 arg", _fit_with(optimizer=optax.GradientTransformation(lambda p: (), lambda u: u)),
     TypeError, "optax's signature"),
    ("epochs 0", _fit_with(epochs=0), ValueError, "epochs must be >= 1, got 0"),
    ("epochs float", _fit_with(epochs=1.5), TypeError, "epochs must be an int"),
    ("epochs str", _fit_with(epochs="3"), TypeError, "epochs must be an int"),
    ("batch_size 0", _fit_with(batch_size=0), ValueError, "batch_size must be >= 1"),
    ("batch_size float", _fit_with(batch_size=4.0), TypeError, "batch_size must be an int"),
    ("batch_size > n", _fit_with(batch_size=9), ValueError, "larger than the training data"),
    ("patience without val", _fit_with(patience=2), ValueError, "pass val_data"),
    ("patience bool", _fit_with(patience=True, val_data=(X, Y)), TypeError, "patience must be an int"),
    ("on_nonfinite", _fit_with(on_nonfinite="maybe"), ValueError, "'stop', 'skip' or 'ignore'"),
    ("drop_last str", _fit_with(drop_last="yes"), TypeError, "drop_last must be True or False"),
    ("resume without checkpoint", _fit_with(resume=True), ValueError, "needs checkpoint=PATH"),
    ("checkpoint int", _fit_with(checkpoint=3), TypeError, "checkpoint must be a file path"),
    ("checkpoint folder missing", _fit_with(checkpoint="/no/such/dir/ck.npz"), ValueError, "does not exist"),
    ("checkpoint is a folder", _fit_with(checkpoint="/tmp"), ValueError, "is a folder"),
    ("checkpoint_every 0", _fit_with(checkpoint_every=0), ValueError, "checkpoint_every must be >= 1"),
    ("metrics list", _fit_with(metrics=[len]), TypeError, "metrics must be a dict"),
    ("metric not callable", _fit_with(metrics={"a": 1}), TypeError, r"metrics\['a'\] must be callable"),
    ("metric reserved name", _fit_with(metrics={"val_loss": _loss}), ValueError, "reserved"),
    ("metric vector", _fit_with(metrics={"v": lambda p, b: MODEL.apply(p, b[0])}), ValueError,
     r"metrics\['v'\] must return a scalar"),
    ("key int", _fit_with(key=0), TypeError, r"jax.random.key\(0\)"),
    ("key missing", _fit_with(key=None), ValueError, "needs key=jax.random.key"),
    ("key batch", _fit_with(key=jax.random.split(KEY, 2)), ValueError, "a single PRNG key"),
    ("int params leaf", _fit_with(params={"w": jnp.zeros(2, jnp.int32)}), TypeError,
     r"params\['w'\] has dtype int32"),
    ("empty params", _fit_with(params={}), ValueError, "params holds no arrays"),
    ("lengths differ", _fit_with(data=(X, Y[:7])), ValueError, r"same leading length.*data\[1\]: 7"),
    ("empty data", _fit_with(data=(X[:0], Y[:0])), ValueError, r"empty \(0 examples\)"),
    ("scalar data leaf", _fit_with(data=(X, np.int32(1))), ValueError, "is a scalar"),
    ("val structure", _fit_with(val_data=X), ValueError, "val_data must have the structure of data"),
    ("NaN data", _fit_with(data=(np.full_like(X, np.nan), Y)), ValueError, r"data\[0\] contains NaN"),
    ("labels out of range", _fit_with(data=(X, Y + 1)), ValueError, r"labels must lie in \[0, 3\)"),
    ("non-scalar loss", _fit_with(loss_fn=lambda p, b: MODEL.apply(p, b[0])), ValueError, "must return a scalar"),
    ("negative lr", _fit_with(optimizer=optax.adam(-1e-3)), ValueError, "learning rate must be >= 0"),
    ("NaN lr", _fit_with(optimizer=optax.sgd(float("nan"))), ValueError, "is not finite"),
    ("callbacks not a list", _fit_with(callbacks=print), TypeError, "list of callables"),
    ("progress bad", _fit_with(progress=3.0), TypeError, "progress must be"),
    ("check_data str", _fit_with(check_data="no"), TypeError, "check_data must be True or False"),
    ("hyperparams without inject", _fit_with(hyperparams={"learning_rate": 1.0}), ValueError,
     "inject_hyperparams"),
    ("hyperparams unknown", _fit_with(optimizer=optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
                                      hyperparams={"momentum": 0.9}), ValueError, r"\['momentum'\] are not"),
    ("mesh str", _fit_with(mesh="gpu"), TypeError, "mesh must be a jax.sharding.Mesh"),
    ("mesh no data axis", _fit_with(mesh=jax.sharding.Mesh(np.array(jax.devices()[:1]), ("model",))), ValueError,
     "no axis named 'data'"),
]

OTHERS = [
    ("make_train_step loss", lambda: fn.make_train_step(None, optax.sgd(0.1)), TypeError, "loss_fn must be callable"),
    ("make_train_step optimizer", lambda: fn.make_train_step(_loss, "adam"), TypeError,
     "optax.GradientTransformation"),
    ("per_example_grads loss", lambda: fn.per_example_grads(1, P, (X, Y)), TypeError, "loss_fn must be callable"),
    ("per_example_grads lengths", lambda: fn.per_example_grads(_loss, P, (X, Y[:3])), ValueError,
     "same leading length"),
    ("per_example_grads empty", lambda: fn.per_example_grads(_loss, P, ()), ValueError, "holds no arrays"),
    ("select no configs", lambda: fn.select_hyperparameters(lambda c: c, [], val_score=float), ValueError,
     "at least one configuration"),
    ("select train", lambda: fn.select_hyperparameters(3, [1], val_score=float), TypeError,
     "train must be callable"),
    ("select all NaN", lambda: fn.select_hyperparameters(lambda c: c, [1, 2], val_score=lambda p: float("nan")),
     ValueError, "NaN validation score"),
    ("accuracy scalar logits", lambda: fn.accuracy(jnp.array(1.0), jnp.array(0)), ValueError, "class axis"),
    ("accuracy label shape", lambda: fn.accuracy(jnp.zeros((4, 3)), jnp.zeros(5, jnp.int32)), ValueError,
     r"labels must have shape \(4,\)"),
    ("CSVLogger folder", lambda: fn.train.CSVLogger("/no/such/dir/log.csv"), ValueError, "does not exist"),
    ("JSONLinesLogger path", lambda: fn.train.JSONLinesLogger(3), TypeError, "needs a file path"),
    ("layout batch", lambda: sharding.sharded_epoch_layout(10, 3, 2), ValueError, "multiple of the data-axis size"),
    ("layout n float", lambda: sharding.sharded_epoch_layout(10.0, 2, 1), TypeError, "n must be an int"),
    ("check_divisible_by", lambda: sharding.check_divisible_by(6, 4), ValueError, r"\(e\.g\. 4 or 8\)"),
    ("pad multiple 0", lambda: sharding.pad_to_multiple(X, 0), ValueError, "multiple must be >= 1"),
    ("resolve_mesh str", lambda: sharding.resolve_mesh("cpu"), TypeError, "mesh must be a jax.sharding.Mesh"),
    ("resolve_mesh empty", lambda: sharding.resolve_mesh([]), ValueError, "device list is empty"),
    ("shard_batch scalar", lambda: sharding.shard_batch(np.float32(1), sharding.resolve_mesh()), ValueError,
     "is a scalar"),
    ("process_id negative", lambda: sharding.initialize_distributed("h:1", 2, -1), ValueError,
     "process_id must be >= 0"),
    ("ema_momentum alpha", lambda: fn.optim.ema_momentum(0.1, alpha=1.5), ValueError, "alpha"),
]


@pytest.fixture
def no_compile(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("fit reached compilation")

    monkeypatch.setattr(_fit, "get_programs", boom)


@pytest.mark.parametrize("name, call, error, words", FIT, ids=[c[0] for c in FIT])
def test_fit_rejects_before_compiling(no_compile, name, call, error, words):
    with pytest.raises(error, match=words):
        call()


@pytest.mark.parametrize("name, call, error, words", OTHERS, ids=[c[0] for c in OTHERS])
def test_other_training_functions_reject(name, call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_catalogue_size():
    """The counts quoted in the report: every case above gives a clear error."""
    assert len(FIT) >= 40 and len(OTHERS) >= 20
