"""on_nonfinite="stop": the epoch runs unguarded, a bad epoch is replayed; the result is the last finite state.

A parameter ``t`` with a constant gradient counts the steps taken (SGD moves it by ``lr·c`` per step), so a
trigger ``t > threshold`` makes step K (0-based, over the whole run) non-finite: either its loss (a NaN term)
or only its gradient (a custom VJP: value 0, derivative NaN). The reference is the lectures' loop in Python
that stops at the first step whose loss or gradient is not finite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnet as fn
import funcnet.train._fit as _train

RTOL = 1e-5  # compiled float32 vs eager float32: same maths, possibly different summation order
ATOL = 1e-6
MODEL = fn.mlp([3, 4, 1], activation="tanh")
LR = 0.05
C = 1e-3            # dJ/dt: t grows by LR·C per step
N, BS = 50, 4       # 13 steps per epoch (12 full, one of 2)
STEPS = 13


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 3)).astype(np.float32)
    Y = np.sin(X[:, :1]).astype(np.float32)
    return jnp.asarray(X), jnp.asarray(Y)


def _params():
    return {"mlp": MODEL.init(jax.random.key(0)), "t": jnp.zeros((), jnp.float32)}


@jax.custom_vjp
def _poison(t, flag):
    """Value 0; derivative NaN with respect to ``t`` when ``flag`` is 1, else 0."""
    return 0.0 * t


def _poison_fwd(t, flag):
    return 0.0 * t, flag


def _poison_bwd(flag, g):
    return jnp.where(flag > 0, jnp.nan, 0.0) * g, jnp.zeros_like(flag)


_poison.defvjp(_poison_fwd, _poison_bwd)


def _loss_for(bad_step: int, kind: str):
    threshold = LR * C * (bad_step - 0.5)  # t after k steps is LR·C·k: bad from step `bad_step` on

    def loss(p, b):
        base = fn.losses.mse(MODEL.apply(p["mlp"], b[0]), b[1]) - C * p["t"]
        tripped = p["t"] > threshold
        if kind == "loss":
            return base + jnp.where(tripped, jnp.nan, 0.0)
        # finite value, non-finite gradient once tripped
        return base + _poison(p["t"], tripped.astype(jnp.float32))

    return loss


def _reference(loss_fn, opt, data, key, epochs):
    """Python loop over the same shuffled batches; stops at the first non-finite loss or gradient.

    Returns the parameters after the last finite step whose successor's loss was finite: the current ones
    when only the gradient is bad, the ones before the last step when the loss is bad.
    """
    params = prev = _params()
    state = opt.init(params)
    for e in range(epochs):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, e), N))
        for i, start in enumerate(range(0, N, BS)):
            batch = jax.tree.map(lambda a: a[perm[start:start + BS]], data)
            loss, g = jax.value_and_grad(loss_fn)(params, batch)
            finite = np.isfinite(float(loss)) and all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(g))
            if not finite:
                return (prev if not np.isfinite(float(loss)) else params), (e, i)
            prev = params
            upd, state = opt.update(g, state, params)
            params = optax.apply_updates(params, upd)
    return params, None


def _close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=RTOL, atol=ATOL)


# bad steps: mid epoch 1 (replayed from the epoch-1 snapshot), and the last step of epoch 0 (only the
# end-of-epoch parameter check can see a bad *gradient* there: no later loss in that epoch)
@pytest.mark.parametrize("kind", ["loss", "grad"])
@pytest.mark.parametrize("bad_step", [STEPS + 7, STEPS - 1, STEPS], ids=["epoch1-mid", "epoch0-last", "epoch1-first"])
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_stop_returns_the_last_finite_params(kind, bad_step, opt_name):
    opt = optax.sgd(LR) if opt_name == "sgd" else optax.adam(LR)
    if opt_name == "adam":  # Adam on the network; t keeps its SGD clock so the trigger step stays K
        labels = lambda p: {"mlp": jax.tree.map(lambda _: "mlp", p["mlp"]), "t": "t"}
        opt = optax.multi_transform({"mlp": optax.adam(LR), "t": optax.sgd(LR)}, labels)
    data = _data()
    key = jax.random.key(7)
    loss_fn = _loss_for(bad_step, kind)
    want, where = _reference(loss_fn, opt, data, key, epochs=3)
    assert where == divmod(bad_step, STEPS)
    with pytest.warns(_train.NonFiniteLossWarning, match=f"epoch {where[0] + 1}, step {where[1] + 1} of {STEPS}"):
        got, hist = fn.fit(loss_fn, _params(), data, optimizer=opt, epochs=3, batch_size=BS, key=key,
                           progress=False)
    _close(got, want)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(got))
    assert np.isfinite(float(loss_fn(got, data)))  # the returned parameters have a finite training loss
    # a bad loss at the first step of epoch 2 steps back into epoch 1, which is then recorded as partial
    back = kind == "loss" and where[1] == 0
    applied = STEPS - 1 if back else where[1] - (kind == "loss")   # steps applied in the last record
    assert len(hist.train_loss) == where[0] + (applied > 0 and not back) and all(np.isfinite(hist.train_loss))
    if applied > 0:  # the partial epoch is recorded as such
        assert hist.steps[-1] == applied and hist.partial and hist.skipped_steps[-1] == 1
    else:            # nothing applied in the stopped epoch: the record ends with the last full epoch
        assert hist.steps == [STEPS] * where[0] and not hist.partial


@pytest.mark.parametrize("kind", ["grad"])
def test_stop_equals_skip_when_every_later_step_is_bad(kind):
    """Once tripped, t no longer moves under "skip", so every later step is skipped: both modes end on the
    same parameters (both keep them with a per-step select), up to float32 rounding (two compiled programs
    may fuse differently: rtol 1e-6). A bad *loss* makes "stop" step back one more step, so only a bad
    gradient compares."""
    data = _data()
    key = jax.random.key(3)
    loss_fn = _loss_for(STEPS + 5, kind)
    kw = dict(optimizer=optax.sgd(LR), batch_size=BS, key=key, progress=False)
    with pytest.warns(_train.NonFiniteLossWarning):
        stopped, h_stop = fn.fit(loss_fn, _params(), data, epochs=3, **kw)
    skipped, h_skip = fn.fit(loss_fn, _params(), data, epochs=2, on_nonfinite="skip", **kw)
    for a, b in zip(jax.tree.leaves(stopped), jax.tree.leaves(skipped)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-8)
    assert h_skip.skipped_steps == [0, STEPS - 5]
    np.testing.assert_allclose(h_stop.train_loss, h_skip.train_loss, rtol=1e-6)


def test_stop_is_deterministic_and_runs_the_replay_only_when_needed(monkeypatch):
    data = _data()
    kw = dict(optimizer=optax.adam(1e-2), epochs=2, batch_size=BS, key=jax.random.key(1), progress=False)
    calls = []
    real = _train._guard
    monkeypatch.setattr(_train, "_guard", lambda *a, **k: calls.append(1) or real(*a, **k))
    fine = lambda p, b: fn.losses.mse(MODEL.apply(p["mlp"], b[0]), b[1])
    fn.fit(fine, _params(), data, **kw)
    assert calls == []
    runs = []
    bad = _loss_for(STEPS + 3, "loss")
    for _ in range(2):
        with pytest.warns(_train.NonFiniteLossWarning):
            runs.append(fn.fit(bad, _params(), data, **kw))
    assert len(calls) == 2
    (p1, h1), (p2, h2) = runs
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert h1.train_loss == h2.train_loss and h1.stop_reason == h2.stop_reason


def test_stop_does_not_consume_callers_arrays():
    data = _data()
    p0 = _params()
    with pytest.warns(_train.NonFiniteLossWarning):
        fn.fit(_loss_for(4, "loss"), p0, data, optimizer=optax.sgd(LR), epochs=1, batch_size=BS,
               key=jax.random.key(0), progress=False)
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(p0))
