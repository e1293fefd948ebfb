"""The class images `demo` and `visualize` share: visualize the 10 class units, score them, draw them.

The scores (`funcnet.inputs.class_image_scores`) say how much the pictures look like the digits they stand
for, against references that know nothing of the network: the mean correlation of each class image with its
class's mean training image, and the transfer score — how many of the 10 images a second network of the same
shape, trained from another seed, classifies as their class.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from funcnet.cli import _common

# What the transfer network is, in summary.json.
TRANSFER_NETWORK = "a second network of the same shape and training recipe, initialized and shuffled from another key"


class ClassUnits(NamedTuple):
    """The 10 class images of one network, their objective history, confidence and scores."""

    images: Any        # (10, 8, 8) pixel values in [0, 1]
    history: Any       # (10, steps + 1) the regularized objective per step
    probs: Any         # (10, 10) softmax of the network at each image
    scores: Any        # fn.inputs.ClassImageScores
    recipe: str = ""   # the parametrization, in words


def second_network(model, train, val, key, *, epochs: int):
    """Parameters of a second network of ``model``'s shape, trained with the same recipe from another key."""
    import jax

    params, _ = _common.train_digits(model, train, val, jax.random.fold_in(key, 1), epochs=epochs, progress=False)
    return params


# The data prior of the class images: the training digits' principal components (Σ^{1/2}), Gaussian prior ½‖u‖²
# with weight 0.3 (docs/inputs.md measures it against visualize_units' data-free defaults).
PCA_PRIOR = 0.3


def class_units(model, params, other_params, key, train, *, steps: int, objective=None, space: str = "pca",
                prior: float = PCA_PRIOR, **options) -> ClassUnits:
    """Visualize the 10 class units in one compiled call (pixels in [0, 1]) and score the images.

    ``space="pca"`` (the default) parametrizes the images in the principal components of the training
    digits ``train[0]`` (`fn.inputs.pca_basis`) with the Gaussian prior ``prior``; ``"fourier"`` or ``"pixel"``
    use visualize_units' data-free parametrizations (``prior`` then applies to their u). ``options`` are
    `fn.inputs.visualize_units` keywords (learning_rate, l2, tv, jitter, scale, rotate); ``objective=None`` is
    its default on the output layer, the margin.
    """
    import jax
    import numpy as np

    import funcnet as fn

    if space == "pca":
        options["basis"] = fn.inputs.pca_basis(train[0], value_range=(0.0, 1.0))
    images, history = fn.inputs.visualize_units(model, params, units=range(10), layer=-1, key=key, steps=steps,
                                                 objective=objective, input_shape=(8, 8), value_range=(0.0, 1.0),
                                                 space=space, prior=prior, return_history=True, **options)
    probs = np.asarray(jax.nn.softmax(model.apply(params, images.reshape(10, 64))))
    X, y = train
    scores = fn.inputs.class_image_scores(images, X, y, lambda x: model.apply(other_params, x))
    recipe = ("principal components of the training digits" if space == "pca" else f"{space} space") + \
        (f", Gaussian prior {prior:g}" if prior else "")
    return ClassUnits(images, history, probs, scores, recipe)


def describe(units: ClassUnits) -> str:
    """One line for the console: the scores of the class images."""
    s = units.scores
    return (f"mean correlation with the class mean images {s.mean_correlation:.2f} (min {s.correlation.min():.2f}; "
            f"{s.mean_centered:.2f} centered on the data mean); a second network classifies {s.transfer}/10 as "
            "their class")


def draw(units: ClassUnits, model, path, *, objective: str) -> None:
    """class_units.png: the images on one scale 0..1 with a colour bar; the caption says what they are, once."""
    from funcnet import plotting

    sizes = "-".join(map(str, model.sizes))
    s = units.scores
    caption = (f"input each class unit maximizes ({sizes} MLP); confidence min {units.probs.diagonal().min():.2f}\n"
               f"mean correlation with the class mean image {s.mean_correlation:.2f} "
               f"({s.mean_centered:.2f} centered on the data mean); "
               f"a second network classifies {s.transfer}/10 as their class")
    plotting.image_grid(units.images, [str(k) for k in range(10)], path, vmin=0, vmax=1,
                        title=f"inputs that maximize each class ({objective} objective)", caption=caption)


def summary(units: ClassUnits) -> dict:
    """The scores as summary.json holds them."""
    s = units.scores
    return {
        "mean_correlation": s.mean_correlation, "correlation": s.correlation, "nearest_class_mean": s.nearest,
        "mean_centered_correlation": s.mean_centered, "centered_correlation": s.centered,
        "parametrization": units.recipe,
        "transfer": s.transfer, "transfer_predicted": s.transfer_predicted, "transfer_network": TRANSFER_NETWORK,
    }
