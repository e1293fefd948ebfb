"""fn.inputs.fgsm / pgd: hand-computed references, accuracy drop, ε-ball and clip box, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn

TOL = 1e-6   # float32 rounding of x + d when d sits on the ball's boundary


@pytest.fixture(scope="module")
def attack_setup(trained_digits, digits_split):
    model, params = trained_digits
    _, _, (Xte, yte) = digits_split
    logits_fn = lambda x: model.apply(params, x)

    def accuracy(X):
        return float(jnp.mean(jnp.argmax(logits_fn(X), -1) == yte))

    def per_example_grad(X, Y):
        # Independent reference: ∇_x of each example's own cross-entropy, one example at a time via vmap.
        ce = lambda x, y: -jax.nn.log_softmax(model.apply(params, x))[y]
        return np.asarray(jax.vmap(jax.grad(ce))(X, Y))

    return logits_fn, Xte, yte, accuracy, per_example_grad


def test_fgsm_matches_hand_computed_sign_step(attack_setup):
    logits_fn, X, y, _, grad = attack_setup
    x_adv = fn.inputs.fgsm(logits_fn, X, y, 0.1, clip=(0.0, 1.0))
    ref = np.clip(np.asarray(X) + 0.1 * np.sign(grad(X, y)), 0.0, 1.0)
    np.testing.assert_allclose(np.asarray(x_adv), ref, atol=TOL)


def test_l2_fgm_matches_normalized_gradient_step(trained_digits, digits_split):
    model, params = trained_digits
    _, _, (X, y) = digits_split
    with jax.enable_x64(True):   # float64, so that summation order cannot blur the comparison
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        X64 = jnp.asarray(X[:20], jnp.float64)
        x_adv = np.asarray(fn.inputs.fgsm(lambda x: model.apply(p64, x), X64, y[:20], 0.5, norm="l2"))
        ce = lambda x, t: -jax.nn.log_softmax(model.apply(p64, x))[t]
        g = np.asarray(jax.vmap(jax.grad(ce))(X64, y[:20]))
    ref = np.asarray(X64) + 0.5 * g / np.linalg.norm(g, axis=-1, keepdims=True)
    np.testing.assert_allclose(x_adv, ref, rtol=0, atol=1e-12)


def test_attacks_lower_accuracy_and_pgd_beats_fgsm(attack_setup):
    logits_fn, X, y, accuracy, _ = attack_setup
    clean = accuracy(X)
    assert clean > 0.9
    acc_fgsm = accuracy(fn.inputs.fgsm(logits_fn, X, y, 0.1, clip=(0.0, 1.0)))
    acc_pgd = accuracy(fn.inputs.pgd(logits_fn, X, y, 0.1, 20, random_start=True, key=jax.random.key(0),
                                     clip=(0.0, 1.0)))
    assert acc_fgsm < clean - 0.3, (clean, acc_fgsm)
    assert acc_pgd <= acc_fgsm + 0.01, (acc_fgsm, acc_pgd)


@pytest.mark.parametrize("norm, eps", [("linf", 0.08), ("l2", 0.6)])
def test_pgd_respects_eps_ball_and_clip_box(attack_setup, norm, eps):
    logits_fn, X, y, accuracy, _ = attack_setup
    x_adv, hist = fn.inputs.pgd(logits_fn, X, y, eps, 15, norm=norm, random_start=True, key=jax.random.key(1),
                                clip=(0.0, 1.0), return_history=True)
    d = np.asarray(x_adv) - np.asarray(X)
    dist = np.abs(d).max(-1) if norm == "linf" else np.linalg.norm(d, axis=-1)
    assert dist.max() <= eps + TOL
    assert dist.max() > 0.9 * eps                       # it does use the budget
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert hist.shape == (16,) and float(hist[-1]) > float(hist[0])   # the loss went up
    assert accuracy(x_adv) < accuracy(X) - 0.2


def test_targeted_pgd_reaches_the_target_class(attack_setup):
    logits_fn, X, y, _, _ = attack_setup
    target = (np.asarray(y[:50]) + 1) % 10
    x_adv = fn.inputs.pgd(logits_fn, X[:50], jnp.asarray(target), 0.3, 40, 0.02, targeted=True, clip=(0.0, 1.0))
    hit = np.mean(np.asarray(jnp.argmax(logits_fn(x_adv), -1)) == target)
    assert hit > 0.9, hit


def test_examples_are_attacked_independently_and_image_batches_work(attack_setup):
    # Attacking a batch of (8, 8) images equals attacking each example alone.
    logits_fn, X, y, _, _ = attack_setup
    img_fn = lambda x: logits_fn(x.reshape(*x.shape[:-2], 64))
    Xi = X[:6].reshape(6, 8, 8)
    batch = fn.inputs.pgd(img_fn, Xi, y[:6], 0.1, 5, clip=(0.0, 1.0))
    assert batch.shape == (6, 8, 8)
    for i in range(6):
        single = fn.inputs.pgd(img_fn, Xi[i:i + 1], y[i:i + 1], 0.1, 5, clip=(0.0, 1.0))
        np.testing.assert_allclose(np.asarray(batch[i]), np.asarray(single[0]), atol=TOL)


def test_one_hot_labels_give_the_same_attack(attack_setup):
    logits_fn, X, y, _, _ = attack_setup
    a = fn.inputs.pgd(logits_fn, X[:30], y[:30], 0.1, 5)
    b = fn.inputs.pgd(logits_fn, X[:30], jax.nn.one_hot(y[:30], 10), 0.1, 5)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=TOL)


def test_eps_zero_returns_the_input(attack_setup):
    logits_fn, X, y, _, _ = attack_setup
    np.testing.assert_array_equal(np.asarray(fn.inputs.fgsm(logits_fn, X[:5], y[:5], 0.0)), np.asarray(X[:5]))


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(y=jnp.full((5,), 10)), ValueError, r"labels must lie in \[0, 10\) for 10 classes, got values in \[10, 10\]"),
    (dict(y=jnp.zeros((4,), jnp.int32)), ValueError, r"integer labels must have shape \(5,\)"),
    (dict(eps=-0.1), ValueError, r"eps must be >= 0, got -0.1"),
    (dict(norm="l1"), ValueError, r"norm must be 'linf' or 'l2'"),
    (dict(random_start=True), ValueError, r"random_start=True needs key"),
    (dict(steps=0), ValueError, r"steps must be >= 1, got 0"),
    (dict(clip=(1.0, 0.0)), ValueError, r"lo <= hi"),
])
def test_bad_input_raises_clear_errors(attack_setup, kwargs, err, match):
    logits_fn, X, y, _, _ = attack_setup
    args = dict(x=X[:5], y=y[:5], eps=0.1, steps=3) | kwargs
    with pytest.raises(err, match=match):
        fn.inputs.pgd(logits_fn, args.pop("x"), args.pop("y"), args.pop("eps"), **args)
