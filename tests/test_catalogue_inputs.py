"""Catalogue: bad inputs to every public function of funcnet.inputs and funcnet.plotting -> error type + words.

Every case must fail at the boundary, before anything compiles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn

MODEL = fn.mlp([64, 8, 10])
PARAMS = MODEL.init(jax.random.key(0))
LOGITS = lambda x: MODEL.apply(PARAMS, x)   # noqa: E731
X = jnp.zeros((3, 64))
Y = jnp.array([0, 1, 2])
K = jax.random.key(0)


def vis(**kw):
    return lambda: fn.inputs.visualize_units(MODEL, PARAMS, **({"units": [0], "key": K, "steps": 2} | kw))


CASES = {
    # visualize_units
    "vis jitter -1": (vis(jitter=-1), ValueError, ["jitter", ">= 0", "-1"]),
    "vis l2 -1": (vis(l2=-1), ValueError, ["l2", ">= 0", "-1"]),
    "vis tv nan": (vis(tv=float("nan")), ValueError, ["tv", "finite"]),
    "vis l2 str": (vis(l2="big"), TypeError, ["l2", "real number", "str"]),
    "vis steps 0": (vis(steps=0), ValueError, ["steps", ">= 1"]),
    "vis steps float": (vis(steps=2.5), TypeError, ["steps", "int"]),
    "vis steps bool": (vis(steps=True), TypeError, ["steps", "bool"]),
    "vis scale 1": (vis(scale=1.0), ValueError, ["scale", "< 1"]),
    "vis rotate 200": (vis(rotate=200), ValueError, ["rotate", "180"]),
    "vis blur_sigma 0": (vis(blur_sigma=0), ValueError, ["blur_sigma", "> 0"]),
    "vis edge no range": (vis(edge=1.0), ValueError, ["edge", "value_range"]),
    "vis space": (vis(space="wavelet"), ValueError, ["space", "fourier"]),
    "vis value_range": (vis(value_range=(1, 0)), ValueError, ["value_range", "lo < hi"]),
    "vis value_range kind": (vis(value_range=3), TypeError, ["value_range", "pair"]),
    "vis squash": (vis(value_range=(0, 1), squash="relu"), ValueError, ["squash", "sigmoid"]),
    "vis squash no range": (vis(squash="tanh"), ValueError, ["squash", "value_range"]),
    "vis clip fourier": (vis(value_range=(0, 1), squash="clip", space="fourier"), ValueError, ["clip", "pixel"]),
    "vis decay": (vis(decay=-1), ValueError, ["decay", ">= 0"]),
    "vis unknown kw": (vis(jiter=1), TypeError, ["unexpected keyword", "jiter"]),
    "vis twice": (vis(l2=1.0, regularizers=fn.inputs.Regularizers()), TypeError, ["given both", "l2"]),
    "vis config type": (vis(parametrization=3), TypeError, ["parametrization", "Parametrization"]),
    "vis units": (vis(units=[10]), ValueError, ["units [10]", "out of range"]),
    "vis units kind": (vis(units=[0.5]), TypeError, ["units", "ints"]),
    "vis layer": (vis(layer=5), ValueError, ["layer 5", "out of range"]),
    "vis layer kind": (vis(layer=1.0), TypeError, ["layer", "int"]),
    "vis objective": (vis(objective="energy"), ValueError, ["objective", "margin"]),
    "vis objective hidden": (vis(layer=0, objective="margin"), ValueError, ["output layer only"]),
    "vis objective kind": (vis(objective=3), TypeError, ["objective", "callable"]),
    "vis objective vector": (vis(objective=lambda acts, j: acts[-1]["z"]), ValueError, ["real scalar"]),
    "vis input_shape": (vis(input_shape=(8, 9)), ValueError, ["input_shape (8, 9)", "64"]),
    "vis init shape": (vis(init=jnp.zeros(63)), ValueError, ["init", "shape"]),
    "vis no key": (vis(key=None), ValueError, ["key"]),
    "vis model": (lambda: fn.inputs.visualize_units(3, PARAMS, units=[0], key=K), TypeError, ["model", "int"]),
    "vis apply no shape": (lambda: fn.inputs.visualize_units(lambda p, x: x, PARAMS, units=[0], key=K),
                           ValueError, ["input_shape"]),
    "vis apply layer": (lambda: fn.inputs.visualize_units(lambda p, x: x, PARAMS, units=[0], key=K, layer=0,
                                                          input_shape=(4,)), ValueError, ["layer", "MLP"]),
    "vis lr": (vis(learning_rate=-1.0), ValueError, ["learning_rate", ">= 0"]),
    "vis optimizer": (vis(optimizer="adam"), TypeError, ["optimizer", "optax"]),
    "vis extra": (vis(regularizers=[(1.0, 3)]), TypeError, ["extra", "callable"]),
    # pgd / fgsm
    "pgd eps -1": (lambda: fn.inputs.pgd(LOGITS, X, Y, -1.0), ValueError, ["eps", ">= 0"]),
    "pgd eps nan": (lambda: fn.inputs.pgd(LOGITS, X, Y, float("nan")), ValueError, ["eps", "finite"]),
    "pgd eps list bad": (lambda: fn.inputs.pgd(LOGITS, X, Y, [0.1, -1]), ValueError, ["eps", ">= 0"]),
    "pgd eps empty": (lambda: fn.inputs.pgd(LOGITS, X, Y, []), ValueError, ["eps", "non-empty"]),
    "pgd eps str": (lambda: fn.inputs.pgd(LOGITS, X, Y, "0.1"), TypeError, ["eps", "real number"]),
    "pgd steps 0": (lambda: fn.inputs.pgd(LOGITS, X, Y, 0.1, 0), ValueError, ["steps", ">= 1"]),
    "pgd steps float": (lambda: fn.inputs.pgd(LOGITS, X, Y, 0.1, 2.0), TypeError, ["steps", "int"]),
    "pgd step_size": (lambda: fn.inputs.pgd(LOGITS, X, Y, 0.1, 2, -0.1), ValueError, ["step_size", ">= 0"]),
    "pgd norm": (lambda: fn.inputs.pgd(LOGITS, X, Y, 0.1, norm="l1"), ValueError, ["norm", "linf"]),
    "pgd labels": (lambda: fn.inputs.pgd(LOGITS, X, Y + 9, 0.1), ValueError, ["labels", "[0, 10)"]),
    "pgd labels shape": (lambda: fn.inputs.pgd(LOGITS, X, Y[:2], 0.1), ValueError, ["labels", "shape"]),
    "pgd labels dtype": (lambda: fn.inputs.pgd(LOGITS, X, Y > 0, 0.1), TypeError, ["labels", "dtype"]),
    "pgd targeted none": (lambda: fn.inputs.pgd(LOGITS, X, None, 0.1, targeted=True), ValueError,
                          ["targeted", "y"]),
    "pgd random no key": (lambda: fn.inputs.pgd(LOGITS, X, Y, 0.1, random_start=True), ValueError, ["key"]),
    "pgd random kind": (lambda: fn.inputs.pgd(LOGITS, X, Y, 0.1, random_start=1), TypeError, ["random_start"]),
    "pgd clip": (lambda: fn.inputs.pgd(LOGITS, X, Y, 0.1, clip=(1, 0)), ValueError, ["clip", "lo <= hi"]),
    "pgd clip kind": (lambda: fn.inputs.pgd(LOGITS, X, Y, 0.1, clip=1), TypeError, ["clip", "pair"]),
    "pgd loss": (lambda: fn.inputs.pgd(LOGITS, X, Y, 0.1, loss=3), TypeError, ["loss", "callable"]),
    "pgd logits_fn": (lambda: fn.inputs.pgd(3, X, Y, 0.1), TypeError, ["logits_fn", "callable"]),
    "pgd unknown kw": (lambda: fn.inputs.pgd(LOGITS, X, Y, 0.1, nrom="l2"), TypeError, ["unexpected", "nrom"]),
    "pgd x dtype": (lambda: fn.inputs.pgd(LOGITS, jnp.zeros((3, 64), jnp.complex64), Y, 0.1), TypeError,
                    ["x", "float"]),
    "fgsm steps": (lambda: fn.inputs.fgsm(LOGITS, X, Y, 0.1, steps=3), TypeError, ["steps", "pgd"]),
    "fgsm eps": (lambda: fn.inputs.fgsm(LOGITS, X, Y, -0.1), ValueError, ["eps", ">= 0"]),
    "Attack steps": (lambda: fn.inputs.Attack(steps=np.float32(2)), TypeError, ["steps", "int"]),
    # optimize_input
    "opt objective": (lambda: fn.inputs.optimize_input(3, X, steps=2, learning_rate=0.1), TypeError,
                      ["objective", "callable"]),
    "opt steps 0": (lambda: fn.inputs.optimize_input(jnp.sum, X, steps=0, learning_rate=0.1), ValueError,
                    ["steps", ">= 1"]),
    "opt no lr": (lambda: fn.inputs.optimize_input(jnp.sum, X, steps=2), ValueError, ["learning_rate"]),
    "opt vector": (lambda: fn.inputs.optimize_input(lambda x: x, X, steps=2, learning_rate=0.1), ValueError,
                   ["real scalar"]),
    "opt project": (lambda: fn.inputs.optimize_input(jnp.sum, X, steps=2, learning_rate=0.1, project=3),
                    TypeError, ["project", "callable"]),
    # projections, objectives, scores
    "box": (lambda: fn.inputs.box(1.0, 0.0), ValueError, ["lower", "upper"]),
    "ball norm": (lambda: fn.inputs.ball(X, 0.1, norm="l3"), ValueError, ["norm", "l2"]),
    "ball radius": (lambda: fn.inputs.ball(X, -0.1), ValueError, ["radius", ">= 0"]),
    "chain": (lambda: fn.inputs.chain(3), TypeError, ["projection", "callable"]),
    "objective": (lambda: fn.inputs.objective(3), TypeError, ["objective", "callable"]),
    "scores width": (lambda: fn.inputs.class_image_scores(np.zeros((2, 5)), np.zeros((4, 6)), np.array([0, 1, 0, 1])),
                     ValueError, ["5 values", "6"]),
    "scores labels": (lambda: fn.inputs.class_image_scores(np.zeros((2, 6)), np.zeros((4, 6)), np.zeros(4)),
                      TypeError, ["y", "integer"]),
    "scores lengths": (lambda: fn.inputs.class_image_scores(np.zeros((2, 6)), np.zeros((4, 6)), np.zeros(3, int)),
                       ValueError, ["leading length"]),
    # plotting
    "grid shape": (lambda: fn.plotting.image_grid(np.zeros((2, 7))), ValueError, ["not square", "image_shape"]),
    "grid labels": (lambda: fn.plotting.image_grid(np.zeros((2, 3, 3)), ["a"]), ValueError, ["1 labels", "2 images"]),
    "grid normalize": (lambda: fn.plotting.image_grid(np.zeros((2, 3, 3)), normalize="all"), ValueError,
                       ["normalize", "none"]),
    "grid nan": (lambda: fn.plotting.image_grid(np.full((1, 3, 3), np.nan)), ValueError, ["NaN"]),
    "grid kind": (lambda: fn.plotting.image_grid("abc"), TypeError, ["numeric"]),
    "grid ax": (lambda: fn.plotting.image_grid(np.zeros((1, 3, 3)), ax=3), TypeError, ["ax", "Axes"]),
    "objective plot": (lambda: fn.plotting.plot_objective(np.zeros((2, 2, 2))), ValueError, ["history", "shape"]),
    "objective labels": (lambda: fn.plotting.plot_objective(np.zeros((2, 3)), labels=["a"]), ValueError, ["labels"]),
    "history kind": (lambda: fn.plotting.plot_history(3), TypeError, ["History"]),
    "history keys": (lambda: fn.plotting.plot_history({"loss": [1]}), ValueError, ["train_loss"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_at_the_boundary(name):
    call, err, words = CASES[name]
    with pytest.raises(err) as info:
        call()
    assert type(info.value) is err, (type(info.value), info.value)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
